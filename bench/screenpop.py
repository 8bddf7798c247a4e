"""Screen-pop latency: from the AMI event in to the agent console's WebSocket message out.

    .venv/bin/python bench/screenpop.py [--backend sqlite|postgresql|both] [--consoles 50]
        [--pops 2000] [--rate 50] [--rounds 2] [--sides ami,bus,baseline] [--supervisors 0]
        [--queue-wait 0.005] [--ring-seconds 0.1] [--seconds LIMIT] [--json PATH]
        [--pyspy PATH_TO_PY_SPY]

For each back end: a fresh, migrated database (a temporary SQLite file, or a ``cc_bench_<hex>``
database on the local PostgreSQL, dropped ``WITH (FORCE)`` afterwards) holding the seeded
directory, ``--consoles`` agents (station ``agent1`` ... ``agentN``, skills q112 + hotline, an API
token each), a call record for every call to come (what the IVR collected) with a ticket already
made by the IVR for one call in four, and a caller history (earlier calls and tickets) for the
caller numbers. The engine's web app is built as ``callcenter/app.py`` builds it
(``create_web_app(health, ApiDeps(..., live=LiveDeps(state, stations, hub)))``, a ``LiveHub``
task subscribed to the ``EventBus``, a ``LiveMonitor`` on the same ``LiveState`` and bus) and
served by ``web.AppRunner`` + ``TCPSite`` on 127.0.0.1. AMI is a stand-in (no action is sent).

A client process (``multiprocessing`` spawn, its own event loop) opens one console WebSocket per
agent, ``GET /api/v1/live/socket`` with the agent's Bearer token, so 50 consoles are connected
during every phase, and the client's CPU is not in the server's GIL. Then the server makes
``--pops`` calls ring, Poisson arrivals at ``--rate`` per second, each at a random station, along
one of these sides (the same schedule for every side of a round):

    ami       the AMI path: for each call the server feeds panoramisk ``Message``s in the layout
              Asterisk 22.10 sends (taken from tests/ami/traces/queue_answered.ami) to
              ``LiveMonitor.handle``: Newchannel + QueueCallerJoin + the agent's Newchannel
              ``--queue-wait`` before (5 ms: a free agent rings at once), then (timed)
              ``AgentCalled``; LiveState emits ``AgentRinging``, the hub composes the screen-pop in
              a read transaction (``Database.run`` + calls/screenpop.py) and sends it to the
              console. ``--ring-seconds`` later both channels hang up, so the consoles also get
              ``agent_state`` and ``ring_ended`` messages, as in production. The messages are
              built before the phase. This is the measured product.
    bus       the same from ``EventBus.publish(AgentRinging(...))``: LiveState and parsing left out.
    baseline  a bare aiohttp WebSocket fan-out on the same app server and port: a minimal handler
              (``GET /bench/fanout?station=agentN``: a per-socket queue and one writer, no auth)
              sends a pre-built JSON string, the very screen-pop the product makes for that call,
              built before the phase, to the sockets at the station.

Latency is the time from just before ``monitor.handle`` (``ami``), ``bus.publish`` (``bus``) or
the fan-out (``baseline``) until the client has received that call's message, before it parses
it. Both stamps are ``time.monotonic_ns()``: on Linux that is ``CLOCK_MONOTONIC``, one clock for
the whole machine, so stamps from the two processes compare directly (no echo needed, no
clock offset; both processes run on the same 2 cores). The server gives the client the schedule
before the phase; every console checks that it receives exactly the pops of its station, in
order, with the right caller number and ticket. Any lost, extra or wrong pop, any failed
connection or any phase that hits ``--seconds`` prints FAILED and exits 1.

Rounds alternate the order of the sides (ABC, CBA, ...). Reported per side: pops, achieved rate,
latency p50 / p95 / p99 / max, CPU ms per pop of the server process (all threads), of the client
process and of PostgreSQL, the machine's total busy %, and the ratio of each latency to the
baseline's. Target (issue 5): the ``ami`` side's p99 under 50 ms with 50 consoles on 2 cores.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import math
import multiprocessing
import os
import platform
import random
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
from aiohttp import WSMsgType, web  # noqa: E402
from panoramisk.message import Message  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.exc import OperationalError  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from bench.common import (  # noqa: E402
    background_load,
    cpu_model,
    fresh_database,
    machine_busy,
    no_health,
    postgres_cpu,
)
from callcenter.auth import service as auth  # noqa: E402
from callcenter.calls.live import AgentRinging, LiveState  # noqa: E402
from callcenter.calls.monitor import LiveMonitor  # noqa: E402
from callcenter.calls.records import CallRecord  # noqa: E402
from callcenter.calls.screenpop import screen_pop  # noqa: E402
from callcenter.calls.stations import AgentStations  # noqa: E402
from callcenter.dispatch.seed import seed_directory  # noqa: E402
from callcenter.events import EventBus  # noqa: E402
from callcenter.storage.database import Database  # noqa: E402
from callcenter.storage.migrate import upgrade  # noqa: E402
from callcenter.tickets.service import CallKey, NewTicket, TicketService  # noqa: E402
from callcenter.tickets.sla import DEFAULT_CALENDAR, load_calendar  # noqa: E402
from callcenter.web.api.agents import LiveDeps  # noqa: E402
from callcenter.web.app import ApiDeps, create_web_app  # noqa: E402
from callcenter.web.live import HEARTBEAT_SECONDS, LiveHub  # noqa: E402

SIDES = ("ami", "bus", "baseline")
SYSTEM = "pbx"
QUEUE = "q112"
BASELINE_PATH = "/bench/fanout"
SOCKET_PATH = "/api/v1/live/socket"
PYSPY_RATE = 250
START = 0.5  # seconds from the start of a phase to the first call (plus its Poisson gap)
GRACE = 15.0  # how long the client waits for the last pops after the server published them
CHOICES = ("fire", "medical", "police")
DISTRICTS = ("Kota", "Utara", "Selatan", "Timur", "Barat")

# Asterisk 22.10's layout of these events (tests/ami/traces/queue_answered.ami), with fields.
CHANNEL_FIELDS = """Channel: PJSIP/{peer}-{seq:08x}
ChannelState: {state}
ChannelStateDesc: {state_desc}
CallerIDNum: {number}
CallerIDName: <unknown>
ConnectedLineNum: {connected}
ConnectedLineName: <unknown>
Language: id
AccountCode: {account}
Context: {context}
Exten: {exten}
Priority: {priority}
Uniqueid: {uniqueid}
Linkedid: {linkedid}
ChanVariable: CC_SERVICE={service}
ChanVariable: CC_CHOICE={choice}
ChanVariable: CC_QUEUE={queue}
ChanVariable: CC_RECORDING={recording}"""
HEAD = "Event: {event}\nPrivilege: {privilege}\nTimestamp: {timestamp:.6f}\nSystemName: {system}\n"


def _message(text_block: str) -> Message:
    """A panoramisk Message exactly as its protocol builds it from the wire."""
    message = Message.from_line(text_block.replace("\n", "\r\n"))
    assert message is not None
    return message


# ---- the calls ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Call:
    index: int
    at: float  # seconds after the start of the phase
    station: int  # 1..consoles
    number: str
    choice: str
    has_ticket: bool

    @property
    def seq(self) -> int:
        return 2 * self.index

    @property
    def linkedid(self) -> str:
        return f"{SYSTEM}-{1795500000 + self.index // 10}.{self.seq}"

    @property
    def agent_uniqueid(self) -> str:
        return f"{SYSTEM}-{1795500000 + self.index // 10}.{self.seq + 1}"

    @property
    def interface(self) -> str:
        return f"PJSIP/agent{self.station}"

    def variables(self) -> dict[str, str]:
        return {"CC_SERVICE": "112", "CC_CHOICE": self.choice, "CC_QUEUE": QUEUE,
                "CC_RECORDING": f"/var/spool/callcenter/rec_{self.linkedid}"}  # fmt: skip

    def caller_channel(self, *, up: bool, queue_vars: bool) -> str:
        return CHANNEL_FIELDS.format(
            peer="trunk", account="", seq=self.seq, state=6 if up else 4, state_desc="Up" if up else "Ring",
            number=self.number, connected="<unknown>", context="cc-queues" if up else "from-trunk",
            exten=QUEUE if up else "112", priority=2 if up else 1, uniqueid=self.linkedid,
            linkedid=self.linkedid, service="112" if queue_vars else "",
            choice=self.choice if queue_vars else "", queue=QUEUE if queue_vars else "",
            recording=self.variables()["CC_RECORDING"] if queue_vars else "",
        )  # fmt: skip

    def agent_channel(self) -> str:
        return CHANNEL_FIELDS.format(
            peer=f"agent{self.station}", account="", seq=self.seq + 1, state=0, state_desc="Down",
            number="112", connected=self.number, context="agent-stations", exten=QUEUE, priority=1,
            uniqueid=self.agent_uniqueid, linkedid=self.linkedid, service="", choice="", queue="",
            recording="",
        )  # fmt: skip

    def head(self, event: str, privilege: str = "call,all") -> str:
        return HEAD.format(event=event, privilege=privilege, timestamp=1795500000 + self.at, system=SYSTEM)

    def setup_messages(self) -> list[Message]:
        """What Asterisk says before the queue rings an agent: the caller's channel, its entry in
        the queue (with what the IVR set), the agent's channel being created."""
        newchannel = self.head("Newchannel") + self.caller_channel(up=False, queue_vars=False)
        join = (
            self.head("QueueCallerJoin", "agent,all") + self.caller_channel(up=True, queue_vars=True)
            + f"\nQueue: {QUEUE}\nPosition: 1\nCount: 1"
        )  # fmt: skip
        agent = self.head("Newchannel") + self.agent_channel()
        return [_message(newchannel), _message(join), _message(agent)]

    def called_message(self) -> Message:
        dest = "\n".join("Dest" + line for line in self.agent_channel().splitlines())
        block = (
            self.head("AgentCalled", "agent,all") + self.caller_channel(up=True, queue_vars=True) + "\n"
            + dest + f"\nQueue: {QUEUE}\nInterface: {self.interface}\nMemberName: agent{self.station}"
        )  # fmt: skip
        return _message(block)

    def hangup_messages(self) -> list[Message]:
        tail = "\nCause: 16\nCause-txt: Normal Clearing"
        agent = self.head("Hangup") + self.agent_channel() + tail
        caller = self.head("Hangup") + self.caller_channel(up=True, queue_vars=True) + tail
        return [_message(agent), _message(caller)]

    def ringing(self) -> AgentRinging:
        return AgentRinging(
            system_name=SYSTEM, interface=self.interface, member_name=f"agent{self.station}", queue=QUEUE,
            uniqueid=self.linkedid, linkedid=self.linkedid, caller_number=self.number, caller_name="",
            wait=0.0, variables=self.variables(),
        )  # fmt: skip


