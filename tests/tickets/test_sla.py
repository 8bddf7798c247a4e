"""Working-day deadlines, the calendar file, overdue clocks and the call-answer service level.

Weekdays used below (2026): Thu 5 Mar, Fri 6 Mar, Sat 7, Sun 8, Mon 9, Tue 10, Wed 11, Thu 12;
Thu 30 Apr, Fri 1 May (Hari Buruh); Fri 14 Aug, Mon 17 Aug (Kemerdekaan). Jakarta is UTC+7 all
year, so the end of a local day (23:59:59.999999) is 16:59:59.999999 UTC.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from callcenter.tickets import lifecycle
from callcenter.tickets.sla import (
    DEFAULT_CALENDAR,
    DEFAULT_TARGETS,
    DONE,
    IN_PROCESS,
    REJECTED,
    WAITING,
    Abandoned,
    Deadlines,
    ServiceLevelTarget,
    SlaPolicy,
    WorkCalendar,
    answered_within,
    load_calendar,
    overdue,
    service_level,
)

JAKARTA = ZoneInfo("Asia/Jakarta")
CAL = WorkCalendar()


def jkt(month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=JAKARTA)


def end_of(month: int, day: int) -> datetime:
    """The end of a local Jakarta day, as UTC (what add_working_days returns)."""
    return datetime(2026, month, day, 23, 59, 59, 999999, tzinfo=JAKARTA).astimezone(UTC)


# ---- add_working_days -------------------------------------------------------------------------


def test_defaults_are_jakarta_monday_to_friday_end_of_day() -> None:
    assert CAL.timezone == JAKARTA
    assert CAL.workdays == frozenset({1, 2, 3, 4, 5})
    assert CAL.holidays == frozenset()
    assert CAL.day_end == time(23, 59, 59, 999999)


@pytest.mark.parametrize(
    ("start", "n", "expected"),
    [
        # Friday afternoon: the Friday itself does not count -> Mon(1) Tue(2) Wed(3).
        (jkt(3, 6, 16), 3, end_of(3, 11)),
        # Saturday and Sunday: counting starts Monday -> end of Wednesday as well.
        (jkt(3, 7, 10), 3, end_of(3, 11)),
        (jkt(3, 8, 23, 59), 3, end_of(3, 11)),
        # Monday morning: Tue(1) Wed(2) Thu(3).
        (jkt(3, 9, 8), 3, end_of(3, 12)),
        # n = 1 from Friday -> end of Monday.
        (jkt(3, 6, 9), 1, end_of(3, 9)),
    ],
)
def test_weekends_are_skipped(start: datetime, n: int, expected: datetime) -> None:
    assert CAL.add_working_days(start, n) == expected


def test_the_result_is_utc_and_the_end_of_the_local_day() -> None:
    deadline = CAL.add_working_days(jkt(3, 6, 16), 3)
    assert deadline.tzinfo is UTC
    assert deadline == datetime(2026, 3, 11, 16, 59, 59, 999999, tzinfo=UTC)
    assert deadline.astimezone(JAKARTA).time() == time(23, 59, 59, 999999)


def test_a_holiday_in_the_middle_is_skipped_like_a_weekend() -> None:
    calendar = WorkCalendar(holidays=frozenset({date(2026, 3, 10)}))  # Tuesday off
    # Fri 6 -> Mon 9 (1), Tue 10 holiday, Wed 11 (2), Thu 12 (3).
    assert calendar.add_working_days(jkt(3, 6, 16), 3) == end_of(3, 12)


def test_a_holiday_on_the_start_day() -> None:
    calendar = WorkCalendar(holidays=frozenset({date(2026, 5, 1)}))  # Fri 1 May, Hari Buruh
    # Created on the holiday itself: the start day never counts anyway -> Mon 4 May.
    assert calendar.add_working_days(jkt(5, 1, 10), 1) == end_of(5, 4)
    # Created the day before: Fri 1 May is skipped -> Mon 4 (1), Tue 5 (2), Wed 6 (3).
    assert calendar.add_working_days(jkt(4, 30, 15), 3) == end_of(5, 6)


def test_the_local_day_decides_not_the_utc_day() -> None:
    # 23:30 UTC on Thursday is already Friday 06:30 in Jakarta: Friday is the start day, so one
    # working day later is Monday (counting the UTC day would have given Friday).
    start = datetime(2026, 3, 5, 23, 30, tzinfo=UTC)
    assert start.astimezone(JAKARTA).date() == date(2026, 3, 6)
    assert CAL.add_working_days(start, 1) == end_of(3, 9)
    # The last instant of Thursday in Jakarta is 16:59 UTC; a minute later it is Friday.
    assert CAL.add_working_days(datetime(2026, 3, 5, 16, 59, tzinfo=UTC), 1) == end_of(3, 6)
    assert CAL.add_working_days(datetime(2026, 3, 5, 17, 0, tzinfo=UTC), 1) == end_of(3, 9)


def test_a_start_in_another_zone_gives_the_same_instant() -> None:
    in_utc = jkt(3, 6, 16).astimezone(UTC)
    in_makassar = jkt(3, 6, 16).astimezone(ZoneInfo("Asia/Makassar"))  # WITA, UTC+8
    assert CAL.add_working_days(in_utc, 3) == CAL.add_working_days(in_makassar, 3) == end_of(3, 11)


def test_another_time_zone_moves_the_deadline() -> None:
    # A command center in Makassar (UTC+8): the end of its Wednesday is 15:59:59.999999 UTC.
    wita = WorkCalendar(timezone=ZoneInfo("Asia/Makassar"))
    assert wita.add_working_days(jkt(3, 6, 16), 3) == datetime(2026, 3, 11, 15, 59, 59, 999999, tzinfo=UTC)


def test_day_end_and_workdays_are_configurable() -> None:
    closing = WorkCalendar(day_end=time(16, 0))
    assert closing.add_working_days(jkt(3, 6, 10), 1) == datetime(2026, 3, 9, 9, 0, tzinfo=UTC)
    six_days = WorkCalendar(workdays=frozenset({1, 2, 3, 4, 5, 6}))
    assert six_days.add_working_days(jkt(3, 6, 10), 1) == end_of(3, 7)  # Saturday counts


@pytest.mark.parametrize("n", [0, -1, True, 1.5, "3"])
def test_n_must_be_a_whole_number_of_at_least_one(n: object) -> None:
    with pytest.raises(ValueError, match="n must be"):
        CAL.add_working_days(jkt(3, 6), n)  # type: ignore[arg-type]


def test_a_naive_start_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        CAL.add_working_days(datetime(2026, 3, 6, 16, 0), 3)


def test_the_calendar_validates_its_workdays() -> None:
    with pytest.raises(ValueError, match="must not be empty"):
        WorkCalendar(workdays=frozenset())
    with pytest.raises(ValueError, match=r"\[8\] are not ISO weekdays"):
        WorkCalendar(workdays=frozenset({1, 8}))


def test_is_working_day() -> None:
    calendar = WorkCalendar(holidays=frozenset({date(2026, 8, 17)}))
    assert calendar.is_working_day(date(2026, 8, 14))  # Friday
    assert not calendar.is_working_day(date(2026, 8, 15))  # Saturday
    assert not calendar.is_working_day(date(2026, 8, 16))  # Sunday
    assert not calendar.is_working_day(date(2026, 8, 17))  # Monday, holiday
    assert calendar.is_working_day(date(2026, 8, 18))


# ---- working_days_between ---------------------------------------------------------------------


def test_working_days_between_counts_only_working_time() -> None:
    # Fri 12:00 -> Mon 12:00: half of Friday + half of Monday; the weekend is free.
    assert CAL.working_days_between(jkt(3, 6, 12), jkt(3, 9, 12)) == pytest.approx(1.0)
    # Within one day: 09:00 -> 15:00 is 6 h = 0.25 day.
    assert CAL.working_days_between(jkt(3, 9, 9), jkt(3, 9, 15)) == pytest.approx(0.25)
    # A span that lies entirely on a weekend is 0.
    assert CAL.working_days_between(jkt(3, 7, 10), jkt(3, 8, 10)) == 0.0
    # Signed: reversed is negative.
    assert CAL.working_days_between(jkt(3, 9, 12), jkt(3, 6, 12)) == pytest.approx(-1.0)
    assert CAL.working_days_between(jkt(3, 9, 12), jkt(3, 9, 12)) == 0.0


def test_working_days_between_skips_holidays_and_measures_overdue() -> None:
    calendar = WorkCalendar(holidays=frozenset({date(2026, 3, 10)}))
    # Mon 00:00 -> Thu 00:00: Mon and Wed count, Tue is a holiday -> 2.
    assert calendar.working_days_between(jkt(3, 9), jkt(3, 12)) == pytest.approx(2.0)
    # Days overdue: deadline end of Wed 11, now Fri 13 12:00 -> all of Thu + half of Fri = 1.5.
    deadline = CAL.add_working_days(jkt(3, 6, 16), 3)
    assert CAL.working_days_between(deadline, jkt(3, 13, 12)) == pytest.approx(1.5)


def test_working_days_between_accepts_mixed_zones() -> None:
    start = jkt(3, 9, 9).astimezone(UTC)
    assert CAL.working_days_between(start, jkt(3, 9, 15)) == pytest.approx(0.25)


# ---- load_calendar ----------------------------------------------------------------------------


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "holidays.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_shipped_calendar_loads() -> None:
    calendar = load_calendar(DEFAULT_CALENDAR)
    assert calendar.timezone == JAKARTA
    assert calendar.workdays == frozenset({1, 2, 3, 4, 5})
    assert calendar.holidays == frozenset(
        {date(2026, 1, 1), date(2026, 5, 1), date(2026, 6, 1), date(2026, 8, 17), date(2026, 12, 25)}
    )
    # Fri 14 Aug + 1 working day: Mon 17 Aug is Independence Day -> Tue 18 Aug.
    assert calendar.add_working_days(jkt(8, 14, 10), 1) == end_of(8, 18)


def test_a_custom_calendar_loads(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
workdays = [1, 2, 3, 4, 5, 6]
holidays = [
    {date = 2026-03-19, name = "Nyepi (from the SKB)"},
    {date = 2026-03-19, name = "a second holiday on the same day"},
    {date = 2026-03-20, name = "Cuti bersama"},
]
""",
    )
    calendar = load_calendar(path, "Asia/Makassar")
    assert calendar.timezone == ZoneInfo("Asia/Makassar")
    assert calendar.workdays == frozenset({1, 2, 3, 4, 5, 6})
    assert calendar.holidays == frozenset({date(2026, 3, 19), date(2026, 3, 20)})


