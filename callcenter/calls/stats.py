"""Today's figures for the wallboard, from the call log: per queue the calls offered, answered,
abandoned and the service level against the queue's target; calls per hour; and the staffing
advice (Erlang C) for each hour next to the agents logged in.

Calls an agent classified as prank or ghost (``blocks.KPI_EXCLUDED``) are left out of every
figure, as real 112 centers keep them out of their KPIs. Service level counts abandoned calls
against the target: answered within the target time / (answered + abandoned).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, time, timedelta, tzinfo
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from callcenter.calls.blocks import counts_for_kpi
from callcenter.calls.records import CallRecord
from callcenter.calls.staffing import CallSample, hourly_advice
from callcenter.tickets.sla import DEFAULT_TARGETS, ServiceLevelTarget


def day_bounds(now: datetime, tz: tzinfo) -> tuple[datetime, datetime]:
    """The local calendar day of ``now`` as UTC start and end."""
    day = now.astimezone(tz).date()
    start = datetime.combine(day, time(), tzinfo=tz).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(), tzinfo=tz).astimezone(UTC)
    return start, end


def today(
    session: Session,
    now: datetime,
    tz: tzinfo,
    logged_in: Mapping[str, int],
    targets: Mapping[str, ServiceLevelTarget] = DEFAULT_TARGETS,
) -> dict[str, Any]:
    """``logged_in`` maps a queue to the agents logged in to it now (the current hour's figure)."""
    start, end = day_bounds(now, tz)
    calls = list(
        session.scalars(
            select(CallRecord).where(
                CallRecord.started_at >= start,
                CallRecord.started_at < end,
                CallRecord.queue != "",
                counts_for_kpi(CallRecord.id),
            )
        )
    )
    current_hour = now.astimezone(tz).hour
    queues: list[dict[str, Any]] = []
    per_hour = [0] * 24
    for name in sorted({c.queue for c in calls} | set(targets)):
        target = targets.get(name, ServiceLevelTarget(0.80, 20))
        mine = [c for c in calls if c.queue == name]
        answered = [c for c in mine if c.answered_at is not None]
        abandoned = [c for c in mine if c.answered_at is None and c.ended_at is not None]
        within = [c for c in answered if c.wait_seconds is not None and c.wait_seconds <= target.seconds]
        counted = len(answered) + len(abandoned)
        samples = []
        for c in mine:
            arrived = c.started_at
            per_hour[arrived.astimezone(tz).hour] += 1
            handle = 0.0
            answered_at, ended_at = c.answered_at, c.ended_at
            if answered_at is not None and ended_at is not None:
                handle = max(0.0, (ended_at - answered_at).total_seconds())
            samples.append(CallSample(arrived, answered_at is not None, handle))
        advice = hourly_advice(
            samples, now, tz, target.share, target.seconds, {current_hour: logged_in.get(name, 0)}
        )
        queues.append(
            {
                "name": name,
                "target": {"share": target.share, "seconds": target.seconds},
                "offered": len(mine),
                "answered": len(answered),
                "abandoned": len(abandoned),
                "answered_within_target": len(within),
                "service_level": round(len(within) / counted, 4) if counted else None,
                "staffing": [
                    {
                        "hour": a.hour,
                        "calls": a.calls,
                        "agents_needed": a.agents_needed,
                        "logged_in": a.logged_in if a.hour == current_hour else None,
                        "aht_seconds": round(a.aht_seconds, 1),
                    }
                    for a in advice
                    if a.calls or a.hour == current_hour
                ],
            }
        )
    return {"day_start": start.isoformat(), "queues": queues, "calls_per_hour": per_hour}