def member_added(station: int) -> Message:
    block = (
        HEAD.format(event="QueueMemberAdded", privilege="agent,all", timestamp=1795499999.0, system=SYSTEM)
        + f"Queue: {QUEUE}\nMemberName: agent{station}\nInterface: PJSIP/agent{station}\n"
        f"StateInterface: PJSIP/agent{station}\nMembership: dynamic\nPenalty: 0\nCallsTaken: 0\n"
        "LastCall: 0\nLastPause: 0\nLoginTime: 1795499999\nInCall: 0\nStatus: 1\nPaused: 0\n"
        "PausedReason: \nRinginuse: 0\nWrapuptime: 0"
    )
    return _message(block)


def schedules(args: argparse.Namespace) -> list[list[Call]]:
    """One schedule per round (the same for every side of that round), Poisson arrivals."""
    rng = random.Random(args.seed)  # noqa: S311 - a load pattern, not crypto
    numbers = [f"0812{rng.randrange(10**8):08d}" for _ in range(args.numbers)]
    per_round = args.pops // args.rounds
    out, index = [], 0
    for _ in range(args.rounds):
        at, calls = START, []
        for _ in range(per_round):
            at += rng.expovariate(args.rate)
            calls.append(
                Call(index, at, rng.randint(1, args.consoles), rng.choice(numbers), rng.choice(CHOICES),
                     index % 4 == 0)
            )  # fmt: skip
            index += 1
        out.append(calls)
    return out


