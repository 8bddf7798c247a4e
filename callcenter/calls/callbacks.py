"""The callback list: 112 calls that were dropped or abandoned before a human could help, to be
called back from the agent console. Synchronous, like the other services (``Database.run``).

Statuses:
- ``menunggu``  waiting to be called back (the only open status)
- ``dihubungi`` the caller was reached: done
- ``gagal``     given up: the number cannot be reached, or no answer after ``max_attempts`` tries
- ``batal``     cancelled: no longer needed (the caller rang again and was helped, say)

An attempt starts with :func:`start_attempt` (the console places the call with Originate) and
ends with :func:`record_outcome`: ``dihubungi`` (reached), ``tidak_diangkat`` (no answer or busy:
back to the list unless that was the last allowed try), ``gagal`` or ``batal``. Reached and no
answer are outcomes of a call, so they need an attempt in progress; giving up and cancelling do
not. While an attempt is in progress nobody else may start one, so a citizen is not rung by two
agents at once; an attempt left open longer than ``STALE_ATTEMPT`` (a console that crashed) may
be taken over.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import MappingProxyType

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from callcenter.auth.actor import Actor
from callcenter.auth.roles import Permission
from callcenter.calls.blocks import check_call_key, normalize_number
from callcenter.calls.models import Callback
from callcenter.errors import Conflict, InvalidInput, NotFound
from callcenter.tickets.service import CallKey, ensure_call

WAITING = "menunggu"
REACHED = "dihubungi"
FAILED = "gagal"
CANCELLED = "batal"
STATUSES = (WAITING, REACHED, FAILED, CANCELLED)

NO_ANSWER = "tidak_diangkat"  # an outcome, not a status: the callback goes back to the list
OUTCOMES = (REACHED, NO_ANSWER, FAILED, CANCELLED)
# Outcomes that report on a placed call, so they need an attempt in progress.
NEEDS_ATTEMPT = frozenset({REACHED, NO_ANSWER})

ABANDONED = "abandoned"  # the caller hung up while waiting in the queue
DROPPED = "dropped"  # the call was cut off (line dropped, agent leg failed)
REASONS = (ABANDONED, DROPPED)

MAX_ATTEMPTS = 3
STALE_ATTEMPT = timedelta(minutes=10)
MAX_NOTE = 1000

# (status, outcome) -> status after it. Nothing leaves a closed status.
TRANSITIONS: Mapping[tuple[str, str], str] = MappingProxyType(
    {
        (WAITING, REACHED): REACHED,
        (WAITING, NO_ANSWER): WAITING,
        (WAITING, FAILED): FAILED,
        (WAITING, CANCELLED): CANCELLED,
    }
)


# Queues whose abandoned callers are called back: emergencies only; the hotline caller can
# ring again.
CALLBACK_QUEUES = ("q112",)


@dataclass(frozen=True)
class CallbackListed:
    """Published on the bus when a caller lands on the callback list."""

    callback_id: int
    system_name: str
    linkedid: str
    number: str
    queue: str


class IllegalCallbackMove(Conflict):
    """The outcome or attempt is not allowed in the callback's current state."""


# ---- the rules (pure) ------------------------------------------------------------------------


def next_status(
    status: str, outcome: str, *, attempt_open: bool, attempts: int, max_attempts: int = MAX_ATTEMPTS
) -> str:
    """The status after ``outcome``, or :class:`IllegalCallbackMove` saying why not."""
    if outcome not in OUTCOMES:
        raise InvalidInput("outcome", f"must be one of {', '.join(OUTCOMES)}")
    target = TRANSITIONS.get((status, outcome))
    if target is None:
        raise IllegalCallbackMove(f"the callback is '{status}', which is closed; no outcome can be recorded")
    if outcome in NEEDS_ATTEMPT and not attempt_open:
        raise IllegalCallbackMove(f"'{outcome}' reports on a call: start an attempt first")
    if target == WAITING and attempts >= max_attempts:
        return FAILED  # that was the last try
    return target


