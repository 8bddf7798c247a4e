"""Tables of the 112 desk: how a call was classified, blocked prank callers and the attempts they
made while blocked, and the list of dropped calls to call back.

The rules live in ``blocks.py`` and ``callbacks.py``; these are the rows they keep.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from callcenter.storage.base import Base, utcnow


class CallClassification(Base):
    """What the agent judged a call to be. One row per call: classifying again replaces the
    judgement (with who and when), because KPIs need the current answer, not a history.

    Kept beside ``calls`` rather than in it so the call log written from AMI and the agent's
    judgement never overwrite each other's columns.
    """

    __tablename__ = "call_classifications"

    id: Mapped[int] = mapped_column(primary_key=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id"), unique=True)
    code: Mapped[str] = mapped_column(String(16), index=True)  # see blocks.CLASSIFICATIONS
    note: Mapped[str] = mapped_column(String(500), default="")
    classified_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    classified_at: Mapped[datetime] = mapped_column(default=utcnow)


class CallerBlock(Base):
    """A number blocked until ``expires_at`` unless lifted earlier. Expiry is by time alone:
    a block whose ``expires_at`` has passed is simply no longer active."""

    __tablename__ = "caller_blocks"

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(40), index=True)
    reason: Mapped[str] = mapped_column(String(500))
    blocked_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    lifted_at: Mapped[datetime | None] = mapped_column()
    lifted_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    # Set when a new block of the same number took this one's place (lifted_at is set then too).
    replaced_by_id: Mapped[int | None] = mapped_column(ForeignKey("caller_blocks.id"))


class BlockedAttempt(Base):
    """A call from a blocked number. One per call, so a replayed AGI request logs it once."""

    __tablename__ = "blocked_attempts"
    __table_args__ = (UniqueConstraint("system_name", "linkedid"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(40), index=True)
    system_name: Mapped[str] = mapped_column(String(40))
    linkedid: Mapped[str] = mapped_column(String(80))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    block_id: Mapped[int] = mapped_column(ForeignKey("caller_blocks.id"), index=True)


class Callback(Base):
    """A dropped or abandoned 112 call waiting to be called back. One per call."""

    __tablename__ = "callbacks"

    id: Mapped[int] = mapped_column(primary_key=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id"), unique=True)
    number: Mapped[str] = mapped_column(String(40), index=True)
    queue: Mapped[str] = mapped_column(String(40), default="")
    reason: Mapped[str] = mapped_column(String(16))  # abandoned | dropped
    status: Mapped[str] = mapped_column(String(16), index=True)  # see callbacks.STATUSES
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # True from start_attempt until its outcome is recorded: someone is dialling the caller now.
    attempt_open: Mapped[bool] = mapped_column(Boolean, default=False)
    placed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    placed_at: Mapped[datetime | None] = mapped_column()
    last_outcome: Mapped[str] = mapped_column(String(16), default="")
    last_note: Mapped[str] = mapped_column(String(1000), default="")
    outcome_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    closed_at: Mapped[datetime | None] = mapped_column()
