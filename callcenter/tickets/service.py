"""What can be done to tickets, with the rules, the trail and the clocks. Synchronous: callers
run these in one database transaction on an executor thread (``Database.run``).

Every change appends a :class:`TicketEvent`; nothing here updates or deletes an event.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Select, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from callcenter.auth.actor import Actor
from callcenter.auth.roles import Permission
from callcenter.calls.records import CallRecord
from callcenter.dispatch.models import EXTERNAL, OPD, Agency, Category, RoutingRule, WebhookDelivery
from callcenter.errors import Forbidden, InvalidInput, NotFound
from callcenter.recording.models import Recording
from callcenter.storage.base import utcnow
from callcenter.tickets import lifecycle
from callcenter.tickets.lifecycle import DONE, WAITING, IllegalTransition
from callcenter.tickets.models import Ticket, TicketCall, TicketEvent, TicketReview
from callcenter.tickets.numbering import format_number, lock_sequence, set_sequence
from callcenter.tickets.sla import SlaPolicy, WorkCalendar, overdue


@dataclass(frozen=True)
class CallKey:
    system_name: str
    linkedid: str
    caller_number: str = ""


@dataclass(frozen=True)
class NewTicket:
    summary: str
    channel: str
    description: str = ""
    category: str | None = None
    priority: str = "normal"
    location_text: str = ""
    district: str = ""
    reporter_name: str = ""
    reporter_contact: str = ""
    reporter_number: str = ""
    confidential: bool = False
    anonymous: bool = False
    call: CallKey | None = None
    source: str | None = None
    external_id: str | None = None


@dataclass(frozen=True)
class TicketFilter:
    status: str | None = None
    agency: str | None = None
    category: str | None = None
    channel: str | None = None
    caller_number: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    overdue: bool | None = None
    limit: int = 50
    offset: int = 0


@dataclass(frozen=True)
class CategoryRoute:
    id: int
    code: str
    agency: str | None  # the agency its routing rule suggests, if that agency is active


@dataclass(frozen=True)
class Creation:
    """What a creation request got: its ticket, whether it is new, and for a new one the codes
    of its category and suggested agency (so the answer needs no second query)."""

    ticket: Ticket
    created: bool
    category: str | None = None
    suggested_agency: str | None = None


@dataclass
class TicketDetail:
    ticket: Ticket
    agency: Agency | None
    category: Category | None
    forwarded_to: Agency | None
    events: list[TicketEvent] = field(default_factory=list)
    calls: list[CallRecord] = field(default_factory=list)
    recordings: list[tuple[int, str]] = field(default_factory=list)  # (call id, base path)


class TicketService:
    def __init__(
        self,
        calendar: WorkCalendar,
        policy: SlaPolicy | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.calendar = calendar
        self.policy = policy or SlaPolicy()
        self.clock = clock

    # ---- creation ------------------------------------------------------------------------
    def create(self, session: Session, new: NewTicket, actor: Actor) -> tuple[Ticket, bool]:
        """Create a ticket; returns (ticket, created). A replayed call or inbound report returns
        the ticket made the first time instead of a twin."""
        outcome = self.create_many(session, [(new, actor)])[0]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome.ticket, outcome.created

    def create_many(
        self, session: Session, requests: Sequence[tuple[NewTicket, Actor]]
    ) -> list[Creation | Exception]:
        """Create several tickets in the caller's transaction, one outcome per request.

        A request that breaks a rule (permission, unknown category, ...) gets its exception in
        its slot and the others go on. The yearly number row is locked before looking for twins
        (the same call or inbound report) so a twin made by another transaction is always seen;
        the lock is then held only for the few statements that write, whatever the batch size.
        """
        # An int marks a twin of an earlier request in the same batch (its index).
        outcomes: list[Creation | Exception | int | None] = [None] * len(requests)
        categories = self._categories(session, {new.category for new, _ in requests if new.category})
        accepted: list[tuple[int, NewTicket, Actor, CategoryRoute | None]] = []
        for index, (new, actor) in enumerate(requests):
            try:
                route = self._check_new(new, actor, categories)
            except (Forbidden, InvalidInput) as exc:
                outcomes[index] = exc
            else:
                accepted.append((index, new, actor, route))
        calls = {new.call: self._call(session, new.call) for _, new, _, _ in accepted if new.call is not None}
        now = self.clock()
        if accepted:
            last = lock_sequence(session, now.year)
        fresh: list[tuple[int, Ticket, Actor, CategoryRoute | None, CallRecord | None]] = []
        twins: dict[object, int] = {}
        for index, new, actor, route in accepted:
            call = calls.get(new.call) if new.call is not None else None
            twin_key = _twin_key(new, call)
            if twin_key is not None:
                if twin_key in twins:
                    outcomes[index] = twins[twin_key]
                    continue
                existing = self._existing(session, new, call)
                if existing is not None:
                    outcomes[index] = Creation(existing, False)
                    continue
                twins[twin_key] = index
            fresh.append((index, self._new_ticket(new, actor, route, call, now), actor, route, call))
        if fresh:
            deadlines = self.policy.deadlines(self.calendar, now, None)
            for offset, (_, ticket, _, _, _) in enumerate(fresh, start=1):
                ticket.seq = last + offset
                ticket.number = format_number(now.year, ticket.seq)
                ticket.verify_by = deadlines.verify_by
            set_sequence(session, now.year, last + len(fresh))
            session.add_all([ticket for _, ticket, _, _, _ in fresh])
            session.flush()
            for index, ticket, actor, route, call in fresh:
                if call is not None:
                    session.add(TicketCall(ticket_id=ticket.id, call_id=call.id))
                session.add(_event(ticket, actor, "created", to_status=WAITING, at=now, note=ticket.channel))
                outcomes[index] = Creation(
                    ticket, True, route.code if route else None, route.agency if route else None
                )
            session.flush()
        for index, outcome in enumerate(outcomes):
            if isinstance(outcome, int):  # a twin inside this batch: the first one's ticket
                first = outcomes[outcome]
                assert isinstance(first, Creation)
                outcomes[index] = Creation(first.ticket, False, first.category, first.suggested_agency)
        return [outcome for outcome in outcomes if isinstance(outcome, (Creation, Exception))]

    def _check_new(
        self, new: NewTicket, actor: Actor, categories: dict[str, CategoryRoute]
    ) -> CategoryRoute | None:
        if new.source is not None or new.external_id is not None:
            actor.require(Permission.INBOUND_CREATE)
        else:
            actor.require(Permission.TICKET_CREATE)
        _check_choice("channel", new.channel, lifecycle.CHANNELS)
        _check_choice("priority", new.priority, lifecycle.PRIORITIES)
        if not new.category:
            return None
        route = categories.get(new.category)
        if route is None:
            raise InvalidInput("category", f"unknown category {new.category!r}")
        return route

    def _new_ticket(
        self,
        new: NewTicket,
        actor: Actor,
        route: CategoryRoute | None,
        call: CallRecord | None,
        now: datetime,
    ) -> Ticket:
        number_heard = new.reporter_number or (call.caller_number if call else "")
        reporter = ("", "", "") if new.anonymous else (new.reporter_name, new.reporter_contact, number_heard)
        return Ticket(
            year=now.year, channel=new.channel, status=WAITING, priority=new.priority,
            category_id=route.id if route else None, created_by_id=actor.user_id,
            summary=new.summary, description=new.description, location_text=new.location_text,
            district=new.district, reporter_name=reporter[0], reporter_contact=reporter[1],
            reporter_number=reporter[2], confidential=new.confidential or new.anonymous,
            anonymous=new.anonymous, origin_call_id=call.id if call else None, source=new.source,
            external_id=new.external_id, created_at=now, updated_at=now,
            # Explicit defaults: the creation answer is shaped from this object without a reload.
            agency_id=None, assignee_id=None, forwarded_to_id=None, rejection_reason="",
            dispatched_at=None, first_response_at=None, resolved_at=None, follow_up_by=None,
            overdue=None, escalated_at=None, reopen_count=0,
        )  # fmt: skip

    def _categories(self, session: Session, codes: set[str]) -> dict[str, CategoryRoute]:
        """Active categories by code with the agency their routing rule suggests (one query)."""
        if not codes:
            return {}
        rows = session.execute(
            select(Category.id, Category.code, Agency.code)
            .outerjoin(RoutingRule, RoutingRule.category_id == Category.id)
            .outerjoin(Agency, (Agency.id == RoutingRule.agency_id) & Agency.active.is_(True))
            .where(Category.code.in_(sorted(codes)), Category.active.is_(True))
        )
        return {code: CategoryRoute(id, code, agency) for id, code, agency in rows}

    def suggested_agency(self, session: Session, ticket: Ticket) -> Agency | None:
        if ticket.category_id is None:
            return None
        return session.scalar(
            select(Agency)
            .join(RoutingRule, RoutingRule.agency_id == Agency.id)
            .where(RoutingRule.category_id == ticket.category_id, Agency.active.is_(True))
        )

    # ---- reading -------------------------------------------------------------------------
    def get(self, session: Session, number: str, actor: Actor, *, for_update: bool = False) -> Ticket:
        query = select(Ticket).where(Ticket.number == number)
        if for_update:
            query = query.with_for_update()
        ticket: Ticket | None = session.scalar(self._visible(query, actor))
        if ticket is None:
            raise NotFound(f"ticket {number} not found")
        return ticket

    def detail(self, session: Session, number: str, actor: Actor) -> TicketDetail:
        ticket = self.get(session, number, actor)
        events = list(
            session.scalars(
                select(TicketEvent).where(TicketEvent.ticket_id == ticket.id).order_by(TicketEvent.id)
            )
        )
        calls = list(
            session.scalars(
                select(CallRecord)
                .join(TicketCall, TicketCall.call_id == CallRecord.id)
                .where(TicketCall.ticket_id == ticket.id)
                .order_by(CallRecord.id)
            )
        )
        recordings = [
            (r.call_id, r.path)
            for r in session.scalars(
                select(Recording).where(Recording.call_id.in_([c.id for c in calls])).order_by(Recording.id)
            )
        ]
        return TicketDetail(
            ticket=ticket,
            agency=session.get(Agency, ticket.agency_id) if ticket.agency_id else None,
            category=session.get(Category, ticket.category_id) if ticket.category_id else None,
            forwarded_to=session.get(Agency, ticket.forwarded_to_id) if ticket.forwarded_to_id else None,
            events=events,
            calls=calls,
            recordings=recordings,
        )

    def search(self, session: Session, actor: Actor, filters: TicketFilter) -> list[Ticket]:
        query = self._visible(select(Ticket), actor)
        if filters.status:
            _check_choice("status", filters.status, lifecycle.STATUSES)
            query = query.where(Ticket.status == filters.status)
        if filters.agency:
            query = query.join(Agency, Agency.id == Ticket.agency_id).where(Agency.code == filters.agency)
        if filters.category:
            query = query.join(Category, Category.id == Ticket.category_id).where(
                Category.code == filters.category
            )
        if filters.channel:
            query = query.where(Ticket.channel == filters.channel)
        if filters.caller_number:
            calls = select(TicketCall.ticket_id).join(CallRecord, CallRecord.id == TicketCall.call_id)
            calls = calls.where(CallRecord.caller_number == filters.caller_number)
            query = query.where(or_(Ticket.reporter_number == filters.caller_number, Ticket.id.in_(calls)))
        if filters.created_from:
            query = query.where(Ticket.created_at >= filters.created_from)
        if filters.created_to:
            query = query.where(Ticket.created_at < filters.created_to)
        if filters.overdue is not None:
            query = query.where(Ticket.overdue.is_not(None) if filters.overdue else Ticket.overdue.is_(None))
        query = query.order_by(Ticket.created_at.desc(), Ticket.id.desc())
        return list(session.scalars(query.limit(filters.limit).offset(filters.offset)))

    def _visible(self, query: Select[Any], actor: Actor) -> Select[Any]:
        if actor.can(Permission.TICKET_READ_ALL):
            return query
        if actor.can(Permission.TICKET_READ_AGENCY) and actor.agency_id is not None:
            return query.where(Ticket.agency_id == actor.agency_id)
        raise Forbidden(f"role '{actor.role}' may not read tickets")

    # ---- changes -------------------------------------------------------------------------
    def transition(
        self, session: Session, number: str, target: str, actor: Actor, *, note: str = "", reason: str = ""
    ) -> Ticket:
        actor.require(Permission.TICKET_WORK)
        ticket = self.get(session, number, actor, for_update=True)
        now = self.clock()
        move = lifecycle.check_transition(
            ticket.status, target, actor.role, reason=reason, resolved_at=ticket.resolved_at, now=now
        )
        ticket.status = move.to_status
        ticket.updated_at = now
        if move.name == "start":
            ticket.assignee_id = actor.user_id
        if move.name == "release":
            ticket.assignee_id = None
        if move.name in ("resolve", "reject"):
            ticket.resolved_at = now
            ticket.overdue = None
        if move.name == "reject":
            ticket.rejection_reason = reason.strip()
        if move.name == "reopen":
            ticket.reopen_count += 1
            ticket.resolved_at = None
            ticket.rejection_reason = ""
            ticket.verify_by = self.policy.deadlines(self.calendar, now, None).verify_by
            ticket.agency_id = None
            ticket.follow_up_by = None
            ticket.dispatched_at = None
        self._first_response(ticket, actor, now)
        text = "\n".join(t for t in (reason.strip(), note.strip()) if t)
        session.add(
            _event(ticket, actor, move.name, from_status=move.from_status, to_status=move.to_status,
                   at=now, note=text)
        )  # fmt: skip
        return ticket

    def dispatch(
        self, session: Session, number: str, agency_code: str, actor: Actor, note: str = ""
    ) -> Ticket:
        """Send a ticket to an OPD's operator queue (again, if it was elsewhere)."""
        actor.require(Permission.TICKET_DISPATCH)
        ticket = self.get(session, number, actor, for_update=True)
        if ticket.status not in lifecycle.OPEN_STATUSES:
            raise IllegalTransition(f"a '{ticket.status}' ticket cannot be dispatched; reopen it first")
        agency = self._agency(session, agency_code)
        if agency.kind != OPD:
            raise InvalidInput("agency", f"{agency.code} is outside this region: forward the ticket instead")
        now = self.clock()
        previous = ticket.status
        ticket.agency_id = agency.id
        ticket.status = WAITING  # in the OPD's queue, waiting to be claimed
        ticket.assignee_id = None
        ticket.dispatched_at = now
        ticket.follow_up_by = self.policy.deadlines(self.calendar, ticket.created_at, now).follow_up_by
        ticket.overdue = None
        ticket.updated_at = now
        self._first_response(ticket, actor, now)
        session.add(
            _event(ticket, actor, "dispatched", from_status=previous, to_status=WAITING, at=now,
                   agency_id=agency.id, note=note.strip() or agency.code)
        )  # fmt: skip
        return ticket

    def escalate(self, session: Session, number: str, actor: Actor, note: str = "") -> Ticket:
        """Flag the ticket for a supervisor (by hand, or by the overdue job as 'system')."""
        actor.require(Permission.TICKET_ESCALATE)
        ticket = self.get(session, number, actor, for_update=True)
        if ticket.status not in lifecycle.OPEN_STATUSES:
            raise IllegalTransition(f"a '{ticket.status}' ticket cannot be escalated")
        now = self.clock()
        ticket.escalated_at = now
        ticket.updated_at = now
        session.add(_event(ticket, actor, "escalated", at=now, note=note.strip()))
        return ticket

    def forward(
        self, session: Session, number: str, agency_code: str, actor: Actor, note: str = ""
    ) -> tuple[Ticket, WebhookDelivery]:
        """ "No Wrong Door": hand a report outside our authority to another instance, through a
        signed webhook that is retried until delivered. The ticket is done here."""
        actor.require(Permission.TICKET_FORWARD)
        ticket = self.get(session, number, actor, for_update=True)
        if ticket.status not in lifecycle.OPEN_STATUSES:
            raise IllegalTransition(f"a '{ticket.status}' ticket cannot be forwarded")
        agency = self._agency(session, agency_code)
        if agency.kind != EXTERNAL or not agency.webhook_url:
            raise InvalidInput("agency", f"{agency.code} has no webhook: dispatch to an OPD instead")
        now = self.clock()
        previous = ticket.status
        category = session.get(Category, ticket.category_id) if ticket.category_id else None
        delivery = WebhookDelivery(
            idempotency_key=f"{ticket.number}-{agency.code}-{secrets.token_hex(8)}",
            ticket_id=ticket.id,
            agency_id=agency.id,
            url=agency.webhook_url,
            payload=json.dumps(forward_payload(ticket, category, note), sort_keys=True),
            next_attempt_at=now,
            created_at=now,
        )
        session.add(delivery)
        ticket.forwarded_to_id = agency.id
        ticket.status = DONE
        ticket.resolved_at = now
        ticket.overdue = None
        ticket.updated_at = now
        self._first_response(ticket, actor, now)
        session.add(
            _event(ticket, actor, "forwarded", from_status=previous, to_status=DONE, at=now,
                   agency_id=agency.id, note=note.strip() or agency.code)
        )  # fmt: skip
        return ticket, delivery

    def comment(self, session: Session, number: str, actor: Actor, note: str) -> TicketEvent:
        actor.require(Permission.TICKET_WORK)
        if not note.strip():
            raise InvalidInput("note", "a comment cannot be empty")
        ticket = self.get(session, number, actor)
        now = self.clock()
        ticket.updated_at = now
        self._first_response(ticket, actor, now)
        event = _event(ticket, actor, "comment", at=now, note=note.strip())
        session.add(event)
        return event

    def review(
        self, session: Session, number: str, actor: Actor, kind: str, score: int, note: str = ""
    ) -> TicketReview:
        """A supervisor's quality review, or the citizen's rating passed on by an integration."""
        if kind == "supervisor":
            actor.require(Permission.TICKET_REVIEW)
        elif kind == "citizen":
            actor.require(Permission.INBOUND_CREATE)
        else:
            raise InvalidInput("kind", "must be 'supervisor' or 'citizen'")
        if not 1 <= score <= 5:
            raise InvalidInput("score", "must be between 1 and 5")
        ticket = self._by_number(session, number)
        if ticket.status not in lifecycle.CLOSED_STATUSES:
            raise IllegalTransition("only a closed ticket can be reviewed")
        now = self.clock()
        review = TicketReview(
            ticket_id=ticket.id, kind=kind, score=score, reviewer_id=actor.user_id, note=note, at=now
        )
        session.add(review)
        session.add(_event(ticket, actor, "reviewed", at=now, note=f"{kind} {score}/5 {note}".strip()))
        return review

    def link_call(self, session: Session, number: str, call: CallKey, actor: Actor) -> None:
        """A later call about the same report (the caller rings again)."""
        actor.require(Permission.TICKET_WORK)
        ticket = self.get(session, number, actor)
        record = self._call(session, call)
        linked = session.scalar(
            select(TicketCall).where(TicketCall.ticket_id == ticket.id, TicketCall.call_id == record.id)
        )
        if linked is None:
            session.add(TicketCall(ticket_id=ticket.id, call_id=record.id))
            session.add(_event(ticket, actor, "call_linked", at=self.clock(), note=call.linkedid))

    def flag_overdue(self, session: Session) -> list[str]:
        """Mark and escalate open tickets past a deadline; returns their numbers."""
        now = self.clock()
        flagged = []
        candidates = session.scalars(
            select(Ticket)
            .where(Ticket.status.in_(lifecycle.OPEN_STATUSES), Ticket.overdue.is_(None))
            .where(or_(Ticket.verify_by < now, Ticket.follow_up_by < now))
            .with_for_update(skip_locked=True)
        )
        for ticket in candidates:
            deadlines = self.policy.deadlines(self.calendar, ticket.created_at, ticket.dispatched_at)
            clock = overdue(deadlines, ticket.status, now)
            if clock is None:
                continue
            ticket.overdue = clock
            ticket.escalated_at = ticket.escalated_at or now
            session.add(_event(ticket, None, "escalated", at=now, note=f"overdue: {clock}"))
            flagged.append(ticket.number)
        return flagged

    # ---- helpers -------------------------------------------------------------------------
    def _first_response(self, ticket: Ticket, actor: Actor, now: datetime) -> None:
        if ticket.first_response_at is None and actor.user_id is not None:
            ticket.first_response_at = now

    def _by_number(self, session: Session, number: str) -> Ticket:
        ticket = session.scalar(select(Ticket).where(Ticket.number == number))
        if ticket is None:
            raise NotFound(f"ticket {number} not found")
        return ticket

    def _existing(self, session: Session, new: NewTicket, call: CallRecord | None) -> Ticket | None:
        if call is not None:
            found = session.scalar(select(Ticket).where(Ticket.origin_call_id == call.id))
            if found is not None:
                return found
        if new.source is not None and new.external_id is not None:
            return session.scalar(
                select(Ticket).where(Ticket.source == new.source, Ticket.external_id == new.external_id)
            )
        return None

    def _category(self, session: Session, code: str) -> Category:
        category = session.scalar(select(Category).where(Category.code == code, Category.active.is_(True)))
        if category is None:
            raise InvalidInput("category", f"unknown category {code!r}")
        return category

    def _agency(self, session: Session, code: str) -> Agency:
        agency = session.scalar(select(Agency).where(Agency.code == code, Agency.active.is_(True)))
        if agency is None:
            raise InvalidInput("agency", f"unknown agency {code!r}")
        return agency

    def _call(self, session: Session, key: CallKey) -> CallRecord:
        return ensure_call(session, key, self.clock())


