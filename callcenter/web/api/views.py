"""How tickets look from outside: JSON for the API, rows for CSV exports.

The reporter of a confidential report is replaced by ``{"hidden": true}`` for anyone without the
permission to see it (OPD operators), and always in exports. The transcripts of its calls are
withheld from them too: the reporter's own voice and words identify them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from callcenter.auth.actor import Actor
from callcenter.auth.roles import Permission
from callcenter.dispatch.models import Agency, Category
from callcenter.tickets.models import Ticket
from callcenter.tickets.service import TicketDetail
from callcenter.tickets.sla import DEFAULT_TARGETS, answered_within
from callcenter.transcription.jobmodels import Transcript
from callcenter.transcription.search import transcripts_for_ticket


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


class Directory:
    """Agency and category codes by id, loaded once per request (both tables are small)."""

    def __init__(self, session: Session | None) -> None:
        self.agencies: dict[int, str] = {}
        self.categories: dict[int, str] = {}
        if session is not None:
            self.agencies = dict(session.execute(select(Agency.id, Agency.code)).all())
            self.categories = dict(session.execute(select(Category.id, Category.code)).all())

    @classmethod
    def known(cls, *, categories: dict[int, str]) -> Directory:
        """A directory of codes the caller already has, for shaping without a query."""
        directory = cls(None)
        directory.categories = dict(categories)
        return directory

    def agency(self, agency_id: int | None) -> str | None:
        return self.agencies.get(agency_id) if agency_id is not None else None

    def category(self, category_id: int | None) -> str | None:
        return self.categories.get(category_id) if category_id is not None else None


def reporter(ticket: Ticket, show: bool) -> dict[str, object]:
    if ticket.confidential and not show:
        return {"hidden": True}
    return {
        "hidden": False,
        "name": ticket.reporter_name,
        "contact": ticket.reporter_contact,
        "number": ticket.reporter_number,
    }


def ticket_json(ticket: Ticket, actor: Actor, directory: Directory) -> dict[str, object]:
    return {
        "number": ticket.number,
        "status": ticket.status,
        "channel": ticket.channel,
        "priority": ticket.priority,
        "category": directory.category(ticket.category_id),
        "agency": directory.agency(ticket.agency_id),
        "summary": ticket.summary,
        "description": ticket.description,
        "location_text": ticket.location_text,
        "district": ticket.district,
        "reporter": reporter(ticket, actor.can(Permission.SEE_CONFIDENTIAL)),
        "confidential": ticket.confidential,
        "anonymous": ticket.anonymous,
        "created_at": iso(ticket.created_at),
        "updated_at": iso(ticket.updated_at),
        "dispatched_at": iso(ticket.dispatched_at),
        "first_response_at": iso(ticket.first_response_at),
        "resolved_at": iso(ticket.resolved_at),
        "deadlines": {"verify_by": iso(ticket.verify_by), "follow_up_by": iso(ticket.follow_up_by)},
        "overdue": ticket.overdue,
        "escalated_at": iso(ticket.escalated_at),
        "reopen_count": ticket.reopen_count,
        "rejection_reason": ticket.rejection_reason,
        "forwarded_to": directory.agency(ticket.forwarded_to_id),
    }


def shows_reporter(ticket: Ticket, actor: Actor) -> bool:
    """Whether ``actor`` may see who reported ``ticket``: the caller number, the transcripts."""
    return actor.can(Permission.SEE_CONFIDENTIAL) or not ticket.confidential


def ticket_transcripts(session: Session, detail: TicketDetail, actor: Actor) -> list[Transcript]:
    """The transcripts of the ticket's calls that ``actor`` may read (none of a confidential
    report for an OPD operator)."""
    if not shows_reporter(detail.ticket, actor):
        return []
    return transcripts_for_ticket(session, detail.ticket.id)


def detail_json(
    detail: TicketDetail, actor: Actor, directory: Directory, transcripts: Sequence[Transcript] = ()
) -> dict[str, object]:
    """The ticket with its trail, calls and ``transcripts`` (from :func:`ticket_transcripts`)."""
    out = ticket_json(detail.ticket, actor, directory)
    show = shows_reporter(detail.ticket, actor)
    out["trail"] = [
        {
            "at": iso(e.at),
            "actor": e.actor,
            "kind": e.kind,
            "from": e.from_status,
            "to": e.to_status,
            "agency": directory.agency(e.agency_id),
            "note": e.note,
        }
        for e in detail.events
    ]
    recorded = {call_id for call_id, _ in detail.recordings}
    out["calls"] = [
        {
            "system_name": c.system_name,
            "linkedid": c.linkedid,
            "caller_number": c.caller_number if show else None,
            "queue": c.queue,
            "started_at": iso(c.started_at),
            "wait_seconds": c.wait_seconds,
            "answered_within_service_level": (
                answered_within(DEFAULT_TARGETS[c.queue], c.wait_seconds)
                if c.queue in DEFAULT_TARGETS
                else None
            ),
            "recorded": c.id in recorded,
        }
        for c in detail.calls
    ]
    calls = {c.id: c for c in detail.calls}
    out["transcripts_hidden"] = not show
    out["transcripts"] = [
        {
            "id": t.id,
            "system_name": calls[t.call_id].system_name if t.call_id in calls else None,
            "linkedid": calls[t.call_id].linkedid if t.call_id in calls else None,
            "recording_id": t.recording_id,
            "leg": t.leg,
            "speaker": t.speaker,
            "engine": t.engine,
            "language": t.language,
            "text": t.text,
            "created_at": iso(t.created_at),
        }
        for t in (transcripts if show else ())
    ]
    return out


EXPORT_COLUMNS = (
    "number", "status", "channel", "priority", "category", "agency", "summary", "district",
    "reporter_name", "reporter_contact", "reporter_number", "created_at", "dispatched_at",
    "resolved_at", "verify_by", "follow_up_by", "overdue", "reopen_count",
)  # fmt: skip


def export_row(ticket: Ticket, directory: Directory) -> list[object]:
    hidden = ticket.confidential
    return [
        ticket.number, ticket.status, ticket.channel, ticket.priority,
        directory.category(ticket.category_id), directory.agency(ticket.agency_id), ticket.summary,
        ticket.district,
        "" if hidden else ticket.reporter_name, "" if hidden else ticket.reporter_contact,
        "" if hidden else ticket.reporter_number,
        iso(ticket.created_at), iso(ticket.dispatched_at), iso(ticket.resolved_at), iso(ticket.verify_by),
        iso(ticket.follow_up_by), ticket.overdue or "", ticket.reopen_count,
    ]  # fmt: skip
