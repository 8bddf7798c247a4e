"""The persisted call log, written from the live state's changes.

An owned task of the engine reads the bus and records, per call (system name, Linkedid): when it
started, which queue it waited in, whether and when an agent answered and after how long, which
agent, and when it ended. Replays and resyncs are harmless: every write is an upsert of the same
row, and a field once set (answered_at, say) is not moved by a later duplicate.

The log is what "today" means on the wallboard (answered, abandoned, service level, calls per
hour) and what the staffing advice measures; the queue counters Asterisk keeps restart with it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from callcenter.calls.live import (
    AgentAnswered,
    AgentCallEnded,
    CallEnded,
    CallerLeft,
    CallerWaiting,
    CallStarted,
    Change,
)
from callcenter.calls.records import CallRecord
from callcenter.events import EventBus
from callcenter.storage.database import Database
from callcenter.tickets.service import CallKey, ensure_call

log = logging.getLogger(__name__)

SERVICE_VAR = "CC_SERVICE"
SERVICES = ("112", "hotline", "callback")


def _at(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def _call(session: Session, system_name: str, linkedid: str, number: str, started: datetime) -> CallRecord:
    return ensure_call(session, CallKey(system_name, linkedid, number[:40]), started)


def _started(session: Session, change: CallStarted, now: datetime) -> None:
    _call(session, change.system_name, change.linkedid, change.caller_number, _at(change.started))


def _waiting(session: Session, change: CallerWaiting, now: datetime) -> None:
    call = _call(session, change.system_name, change.linkedid, change.caller_number, _at(change.joined))
    call.queue = change.queue[:40]
    service = change.variables.get(SERVICE_VAR, "")
    if service in SERVICES and not call.service:
        call.service = service


def _answered(session: Session, change: AgentAnswered, now: datetime) -> None:
    call = _call(session, change.system_name, change.linkedid, change.caller_number, now)
    if call.answered_at is None:
        call.answered_at = now
        call.wait_seconds = round(change.wait, 3)
        call.agent = change.member_name[:64]
        call.queue = change.queue[:40]


def _left(session: Session, change: CallerLeft, now: datetime) -> None:
    call = _call(session, change.system_name, change.linkedid, change.caller_number, now)
    call.queue = call.queue or change.queue[:40]
    if change.abandoned and call.answered_at is None and call.wait_seconds is None:
        call.wait_seconds = round(change.wait, 3)


def _agent_done(session: Session, change: AgentCallEnded, now: datetime) -> None:
    call = session.scalar(
        select(CallRecord).where(
            CallRecord.system_name == change.system_name, CallRecord.linkedid == change.linkedid
        )
    )
    if call is not None and call.ended_at is None:
        call.ended_at = now


def _ended(session: Session, change: CallEnded, now: datetime) -> None:
    call = _call(session, change.system_name, change.linkedid, change.caller_number, _at(change.started))
    if call.ended_at is None:
        call.ended_at = now


# Change type -> how it is written. Explicit, like every dispatch table here.
@dataclass(frozen=True)
class CallLogged:
    """Published after a change was written to the call log."""

    system_name: str
    linkedid: str
    change: str  # the change's type name, e.g. "AgentAnswered"


Writer = Callable[[Session, Any, datetime], None]
WRITERS: dict[type[Change], Writer] = {
    CallStarted: _started,
    CallerWaiting: _waiting,
    AgentAnswered: _answered,
    CallerLeft: _left,
    AgentCallEnded: _agent_done,
    CallEnded: _ended,
}


class CallLog:
    def __init__(
        self, database: Database, bus: EventBus, clock: Callable[[], datetime] | None = None
    ) -> None:
        self._database = database
        self._bus = bus
        self._clock = clock or (lambda: datetime.now(UTC))
        self.written = 0

    async def run(self) -> None:
        async with self._bus.subscribe() as changes:
            while True:
                change = await changes.get()
                writer = WRITERS.get(type(change)) if isinstance(change, Change) else None
                if writer is not None:
                    await self.write(writer, change)

    async def write(self, writer: Writer, change: object) -> None:
        now = self._clock()
        try:
            await self._database.run(lambda session: writer(session, change, now))
        except SQLAlchemyError as exc:
            # The live view goes on; the log misses this change and says so.
            log.error("call log: %s not written: %s", type(change).__name__, str(exc).splitlines()[0])
            return
        self.written += 1
        linkedid = getattr(change, "linkedid", "")
        self._bus.publish(CallLogged(getattr(change, "system_name", ""), linkedid, type(change).__name__))
