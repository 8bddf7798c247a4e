"""FastAGI: our server measured side by side with a minimal panoramisk FastAGI application.

    .venv/bin/python bench/agi.py [--sessions 1,50,200] [--rounds R] [--seconds S]
        [--json PATH] [--pin] [--profile PREFIX] [--bus-subscribers K]

Both servers run in this process, in one event loop, on 127.0.0.1 ephemeral ports:

    ours        callcenter.agi.server.FastAgiServer with route ``112`` whose handler drives the
                AgiSession with our typed commands, the conversation of the first 112 IVR:
                VERBOSE, GET VARIABLE CHANNEL(linkedid), GET DATA prompt 5000 1,
                SET VARIABLE CC_CHOICE, SET VARIABLE CC_QUEUE, VERBOSE. Built as the engine
                builds it (callcenter/app.py): explicit route table, with an EventBus.
    panoramisk  panoramisk.fast_agi.Application behind asyncio.start_server, route ``112``: an
                endpoint sending exactly the same six command strings with request.send_command.

A fake Asterisk runs in a separate process (``spawn``) with its own event loop. For each N it
keeps N sessions open at all times (closed loop: a session that ends is replaced at once) for
``--seconds`` per phase. Each session connects, sends 22 ``agi_*`` lines and a blank line like
Asterisk 20, then answers each command as Asterisk would (``200 result=1 (linkedid)`` for
GET VARIABLE, ``200 result=2`` for GET DATA, ``200 result=1`` otherwise). The client checks that
every command is exactly the expected string, so both servers provably do the same work.

Why the client is another process: on 2 cores the client and the server then each have a core,
and the client's own work (parsing commands, writing replies, its event loop serving N
sockets) is neither charged to the server's CPU time nor queued in front of the server's
callbacks. The server's CPU time per session is measured directly (process time of this
process, which only serves while a phase runs) and is the least noisy overhead figure.

What is timed, on the client, with perf_counter_ns:

    command    the latency of each command after the first: from just before the client writes
               its reply to the previous command until the next command has arrived. This is
               the server's per-command overhead (read + parse reply, handler, render + write
               next command) plus two loopback hops, which are the same for both servers.
    setup      from the end of the AGI environment to the first command (env parsing, routing).
    teardown   from the last reply to the server closing the connection.
    sessions/s completed sessions / wall time of the phase, with N sessions open throughout.

Each round runs every server once; the order alternates between rounds (AB, BA, ...) so a
warming or busy machine does not favour one side. Tables show the median over rounds of each
round's figures. Ratios are ours / panoramisk (for latency lower is better, for sessions/s
higher is better). Any session error (wrong command, early close, timeout, refused
connection) or any warning logged by either server makes the run exit 1.

Loops are bounded: every phase by ``--seconds`` and ``--max-sessions``, every session by
``--session-timeout``; network is loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import logging
import math
import multiprocessing
import os
import platform
import pstats
import statistics
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from panoramisk.fast_agi import Application, Request  # noqa: E402

from bench.common import cpu_model  # noqa: E402
from callcenter.agi.commands import GetData, GetVariable, SetVariable, Verbose  # noqa: E402
from callcenter.agi.server import AgiSession, FastAgiServer, route_table  # noqa: E402
from callcenter.events import EventBus  # noqa: E402

log = logging.getLogger("bench.agi")

SERVERS = ("ours", "panoramisk")
ROUTE = "112"
UNIQUEID = "1700000000.42"
LINKEDID = "1700000000.41"
CALLERID = "081234567890"
DIGIT = "2"  # the caller presses 2: fire brigade
# The 112 menu of the first (placeholder) IVR: one key picks the service, then the queue.
PROMPT = "/var/lib/asterisk/sounds/callcenter/112-layanan-id"
CHOICE_TIMEOUT_MS = 5000
EMERGENCY_SERVICES = {"1": "police", "2": "fire", "3": "ambulance"}
FIRST_VERBOSE = f"IVR {ROUTE} call {UNIQUEID}"
LAST_VERBOSE = "IVR done, to queue q112"

# What a stock Asterisk 20 sends for AGI(agi://host:port/112) on an incoming PJSIP call.
ENVIRONMENT = {
    "agi_network": "yes",
    "agi_network_script": ROUTE,
    "agi_request": f"agi://127.0.0.1:4573/{ROUTE}",
    "agi_channel": "PJSIP/trunk-telkom-0000002a",
    "agi_language": "id",
    "agi_type": "PJSIP",
    "agi_uniqueid": UNIQUEID,
    "agi_version": "20.5.2",
    "agi_callerid": CALLERID,
    "agi_calleridname": "unknown",
    "agi_callingpres": "0",
    "agi_callingani2": "0",
    "agi_callington": "0",
    "agi_callingtns": "0",
    "agi_dnid": "112",
    "agi_rdnis": "unknown",
    "agi_context": "from-trunk",
    "agi_extension": "112",
    "agi_priority": "2",
    "agi_enhanced": "0.0",
    "agi_accountcode": "",
    "agi_threadid": "140245112305216",
}
ENV_BLOCK = "".join(f"{k}: {v}\n" for k, v in ENVIRONMENT.items()).encode() + b"\n"

# The conversation, in order: (command the server must send, Asterisk's reply, label).
CONVERSATION: list[tuple[str, str, str]] = [
    (f'VERBOSE "{FIRST_VERBOSE}" 3', "200 result=1", "VERBOSE (first)"),
    ("GET VARIABLE CHANNEL(linkedid)", f"200 result=1 ({LINKEDID})", "GET VARIABLE"),
    (f'GET DATA "{PROMPT}" {CHOICE_TIMEOUT_MS} 1', f"200 result={DIGIT}", "GET DATA"),
    (f'SET VARIABLE CC_CHOICE "{EMERGENCY_SERVICES[DIGIT]}"', "200 result=1", "SET VARIABLE CC_CHOICE"),
    ('SET VARIABLE CC_QUEUE "q112"', "200 result=1", "SET VARIABLE CC_QUEUE"),
    (f'VERBOSE "{LAST_VERBOSE}" 3', "200 result=1", "VERBOSE (last)"),
]
EXPECTED = [command.encode() for command, _, _ in CONVERSATION]
REPLIES = [(reply + "\n").encode() for _, reply, _ in CONVERSATION]
# Latency sample i (i >= 1) is "reply i-1 written -> command i arrived"; sample 0 is setup.
COMMAND_LABELS = [f"-> {label}" for _, _, label in CONVERSATION[1:]]


# ---------------------------------------------------------------------------------------------
# The two servers
# ---------------------------------------------------------------------------------------------


async def our_emergency(session: AgiSession) -> None:
    """The conversation with our typed commands, as the IVR code drives an AgiSession."""
    await session.run(Verbose(f"IVR {session.route} call {session.uniqueid}"))
    linkedid = (await session.run(GetVariable("CHANNEL(linkedid)"))).data or session.uniqueid
    reply = await session.run(GetData(PROMPT, CHOICE_TIMEOUT_MS, 1), timeout=CHOICE_TIMEOUT_MS / 1000 + 60)
    key = reply.result if len(reply.result) == 1 and reply.result in "0123456789*#" else ""
    service = EMERGENCY_SERVICES.get(key, "")
    # IVR code logs these at INFO; logging stays at WARNING for both servers.
    log.info("call %s: IVR %s from %s", linkedid, session.route, session.env.get("agi_callerid", ""))
    log.info("call %s: 112 menu choice %r -> %s", linkedid, key, service or "call-taker")
    await session.run(SetVariable("CC_CHOICE", service))
    await session.run(SetVariable("CC_QUEUE", "q112"))
    await session.run(Verbose(LAST_VERBOSE))


async def panoramisk_emergency(request: Request) -> None:
    """The same conversation written the way a panoramisk user would: plain strings."""
    headers = request.headers
    await request.send_command(
        f'VERBOSE "IVR {headers["agi_network_script"]} call {headers["agi_uniqueid"]}" 3'
    )
    reply = await request.send_command("GET VARIABLE CHANNEL(linkedid)")
    linkedid = reply["result"][1] or headers.get("agi_uniqueid", "")
    reply = await request.send_command(f'GET DATA "{PROMPT}" {CHOICE_TIMEOUT_MS} 1')
    key = reply["result"][0]
    key = key if len(key) == 1 and key in "0123456789*#" else ""
    service = EMERGENCY_SERVICES.get(key, "")
    log.info("call %s: IVR %s from %s", linkedid, ROUTE, headers.get("agi_callerid", ""))
    log.info("call %s: 112 menu choice %r -> %s", linkedid, key, service or "call-taker")
    await request.send_command(f'SET VARIABLE CC_CHOICE "{service}"')
    await request.send_command('SET VARIABLE CC_QUEUE "q112"')
    await request.send_command(f'VERBOSE "{LAST_VERBOSE}" 3')


class WarningCounter(logging.Handler):
    """Counts what the servers log at WARNING and above (a failed session logs there)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0
        self.samples: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1
        if len(self.samples) < 5:
            self.samples.append(f"{record.name}: {record.getMessage()}")


