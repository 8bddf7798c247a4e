"""Ticket numbers: the year and a yearly sequence, e.g. 2026000123.

Digits only, so the IVR can read them back one by one and a caller can key them in; sortable
within a year; unique because the sequence row is locked (SELECT ... FOR UPDATE) before numbers are taken, so
concurrent creations on PostgreSQL queue up on that row instead of colliding, and no number is
ever skipped: the row is advanced by exactly the tickets written in the same transaction.
"""

from __future__ import annotations

import re

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from callcenter.tickets.models import TicketSequence

NUMBER_RE = re.compile(r"^(?P<year>20\d{2})(?P<seq>\d{6,})$")


def format_number(year: int, seq: int) -> str:
    return f"{year}{seq:06d}"


def parse_number(number: str) -> tuple[int, int] | None:
    match = NUMBER_RE.match(number)
    if match is None:
        return None
    return int(match.group("year")), int(match.group("seq"))


def lock_sequence(session: Session, year: int) -> int:
    """Lock the row of ``year`` until the caller's transaction ends; returns its last number.

    Every creation takes this lock before it looks for twins and writes, so creations are
    serialized on PostgreSQL (SQLite's BEGIN IMMEDIATE serializes every writer anyway).
    """
    query = select(TicketSequence.last).where(TicketSequence.year == year).with_for_update()
    last = session.scalar(query)
    if last is None:
        dialect = session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        session.execute(insert(TicketSequence).values(year=year, last=0).on_conflict_do_nothing())
        last = session.scalar(query)
    assert last is not None
    return last


def set_sequence(session: Session, year: int, last: int) -> None:
    """Record the last number used; only under the lock taken by :func:`lock_sequence`."""
    session.execute(update(TicketSequence).where(TicketSequence.year == year).values(last=last))
