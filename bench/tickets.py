"""Ticket throughput: the REST API measured side by side with the floor it stands on.

    .venv/bin/python bench/tickets.py [--backend sqlite|postgresql|both] [--tickets N]
        [--concurrency C] [--seconds LIMIT] [--rounds R] [--client process|inprocess]
        [--json PATH] [--pyspy PATH_TO_PY_SPY] [--executor-threads K]

For each back end: a fresh, migrated database (a temporary SQLite file, or a ``cc_bench_<hex>``
database on the local PostgreSQL that is dropped afterwards), the seeded directory, an agent with
an API token, and the real web app served by ``web.AppRunner`` + ``TCPSite`` on 127.0.0.1.

The same tickets are then made, with the same concurrency, in the same process and database,
along several paths, from the top of the stack down:

    api       POST /api/v1/tickets over HTTP (client in another process by default)
    handler   the route handler called directly (no HTTP, auth or body parsing; same DB work + JSON)
    service   TicketService.create inside Database.run: one ticket per transaction (the baseline)
    raw-counter / raw-insert   one UPDATE ... RETURNING + INSERT / one INSERT per Database.run

The api and handler paths create through the engine's TicketWriter (group commit: requests
that arrive while a transaction runs share the next one); the service path makes one
transaction per ticket, which is how creation worked before the writer.

Then each ticket is moved menunggu -> diproses -> selesai by the agent (api, handler and
service paths). Rounds alternate the order of the paths (ABBA) so a slow start or a growing table
does not favour one path. The ratio column is throughput / throughput of the ``service`` path for
the same operation: a ratio compares across machines, the absolute numbers are context.

At the end the database is checked: every ticket distinct, numbered without gaps, in status
``selesai`` with a trail of exactly created/start/resolve. Any error or shortfall exits 1.
Every load loop is bounded by its item count and by ``--seconds`` per phase; network is loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
from aiohttp import web  # noqa: E402
from sqlalchemy import create_engine, func, select, text  # noqa: E402
from sqlalchemy.exc import OperationalError  # noqa: E402

from bench.common import (  # noqa: E402
    background_load,
    cpu_model,
    fresh_database,
    machine_busy,
    no_health,
    postgres_cpu,
)
from callcenter.auth import service as auth  # noqa: E402
from callcenter.dispatch.seed import seed_directory  # noqa: E402
from callcenter.events import EventBus  # noqa: E402
from callcenter.storage.database import Database  # noqa: E402
from callcenter.storage.migrate import upgrade  # noqa: E402
from callcenter.tickets.models import Ticket, TicketEvent, TicketSequence  # noqa: E402
from callcenter.tickets.service import NewTicket, TicketService  # noqa: E402
from callcenter.tickets.sla import DEFAULT_CALENDAR, load_calendar  # noqa: E402
from callcenter.web.api import routes, schemas  # noqa: E402
from callcenter.web.api.framework import ACTOR, BODY  # noqa: E402
from callcenter.web.app import ApiDeps, create_web_app  # noqa: E402

CREATE_PATHS = ("raw-insert", "raw-counter", "service", "handler", "api")
TRANSITION_PATHS = ("service", "handler", "api")
TRAIL = ["created", "start", "resolve"]
PYSPY_RATE = 500


def ticket_fields(i: int) -> dict[str, Any]:
    """One report as a call-taker types it; the same on every path."""
    return {
        "summary": f"Lampu jalan mati di Jl. Sudirman no. {i}",
        "channel": "hotline",
        "category": "PJU",
        "description": "Tiga tiang berturut-turut padam sejak kemarin malam.",
        "reporter_name": "Wati",
        "reporter_number": "081299990000",
        "district": "Kota",
    }


# ---- the load driver (shared by the in-process paths and the HTTP client) ---------------------
async def drive(
    task: Callable[[Any], Awaitable[tuple[Any, list[float]]]],
    items: list[Any],
    concurrency: int,
    seconds: float,
) -> dict[str, Any]:
    """Run ``task`` over ``items`` with ``concurrency`` workers, until done or ``seconds`` pass.
    A task returns (result, [latency of each request it made])."""
    pending: Iterator[Any] = iter(items)
    results: list[Any] = []
    latencies: list[float] = []
    errors: list[str] = []
    start = time.perf_counter()
    deadline = start + seconds

    async def worker() -> None:
        for item in pending:  # one shared iterator: each item is handed out once
            if time.perf_counter() > deadline:
                errors.append("time limit reached")
                return
            try:
                result, times = await task(item)
            except Exception as exc:  # counted and reported; the run goes on
                errors.append(f"{type(exc).__name__}: {str(exc)[:200]}")
                continue
            results.append(result)
            latencies.extend(times)

    cpu = time.process_time()
    async with asyncio.timeout(seconds + 60):  # a stuck request cannot hold the run forever
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return {
        "elapsed": time.perf_counter() - start,
        "cpu": time.process_time() - cpu,
        "results": results,
        "latencies": latencies,
        "errors": errors,
    }


async def http_phase(
    base_url: str, token: str, operation: str, items: list[Any], concurrency: int, seconds: float
) -> dict[str, Any]:
    """The API client: ``concurrency`` keep-alive connections, one request at a time on each."""
    timeout = aiohttp.ClientTimeout(total=min(60.0, seconds))
    connector = aiohttp.TCPConnector(limit=concurrency)
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(base_url, headers=headers, timeout=timeout, connector=connector) as http:

        async def post(path: str, body: dict[str, Any], expect: int) -> tuple[dict[str, Any], float]:
            began = time.perf_counter()
            async with http.post(path, json=body) as response:
                data = await response.json(content_type=None)
            took = time.perf_counter() - began
            if response.status != expect:
                raise RuntimeError(f"POST {path}: HTTP {response.status} {str(data)[:200]}")
            return data, took

        async def create(i: int) -> tuple[Any, list[float]]:
            data, took = await post("/api/v1/tickets", ticket_fields(i), 201)
            if data.get("status") != "menunggu":
                raise RuntimeError(f"created ticket has status {data.get('status')}")
            return data["number"], [took]

        async def work(number: str) -> tuple[Any, list[float]]:
            path = f"/api/v1/tickets/{number}/transitions"
            first, took1 = await post(path, {"to": "diproses"}, 200)
            done, took2 = await post(path, {"to": "selesai"}, 200)
            if (first.get("status"), done.get("status")) != ("diproses", "selesai"):
                raise RuntimeError(f"ticket {number}: statuses {first.get('status')}, {done.get('status')}")
            return number, [took1, took2]

        return await drive(create if operation == "create" else work, items, concurrency, seconds)


def http_phase_in_child(args: tuple[Any, ...]) -> dict[str, Any]:
    """Entry point of the load-generator process."""
    return asyncio.run(http_phase(*args))


# ---- CPU accounting -----------------------------------------------------------------------------


def cpu_snapshot() -> dict[str, float]:
    return {"server": time.process_time(), "machine": machine_busy(), "postgres": postgres_cpu()}


# ---- results --------------------------------------------------------------------------------------
def percentile(ordered: list[float], q: float) -> float:
    if not ordered:
        return float("nan")
    rank = max(1, round(q / 100 * len(ordered) + 0.5 - 1e-9))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass
class Stat:
    operation: str  # create | transition
    path: str
    planned: int = 0
    count: int = 0
    errors: int = 0
    elapsed: float = 0.0
    latencies: list[float] = field(default_factory=list)
    cpu: Counter[str] = field(default_factory=Counter)
    error_samples: list[str] = field(default_factory=list)

    def add(self, planned: int, outcome: dict[str, Any], cpu: dict[str, float]) -> None:
        self.planned += planned
        self.count += len(outcome["results"])
        self.errors += len(outcome["errors"])
        self.elapsed += outcome["elapsed"]
        self.latencies.extend(outcome["latencies"])
        self.cpu.update(cpu)
        self.error_samples.extend(outcome["errors"][: 5 - len(self.error_samples)])

    @property
    def rate(self) -> float:
        return self.count / self.elapsed if self.elapsed else 0.0

    def summary(self, baseline: Stat | None) -> dict[str, Any]:
        ordered = sorted(self.latencies)
        per = 1000 / self.count if self.count else float("nan")
        cpu = dict(self.cpu)
        # whatever else ran on the machine meanwhile (kernel threads, other people's work)
        cpu["other"] = cpu.get("machine", 0) - sum(v for k, v in cpu.items() if k != "machine")
        return {
            "operation": self.operation,
            "path": self.path,
            "planned": self.planned,
            "count": self.count,
            "errors": self.errors,
            "error_samples": self.error_samples,
            "seconds": round(self.elapsed, 3),
            "tickets_per_s": round(self.rate, 1),
            "requests": len(ordered),
            "p50_ms": round(percentile(ordered, 50) * 1000, 2),
            "p95_ms": round(percentile(ordered, 95) * 1000, 2),
            "p99_ms": round(percentile(ordered, 99) * 1000, 2),
            "max_ms": round(ordered[-1] * 1000, 2) if ordered else None,
            "ratio_to_service": round(self.rate / baseline.rate, 3) if baseline and baseline.rate else None,
            # CPU seconds per ticket (ms): this process (server side, all threads), the load
            # generator process, every postgres process, and the whole machine.
            "cpu_ms_per_ticket": {k: round(v * per, 3) for k, v in sorted(cpu.items())},
            "machine_busy_pct": round(100 * self.cpu["machine"] / self.elapsed, 1) if self.elapsed else None,
        }


# ---- one back end -----------------------------------------------------------------------------------


class HandlerRequest(dict[Any, Any]):
    """What a route handler reads from its request once the framework has authenticated the
    caller and parsed the body: the app, the path parameters and the request keys."""

    def __init__(self, app: web.Application, match_info: dict[str, str] | None = None) -> None:
        super().__init__()
        self.app, self.match_info = app, match_info or {}


class Backend:
    """The engine's web app over one fresh database, and the in-process paths beside it."""

    def __init__(self, url: str, args: argparse.Namespace, pool: ProcessPoolExecutor | None) -> None:
        self.url, self.args, self.pool = url, args, pool
        self.db = Database(url)
        self.service = TicketService(load_calendar(DEFAULT_CALENDAR))
        self.app = create_web_app(no_health, ApiDeps(self.db, self.service, EventBus()))
        self.runner = web.AppRunner(self.app, handle_signals=False, access_log=None)
        self.base_url = ""
        self.token = ""
        self.stats: dict[tuple[str, str], Stat] = {}
        self.numbers: dict[str, list[str]] = {p: [] for p in CREATE_PATHS}  # measured tickets
        self.tickets_made = 0  # every ticket made, warm-up included
        self.actor = auth.integration_actor("nobody")  # replaced by the agent in _seed
        self.next_index = 0

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, upgrade, self.url)
        self.db.open()
        await loop.run_in_executor(None, self._seed)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        host, port = self.runner.addresses[0][:2]
        self.base_url = f"http://{host}:{port}"

    def _seed(self) -> None:
        backend = self.db.url.get_backend_name()
        serial = (
            "INTEGER PRIMARY KEY"
            if backend == "sqlite"
            else "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY"
        )
        with self.db.transaction() as s, s.begin():
            seed_directory(s)
            user = auth.create_user(s, "bench-agent", secrets.token_urlsafe(16), "agent")
            self.token = auth.create_token(s, user, "bench")
            self.actor = auth.actor_of(user)
            s.execute(text(f"CREATE TABLE bench_floor (id {serial}, n INTEGER NOT NULL, note VARCHAR(300))"))
            s.execute(text("CREATE TABLE bench_counter (id INTEGER PRIMARY KEY, last INTEGER NOT NULL)"))
            s.execute(text("INSERT INTO bench_counter (id, last) VALUES (1, 0)"))

    async def stop(self) -> None:
        await self.runner.cleanup()
        await asyncio.get_running_loop().run_in_executor(None, self.db.close)

    # ---- the paths below the API -----------------------------------------------------------------
    def _timed(
        self, call: Callable[[Any], Awaitable[Any]]
    ) -> Callable[[Any], Awaitable[tuple[Any, list[float]]]]:
        async def task(item: Any) -> tuple[Any, list[float]]:
            began = time.perf_counter()
            result = await call(item)
            return result, [time.perf_counter() - began]

        return task

    async def _raw_insert(self, i: int) -> int:
        def work(s: Any) -> int:
            s.execute(text("INSERT INTO bench_floor (n, note) VALUES (:n, :note)"), {"n": i, "note": "floor"})
            return i

        return await self.db.run(work)

    async def _raw_counter(self, i: int) -> int:
        def work(s: Any) -> int:
            last = s.execute(text("UPDATE bench_counter SET last = last + 1 WHERE id = 1 RETURNING last"))
            n = int(last.scalar_one())
            s.execute(
                text("INSERT INTO bench_floor (n, note) VALUES (:n, :note)"), {"n": n, "note": "counter"}
            )
            return n

        return await self.db.run(work)

    async def _service_create(self, i: int) -> str:
        new = NewTicket(**ticket_fields(i))
        return await self.db.run(lambda s: self.service.create(s, new, self.actor)[0].number)

    async def _handler_create(self, i: int) -> str:
        request: Any = HandlerRequest(self.app)
        request[ACTOR] = self.actor
        request[BODY] = schemas.TicketCreate.model_validate(ticket_fields(i))
        response = await routes.create_ticket(request)
        assert response.status == 201 and isinstance(response.body, bytes), response.status
        return str(json.loads(response.body)["number"])

    async def _service_transitions(self, number: str) -> tuple[str, list[float]]:
        times = []
        for target in ("diproses", "selesai"):

            def move(session: Any, target: str = target) -> None:
                self.service.transition(session, number, target, self.actor)

            began = time.perf_counter()
            await self.db.run(move)
            times.append(time.perf_counter() - began)
        return number, times

    async def _handler_transitions(self, number: str) -> tuple[str, list[float]]:
        times = []
        for target in ("diproses", "selesai"):
            began = time.perf_counter()
            request: Any = HandlerRequest(self.app, {"number": number})
            request[ACTOR] = self.actor
            request[BODY] = schemas.Transition(to=target)
            response = await routes.transition_ticket(request)
            assert response.status == 200 and isinstance(response.body, bytes), response.status
            assert json.loads(response.body)["status"] == target
            times.append(time.perf_counter() - began)
        return number, times

    # ---- phases ------------------------------------------------------------------------------------
    async def phase(self, operation: str, path: str, items: list[Any], record: bool) -> dict[str, Any]:
        c, limit = self.args.concurrency, self.args.seconds
        before = cpu_snapshot()
        if path == "api":
            job = (self.base_url, self.token, operation, items, c, limit)
            if self.pool is not None:
                outcome = await asyncio.get_running_loop().run_in_executor(
                    self.pool, http_phase_in_child, job
                )
            else:
                outcome = await http_phase(*job)
        else:
            creators = {
                "raw-insert": self._raw_insert,
                "raw-counter": self._raw_counter,
                "service": self._service_create,
                "handler": self._handler_create,
            }
            movers = {"service": self._service_transitions, "handler": self._handler_transitions}
            task = self._timed(creators[path]) if operation == "create" else movers[path]
            outcome = await drive(task, items, c, limit)
        after = cpu_snapshot()
        cpu = {k: after[k] - before[k] for k in before}
        if path == "api" and self.pool is not None:
            cpu["client"] = outcome["cpu"]
        if record:
            stat = self.stats.setdefault((operation, path), Stat(operation, path))
            stat.add(len(items), outcome, cpu)
        elif outcome["errors"]:
            raise RuntimeError(f"warm-up {operation} via {path} failed: {outcome['errors'][:3]}")
        return outcome

    async def round(self, size: int, order: tuple[str, ...], record: bool) -> None:
        made: dict[str, list[str]] = {}
        for path in order:
            items = list(range(self.next_index, self.next_index + size))
            self.next_index += size
            outcome = await self.phase("create", path, items, record)
            if path in TRANSITION_PATHS:
                made[path] = [str(n) for n in outcome["results"]]
                self.numbers[path].extend(made[path])
                self.tickets_made += len(made[path])
        for path in [p for p in order if p in TRANSITION_PATHS]:
            await self.phase("transition", path, made[path], record)

    # ---- correctness ------------------------------------------------------------------------------
    def verify(self, expected: dict[str, int]) -> list[str]:
        problems = []
        for path, want in expected.items():
            got = self.numbers[path]
            if len(got) != want or len(set(got)) != want:
                problems.append(f"{path}: {len(got)} tickets ({len(set(got))} distinct), expected {want}")
        with self.db.transaction() as s, s.begin():
            total = s.scalar(select(func.count()).select_from(Ticket)) or 0
            distinct = s.scalar(select(func.count(func.distinct(Ticket.number)))) or 0
            last = s.scalar(select(func.max(TicketSequence.last))) or 0
            max_seq = s.scalar(select(func.max(Ticket.seq))) or 0
            not_done = (
                s.scalar(select(func.count()).select_from(Ticket).where(Ticket.status != "selesai")) or 0
            )
            trails: dict[int, list[str]] = {}
            for ticket_id, kind in s.execute(
                select(TicketEvent.ticket_id, TicketEvent.kind).order_by(
                    TicketEvent.ticket_id, TicketEvent.id
                )
            ):
                trails.setdefault(ticket_id, []).append(kind)
            in_db = set(s.scalars(select(Ticket.number)))
        if total != self.tickets_made:
            problems.append(f"{total} tickets in the database, {self.tickets_made} created through the paths")
        if distinct != total:
            problems.append(f"{total} tickets but {distinct} distinct numbers")
        if not (last == max_seq == total):
            problems.append(f"numbering has gaps: sequence at {last}, highest seq {max_seq}, {total} tickets")
        if not_done:
            problems.append(f"{not_done} tickets are not 'selesai'")
        wrong = [t for t, kinds in trails.items() if kinds != TRAIL]
        if wrong or len(trails) != total:
            problems.append(
                f"{len(wrong)} trails differ from {TRAIL}; {len(trails)} trails for {total} tickets"
            )
        missing = [n for p in TRANSITION_PATHS for n in self.numbers[p] if n not in in_db]
        if missing:
            problems.append(f"{len(missing)} returned numbers are not in the database, e.g. {missing[:3]}")
        return problems


