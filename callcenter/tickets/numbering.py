"""Ticket numbers: the year and a yearly sequence, e.g. 2026000123.

Digits only, so the IVR can read them back one by one and a caller can key them in; sortable
within a year; unique because the sequence row is locked by the UPDATE that increments it, so
concurrent creations on PostgreSQL queue up on that row instead of colliding.
"""

from __future__ import annotations

import re

from sqlalchemy import update
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


def next_number(session: Session, year: int) -> tuple[int, str]:
    """Take the next sequence number of ``year`` inside the caller's transaction."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(insert(TicketSequence).values(year=year, last=0).on_conflict_do_nothing())
    seq = session.execute(
        update(TicketSequence)
        .where(TicketSequence.year == year)
        .values(last=TicketSequence.last + 1)
        .returning(TicketSequence.last)
    ).scalar_one()
    return seq, format_number(year, seq)