# ---- the client process ------------------------------------------------------------------------
def client_main(conn: Connection) -> None:
    """Entry point of the console process: serves one phase per request until told to stop."""
    while True:
        request = conn.recv()
        if request is None:
            return
        conn.send(asyncio.run(client_phase(conn, request)))


async def client_phase(conn: Connection, job: dict[str, Any]) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    cpu = time.process_time()
    consoles: list[dict[str, Any]] = job["consoles"]
    expected: dict[int, list[list[Any]]] = {c["station"]: [] for c in consoles if c["station"]}
    for item in job["calls"]:  # [index, station, linkedid, number, has_ticket]
        expected[item[1]].append(item)
    received: dict[int, int] = {}
    errors: list[str] = []
    others: Counter[str] = Counter()
    sizes: list[int] = []
    remaining = {"stations": sum(1 for items in expected.values() if items)}
    all_done = asyncio.Event()
    if remaining["stations"] == 0:
        all_done.set()

    async def watch(ws: aiohttp.ClientWebSocketResponse, station: int) -> None:
        queue = expected.get(station, [])
        position = 0
        async for msg in ws:
            now = time.monotonic_ns()
            if msg.type != WSMsgType.TEXT:
                others[f"frame {msg.type.name}"] += 1
                continue
            data = json.loads(msg.data)
            kind = data.get("type")
            if kind != "screen_pop":
                others[str(kind)] += 1
                continue
            if not station:
                errors.append("a supervisor's console got a screen-pop")
                continue
            sizes.append(len(msg.data))
            call = data.get("call") or {}
            linkedid = call.get("linkedid")
            found = next((i for i in range(position, len(queue)) if queue[i][2] == linkedid), None)
            if found is None:
                errors.append(f"agent{station}: unexpected pop for {linkedid}")
                continue
            if found > position:
                errors.append(
                    f"agent{station}: {found - position} pops lost or out of order before {linkedid}"
                )
            index, _, _, number, has_ticket = queue[found]
            if call.get("caller_number") != number or data.get("stage") != "ringing":
                errors.append(f"agent{station}: wrong pop for {linkedid}: {str(data)[:200]}")
            elif (data.get("ticket") is not None) != has_ticket:
                errors.append(f"agent{station}: pop for {linkedid} has ticket {data.get('ticket')}")
            else:
                received[index] = now
            position = found + 1
            if position == len(queue):
                remaining["stations"] -= 1
                if remaining["stations"] == 0:
                    all_done.set()

    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30)
    async with aiohttp.ClientSession(timeout=timeout) as http:

        async def connect(console: dict[str, Any]) -> aiohttp.ClientWebSocketResponse:
            ws = await http.ws_connect(console["url"], headers=console["headers"], autoping=True)
            hello = await ws.receive(timeout=30)
            if hello.type != WSMsgType.TEXT or json.loads(hello.data).get("type") != "hello":
                raise RuntimeError(
                    f"{console['url']}: no hello but {hello.type.name} {str(hello.data)[:100]}"
                )
            return ws

        try:
            sockets = await asyncio.gather(*(connect(c) for c in consoles))
        except Exception as exc:
            conn.send({"ready": False, "error": f"{type(exc).__name__}: {exc}"})
            return {"errors": [f"connect: {type(exc).__name__}: {exc}"], "received": {}}
        watchers = [
            asyncio.create_task(watch(ws, c["station"])) for ws, c in zip(sockets, consoles, strict=True)
        ]
        cpu_ready = time.process_time()
        conn.send({"ready": True})
        # The server publishes now; it says when it is done (the last call's time) so that we
        # stop waiting GRACE seconds after that at the latest.
        published = await loop.run_in_executor(None, conn.recv)
        try:
            async with asyncio.timeout(max(0.0, published["until"] - time.monotonic()) + GRACE):
                await all_done.wait()
        except TimeoutError:
            pass
        cpu_phase = time.process_time() - cpu_ready
        for task in watchers:
            task.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    missing = [item[0] for items in expected.values() for item in items if item[0] not in received]
    if missing:
        errors.append(f"{len(missing)} pops never arrived, e.g. calls {missing[:5]}")
    return {
        "received": received,
        "errors": errors,
        "others": dict(others),
        "pop_bytes_mean": statistics.fmean(sizes) if sizes else 0.0,
        "cpu": cpu_phase,
        "cpu_total": time.process_time() - cpu,
    }