def database_facts(url: str) -> dict[str, Any]:
    if url.startswith("sqlite"):
        return {"sqlite": sqlite3.sqlite_version, "journal_mode": "wal", "synchronous": "default (FULL)"}
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            names = ("server_version", "synchronous_commit", "fsync", "shared_buffers", "max_connections")
            show = {k: conn.execute(text(f"SHOW {k}")).scalar() for k in names}
    finally:
        engine.dispose()
    return {"postgresql": show}


def machine_facts(args: argparse.Namespace) -> dict[str, Any]:
    model = cpu_model()
    with open("/proc/meminfo") as f:
        mem_kb = int(f.readline().split()[1])
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": model,
        "memory_gib": round(mem_kb / 2**20, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "versions": {p: version(p) for p in ("SQLAlchemy", "psycopg", "aiohttp", "pydantic", "callcenter")},
        "default_executor_threads": min(32, (os.cpu_count() or 1) + 4),
        "client": args.client,
        "tickets": args.tickets,
        "concurrency": args.concurrency,
        "rounds": args.rounds,
    }


# ---- profiling (optional) -----------------------------------------------------------------------------
@contextmanager
def pyspy(binary: str | None, out: Path | None) -> Iterator[None]:
    """Sample this process (all threads, including idle ones) with py-spy while the block runs."""
    if not binary or out is None:
        yield
        return
    proc = subprocess.Popen(
        [binary, "record", "--pid", str(os.getpid()), "--format", "raw", "--threads", "--gil",
         "--rate", str(PYSPY_RATE), "--output", str(out), "--nonblocking"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    time.sleep(1.0)  # let it attach
    try:
        yield
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


# Functions whose inclusive share of the GIL-holding samples is reported (substring of the frame).
PROFILE_MARKERS = (
    ("executor: Database.run (one transaction)", "Database.run.<locals>.unit"),
    ("  pool checkout incl. pre-ping", "_ConnectionFairy._checkout"),
    ("    pre-ping", "do_ping"),
    ("  TicketService.create", "TicketService.create "),
    ("    next_number (sequence row)", "next_number"),
    ("    _category lookup", "TicketService._category"),
    ("  TicketService.transition", "TicketService.transition"),
    ("  TicketService.get", "TicketService.get "),
    ("  Directory (2 SELECTs per request)", "Directory.__init__"),
    ("  suggested_agency", "TicketService.suggested_agency"),
    ("  ticket_json", "ticket_json"),
    ("  Session flush", "Session._flush"),
    ("  commit", "SessionTransaction.commit"),
    ("  Session.close", "Session.close"),
    ("event loop: aiohttp request handling", "RequestHandler._handle_request"),
    ("  body JSON + pydantic", "parse_body"),
    ("  json_ok (response JSON)", "json_ok"),
    ("  security_headers", "security_headers"),
    ("event loop: asyncio machinery", "BaseEventLoop._run_once"),
)
COMPONENTS = ("psycopg", "sqlalchemy", "aiohttp", "pydantic", "callcenter", "json/", "asyncio/",
              "concurrent/", "threading", "multidict", "yarl")  # fmt: skip


def summarize_profile(path: Path, rate: int, seconds: float) -> list[str]:
    """What the thread holding the GIL was doing (py-spy --gil samples of this process)."""
    total = 0
    by_thread, inclusive, leaf = Counter[str](), Counter[str](), Counter[str]()
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        total += count
        thread = frames[0].split(": ", 1)[-1]
        by_thread["executor threads" if thread.startswith("asyncio_") else thread] += count
        for label, marker in PROFILE_MARKERS:
            if any(marker in f for f in frames[1:]):
                inclusive[label] += count
        last = frames[-1]
        leaf[next((c.rstrip("/") for c in COMPONENTS if "(" + c in last), "other")] += count
    if not total:
        return ["no samples"]

    def pct(n: int) -> str:
        return f"{100 * n / total:5.1f}%"

    lines = [
        f"{total} GIL-holding samples at {rate} Hz over {seconds:.1f} s: the GIL was seen held in "
        f"{100 * total / (rate * seconds):.0f}% of the sampling slots (a lower bound: py-spy misses "
        "slots when the CPU is saturated)",
        "by thread: " + ", ".join(f"{t} {pct(n).strip()}" for t, n in by_thread.most_common()),
        "self time by component: " + ", ".join(f"{c} {pct(n).strip()}" for c, n in leaf.most_common()),
        "inclusive:",
    ]
    lines += [f"  {pct(inclusive[label])}  {label}" for label, _ in PROFILE_MARKERS]
    return lines


# ---- main --------------------------------------------------------------------------------------------
async def run_backend(
    backend: str, args: argparse.Namespace, pool: ProcessPoolExecutor | None
) -> dict[str, Any]:
    with fresh_database(backend) as url:
        bench = Backend(url, args, pool)
        await bench.start()
        try:
            facts = database_facts(url)
            facts["background_busy_pct_of_one_core"] = background_load()
            if facts["background_busy_pct_of_one_core"] > 20:
                print(
                    f"warning: the machine is already {facts['background_busy_pct_of_one_core']}% busy "
                    "(of one core) before the run; the numbers will be noisy",
                    flush=True,
                )
            assert bench.db.engine is not None
            facts["pool"] = bench.db.engine.pool.status()
            warm = min(args.tickets, 2 * args.concurrency)
            await bench.round(warm, CREATE_PATHS, record=False)
            for path in TRANSITION_PATHS:
                bench.numbers[path].clear()  # the warm-up tickets are checked in the database only
            size = args.tickets // args.rounds
            for r in range(args.rounds):
                order = CREATE_PATHS if r % 2 == 0 else tuple(reversed(CREATE_PATHS))
                await bench.round(size, order, record=True)
            profile: list[str] = []
            if args.pyspy:
                out = Path(tempfile.gettempdir()) / f"cc_bench_{backend}_{os.getpid()}.txt"
                with pyspy(args.pyspy, out):
                    began = time.perf_counter()
                    await bench.round(size, ("api",), record=False)
                    took = time.perf_counter() - began
                profile = (
                    summarize_profile(out, PYSPY_RATE, took) if out.exists() else ["py-spy wrote nothing"]
                )
                profile.insert(0, f"folded stacks: {out}")
            expected = {p: size * args.rounds for p in TRANSITION_PATHS}
            if args.pyspy:
                expected["api"] += size
            problems = bench.verify({p: n for p, n in expected.items()})
        finally:
            await bench.stop()
    rows = []
    for operation in ("create", "transition"):
        baseline = bench.stats.get((operation, "service"))
        for path in CREATE_PATHS:
            stat = bench.stats.get((operation, path))
            if stat is not None:
                rows.append(stat.summary(baseline))
    errors = sum(r["errors"] for r in rows) + sum(r["planned"] - r["count"] for r in rows)
    if errors:
        problems.append(f"{errors} failed or missing operations")
    return {"backend": backend, "database": facts, "rows": rows, "problems": problems, "profile": profile}


def render(result: dict[str, Any]) -> str:
    out = [f"### {result['backend']}  ({json.dumps(result['database'])})", ""]
    out.append(
        "| operation | path | count | errors | tickets/s | p50 ms | p95 ms | p99 ms | ratio to service "
        "| CPU ms/ticket server / client / postgres / other | machine busy |"
    )
    out.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|")
    for r in result["rows"]:
        cpu = r["cpu_ms_per_ticket"]
        ratio = f"{r['ratio_to_service']:.2f}" if r["ratio_to_service"] is not None else "-"
        cpu_text = " / ".join(f"{cpu.get(k, 0):.2f}" for k in ("server", "client", "postgres", "other"))
        out.append(
            f"| {r['operation']} | {r['path']} | {r['count']} | {r['errors']} | {r['tickets_per_s']:.0f} "
            f"| {r['p50_ms']:.1f} | {r['p95_ms']:.1f} | {r['p99_ms']:.1f} | {ratio} | {cpu_text} "
            f"| {r['machine_busy_pct']:.0f}% |"
        )
    rows = {(r["operation"], r["path"]): r for r in result["rows"]}
    for op in ("create", "transition"):
        api, handler = rows.get((op, "api")), rows.get((op, "handler"))
        if api and handler and handler["tickets_per_s"]:
            out.append(f"\n{op}: API / handler = {api['tickets_per_s'] / handler['tickets_per_s']:.2f}"
                       f", API / service = {api['ratio_to_service']:.2f}")  # fmt: skip
    if result["profile"]:
        out.append("\npy-spy, API create+transition round (server process):")
        out += ["    " + line for line in result["profile"]]
    for problem in result["problems"]:
        out.append(f"\nFAILED: {problem}")
    return "\n".join(out)


async def main_async(args: argparse.Namespace) -> int:
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    facts = machine_facts(args)
    if args.executor_threads:
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(args.executor_threads))
        facts["default_executor_threads"] = args.executor_threads
    print("machine:", json.dumps(facts), flush=True)
    pool = None
    if args.client == "process":
        pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
    results = []
    try:
        if pool is not None:  # start the load generator now, not inside the first timed phase
            await asyncio.get_running_loop().run_in_executor(pool, int, "0")
        for backend in backends:
            try:
                result = await run_backend(backend, args, pool)
            except OperationalError as exc:
                reason = str(exc.orig or exc).splitlines()[0]
                print(f"{backend}: database not reachable ({reason}); see docs/PERFORMANCE.md", flush=True)
                return 2
            results.append(result)
            print(render(result), "\n", flush=True)
    finally:
        if pool is not None:
            pool.shutdown()
    if args.json:
        report = json.dumps({"machine": facts, "results": results}, indent=2)
        await asyncio.get_running_loop().run_in_executor(None, Path(args.json).write_text, report)
    failed = [p for r in results for p in r["problems"]]
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--tickets", type=int, default=3000, help="tickets per path (default 3000)")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=120.0, help="time limit of each phase")
    parser.add_argument("--rounds", type=int, default=4, help="ABBA rounds the tickets are split into")
    parser.add_argument(
        "--client",
        choices=("process", "inprocess"),
        default="process",
        help="HTTP load generator in its own process (default) or on the server's loop",
    )
    parser.add_argument(
        "--executor-threads",
        type=int,
        default=0,
        help="experiment: size of the loop's default executor (default: Python's own)",
    )
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument(
        "--pyspy",
        nargs="?",
        const=shutil.which("py-spy") or "py-spy",
        help="after the measured rounds, profile one more API round with py-spy",
    )
    args = parser.parse_args()
    if args.tickets < args.rounds or args.concurrency < 1 or args.rounds < 1 or args.seconds <= 0:
        parser.error("need --tickets >= --rounds >= 1, --concurrency >= 1 and --seconds > 0")
    if args.pyspy and not Path(args.pyspy).exists() and not shutil.which(args.pyspy):
        parser.error(f"py-spy not found: {args.pyspy}")
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
