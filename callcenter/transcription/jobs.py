"""The persisted transcription job queue: enqueue, claim with a lease, complete, fail.

Every function takes the caller's :class:`~sqlalchemy.orm.Session` inside a transaction
(``Database.run`` / ``with db.transaction() as s, s.begin()``) and the current time ``now``
(aware UTC), so the rules are tested with explicit clocks and no sleeps.

- :func:`enqueue` is idempotent: one job per (audio file, engine). A replayed Hangup, a reconnect
  or a restart that enqueues the same leg again gets the existing job back, whatever its status.
- :func:`claim` gives one worker one job: a pending one whose time has come, or a running one
  whose lease expired (its worker crashed, was killed, or lost the database). On PostgreSQL the
  row is taken with ``SELECT ... FOR UPDATE SKIP LOCKED``, so workers in any number of processes
  on any number of machines never take the same job and never wait for each other; on SQLite the
  engine's transactions begin with ``BEGIN IMMEDIATE`` (one writer at a time), which makes the
  select-then-update atomic. A job whose lease expired ``max_attempts`` times is failed instead
  of handed out again (a file that kills its worker must not kill them all).
- The job's ``attempts`` (claims so far) is the claim's fencing token: :func:`complete`,
  :func:`fail` and :func:`renew` lock the row and refuse (:class:`LostClaim`) unless the job is
  still running under the same worker and attempt. A worker that was merely slow, whose job was
  taken over after its lease expired, can therefore never store a second transcript; the unique
  ``transcripts.job_id`` is the last line of defence.
- :func:`fail` with ``retry=True`` (a transient error) puts the job back after a delay, up to
  ``max_attempts``; otherwise (bad audio, an unsupported language) it is failed at once with the
  error text, for the auditor to see.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import and_, func, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from callcenter.transcription.jobmodels import (
    DONE,
    FAILED,
    LEGS,
    PENDING,
    RUNNING,
    SPEAKERS,
    Transcript,
    TranscriptionJob,
)
from callcenter.transcription.recognizer import ENGINES, Recognition, UnknownEngine
from callcenter.transcription.search import index_transcript

DEFAULT_LEASE = timedelta(minutes=5)
MAX_ATTEMPTS = 3
RETRY_DELAY = timedelta(seconds=30)
MAX_ERROR_LENGTH = 2000
MAX_PATH_LENGTH = 500


class JobError(Exception):
    """A job operation that cannot be done."""


class LostClaim(JobError):
    """The job is no longer this worker's: its lease was taken over, or it was finished."""


@dataclass(frozen=True)
class Claim:
    """One worker's hold on one job (picklable: it travels to and from worker processes)."""

    job_id: int
    worker_id: str
    attempt: int
    path: str
    leg: str
    engine: str
    language: str
    recording_id: int | None
    call_id: int | None
    lease_until: datetime


def enqueue(
    session: Session,
    *,
    path: str | Path,
    leg: str,
    engine: str,
    recording_id: int | None = None,
    call_id: int | None = None,
    language: str = "",
    now: datetime,
) -> TranscriptionJob:
    """The job for this file and engine, created pending if there is none yet (idempotent)."""
    path = str(path)
    if leg not in LEGS:
        raise JobError(f"unknown leg {leg!r}; expected one of {', '.join(LEGS)}")
    if engine not in ENGINES:
        raise UnknownEngine(f"unknown speech engine {engine!r}; known engines: {', '.join(sorted(ENGINES))}")
    if not Path(path).is_absolute() or len(path) > MAX_PATH_LENGTH:
        raise JobError(f"audio path must be absolute and at most {MAX_PATH_LENGTH} characters: {path!r}")
    if len(language) > 16:
        raise JobError(f"language code too long: {language!r}")
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(
        insert(TranscriptionJob)
        .values(
            recording_id=recording_id,
            call_id=call_id,
            leg=leg,
            path=path,
            engine=engine,
            language=language,
            status=PENDING,
            attempts=0,
            claimed_by="",
            available_at=now,
            error="",
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=["path", "engine"])
    )
    return session.scalars(
        select(TranscriptionJob)
        .where(TranscriptionJob.path == path, TranscriptionJob.engine == engine)
        .execution_options(populate_existing=True)
    ).one()


def enqueue_legs(
    session: Session,
    legs: Mapping[str, str | Path],
    *,
    engine: str,
    recording_id: int | None,
    call_id: int | None,
    language: str = "",
    now: datetime,
) -> list[TranscriptionJob]:
    """One job per leg file (``{"caller": path, "agent": path}``) of a recording."""
    return [
        enqueue(
            session,
            path=path,
            leg=leg,
            engine=engine,
            recording_id=recording_id,
            call_id=call_id,
            language=language,
            now=now,
        )
        for leg, path in legs.items()
    ]


def claim(
    session: Session,
    worker_id: str,
    now: datetime,
    *,
    lease: timedelta = DEFAULT_LEASE,
    engines: Sequence[str] | None = None,
    max_attempts: int = MAX_ATTEMPTS,
) -> Claim | None:
    """Take one job for ``worker_id`` until ``now + lease``, or None when there is none to take."""
    if not worker_id or len(worker_id) > 120:
        raise JobError("worker id must be 1-120 characters")
    if lease <= timedelta(0):
        raise JobError("lease must be positive")
    claimable = or_(
        and_(TranscriptionJob.status == PENDING, TranscriptionJob.available_at <= now),
        and_(TranscriptionJob.status == RUNNING, TranscriptionJob.lease_until < now),
    )
    statement = select(TranscriptionJob).where(claimable)
    if engines is not None:
        statement = statement.where(TranscriptionJob.engine.in_(list(engines)))
    statement = (
        statement.order_by(TranscriptionJob.id)
        .limit(1)
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    )
    while True:
        job = session.scalars(statement).first()
        if job is None:
            return None
        if job.status == RUNNING and job.attempts >= max_attempts:
            # Its worker vanished mid-job max_attempts times: the file itself may be what kills
            # workers, so stop handing it out.
            _finish(
                job,
                FAILED,
                now,
                f"gave up after {job.attempts} attempts: worker {job.claimed_by} stopped renewing "
                "its lease (it crashed, was killed or lost the database) while transcribing",
            )
            session.flush()
            continue
        job.status = RUNNING
        job.attempts += 1
        job.claimed_by = worker_id
        job.claimed_at = now
        job.lease_until = now + lease
        session.flush()
        return Claim(
            job_id=job.id,
            worker_id=worker_id,
            attempt=job.attempts,
            path=job.path,
            leg=job.leg,
            engine=job.engine,
            language=job.language,
            recording_id=job.recording_id,
            call_id=job.call_id,
            lease_until=job.lease_until,
        )