class Servers:
    def __init__(self, bus_subscribers: int) -> None:
        self.bus = EventBus()
        self.bus_subscribers = bus_subscribers
        self._drains: list[asyncio.Task[None]] = []
        self.ours = FastAgiServer(
            "127.0.0.1",
            0,
            route_table([(ROUTE, our_emergency)]),
            idle_timeout=10.0,
            bus=self.bus,
        )
        self._panoramisk: asyncio.Server | None = None
        self.ports: dict[str, int] = {}

    async def start(self) -> None:
        for _ in range(self.bus_subscribers):
            self._drains.append(asyncio.create_task(self._drain()))
        await self.ours.start()
        app = Application()
        app.add_route(ROUTE, panoramisk_emergency)
        self._panoramisk = await asyncio.start_server(app.handler, "127.0.0.1", 0)
        self.ports = {
            "ours": self.ours.bound_port,
            "panoramisk": int(self._panoramisk.sockets[0].getsockname()[1]),
        }

    async def _drain(self) -> None:
        """A consumer of the bus, like a supervisor's browser tab on the live view."""
        async with self.bus.subscribe() as subscription:
            while True:
                await subscription.get()

    async def stop(self) -> None:
        await self.ours.stop()
        if self._panoramisk is not None:
            self._panoramisk.close()
            await self._panoramisk.wait_closed()
        for task in self._drains:
            task.cancel()
        await asyncio.gather(*self._drains, return_exceptions=True)


