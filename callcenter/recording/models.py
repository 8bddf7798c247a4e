"""Recordings catalogued when Asterisk closes them (details grow with the recorder capability)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from callcenter.storage.base import Base, utcnow


class Recording(Base):
    __tablename__ = "recordings"

    id: Mapped[int] = mapped_column(primary_key=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id"), index=True)
    # Base path without extension: <base>.wav mixed, -caller.wav and -agent.wav per leg.
    path: Mapped[str] = mapped_column(String(500), unique=True)
    closed_at: Mapped[datetime] = mapped_column(default=utcnow)