# ---- the server ------------------------------------------------------------------------------------
class NoAmi:
    """The AMI port of AgentStations: nobody logs in during the bench, so nothing is sent."""

    system_name = SYSTEM

    async def send_action(self, action: Any, timeout: float = 10.0) -> Any:
        return Message({"Response": "Success", "Message": "bench"})


class Fanout:
    """The baseline: the least an aiohttp app does to fan a message out to the sockets of a station."""

    def __init__(self) -> None:
        self.outboxes: dict[str, list[asyncio.Queue[str | None]]] = {}
        self.sent = 0

    def count(self) -> int:
        return sum(len(v) for v in self.outboxes.values())

    def send(self, station: str, text_: str) -> None:
        for outbox in self.outboxes.get(station, ()):
            outbox.put_nowait(text_)

    async def handler(self, request: web.Request) -> web.StreamResponse:
        station = request.query.get("station", "")
        ws = web.WebSocketResponse(heartbeat=HEARTBEAT_SECONDS)
        await ws.prepare(request)
        outbox: asyncio.Queue[str | None] = asyncio.Queue()
        self.outboxes.setdefault(station, []).append(outbox)

        async def read() -> None:
            async for _ in ws:
                pass
            outbox.put_nowait(None)

        reader = asyncio.create_task(read())
        try:
            await ws.send_str(json.dumps({"type": "hello", "station": station}))
            while (item := await outbox.get()) is not None:
                await ws.send_str(item)
                self.sent += 1
        except (ConnectionResetError, RuntimeError):
            pass
        finally:
            self.outboxes[station].remove(outbox)
            reader.cancel()
            await ws.close()
        return ws


