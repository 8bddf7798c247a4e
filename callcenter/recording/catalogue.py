"""The recording catalogue: a closed recording gets its row, linked to its call.

Idempotent: the same Hangup seen twice (a replay, a reconnect) finds the row already there.
Hashes, durations and checks come with the recorder capability.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from callcenter.recording.closed import RecordingClosed
from callcenter.recording.models import Recording
from callcenter.storage.base import utcnow
from callcenter.tickets.service import CallKey, ensure_call


def catalogue(session: Session, closed: RecordingClosed) -> Recording:
    now = utcnow()
    call = ensure_call(session, CallKey(closed.system_name, closed.linkedid, closed.caller_number), now)
    if call.ended_at is None:
        call.ended_at = now
    path = str(closed.base)
    existing = session.scalar(select(Recording).where(Recording.path == path))
    if existing is not None:
        return existing
    recording = Recording(call_id=call.id, path=path, closed_at=now)
    session.add(recording)
    return recording
