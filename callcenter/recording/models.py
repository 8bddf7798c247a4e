"""Recordings catalogued when Asterisk closes them, with what the integrity check found.

One ``recordings`` row per recorded call leg set (the base path), and one ``recording_files`` row
per file of it (the mixed file and the two directions). The rows are never deleted: retention
removes the files and stamps ``deleted_at``, so the catalogue keeps proving what existed.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Float, ForeignKey, Integer, String, Text, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column

from callcenter.storage.base import Base, utcnow

OK = "ok"
FAILED = "failed"
STATUSES = (OK, FAILED)

MIXED = "mixed"
CALLER = "caller"
AGENT = "agent"
FILE_KINDS = (MIXED, CALLER, AGENT)


class Recording(Base):
    __tablename__ = "recordings"

    id: Mapped[int] = mapped_column(primary_key=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id"), index=True)
    # Base path without extension: <base>.wav mixed, -caller.wav and -agent.wav per leg.
    path: Mapped[str] = mapped_column(String(500), unique=True)
    closed_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Server defaults fill the rows catalogued before the integrity check existed.
    status: Mapped[str] = mapped_column(String(16), default=OK, server_default=OK, index=True)
    failure: Mapped[str] = mapped_column(Text, default="", server_default="")
    # Of the mixed file: the length of the call from answer to hang-up.
    duration_seconds: Mapped[float | None] = mapped_column(Float)
    # Retention removed the files; the row stays as the record that they existed.
    deleted_at: Mapped[datetime | None] = mapped_column(index=True)
    # A legal hold keeps the files past retention until it is lifted.
    legal_hold: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    legal_hold_by: Mapped[str] = mapped_column(String(100), default="", server_default="")
    legal_hold_at: Mapped[datetime | None] = mapped_column()
    legal_hold_reason: Mapped[str] = mapped_column(String(500), default="", server_default="")


class RecordingFile(Base):
    """One file of a recording as the integrity check found it when the recording closed."""

    __tablename__ = "recording_files"
    __table_args__ = (UniqueConstraint("recording_id", "kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    recording_id: Mapped[int] = mapped_column(ForeignKey("recordings.id"))
    kind: Mapped[str] = mapped_column(String(16))  # mixed | caller | agent
    path: Mapped[str] = mapped_column(String(500), unique=True)
    status: Mapped[str] = mapped_column(String(16))  # ok | failed
    failure: Mapped[str] = mapped_column(Text, default="")
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    format: Mapped[str] = mapped_column(String(16), default="")  # "wav/pcm", "wav/0x0031", ...
    sample_rate: Mapped[int | None] = mapped_column(Integer)
    channels: Mapped[int | None] = mapped_column(Integer)
    sample_width: Mapped[int | None] = mapped_column(Integer)  # bytes per sample
    duration_seconds: Mapped[float | None] = mapped_column(Float)
    sha256: Mapped[str] = mapped_column(String(64), default="")
    checked_at: Mapped[datetime] = mapped_column(default=utcnow)