class Server:
    """The engine's web app and live parts over one fresh database, and the baseline beside it."""

    def __init__(self, url: str, args: argparse.Namespace, rounds: list[list[Call]]) -> None:
        self.url, self.args, self.rounds = url, args, rounds
        self.db = Database(url)
        self.bus, self.state = EventBus(), LiveState()
        self.monitor = LiveMonitor(self.state, self.bus)
        self.hub = LiveHub(self.bus, self.db, self.state)
        self.fanout = Fanout()
        service = TicketService(load_calendar(DEFAULT_CALENDAR))
        self.service = service
        live = LiveDeps(self.state, AgentStations(NoAmi()), self.hub)
        self.app = create_web_app(no_health, ApiDeps(self.db, service, self.bus, live=live))
        self.app.router.add_get(BASELINE_PATH, self.fanout.handler)
        self.runner = web.AppRunner(self.app, handle_signals=False, access_log=None)
        self.base_url = ""
        self.tokens: dict[int, str] = {}
        self.supervisor_tokens: list[str] = []
        self.prebuilt: dict[int, str] = {}
        self._hub_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, upgrade, self.url)
        self.db.open()
        await loop.run_in_executor(None, self._seed)
        for station in range(1, self.args.consoles + 1):
            self.monitor.handle(SYSTEM, member_added(station))
        self._hub_task = asyncio.create_task(self.hub.run(), name="live-hub")
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        host, port = self.runner.addresses[0][:2]
        self.base_url = f"http://{host}:{port}"
        await self._prebuild()

    def _seed(self) -> None:
        """Agents with stations and tokens; per call the call row the IVR wrote (and for one call
        in four the ticket it made); per caller number an earlier call and an earlier ticket."""
        calls = [c for r in self.rounds for c in r]
        with self.db.transaction() as s, s.begin():
            seed_directory(s)
            agent = None
            for i in range(1, self.args.consoles + 1):
                user = auth.create_user(s, f"bench-agent-{i:02d}", secrets.token_urlsafe(16), "agent",
                                        station=f"agent{i}", skills=[QUEUE, "hotline"])  # fmt: skip
                self.tokens[i] = auth.create_token(s, user, "bench")
                agent = agent or user
            for k in range(self.args.supervisors):
                user = auth.create_user(s, f"bench-supervisor-{k}", secrets.token_urlsafe(16), "supervisor")
                self.supervisor_tokens.append(auth.create_token(s, user, "bench"))
            assert agent is not None
            actor = auth.actor_of(agent)
            s.flush()
            numbers = sorted({c.number for c in calls})
            s.add_all(
                CallRecord(system_name=SYSTEM, linkedid=f"old-{n}", caller_number=n, service="112",
                           queue=QUEUE, agent="bench-agent-01", ivr={"choice": "fire"})
                for n in numbers
            )  # fmt: skip
            s.add_all(
                CallRecord(system_name=SYSTEM, linkedid=c.linkedid, caller_number=c.number, service="112",
                           queue=QUEUE, ivr={"choice": c.choice, "district": DISTRICTS[c.index % 5]})
                for c in calls
            )  # fmt: skip
            s.flush()
            requests = [
                (NewTicket(summary=f"Laporan sebelumnya dari {n}", channel="112", reporter_number=n,
                           district="Kota"), actor)
                for n in numbers
            ]  # fmt: skip
            requests += [
                (NewTicket(summary=f"IVR 112: {c.choice}", channel="112", reporter_number=c.number,
                           call=CallKey(SYSTEM, c.linkedid, c.number)), actor)
                for c in calls if c.has_ticket
            ]  # fmt: skip
            for start in range(0, len(requests), 200):
                outcomes = self.service.create_many(s, requests[start : start + 200])
                failed = [o for o in outcomes if isinstance(o, Exception)]
                if failed:
                    raise RuntimeError(f"seeding tickets failed: {failed[:3]}")

    async def _prebuild(self) -> None:
        """The baseline's messages: the screen-pop the product makes for each call, as JSON."""
        calls = [c for r in self.rounds for c in r]

        def compose(session: Session, batch: list[Call]) -> dict[int, str]:
            return {
                c.index: json.dumps(
                    screen_pop(
                        session,
                        stage="ringing",
                        system_name=SYSTEM,
                        linkedid=c.linkedid,
                        caller_number=c.number,
                        caller_name="",
                        queue=QUEUE,
                        wait=0.0,
                        variables=c.variables(),
                    ),
                    default=str,
                )
                for c in batch
            }

        for start in range(0, len(calls), 200):
            batch = calls[start : start + 200]
            self.prebuilt.update(await self.db.run(functools.partial(compose, batch=batch)))

    async def stop(self) -> None:
        if self._hub_task is not None:
            self._hub_task.cancel()
            try:
                await self._hub_task
            except asyncio.CancelledError:
                pass
        await self.runner.cleanup()
        await asyncio.get_running_loop().run_in_executor(None, self.db.close)

    def consoles(self, side: str) -> list[dict[str, Any]]:
        out = []
        for i in range(1, self.args.consoles + 1):
            if side == "baseline":
                out.append({"station": i, "url": f"{self.base_url}{BASELINE_PATH}?station=agent{i}",
                            "headers": {}})  # fmt: skip
            else:
                out.append({"station": i, "url": self.base_url + SOCKET_PATH,
                            "headers": {"Authorization": f"Bearer {self.tokens[i]}"}})  # fmt: skip
        if side != "baseline":
            for token in self.supervisor_tokens:
                out.append({"station": 0, "url": self.base_url + SOCKET_PATH,
                            "headers": {"Authorization": f"Bearer {token}"}})  # fmt: skip
        return out

    def attached(self, side: str) -> int:
        if side == "baseline":
            return self.fanout.count()
        return len(self.hub._consoles)

    def timeline(self, side: str, calls: list[Call]) -> list[tuple[float, int, int, str, Any]]:
        """What happens when, built before the phase: (seconds, order, call, kind, payload).

        For ``ami`` each call is set up ``--queue-wait`` before it rings (the caller's channel,
        its queue entry, the agent's channel), rings (AgentCalled, the timed event) and hangs up
        ``--ring-seconds`` later (both channels), so agents' states come and go as in production.
        """
        args = self.args
        items: list[tuple[float, int, int, str, Any]] = []
        for call in calls:
            if side == "ami":
                items.append((call.at - args.queue_wait, 0, call.index, "setup", call.setup_messages()))
                items.append((call.at, 1, call.index, "ring", call.called_message()))
                items.append((call.at + args.ring_seconds, 2, call.index, "hangup", call.hangup_messages()))
            elif side == "bus":
                items.append((call.at, 1, call.index, "ring", call.ringing()))
            else:
                items.append(
                    (call.at, 1, call.index, "ring", (f"agent{call.station}", self.prebuilt[call.index]))
                )
        items.sort(key=lambda item: item[:3])
        return items

    async def publish(
        self, side: str, items: list[tuple[float, int, int, str, Any]]
    ) -> tuple[dict[int, int], bool]:
        """Play the timeline; returns {call index: monotonic ns when its ringing entered}."""
        loop = asyncio.get_running_loop()
        entered: dict[int, int] = {}
        start = loop.time()
        deadline = start + self.args.seconds
        monitor, bus, fanout = self.monitor, self.bus, self.fanout
        for at, _, index, kind, payload in items:
            delay = start + at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if loop.time() > deadline:
                return entered, True
            if kind != "ring":
                for message in payload:
                    monitor.handle(SYSTEM, message)
                continue
            entered[index] = time.monotonic_ns()
            if side == "ami":
                monitor.handle(SYSTEM, payload)
            elif side == "bus":
                bus.publish(payload)
            else:
                fanout.send(*payload)
        return entered, False


def percentile(ordered: list[float], q: float) -> float:
    if not ordered:
        return float("nan")
    rank = max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[rank]


@dataclass
class Tally:
    side: str
    latencies: list[float] = field(default_factory=list)  # ms
    pops: int = 0
    planned: int = 0
    seconds: float = 0.0
    cpu: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    others: Counter[str] = field(default_factory=Counter)
    pop_bytes: list[float] = field(default_factory=list)
    round_p99: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.latencies)
        per = 1000 / self.pops if self.pops else float("nan")
        cpu = {k: round(v * per, 3) for k, v in sorted(self.cpu.items())}
        return {
            "side": self.side,
            "planned": self.planned,
            "pops": self.pops,
            "rate": round(self.pops / self.seconds, 1) if self.seconds else None,
            "p50_ms": round(percentile(ordered, 50), 2),
            "p95_ms": round(percentile(ordered, 95), 2),
            "p99_ms": round(percentile(ordered, 99), 2),
            "max_ms": round(ordered[-1], 2) if ordered else None,
            "p99_per_round_ms": [round(x, 2) for x in self.round_p99],
            "cpu_ms_per_pop": cpu,
            "machine_busy_pct": round(100 * self.cpu["machine"] / self.seconds, 1) if self.seconds else None,
            "pop_bytes": round(statistics.fmean(self.pop_bytes)) if self.pop_bytes else None,
            "other_messages_per_pop": {k: round(v / max(1, self.pops), 2) for k, v in self.others.items()},
            "problems": self.problems,
        }


