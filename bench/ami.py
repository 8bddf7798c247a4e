"""AMI events: our AMI layer and live state measured side by side with bare panoramisk parsing.

    .venv/bin/python bench/ami.py [--calls N] [--rounds R] [--seconds S] [--chunk MIN-MAX]
        [--sides panoramisk,queue,parse,ours,engine] [--seed K] [--json PATH] [--profile PATH]

The event stream is built from the AMI traces recorded on a real Asterisk 22.10
(``tests/ami/traces/*.ami``), in the wire form (CRLF lines, a blank line after each message):

    1. ``members_and_pause.ami`` once: login, FullyBooted, the CoreShowChannels + QueueStatus
       snapshot (the resync after each connect), then pause/unpause and QueueAdd/QueueRemove;
    2. ``odd.ami`` once: the hand-written odd input (out-of-band response, UserEvent, five malformed
       tracked events, events about channels, callers and members nobody saw);
    3. then ``queue_answered``, ``queue_abandoned`` and ``ring_no_answer`` over and over, ``--calls``
       calls in all. Every copy gets its own Uniqueids/Linkedids (``rec-<epoch>.<seq>``), channel
       name suffixes and bridge id, so each copy is a new call to the live state. The list answers
       the recorder asked for in the middle of those calls (CoreShowChannels / QueueStatus items and
       their Response blocks) are left out of the copies: in production they come once per
       connect, which part 1 already has.

The stream is cut into chunks of random size between ``--chunk`` MIN and MAX bytes (4-16 KiB
by default, the reads a socket delivers under load), the same chunks for every side. Sides:

    panoramisk  panoramisk.ami_protocol.AMIProtocol with a trivial factory whose dispatch() counts
                the message and stamps the time: the parsing every AMI user pays (the baseline).
    queue       our layer without the work: callcenter.ami.connection.AmiConnection wired to a
                _BoundedProtocol as AmiConnection._session wires it (factory, utf-8, logger),
                dispatch() -> asyncio queue -> the _consume() task -> a no-op handler per event.
    parse       the same, each handler only runs ``parse_event``.
    ours        the handler table ``LiveMonitor(LiveState(), EventBus()).handlers(system)``, and
                ``on_booted`` starting the resync as the engine does: each event goes dispatch ->
                queue -> consumer -> parse_event -> LiveState.apply -> EventBus.publish, with one
                bus subscriber task draining (like one open console). The target is about this side.
    engine      the same, through the handler ``callcenter/app.py`` (``Engine._ami``) now puts in
                the table: an async ``on_event`` awaiting ``Engine._on_ami_event``, which calls
                ``LiveMonitor.handle``, looks at the changes and checks each Hangup for a closed
                recording. Its database and AMI branches (callback listing of an abandoned 112
                caller, recording catalogue, agent restore) are counted, not run.

``queue`` and ``parse`` only show where our time goes; the target compares ``ours`` (and
``engine``) with ``panoramisk``. No socket is involved: each chunk is handed to ``data_received`` from its own
event-loop callback (a chain of ``call_soon``, as a selector transport calls it once per read),
so the consumer task runs between two reads exactly as it would behind a real socket, and the
wire bytes are the same for every side. A real socket would add the same kernel and transport
cost to each side.

Measured per phase (one side, the whole stream, as fast as the loop takes it):

    events/s   messages dispatched by panoramisk's protocol (tracked and untracked, the same
               count on every side) / wall time from the first chunk to the last handler done
               and the bus drained.
    lag        for each tracked event (one the live state understands): time from the start of
               the data_received call of the chunk that completed it to the end of its handler
               (for panoramisk: to its dispatch). p50 / p99 / max.
    CPU        process time of this process (only the phase runs) per event. ``rate/CPU`` is
               panoramisk's CPU per event divided by the side's: the ratio of event rates the two
               would reach each on a core of its own. On a shared machine it moves less than the
               wall-clock ratio, which also counts the time other work held the core.

Rounds alternate the order of the sides (ABCD, DCBA, ...); tables show the median over rounds.
Correctness, checked in every phase (any failure prints FAILED and exits 1): the number of
messages dispatched and handled equals the count from a reference replay made before the rounds
(the same chunks through panoramisk, then ``LiveMonitor.handle`` directly); for ``ours`` and
``engine`` the live state's ``stats`` equal the reference's exactly (so no more MalformedEvents
than ``odd.ami``'s five, no unexpected unknown/duplicate counts), the bus delivered as many
changes as the reference published with none dropped, the final state (calls, queues with their
counters, agents) equals the reference's, and nothing was logged at WARNING or above. Every
phase is bounded by the stream's size and ``--seconds``.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import io
import json
import logging
import math
import os
import platform
import pstats
import random
import re
import statistics
import sys
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from panoramisk.ami_protocol import AMIProtocol  # noqa: E402
from panoramisk.message import Message  # noqa: E402

from bench.common import cpu_model  # noqa: E402
from callcenter.ami import connection as ami_connection  # noqa: E402
from callcenter.ami.connection import AmiConnection, AmiState, _BoundedProtocol  # noqa: E402
from callcenter.ami.events import PARSERS, MalformedEvent, parse_event  # noqa: E402
from callcenter.calls.callbacks import CALLBACK_QUEUES  # noqa: E402
from callcenter.calls.live import CallerLeft, LiveState, Resynced  # noqa: E402
from callcenter.calls.monitor import LiveMonitor  # noqa: E402
from callcenter.events import EventBus  # noqa: E402
from callcenter.recording.closed import recording_closed  # noqa: E402

TRACES = ROOT / "tests" / "ami" / "traces"
SYSTEM = "rec"
SETUP_TRACES = ("members_and_pause.ami", "odd.ami")
CALL_TRACES = ("queue_answered.ami", "queue_abandoned.ami", "ring_no_answer.ami")
SIDES = ("panoramisk", "queue", "parse", "ours", "engine")
# Events that answer CoreShowChannels / QueueStatus (kept only in the connect-time snapshot).
LIST_EVENTS = frozenset(
    {"coreshowchannel", "coreshowchannelscomplete", "queueparams", "queuemember", "queueentry",
     "queuestatuscomplete"}
)  # fmt: skip
HZ = os.sysconf("SC_CLK_TCK")

UNIQUEID_RE = re.compile(rb"rec-(\d+)\.(\d+)")
CHANNEL_RE = re.compile(rb"(PJSIP/[A-Za-z0-9_]+)-([0-9a-f]{8})\b")
BRIDGE_RE = re.compile(rb"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-)([0-9a-f]{12})")


# ---- the stream ------------------------------------------------------------------------------
def read_trace(name: str) -> bytes:
    """A trace's wire bytes: '#' comment lines dropped, every line ending CRLF (as tests do)."""
    lines = (TRACES / name).read_bytes().split(b"\n")
    while lines and lines[0].startswith(b"#"):
        lines.pop(0)
    return re.sub(rb"(?<!\r)\n", b"\r\n", b"\n".join(lines))


