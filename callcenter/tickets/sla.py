"""Service-level rules: ticket deadlines in working days, overdue clocks, call-answer targets.

Pure: no database and no clock. Every "now" is passed in; the only I/O is ``load_calendar``
reading a TOML file.

Deadlines follow SP4N-LAPOR!: a report is verified and forwarded to the responsible agency (OPD)
within 3 working days of its creation, and the agency then has 5 working days from the dispatch
to give its follow-up. Both numbers are configurable through ``SlaPolicy``.

A deadline is the END of the n-th working day after the local day of the start, in the command
center's time zone. "Within 3 working days" is read the way people read it on a letter: the day a
report arrives does not count (it may arrive at 16:59 or on a Sunday), and the agency has the
whole of the last day. Whole calendar days count, not office hours: a report resolved at 21:00 on
the last day is on time.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# Ticket statuses, as the command centers name them (the lifecycle module holds the same values).
WAITING = "menunggu"
IN_PROCESS = "diproses"
DONE = "selesai"
REJECTED = "ditolak"
_STATUSES = frozenset({WAITING, IN_PROCESS, DONE, REJECTED})

# Clocks that ``overdue`` may report.
VERIFY = "verify"
FOLLOW_UP = "follow_up"

DEFAULT_TIMEZONE = "Asia/Jakarta"
# The calendar shipped with the engine: Mon-Fri and the fixed-date national holidays.
DEFAULT_CALENDAR = Path(__file__).with_name("holidays.toml")

MONDAY_TO_FRIDAY = frozenset({1, 2, 3, 4, 5})
# The last representable instant of a day. With it, "on time" is simply ``at <= deadline`` and
# nothing between 23:59:59 and midnight falls through the cracks.
END_OF_DAY = time(23, 59, 59, 999999)

_SECONDS_PER_DAY = 86400.0


def _require_aware(value: datetime, what: str) -> None:
    # A naive datetime has no defined instant; guessing its zone would shift deadlines by hours.
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be a timezone-aware datetime, got naive {value.isoformat()}")


# ---- working calendar -------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkCalendar:
    """Which local days are working days, and where a working day ends.

    ``workdays`` holds ISO weekday numbers (1 = Monday .. 7 = Sunday). A day in ``holidays`` is
    skipped exactly like a weekend. ``day_end`` is the local time at which a deadline falls on its
    last day; the default is the very end of the day (see the module docstring).
    """

    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo(DEFAULT_TIMEZONE))
    workdays: frozenset[int] = MONDAY_TO_FRIDAY
    holidays: frozenset[date] = frozenset()
    day_end: time = END_OF_DAY

    def __post_init__(self) -> None:
        if not self.workdays:
            # Without a single working day no deadline could ever be reached.
            raise ValueError("workdays must not be empty")
        bad = sorted(d for d in self.workdays if not 1 <= d <= 7)
        if bad:
            raise ValueError(f"workdays: {bad} are not ISO weekdays (1 = Monday .. 7 = Sunday)")
        if self.day_end.tzinfo is not None:
            raise ValueError("day_end must be a local time without tzinfo (the calendar has the zone)")

    def is_working_day(self, d: date) -> bool:
        """True when ``d`` (a local calendar day) is a workday and not a holiday."""
        return d.isoweekday() in self.workdays and d not in self.holidays

    def local_date(self, at: datetime) -> date:
        """The calendar day of the instant ``at`` in the command center's zone."""
        _require_aware(at, "at")
        return at.astimezone(self.timezone).date()

    def add_working_days(self, start: datetime, n: int) -> datetime:
        """The end of the ``n``-th working day after the local day of ``start``, in UTC.

        The day of ``start`` itself never counts, whether or not it is a working day: created
        Friday 16:00 with n=3 gives the end of Wednesday; created Saturday gives the end of
        Wednesday too (Monday is the first day counted). ``start`` may be in any zone.
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a whole number of working days >= 1, got {n!r}")
        day = self.local_date(start)
        counted = 0
        # Terminates: workdays is non-empty and holidays is finite.
        while counted < n:
            day += timedelta(days=1)
            if self.is_working_day(day):
                counted += 1
        return datetime.combine(day, self.day_end, tzinfo=self.timezone).astimezone(UTC)

    def working_days_between(self, start: datetime, end: datetime) -> float:
        """Elapsed time from ``start`` to ``end`` that falls on working days, in days.

        Whole local days count (not office hours), so a span from Friday 12:00 to Monday 12:00
        is 1.0: half of Friday plus half of Monday; the weekend is free. Use it for "how many
        working days overdue" (``working_days_between(deadline, now)``) and for durations that
        should not charge an agency for weekends and holidays. The result is signed: it is
        negative when ``end`` is before ``start``.
        """
        _require_aware(start, "start")
        _require_aware(end, "end")
        if end < start:
            return -self.working_days_between(end, start)
        seconds = 0.0
        day = self.local_date(start)
        last = self.local_date(end)
        while day <= last:
            if self.is_working_day(day):
                # Real elapsed seconds of the day, so a day with a DST jump counts as it really is.
                day_start = datetime.combine(day, time(0), tzinfo=self.timezone)
                next_start = datetime.combine(day + timedelta(days=1), time(0), tzinfo=self.timezone)
                lo = max(day_start, start)
                hi = min(next_start, end)
                if hi > lo:
                    seconds += (hi - lo).total_seconds()
            day += timedelta(days=1)
        return seconds / _SECONDS_PER_DAY


# ---- loading the calendar from TOML -----------------------------------------------------------

_TOP_KEYS = ("holidays", "workdays")
_HOLIDAY_KEYS = ("date", "name")


def load_calendar(path: Path, timezone: str = DEFAULT_TIMEZONE) -> WorkCalendar:
    """Read a working calendar from TOML.

    Format::

        workdays = [1, 2, 3, 4, 5]          # optional, ISO weekdays; default Mon-Fri
        holidays = [                         # optional
            {date = 2026-01-01, name = "Tahun Baru Masehi"},
        ]

    Every mistake raises ``ValueError`` naming the file, the entry and the field, e.g.
    ``holidays.toml: holidays[3].date: not a date``. Unknown keys are errors too: a misspelt
    ``holiday`` would otherwise silently drop every holiday and shorten every deadline.
    The same date may appear twice (two holidays can fall on one day).
    """
    where = str(path)
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{where}: unknown time zone {timezone!r}") from None
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{where}: not valid TOML: {exc}") from None
    _reject_unknown(where, "", data, _TOP_KEYS)
    workdays = _parse_workdays(where, data.get("workdays", sorted(MONDAY_TO_FRIDAY)))
    holidays = _parse_holidays(where, data.get("holidays", []))
    return WorkCalendar(timezone=zone, workdays=workdays, holidays=holidays)


def _reject_unknown(where: str, prefix: str, table: Mapping[str, object], allowed: tuple[str, ...]) -> None:
    for key in table:
        if key not in allowed:
            raise ValueError(f"{where}: {prefix}{key}: unknown key (allowed: {', '.join(allowed)})")


def _parse_workdays(where: str, raw: object) -> frozenset[int]:
    if not isinstance(raw, list):
        raise ValueError(f"{where}: workdays: expected a list of ISO weekdays like [1, 2, 3, 4, 5]")
    if not raw:
        raise ValueError(f"{where}: workdays: must list at least one day")
    days: set[int] = set()
    for index, value in enumerate(raw):
        # bool is an int in Python; `true` is never a weekday.
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 7:
            raise ValueError(
                f"{where}: workdays[{index}]: {value!r} is not an ISO weekday (1 = Monday .. 7 = Sunday)"
            )
        if value in days:
            raise ValueError(f"{where}: workdays[{index}]: {value} is listed twice")
        days.add(value)
    return frozenset(days)


def _parse_holidays(where: str, raw: object) -> frozenset[date]:
    if not isinstance(raw, list):
        raise ValueError(f'{where}: holidays: expected a list of {{date = YYYY-MM-DD, name = "..."}}')
    dates: set[date] = set()
    for index, entry in enumerate(raw):
        here = f"holidays[{index}]"
        if not isinstance(entry, dict):
            raise ValueError(f'{where}: {here}: expected a table like {{date = 2026-01-01, name = "..."}}')
        _reject_unknown(where, f"{here}.", entry, _HOLIDAY_KEYS)
        if "date" not in entry:
            raise ValueError(f"{where}: {here}.date: missing")
        value = entry["date"]
        # tomllib gives a datetime for `2026-01-01T00:00` (a subclass of date): a holiday is a day.
        if isinstance(value, datetime) or not isinstance(value, date):
            hint = " (write it unquoted: date = 2026-01-01)" if isinstance(value, str) else ""
            raise ValueError(f"{where}: {here}.date: not a date{hint}")
        name = entry.get("name")
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"{where}: {here}.name: missing or empty (say which holiday it is)")
        dates.add(value)
    return frozenset(dates)


# ---- ticket deadlines and overdue clocks ------------------------------------------------------


@dataclass(frozen=True)
class Deadlines:
    """The two clocks of a ticket, as aware UTC datetimes."""

    verify_by: datetime  # the command center verifies and dispatches by then
    follow_up_by: datetime | None  # the OPD follows up by then; None until dispatched


@dataclass(frozen=True)
class SlaPolicy:
    """How many working days each clock gets (SP4N-LAPOR! defaults: 3 and 5)."""

    verify_days: int = 3
    follow_up_days: int = 5

    def __post_init__(self) -> None:
        for name in ("verify_days", "follow_up_days"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")

    def deadlines(
        self, calendar: WorkCalendar, created_at: datetime, dispatched_at: datetime | None
    ) -> Deadlines:
        """Deadlines of a ticket created at ``created_at`` and (maybe) dispatched at ``dispatched_at``."""
        verify_by = calendar.add_working_days(created_at, self.verify_days)
        if dispatched_at is None:
            return Deadlines(verify_by=verify_by, follow_up_by=None)
        return Deadlines(verify_by, calendar.add_working_days(dispatched_at, self.follow_up_days))


def overdue(deadlines: Deadlines, status: str, now: datetime) -> str | None:
    """Which clock has run out at ``now``: "verify", "follow_up" or None.

    - A closed ticket (done or rejected) is never overdue.
    - Once dispatched (``follow_up_by`` is set) only the agency's clock runs, whether the ticket
      still waits in the OPD's queue or is being worked: "follow_up" after ``follow_up_by``.
    - Before dispatch, an open ticket is "verify" after ``verify_by``: the command center must
      settle it or dispatch it within the verify days, whether it waits or is being handled.
    A ticket is overdue strictly after its deadline; at the deadline it is still on time.
    """
    if status not in _STATUSES:
        raise ValueError(f"unknown ticket status {status!r} (expected one of {sorted(_STATUSES)})")
    _require_aware(now, "now")
    if status in (DONE, REJECTED):
        return None
    if deadlines.follow_up_by is not None:
        return FOLLOW_UP if now > deadlines.follow_up_by else None
    if now > deadlines.verify_by:
        return VERIFY
    return None


# ---- call-answer service level ----------------------------------------------------------------


@dataclass(frozen=True)
class ServiceLevelTarget:
    """``share`` of the calls answered within ``seconds`` (e.g. 0.80 within 20 s)."""

    share: float
    seconds: int

    def __post_init__(self) -> None:
        if not 0.0 < self.share <= 1.0:
            raise ValueError(f"share must be in (0, 1], got {self.share!r}")
        if self.seconds < 0:
            raise ValueError(f"seconds must be >= 0, got {self.seconds!r}")


# 112 follows the emergency-line practice (NENA: 95% within 20 s); a complaint hotline the common
# call-center 80/20.
DEFAULT_TARGETS: dict[str, ServiceLevelTarget] = {
    "q112": ServiceLevelTarget(0.95, 20),
    "hotline": ServiceLevelTarget(0.80, 20),
}


@dataclass(frozen=True)
class Abandoned:
    """A call that was never answered: the caller hung up after ``after_seconds`` in the queue."""

    after_seconds: float


def answered_within(target: ServiceLevelTarget, wait_seconds: float | None) -> bool | None:
    """Whether a call answered after ``wait_seconds`` met the target; None if never answered.

    The bound is inclusive: a call answered at exactly 20 s is "within 20 s".
    """
    if wait_seconds is None:
        return None
    return wait_seconds <= target.seconds


@dataclass(frozen=True)
class ServiceLevelReport:
    offered: int  # every call that reached the queue
    answered: int
    answered_within: int  # answered within the target's seconds
    abandoned: int  # every call never answered
    abandoned_short: int  # abandoned within the grace period; left out of the share
    share: float  # answered_within / (offered - abandoned_short); 1.0 if that is 0
    meets_target: bool


def service_level(
    target: ServiceLevelTarget,
    waits: Iterable[float | Abandoned | None],
    abandoned_short: float = 5.0,
) -> ServiceLevelReport:
    """The service level of a set of calls.

    Each item of ``waits`` is one offered call:

    - a number: answered after that many seconds in the queue;
    - ``Abandoned(s)``: the caller hung up after ``s`` seconds without an answer;
    - None: never answered, time unknown. It counts as a real abandon (kept in the
      denominator): without its time nobody can show it was a short one.

    Convention: share = answered within the target / (offered - calls abandoned within
    ``abandoned_short`` seconds). A caller who hangs up within a few seconds (misdial, a pocket
    call; frequent on 112) gave the center no chance to answer, so such calls count neither for
    nor against it. Abandons after the grace period stay in the denominator and lower the share.
    The grace bound is inclusive (hung up at exactly 5.0 s is short). With nothing left in the
    denominator the share is 1.0: no caller was kept waiting.
    """
    if abandoned_short < 0:
        raise ValueError(f"abandoned_short must be >= 0, got {abandoned_short!r}")
    offered = answered = within = abandoned = short = 0
    for item in waits:
        offered += 1
        if item is None:
            abandoned += 1
        elif isinstance(item, Abandoned):
            _check_seconds(item.after_seconds)
            abandoned += 1
            if item.after_seconds <= abandoned_short:
                short += 1
        else:
            _check_seconds(item)
            answered += 1
            if answered_within(target, item):
                within += 1
    denominator = offered - short
    share = within / denominator if denominator else 1.0
    return ServiceLevelReport(
        offered=offered,
        answered=answered,
        answered_within=within,
        abandoned=abandoned,
        abandoned_short=short,
        share=share,
        meets_target=share >= target.share,
    )


def _check_seconds(value: float) -> None:
    if math.isnan(value) or value < 0:
        raise ValueError(f"a wait must be a number of seconds >= 0, got {value!r}")