class Bench:
    def __init__(self, server: Server, pipe: Connection, pipe_pool: ThreadPoolExecutor) -> None:
        self.server, self.pipe, self.pipe_pool = server, pipe, pipe_pool
        self.tallies = {side: Tally(side) for side in server.args.sides}

    async def _recv(self, timeout: float) -> Any:
        loop = asyncio.get_running_loop()
        ready = await loop.run_in_executor(self.pipe_pool, self.pipe.poll, timeout)
        if not ready:
            raise TimeoutError(f"the console process said nothing for {timeout:.0f} s")
        return await loop.run_in_executor(self.pipe_pool, self.pipe.recv)

    async def phase(self, side: str, calls: list[Call], record: bool) -> dict[str, Any]:
        server, args = self.server, self.server.args
        job = {
            "consoles": server.consoles(side),
            "calls": [[c.index, c.station, c.linkedid, c.number, c.has_ticket] for c in calls],
        }
        self.pipe.send(job)
        ready = await self._recv(120)
        if not ready.get("ready"):
            raise RuntimeError(f"{side}: consoles could not connect: {ready.get('error')}")
        want = args.consoles + (args.supervisors if side != "baseline" else 0)
        for _ in range(200):  # the server side of the last sockets may still be attaching
            if server.attached(side) == want:
                break
            await asyncio.sleep(0.01)
        problems = []
        if server.attached(side) != want:
            problems.append(f"{side}: {server.attached(side)} consoles attached, expected {want}")
        items = server.timeline(side, calls)  # the AMI messages are built before the clock starts
        pops_before, stats_before = server.hub.pops_sent, Counter(server.state.stats)
        pg = server.db.url.get_backend_name() == "postgresql"  # else its processes are others' work
        cpu0 = {
            "server": time.process_time(),
            "machine": machine_busy(),
            "postgres": postgres_cpu() if pg else 0,
        }
        began = time.monotonic()
        entered, timed_out = await server.publish(side, items)
        last = max(entered.values(), default=0) / 1e9
        self.pipe.send({"until": last})
        result = await self._recv(args.seconds + GRACE + 60)
        seconds = time.monotonic() - began
        cpu1 = {
            "server": time.process_time(),
            "machine": machine_busy(),
            "postgres": postgres_cpu() if pg else 0,
        }
        cpu = {k: cpu1[k] - cpu0[k] for k in cpu0}
        cpu["client"] = result.get("cpu", 0.0)
        if timed_out:
            problems.append(f"{side}: --seconds limit reached after {len(entered)} of {len(calls)} calls")
        problems += [f"{side}: {e}" for e in result["errors"][:10]]
        if len(result["errors"]) > 10:
            problems.append(f"{side}: ... {len(result['errors']) - 10} more client errors")
        if side != "baseline" and server.hub.pops_sent - pops_before != len(entered):
            problems.append(
                f"{side}: hub sent {server.hub.pops_sent - pops_before} pops for {len(entered)} calls"
            )
        grown = Counter(server.state.stats)
        grown.subtract(stats_before)
        odd = {k: v for k, v in grown.items() if v and k not in ("events",)}
        if side == "ami" and odd:
            problems.append(f"{side}: live state counted anomalies {odd}")
        if side == "ami" and server.state.calls(SYSTEM):
            problems.append(f"{side}: {len(server.state.calls(SYSTEM))} calls still live after the phase")
        latencies = [
            (result["received"][i] - t0) / 1e6 for i, t0 in entered.items() if i in result["received"]
        ]
        if any(x < 0 for x in latencies):
            problems.append(f"{side}: negative latency: the two processes do not share a clock")
        if record:
            tally = self.tallies[side]
            tally.latencies += latencies
            tally.planned += len(calls)
            tally.pops += len(latencies)
            tally.seconds += calls[-1].at - START if calls else 0.0
            tally.cpu.update(cpu)
            tally.problems += problems
            tally.others.update(result.get("others", {}))
            tally.pop_bytes.append(result.get("pop_bytes_mean", 0.0))
            tally.round_p99.append(percentile(sorted(latencies), 99))
        ordered = sorted(latencies)
        return {
            "side": side,
            "pops": len(latencies),
            "p50_ms": percentile(ordered, 50),
            "p99_ms": percentile(ordered, 99),
            "max_ms": ordered[-1] if ordered else float("nan"),
            "server_cpu_ms_per_pop": 1000 * cpu["server"] / max(1, len(latencies)),
            "machine_busy_pct": 100 * cpu["machine"] / max(1e-9, seconds),
            "problems": problems,
        }


def warmup_calls(rounds: list[list[Call]], n: int) -> list[Call]:
    """The first calls of the first round again, sooner: imports, caches, connections."""
    return [Call(c.index, 0.2 + 0.01 * i, c.station, c.number, c.choice, c.has_ticket)
            for i, c in enumerate(rounds[0][:n])]  # fmt: skip


