"""The call log written from live-state changes, and today's wallboard figures computed from it
(SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select

from callcenter.auth import service as auth
from callcenter.calls import stats
from callcenter.calls.blocks import classify_call
from callcenter.calls.calllog import WRITERS, CallLog, CallLogged
from callcenter.calls.live import AgentAnswered, CallEnded, CallerLeft, CallerWaiting, CallStarted
from callcenter.calls.records import CallRecord
from callcenter.events import EventBus
from callcenter.storage.database import Database

JAKARTA = ZoneInfo("Asia/Jakarta")
# Monday 23 November 2026, 10:00 in Jakarta.
NOW = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)


def started(linkedid: str, at: datetime, number: str = "081200000009") -> CallStarted:
    return CallStarted("pbx", linkedid, number, "", "PJSIP/citizen-0001", at.timestamp())


def waiting(linkedid: str, at: datetime, queue: str = "q112") -> CallerWaiting:
    return CallerWaiting(
        "pbx", queue, linkedid, linkedid, "081200000009", "", 1, at.timestamp(), {"CC_SERVICE": "112"}
    )


def answered(linkedid: str, wait: float, queue: str = "q112") -> AgentAnswered:
    return AgentAnswered(
        "pbx", "PJSIP/agent1", "ani", queue, linkedid, linkedid, "081200000009", "", wait, 2, {}
    )


def ended(linkedid: str, at: datetime) -> CallEnded:
    return CallEnded("pbx", linkedid, "081200000009", at.timestamp(), 60.0, "q112", "ani", True)


async def play(db: Database, changes: list[tuple[object, datetime]]) -> EventBus:
    bus = EventBus()
    for change, at in changes:
        log = CallLog(db, bus, clock=lambda at=at: at)  # type: ignore[misc]
        await log.write(WRITERS[type(change)], change)  # type: ignore[index]
    return bus


async def test_a_call_is_logged_once_with_its_answer(db: Database) -> None:
    t0 = NOW - timedelta(minutes=5)
    changes: list[tuple[object, datetime]] = [
        (started("L1", t0), t0),
        (waiting("L1", t0 + timedelta(seconds=8)), t0 + timedelta(seconds=8)),
        (answered("L1", 12.5), t0 + timedelta(seconds=20)),
        (answered("L1", 99.0), t0 + timedelta(seconds=50)),  # a replay moves nothing
        (ended("L1", t0), t0 + timedelta(seconds=80)),
    ]
    await play(db, changes)
    with db.transaction() as s:
        call = s.scalars(select(CallRecord)).one()
        assert (call.linkedid, call.queue, call.service, call.agent) == ("L1", "q112", "112", "ani")
        assert call.started_at == t0 and call.wait_seconds == 12.5
        assert call.answered_at == t0 + timedelta(seconds=20)
        assert call.ended_at == t0 + timedelta(seconds=80)


async def test_the_log_says_what_it_wrote(db: Database) -> None:
    bus = EventBus()
    async with bus.subscribe() as events:
        await CallLog(db, bus, clock=lambda: NOW).write(WRITERS[CallStarted], started("L9", NOW))
        logged = await events.wait_for(CallLogged, 1)
    assert (logged.linkedid, logged.change) == ("L9", "CallStarted")


async def test_today_figures_leave_pranks_out(db: Database) -> None:
    nine = datetime(2026, 11, 23, 2, 10, tzinfo=UTC)  # 09:10 WIB
    yesterday = nine - timedelta(days=1)
    plan: list[tuple[object, datetime]] = []
    for linkedid, wait in (("A", 5.0), ("B", 15.0), ("C", 30.0), ("P", 3.0)):
        plan += [(started(linkedid, nine), nine), (waiting(linkedid, nine), nine),
                 (answered(linkedid, wait), nine + timedelta(seconds=wait)),
                 (ended(linkedid, nine), nine + timedelta(seconds=wait + 120))]  # fmt: skip
    left = CallerLeft("pbx", "q112", "X", "X", "081200000009", 40.0, True)
    plan += [(started("X", NOW), NOW), (waiting("X", NOW), NOW), (left, NOW), (ended("X", NOW), NOW)]
    plan += [(started("Y", yesterday), yesterday), (waiting("Y", yesterday), yesterday)]  # not today
    await play(db, plan)
    with db.transaction() as s, s.begin():
        agent = auth.actor_of(auth.create_user(s, "ani", "password-ani-1", "agent"))
        classify_call(s, "pbx", "P", "iseng", agent, now=NOW)  # a prank: out of the KPIs
    with db.transaction() as s:
        figures = stats.today(s, NOW, JAKARTA, {"q112": 2})
    q112 = next(q for q in figures["queues"] if q["name"] == "q112")
    assert (q112["offered"], q112["answered"], q112["abandoned"]) == (4, 3, 1)
    assert q112["answered_within_target"] == 2  # 5 s and 15 s; 30 s is over the 20 s target
    assert q112["service_level"] == 0.5  # 2 / (3 answered + 1 abandoned)
    assert figures["calls_per_hour"][9] == 3 and figures["calls_per_hour"][10] == 1
    assert sum(figures["calls_per_hour"]) == 4
    hours = {h["hour"]: h for h in q112["staffing"]}
    assert hours[10]["logged_in"] == 2 and hours[9]["logged_in"] is None
    assert hours[9]["calls"] == 3 and hours[9]["agents_needed"] >= 1
    hotline = next(q for q in figures["queues"] if q["name"] == "hotline")
    assert hotline["offered"] == 0 and hotline["service_level"] is None