# ---------------------------------------------------------------------------------------------
# The fake Asterisk (runs in the client process)
# ---------------------------------------------------------------------------------------------


class Tally:
    def __init__(self) -> None:
        self.samples: list[list[int]] = [[] for _ in CONVERSATION]  # ns; [0] is setup
        self.teardown: list[int] = []
        self.connect: list[int] = []
        self.errors: Counter[str] = Counter()
        self.completed = 0
        self.open = 0
        self.peak_open = 0


class FakeAsterisk(asyncio.Protocol):
    """Asterisk's side of one FastAGI session, answering each command in the read callback."""

    def __init__(self, tally: Tally, done: asyncio.Future[None]) -> None:
        self.tally = tally
        self.done = done
        self.buffer = b""
        self.step = 0
        self.mark = 0
        self.times: list[int] = []
        self.connected_at = 0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.connected_at = time.perf_counter_ns()
        self.tally.open += 1
        self.tally.peak_open = max(self.tally.peak_open, self.tally.open)
        self.mark = time.perf_counter_ns()
        transport.write(ENV_BLOCK)

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter_ns()
        self.buffer += data
        while (end := self.buffer.find(b"\n")) >= 0:
            line, self.buffer = self.buffer[:end], self.buffer[end + 1 :]
            if self.step >= len(EXPECTED) or line != EXPECTED[self.step] or self.buffer:
                self._fail(f"unexpected command {line[:60]!r} at step {self.step}")
                return
            self.times.append(now - self.mark)
            assert self.transport is not None
            self.mark = time.perf_counter_ns()
            self.transport.write(REPLIES[self.step])
            self.step += 1

    def eof_received(self) -> bool:
        if self.step == len(EXPECTED) and not self.buffer:
            self.tally.teardown.append(time.perf_counter_ns() - self.mark)
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.tally.open -= 1
        if self.done.done():
            return
        if exc is not None:
            self._fail(f"connection lost: {type(exc).__name__}")
        elif self.step != len(EXPECTED):
            self._fail(f"closed by the server after {self.step} of {len(EXPECTED)} commands")
        else:
            for i, sample in enumerate(self.times):
                self.tally.samples[i].append(sample)
            self.tally.completed += 1
            self.done.set_result(None)

    def _fail(self, reason: str) -> None:
        if not self.done.done():
            self.tally.errors[reason] += 1
            self.done.set_result(None)
        if self.transport is not None:
            self.transport.close()


