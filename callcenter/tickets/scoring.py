"""Scores per command-center operator or per agency (OPD), from plain ticket facts.

Pure: the caller builds ``TicketFacts`` from the database; nothing here reads a clock or a table.

Whom we score decides where the clocks start:

- by "operator" (a command-center user): from the ticket's creation, because the operator owns
  the ticket from the moment it arrives;
- by "agency": from the dispatch, because an OPD cannot respond to a ticket it has not received.
  An agency ticket without ``dispatched_at`` has no start, so it gives no durations (it still
  counts as a ticket and for the SLA share, reopen rate and quality).

Durations are in hours. Without a calendar they are wall-clock hours. With a ``WorkCalendar``
only time that falls on working days counts (24 h per working day, weekends and holidays free),
so an agency is not charged for a ticket that arrived on Friday evening and was handled on
Monday morning.

Nothing is rounded in ``Score``; ``Score.as_row`` rounds to 2 decimals for reports and CSV.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Literal

from callcenter.tickets.sla import WorkCalendar


@dataclass(frozen=True)
class TicketFacts:
    """What scoring needs to know about one ticket (all datetimes aware)."""

    number: str
    agency: str | None  # code of the OPD it was dispatched to
    operator: str | None  # the command-center user who handled it
    created_at: datetime
    dispatched_at: datetime | None
    first_response_at: datetime | None  # the first action by whoever is being scored
    resolved_at: datetime | None  # closed: done or rejected
    status: str
    reopen_count: int
    within_sla: bool | None  # None when not yet decidable (e.g. still open)
    supervisor_scores: tuple[int, ...] = ()  # 1-5
    citizen_ratings: tuple[int, ...] = ()  # 1-5

    def __post_init__(self) -> None:
        if self.reopen_count < 0:
            raise ValueError(f"ticket {self.number}: reopen_count must be >= 0, got {self.reopen_count}")
        for name in ("supervisor_scores", "citizen_ratings"):
            for value in getattr(self, name):
                if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 5:
                    raise ValueError(f"ticket {self.number}: {name}: {value!r} is not a score from 1 to 5")


@dataclass(frozen=True)
class Score:
    key: str  # operator name or agency code
    tickets: int
    resolved: int  # tickets with resolved_at (done or rejected)
    mean_first_response_hours: float | None
    median_first_response_hours: float | None
    mean_resolution_hours: float | None
    median_resolution_hours: float | None
    within_sla_share: float | None  # over tickets whose within_sla is known; None if none is
    reopen_rate: float  # tickets reopened at least once / tickets
    quality: float | None  # 1-5; None without any supervisor score or citizen rating

    def as_row(self) -> dict[str, object]:
        """The score as a flat row for reports and CSV, floats rounded to 2 decimals."""
        row: dict[str, object] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            row[f.name] = round(value, 2) if isinstance(value, float) else value
        return row


Scope = Literal["operator", "agency"]


def score(
    facts: Iterable[TicketFacts],
    by: Scope,
    calendar: WorkCalendar | None = None,
) -> list[Score]:
    """One ``Score`` per operator or agency, sorted by key. Tickets without that key are skipped."""
    if by not in ("operator", "agency"):
        raise ValueError(f"by must be 'operator' or 'agency', got {by!r}")
    groups: dict[str, list[TicketFacts]] = defaultdict(list)
    for fact in facts:
        key = fact.operator if by == "operator" else fact.agency
        if key is not None:
            groups[key].append(fact)
    return [_score_group(key, groups[key], by, calendar) for key in sorted(groups)]


def _score_group(key: str, group: Sequence[TicketFacts], by: Scope, calendar: WorkCalendar | None) -> Score:
    first_response: list[float] = []
    resolution: list[float] = []
    for fact in group:
        start = fact.created_at if by == "operator" else fact.dispatched_at
        if start is None:
            continue
        if fact.first_response_at is not None:
            first_response.append(_hours(start, fact.first_response_at, calendar))
        if fact.resolved_at is not None:
            resolution.append(_hours(start, fact.resolved_at, calendar))
    known_sla = [f.within_sla for f in group if f.within_sla is not None]
    supervisor = [s for f in group for s in f.supervisor_scores]
    citizen = [r for f in group for r in f.citizen_ratings]
    # Each side is a mean over all its scores; the two sides weigh the same, however many of
    # each there are, so a handful of supervisor reviews is not drowned by many citizen ratings.
    sides = [statistics.fmean(values) for values in (supervisor, citizen) if values]
    return Score(
        key=key,
        tickets=len(group),
        resolved=sum(1 for f in group if f.resolved_at is not None),
        mean_first_response_hours=_mean(first_response),
        median_first_response_hours=_median(first_response),
        mean_resolution_hours=_mean(resolution),
        median_resolution_hours=_median(resolution),
        within_sla_share=sum(known_sla) / len(known_sla) if known_sla else None,
        reopen_rate=sum(1 for f in group if f.reopen_count > 0) / len(group),
        quality=statistics.fmean(sides) if sides else None,
    )


def _hours(start: datetime, end: datetime, calendar: WorkCalendar | None) -> float:
    if calendar is None:
        return (end - start).total_seconds() / 3600.0
    return calendar.working_days_between(start, end) * 24.0


def _mean(values: Sequence[float]) -> float | None:
    return statistics.fmean(values) if values else None


def _median(values: Sequence[float]) -> float | None:
    return float(statistics.median(values)) if values else None
