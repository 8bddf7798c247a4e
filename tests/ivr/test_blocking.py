"""Blocked prank callers meet a warning before the 112 and hotline flows: the flow runner against a
fake Asterisk over a real socket and a real database (SQLite and PostgreSQL).

End-to-end on the real Asterisk: tests/e2e/test_prank_block.py.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import pytest
from sqlalchemy import select

from callcenter.agi.server import FastAgiServer
from callcenter.auth.actor import Actor
from callcenter.auth.roles import Role
from callcenter.calls.blocks import block_caller, lift_block
from callcenter.calls.models import BlockedAttempt
from callcenter.calls.records import CallRecord
from callcenter.dispatch.seed import seed_directory
from callcenter.ivr import flow as f
from callcenter.ivr.blocking import PROMPTS, SCREENED_FLOWS, CallerScreen, blocking_prompts
from callcenter.ivr.interpreter import FlowRunner
from callcenter.ivr.loader import load_flows
from callcenter.ivr.prompts import flow_prompts
from callcenter.storage.database import Database
from callcenter.tickets.service import TicketService
from callcenter.tickets.sla import DEFAULT_CALENDAR, load_calendar
from tests.agi.test_server import FakeAsterisk

FLOWS_DIR = Path(__file__).resolve().parents[2] / "ivr_flows"
NOW = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)  # Monday 10:00 in Jakarta
PRANKSTER = "081200000002"
SUPERVISOR = Actor(user_id=None, username="sri", role=Role.SUPERVISOR)
P = {"id": "teks", "en": "text"}


def menu_flow(name: str, queue: Literal["q112", "hotline"], language: str = "id") -> f.Flow:
    return f.Flow(
        name=name,
        start="layanan",
        language=language,
        nodes={
            "layanan": f.Menu(prompt=P, options={"1": f.MenuOption("petugas", {"service": "police"})},
                              default="petugas", timeout=3, retries=0),
            "petugas": f.Transfer(queue=queue, priority=10),
        },
    )  # fmt: skip


FLOWS = {
    "112": menu_flow("112", "q112"),
    "hotline": menu_flow("hotline", "hotline"),
    "status": menu_flow("status", "hotline"),
}


class Clock:
    now = NOW

    def __call__(self) -> datetime:
        return self.now


class Ivr:
    def __init__(self, server: FastAgiServer, db: Database, clock: Clock, sounds: Path) -> None:
        self.server, self.db, self.clock = server, db, clock
        self.prompts = sounds / "callcenter"
        self.calls = 0

    async def call(self, route: str, *keys: str, caller: str = PRANKSTER, hang_up: bool = False) -> list[str]:
        """One call: GET DATA is answered with ``keys`` in turn ('' = no key); with ``hang_up``
        the caller hangs up at the first GET DATA instead."""
        self.calls += 1
        linkedid = f"pbx-1795000000.{self.calls}"
        pending = list(keys)

        def reply(command: str) -> str:
            if command.startswith("GET VARIABLE"):
                return f"200 result=1 ({linkedid})"
            if command.startswith("GET DATA"):
                if hang_up:
                    return "HANGUP\n200 result=-1"
                key = pending.pop(0) if pending else ""
                return f"200 result={key}" if key else "200 result= (timeout)"
            return "200 result=0 endpos=100"

        peer = FakeAsterisk(self.server.bound_port)
        await peer.connect(route, callerid=caller)
        await asyncio.wait_for(peer.serve(reply), 10)
        await peer.close()
        return peer.commands

    def block(self, number: str = PRANKSTER, hours: float = 24) -> int:
        with self.db.transaction() as s, s.begin():
            return block_caller(s, number, "panggilan iseng berulang", SUPERVISOR, self.clock.now, hours).id

    def attempts(self) -> list[tuple[str, str, int]]:
        with self.db.transaction() as s:
            rows = s.scalars(select(BlockedAttempt).order_by(BlockedAttempt.id))
            return [(a.number, a.linkedid, a.block_id) for a in rows]

    def answers(self, linkedid: str) -> dict[str, Any]:
        with self.db.transaction() as s:
            call = s.scalars(select(CallRecord).where(CallRecord.linkedid == linkedid)).one()
            return dict(call.ivr)


def runner(db: Database, tmp_path: Path, clock: Clock, screen: CallerScreen | None = None) -> FlowRunner:
    calendar = load_calendar(DEFAULT_CALENDAR)
    return FlowRunner(
        lambda: FLOWS, tmp_path / "sounds", system_name="pbx", database=db,
        tickets=TicketService(calendar, clock=clock), calendar=calendar, spool_dir=tmp_path, clock=clock,
        screen=screen,
    )  # fmt: skip


@pytest.fixture
async def ivr(db: Database, tmp_path: Path) -> AsyncIterator[Ivr]:
    with db.transaction() as s, s.begin():
        seed_directory(s)
    clock = Clock()
    flows = runner(db, tmp_path, clock)
    server = FastAgiServer("127.0.0.1", 0, {}, unknown_route=flows.handle, idle_timeout=5)
    await server.start()
    yield Ivr(server, db, clock, tmp_path / "sounds")
    await server.stop()


def prompts(commands: list[str]) -> list[str]:
    return [c.split("/callcenter/")[1].split('"')[0] for c in commands if "/callcenter/" in c]


async def test_a_caller_who_is_not_blocked_hears_the_menu(ivr: Ivr) -> None:
    ivr.block("081299999999")  # somebody else
    commands = await ivr.call("112", "1")
    assert prompts(commands) == ["112-layanan-id"]
    assert not any("CC_BLOCKED" in c for c in commands)
    assert commands[-1] == 'SET VARIABLE CC_QUEUE "q112"'
    assert ivr.attempts() == []


async def test_a_blocked_caller_who_presses_9_reaches_the_queue_last(ivr: Ivr) -> None:
    block_id = ivr.block()
    commands = await ivr.call("112", "9")
    assert commands == [
        "GET VARIABLE CHANNEL(linkedid)",
        'SET VARIABLE CC_BLOCKED "1"',
        f'GET DATA "{ivr.prompts}/blocked-warning-id" 6000 1',
        f'STREAM FILE "{ivr.prompts}/blocked-connect-id" ""',
        'SET VARIABLE QUEUE_PRIO "0"',
        'SET VARIABLE CC_QUEUE "q112"',
    ]
    # The flow's own menu (and its priority 10) never ran.
    assert not any("112-layanan" in c or 'QUEUE_PRIO "10"' in c for c in commands)
    assert ivr.attempts() == [(PRANKSTER, "pbx-1795000000.1", block_id)]
    assert ivr.answers("pbx-1795000000.1") == {
        "blocked": "1", "block_override": "1", "flow": "112", "language": "id",
    }  # fmt: skip


@pytest.mark.parametrize("key", ["", "1", "#"])
async def test_a_blocked_caller_without_the_override_is_told_and_hung_up(ivr: Ivr, key: str) -> None:
    ivr.block()
    commands = await ivr.call("hotline", key)
    assert prompts(commands) == ["blocked-warning-id", "blocked-goodbye-id"]
    assert commands[-1] == "HANGUP"
    assert not any("CC_QUEUE" in c for c in commands)
    assert ivr.answers("pbx-1795000000.1") == {"blocked": "1", "flow": "hotline", "language": "id"}
    assert len(ivr.attempts()) == 1


async def test_the_hotline_override_goes_to_the_hotline_queue(ivr: Ivr) -> None:
    ivr.block()
    commands = await ivr.call("hotline", "9")
    assert commands[-2:] == ['SET VARIABLE QUEUE_PRIO "0"', 'SET VARIABLE CC_QUEUE "hotline"']


async def test_the_warning_is_in_the_flow_language(ivr: Ivr, monkeypatch: pytest.MonkeyPatch) -> None:
    ivr.block()
    monkeypatch.setitem(FLOWS, "hotline", menu_flow("hotline", "hotline", "en"))
    commands = await ivr.call("hotline", "")
    assert prompts(commands) == ["blocked-warning-en", "blocked-goodbye-en"]
    assert commands[-1] == "HANGUP"


async def test_every_call_while_blocked_is_logged_once(ivr: Ivr) -> None:
    block_id = ivr.block()
    await ivr.call("112", "")
    await ivr.call("112", "9")
    assert ivr.attempts() == [
        (PRANKSTER, "pbx-1795000000.1", block_id),
        (PRANKSTER, "pbx-1795000000.2", block_id),
    ]


async def test_a_caller_who_hangs_up_during_the_warning_is_still_logged(ivr: Ivr) -> None:
    ivr.block()
    commands = await ivr.call("112", hang_up=True)
    assert prompts(commands) == ["blocked-warning-id"]
    assert len(ivr.attempts()) == 1
    assert ivr.answers("pbx-1795000000.1")["blocked"] == "1"


async def test_lifted_and_expired_blocks_let_the_caller_through(ivr: Ivr) -> None:
    block_id = ivr.block(hours=1)
    with ivr.db.transaction() as s, s.begin():
        lift_block(s, block_id, SUPERVISOR, NOW)
    assert prompts(await ivr.call("112", "1")) == ["112-layanan-id"]
    ivr.block(hours=1)
    ivr.clock.now = NOW + timedelta(hours=1)  # expired by time alone
    assert prompts(await ivr.call("112", "1")) == ["112-layanan-id"]
    assert ivr.attempts() == []


async def test_flows_other_than_112_and_hotline_are_not_screened(ivr: Ivr) -> None:
    ivr.block()
    assert prompts(await ivr.call("status", "1")) == ["status-layanan-id"]
    assert ivr.attempts() == []


@pytest.mark.parametrize(
    "caller",
    ["", "anonymous", "unknown", "' OR '1'='1", "0812-0000-0002", "0812000000021234567890123456789012345"],
)
async def test_odd_caller_ids_are_simply_not_blocked(ivr: Ivr, caller: str) -> None:
    ivr.block()
    commands = await ivr.call("112", "1", caller=caller)
    assert prompts(commands) == ["112-layanan-id"]
    assert ivr.attempts() == []


async def test_a_database_that_is_down_lets_the_caller_through(
    db: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    broken = Database("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2")
    broken.open()
    clock = Clock()
    screen = CallerScreen(broken, tmp_path / "sounds", system_name="pbx", clock=clock)
    flows = runner(db, tmp_path, clock, screen)
    server = FastAgiServer("127.0.0.1", 0, {}, unknown_route=flows.handle, idle_timeout=5)
    await server.start()
    try:
        ivr = Ivr(server, db, clock, tmp_path / "sounds")
        ivr.block()
        with caplog.at_level(logging.ERROR, logger="callcenter.ivr.blocking"):
            commands = await ivr.call("112", "1")
    finally:
        await server.stop()
        broken.close()
    assert prompts(commands) == ["112-layanan-id"]
    assert commands[-1] == 'SET VARIABLE CC_QUEUE "q112"'
    assert any("block check failed" in r.getMessage() for r in caplog.records)


class StuckDatabase:
    """A database that never answers."""

    async def run(self, work: Callable[..., Any]) -> Any:
        await asyncio.sleep(30)


async def test_a_database_that_hangs_lets_the_caller_through_in_time(
    db: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    screen = CallerScreen(StuckDatabase(), tmp_path / "sounds", system_name="pbx", clock=clock,  # type: ignore[arg-type]
                          lookup_seconds=0.2)  # fmt: skip
    flows = runner(db, tmp_path, clock, screen)
    server = FastAgiServer("127.0.0.1", 0, {}, unknown_route=flows.handle, idle_timeout=5)
    await server.start()
    try:
        ivr = Ivr(server, db, clock, tmp_path / "sounds")
        ivr.block()
        with caplog.at_level(logging.ERROR, logger="callcenter.ivr.blocking"):
            commands = await asyncio.wait_for(ivr.call("112", "1"), 5)
    finally:
        await server.stop()
    assert prompts(commands) == ["112-layanan-id"]
    assert any("TimeoutError" in r.getMessage() for r in caplog.records)


def test_the_prompts_are_built_with_the_flows_and_name_no_caller_data() -> None:
    shipped = flow_prompts(load_flows([FLOWS_DIR]).values())
    for part in PROMPTS:
        for lang in ("id", "en"):
            assert shipped[f"blocked-{part}-{lang}"] == (lang, PROMPTS[part][lang])
    assert "tekan sembilan" in PROMPTS["warning"]["id"]
    assert set(blocking_prompts(["id"])) == {"blocked-warning-id", "blocked-connect-id", "blocked-goodbye-id"}
    assert set(SCREENED_FLOWS) == {"112", "hotline"} <= set(load_flows([FLOWS_DIR]))
