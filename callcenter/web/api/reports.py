"""Reports: operator and OPD scores from the tickets, their trail and their reviews."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from callcenter.auth.models import User
from callcenter.auth.roles import Role
from callcenter.dispatch.models import Agency
from callcenter.tickets.models import Ticket, TicketEvent, TicketReview
from callcenter.tickets.scoring import TicketFacts, score
from callcenter.tickets.sla import WorkCalendar

# Trail entries that count as somebody working on the ticket.
WORK_KINDS = ("start", "resolve", "reject", "release", "comment", "dispatched", "forwarded")


def ticket_facts(
    session: Session,
    by: str,
    created_from: datetime | None = None,
    created_to: datetime | None = None,
) -> list[TicketFacts]:
    """Facts per ticket. First response depends on whom we score: the command-center operator's
    first action after creation, or the OPD operators' first action after the dispatch."""
    query = select(Ticket)
    if created_from:
        query = query.where(Ticket.created_at >= created_from)
    if created_to:
        query = query.where(Ticket.created_at < created_to)
    tickets = list(session.scalars(query.order_by(Ticket.id)))
    if not tickets:
        return []
    ids = [t.id for t in tickets]
    agencies = dict(session.execute(select(Agency.id, Agency.code)).all())
    users = {u.id: u for u in session.scalars(select(User))}
    events: dict[int, list[TicketEvent]] = defaultdict(list)
    for event in session.scalars(
        select(TicketEvent).where(TicketEvent.ticket_id.in_(ids)).order_by(TicketEvent.id)
    ):
        events[event.ticket_id].append(event)
    reviews: dict[int, list[TicketReview]] = defaultdict(list)
    for review in session.scalars(select(TicketReview).where(TicketReview.ticket_id.in_(ids))):
        reviews[review.ticket_id].append(review)
    facts = []
    for ticket in tickets:
        trail = events[ticket.id]
        # The operator is the command-center user who first worked the ticket; the OPD's first
        # response is its operators' first action after the (last) dispatch.
        center = [
            e for e in trail
            if e.kind in WORK_KINDS and e.actor_id is not None
            and users[e.actor_id].role != Role.OPD_OPERATOR.value
        ]  # fmt: skip
        operator = center[0].actor if center else None
        opd_actions = [
            e.at for e in trail
            if e.actor_id is not None and users[e.actor_id].role == Role.OPD_OPERATOR.value
            and e.kind in WORK_KINDS and (ticket.dispatched_at is None or e.at >= ticket.dispatched_at)
        ]  # fmt: skip
        if by == "agency":
            first_response = min(opd_actions) if opd_actions else None
        else:
            first_response = center[0].at if center else None
        within = None
        if ticket.resolved_at is not None:
            deadline = ticket.follow_up_by or ticket.verify_by
            within = ticket.resolved_at <= deadline
        facts.append(
            TicketFacts(
                number=ticket.number,
                agency=agencies.get(ticket.agency_id) if ticket.agency_id else None,
                operator=operator,
                created_at=ticket.created_at,
                dispatched_at=ticket.dispatched_at,
                first_response_at=first_response,
                resolved_at=ticket.resolved_at,
                status=ticket.status,
                reopen_count=ticket.reopen_count,
                within_sla=within,
                supervisor_scores=tuple(r.score for r in reviews[ticket.id] if r.kind == "supervisor"),
                citizen_ratings=tuple(r.score for r in reviews[ticket.id] if r.kind == "citizen"),
            )
        )
    return facts


def scores_report(
    session: Session,
    calendar: WorkCalendar,
    by: str,
    created_from: datetime | None = None,
    created_to: datetime | None = None,
) -> list[dict[str, object]]:
    facts = ticket_facts(session, by, created_from, created_to)
    return [s.as_row() for s in score(facts, by=by, calendar=calendar)]  # type: ignore[arg-type]
