"""Staffing advice from Erlang C: how many agents an hour's calls need to meet a service level.

Pure: numbers in, numbers out. The model is the classic M/M/N queue (Poisson arrivals, exponential
handle times, callers who never give up). Real callers do hang up, so the advice errs on the safe
side: it asks for at least as many agents as a queue with abandonment would.

Erlang B is computed with its recursion B(0) = 1, B(k) = A·B(k-1) / (k + A·B(k-1)), and Erlang C
from it, C = N·B / (N - A·(1 - B)). Every intermediate value stays in [0, 1], so large traffic
(thousands of Erlangs) neither overflows nor loses precision the way A^N / N! does.

Definitions, for N agents, traffic A = λ·AHT (in Erlangs) and target time T:
- probability of waiting  P(W) = C(N, A)                      (1 when N <= A: the queue grows)
- service level           SL(T) = 1 - C(N, A)·exp(-(N - A)·T / AHT)   (0 when N <= A)
- average speed of answer ASA = C(N, A)·AHT / (N - A)          (infinite when N <= A)
- occupancy               A / N, capped at 1
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo

# Used for an hour's handle time when no call of the whole day was answered.
DEFAULT_AHT_SECONDS = 180.0


@dataclass(frozen=True)
class Staffing:
    """What N agents give for one arrival rate and handle time."""

    agents: int
    traffic: float  # Erlangs
    probability_of_waiting: float
    service_level: float  # share answered within the target time
    average_speed_of_answer: float  # seconds; math.inf when the queue is unstable
    occupancy: float


@dataclass(frozen=True)
class CallSample:
    """One measured call: when it arrived, whether an agent answered, and how long the agent
    spent on it (talk plus wrap-up; 0 when unanswered)."""

    arrived_at: datetime
    answered: bool
    handle_seconds: float = 0.0

    def __post_init__(self) -> None:
        if self.arrived_at.tzinfo is None:
            raise ValueError("arrived_at must be an aware datetime")
        _check_finite("handle_seconds", self.handle_seconds)
        if self.handle_seconds < 0:
            raise ValueError(f"handle_seconds must not be negative, got {self.handle_seconds}")


@dataclass(frozen=True)
class HourAdvice:
    """One hour of a day: what was measured, what it needs, and who was there."""

    hour: int  # local hour of day, 0-23
    start: datetime  # start of the hour, UTC
    calls: int
    answered: int
    arrivals_per_hour: float
    aht_seconds: float
    aht_measured: bool  # False: no call answered this hour, the day's mean (or the default) is used
    traffic: float  # Erlangs
    agents_needed: int
    logged_in: int
    shortfall: int  # agents missing to meet the target (0 when enough were logged in)
    service_level_logged_in: float  # what the logged-in agents could give at this load


# ---- the formulas ----------------------------------------------------------------------------


def traffic_erlangs(arrivals_per_hour: float, aht_seconds: float) -> float:
    """Offered traffic A = λ·AHT in Erlangs (λ per hour, AHT in seconds)."""
    _check_load(arrivals_per_hour, aht_seconds)
    return arrivals_per_hour * aht_seconds / 3600.0


def erlang_b(agents: int, traffic: float) -> float:
    """Blocking probability of N servers with no queue, by the stable recursion."""
    _check_agents(agents)
    _check_traffic(traffic)
    b = 1.0
    for k in range(1, agents + 1):
        b = traffic * b / (k + traffic * b)
    return b


def erlang_c(agents: int, traffic: float) -> float:
    """Probability that a caller has to wait with N agents and A Erlangs of traffic."""
    _check_agents(agents)
    _check_traffic(traffic)
    return _erlang_c_from_b(agents, traffic, erlang_b(agents, traffic))


def probability_of_waiting(agents: int, arrivals_per_hour: float, aht_seconds: float) -> float:
    return erlang_c(agents, traffic_erlangs(arrivals_per_hour, aht_seconds))


def service_level(agents: int, arrivals_per_hour: float, aht_seconds: float, target_seconds: float) -> float:
    """Share of callers answered within ``target_seconds``."""
    _check_target_seconds(target_seconds)
    traffic = traffic_erlangs(arrivals_per_hour, aht_seconds)
    return _service_level(agents, traffic, erlang_c(agents, traffic), aht_seconds, target_seconds)


def average_speed_of_answer(agents: int, arrivals_per_hour: float, aht_seconds: float) -> float:
    """Mean wait in seconds over all callers (those answered at once count as 0)."""
    traffic = traffic_erlangs(arrivals_per_hour, aht_seconds)
    return _asa(agents, traffic, erlang_c(agents, traffic), aht_seconds)


def occupancy(agents: int, arrivals_per_hour: float, aht_seconds: float) -> float:
    """Share of logged-in time the agents spend on calls."""
    _check_agents(agents)
    return _occupancy(agents, traffic_erlangs(arrivals_per_hour, aht_seconds))


def evaluate(agents: int, arrivals_per_hour: float, aht_seconds: float, target_seconds: float) -> Staffing:
    """All the measures for N agents at once."""
    _check_agents(agents)
    _check_target_seconds(target_seconds)
    traffic = traffic_erlangs(arrivals_per_hour, aht_seconds)
    wait = erlang_c(agents, traffic)
    return Staffing(
        agents=agents,
        traffic=traffic,
        probability_of_waiting=wait,
        service_level=_service_level(agents, traffic, wait, aht_seconds, target_seconds),
        average_speed_of_answer=_asa(agents, traffic, wait, aht_seconds),
        occupancy=_occupancy(agents, traffic),
    )


def agents_needed(
    arrivals_per_hour: float,
    aht_seconds: float,
    target_level: float,
    target_seconds: float,
    max_occupancy: float | None = None,
) -> int:
    """The smallest N whose service level within ``target_seconds`` is at least ``target_level``
    (and whose occupancy is at most ``max_occupancy``, when given). No calls need no agents."""
    traffic = traffic_erlangs(arrivals_per_hour, aht_seconds)
    if not 0.0 < target_level <= 1.0:
        raise ValueError(f"target_level must be in (0, 1], got {target_level}")
    _check_target_seconds(target_seconds)
    if max_occupancy is not None and not 0.0 < max_occupancy <= 1.0:
        raise ValueError(f"max_occupancy must be in (0, 1], got {max_occupancy}")
    if traffic == 0.0:
        return 0
    # Fewer than floor(A) + 1 agents can never keep up; the recursion is carried forward from
    # there so the search costs O(N) in all.
    agents = math.floor(traffic) + 1
    b = erlang_b(agents, traffic)
    while True:
        level = _service_level(
            agents, traffic, _erlang_c_from_b(agents, traffic, b), aht_seconds, target_seconds
        )
        if level >= target_level and (max_occupancy is None or _occupancy(agents, traffic) <= max_occupancy):
            return agents
        agents += 1
        b = traffic * b / (agents + traffic * b)


# ---- per hour of a day -----------------------------------------------------------------------


def hourly_advice(
    calls: Sequence[CallSample],
    day_start: date,
    tz: tzinfo,
    target_level: float,
    target_seconds: float,
    logged_in: Mapping[int, int],
    *,
    default_aht_seconds: float = DEFAULT_AHT_SECONDS,
    max_occupancy: float | None = None,
) -> list[HourAdvice]:
    """Staffing advice for each hour of the local day ``day_start`` in ``tz``.

    Calls outside that day are ignored. Every arrival counts as demand, answered or not (an
    abandoned caller still wanted an agent). An hour in which no call was answered takes the day's
    mean handle time, or ``default_aht_seconds`` when nothing was answered all day. ``logged_in``
    maps a local hour of day to the agents logged in then (missing hours: none).

    Hours are real hours between the local midnights, so a day with a daylight-saving change has
    23 or 25 of them (never in Asia/Jakarta, which has no DST).
    """
    _check_load(0.0, default_aht_seconds)
    if isinstance(day_start, datetime):  # a datetime is a date too: take its local calendar day
        day_start = (day_start.astimezone(tz) if day_start.tzinfo else day_start).date()
    first = datetime.combine(day_start, time(), tzinfo=tz).astimezone(UTC)
    end = datetime.combine(day_start + timedelta(days=1), time(), tzinfo=tz).astimezone(UTC)
    hours = int((end - first) / timedelta(hours=1))
    counts = [0] * hours
    answered = [0] * hours
    handle = [0.0] * hours
    for call in calls:
        at = call.arrived_at.astimezone(UTC)
        if not first <= at < end:
            continue
        index = int((at - first) / timedelta(hours=1))
        counts[index] += 1
        # A call answered with no measured handle time says nothing about how long calls take.
        if call.answered and call.handle_seconds > 0:
            answered[index] += 1
            handle[index] += call.handle_seconds
    day_answered = sum(answered)
    day_aht = sum(handle) / day_answered if day_answered else default_aht_seconds
    advice: list[HourAdvice] = []
    for index in range(hours):
        start = first + timedelta(hours=index)
        hour = start.astimezone(tz).hour
        measured = answered[index] > 0
        aht = handle[index] / answered[index] if measured else day_aht
        rate = float(counts[index])  # one-hour buckets: the count is the rate per hour
        present = logged_in.get(hour, 0)
        if present < 0:
            raise ValueError(f"logged_in[{hour}] must not be negative, got {present}")
        needed = agents_needed(rate, aht, target_level, target_seconds, max_occupancy)
        advice.append(
            HourAdvice(
                hour=hour,
                start=start,
                calls=counts[index],
                answered=answered[index],
                arrivals_per_hour=rate,
                aht_seconds=aht,
                aht_measured=measured,
                traffic=traffic_erlangs(rate, aht),
                agents_needed=needed,
                logged_in=present,
                shortfall=max(0, needed - present),
                service_level_logged_in=service_level(present, rate, aht, target_seconds),
            )
        )
    return advice


# ---- helpers ---------------------------------------------------------------------------------


def _erlang_c_from_b(agents: int, traffic: float, b: float) -> float:
    if traffic == 0.0:
        return 0.0
    if agents <= traffic:
        return 1.0
    return agents * b / (agents - traffic * (1.0 - b))


def _service_level(agents: int, traffic: float, wait: float, aht: float, target_seconds: float) -> float:
    if traffic == 0.0:
        return 1.0
    if agents <= traffic:
        return 0.0
    return max(0.0, 1.0 - wait * math.exp(-(agents - traffic) * target_seconds / aht))


def _asa(agents: int, traffic: float, wait: float, aht: float) -> float:
    if traffic == 0.0:
        return 0.0
    if agents <= traffic:
        return math.inf
    return wait * aht / (agents - traffic)


def _occupancy(agents: int, traffic: float) -> float:
    if traffic == 0.0:
        return 0.0
    if agents == 0:
        return 1.0
    return min(1.0, traffic / agents)


def _check_finite(name: str, value: float) -> None:
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value}")


def _check_load(arrivals_per_hour: float, aht_seconds: float) -> None:
    _check_finite("arrivals_per_hour", arrivals_per_hour)
    _check_finite("aht_seconds", aht_seconds)
    if arrivals_per_hour < 0:
        raise ValueError(f"arrivals_per_hour must not be negative, got {arrivals_per_hour}")
    if aht_seconds <= 0:
        raise ValueError(f"aht_seconds must be positive, got {aht_seconds}")


def _check_traffic(traffic: float) -> None:
    _check_finite("traffic", traffic)
    if traffic < 0:
        raise ValueError(f"traffic must not be negative, got {traffic}")


def _check_agents(agents: int) -> None:
    # bool is an int; True agents is a bug in the caller, not one agent.
    if isinstance(agents, bool) or not isinstance(agents, int):
        raise ValueError(f"agents must be an integer, got {agents!r}")
    if agents < 0:
        raise ValueError(f"agents must not be negative, got {agents}")


def _check_target_seconds(target_seconds: float) -> None:
    _check_finite("target_seconds", target_seconds)
    if target_seconds < 0:
        raise ValueError(f"target_seconds must not be negative, got {target_seconds}")
