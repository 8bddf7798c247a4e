"""The audit log: who touched which recording (or other object), when; a hash chain.

Each entry carries the hash of the one before it (``prev_hash``) and its own ``hash`` over a
canonical serialization of its fields and ``prev_hash`` (see :mod:`callcenter.audit.log`), so
editing, deleting or reordering entries breaks the chain where it happened. ``seq`` numbers the
chain without gaps; its uniqueness makes a fork impossible even if two appenders raced.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from callcenter.storage.base import Base


class AuditEntry(Base):
    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_object", "object_kind", "object_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, unique=True)
    at: Mapped[datetime] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(String(100), index=True)
    action: Mapped[str] = mapped_column(String(64), index=True)  # recording.play, recording.download, ...
    object_kind: Mapped[str] = mapped_column(String(32))
    object_id: Mapped[str] = mapped_column(String(64))
    # Canonical JSON text, exactly as hashed (a JSON column could re-serialize it differently).
    detail: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)
