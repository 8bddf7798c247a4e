"""Operator and OPD scores on a small data set whose every figure is worked out by hand below."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from callcenter.tickets.scoring import Score, TicketFacts, score
from callcenter.tickets.sla import DONE, IN_PROCESS, REJECTED, WAITING, WorkCalendar

T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)  # Monday 08:00 in Jakarta


def h(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def ticket(
    number: str,
    agency: str | None,
    operator: str | None,
    *,
    dispatched: float | None = None,
    first: float | None = None,
    resolved: float | None = None,
    status: str = WAITING,
    reopen: int = 0,
    within: bool | None = None,
    sup: tuple[int, ...] = (),
    cit: tuple[int, ...] = (),
    created: float = 0,
) -> TicketFacts:
    """A ticket with times given in hours after T0."""
    return TicketFacts(
        number=number,
        agency=agency,
        operator=operator,
        created_at=h(created),
        dispatched_at=h(dispatched) if dispatched is not None else None,
        first_response_at=h(first) if first is not None else None,
        resolved_at=h(resolved) if resolved is not None else None,
        status=status,
        reopen_count=reopen,
        within_sla=within,
        supervisor_scores=sup,
        citizen_ratings=cit,
    )


# For each ticket: by operator, durations start at creation; by agency, at the dispatch.
FACTS = [
    # op: first 4, res 26 | agency: first 4-2 = 2, res 26-2 = 24
    ticket(
        "T1", "PUPR", "andi", dispatched=2, first=4, resolved=26, status=DONE, within=True, sup=(4,), cit=(5,)
    ),
    # op: first 7, res 49 | agency: first 6, res 48; reopened once
    ticket(
        "T2",
        "PUPR",
        "andi",
        dispatched=1,
        first=7,
        resolved=49,
        status=DONE,
        reopen=1,
        within=False,
        cit=(3, 4),
    ),
    # still open, nothing measured
    ticket("T3", "PUPR", "budi", created=10, dispatched=12, status=IN_PROCESS),
    # rejected counts as resolved | op: first 5, res 15 | agency: first 2, res 12
    ticket(
        "T4", "DISHUB", "budi", dispatched=3, first=5, resolved=15, status=REJECTED, within=True, sup=(2,)
    ),
    # settled by the command center itself, never dispatched: no agency | op: first 1, res 3
    ticket("T5", None, "citra", first=1, resolved=3, status=DONE, within=True, sup=(5,), cit=(4,)),
    # op: first 3, res 8 | agency: first 1, res 6; reopened twice (counts once in the rate)
    ticket(
        "T6",
        "DISHUB",
        "citra",
        dispatched=2,
        first=3,
        resolved=8,
        status=DONE,
        reopen=2,
        within=True,
        sup=(3, 5),
        cit=(1,),
    ),
    # no operator (skipped by operator) | agency: first 1, res 10
    ticket("T7", "PUPR", None, dispatched=1, first=2, resolved=11, status=DONE, within=True, cit=(5,)),
    # agency known but no dispatch time: a ticket for DISHUB, but no durations; no operator
    ticket("T8", "DISHUB", None, first=4),
    # an operator with a single untouched ticket: every optional figure is None
    ticket("T9", None, "dedi"),
    # neither key: skipped both ways
    ticket("T10", None, None, first=1, resolved=2, status=DONE, within=False, sup=(1,)),
]


def expect(**figures: object) -> dict[str, object]:
    """What ``asdict(score)`` should be, floats compared with pytest.approx."""
    return {k: pytest.approx(v) if isinstance(v, float) else v for k, v in figures.items()}


def test_scores_by_agency() -> None:
    dishub, pupr = score(FACTS, by="agency")
    # DISHUB: T4, T6, T8. Resolved T4, T6.
    # first response: T4 2, T6 1 (T8 not dispatched) -> mean 1.5, median 1.5
    # resolution: T4 12, T6 6 -> mean 9, median 9
    # within SLA: T4 yes, T6 yes, T8 unknown -> 2/2 = 1.0
    # reopened: T6 -> 1/3
    # quality: supervisor (2, 3, 5) -> 10/3; citizen (1) -> 1; (10/3 + 1) / 2 = 13/6
    assert asdict(dishub) == expect(
        key="DISHUB",
        tickets=3,
        resolved=2,
        mean_first_response_hours=1.5,
        median_first_response_hours=1.5,
        mean_resolution_hours=9.0,
        median_resolution_hours=9.0,
        within_sla_share=1.0,
        reopen_rate=1 / 3,
        quality=13 / 6,
    )
    # PUPR: T1, T2, T3, T7. Resolved T1, T2, T7.
    # first response: T1 2, T2 6, T7 1 -> mean 3, median 2
    # resolution: T1 24, T2 48, T7 10 -> mean 82/3, median 24
    # within SLA: T1 yes, T2 no, T7 yes (T3 unknown) -> 2/3
    # reopened: T2 -> 1/4
    # quality: supervisor (4) -> 4; citizen (5, 3, 4, 5) -> 17/4; (4 + 4.25) / 2 = 4.125
    assert asdict(pupr) == expect(
        key="PUPR",
        tickets=4,
        resolved=3,
        mean_first_response_hours=3.0,
        median_first_response_hours=2.0,
        mean_resolution_hours=82 / 3,
        median_resolution_hours=24.0,
        within_sla_share=2 / 3,
        reopen_rate=0.25,
        quality=4.125,
    )


def test_scores_by_operator() -> None:
    andi, budi, citra, dedi = score(FACTS, by="operator")
    # andi's and budi's figures are exact binary fractions, so they are compared exactly.
    # andi: T1, T2. first (4, 7) -> 5.5; resolution (26, 49) -> 37.5; SLA (yes, no) -> 0.5;
    # reopened T2 -> 1/2; quality: supervisor (4) -> 4, citizen (5, 3, 4) -> 4; -> 4.0
    assert andi == Score("andi", 2, 2, 5.5, 5.5, 37.5, 37.5, 0.5, 0.5, 4.0)
    # budi: T3 (open), T4. first (5) -> 5; resolution (15) -> 15; SLA (yes; T3 unknown) -> 1.0;
    # nothing reopened -> 0.0; quality: supervisor (2) only -> 2.0
    assert budi == Score("budi", 2, 1, 5.0, 5.0, 15.0, 15.0, 1.0, 0.0, 2.0)
    # citra: T5, T6. first (1, 3) -> 2; resolution (3, 8) -> 5.5; SLA (yes, yes) -> 1.0;
    # reopened T6 -> 1/2; quality: supervisor (5, 3, 5) -> 13/3, citizen (4, 1) -> 2.5;
    # (13/3 + 5/2) / 2 = 41/12
    assert asdict(citra) == expect(
        key="citra",
        tickets=2,
        resolved=2,
        mean_first_response_hours=2.0,
        median_first_response_hours=2.0,
        mean_resolution_hours=5.5,
        median_resolution_hours=5.5,
        within_sla_share=1.0,
        reopen_rate=0.5,
        quality=41 / 12,
    )
    # dedi: one untouched ticket.
    assert dedi == Score("dedi", 1, 0, None, None, None, None, None, 0.0, None)


def test_tickets_without_the_key_are_skipped_and_keys_are_sorted() -> None:
    assert [s.key for s in score(FACTS, by="agency")] == ["DISHUB", "PUPR"]
    assert [s.key for s in score(FACTS, by="operator")] == ["andi", "budi", "citra", "dedi"]
    assert sum(s.tickets for s in score(FACTS, by="agency")) == 7  # T5, T9, T10 have no agency
    assert sum(s.tickets for s in score(FACTS, by="operator")) == 7  # T7, T8, T10 have no operator
    assert score([], by="agency") == []


def test_as_row_rounds_to_two_decimals_and_keeps_none() -> None:
    dishub = score(FACTS, by="agency")[0]
    assert dishub.as_row() == {
        "key": "DISHUB",
        "tickets": 3,
        "resolved": 2,
        "mean_first_response_hours": 1.5,
        "median_first_response_hours": 1.5,
        "mean_resolution_hours": 9.0,
        "median_resolution_hours": 9.0,
        "within_sla_share": 1.0,
        "reopen_rate": 0.33,  # 1/3
        "quality": 2.17,  # 13/6 = 2.1666...
    }
    # The data itself is not rounded.
    assert dishub.reopen_rate == 1 / 3
    dedi = score(FACTS, by="operator")[3]
    assert dedi.as_row()["quality"] is None
    assert dedi.as_row()["within_sla_share"] is None
    assert dedi.as_row()["reopen_rate"] == 0.0


def test_a_calendar_leaves_weekends_out_of_the_hours() -> None:
    jakarta = ZoneInfo("Asia/Jakarta")
    facts = [
        TicketFacts(
            number="W1",
            agency="PUPR",
            operator="andi",
            created_at=datetime(2026, 3, 6, 12, 0, tzinfo=jakarta),  # Friday noon
            dispatched_at=datetime(2026, 3, 6, 16, 0, tzinfo=jakarta),  # Friday 16:00
            first_response_at=datetime(2026, 3, 9, 8, 0, tzinfo=jakarta),  # Monday 08:00
            resolved_at=datetime(2026, 3, 10, 16, 0, tzinfo=jakarta),  # Tuesday 16:00
            status=DONE,
            reopen_count=0,
            within_sla=True,
            supervisor_scores=(),
            citizen_ratings=(),
        )
    ]
    # Wall clock, agency: Fri 16:00 -> Mon 08:00 = 64 h; -> Tue 16:00 = 96 h.
    plain = score(facts, by="agency")[0]
    assert plain.mean_first_response_hours == pytest.approx(64.0)
    assert plain.mean_resolution_hours == pytest.approx(96.0)
    # Working time, agency: Fri 8 h + Mon 8 h = 16 h; Fri 8 + Mon 24 + Tue 16 = 48 h.
    agency = score(facts, by="agency", calendar=WorkCalendar())[0]
    assert agency.mean_first_response_hours == pytest.approx(16.0)
    assert agency.median_resolution_hours == pytest.approx(48.0)
    # Working time, operator (from Friday noon): Fri 12 + Mon 8 = 20 h; Fri 12 + Mon 24 + Tue 16 = 52 h.
    operator = score(facts, by="operator", calendar=WorkCalendar())[0]
    assert operator.mean_first_response_hours == pytest.approx(20.0)
    assert operator.mean_resolution_hours == pytest.approx(52.0)


def test_quality_uses_whichever_side_exists() -> None:
    only_citizens = ticket("Q1", "PUPR", "andi", cit=(2, 3))
    only_supervisor = ticket("Q2", "DISHUB", "andi", sup=(5,))
    assert score([only_citizens], by="agency")[0].quality == pytest.approx(2.5)
    assert score([only_supervisor], by="agency")[0].quality == pytest.approx(5.0)
    # Both sides weigh the same, however many scores each has: (5 + 2.5) / 2 = 3.75.
    assert score([only_citizens, only_supervisor], by="operator")[0].quality == pytest.approx(3.75)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"sup": (0,)}, "supervisor_scores: 0 is not a score from 1 to 5"),
        ({"cit": (6,)}, "citizen_ratings: 6 is not a score from 1 to 5"),
        ({"cit": (True,)}, "citizen_ratings: True is not a score"),
        ({"reopen": -1}, "reopen_count must be >= 0"),
    ],
)
def test_facts_are_validated(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ticket("BAD", "PUPR", "andi", **changes)


def test_by_must_be_operator_or_agency() -> None:
    by: Any = "opd"
    with pytest.raises(ValueError, match="by must be 'operator' or 'agency'"):
        score(FACTS, by=by)
