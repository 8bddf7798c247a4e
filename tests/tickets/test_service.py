"""Tickets against a real database (SQLite and PostgreSQL): creation, trail, dispatch, rules."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from callcenter.auth.actor import Actor
from callcenter.dispatch.models import WebhookDelivery
from callcenter.errors import Forbidden, InvalidInput, NotFound
from callcenter.storage.database import Database
from callcenter.tickets.lifecycle import DONE, IN_PROCESS, REJECTED, WAITING, IllegalTransition
from callcenter.tickets.models import Ticket, TicketEvent
from callcenter.tickets.service import CallKey, TicketFilter, TicketService
from callcenter.tickets.sla import DEFAULT_CALENDAR, load_calendar
from tests.tickets.kit import MONDAY, Clock, new, run


def trail(db: Database, number: str) -> list[tuple[str, str | None, str | None, str]]:
    with db.transaction() as s:
        ticket = s.scalars(select(Ticket).where(Ticket.number == number)).one()
        return [
            (e.kind, e.from_status, e.to_status, e.actor)
            for e in s.scalars(
                select(TicketEvent).where(TicketEvent.ticket_id == ticket.id).order_by(TicketEvent.id)
            )
        ]


def test_create_numbers_deadline_and_trail(
    db: Database, service: TicketService, people: dict[str, Actor]
) -> None:
    first, created = run(db, lambda s: service.create(s, new(), people["agent"]))  # type: ignore[misc]
    second, _ = run(db, lambda s: service.create(s, new(channel="112"), people["agent"]))  # type: ignore[misc]
    assert created
    assert (first.number, second.number) == ("2026000001", "2026000002")
    assert first.status == WAITING
    # Created Monday: verified and dispatched by the end of Thursday 26 Nov (3 working days), Jakarta time.
    assert (
        first.verify_by.astimezone(load_calendar(DEFAULT_CALENDAR).timezone).date().isoformat()
        == "2026-11-26"
    )
    assert trail(db, first.number) == [("created", None, WAITING, "ani")]


def test_full_path_through_an_opd(
    db: Database, service: TicketService, people: dict[str, Actor], clock: Clock
) -> None:
    ticket, _ = run(db, lambda s: service.create(s, new(), people["agent"]))  # type: ignore[misc]
    number = ticket.number
    suggested = run(db, lambda s: service.suggested_agency(s, service.get(s, number, people["agent"])))
    assert suggested.code == "PUPR"  # type: ignore[attr-defined]
    clock.now += timedelta(hours=1)
    run(db, lambda s: service.dispatch(s, number, "PUPR", people["agent"], "mohon ditindaklanjuti"))
    # The other OPD does not see it at all; PUPR does.
    with pytest.raises(NotFound):
        run(db, lambda s: service.get(s, number, people["dlh"]))
    clock.now += timedelta(hours=2)
    run(db, lambda s: service.transition(s, number, IN_PROCESS, people["pupr"], note="tim berangkat"))
    clock.now += timedelta(days=1)
    run(db, lambda s: service.transition(s, number, DONE, people["pupr"], note="sudah ditambal"))
    with db.transaction() as s:
        done = service.get(s, number, people["supervisor"])
        assert done.status == DONE and done.resolved_at == clock.now
        assert done.first_response_at == MONDAY + timedelta(hours=1)  # the command center's dispatch
        assert done.follow_up_by is not None
    assert trail(db, number) == [
        ("created", None, WAITING, "ani"),
        ("dispatched", WAITING, WAITING, "ani"),
        ("start", WAITING, IN_PROCESS, "budi"),
        ("resolve", IN_PROCESS, DONE, "budi"),
    ]


def test_illegal_moves_change_nothing(db: Database, service: TicketService, people: dict[str, Actor]) -> None:
    ticket, _ = run(db, lambda s: service.create(s, new(), people["agent"]))  # type: ignore[misc]
    number = ticket.number
    with pytest.raises(IllegalTransition, match="needs a reason"):
        run(db, lambda s: service.transition(s, number, REJECTED, people["agent"]))
    run(
        db, lambda s: service.transition(s, number, REJECTED, people["agent"], reason="bukan wewenang daerah")
    )
    with pytest.raises(IllegalTransition, match="cannot go from 'ditolak' to 'selesai'"):
        run(db, lambda s: service.transition(s, number, DONE, people["agent"]))
    with pytest.raises(IllegalTransition, match="cannot be dispatched"):
        run(db, lambda s: service.dispatch(s, number, "PUPR", people["agent"]))
    with pytest.raises(IllegalTransition, match="only a supervisor may reopen"):
        run(db, lambda s: service.transition(s, number, WAITING, people["agent"]))
    assert [k for k, *_ in trail(db, number)] == ["created", "reject"]
    run(db, lambda s: service.transition(s, number, WAITING, people["supervisor"], note="salah tolak"))
    with db.transaction() as s:
        reopened = service.get(s, number, people["agent"])
        assert (reopened.status, reopened.reopen_count, reopened.rejection_reason) == (WAITING, 1, "")


def test_roles_are_enforced(db: Database, service: TicketService, people: dict[str, Actor]) -> None:
    with pytest.raises(Forbidden):
        run(db, lambda s: service.create(s, new(), people["auditor"]))
    with pytest.raises(Forbidden):
        run(db, lambda s: service.create(s, new(), people["pupr"]))
    ticket, _ = run(db, lambda s: service.create(s, new(), people["agent"]))  # type: ignore[misc]
    with pytest.raises(Forbidden):
        run(db, lambda s: service.transition(s, ticket.number, DONE, people["auditor"]))
    with pytest.raises(Forbidden):
        run(db, lambda s: service.dispatch(s, ticket.number, "PUPR", people["pupr"]))
    # An OPD operator cannot see a ticket not dispatched to its agency, so cannot work it.
    with pytest.raises(NotFound):
        run(db, lambda s: service.transition(s, ticket.number, IN_PROCESS, people["pupr"]))


def test_anonymous_and_confidential(db: Database, service: TicketService, people: dict[str, Actor]) -> None:
    anon, _ = run(  # type: ignore[misc]
        db,
        lambda s: service.create(
            s, new(anonymous=True, reporter_name="Rahasia", reporter_number="0812"), people["agent"]
        ),
    )
    assert (anon.reporter_name, anon.reporter_number, anon.confidential) == ("", "", True)


def test_call_replayed_twice_makes_one_ticket(
    db: Database, service: TicketService, people: dict[str, Actor]
) -> None:
    call = CallKey("pbx-a", "pbx-a-1700000000.12", "081234567890")
    first, created = run(db, lambda s: service.create(s, new(call=call), people["agent"]))  # type: ignore[misc]
    again, created_again = run(
        db, lambda s: service.create(s, new(call=call, summary="lagi"), people["agent"])
    )  # type: ignore[misc]
    assert created and not created_again and again.number == first.number
    assert first.reporter_number == "081234567890"  # heard from the call when not typed in
    # The same Linkedid on another Asterisk server is another call.
    other, created_other = run(
        db, lambda s: service.create(s, new(call=CallKey("pbx-b", call.linkedid)), people["agent"])
    )  # type: ignore[misc]
    assert created_other and other.number != first.number
    found = run(db, lambda s: service.search(s, people["agent"], TicketFilter(caller_number="081234567890")))
    assert [t.number for t in found] == [first.number]  # type: ignore[attr-defined]


def test_inbound_report_is_idempotent(db: Database, service: TicketService, people: dict[str, Actor]) -> None:
    report = new(channel="sms", source="sms-gateway", external_id="SMS-778")
    first, created = run(db, lambda s: service.create(s, report, people["sms"]))  # type: ignore[misc]
    again, created_again = run(db, lambda s: service.create(s, report, people["sms"]))  # type: ignore[misc]
    assert created and not created_again and first.number == again.number
    with pytest.raises(Forbidden):
        run(db, lambda s: service.create(s, report, people["agent"]))


def test_forward_queues_a_signed_delivery(
    db: Database, service: TicketService, people: dict[str, Actor]
) -> None:
    ticket, _ = run(
        db, lambda s: service.create(s, new(confidential=True, reporter_name="Siti"), people["agent"])
    )  # type: ignore[misc]
    with pytest.raises(InvalidInput, match="has no webhook"):
        run(db, lambda s: service.forward(s, ticket.number, "PUPR", people["agent"]))
    run(db, lambda s: service.forward(s, ticket.number, "KABUPATEN-X", people["agent"], "wewenang kabupaten"))
    with db.transaction() as s:
        delivery = s.scalars(select(WebhookDelivery)).one()
        assert delivery.status == "pending" and delivery.url == "http://127.0.0.1:9/hook"
        assert '"hidden": true' in delivery.payload and "Siti" not in delivery.payload
        assert service.get(s, ticket.number, people["agent"]).status == DONE


def test_overdue_tickets_are_flagged_once(
    db: Database, service: TicketService, people: dict[str, Actor], clock: Clock
) -> None:
    ticket, _ = run(db, lambda s: service.create(s, new(), people["agent"]))  # type: ignore[misc]
    assert run(db, service.flag_overdue) == []
    clock.now = MONDAY + timedelta(days=4)  # Friday: past Thursday's verify deadline
    assert run(db, service.flag_overdue) == [ticket.number]
    assert run(db, service.flag_overdue) == []
    with db.transaction() as s:
        flagged = service.get(s, ticket.number, people["agent"])
        assert flagged.overdue == "verify" and flagged.escalated_at == clock.now
    assert trail(db, ticket.number)[-1] == ("escalated", None, None, "system")


def test_numbers_stay_unique_under_concurrent_creation(
    db: Database, service: TicketService, people: dict[str, Actor]
) -> None:
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def worker() -> None:
        try:
            start.wait(10)
            for _ in range(10):
                run(db, lambda s: service.create(s, new(), people["agent"]))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    with db.transaction() as s:
        numbers = sorted(s.scalars(select(Ticket.seq)))
        assert numbers == list(range(1, 81))
        assert s.scalar(select(func.count(func.distinct(Ticket.number)))) == 80
