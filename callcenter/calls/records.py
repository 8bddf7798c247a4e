"""The persisted call log, keyed by (Asterisk system name, Linkedid).

The key makes replays and restarts harmless: seeing the same call again updates its row.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Float, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from callcenter.storage.base import Base, utcnow


class CallRecord(Base):
    __tablename__ = "calls"
    __table_args__ = (UniqueConstraint("system_name", "linkedid"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    system_name: Mapped[str] = mapped_column(String(40))
    linkedid: Mapped[str] = mapped_column(String(80))
    caller_number: Mapped[str] = mapped_column(String(40), default="", index=True)
    service: Mapped[str] = mapped_column(String(16), default="")  # 112 | hotline
    queue: Mapped[str] = mapped_column(String(40), default="")
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    answered_at: Mapped[datetime | None] = mapped_column()
    ended_at: Mapped[datetime | None] = mapped_column()
    wait_seconds: Mapped[float | None] = mapped_column(Float)
    agent: Mapped[str] = mapped_column(String(64), default="")
    # What the IVR collected (untrusted caller input, stored as data, escaped on display).
    ivr: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
