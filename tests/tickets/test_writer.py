"""Group commit: several creation requests in one transaction, each with its own outcome
(SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import dataclasses
import threading

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from callcenter.auth.actor import Actor
from callcenter.errors import Forbidden, InvalidInput
from callcenter.storage.database import Database
from callcenter.tickets.models import Ticket, TicketEvent, TicketSequence
from callcenter.tickets.service import CallKey, Creation, TicketService
from callcenter.tickets.writer import TicketWriter
from tests.tickets.kit import new, run

CALL = CallKey("pbx-a", "pbx-a-1700000000.7", "081298765432")


def seqs(db: Database) -> list[int]:
    with db.transaction() as s:
        return sorted(s.scalars(select(Ticket.seq)))


def test_each_request_of_a_batch_gets_its_own_outcome(
    db: Database, service: TicketService, people: dict[str, Actor]
) -> None:
    agent, sms = people["agent"], people["sms"]
    requests = [
        (new(summary="satu"), agent),
        (new(category="TIDAK-ADA"), agent),  # unknown category
        (new(summary="tiga"), people["auditor"]),  # may not create
        (new(call=CALL, summary="panggilan"), agent),
        (new(call=CALL, summary="panggilan lagi"), agent),  # the same call again
        (new(channel="sms", source="sms-gateway", external_id="SMS-1", category=None), sms),
        (new(channel="sms", source="sms-gateway", external_id="SMS-1", category=None), sms),
        (new(channel="fax"), agent),  # no such channel
        (new(summary="sembilan", category="PJU"), agent),
    ]
    outcomes = run(db, lambda s: service.create_many(s, requests))
    assert isinstance(outcomes, list) and len(outcomes) == len(requests)
    assert isinstance(outcomes[1], InvalidInput) and "TIDAK-ADA" in str(outcomes[1])
    assert isinstance(outcomes[2], Forbidden)
    assert isinstance(outcomes[7], InvalidInput) and "channel" in str(outcomes[7])
    made = {i: o for i, o in enumerate(outcomes) if isinstance(o, Creation)}
    assert sorted(made) == [0, 3, 4, 5, 6, 8]
    assert [i for i, o in made.items() if o.created] == [0, 3, 5, 8]
    assert made[4].ticket.number == made[3].ticket.number
    assert made[6].ticket.number == made[5].ticket.number
    # New tickets are numbered in request order, without gaps, and say where they may go.
    assert [made[i].ticket.seq for i in (0, 3, 5, 8)] == [1, 2, 3, 4]
    assert made[0].category == "JALAN" and made[0].suggested_agency == "PUPR"
    assert made[8].category == "PJU" and made[5].category is None and made[5].suggested_agency is None
    assert made[3].ticket.reporter_number == "081298765432"
    with db.transaction() as s:
        assert s.scalar(select(TicketSequence.last)) == 4
        assert s.scalar(select(func.count()).select_from(TicketEvent)) == 4
    # The next transaction finds the twins made by this one.
    again = run(db, lambda s: service.create_many(s, [(new(call=CALL), agent), (requests[5][0], sms)]))
    assert [o.created for o in again] == [False, False]  # type: ignore[union-attr]
    assert seqs(db) == [1, 2, 3, 4]


def test_the_same_call_from_many_threads_makes_one_ticket(
    db: Database, service: TicketService, people: dict[str, Actor]
) -> None:
    # The twin check runs under the number row's lock, so racing transactions see each other.
    numbers: list[tuple[str, bool]] = []
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def worker() -> None:
        try:
            start.wait(10)
            ticket, created = run(db, lambda s: service.create(s, new(call=CALL), people["agent"]))  # type: ignore[misc]
            numbers.append((ticket.number, created))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert len({number for number, _ in numbers}) == 1
    assert sum(created for _, created in numbers) == 1
    assert seqs(db) == [1]


async def test_writer_coalesces_concurrent_requests_and_isolates_a_bad_one(
    db: Database, service: TicketService, people: dict[str, Actor]
) -> None:
    writer = TicketWriter(db, service)
    agent = people["agent"]
    # An actor whose user does not exist: its insert breaks a foreign key, failing the batch.
    ghost = dataclasses.replace(agent, user_id=999_999, username="hantu")
    requests = [(new(summary=f"laporan {i}"), ghost if i == 37 else agent) for i in range(120)]
    results = await asyncio.gather(*(writer.create(n, a) for n, a in requests), return_exceptions=True)
    await writer.close()
    assert isinstance(results[37], IntegrityError)
    good = [r for i, r in enumerate(results) if i != 37]
    assert all(isinstance(r, Creation) and r.created for r in good)
    assert len({r.ticket.number for r in good}) == 119  # type: ignore[union-attr]
    assert seqs(db) == list(range(1, 120))  # the failed request took no number
    assert writer.created == 119
    # Requests waited together instead of one transaction each, and the bad one was found by
    # halving its batch.
    assert writer.batches < 30
    with pytest.raises(RuntimeError, match="closed"):
        await writer.create(new(), agent)