# ---- profiling (optional) ------------------------------------------------------------------------
@contextmanager
def pyspy(binary: str | None, out: Path) -> Iterator[None]:
    if not binary:
        yield
        return
    proc = subprocess.Popen(
        [binary, "record", "--pid", str(os.getpid()), "--format", "raw", "--threads", "--gil", "--rate",
         str(PYSPY_RATE), "--output", str(out), "--nonblocking"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    time.sleep(1.0)
    try:
        yield
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


PROFILE_MARKERS = (
    ("hub: LiveHub._pop (compose + send)", "LiveHub._pop"),
    ("executor: Database.run (one transaction)", "Database.run.<locals>.unit"),
    ("  screen_pop", "screen_pop "),
    ("    _history", "_history"),
    ("  pool checkout incl. pre-ping", "_ConnectionFairy._checkout"),
    ("  commit / close", "Session.close"),
    ("hub: json.dumps of the pop", "dumps"),
    ("AMI: LiveMonitor.handle", "LiveMonitor.handle"),
    ("  parse_event", "parse_event"),
    ("  LiveState.apply", "LiveState.apply"),
    ("console writer: serve_console", "serve_console"),
    ("  ws.send_str", "send_str"),
    ("asyncio machinery: _run_once", "_run_once"),
)


def summarize_profile(path: Path) -> list[str]:
    """What the thread holding the GIL was doing (py-spy --gil samples of the server process)."""
    total = 0
    inclusive, leaf, threads = Counter[str](), Counter[str](), Counter[str]()
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        frames = stack.split(";")
        count = int(count_text)
        total += count
        thread = frames[0].split(": ", 1)[-1]
        threads["executor threads" if thread.startswith("asyncio_") else thread[:30]] += count
        for label, marker in PROFILE_MARKERS:
            if any(marker in f for f in frames[1:]):
                inclusive[label] += count
        leaf[frames[-1][:90]] += count
    if not total:
        return ["no samples"]

    def pct(n: int) -> str:
        return f"{100 * n / total:5.1f}%"

    lines = [f"{total} GIL-holding samples at {PYSPY_RATE} Hz", "by thread: " + ", ".join(
        f"{t} {pct(n).strip()}" for t, n in threads.most_common(6))]  # fmt: skip
    lines += ["inclusive:"] + [f"  {pct(inclusive[label])}  {label}" for label, _ in PROFILE_MARKERS]
    lines += ["top leaf frames:"] + [f"  {pct(n)}  {frame}" for frame, n in leaf.most_common(12)]
    return lines


# ---- main -------------------------------------------------------------------------------------------
async def run_backend(
    backend: str, args: argparse.Namespace, pipe: Connection, pipe_pool: ThreadPoolExecutor
) -> dict[str, Any]:
    rounds = schedules(args)
    with fresh_database(backend) as url:
        server = Server(url, args, rounds)
        began = time.monotonic()
        await server.start()
        facts: dict[str, Any] = {"setup_s": round(time.monotonic() - began, 1)}
        bench = Bench(server, pipe, pipe_pool)
        profile: list[str] = []
        try:
            facts["background_busy_pct_of_one_core"] = background_load()
            facts["loadavg_at_start"] = [round(x, 2) for x in os.getloadavg()]
            print(f"{backend}: set up in {facts['setup_s']} s, base URL {server.base_url}, background "
                  f"{facts['background_busy_pct_of_one_core']}% of one core", flush=True)  # fmt: skip
            warm = warmup_calls(rounds, min(100, len(rounds[0])))
            for side in args.sides:
                outcome = await bench.phase(side, warm, record=False)
                if outcome["problems"]:
                    raise RuntimeError(f"warm-up {side} failed: {outcome['problems'][:3]}")
            for r, calls in enumerate(rounds):
                order = args.sides if r % 2 == 0 else args.sides[::-1]
                for side in order:
                    o = await bench.phase(side, calls, record=True)
                    print(f"  {backend} round {r + 1}/{len(rounds)} {side:<9} {o['pops']:>5} pops  p50 "
                          f"{o['p50_ms']:6.2f} ms  p99 {o['p99_ms']:6.2f} ms  max {o['max_ms']:7.2f} ms  "
                          f"server CPU {o['server_cpu_ms_per_pop']:.2f} ms/pop  machine "
                          f"{o['machine_busy_pct']:.0f}%", flush=True)  # fmt: skip
            if args.pyspy:
                out = Path(tempfile.gettempdir()) / f"cc_bench_screenpop_{backend}_{os.getpid()}.txt"
                with pyspy(args.pyspy, out):
                    await bench.phase("ami", rounds[0], record=False)
                profile = summarize_profile(out) if out.exists() else ["py-spy wrote nothing"]
                profile.insert(0, f"folded stacks: {out}")
            facts["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
            facts["database"] = database_facts(url)
        finally:
            await server.stop()
    rows = [bench.tallies[side].summary() for side in args.sides]
    return {"backend": backend, "facts": facts, "rows": rows, "profile": profile}


def database_facts(url: str) -> dict[str, Any]:
    if url.startswith("sqlite"):
        import sqlite3

        return {"sqlite": sqlite3.sqlite_version}
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return {"postgresql": conn.execute(text("SHOW server_version")).scalar()}
    finally:
        engine.dispose()


def render(result: dict[str, Any], args: argparse.Namespace) -> str:
    rows = {r["side"]: r for r in result["rows"]}
    base = rows.get("baseline")
    out = [
        f"\n### {result['backend']}: {args.consoles} consoles, {args.pops} pops per side at {args.rate:g}/s "
        f"({json.dumps(result['facts'])})",
        "",
        "| side | pops | lost | pops/s | p50 ms | p95 ms | p99 ms | max ms | p99 / baseline "
        "| CPU ms/pop server / client / postgres | machine busy | pop bytes | other msgs/pop |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---|",
    ]
    for side in args.sides:
        r = rows[side]
        cpu = r["cpu_ms_per_pop"]
        ratio = r["p99_ms"] / base["p99_ms"] if base and base["p99_ms"] else float("nan")
        others = ", ".join(f"{k} {v}" for k, v in sorted(r["other_messages_per_pop"].items())) or "-"
        out.append(
            f"| {side} | {r['pops']} | {r['planned'] - r['pops']} | {r['rate']} | {r['p50_ms']:.2f} "
            f"| {r['p95_ms']:.2f} | {r['p99_ms']:.2f} | {r['max_ms']:.2f} | {ratio:.2f} "
            f"| {cpu.get('server', 0):.2f} / {cpu.get('client', 0):.2f} / {cpu.get('postgres', 0):.2f} "
            f"| {r['machine_busy_pct']:.0f}% | {r['pop_bytes']} | {others} |"
        )
    if "ami" in rows:
        p99 = rows["ami"]["p99_ms"]
        per_round = rows["ami"]["p99_per_round_ms"]
        met = "MET" if p99 < args.target_ms else "NOT MET"
        out.append(
            f"\ntarget: screen-pop p99 (ami side) < {args.target_ms:g} ms with {args.consoles} consoles "
            f"-> {p99:.2f} ms (rounds {per_round}): {met}"
        )
    if result["profile"]:
        out.append("\npy-spy --gil, one extra ami phase (server process; shares of GIL-holding samples):")
        out += ["    " + line for line in result["profile"]]
    for r in result["rows"]:
        for problem in dict.fromkeys(r["problems"]):
            out.append(f"FAILED: {problem}")
    return "\n".join(out)


def machine_facts(args: argparse.Namespace) -> dict[str, Any]:
    model = cpu_model()
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "versions": {p: version(p) for p in ("aiohttp", "SQLAlchemy", "psycopg", "panoramisk")},
        "default_executor_threads": min(32, (os.cpu_count() or 1) + 4),
        "consoles": args.consoles,
        "supervisors": args.supervisors,
        "pops": args.pops,
        "rate": args.rate,
        "rounds": args.rounds,
        "queue_wait_s": args.queue_wait,
        "ring_seconds": args.ring_seconds,
    }


async def main_async(args: argparse.Namespace) -> int:
    facts = machine_facts(args)
    print("machine:", json.dumps(facts), flush=True)
    context = multiprocessing.get_context("spawn")
    pipe, child_pipe = context.Pipe()
    client = context.Process(target=client_main, args=(child_pipe,), name="consoles", daemon=True)
    client.start()
    pipe_pool = ThreadPoolExecutor(1, thread_name_prefix="pipe")
    results = []
    try:
        for backend in ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]:
            try:
                result = await run_backend(backend, args, pipe, pipe_pool)
            except OperationalError as exc:
                reason = str(exc.orig or exc).splitlines()[0]
                print(f"{backend}: database not reachable ({reason})", flush=True)
                return 2
            except (RuntimeError, TimeoutError) as exc:  # consoles could not connect, warm-up failed
                print(f"FAILED: {backend}: {exc}", flush=True)
                return 1
            results.append(result)
            print(render(result, args), flush=True)
    finally:
        pipe.send(None)
        client.join(10)
        if client.is_alive():
            client.terminate()
        pipe_pool.shutdown()
    if args.json:
        report = json.dumps({"machine": facts, "results": results}, indent=2) + "\n"
        await asyncio.get_running_loop().run_in_executor(None, Path(args.json).write_text, report)
        print(f"wrote {args.json}")
    failed = [p for r in results for row in r["rows"] for p in row["problems"]]
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--consoles", type=int, default=50, help="connected agent consoles (50)")
    parser.add_argument("--supervisors", type=int, default=0, help="wallboard consoles besides (0)")
    parser.add_argument("--pops", type=int, default=2000, help="screen-pops per side (2000)")
    parser.add_argument("--rate", type=float, default=50.0, help="calls ringing per second, Poisson (50)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds the pops are split into (2)")
    parser.add_argument("--sides", default=",".join(SIDES), help="comma-separated: ami,bus,baseline")
    parser.add_argument(
        "--queue-wait", type=float, default=0.005, help="ami: caller in the queue before it rings (0.005 s)"
    )
    parser.add_argument("--ring-seconds", type=float, default=0.1, help="ami: ringing until hangup (0.1 s)")
    parser.add_argument("--numbers", type=int, default=400, help="distinct caller numbers (400)")
    parser.add_argument("--seed", type=int, default=112)
    parser.add_argument("--seconds", type=float, default=300.0, help="time limit of one phase (300 s)")
    parser.add_argument("--target-ms", type=float, default=50.0, help="target p99 of the ami side (50)")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument(
        "--pyspy",
        nargs="?",
        const=shutil.which("py-spy") or "py-spy",
        help="after the rounds, sample one more ami phase with py-spy",
    )
    args = parser.parse_args()
    args.sides = [s.strip() for s in args.sides.split(",") if s.strip()]
    if not args.sides or any(s not in SIDES for s in args.sides):
        parser.error(f"--sides: a comma-separated list of {', '.join(SIDES)}")
    if not 1 <= args.consoles <= 500 or args.rounds < 1 or args.pops < args.rounds or args.rate <= 0:
        parser.error("need 1 <= --consoles <= 500, --rounds >= 1, --pops >= --rounds and --rate > 0")
    if not 0 <= args.queue_wait <= START or not 0 < args.ring_seconds <= 60:
        parser.error(f"need 0 <= --queue-wait <= {START} and 0 < --ring-seconds <= 60")
    if args.pyspy and not Path(args.pyspy).exists() and not shutil.which(args.pyspy):
        parser.error(f"py-spy not found: {args.pyspy}")
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