async def one_session(port: int, tally: Tally, timeout: float) -> None:
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    started = time.perf_counter_ns()
    transport: asyncio.BaseTransport | None = None
    try:
        async with asyncio.timeout(timeout):
            transport, protocol = await loop.create_connection(
                lambda: FakeAsterisk(tally, done), "127.0.0.1", port
            )
            tally.connect.append(protocol.connected_at - started)
            await done
    except TimeoutError:
        tally.errors["session timeout"] += 1
    except OSError as exc:
        tally.errors[f"connect: {type(exc).__name__}"] += 1
    finally:
        if transport is not None:
            transport.close()


def percentile(ordered: list[int], q: float) -> float:
    """Nearest-rank percentile of sorted ns samples, in µs."""
    if not ordered:
        return float("nan")
    rank = max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[rank] / 1000


def spread(samples: list[int]) -> dict[str, float]:
    ordered = sorted(samples)
    return {"p50": percentile(ordered, 50), "p99": percentile(ordered, 99), "n": len(ordered)}


async def drive(
    port: int, concurrency: int, seconds: float, max_sessions: int, timeout: float
) -> dict[str, Any]:
    tally = Tally()
    started = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal started
        while time.perf_counter() < deadline and started < max_sessions:
            started += 1
            await one_session(port, tally, timeout)

    cpu = time.process_time()
    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - t0
    cpu = time.process_time() - cpu
    commands = [s for samples in tally.samples[1:] for s in samples]
    return {
        "sessions": tally.completed,
        "wall_s": wall,
        "sessions_per_s": tally.completed / wall if wall else 0.0,
        "command": spread(commands),
        "per_command": {label: spread(tally.samples[i + 1]) for i, label in enumerate(COMMAND_LABELS)},
        "setup": spread(tally.samples[0]),
        "teardown": spread(tally.teardown),
        "connect": spread(tally.connect),
        "errors": dict(tally.errors),
        "peak_open": tally.peak_open,
        "client_cpu_pct": round(100 * cpu / wall, 1) if wall else None,
    }


def client_phase(job: dict[str, Any]) -> dict[str, Any]:
    """Entry point in the client process."""
    if job.get("cpu") is not None:
        os.sched_setaffinity(0, {job["cpu"]})
    return asyncio.run(
        drive(job["port"], job["concurrency"], job["seconds"], job["max_sessions"], job["timeout"])
    )


# ---------------------------------------------------------------------------------------------
# The runner (server process)
# ---------------------------------------------------------------------------------------------


