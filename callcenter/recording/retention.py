"""Retention: recordings past their service's period are deleted, unless something needs them.

The rule, in order (the first that applies decides; :func:`decide` is the whole of it, pure):

| recording                                          | outcome                                 |
|----------------------------------------------------|-----------------------------------------|
| on legal hold                                      | kept                                    |
| its call is linked to an open ticket (menunggu,    | kept (``tickets.origin_call_id`` or a   |
| diproses)                                          | ``ticket_calls`` row)                   |
| its service's period is 0                          | kept for ever                           |
| closed less than the period ago                    | kept                                    |
| otherwise                                          | files deleted, row stamped ``deleted_at`` |

Periods: ``retention_days_112`` for 112 calls, ``retention_days_hotline`` for the hotline; any
other call (a callback, a call whose service was never learned) gets the longer of the two, so
no policy ever deletes it earlier than it should.

The row is never deleted: it stays as the record that the recording existed, with its hashes, and
the deletion is appended to the audit log. Files are deleted only inside the recordings folder and
only with names the dialplan makes (:func:`callcenter.recording.integrity.unsafe_reason`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path

from sqlalchemy import ColumnElement, and_, exists, false, or_, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from callcenter.audit.log import RECORDING_DELETE, RECORDING_HOLD, RECORDING_RELEASE, append
from callcenter.calls.records import CallRecord
from callcenter.errors import Conflict, InvalidInput, NotFound
from callcenter.recording.integrity import recording_files, unsafe_reason
from callcenter.recording.models import Recording
from callcenter.settings import Settings
from callcenter.storage.base import utcnow
from callcenter.storage.database import Database
from callcenter.tickets.lifecycle import OPEN_STATUSES
from callcenter.tickets.models import Ticket, TicketCall

log = logging.getLogger(__name__)

SERVICE_112 = "112"
SERVICE_HOTLINE = "hotline"

KEPT_ON_HOLD = "legal hold"
KEPT_OPEN_TICKET = "linked to an open ticket"
KEPT_FOR_EVER = "kept for ever"
KEPT_IN_PERIOD = "within the retention period"
EXPIRED = "past the retention period"

RETENTION_ACTOR = "system:retention"
MAX_HOLD_REASON = 500


@dataclass(frozen=True)
class RetentionPolicy:
    """Days to keep recordings, per service; 0 keeps them for ever."""

    days_112: int
    days_hotline: int

    @classmethod
    def from_settings(cls, settings: Settings) -> RetentionPolicy:
        return cls(settings.retention_days_112, settings.retention_days_hotline)

    def days_for(self, service: str) -> int | None:
        """The period for a call of ``service``; None when it is kept for ever."""
        if service == SERVICE_112:
            days = self.days_112
        elif service == SERVICE_HOTLINE:
            days = self.days_hotline
        elif 0 in (self.days_112, self.days_hotline):
            return None
        else:
            days = max(self.days_112, self.days_hotline)
        return days or None


@dataclass(frozen=True)
class Candidate:
    """What the rule needs to know of one recording."""

    recording_id: int
    service: str
    closed_at: datetime
    legal_hold: bool
    open_ticket: bool


@dataclass(frozen=True)
class Decision:
    recording_id: int
    delete: bool
    reason: str
    days: int | None = None


def decide(candidate: Candidate, policy: RetentionPolicy, now: datetime) -> Decision:
    """Keep or delete one recording (the table in the module docstring). Pure."""
    rid = candidate.recording_id
    if candidate.legal_hold:
        return Decision(rid, False, KEPT_ON_HOLD)
    if candidate.open_ticket:
        return Decision(rid, False, KEPT_OPEN_TICKET)
    days = policy.days_for(candidate.service)
    if days is None:
        return Decision(rid, False, KEPT_FOR_EVER)
    if now - candidate.closed_at < timedelta(days=days):
        return Decision(rid, False, KEPT_IN_PERIOD, days)
    return Decision(rid, True, EXPIRED, days)


def choose(candidates: Iterable[Candidate], policy: RetentionPolicy, now: datetime) -> list[Decision]:
    """The recordings to delete now, oldest first. Pure."""
    decisions = [
        decide(c, policy, now) for c in sorted(candidates, key=lambda c: (c.closed_at, c.recording_id))
    ]
    return [d for d in decisions if d.delete]


def _open_ticket() -> ColumnElement[bool]:
    """True when the recording's call belongs to a ticket that is still open."""
    origin = exists().where(Ticket.origin_call_id == Recording.call_id, Ticket.status.in_(OPEN_STATUSES))
    linked = exists().where(
        TicketCall.call_id == Recording.call_id,
        Ticket.id == TicketCall.ticket_id,
        Ticket.status.in_(OPEN_STATUSES),
    )
    return or_(origin, linked)