def ensure_call(session: Session, key: CallKey, now: datetime) -> CallRecord:
    """The call row for (system, linkedid), created if new; safe against concurrent twins."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(
        insert(CallRecord)
        .values(system_name=key.system_name, linkedid=key.linkedid, caller_number=key.caller_number,
                started_at=now, ivr={})
        .on_conflict_do_nothing()
    )  # fmt: skip
    return session.scalars(
        select(CallRecord).where(
            CallRecord.system_name == key.system_name, CallRecord.linkedid == key.linkedid
        )
    ).one()


def forward_payload(ticket: Ticket, category: Category | None, note: str) -> dict[str, object]:
    """What another instance receives. A confidential reporter is never sent onward."""
    reporter: dict[str, object] = (
        {"hidden": True}
        if ticket.confidential
        else {
            "name": ticket.reporter_name,
            "contact": ticket.reporter_contact,
            "number": ticket.reporter_number,
        }
    )
    return {
        "source_ticket": ticket.number,
        "channel": ticket.channel,
        "category": category.code if category else None,
        "priority": ticket.priority,
        "summary": ticket.summary,
        "description": ticket.description,
        "location_text": ticket.location_text,
        "district": ticket.district,
        "reporter": reporter,
        "created_at": ticket.created_at.isoformat(),
        "note": note,
    }


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise InvalidInput(name, f"must be one of {', '.join(choices)}")


def _event(
    ticket: Ticket,
    actor: Actor | None,
    kind: str,
    *,
    at: datetime,
    from_status: str | None = None,
    to_status: str | None = None,
    agency_id: int | None = None,
    note: str = "",
) -> TicketEvent:
    return TicketEvent(
        ticket_id=ticket.id,
        at=at,
        actor_id=actor.user_id if actor else None,
        actor=actor.username if actor else "system",
        kind=kind,
        from_status=from_status,
        to_status=to_status,
        agency_id=agency_id,
        note=note,
    )


def _twin_key(new: NewTicket, call: CallRecord | None) -> object | None:
    """What makes two creation requests the same report: the same call, or the same inbound
    report of the same source. None for a report that can have no twin."""
    if call is not None:
        return ("call", call.id)
    if new.source is not None and new.external_id is not None:
        return ("inbound", new.source, new.external_id)
    return None
