"""Helpers shared by the ticket tests: a settable clock and short ways to make and run things."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from callcenter.storage.database import Database
from callcenter.tickets.service import NewTicket

# Monday 23 November 2026, 09:00 in Jakarta.
MONDAY = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def run(db: Database, work: Callable[[Session], object]) -> object:
    with db.transaction() as s, s.begin():
        return work(s)


def new(**fields: object) -> NewTicket:
    base: dict[str, object] = {
        "summary": "Jalan berlubang di Jl. Merdeka",
        "channel": "hotline",
        "category": "JALAN",
    }
    base.update(fields)
    return NewTicket(**base)  # type: ignore[arg-type]
