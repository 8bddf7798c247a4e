"""Tables of offline transcription: the persisted job queue, the transcripts, and the search index.

``transcription_jobs``: one row per (audio file, engine), so a replayed Hangup or a second
enqueue of the same leg finds the row already there. Workers on any number of machines claim rows
(``jobs.claim``) with a lease; a worker that dies leaves a lease that expires, and the job is
taken again. ``attempts`` counts claims; it is also the fencing token that stops a worker whose
lease was taken over from storing a second transcript.

``transcripts``: what one job heard in one leg, with the speaker (``penelepon`` = the caller,
``petugas`` = the agent), the text and the timed words. One per job (unique ``job_id``).

Full-text search, per backend (see ``search.py``):

- PostgreSQL: ``transcripts.search_vector`` is a ``tsvector`` (``to_tsvector('simple', ...)`` of
  the normalised words) with a GIN index; the column exists on SQLite too, as text left empty.
- SQLite: ``transcript_terms`` is the inverted index (term → transcript). SQLite's own FTS5 would
  add virtual and shadow tables that Alembic's autogenerate comparison (which the test suite runs
  against the models) would report as unknown tables; a plain table indexed on (term, transcript)
  does the same job for a single node and stays a declared part of the schema. It is left empty
  on PostgreSQL, which has the GIN index instead.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import TSVECTOR
from sqlalchemy.orm import Mapped, mapped_column

from callcenter.storage.base import Base, utcnow

# Job statuses.
PENDING = "pending"
RUNNING = "running"
DONE = "done"
FAILED = "failed"
STATUSES = (PENDING, RUNNING, DONE, FAILED)

# Which side of the call a file holds. "mixed" and "file" (a file given to the CLI) are accepted
# for completeness; the engine transcribes the two directions separately.
CALLER = "caller"
AGENT = "agent"
MIXED = "mixed"
FILE = "file"
LEGS = (CALLER, AGENT, MIXED, FILE)

# Speaker labels shown on the ticket, in Bahasa Indonesia.
SPEAKERS = {CALLER: "penelepon", AGENT: "petugas", MIXED: "campuran", FILE: "rekaman"}

# The longest term the SQLite index keeps (longer words are cut, on both sides of a search).
TERM_LENGTH = 64

# tsvector on PostgreSQL; plain text (left empty) elsewhere.
SEARCH_VECTOR = Text().with_variant(TSVECTOR(), "postgresql")


class TranscriptionJob(Base):
    __tablename__ = "transcription_jobs"
    __table_args__ = (
        # One job per audio file and engine: enqueueing is idempotent.
        UniqueConstraint("path", "engine"),
        # What claim() looks for: pending and available, or running with an expired lease.
        Index("ix_transcription_jobs_claim", "status", "available_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    recording_id: Mapped[int | None] = mapped_column(ForeignKey("recordings.id"), index=True)
    call_id: Mapped[int | None] = mapped_column(ForeignKey("calls.id"), index=True)
    leg: Mapped[str] = mapped_column(String(16))  # caller | agent | mixed | file
    path: Mapped[str] = mapped_column(String(500))
    engine: Mapped[str] = mapped_column(String(16))  # vosk | whisper
    language: Mapped[str] = mapped_column(String(16), default="")  # "" = the engine's default
    status: Mapped[str] = mapped_column(String(16), default=PENDING)
    # Claims so far; the current claim's fencing token.
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    claimed_by: Mapped[str] = mapped_column(String(120), default="")
    claimed_at: Mapped[datetime | None] = mapped_column()
    lease_until: Mapped[datetime | None] = mapped_column()
    # Not to be claimed before (a retry waits a little).
    available_at: Mapped[datetime] = mapped_column(default=utcnow)
    error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column()


class Transcript(Base):
    __tablename__ = "transcripts"

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("transcription_jobs.id"), unique=True)
    recording_id: Mapped[int | None] = mapped_column(ForeignKey("recordings.id"), index=True)
    call_id: Mapped[int | None] = mapped_column(ForeignKey("calls.id"), index=True)
    leg: Mapped[str] = mapped_column(String(16))
    speaker: Mapped[str] = mapped_column(String(32))  # penelepon | petugas | ...
    engine: Mapped[str] = mapped_column(String(16))
    language: Mapped[str] = mapped_column(String(16), default="")
    # Untrusted content (what a caller said): bound parameters only, escaped on display.
    text: Mapped[str] = mapped_column(Text, default="")
    # [{"word": str, "start": s, "end": s, "conf": float | null}], times from the file's start.
    words: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    confidence: Mapped[float | None] = mapped_column(Float)
    duration_seconds: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    search_vector: Mapped[str | None] = mapped_column(SEARCH_VECTOR)

    __table_args__ = (Index("ix_transcripts_search_vector", "search_vector", postgresql_using="gin"),)


class TranscriptTerm(Base):
    """SQLite's word index of transcripts: one row per distinct normalised word of a transcript."""

    __tablename__ = "transcript_terms"

    term: Mapped[str] = mapped_column(String(TERM_LENGTH), primary_key=True)
    transcript_id: Mapped[int] = mapped_column(ForeignKey("transcripts.id"), primary_key=True, index=True)