def _expired(policy: RetentionPolicy, now: datetime) -> ColumnElement[bool]:
    """The same age rule as :func:`decide`, as SQL, so batches only hold real candidates."""
    clauses: list[ColumnElement[bool]] = []
    for service in (SERVICE_112, SERVICE_HOTLINE):
        days = policy.days_for(service)
        if days is not None:
            cutoff = now - timedelta(days=days)
            clauses.append(and_(CallRecord.service == service, Recording.closed_at <= cutoff))
    other = policy.days_for("")
    if other is not None:
        cutoff = now - timedelta(days=other)
        clauses.append(
            and_(CallRecord.service.not_in((SERVICE_112, SERVICE_HOTLINE)), Recording.closed_at <= cutoff)
        )
    return or_(*clauses) if clauses else false()


def load_candidates(
    session: Session, policy: RetentionPolicy, now: datetime, after_id: int = 0, limit: int = 100
) -> list[Candidate]:
    """Recordings with files that the rule would delete now, by id after ``after_id``.

    On PostgreSQL the rows are locked (rows locked by someone else, a legal hold being placed or
    another node's retention, are skipped) until the caller's transaction ends.
    """
    query = (
        select(
            Recording.id,
            CallRecord.service,
            Recording.closed_at,
            Recording.legal_hold,
            _open_ticket().label("open_ticket"),
        )
        .join(CallRecord, CallRecord.id == Recording.call_id)
        .where(
            Recording.id > after_id,
            Recording.deleted_at.is_(None),
            Recording.legal_hold.is_(False),
            ~_open_ticket(),
            _expired(policy, now),
        )
        .order_by(Recording.id)
        .limit(limit)
        .with_for_update(of=Recording, skip_locked=True)
    )
    return [Candidate(*row) for row in session.execute(query)]


@dataclass
class RetentionBatch:
    deleted: list[int] = field(default_factory=list)
    refused: list[tuple[int, str]] = field(default_factory=list)
    last_id: int = 0
    seen: int = 0


def apply_batch(
    session: Session,
    policy: RetentionPolicy,
    root: Path,
    now: datetime,
    after_id: int = 0,
    limit: int = 100,
) -> RetentionBatch:
    """Delete the files of one batch of expired recordings and stamp their rows. Blocking.

    Files go first, then the row: if the transaction is lost after the files were removed, the
    next run finds the row again, removes nothing more and stamps it.
    """
    batch = RetentionBatch()
    candidates = load_candidates(session, policy, now, after_id, limit)
    batch.seen = len(candidates)
    batch.last_id = max((c.recording_id for c in candidates), default=after_id)
    for decision in choose(candidates, policy, now):
        recording = session.get(Recording, decision.recording_id)
        assert recording is not None  # locked above
        base = Path(recording.path)
        refused = unsafe_reason(base, root)
        if refused is None:
            refused = _remove_files(base)
        if refused is not None:
            batch.refused.append((recording.id, refused))
            continue
        recording.deleted_at = now
        detail = {"path": recording.path, "closed_at": recording.closed_at.isoformat(), "days": decision.days}
        append(session, RETENTION_ACTOR, RECORDING_DELETE, "recording", recording.id, detail, now)
        batch.deleted.append(recording.id)
    session.flush()
    return batch