def machine_busy() -> float:
    """Seconds of CPU the whole machine has spent (all cores, all processes) since boot."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def machine_facts(args: argparse.Namespace) -> dict[str, Any]:
    model = cpu_model()
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "affinity": sorted(os.sched_getaffinity(0)),
        "cpu_model": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "panoramisk": version("panoramisk"),
        "loadavg_at_start": os.getloadavg(),
        "pinned": bool(args.pin),
        "bus_subscribers": args.bus_subscribers,
    }


@dataclass
class Runner:
    servers: Servers
    pool: ProcessPoolExecutor
    args: argparse.Namespace
    warnings: WarningCounter

    async def phase(self, server: str, concurrency: int, seconds: float) -> dict[str, Any]:
        job = {
            "port": self.servers.ports[server],
            "concurrency": concurrency,
            "seconds": seconds,
            "max_sessions": self.args.max_sessions,
            "timeout": self.args.session_timeout,
            "cpu": self.args.cpus[1] if self.args.pin else None,
        }
        loop = asyncio.get_running_loop()
        warnings_before = self.warnings.count
        busy = machine_busy()
        cpu = time.process_time()
        result: dict[str, Any] = await loop.run_in_executor(self.pool, client_phase, job)
        cpu = time.process_time() - cpu
        busy = machine_busy() - busy
        try:
            await asyncio.wait_for(self.servers.ours.wait_idle(), self.args.session_timeout)
        except TimeoutError:
            result["errors"]["our sessions still open after the phase"] = self.servers.ours.active_sessions
        result["server_warnings"] = self.warnings.count - warnings_before
        sessions = result["sessions"]
        result["server_cpu_us_per_session"] = 1e6 * cpu / sessions if sessions else float("nan")
        result["server_cpu_pct"] = round(100 * cpu / result["wall_s"], 1)
        result["machine_busy_pct"] = round(100 * busy / result["wall_s"], 1)
        return result

    async def concurrency(self, n: int) -> dict[str, Any]:
        rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in SERVERS}
        for r in range(self.args.rounds):
            order = SERVERS if r % 2 == 0 else SERVERS[::-1]
            for name in order:
                rounds[name].append(await self.phase(name, n, self.args.seconds))
                print(
                    f"  N={n} round {r + 1}/{self.args.rounds} {name}: {brief(rounds[name][-1])}", flush=True
                )
        medians = {name: summarize(rounds[name]) for name in SERVERS}
        return {"rounds": rounds, "median": medians, "ratio": ratios(medians["ours"], medians["panoramisk"])}

    async def count(self, seconds: float) -> dict[str, dict[str, float]]:
        """One extra, unrecorded N=1 phase per server counting, per session, the iterations of
        the server's event loop and the asyncio tasks it creates. Unlike times, these counts do
        not depend on the machine or its load. The counting hooks (a wrapper around the loop's
        private ``_run_once`` and a task factory) are installed for this phase only."""
        loop: Any = asyncio.get_running_loop()
        tally = {"loop_iterations": 0, "tasks": 0}
        run_once = loop._run_once

        def counted_run_once() -> None:
            tally["loop_iterations"] += 1
            run_once()

        def task_factory(loop: Any, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
            tally["tasks"] += 1
            return asyncio.Task(coro, loop=loop, **kwargs)

        counts: dict[str, dict[str, float]] = {}
        loop._run_once = counted_run_once
        loop.set_task_factory(task_factory)
        try:
            for name in SERVERS:
                before = dict(tally)
                result = await self.phase(name, 1, seconds)
                sessions = max(1, result["sessions"])
                counts[name] = {key: (tally[key] - before[key]) / sessions for key in tally}
                counts[name]["sessions"] = result["sessions"]
        finally:
            del loop._run_once  # back to the class's method
            loop.set_task_factory(None)
        return counts

    async def profile(self, prefix: Path, n: int) -> dict[str, list[str]]:
        """One extra, unrecorded phase per server under cProfile (this process = the server)."""
        tops: dict[str, list[str]] = {}
        for name in SERVERS:
            profiler = cProfile.Profile()
            profiler.enable()
            await self.phase(name, n, self.args.seconds)
            profiler.disable()
            path = prefix.with_name(f"{prefix.name}.{name}.prof")
            profiler.dump_stats(path)
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(18)
            tops[name] = [line for line in out.getvalue().splitlines() if line.strip()]
            print(f"\ncProfile of {name} at N={n} (by own time), written to {path}:")
            print("\n".join(tops[name][-20:]))
        return tops


def brief(r: dict[str, Any]) -> str:
    errors = sum(r["errors"].values()) + r["server_warnings"]
    return (
        f"{r['sessions_per_s']:.0f} sessions/s, command p50 {r['command']['p50']:.0f} µs "
        f"p99 {r['command']['p99']:.0f} µs, server CPU {r['server_cpu_us_per_session']:.0f} µs/session, "
        f"errors {errors}, machine busy {r['machine_busy_pct']:.0f}%"
    )


def med(values: list[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def summarize(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    def of(key: str, sub: str) -> float:
        return med([r[key][sub] for r in rounds])

    return {
        "sessions_per_s": med([r["sessions_per_s"] for r in rounds]),
        "command_p50_us": of("command", "p50"),
        "command_p99_us": of("command", "p99"),
        "setup_p50_us": of("setup", "p50"),
        "setup_p99_us": of("setup", "p99"),
        "teardown_p50_us": of("teardown", "p50"),
        "connect_p99_us": of("connect", "p99"),
        "per_command": {
            label: {q: med([r["per_command"][label][q] for r in rounds]) for q in ("p50", "p99")}
            for label in COMMAND_LABELS
        },
        "server_cpu_us_per_session": med([r["server_cpu_us_per_session"] for r in rounds]),
        "server_cpu_pct": med([r["server_cpu_pct"] for r in rounds]),
        "client_cpu_pct": med([r["client_cpu_pct"] for r in rounds]),
        "machine_busy_pct": med([r["machine_busy_pct"] for r in rounds]),
        "peak_open": max(r["peak_open"] for r in rounds),
        "sessions_total": sum(r["sessions"] for r in rounds),
        "errors": sum(sum(r["errors"].values()) for r in rounds),
        "error_kinds": dict(sum((Counter(r["errors"]) for r in rounds), Counter())),
        "server_warnings": sum(r["server_warnings"] for r in rounds),
    }


def ratios(ours: dict[str, Any], base: dict[str, Any]) -> dict[str, float]:
    keys = ("sessions_per_s", "command_p50_us", "command_p99_us", "setup_p50_us", "server_cpu_us_per_session")
    return {key: ours[key] / base[key] if base[key] else float("nan") for key in keys}


def render(n: int, result: dict[str, Any], args: argparse.Namespace) -> str:
    m, ratio = result["median"], result["ratio"]
    lines = [
        f"\nN = {n} concurrent sessions ({args.rounds} rounds x {args.seconds:g} s per server; medians)",
        f"{'server':<18}{'sessions/s':>11}{'cmd p50 µs':>12}{'cmd p99 µs':>12}{'setup p50/p99 µs':>18}"
        f"{'srv CPU µs/sess':>17}{'srv/cli CPU %':>15}{'peak open':>11}{'errors':>8}",
    ]
    for name in SERVERS:
        s = m[name]
        lines.append(
            f"{name:<18}{s['sessions_per_s']:>11.0f}{s['command_p50_us']:>12.0f}{s['command_p99_us']:>12.0f}"
            f"{s['setup_p50_us']:>9.0f}/{s['setup_p99_us']:<8.0f}{s['server_cpu_us_per_session']:>17.0f}"
            f"{s['server_cpu_pct']:>9.0f}/{s['client_cpu_pct']:<5.0f}"
            f"{s['peak_open']:>11}{s['errors'] + s['server_warnings']:>8}"
        )
    lines.append(
        f"{'ours/panoramisk':<18}{ratio['sessions_per_s']:>11.2f}{ratio['command_p50_us']:>12.2f}"
        f"{ratio['command_p99_us']:>12.2f}{ratio['setup_p50_us']:>9.2f}{'':<9}"
        f"{ratio['server_cpu_us_per_session']:>17.2f}"
    )
    lines.append(f"{'per command (µs)':<26}{'ours p50':>9}{'pano p50':>9}{'ours p99':>10}{'pano p99':>10}")
    for label in COMMAND_LABELS:
        o, p = m["ours"]["per_command"][label], m["panoramisk"]["per_command"][label]
        lines.append(f"  {label:<24}{o['p50']:>9.0f}{p['p50']:>9.0f}{o['p99']:>10.0f}{p['p99']:>10.0f}")
    for name in SERVERS:
        if m[name]["error_kinds"]:
            lines.append(f"  {name} errors: {m[name]['error_kinds']}")
    return "\n".join(lines)


def verdict(results: dict[int, dict[str, Any]], factor: float) -> tuple[list[str], bool]:
    lines, ok = [], True
    for n, result in results.items():
        ratio = result["ratio"]
        worst = max(ratio["command_p50_us"], ratio["command_p99_us"])
        within = worst <= factor
        ok = ok and within
        lines.append(
            f"N={n}: per-command latency ours/panoramisk p50 {ratio['command_p50_us']:.2f}, "
            f"p99 {ratio['command_p99_us']:.2f} -> {'within' if within else 'NOT within'} {factor}x"
        )
    return lines, ok


async def main_async(args: argparse.Namespace) -> int:
    warnings = WarningCounter()
    for name in ("callcenter", "panoramisk"):
        logging.getLogger(name).addHandler(warnings)
    if args.pin:
        os.sched_setaffinity(0, {args.cpus[0]})
    servers = Servers(args.bus_subscribers)
    await servers.start()
    context = multiprocessing.get_context("spawn")
    facts = machine_facts(args)
    print(f"machine: {json.dumps(facts)}")
    print(f"ports: {servers.ports}")
    results: dict[int, dict[str, Any]] = {}
    profile: dict[str, list[str]] = {}
    counts: dict[str, dict[str, float]] = {}
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        runner = Runner(servers, pool, args, warnings)
        try:
            for name in SERVERS:  # warm-up: imports, caches, first connections; not recorded
                await runner.phase(name, min(50, max(args.sessions)), args.warmup)
            warnings.count = 0
            for n in args.sessions:
                results[n] = await runner.concurrency(n)
            counts = await runner.count(min(args.seconds, 2.0))
            if args.profile is not None:
                profile = await runner.profile(args.profile, max(args.sessions))
        finally:
            await servers.stop()
    for n, result in results.items():
        print(render(n, result, args))
    print("\nPer session, N=1 (deterministic): server event-loop iterations, asyncio tasks created")
    for name in SERVERS:
        c = counts[name]
        print(f"  {name:<12}{c['loop_iterations']:>8.1f} iterations{c['tasks']:>8.1f} tasks")
    lines, within = verdict(results, args.factor)
    errors = sum(
        r["median"][name]["errors"] + r["median"][name]["server_warnings"]
        for r in results.values()
        for name in SERVERS
    )
    top = max(args.sessions)
    top_errors = sum(results[top]["median"][name]["errors"] for name in SERVERS)
    top_ok = "yes" if top_errors == 0 else "NO"
    print("\nTargets:")
    print("\n".join(lines))
    print(f"{top} concurrent sessions without errors: {top_ok} ({top_errors} errors)")
    if warnings.samples:
        print(f"server warnings (first {len(warnings.samples)}): {warnings.samples}")
    if args.json is not None:
        out = {
            "machine": facts,
            "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "conversation": CONVERSATION,
            "results": {str(n): r for n, r in results.items()},
            "per_session_counts_n1": counts,
            "within_factor": within,
            "errors": errors,
            "profile_top": profile,
        }
        args.json.write_text(json.dumps(out, indent=2, ensure_ascii=False) + "\n")
        print(f"wrote {args.json}")
    return 1 if errors else 0


def sessions_list(text: str) -> list[int]:
    values = [int(x) for x in text.split(",") if x.strip()]
    if not values or min(values) < 1 or max(values) > 450:
        raise argparse.ArgumentTypeError("a comma-separated list of 1..450")
    return values


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sessions", type=sessions_list, default=[1, 50, 200], help="N values (1,50,200)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per N, alternating order (5)")
    parser.add_argument("--seconds", type=float, default=2.0, help="length of one phase (2.0)")
    parser.add_argument("--warmup", type=float, default=1.0, help="unrecorded warm-up per server (1.0 s)")
    parser.add_argument("--max-sessions", type=int, default=50_000, help="cap on sessions per phase")
    parser.add_argument("--session-timeout", type=float, default=10.0, help="per session (10 s)")
    parser.add_argument("--factor", type=float, default=1.5, help="target: ours within this x panoramisk")
    parser.add_argument("--bus-subscribers", type=int, default=0, help="draining EventBus subscribers (0)")
    parser.add_argument("--pin", action="store_true", help="pin the servers to CPU 0 and the client to CPU 1")
    parser.add_argument(
        "--profile", type=Path, help="also cProfile one phase per server: PREFIX.<server>.prof"
    )
    parser.add_argument("--json", type=Path, help="write every round's figures here")
    args = parser.parse_args()
    if args.rounds < 1 or not 0 < args.seconds <= 60:
        parser.error("--rounds must be >= 1 and --seconds in (0, 60]")
    args.cpus = sorted(os.sched_getaffinity(0))
    if args.pin and len(args.cpus) < 2:
        parser.error("--pin needs two CPUs")
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