def blocks(data: bytes) -> list[bytes]:
    return [b for b in data.split(b"\r\n\r\n") if b.strip()]


def is_list_answer(block: bytes) -> bool:
    first = block.split(b"\r\n", 1)[0]
    if first.startswith(b"Response:"):
        return True
    return first.startswith(b"Event:") and first[6:].strip().lower().decode() in LIST_EVENTS


def call_copy(template: list[bytes], copy: int) -> bytes:
    """One more call: the template's blocks with its own Uniqueids, channel names and bridge id.

    Asterisk's ids are ``<epoch>.<sequence>``; each copy moves the sequence on by 16 and the
    epoch by 40 s, so every copy's ids are new and still look like Asterisk's."""

    def uniqueid(m: re.Match[bytes]) -> bytes:
        return b"rec-%d.%d" % (int(m[1]) + 40 * copy, int(m[2]) + 16 * copy)

    def channel(m: re.Match[bytes]) -> bytes:
        return m[1] + b"-%08x" % (int(m[2], 16) + 16 * copy)

    def bridge(m: re.Match[bytes]) -> bytes:
        return m[1] + b"%012x" % copy

    out = []
    for block in template:
        block = UNIQUEID_RE.sub(uniqueid, block)
        block = CHANNEL_RE.sub(channel, block)
        out.append(BRIDGE_RE.sub(bridge, block))
    return b"\r\n\r\n".join(out) + b"\r\n\r\n"