def _remove_files(base: Path) -> str | None:
    for path in recording_files(base).values():
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            return f"cannot delete {path}: {exc.strerror}"
    return None


def _lock(session: Session, recording_id: int) -> Recording:
    recording = session.scalars(
        select(Recording).where(Recording.id == recording_id).with_for_update()
    ).one_or_none()
    if recording is None:
        raise NotFound(f"recording {recording_id} not found")
    return recording


def place_legal_hold(
    session: Session, recording_id: int, actor: str, reason: str, now: datetime
) -> Recording:
    """Keep a recording's files past retention until the hold is lifted; audited."""
    reason = reason.strip()
    if not reason or len(reason) > MAX_HOLD_REASON:
        raise InvalidInput("reason", f"a legal hold needs a reason of 1 to {MAX_HOLD_REASON} characters")
    recording = _lock(session, recording_id)
    if recording.deleted_at is not None:
        raise Conflict(
            f"recording {recording_id} was deleted by retention on {recording.deleted_at:%Y-%m-%d}"
        )
    if recording.legal_hold:
        raise Conflict(f"recording {recording_id} is on legal hold already (by {recording.legal_hold_by})")
    recording.legal_hold, recording.legal_hold_by = True, actor
    recording.legal_hold_at, recording.legal_hold_reason = now, reason
    append(session, actor, RECORDING_HOLD, "recording", recording_id, {"reason": reason}, now)
    return recording


def lift_legal_hold(session: Session, recording_id: int, actor: str, reason: str, now: datetime) -> Recording:
    """End a legal hold; retention applies again from the next run. Audited, with the reason."""
    reason = reason.strip()
    if not reason or len(reason) > MAX_HOLD_REASON:
        raise InvalidInput(
            "reason", f"lifting a legal hold needs a reason of 1 to {MAX_HOLD_REASON} characters"
        )
    recording = _lock(session, recording_id)
    if not recording.legal_hold:
        raise Conflict(f"recording {recording_id} is not on legal hold")
    held_by = recording.legal_hold_by
    # The hold's who and when stay on the row until the next hold: the audit log has the history.
    recording.legal_hold = False
    append(
        session,
        actor,
        RECORDING_RELEASE,
        "recording",
        recording_id,
        {"reason": reason, "held_by": held_by},
        now,
    )
    return recording


@dataclass(frozen=True)
class RetentionRun:
    deleted: int
    refused: tuple[tuple[int, str], ...]


class RetentionJob:
    """Applies the policy now and then (the engine owns the task running :meth:`run`)."""

    def __init__(
        self,
        database: Database,
        policy: RetentionPolicy,
        root: Path,
        interval: float,
        clock: Callable[[], datetime] = utcnow,
        batch_size: int = 100,
    ) -> None:
        self.database = database
        self.policy = policy
        self.root = root
        self.interval = interval
        self.clock = clock
        self.batch_size = batch_size

    async def run_once(self) -> RetentionRun:
        """One pass over every expired recording, a batch per transaction."""
        now = self.clock()
        deleted, after_id = 0, 0
        refused: list[tuple[int, str]] = []
        while True:
            work = partial(
                apply_batch,
                policy=self.policy,
                root=self.root,
                now=now,
                after_id=after_id,
                limit=self.batch_size,
            )
            batch = await self.database.run(work)
            deleted += len(batch.deleted)
            refused.extend(batch.refused)
            if batch.seen < self.batch_size:
                break
            after_id = batch.last_id
        for recording_id, reason in refused:
            log.error("retention: recording %s kept: %s", recording_id, reason)
        if deleted:
            log.info("retention: %d recording(s) past their period deleted", deleted)
        return RetentionRun(deleted, tuple(refused))

    async def run(self) -> None:
        while True:
            try:
                await self.run_once()
            except SQLAlchemyError as exc:
                log.warning("retention check failed: %s", str(exc).splitlines()[0])
            await asyncio.sleep(self.interval)
