"""Erlang C staffing, checked against an independent direct formula and published examples."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from fractions import Fraction
from zoneinfo import ZoneInfo

import pytest

from callcenter.calls import staffing
from callcenter.calls.staffing import CallSample, agents_needed, hourly_advice

JAKARTA = ZoneInfo("Asia/Jakarta")


def direct_erlang_c(agents: int, traffic: float) -> float:
    """The textbook formula with exact fractions and factorials, for small N only:
    C = (A^N/N! · N/(N-A)) / (Σ_{k<N} A^k/k! + A^N/N! · N/(N-A))."""
    a = Fraction(traffic)
    top = a**agents / math.factorial(agents) * Fraction(agents) / (agents - a)
    below = sum((a**k / math.factorial(k) for k in range(agents)), Fraction(0))
    return float(top / (below + top))


def direct_erlang_b(agents: int, traffic: float) -> float:
    a = Fraction(traffic)
    top = a**agents / math.factorial(agents)
    return float(top / sum((a**k / math.factorial(k) for k in range(agents + 1)), Fraction(0)))


# ---- the formulas ----------------------------------------------------------------------------


def test_traffic_in_erlangs() -> None:
    # 100 calls an hour of 180 s each: 100 · 180 / 3600 = 5 Erlangs.
    assert staffing.traffic_erlangs(100, 180) == 5.0
    assert staffing.traffic_erlangs(0, 180) == 0.0


@pytest.mark.parametrize(
    ("agents", "traffic"), [(1, 0.5), (6, 5.0), (7, 5.0), (9, 5.0), (14, 10.0), (30, 24.3)]
)
def test_erlang_b_and_c_match_the_direct_formula(agents: int, traffic: float) -> None:
    assert staffing.erlang_b(agents, traffic) == pytest.approx(direct_erlang_b(agents, traffic), rel=1e-12)
    assert staffing.erlang_c(agents, traffic) == pytest.approx(direct_erlang_c(agents, traffic), rel=1e-12)


def test_five_erlangs_worked_example() -> None:
    # λ = 100/h, AHT = 180 s → A = 5 Erlangs, target 20 s. By the direct formula (exact fractions):
    #   N=6: P(W) = 0.5875, SL = 1 - 0.5875·e^(-1·20/180) = 0.4743, ASA = 0.5875·180/1 = 105.75 s
    #   N=7: P(W) = 0.3241, SL = 1 - 0.3241·e^(-2·20/180) = 0.7404, ASA = 0.3241·180/2 = 29.17 s
    #   N=8: P(W) = 0.1673, SL = 0.8801, ASA = 10.04 s
    # (0.1217, sometimes quoted for this case, is not what Erlang C gives for N=7.)
    expected = {6: (0.5875, 0.4743, 105.75), 7: (0.3241, 0.7404, 29.17), 8: (0.1673, 0.8801, 10.04)}
    for agents, (wait, level, asa) in expected.items():
        result = staffing.evaluate(agents, 100, 180, 20)
        assert round(result.probability_of_waiting, 4) == wait
        assert round(result.service_level, 4) == level
        assert round(result.average_speed_of_answer, 2) == asa
        assert result.traffic == 5.0
        assert result.occupancy == pytest.approx(5 / agents)
        assert round(staffing.probability_of_waiting(agents, 100, 180), 4) == wait
        assert round(staffing.service_level(agents, 100, 180, 20), 4) == level
        assert round(staffing.average_speed_of_answer(agents, 100, 180), 2) == asa
    # 80% within 20 s needs 8 agents (7 give 74%).
    assert agents_needed(100, 180, 0.80, 20) == 8
    assert agents_needed(100, 180, 0.74, 20) == 7


def test_published_example_ten_erlangs() -> None:
    # The widely published worked example: 100 calls in 30 minutes (200/h), AHT 180 s, 80/20.
    # A = 200·180/3600 = 10 Erlangs. Direct formula: N=13 → P(W) 0.2853, SL 0.7956 (short of 80%);
    # N=14 → P(W) 0.1741, SL 1 - 0.1741·e^(-4·20/180) = 0.8884, ASA 0.1741·180/4 = 7.84 s.
    assert round(staffing.service_level(13, 200, 180, 20), 4) == 0.7956
    fourteen = staffing.evaluate(14, 200, 180, 20)
    assert (round(fourteen.probability_of_waiting, 4), round(fourteen.service_level, 4)) == (0.1741, 0.8884)
    assert round(fourteen.average_speed_of_answer, 2) == 7.84
    assert round(fourteen.occupancy, 4) == 0.7143
    assert agents_needed(200, 180, 0.80, 20) == 14
    # Capping occupancy at 70% asks for one more: 10/14 = 71.4% > 70%, 10/15 = 66.7%.
    assert agents_needed(200, 180, 0.80, 20, max_occupancy=0.70) == 15


def test_unstable_queue_and_no_traffic() -> None:
    # N <= A: the queue grows without bound; everyone waits, nobody is answered in time.
    assert staffing.erlang_c(5, 5.0) == 1.0
    assert staffing.service_level(4, 100, 180, 20) == 0.0
    assert staffing.average_speed_of_answer(5, 100, 180) == math.inf
    assert staffing.occupancy(4, 100, 180) == 1.0
    assert staffing.occupancy(0, 100, 180) == 1.0
    # No calls: nobody waits, any staffing meets any target, and none is needed.
    assert staffing.erlang_c(3, 0.0) == 0.0
    assert staffing.service_level(0, 0, 180, 20) == 1.0
    assert staffing.average_speed_of_answer(0, 0, 180) == 0.0
    assert staffing.occupancy(2, 0, 180) == 0.0
    assert agents_needed(0, 180, 0.99, 10) == 0
    assert staffing.erlang_b(0, 3.0) == 1.0


def test_zero_target_time_and_full_target() -> None:
    # T = 0: SL is the share answered at once, 1 - P(W). For A = 5, N = 9: 1 - 0.0805 = 0.9195.
    assert round(staffing.service_level(9, 100, 180, 0), 4) == 0.9195
    assert agents_needed(100, 180, 0.9, 0) == 9
    # A target of 100% still ends: C falls below double precision after finitely many agents.
    needed = agents_needed(100, 180, 1.0, 20)
    assert staffing.service_level(needed, 100, 180, 20) == 1.0
    assert staffing.service_level(needed - 1, 100, 180, 20) < 1.0


def test_large_traffic_is_stable() -> None:
    # 100 000 calls/h of 180 s = 5000 Erlangs; A^N/N! would overflow a float long before this.
    needed = agents_needed(100_000, 180, 0.80, 20)
    assert needed == 5013
    level = staffing.service_level(needed, 100_000, 180, 20)
    assert 0.80 <= level < 1.0
    assert staffing.service_level(needed - 1, 100_000, 180, 20) < 0.80
    wait = staffing.erlang_c(5100, 5000.0)
    assert 0.0 < wait < 1.0
    assert round(wait, 4) == 0.1029


def test_more_agents_never_lower_the_service_level() -> None:
    for arrivals, aht in ((30, 240), (100, 180), (360, 300), (1000, 95)):
        levels = [staffing.service_level(n, arrivals, aht, 20) for n in range(0, 150)]
        assert levels == sorted(levels)
        waits = [staffing.probability_of_waiting(n, arrivals, aht) for n in range(0, 150)]
        assert waits == sorted(waits, reverse=True)
        needed = agents_needed(arrivals, aht, 0.8, 20)
        assert levels[needed] >= 0.8 > levels[needed - 1]


def test_more_calls_never_need_fewer_agents() -> None:
    needs = [agents_needed(rate, 180, 0.8, 20) for rate in range(0, 400, 10)]
    assert needs == sorted(needs)
    assert needs[0] == 0


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: staffing.traffic_erlangs(-1, 180), "arrivals_per_hour must not be negative"),
        (lambda: staffing.traffic_erlangs(10, 0), "aht_seconds must be positive"),
        (lambda: staffing.traffic_erlangs(10, -5), "aht_seconds must be positive"),
        (lambda: staffing.traffic_erlangs(math.nan, 180), "arrivals_per_hour must be a finite number"),
        (lambda: staffing.traffic_erlangs(10, math.inf), "aht_seconds must be a finite number"),
        (lambda: staffing.erlang_c(-1, 2.0), "agents must not be negative"),
        (lambda: staffing.erlang_c(2.5, 2.0), "agents must be an integer"),  # type: ignore[arg-type]
        (lambda: staffing.erlang_b(True, 2.0), "agents must be an integer"),
        (lambda: staffing.erlang_b(3, -2.0), "traffic must not be negative"),
        (lambda: staffing.service_level(3, 10, 180, -1), "target_seconds must not be negative"),
        (lambda: agents_needed(10, 180, 0, 20), "target_level must be in (0, 1]"),
        (lambda: agents_needed(10, 180, 1.01, 20), "target_level must be in (0, 1]"),
        (lambda: agents_needed(10, 180, -0.5, 20), "target_level must be in (0, 1]"),
        (lambda: agents_needed(10, 0, 0.8, 20), "aht_seconds must be positive"),
        (lambda: agents_needed(10, 180, 0.8, 20, max_occupancy=0), "max_occupancy must be in (0, 1]"),
        (lambda: agents_needed(10, 180, 0.8, 20, max_occupancy=1.5), "max_occupancy must be in (0, 1]"),
    ],
)
def test_bad_inputs_raise_clear_errors(call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call()  # type: ignore[operator]


def test_call_sample_validation() -> None:
    with pytest.raises(ValueError, match="aware datetime"):
        CallSample(datetime(2026, 11, 23, 9, 0), answered=True, handle_seconds=60)
    with pytest.raises(ValueError, match="handle_seconds must not be negative"):
        CallSample(datetime(2026, 11, 23, 9, 0, tzinfo=UTC), answered=True, handle_seconds=-1)


# ---- per hour of a day -----------------------------------------------------------------------


def at_jakarta(hour: int, minute: int = 0, day: int = 23) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=JAKARTA)


def test_hourly_advice_buckets_by_jakarta_hour() -> None:
    calls = [
        # 17:10 UTC on the 22nd is 00:10 WIB on the 23rd: hour 0 of the Jakarta day.
        CallSample(datetime(2026, 11, 22, 17, 10, tzinfo=UTC), answered=True, handle_seconds=120),
        # 23:59 WIB on the 22nd (16:59 UTC): the day before, ignored.
        CallSample(datetime(2026, 11, 22, 16, 59, tzinfo=UTC), answered=True, handle_seconds=999),
        # 00:00 WIB on the 24th: the next day, ignored.
        CallSample(at_jakarta(0, 0, day=24), answered=True, handle_seconds=999),
        # 09:xx WIB: 100 calls, 90 answered at 200 s → hour 9 measured AHT 200 s.
        *[
            CallSample(at_jakarta(9, i % 60), answered=i < 90, handle_seconds=200 if i < 90 else 0)
            for i in range(100)
        ],
        # 13:xx WIB: 4 calls, none answered → the day's mean AHT (120 + 90·200) / 91 = 199.12 s.
        *[CallSample(at_jakarta(13, 5 * i), answered=False) for i in range(4)],
    ]
    advice = hourly_advice(calls, date(2026, 11, 23), JAKARTA, 0.8, 20, {9: 6, 13: 2, 22: 1})
    assert [a.hour for a in advice] == list(range(24))
    # Hour 0 of the Jakarta day starts at 17:00 UTC the day before.
    assert advice[0].start == datetime(2026, 11, 22, 17, 0, tzinfo=UTC)
    assert advice[9].start == datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
    assert [a.calls for a in advice if a.calls] == [1, 100, 4]
    assert sum(a.calls for a in advice) == 105

    nine = advice[9]
    # A = 100 · 200 / 3600 = 5.556 Erlangs; 80/20 needs 9 agents (8 give SL 0.7949, 9 give 0.9034).
    assert (nine.answered, nine.arrivals_per_hour, nine.aht_seconds) == (90, 100.0, 200.0)
    assert nine.aht_measured is True
    assert round(nine.traffic, 4) == 5.5556
    assert nine.agents_needed == agents_needed(100, 200, 0.8, 20)
    assert nine.agents_needed == 9
    assert (nine.logged_in, nine.shortfall) == (6, 3)
    assert nine.service_level_logged_in == pytest.approx(staffing.service_level(6, 100, 200, 20))

    thirteen = advice[13]
    day_aht = (120 + 90 * 200) / 91
    assert (thirteen.answered, thirteen.aht_measured) == (0, False)
    assert thirteen.aht_seconds == pytest.approx(day_aht)
    assert round(thirteen.aht_seconds, 2) == 199.12
    # 4 calls/h of 199.12 s = 0.2212 Erlangs. One agent: C(1, A) = A, so
    # SL = 1 - 0.2212·e^(-(1 - 0.2212)·20/199.12) = 0.7954, just short of 80%: two are needed.
    assert round(staffing.service_level(1, 4, day_aht, 20), 4) == 0.7954
    assert (thirteen.agents_needed, thirteen.logged_in, thirteen.shortfall) == (2, 2, 0)

    # 1 call/h of 120 s: A = 1/30, one agent gives SL 1 - (1/30)·e^(-(29/30)·20/120) = 0.9716.
    zero = advice[0]
    assert (zero.calls, zero.aht_seconds, zero.agents_needed) == (1, 120.0, 1)
    assert round(zero.service_level_logged_in, 4) == 0.0
    assert round(staffing.service_level(1, 1, 120, 20), 4) == 0.9716

    quiet = advice[22]
    assert (quiet.calls, quiet.agents_needed, quiet.logged_in, quiet.shortfall) == (0, 0, 1, 0)
    assert quiet.traffic == 0.0
    assert quiet.service_level_logged_in == 1.0
    assert advice[5].logged_in == 0


def test_hourly_advice_without_any_answered_call_uses_the_default() -> None:
    calls = [CallSample(at_jakarta(8, m), answered=False) for m in (0, 20, 40)]
    advice = hourly_advice(calls, date(2026, 11, 23), JAKARTA, 0.8, 20, {}, default_aht_seconds=240)
    assert advice[8].aht_seconds == 240.0
    assert advice[8].aht_measured is False
    assert advice[8].agents_needed == agents_needed(3, 240, 0.8, 20) == 1
    assert advice[8].shortfall == 1
    assert advice[8].service_level_logged_in == 0.0
    # The built-in default is 180 s.
    assert hourly_advice(calls, date(2026, 11, 23), JAKARTA, 0.8, 20, {})[8].aht_seconds == 180.0


def test_hourly_advice_of_an_empty_day() -> None:
    advice = hourly_advice([], date(2026, 11, 23), JAKARTA, 0.8, 20, {10: 3})
    assert len(advice) == 24
    assert all(a.agents_needed == 0 and a.calls == 0 for a in advice)
    assert advice[10].logged_in == 3


def test_hourly_advice_accepts_a_datetime_as_its_day() -> None:
    # 20:00 UTC on the 22nd is 03:00 WIB on the 23rd: the Jakarta day is the 23rd.
    calls = [CallSample(at_jakarta(3, 30), answered=True, handle_seconds=60)]
    advice = hourly_advice(calls, datetime(2026, 11, 22, 20, 0, tzinfo=UTC), JAKARTA, 0.8, 20, {})
    assert advice[3].calls == 1
    assert advice[0].start == datetime(2026, 11, 22, 17, 0, tzinfo=UTC)


def test_hourly_advice_on_a_daylight_saving_day_has_real_hours() -> None:
    # Europe/Berlin, 29 March 2026: clocks jump from 02:00 to 03:00, so the day has 23 hours.
    berlin = ZoneInfo("Europe/Berlin")
    advice = hourly_advice([], date(2026, 3, 29), berlin, 0.8, 20, {})
    assert len(advice) == 23
    assert [a.hour for a in advice][:4] == [0, 1, 3, 4]
    assert advice[1].start + timedelta(hours=1) == advice[2].start


def test_hourly_advice_rejects_bad_parameters() -> None:
    with pytest.raises(ValueError, match="target_level"):
        hourly_advice([], date(2026, 11, 23), JAKARTA, 1.5, 20, {})
    with pytest.raises(ValueError, match="aht_seconds must be positive"):
        hourly_advice([], date(2026, 11, 23), JAKARTA, 0.8, 20, {}, default_aht_seconds=0)
    with pytest.raises(ValueError, match=r"logged_in\[4\] must not be negative"):
        hourly_advice([], date(2026, 11, 23), JAKARTA, 0.8, 20, {4: -1})
