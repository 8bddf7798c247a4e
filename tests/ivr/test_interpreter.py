"""The flow interpreter against a fake Asterisk over a real socket and a real database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from callcenter.agi.server import FastAgiServer
from callcenter.calls.records import CallRecord
from callcenter.dispatch.seed import seed_directory
from callcenter.ivr import flow as f
from callcenter.ivr.interpreter import FlowRunner
from callcenter.storage.database import Database
from callcenter.tickets.models import Ticket
from callcenter.tickets.service import TicketService
from callcenter.tickets.sla import DEFAULT_CALENDAR, load_calendar
from tests.agi.test_server import FakeAsterisk

P = {"id": "teks"}


def flow(name: str, start: str, **nodes: f.Node) -> f.Flow:
    return f.Flow(name=name, start=start, nodes=dict(nodes))


MENU = flow(
    "menu",
    "pilih",
    pilih=f.Menu(
        prompt=P,
        options={"1": f.MenuOption("antre", {"category": "JALAN"}), "2": f.MenuOption("nomor")},
        default="antre",
        retries=1,
        invalid_prompt=P,
        timeout_prompt=P,
    ),
    nomor=f.Collect(prompt=P, field="district", next="tiket", on_fail="antre", min_digits=2, max_digits=4,
                    retries=1, invalid_prompt=P),
    tiket=f.CreateTicket(channel="hotline", summary={"id": "Aduan"}, readback=P, next="antre"),
    antre=f.Transfer(queue="hotline"),
)  # fmt: skip
LOOP = flow("loop", "a", a=f.Goto("b"), b=f.Goto("a"))
CLOCK = flow(
    "jam", "cek",
    cek=f.Condition(open_days=(1, 2, 3, 4, 5), open_from="08:00", open_until="16:00", if_open="buka",
                    if_closed="tutup"),
    buka=f.Transfer(queue="hotline"),
    tutup=f.Hangup(prompt=P),
)  # fmt: skip
OUTER = flow("outer", "sub", sub=f.SubFlow(flow="inner", next="antre"), antre=f.Transfer(queue="q112"))
INNER = flow("inner", "info", info=f.Play(prompt=P, next="bye"), bye=f.Hangup(prompt=P))
STATUS = flow(
    "status", "nomor",
    nomor=f.Collect(prompt=P, field="t", next="cari", on_fail="bye", min_digits=10, max_digits=16),
    cari=f.LookupTicket(field="t", found=P, not_found=P, status={s: P for s in ("menunggu", "diproses")},
                        next="bye"),
    bye=f.Hangup(),
)  # fmt: skip
FLOWS = {x.name: x for x in (MENU, LOOP, CLOCK, OUTER, INNER, STATUS)}


class Clock:
    now = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)  # Monday 10:00 in Jakarta

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def setup(db: Database, tmp_path: Path) -> AsyncIterator[tuple[FastAgiServer, Database, Clock]]:
    with db.transaction() as s, s.begin():
        seed_directory(s)
    calendar = load_calendar(DEFAULT_CALENDAR)
    clock = Clock()
    runner = FlowRunner(
        lambda: FLOWS, tmp_path / "sounds", system_name="pbx", database=db,
        tickets=TicketService(calendar, clock=clock), calendar=calendar, spool_dir=tmp_path, clock=clock,
    )  # fmt: skip
    server = FastAgiServer("127.0.0.1", 0, {}, unknown_route=runner.handle, idle_timeout=5)
    await server.start()
    yield server, db, clock
    await server.stop()


def keys(*answers: str) -> Callable[[str], str]:
    """Answer GET DATA with the given inputs in turn ('' = timeout); everything else succeeds."""
    pending = list(answers)

    def reply(command: str) -> str:
        if command.startswith("GET VARIABLE"):
            return "200 result=1 (pbx-1795000000.5)"
        if command.startswith("GET DATA"):
            value = pending.pop(0)
            return f"200 result={value}" if value else "200 result= (timeout)"
        return "200 result=0 endpos=100"

    return reply


async def run_call(server: FastAgiServer, route: str, replies: Callable[[str], str]) -> list[str]:
    peer = FakeAsterisk(server.bound_port)
    await peer.connect(route, callerid="081200001111")
    await asyncio.wait_for(peer.serve(replies), 10)
    await peer.close()
    return peer.commands


def prompts(commands: list[str]) -> list[str]:
    return [c.split("/callcenter/")[1].split('"')[0] for c in commands if "/callcenter/" in c]


async def test_menu_retry_then_choice(setup: tuple[FastAgiServer, Database, Clock]) -> None:
    server, _, _ = setup
    commands = await run_call(server, "menu", keys("9", "1"))
    assert prompts(commands) == ["menu-pilih-id", "menu-pilih-invalid-id", "menu-pilih-id"]
    assert commands[-2:] == ['SET VARIABLE CC_CHOICE "JALAN"', 'SET VARIABLE CC_QUEUE "hotline"']


async def test_menu_gives_up_to_default(setup: tuple[FastAgiServer, Database, Clock]) -> None:
    server, _, _ = setup
    commands = await run_call(server, "menu", keys("", ""))
    assert prompts(commands) == ["menu-pilih-id", "menu-pilih-timeout-id", "menu-pilih-id"]
    assert commands[-1] == 'SET VARIABLE CC_QUEUE "hotline"'


async def test_collect_creates_ticket_and_reads_number(setup: tuple[FastAgiServer, Database, Clock]) -> None:
    server, db, _ = setup
    commands = await run_call(server, "menu", keys("2", "1", "0042#"))
    ticket_line = next(c for c in commands if "CC_TICKET" in c)
    number = ticket_line.split('"')[1]
    spoken = [p for p in prompts(commands) if p.startswith("digit-")]
    assert "".join(p.split("-")[1] for p in spoken) == number
    assert "menu-nomor-invalid-id" in prompts(commands)  # "1" was too short
    with db.transaction() as s:
        ticket = s.scalars(select(Ticket).where(Ticket.number == number)).one()
        assert (ticket.district, ticket.reporter_number, ticket.channel) == (
            "0042",
            "081200001111",
            "hotline",
        )
        call = s.scalars(select(CallRecord)).one()
        assert call.ivr == {"district": "0042", "ticket_number": number, "flow": "menu", "language": "id"}
    # The same call again (a replay) does not make a second ticket.
    again = await run_call(server, "menu", keys("2", "0042"))
    assert next(c for c in again if "CC_TICKET" in c) == ticket_line


async def test_status_lookup(setup: tuple[FastAgiServer, Database, Clock]) -> None:
    server, _, _ = setup
    made = await run_call(server, "menu", keys("2", "77"))
    number = next(c for c in made if "CC_TICKET" in c).split('"')[1]
    found = await run_call(server, "status", keys(number + "#"))
    assert prompts(found)[-2:] == ["status-cari-found-id", "status-cari-status-menunggu-id"]
    assert found[-1] == "HANGUP"
    missing = await run_call(server, "status", keys("2099000001"))
    assert prompts(missing)[-1] == "status-cari-not_found-id"


async def test_office_hours(setup: tuple[FastAgiServer, Database, Clock]) -> None:
    server, _, clock = setup
    assert (await run_call(server, "jam", keys()))[-1] == 'SET VARIABLE CC_QUEUE "hotline"'
    clock.now = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)  # 19:00 in Jakarta
    closed = await run_call(server, "jam", keys())
    assert prompts(closed) == ["jam-tutup-id"] and closed[-1] == "HANGUP"
    clock.now = datetime(2026, 12, 25, 3, 0, tzinfo=UTC)  # Christmas, 10:00
    assert (await run_call(server, "jam", keys()))[-1] == "HANGUP"


async def test_subflow_returns_to_the_caller_flow(setup: tuple[FastAgiServer, Database, Clock]) -> None:
    server, _, _ = setup
    commands = await run_call(server, "outer", keys())
    assert prompts(commands) == ["inner-info-id", "inner-bye-id"]
    assert "HANGUP" not in commands and commands[-1] == 'SET VARIABLE CC_QUEUE "q112"'


async def test_runaway_and_unknown_flows_end_with_call_takers(
    setup: tuple[FastAgiServer, Database, Clock],
) -> None:
    server, _, _ = setup
    assert (await run_call(server, "loop", keys()))[-1] == 'SET VARIABLE CC_QUEUE "q112"'
    assert (await run_call(server, "nope", keys()))[-1] == 'SET VARIABLE CC_QUEUE "q112"'