def build_stream(calls: int) -> bytes:
    parts = [read_trace(name) for name in SETUP_TRACES]
    templates = [[b for b in blocks(read_trace(name)) if not is_list_answer(b)] for name in CALL_TRACES]
    for i in range(calls):
        parts.append(call_copy(templates[i % len(templates)], i // len(templates) + 1))
    return b"".join(p if p.endswith(b"\r\n\r\n") else p + b"\r\n\r\n" for p in parts)


def cut(data: bytes, low: int, high: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)  # noqa: S311 - read sizes, not crypto
    chunks, offset = [], 0
    while offset < len(data):
        size = rng.randint(low, high)
        chunks.append(data[offset : offset + size])
        offset += size
    return chunks


class NullTransport:
    """Where the protocol would write actions (the bench sends none) and close the socket."""

    def write(self, data: bytes) -> None:
        pass

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


def fresh_protocol(kind: type[AMIProtocol], factory: Any, logger: logging.Logger) -> AMIProtocol:
    """A protocol set up as AmiConnection._session sets up the one it connects."""
    protocol = kind()
    protocol.connection_made(NullTransport())
    protocol.factory = factory
    protocol.encoding = "utf-8"
    protocol.log = logger
    return protocol


class Collector:
    """The reference pass: which chunk completed each dispatched message."""

    forgetable_actions = ("ping", "login")

    def __init__(self) -> None:
        self.awaiting_actions: deque[Any] = deque()
        self.messages: list[Message] = []
        self.chunk_of: list[int] = []
        self.chunk = 0

    def dispatch(self, message: Message) -> None:
        self.messages.append(message)
        self.chunk_of.append(self.chunk)

    def connection_lost(self, exc: object) -> None:
        pass


def state_digest(state: LiveState) -> dict[str, Any]:
    """What must be the same after the replay, whatever the clock said."""
    out: dict[str, Any] = {}
    for system in state.system_names():
        out[system] = {
            "calls": sorted(c.linkedid for c in state.calls(system)),
            "queues": sorted(
                (q.name, q.answered, q.completed, q.abandoned, len(q.callers)) for q in state.queues(system)
            ),
            "agents": sorted(
                (a.interface, str(a.state), a.calls_taken, a.paused_reason) for a in state.agents(system)
            ),
        }
    return out


class Replayed:
    """The AMI port LiveMonitor.resync talks to: the recorder already sent CoreShowChannels and
    QueueStatus, and their answers are in the stream, so sending succeeds at once."""

    system_name = SYSTEM

    async def send_action(self, action: Mapping[str, object], timeout: float = 10.0) -> Any:
        return None


@dataclass
class Stream:
    data: bytes
    chunks: list[bytes]
    messages: int  # dispatched by panoramisk
    tracked: int  # of which have a handler (a parser in PARSERS)
    tracked_chunk: list[int]  # chunk that completed the k-th tracked event
    dispatched_chunk: list[int]  # chunk that completed the i-th dispatched message
    tracked_index: list[int]  # dispatch index of the k-th tracked event
    names: Counter[str]
    stats: dict[str, int]
    changes: int
    change_kinds: dict[str, int]
    digest: dict[str, Any]
    malformed_odd: int
    tail_untracked: int = 0
    facts: dict[str, Any] = field(default_factory=dict)


def reference(calls: int, low: int, high: int, seed: int) -> Stream:
    data = build_stream(calls)
    chunks = cut(data, low, high, seed)
    collector = Collector()
    protocol = fresh_protocol(AMIProtocol, collector, logging.getLogger("bench.ami.reference"))
    for i, chunk in enumerate(chunks):
        collector.chunk = i
        protocol.data_received(chunk)
    state, bus = LiveState(), EventBus()
    monitor = LiveMonitor(state, bus)
    names: Counter[str] = Counter()
    tracked_chunk, tracked_index = [], []
    kinds: Counter[str] = Counter()
    for i, message in enumerate(collector.messages):
        name = str(message.get("Event", ""))
        names[name] += 1
        if name.lower() not in PARSERS:
            continue
        tracked_chunk.append(collector.chunk_of[i])
        tracked_index.append(i)
        for change in monitor.handle(SYSTEM, message):
            kinds[type(change).__name__] += 1
        if name == "FullyBooted":
            state.begin_resync(SYSTEM)  # what on_booted -> LiveMonitor.resync does first
    odd = Collector()
    fresh_protocol(AMIProtocol, odd, logging.getLogger("bench.ami.reference")).data_received(
        read_trace("odd.ami")
    )
    malformed_odd = sum(isinstance(parse_event(SYSTEM, m), MalformedEvent) for m in odd.messages)
    tail = len(collector.messages) - 1 - tracked_index[-1]
    return Stream(
        data=data,
        chunks=chunks,
        messages=len(collector.messages),
        tracked=len(tracked_index),
        tracked_chunk=tracked_chunk,
        dispatched_chunk=collector.chunk_of,
        tracked_index=tracked_index,
        names=names,
        stats=dict(state.stats),
        changes=sum(kinds.values()),
        change_kinds=dict(kinds),
        digest=state_digest(state),
        malformed_odd=malformed_odd,
        tail_untracked=tail,
        facts={
            "bytes": len(data),
            "chunks": len(chunks),
            "calls": calls,
            "messages": len(collector.messages),
            "tracked": len(tracked_index),
            "bytes_per_message": round(len(data) / max(1, len(collector.messages))),
            "changes": sum(kinds.values()),
        },
    )


# ---- the sides -------------------------------------------------------------------------------
class WarningCounter(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0
        self.samples: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1
        if len(self.samples) < 5:
            self.samples.append(f"{record.name}: {record.getMessage()}")


class CountingFactory:
    """The bare panoramisk user: dispatch() counts and stamps, nothing else."""

    forgetable_actions = ("ping", "login")

    def __init__(self, size: int) -> None:
        self.awaiting_actions: deque[Any] = deque()
        self.done = [0] * size
        self.count = 0

    def dispatch(self, message: Message) -> None:
        if self.count < len(self.done):
            self.done[self.count] = time.perf_counter_ns()
        self.count += 1

    def connection_lost(self, exc: object) -> None:
        pass


class Timed:
    """Wraps the handler of every tracked event: stamps when it finished (lag) and counts."""

    def __init__(self, inner: Callable[[Message], None], size: int, last: asyncio.Future[None]) -> None:
        self.inner = inner
        self.done = [0] * size
        self.count = 0
        self.last = last

    def __call__(self, message: Message) -> None:
        self.inner(message)
        k = self.count
        if k < len(self.done):
            self.done[k] = time.perf_counter_ns()
            if k == len(self.done) - 1 and not self.last.done():
                self.last.set_result(None)
        self.count = k + 1


class EngineHandler:
    """The handler ``Engine._ami`` puts in the table for every event: ``on_event`` awaits
    ``Engine._on_ami_event``, which runs ``LiveMonitor.handle``, looks at the changes and, for a
    Hangup, at the recording. Its database branches (listing an abandoned 112 caller for a callback,
    cataloguing a closed recording) and agent restores are counted here instead of run: they
    need a database and Asterisk, and happen once per call at most."""

    def __init__(self, monitor: LiveMonitor, timed: Timed) -> None:
        self.monitor = monitor
        self.timed = timed
        self.skipped: Counter[str] = Counter()

    async def __call__(self, message: Message) -> None:
        await self._on_ami_event(SYSTEM, message)
        timed = self.timed
        k = timed.count
        if k < len(timed.done):
            timed.done[k] = time.perf_counter_ns()
            if k == len(timed.done) - 1 and not timed.last.done():
                timed.last.set_result(None)
        timed.count = k + 1

    async def _on_ami_event(self, system_name: str, message: Message) -> None:
        changes = self.monitor.handle(system_name, message)
        for change in changes:
            if isinstance(change, Resynced) and change.system_name == SYSTEM:
                self.skipped["restore agents (AMI actions)"] += 1
            elif isinstance(change, CallerLeft) and change.abandoned and change.queue in CALLBACK_QUEUES:
                self.skipped["list a callback (database)"] += 1
        if str(message.get("Event", "")) == "Hangup":
            if recording_closed(system_name, message) is not None:
                self.skipped["catalogue a recording (database)"] += 1


def _noop(message: Message) -> None:
    pass


def _parse_only(message: Message) -> None:
    parse_event(SYSTEM, message)


def machine_busy() -> float:
    """CPU seconds the whole machine has spent (all cores, all processes) since boot."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / HZ


def percentile(ordered: list[int], q: float) -> float:
    """Nearest-rank percentile of sorted ns samples, in µs."""
    if not ordered:
        return float("nan")
    rank = max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[rank] / 1000


async def phase(side: str, stream: Stream, seconds: float, warnings: WarningCounter) -> dict[str, Any]:
    """Feed the whole stream through one side; returns its figures and any problems."""
    loop = asyncio.get_running_loop()
    chunks = stream.chunks
    starts = [0] * len(chunks)
    problems: list[str] = []
    finished: asyncio.Future[None] = loop.create_future()
    last: asyncio.Future[None] = loop.create_future()
    fed = {"chunks": 0, "timed_out": False}
    deadline = time.perf_counter_ns() + int(seconds * 1e9)
    state: LiveState | None = None
    bus: EventBus | None = None
    drained = {"count": 0}
    all_drained = asyncio.Event()
    drainer: asyncio.Task[None] | None = None
    subscribed: asyncio.Future[Any] = loop.create_future()
    consumer: asyncio.Task[None] | None = None
    conn: AmiConnection | None = None
    timed: Timed | None = None
    counting: CountingFactory | None = None
    engine: EngineHandler | None = None

    if side == "panoramisk":
        counting = CountingFactory(stream.messages)
        protocol = fresh_protocol(AMIProtocol, counting, logging.getLogger("panoramisk.ami_protocol"))
    else:
        timed = Timed(_noop, stream.tracked, last)
        handler: Callable[[Message], Any] = timed
        on_booted = None
        if side in ("ours", "engine"):
            state, bus = LiveState(), EventBus()
            monitor = LiveMonitor(state, bus)
            table = monitor.handlers(SYSTEM)
            timed.inner = table["fullybooted"]  # the same handle() for every event name
            if side == "engine":
                engine = EngineHandler(monitor, timed)
                handler = engine
            replayed = Replayed()

            async def resync(connection: AmiConnection) -> None:
                await monitor.resync(replayed)

            on_booted = resync

            async def drain(bus: EventBus) -> None:
                async with bus.subscribe() as subscription:
                    subscribed.set_result(subscription)
                    while True:
                        await subscription.get()
                        drained["count"] += 1
                        if drained["count"] == stream.changes:
                            all_drained.set()

            drainer = asyncio.create_task(drain(bus))
            await subscribed
        elif side == "parse":
            timed.inner = _parse_only
        conn = AmiConnection(
            system_name=SYSTEM,
            host="127.0.0.1",
            port=0,
            username="bench",
            secret="-",  # noqa: S106 - nothing logs in
            handlers=dict.fromkeys(PARSERS, handler),
            on_booted=on_booted,
        )
        protocol = fresh_protocol(_BoundedProtocol, conn, ami_connection.log)
        # What AmiConnection._session does once the socket is up and the login succeeded.
        conn._protocol = protocol
        conn._lost = loop.create_future()
        conn._set_state(AmiState.CONNECTED, "")
        consumer = asyncio.create_task(conn._consume(), name="ami-events-bench")
        await asyncio.sleep(0)  # the consumer now waits on the empty queue, as in production

    def feed(i: int) -> None:
        if i == len(chunks):
            if not finished.done():
                finished.set_result(None)
            return
        now = time.perf_counter_ns()
        if now > deadline:
            fed["timed_out"] = True
            if not finished.done():
                finished.set_result(None)
            return
        starts[i] = now
        protocol.data_received(chunks[i])
        fed["chunks"] = i + 1
        loop.call_soon(feed, i + 1)

    gc.collect()
    warnings_before = warnings.count
    busy = machine_busy()
    cpu = time.process_time()
    wall = time.perf_counter_ns()
    loop.call_soon(feed, 0)
    await finished
    if side != "panoramisk" and not fed["timed_out"]:
        try:
            async with asyncio.timeout(max(1.0, (deadline - time.perf_counter_ns()) / 1e9)):
                await last
                # The consumer handles what is queued without yielding, so the events after the
                # last tracked one are done too; the bus subscriber runs after it.
                if bus is not None and stream.changes:
                    await all_drained.wait()
        except TimeoutError:
            fed["timed_out"] = True
    wall = time.perf_counter_ns() - wall
    cpu = time.process_time() - cpu
    busy = machine_busy() - busy

    # ---- checks and figures -------------------------------------------------------------
    if fed["timed_out"]:
        problems.append(f"{side}: --seconds limit reached after {fed['chunks']} of {len(chunks)} chunks")
    lags: list[int] = []
    if counting is not None:
        if counting.count != stream.messages:
            problems.append(f"{side}: {counting.count} messages dispatched, expected {stream.messages}")
        done = counting.done
        for k, i in enumerate(stream.tracked_index):
            if done[i]:
                lags.append(done[i] - starts[stream.tracked_chunk[k]])
    if timed is not None:
        if timed.count != stream.tracked:
            problems.append(f"{side}: {timed.count} events handled, expected {stream.tracked}")
        for k, t in enumerate(timed.done):
            if t:
                lags.append(t - starts[stream.tracked_chunk[k]])
    if conn is not None and not conn._events.empty():
        problems.append(f"{side}: {conn._events.qsize()} events still queued")
    if state is not None:
        stats = dict(state.stats)
        if stats != stream.stats:
            problems.append(f"{side}: live state stats {stats} differ from the reference {stream.stats}")
        if stats.get("malformed", 0) > stream.malformed_odd:
            problems.append(
                f"{side}: {stats['malformed']} malformed events, odd.ami has {stream.malformed_odd}"
            )
        digest = state_digest(state)
        if digest != stream.digest:
            problems.append(
                f"{side}: final live state differs from the reference: {digest} vs {stream.digest}"
            )
    if bus is not None:
        subscription = subscribed.result()
        if drained["count"] != stream.changes or subscription.dropped:
            problems.append(
                f"{side}: bus delivered {drained['count']} changes ({subscription.dropped} dropped), "
                f"the reference published {stream.changes}"
            )
    if warnings.count != warnings_before:
        problems.append(f"{side}: {warnings.count - warnings_before} warnings logged: {warnings.samples}")
    if any(lag < 0 for lag in lags):
        problems.append(f"{side}: negative lag (clock?)")

    for task in (consumer, drainer):
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
    if conn is not None:
        conn._close()

    lags.sort()
    seconds_taken = wall / 1e9
    return {
        "side": side,
        "events": stream.messages,
        "wall_s": round(seconds_taken, 4),
        "events_per_s": stream.messages / seconds_taken if seconds_taken else float("nan"),
        "cpu_us_per_event": 1e6 * cpu / stream.messages,
        "cpu_pct": round(100 * cpu / seconds_taken, 1) if seconds_taken else float("nan"),
        "machine_busy_pct": round(100 * busy / seconds_taken, 1) if seconds_taken else float("nan"),
        "lag_p50_us": percentile(lags, 50),
        "lag_p99_us": percentile(lags, 99),
        "lag_max_us": lags[-1] / 1000 if lags else float("nan"),
        "lag_samples": len(lags),
        "bus_changes": drained["count"] if bus is not None else None,
        "engine_skipped": dict(engine.skipped) if engine is not None else None,
        "problems": problems,
    }


# ---- running and reporting ---------------------------------------------------------------------
def background_load(seconds: float = 2.0) -> float:
    """How busy the machine is before the run, in % of one core (others' work on a shared box)."""
    before = machine_busy()
    time.sleep(seconds)
    return round(100 * (machine_busy() - before) / seconds, 1)


def machine_facts() -> dict[str, Any]:
    model = cpu_model()
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "panoramisk": version("panoramisk"),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        "background_busy_pct_of_one_core": background_load(),
    }


def med(values: list[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def summarize(rounds: list[dict[str, Any]]) -> dict[str, float]:
    keys = ("events_per_s", "cpu_us_per_event", "lag_p50_us", "lag_p99_us", "lag_max_us", "cpu_pct",
            "machine_busy_pct")  # fmt: skip
    out = {key: med([r[key] for r in rounds]) for key in keys}
    out["events_per_s_min"] = min(r["events_per_s"] for r in rounds)
    out["events_per_s_max"] = max(r["events_per_s"] for r in rounds)
    return out


def render(sides: list[str], medians: dict[str, dict[str, float]], args: argparse.Namespace) -> str:
    base = medians.get("panoramisk")
    lines = [
        f"\nMedians over {args.rounds} rounds (one phase per side per round, whole stream each)",
        f"{'side':<12}{'events/s':>11}{'(min-max)':>19}{'ratio':>7}{'CPU µs/ev':>11}{'rate/CPU':>10}"
        f"{'lag p50 µs':>12}{'lag p99 µs':>12}{'lag max µs':>12}{'machine %':>11}",
    ]
    for side in sides:
        m = medians[side]
        ratio = m["events_per_s"] / base["events_per_s"] if base else float("nan")
        cpu_ratio = base["cpu_us_per_event"] / m["cpu_us_per_event"] if base else float("nan")
        span = f"{m['events_per_s_min']:.0f}-{m['events_per_s_max']:.0f}"
        lines.append(
            f"{side:<12}{m['events_per_s']:>11.0f}{span:>19}{ratio:>7.2f}{m['cpu_us_per_event']:>11.2f}"
            f"{cpu_ratio:>10.2f}{m['lag_p50_us']:>12.0f}{m['lag_p99_us']:>12.0f}{m['lag_max_us']:>12.0f}"
            f"{m['machine_busy_pct']:>11.0f}"
        )
    return "\n".join(lines)


async def profile_ours(stream: Stream, args: argparse.Namespace, warnings: WarningCounter) -> list[str]:
    profiler = cProfile.Profile()
    profiler.enable()
    await phase("ours", stream, args.seconds, warnings)
    profiler.disable()
    profiler.dump_stats(args.profile)
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(25)
    lines = [line for line in out.getvalue().splitlines() if line.strip()]
    print(f"\ncProfile of one 'ours' phase (by own time), written to {args.profile}:")
    print("\n".join(lines[-27:]))
    return lines


async def main_async(args: argparse.Namespace) -> int:
    warnings = WarningCounter()
    for name in ("callcenter", "panoramisk"):
        logging.getLogger(name).addHandler(warnings)
    facts = machine_facts()
    if facts["background_busy_pct_of_one_core"] > 20:
        print(f"warning: the machine is already {facts['background_busy_pct_of_one_core']}% busy (of one "
              "core) before the run; the numbers will be noisy", flush=True)  # fmt: skip
    began = time.perf_counter()
    stream = reference(args.calls, args.chunk[0], args.chunk[1], args.seed)
    facts["stream"] = stream.facts
    print(f"machine: {json.dumps(facts)}", flush=True)
    print(
        f"stream: {stream.facts['bytes'] / 2**20:.1f} MiB, {stream.messages} messages "
        f"({stream.tracked} tracked), {len(stream.chunks)} chunks; reference replay: "
        f"{stream.changes} changes, stats {stream.stats} (built in {time.perf_counter() - began:.1f} s)",
        flush=True,
    )
    if stream.stats.get("malformed", 0) != stream.malformed_odd:
        print(f"FAILED: the reference counts {stream.stats.get('malformed')} malformed events, "
              f"odd.ami has {stream.malformed_odd}")  # fmt: skip
        return 1
    problems: list[str] = []
    for side in args.sides:  # warm-up: imports, caches, code paths; not recorded
        result = await phase(side, stream, args.seconds, warnings)
        problems += result["problems"]
    rounds: dict[str, list[dict[str, Any]]] = {side: [] for side in args.sides}
    for r in range(args.rounds):
        order = args.sides if r % 2 == 0 else args.sides[::-1]
        for side in order:
            result = await phase(side, stream, args.seconds, warnings)
            rounds[side].append(result)
            problems += result["problems"]
            print(
                f"  round {r + 1}/{args.rounds} {side:<11} {result['events_per_s']:>9.0f} events/s  "
                f"CPU {result['cpu_us_per_event']:6.2f} µs/event  lag p50 {result['lag_p50_us']:6.0f} µs "
                f"p99 {result['lag_p99_us']:6.0f} µs  machine {result['machine_busy_pct']:.0f}%",
                flush=True,
            )
    medians = {side: summarize(rounds[side]) for side in args.sides}
    print(render(args.sides, medians, args))
    profile: list[str] = []
    if args.profile is not None:
        profile = await profile_ours(stream, args, warnings)
    facts["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    verdict = ""
    if "ours" in medians and "panoramisk" in medians:
        ratio = medians["ours"]["events_per_s"] / medians["panoramisk"]["events_per_s"]
        per_round = [
            o["events_per_s"] / p["events_per_s"]
            for o, p in zip(rounds["ours"], rounds["panoramisk"], strict=True)
        ]
        # The rate each side would reach on a core of its own: events per CPU second. On a shared
        # machine it moves less than the wall-clock rate, which includes time other work took.
        cpu_ratio = medians["panoramisk"]["cpu_us_per_event"] / medians["ours"]["cpu_us_per_event"]
        met = "MET" if ratio >= args.target else "NOT MET"
        verdict = (
            f"target: ours >= {args.target:.0%} of bare panoramisk's event rate -> {ratio:.2f} "
            f"(per round {min(per_round):.2f}-{max(per_round):.2f}; per CPU second {cpu_ratio:.2f}): {met}"
        )
        if "engine" in medians:
            engine = medians["engine"]["events_per_s"] / medians["panoramisk"]["events_per_s"]
            engine_cpu = medians["panoramisk"]["cpu_us_per_event"] / medians["engine"]["cpu_us_per_event"]
            verdict += f"\n        engine's handler: {engine:.2f} (per CPU second {engine_cpu:.2f})"
        print("\n" + verdict)
    print(f"load average at end: {facts['loadavg_at_end']}")
    for problem in dict.fromkeys(problems):
        print(f"FAILED: {problem}")
    if args.json is not None:
        out = {
            "machine": facts,
            "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "reference": {"stats": stream.stats, "changes": stream.change_kinds,
                          "event_names": dict(stream.names.most_common())},
            "rounds": rounds,
            "medians": medians,
            "verdict": verdict,
            "problems": problems,
            "profile": profile,
        }  # fmt: skip
        args.json.write_text(json.dumps(out, indent=2, ensure_ascii=False) + "\n")
        print(f"wrote {args.json}")
    return 1 if problems else 0


def chunk_range(text: str) -> tuple[int, int]:
    low, sep, high = text.partition("-")
    try:
        values = (int(low), int(high if sep else low))
    except ValueError:
        raise argparse.ArgumentTypeError("MIN-MAX bytes, e.g. 4096-16384") from None
    if not 1 <= values[0] <= values[1] <= 1 << 20:
        raise argparse.ArgumentTypeError("need 1 <= MIN <= MAX <= 1 MiB")
    return values


def side_list(text: str) -> list[str]:
    sides = [s.strip() for s in text.split(",") if s.strip()]
    if not sides or any(s not in SIDES for s in sides):
        raise argparse.ArgumentTypeError(f"a comma-separated list of {', '.join(SIDES)}")
    return sides


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--calls", type=int, default=3000, help="recorded calls replayed (3000)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds, alternating the side order (5)")
    parser.add_argument("--seconds", type=float, default=60.0, help="time limit of one phase (60 s)")
    parser.add_argument("--chunk", type=chunk_range, default=(4096, 16384), help="read sizes (4096-16384)")
    parser.add_argument("--sides", type=side_list, default=list(SIDES), help=",".join(SIDES))
    parser.add_argument("--seed", type=int, default=112, help="seed of the chunk sizes (112)")
    parser.add_argument("--target", type=float, default=0.5, help="target: ours / panoramisk events/s")
    parser.add_argument("--json", type=Path, help="write every round's figures here")
    parser.add_argument("--profile", type=Path, help="also cProfile one extra 'ours' phase into this file")
    args = parser.parse_args()
    if not 1 <= args.calls <= 100_000 or args.rounds < 1 or not 0 < args.seconds <= 600:
        parser.error("need 1 <= --calls <= 100000, --rounds >= 1 and --seconds in (0, 600]")
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