def test_an_empty_file_means_monday_to_friday_without_holidays(tmp_path: Path) -> None:
    calendar = load_calendar(write(tmp_path, "# nothing yet\n"))
    assert calendar.workdays == frozenset({1, 2, 3, 4, 5})
    assert calendar.holidays == frozenset()


GOOD = '{date = 2026-01-01, name = "Tahun Baru Masehi"}'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # Entry 3 has a quoted date: a string, not a TOML date.
        (
            f'holidays = [{GOOD}, {GOOD}, {GOOD}, {{date = "2026-03-10", name = "x"}}]',
            r"holidays\.toml: holidays\[3\]\.date: not a date \(write it unquoted",
        ),
        (
            f'holidays = [{GOOD}, {{date = 2026-03-10T08:00:00, name = "x"}}]',
            r"holidays\[1\]\.date: not a date",
        ),
        (f'holidays = [{GOOD}, {{date = 20260310, name = "x"}}]', r"holidays\[1\]\.date: not a date"),
        ('holidays = [{name = "x"}]', r"holidays\[0\]\.date: missing"),
        ("holidays = [{date = 2026-03-10}]", r"holidays\[0\]\.name: missing or empty"),
        ('holidays = [{date = 2026-03-10, name = " "}]', r"holidays\[0\]\.name: missing or empty"),
        ('holidays = [{date = 2026-03-10, name = "x", nama = "y"}]', r"holidays\[0\]\.nama: unknown key"),
        ('holidays = ["2026-03-10"]', r"holidays\[0\]: expected a table"),
        ('holidays = {date = 2026-03-10, name = "x"}', r"holidays: expected a list"),
        # A misspelt top-level key would silently drop every holiday.
        (f"holiday = [{GOOD}]", r"holidays\.toml: holiday: unknown key \(allowed: holidays, workdays\)"),
        ("workdays = [1, 2, 8]", r"holidays\.toml: workdays\[2\]: 8 is not an ISO weekday"),
        ("workdays = [0]", r"workdays\[0\]: 0 is not an ISO weekday"),
        ("workdays = [1, true]", r"workdays\[1\]: True is not an ISO weekday"),
        ('workdays = ["Mon"]', r"workdays\[0\]: 'Mon' is not an ISO weekday"),
        ("workdays = [1, 1]", r"workdays\[1\]: 1 is listed twice"),
        ("workdays = []", r"workdays: must list at least one day"),
        ("workdays = 5", r"workdays: expected a list"),
        ("workdays = [1, 2", r"holidays\.toml: not valid TOML"),
    ],
)
def test_load_calendar_errors_name_file_entry_and_field(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_calendar(write(tmp_path, text))


def test_load_calendar_refuses_an_unknown_time_zone(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"holidays\.toml: unknown time zone 'Asia/Nowhere'"):
        load_calendar(write(tmp_path, ""), "Asia/Nowhere")


# ---- deadlines --------------------------------------------------------------------------------


def test_status_constants_match_the_lifecycle() -> None:
    assert (WAITING, IN_PROCESS, DONE, REJECTED) == lifecycle.STATUSES


def test_deadlines_before_dispatch() -> None:
    deadlines = SlaPolicy().deadlines(CAL, jkt(3, 6, 10), None)
    # Created Fri -> verify by the end of Wed 11; no agency clock yet.
    assert deadlines == Deadlines(verify_by=end_of(3, 11), follow_up_by=None)


def test_deadlines_after_dispatch() -> None:
    deadlines = SlaPolicy().deadlines(CAL, jkt(3, 6, 10), jkt(3, 10, 9))
    # Dispatched Tue 10 -> Wed 11 (1), Thu 12 (2), Fri 13 (3), Mon 16 (4), Tue 17 (5).
    assert deadlines.verify_by == end_of(3, 11)
    assert deadlines.follow_up_by == end_of(3, 17)


def test_the_policy_is_configurable_and_validated() -> None:
    deadlines = SlaPolicy(verify_days=1, follow_up_days=2).deadlines(CAL, jkt(3, 6, 10), jkt(3, 9, 9))
    assert deadlines == Deadlines(verify_by=end_of(3, 9), follow_up_by=end_of(3, 11))
    with pytest.raises(ValueError, match="verify_days must be"):
        SlaPolicy(verify_days=0)
    with pytest.raises(ValueError, match="follow_up_days must be"):
        SlaPolicy(follow_up_days=-5)


# ---- overdue ----------------------------------------------------------------------------------

UNDISPATCHED = Deadlines(verify_by=end_of(3, 11), follow_up_by=None)
DISPATCHED = Deadlines(verify_by=end_of(3, 11), follow_up_by=end_of(3, 17))
TICK = timedelta(microseconds=1)


def test_verify_clock() -> None:
    assert overdue(UNDISPATCHED, WAITING, end_of(3, 11)) is None  # at the deadline: still on time
    assert overdue(UNDISPATCHED, WAITING, end_of(3, 11) + TICK) == "verify"
    assert overdue(UNDISPATCHED, WAITING, jkt(3, 20)) == "verify"


def test_a_ticket_the_center_is_handling_itself_stays_on_the_verify_clock() -> None:
    # Settling it directly or dispatching it: either must happen within the verify days.
    assert overdue(UNDISPATCHED, IN_PROCESS, end_of(3, 11)) is None
    assert overdue(UNDISPATCHED, IN_PROCESS, jkt(3, 20)) == "verify"


def test_follow_up_clock() -> None:
    # Dispatched and waiting in the OPD's queue: past verify_by does not matter any more.
    assert overdue(DISPATCHED, WAITING, jkt(3, 13)) is None
    assert overdue(DISPATCHED, WAITING, end_of(3, 17)) is None
    assert overdue(DISPATCHED, WAITING, end_of(3, 17) + TICK) == "follow_up"
    assert overdue(DISPATCHED, IN_PROCESS, end_of(3, 17) + TICK) == "follow_up"


@pytest.mark.parametrize("status", [DONE, REJECTED])
@pytest.mark.parametrize("deadlines", [UNDISPATCHED, DISPATCHED])
def test_closed_tickets_are_never_overdue(status: str, deadlines: Deadlines) -> None:
    assert overdue(deadlines, status, jkt(12, 31)) is None


def test_overdue_refuses_an_unknown_status() -> None:
    with pytest.raises(ValueError, match="unknown ticket status 'waiting'"):
        overdue(UNDISPATCHED, "waiting", jkt(3, 20))


# ---- call-answer service level ----------------------------------------------------------------


def test_default_targets() -> None:
    assert DEFAULT_TARGETS == {
        "q112": ServiceLevelTarget(0.95, 20),
        "hotline": ServiceLevelTarget(0.80, 20),
    }


def test_answered_within_is_inclusive_and_none_when_unanswered() -> None:
    target = ServiceLevelTarget(0.80, 20)
    assert answered_within(target, None) is None
    assert answered_within(target, 0.0) is True
    assert answered_within(target, 20) is True
    assert answered_within(target, 20.01) is False


def test_service_level_on_ten_calls() -> None:
    # Hotline target: 80% within 20 s; calls abandoned within 5 s leave the denominator.
    waits: list[float | Abandoned | None] = [
        3,  # answered, within
        10,  # answered, within
        20,  # answered, within (inclusive bound)
        25,  # answered, late
        40,  # answered, late
        15,  # answered, within
        Abandoned(2),  # abandoned, short
        Abandoned(5),  # abandoned, short (inclusive bound)
        Abandoned(30),  # abandoned after the grace period: counts against the center
        None,  # never answered, time unknown: counts against the center
    ]
    # offered 10, answered 6, within 4, abandoned 4 of which 2 short;
    # share = 4 / (10 - 2) = 0.5 < 0.80.
    report = service_level(DEFAULT_TARGETS["hotline"], waits)
    assert report.offered == 10
    assert report.answered == 6
    assert report.answered_within == 4
    assert report.abandoned == 4
    assert report.abandoned_short == 2
    assert report.share == pytest.approx(0.5)
    assert report.meets_target is False
    # A longer grace period (30 s) also drops the 30 s abandon: 4 / (10 - 3) = 4/7.
    assert service_level(DEFAULT_TARGETS["hotline"], waits, abandoned_short=30).share == pytest.approx(4 / 7)


def test_service_level_meets_the_112_target_exactly() -> None:
    # 19 of 20 within 20 s = 0.95: meets the 95% target (the target is a floor, >=).
    report = service_level(DEFAULT_TARGETS["q112"], [5.0] * 19 + [21.0])
    assert report.share == pytest.approx(0.95)
    assert report.meets_target is True
    # One more late call: 19 / 21 < 0.95.
    assert service_level(DEFAULT_TARGETS["q112"], [5.0] * 19 + [21.0, 21.0]).meets_target is False


def test_service_level_without_a_denominator_is_one() -> None:
    empty = service_level(DEFAULT_TARGETS["q112"], [])
    assert (empty.offered, empty.share, empty.meets_target) == (0, 1.0, True)
    only_short = service_level(DEFAULT_TARGETS["q112"], [Abandoned(1), Abandoned(4.5)])
    assert (only_short.offered, only_short.abandoned_short, only_short.share) == (2, 2, 1.0)


def test_service_level_refuses_bad_numbers() -> None:
    with pytest.raises(ValueError, match="wait must be"):
        service_level(DEFAULT_TARGETS["q112"], [-1.0])
    with pytest.raises(ValueError, match="wait must be"):
        service_level(DEFAULT_TARGETS["q112"], [Abandoned(float("nan"))])
    with pytest.raises(ValueError, match="abandoned_short"):
        service_level(DEFAULT_TARGETS["q112"], [], abandoned_short=-1)
    with pytest.raises(ValueError, match="share"):
        ServiceLevelTarget(1.5, 20)
    with pytest.raises(ValueError, match="seconds"):
        ServiceLevelTarget(0.8, -1)
