"""The recording catalogue: a closed recording gets its row, linked to its call, with what the
integrity check found in each of its files (:mod:`callcenter.recording.integrity`).

Idempotent: the same Hangup seen twice (a replay, a reconnect, two engines watching one server)
finds the row already there and changes nothing; only the first sighting is reported as new, so a
failed recording is announced once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from callcenter.calls.records import CallRecord
from callcenter.recording.closed import RecordingClosed
from callcenter.recording.integrity import CataloguedFile, RecordingCheck, VerifyReport
from callcenter.recording.models import FAILED, Recording, RecordingFile
from callcenter.storage.base import utcnow
from callcenter.tickets.service import CallKey, ensure_call


@dataclass(frozen=True)
class Catalogued:
    recording_id: int
    call_id: int
    created: bool  # False: seen before, nothing changed
    status: str  # ok | failed
    failure: str


def catalogue(
    session: Session, closed: RecordingClosed, check: RecordingCheck, now: datetime | None = None
) -> Catalogued:
    """The recording's row (created with its file rows if new). ``check`` is made beforehand,
    off the event loop and outside this transaction, so no lock is held while files are read."""
    now = now or utcnow()
    call = ensure_call(session, CallKey(closed.system_name, closed.linkedid, closed.caller_number), now)
    if call.ended_at is None:
        call.ended_at = now
    path = str(closed.base)
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    # Insert-or-nothing on the unique path: two sightings racing make one row, and the loser
    # learns it lost (no id returned) instead of failing on the constraint.
    recording_id = session.scalar(
        insert(Recording)
        .values(
            call_id=call.id, path=path, closed_at=now, status=check.status, failure=check.failure,
            duration_seconds=check.duration_seconds, legal_hold=False, legal_hold_by="",
            legal_hold_reason="",
        )
        .on_conflict_do_nothing(index_elements=["path"])
        .returning(Recording.id)
    )  # fmt: skip
    if recording_id is None:
        existing = session.scalars(select(Recording).where(Recording.path == path)).one()
        return Catalogued(existing.id, existing.call_id, False, existing.status, existing.failure)
    for file in check.files:
        wav = file.wav
        session.add(
            RecordingFile(
                recording_id=recording_id,
                kind=file.kind,
                path=str(file.path),
                status=file.status,
                failure=file.failure,
                size_bytes=file.size_bytes,
                format=wav.format if wav else "",
                sample_rate=wav.sample_rate if wav else None,
                channels=wav.channels if wav else None,
                sample_width=wav.sample_width if wav else None,
                duration_seconds=wav.duration_seconds if wav else None,
                sha256=file.sha256,
                checked_at=now,
            )
        )
    session.flush()
    return Catalogued(recording_id, call.id, True, check.status, check.failure)


def files_of(session: Session, recording_id: int) -> list[RecordingFile]:
    """A recording's files in a fixed order (mixed, caller, agent), for pages and players."""
    order = {"mixed": 0, "caller": 1, "agent": 2}
    rows = session.scalars(select(RecordingFile).where(RecordingFile.recording_id == recording_id))
    return sorted(rows, key=lambda f: order.get(f.kind, 9))


def catalogued_files(
    session: Session, recording_id: int | None = None
) -> tuple[list[CataloguedFile], VerifyReport]:
    """Every file ``recordings verify`` must re-hash (or those of one recording), and a report
    holding what it skips.

    Skipped (counted, not problems): files of recordings retention deleted, files that had no
    hash when catalogued (missing or unreadable then: reported as a failure at the time), and
    recordings catalogued before hashes were kept.
    """
    only = [Recording.id == recording_id] if recording_id is not None else []
    report = VerifyReport()
    report.deleted_by_retention = (
        session.scalar(
            select(func.count()).select_from(Recording).where(Recording.deleted_at.is_not(None), *only)
        )
        or 0
    )
    report.not_hashed = (
        session.scalar(
            select(func.count())
            .select_from(Recording)
            .where(
                Recording.deleted_at.is_(None),
                ~select(RecordingFile.id).where(RecordingFile.recording_id == Recording.id).exists(),
                *only,
            )
        )
        or 0
    )
    rows = session.execute(
        select(RecordingFile, CallRecord.linkedid)
        .join(Recording, Recording.id == RecordingFile.recording_id)
        .join(CallRecord, CallRecord.id == Recording.call_id)
        .where(Recording.deleted_at.is_(None), *only)
        .order_by(RecordingFile.recording_id, RecordingFile.id)
    ).all()
    files: list[CataloguedFile] = []
    for file, linkedid in rows:
        if file.status == FAILED:
            report.failed_when_recorded += 1
        if not file.sha256:
            continue
        files.append(
            CataloguedFile(
                file.recording_id, linkedid, file.kind, Path(file.path), file.sha256, file.size_bytes
            )
        )
    return files, report
