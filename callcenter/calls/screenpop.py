"""What an agent's console shows when a queue call rings it and when the agent answers.

The call as the queue saw it, what the IVR collected, the ticket already made for this call (the
hotline IVR makes one) or a pre-filled draft, and the caller's history: earlier tickets, earlier
calls and how they were classified, and an active prank block. Synchronous: it runs in one
read transaction on an executor thread.

The caller number and everything the IVR collected are untrusted: they are used only as bound
query parameters and leave as JSON data for the console to escape.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from callcenter.calls.blocks import active_block, normalize_number
from callcenter.calls.models import CallClassification
from callcenter.calls.records import CallRecord
from callcenter.dispatch.models import Category
from callcenter.errors import InvalidInput
from callcenter.tickets.models import Ticket

HISTORY_LIMIT = 10
# Channel variables set by the dialplan and the IVR (manager.conf channelvars).
SERVICE_VAR, CHOICE_VAR, TICKET_VAR = "CC_SERVICE", "CC_CHOICE", "CC_TICKET"
CHANNEL_OF_SERVICE = {"112": "112", "hotline": "hotline"}


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def screen_pop(
    session: Session | None,
    *,
    stage: str,
    system_name: str,
    linkedid: str,
    caller_number: str,
    caller_name: str,
    queue: str,
    wait: float,
    variables: Mapping[str, str],
) -> dict[str, object]:
    """The pop; with no session (the database did not answer) only what AMI told us, so the agent
    still sees the call and a draft, without the caller's history."""
    call = (
        session.scalar(
            select(CallRecord).where(CallRecord.system_name == system_name, CallRecord.linkedid == linkedid)
        )
        if session is not None
        else None
    )
    ivr: dict[str, str] = dict(call.ivr) if call is not None and call.ivr else {}
    if variables.get(CHOICE_VAR) and "choice" not in ivr:
        ivr["choice"] = variables[CHOICE_VAR]
    service = variables.get(SERVICE_VAR) or (call.service if call is not None else "") or ""
    ticket = (
        session.scalar(select(Ticket).where(Ticket.origin_call_id == call.id))
        if session is not None and call is not None
        else None
    )
    return {
        "type": "screen_pop",
        "stage": stage,
        "call": {
            "system_name": system_name,
            "linkedid": linkedid,
            "caller_number": caller_number,
            "caller_name": caller_name,
            "queue": queue,
            "service": service,
            "wait_seconds": round(wait, 1),
        },
        "ivr": ivr,
        "ticket": _ticket(session, ticket) if session is not None and ticket is not None else None,
        "draft": None if ticket is not None else _draft(service, caller_number, ivr),
        "history": (
            _history(session, caller_number, exclude_call=call.id if call is not None else None)
            if session is not None
            else None
        ),
    }


def _ticket(session: Session, ticket: Ticket) -> dict[str, object]:
    category = session.get(Category, ticket.category_id) if ticket.category_id is not None else None
    return {
        "number": ticket.number,
        "status": ticket.status,
        "summary": ticket.summary,
        "category": category.code if category is not None else None,
        "district": ticket.district,
        "created_at": iso(ticket.created_at),
    }


def _draft(service: str, caller_number: str, ivr: Mapping[str, str]) -> dict[str, object]:
    """The new-ticket form, filled with what is already known; the agent completes it."""
    return {
        "channel": CHANNEL_OF_SERVICE.get(service, "112"),
        "category": ivr.get("category"),
        "district": ivr.get("district", ""),
        "reporter_number": caller_number,
        "summary": "",
    }


def _history(session: Session, caller_number: str, exclude_call: int | None) -> dict[str, object]:
    if not caller_number:
        # Withheld number: there is nobody to look up, and "" would match every unknown caller.
        return {"tickets": [], "calls": [], "marks": {}, "block": None}
    tickets = session.scalars(
        select(Ticket)
        .where(Ticket.reporter_number == caller_number)
        .order_by(Ticket.created_at.desc())
        .limit(HISTORY_LIMIT)
    )
    calls = session.execute(
        select(CallRecord, CallClassification.code)
        .outerjoin(CallClassification, CallClassification.call_id == CallRecord.id)
        .where(CallRecord.caller_number == caller_number, CallRecord.id != (exclude_call or -1))
        .order_by(CallRecord.started_at.desc())
        .limit(HISTORY_LIMIT)
    ).all()
    # How this number's earlier calls were judged, over all of them, not only the latest ten.
    marks = dict(
        session.execute(
            select(CallClassification.code, func.count())
            .join(CallRecord, CallRecord.id == CallClassification.call_id)
            .where(CallRecord.caller_number == caller_number)
            .group_by(CallClassification.code)
        ).all()
    )
    block = _active_block(session, caller_number)
    return {
        "tickets": [
            {"number": t.number, "status": t.status, "summary": t.summary, "created_at": iso(t.created_at)}
            for t in tickets
        ],
        "calls": [
            {
                "started_at": iso(c.started_at),
                "service": c.service,
                "queue": c.queue,
                "answered": c.answered_at is not None,
                "agent": c.agent,
                "classification": code,
            }
            for c, code in calls
        ],
        "marks": marks,
        "block": block,
    }


def _active_block(session: Session, caller_number: str) -> dict[str, object] | None:
    try:
        number = normalize_number(caller_number)
    except InvalidInput:
        return None  # not a dialable number: it cannot have been blocked
    block = active_block(session, number, datetime.now(UTC))
    if block is None:
        return None
    return {"reason": block.reason, "expires_at": iso(block.expires_at), "since": iso(block.created_at)}