def check_start(status: str, *, attempt_open: bool, placed_at: datetime | None, now: datetime) -> None:
    """Raise :class:`IllegalCallbackMove` unless a new attempt may start now."""
    if status != WAITING:
        raise IllegalCallbackMove(f"the callback is '{status}'; only a '{WAITING}' callback can be called")
    if attempt_open and placed_at is not None and now - placed_at < STALE_ATTEMPT:
        raise IllegalCallbackMove(f"the caller is being called already (since {placed_at.isoformat()})")


# ---- the list --------------------------------------------------------------------------------


def add_callback(
    session: Session,
    system_name: str,
    linkedid: str,
    reason: str,
    now: datetime,
    *,
    number: str = "",
    queue: str = "",
) -> tuple[Callback, bool]:
    """Put a dropped or abandoned call on the list; returns (callback, created).

    Once per call: a replayed event for the same (system, Linkedid) returns the entry made the
    first time. The number and queue default to the call's; a call without a number that can be
    dialled (withheld caller ID) cannot be called back and raises :class:`InvalidInput`.
    """
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime")
    check_call_key(system_name, linkedid)
    if reason not in REASONS:
        raise InvalidInput("reason", f"must be one of {', '.join(REASONS)}")
    if number:
        number = normalize_number(number)
    if len(queue) > 40:
        raise InvalidInput("queue", "is longer than 40 characters")
    call = ensure_call(session, CallKey(system_name, linkedid, number), now)
    number = number or normalize_number(call.caller_number)
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    inserted = session.execute(
        insert(Callback)
        .values(call_id=call.id, number=number, queue=queue or call.queue, reason=reason, status=WAITING,
                created_at=now, updated_at=now, attempts=0, attempt_open=False, last_outcome="",
                last_note="")
        .on_conflict_do_nothing()
        .returning(Callback.id)
    ).scalar()  # fmt: skip
    created = inserted is not None  # None: the call was on the list already
    callback = session.scalars(
        select(Callback).where(Callback.call_id == call.id).execution_options(populate_existing=True)
    ).one()
    return callback, created


def open_callbacks(session: Session, *, limit: int = 200) -> list[Callback]:
    """Callbacks still waiting, oldest first: the caller who has waited longest is called first."""
    return list(
        session.scalars(
            select(Callback)
            .where(Callback.status == WAITING)
            .order_by(Callback.created_at, Callback.id)
            .limit(limit)
        )
    )


def get_callback(session: Session, callback_id: int, *, for_update: bool = False) -> Callback:
    query = select(Callback).where(Callback.id == callback_id)
    if for_update:
        query = query.with_for_update()
    callback = session.scalar(query)
    if callback is None:
        raise NotFound(f"callback {callback_id} not found")
    return callback


def start_attempt(session: Session, callback_id: int, actor: Actor, now: datetime) -> Callback:
    """Mark that ``actor`` is calling the citizen back now (before the console's Originate)."""
    actor.require(Permission.CALLBACK_PLACE)
    callback = get_callback(session, callback_id, for_update=True)
    check_start(callback.status, attempt_open=callback.attempt_open, placed_at=callback.placed_at, now=now)
    callback.attempts += 1
    callback.attempt_open = True
    callback.placed_by_id = actor.user_id
    callback.placed_at = now
    callback.updated_at = now
    session.flush()
    return callback


def record_outcome(
    session: Session,
    callback_id: int,
    outcome: str,
    actor: Actor,
    now: datetime,
    note: str = "",
    *,
    max_attempts: int = MAX_ATTEMPTS,
) -> Callback:
    """Record how the attempt ended (or give up / cancel); see the module docstring."""
    actor.require(Permission.CALLBACK_PLACE)
    note = note.strip()
    if len(note) > MAX_NOTE:
        raise InvalidInput("note", f"is longer than {MAX_NOTE} characters")
    if max_attempts < 1:
        raise ValueError("max_attempts must be at least 1")
    callback = get_callback(session, callback_id, for_update=True)
    status = next_status(
        callback.status, outcome, attempt_open=callback.attempt_open, attempts=callback.attempts,
        max_attempts=max_attempts,
    )  # fmt: skip
    callback.status = status
    callback.attempt_open = False
    callback.last_outcome = outcome
    callback.last_note = note
    callback.outcome_by_id = actor.user_id
    callback.updated_at = now
    if status != WAITING:
        callback.closed_at = now
    session.flush()
    return callback