def renew(session: Session, held: Claim, now: datetime, lease: timedelta = DEFAULT_LEASE) -> Claim:
    """Extend the lease of a job still being worked on; :class:`LostClaim` if it is not ours."""
    job = _held(session, held)
    job.lease_until = now + lease
    session.flush()
    return Claim(**{**held.__dict__, "lease_until": job.lease_until})


def complete(
    session: Session,
    held: Claim,
    recognition: Recognition,
    now: datetime,
    *,
    duration: float | None = None,
) -> Transcript:
    """Store the transcript of a claimed job and mark it done (once: see the module notes)."""
    job = _held(session, held)
    transcript = Transcript(
        job_id=job.id,
        recording_id=job.recording_id,
        call_id=job.call_id,
        leg=job.leg,
        speaker=SPEAKERS[job.leg],
        engine=recognition.engine,
        language=(recognition.language or job.language or "")[:16],
        text=recognition.text,
        words=[
            {"word": w.text, "start": w.start, "end": w.end, "conf": w.confidence} for w in recognition.words
        ],
        confidence=recognition.confidence,
        duration_seconds=duration,
        created_at=now,
    )
    session.add(transcript)
    session.flush()
    index_transcript(session, transcript)
    _finish(job, DONE, now, "")
    session.flush()
    return transcript


def fail(
    session: Session,
    held: Claim,
    error: str,
    now: datetime,
    *,
    retry: bool = False,
    max_attempts: int = MAX_ATTEMPTS,
    retry_delay: timedelta = RETRY_DELAY,
) -> TranscriptionJob:
    """Record why a claimed job failed. ``retry``: a transient error, tried again later while
    attempts remain; otherwise (or when none remain) the job is failed for good."""
    job = _held(session, held)
    error = (error.strip() or "unknown error")[:MAX_ERROR_LENGTH]
    if retry and job.attempts < max_attempts:
        job.status = PENDING
        job.error = f"attempt {job.attempts} of {max_attempts} failed: {error}"[:MAX_ERROR_LENGTH]
        job.available_at = now + retry_delay * job.attempts
        job.claimed_by = ""
        job.lease_until = None
    else:
        _finish(job, FAILED, now, error)
    session.flush()
    return job


def release(session: Session, worker_id: str, now: datetime, *, max_attempts: int = MAX_ATTEMPTS) -> int:
    """Jobs of a worker known to be dead (its process exited) go back at once, without waiting
    for the lease; returns how many. A job that already had ``max_attempts`` is failed."""
    jobs = session.scalars(
        select(TranscriptionJob)
        .where(TranscriptionJob.status == RUNNING, TranscriptionJob.claimed_by == worker_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).all()
    for job in jobs:
        if job.attempts >= max_attempts:
            _finish(job, FAILED, now, f"gave up after {job.attempts} attempts: worker {worker_id} died")
        else:
            job.status = PENDING
            job.error = f"attempt {job.attempts}: worker {worker_id} died while transcribing"
            job.available_at = now
            job.claimed_by = ""
            job.lease_until = None
    session.flush()
    return len(jobs)


def retry_failed(session: Session, job_id: int, now: datetime) -> TranscriptionJob:
    """Put a failed job back (an operator fixed the file or the model); attempts count on."""
    job = session.get(TranscriptionJob, job_id, with_for_update=True, populate_existing=True)
    if job is None:
        raise JobError(f"no transcription job {job_id}")
    if job.status != FAILED:
        raise JobError(f"job {job_id} is {job.status}, not failed")
    job.status = PENDING
    job.available_at = now
    job.finished_at = None
    session.flush()
    return job


def counts(session: Session) -> dict[str, int]:
    """Jobs per status (every status present, zero included)."""
    rows = session.execute(
        select(TranscriptionJob.status, func.count()).group_by(TranscriptionJob.status)
    ).all()
    found = {status: 0 for status in (PENDING, RUNNING, DONE, FAILED)}
    found.update({status: int(n) for status, n in rows})
    return found


def _held(session: Session, held: Claim) -> TranscriptionJob:
    job = session.get(TranscriptionJob, held.job_id, with_for_update=True, populate_existing=True)
    if job is None:
        raise LostClaim(f"transcription job {held.job_id} no longer exists")
    if job.status != RUNNING or job.claimed_by != held.worker_id or job.attempts != held.attempt:
        raise LostClaim(
            f"transcription job {held.job_id} is no longer held by {held.worker_id} "
            f"(attempt {held.attempt}): it is {job.status}, attempt {job.attempts} by "
            f"{job.claimed_by or 'nobody'}"
        )
    return job


def _finish(job: TranscriptionJob, status: str, now: datetime, error: str) -> None:
    job.status = status
    job.finished_at = now
    job.lease_until = None
    job.error = error[:MAX_ERROR_LENGTH]
