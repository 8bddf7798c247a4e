"""Agent stations, screen-pops and the wallboard through the real web app, with a fake AMI port
(the AMI actions sent are recorded) and live-state changes published on the bus directly.
End-to-end with the real Asterisk is tests/e2e/test_live_calls.py."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import WSServerHandshakeError
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select
from sqlalchemy.orm import Session

from callcenter.auth import service as auth
from callcenter.auth.models import User
from callcenter.calls.blocks import block_caller, classify_call
from callcenter.calls.callbacks import CallbackListed
from callcenter.calls.live import AgentRinging, LiveState
from callcenter.calls.stations import AgentStations, Station
from callcenter.dispatch.seed import seed_directory
from callcenter.events import EventBus
from callcenter.storage.base import utcnow
from callcenter.storage.database import Database
from callcenter.tickets.service import CallKey, NewTicket, TicketService, ensure_call
from callcenter.tickets.sla import DEFAULT_CALENDAR, load_calendar
from callcenter.web.api.agents import LiveDeps
from callcenter.web.app import ApiDeps, create_web_app
from callcenter.web.live import OUTBOX_LIMIT, Console, LiveHub
from tests.web.fakes import FakeAmi


@dataclass
class Live:
    client: TestClient
    tokens: dict[str, str]
    ami: FakeAmi
    bus: EventBus
    hub: LiveHub
    db: Database

    def headers(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    async def post(self, path: str, who: str, body: object = None) -> tuple[int, Any]:
        async with self.client.post(path, headers=self.headers(who), json=body or {}) as response:
            return response.status, await response.json()


@pytest.fixture
async def live(db: Database) -> AsyncIterator[Live]:
    tokens = {}
    with db.transaction() as s, s.begin():
        seed_directory(s)
        people = {
            "ani": ("agent", "agent1", ["q112", "hotline"]),
            "budi": ("agent", "agent2", ["q112"]),
            "nostation": ("agent", "", ["q112"]),
            "sri": ("supervisor", "", []),
            "adi": ("auditor", "", []),
        }
        for name, (role, station, skills) in people.items():
            user = auth.create_user(s, name, f"password-{name}", role, station=station, skills=skills)
            tokens[name] = auth.create_token(s, user, "test")
    bus, state, ami = EventBus(), LiveState(), FakeAmi()
    hub = LiveHub(bus, db, state)
    service = TicketService(load_calendar(DEFAULT_CALENDAR))
    app = create_web_app(_healthy, ApiDeps(db, service, bus, live=LiveDeps(state, AgentStations(ami), hub)))
    task = asyncio.create_task(hub.run())
    try:
        async with TestClient(TestServer(app)) as client:
            yield Live(client, tokens, ami, bus, hub, db)
    finally:
        task.cancel()


async def _healthy() -> dict[str, object]:
    return {"status": "ok"}


async def test_login_pause_resume_logout_send_the_right_actions(live: Live) -> None:
    status, body = await live.post("/api/v1/agent/login", "ani")
    assert status == 200 and body["logged_in"] and body["queues"] == ["q112", "hotline"]
    # Logging in twice is harmless: Asterisk's "Already there" is not an error.
    assert (await live.post("/api/v1/agent/login", "ani"))[0] == 200
    status, body = await live.post("/api/v1/agent/pause", "ani", {"reason": "istirahat"})
    assert status == 200 and body["paused_reason"] == "istirahat"
    status, body = await live.post("/api/v1/agent/pause", "ani", {"reason": "tidur"})
    assert status == 422 and "unknown pause reason" in body["error"]["message"]
    status, body = await live.post("/api/v1/agent/pause", "ani", {"reason": "x\r\nAction: Originate"})
    assert status == 422  # never reaches AMI
    assert (await live.post("/api/v1/agent/resume", "ani"))[1]["paused_reason"] is None
    status, body = await live.post("/api/v1/agent/logout", "ani")
    assert status == 200 and not body["logged_in"]
    actions = [(a["Action"], a.get("Queue"), a.get("Paused"), a.get("Reason")) for a in live.ami.sent]
    assert actions == [
        ("QueueAdd", "q112", "false", None),
        ("QueueAdd", "hotline", "false", None),
        ("QueueAdd", "q112", "false", None),
        ("QueueAdd", "hotline", "false", None),
        ("QueuePause", None, "true", "istirahat"),
        ("QueuePause", None, "false", None),
        ("QueueRemove", "q112", None, None),
        ("QueueRemove", "hotline", None, None),
    ]
    assert {a["Interface"] for a in live.ami.sent} == {"PJSIP/agent1"}
    assert {a["MemberName"] for a in live.ami.sent if a["Action"] == "QueueAdd"} == {"ani"}


async def test_who_may_use_stations_and_the_wallboard(live: Live) -> None:
    status, body = await live.post("/api/v1/agent/login", "nostation")
    assert status == 422 and body["error"]["details"][0]["field"] == "station"
    assert (await live.post("/api/v1/agent/login", "adi"))[0] == 403
    async with live.client.post("/api/v1/agent/login") as response:
        assert response.status == 401
    async with live.client.get("/api/v1/live/wallboard", headers=live.headers("ani")) as response:
        assert response.status == 403
    async with live.client.get("/api/v1/live/wallboard", headers=live.headers("sri")) as response:
        assert response.status == 200 and "systems" in await response.json()
    # Pausing before logging in: Asterisk does not know the interface, and the agent is told.
    status, body = await live.post("/api/v1/agent/pause", "budi", {"reason": "istirahat"})
    assert status == 409 and "Interface not found" in body["error"]["message"]


async def test_restore_adds_back_only_what_asterisk_forgot() -> None:
    ami = FakeAmi()
    stations = AgentStations(ami)
    ani = Station("ani", "agent1", ("q112", "hotline"))
    await stations.login(ani)
    await stations.pause(ani, "pelatihan")
    ami.sent.clear()
    restored = await stations.restore({"PJSIP/agent1": {"q112"}})
    assert restored == ["ani"]
    assert ami.sent == [
        {
            "Action": "QueueAdd", "Queue": "hotline", "Interface": "PJSIP/agent1", "MemberName": "ani",
            "StateInterface": "PJSIP/agent1", "Paused": "true", "Reason": "pelatihan",
        }
    ]  # fmt: skip
    assert await stations.restore({"PJSIP/agent1": {"q112", "hotline"}}) == []


def ringing(linkedid: str, interface: str = "PJSIP/agent1", number: str = "081200001111") -> AgentRinging:
    return AgentRinging(
        system_name="pbx", interface=interface, member_name="ani", queue="q112", uniqueid=linkedid,
        linkedid=linkedid, caller_number=number, caller_name="", wait=4.25,
        variables={"CC_SERVICE": "112", "CC_CHOICE": "medical"},
    )  # fmt: skip


async def test_screen_pop_goes_to_the_ringing_station_only_with_history(live: Live) -> None:
    def earlier(session: Session) -> None:
        service = TicketService(load_calendar(DEFAULT_CALENDAR))
        actor = auth.actor_of(session.scalars(select(User).where(User.username == "ani")).one())
        banjir = NewTicket(summary="<b>banjir</b>", channel="112", reporter_number="081200001111")
        service.create(session, banjir, actor)
        by_ivr = NewTicket(summary="IVR", channel="hotline", call=CallKey("pbx", "L-2", "0812"))
        service.create(session, by_ivr, actor)
        # An earlier call from the same number, judged a prank, and the number blocked for it.
        ensure_call(session, CallKey("pbx", "L-0", "081200001111"), utcnow())
        classify_call(session, "pbx", "L-0", "iseng", actor, now=utcnow())
        block_caller(session, "081200001111", "iseng berulang", actor, utcnow())

    await live.db.run(earlier)
    async with (
        live.client.ws_connect("/api/v1/live/socket", headers=live.headers("ani")) as ani,
        live.client.ws_connect("/api/v1/live/socket", headers=live.headers("budi")) as budi,
        live.client.ws_connect("/api/v1/live/socket", headers=live.headers("sri")) as sri,
    ):
        assert json.loads(await ani.receive_str())["station"] == "PJSIP/agent1"
        assert json.loads(await budi.receive_str())["station"] == "PJSIP/agent2"
        hello = json.loads(await sri.receive_str())
        assert hello["watches"] and hello["station"] is None
        assert json.loads(await sri.receive_str())["type"] == "wallboard"
        live.bus.publish(ringing("L-1"))
        pop = json.loads(await ani.receive_str(timeout=10))
        assert pop["type"] == "screen_pop" and pop["stage"] == "ringing"
        assert pop["call"] == {
            "system_name": "pbx", "linkedid": "L-1", "caller_number": "081200001111", "caller_name": "",
            "queue": "q112", "service": "112", "wait_seconds": 4.2,
        }  # fmt: skip
        assert pop["ivr"] == {"choice": "medical"} and pop["ticket"] is None
        assert pop["draft"]["channel"] == "112" and pop["draft"]["reporter_number"] == "081200001111"
        assert [t["summary"] for t in pop["history"]["tickets"]] == [
            "<b>banjir</b>"
        ]  # data, escaped by the UI
        # The call the IVR already made a ticket for pops with that ticket, no draft.
        live.bus.publish(ringing("L-2", number="0812"))
        pop = json.loads(await ani.receive_str(timeout=10))
        assert pop["ticket"]["summary"] == "IVR" and pop["draft"] is None
        # budi's console got nothing: its first message now is a later pop of its own.
        live.bus.publish(ringing("L-3", interface="PJSIP/agent2"))
        assert json.loads(await budi.receive_str(timeout=10))["call"]["linkedid"] == "L-3"
        assert live.hub.pops_sent == 3
        # A new entry on the callback list makes every agent console fetch the list again.
        live.bus.publish(CallbackListed(7, "pbx", "L-9", "081200002222", "q112"))
        assert json.loads(await ani.receive_str(timeout=10)) == {"type": "callbacks", "queue": "q112"}
        assert json.loads(await budi.receive_str(timeout=10))["type"] == "callbacks"


async def test_the_socket_refuses_strangers(live: Live) -> None:
    with pytest.raises(WSServerHandshakeError) as refused:
        await live.client.ws_connect("/api/v1/live/socket")
    assert refused.value.status == 401
    with pytest.raises(WSServerHandshakeError) as refused:
        await live.client.ws_connect("/api/v1/live/socket", headers=live.headers("adi"))
    assert refused.value.status == 403
    with pytest.raises(WSServerHandshakeError) as refused:
        await live.client.ws_connect(
            "/api/v1/live/socket", headers={**live.headers("ani"), "Origin": "https://evil.example"}
        )
    assert refused.value.status == 403
    async with live.client.get("/api/v1/live/socket", headers=live.headers("ani")) as response:
        assert response.status == 400  # plain HTTP to a WebSocket endpoint


async def test_a_stuck_console_loses_only_its_own_oldest_messages(live: Live) -> None:
    stuck = Console(username="x", interface="PJSIP/agent9", watches=False)
    for i in range(OUTBOX_LIMIT + 5):
        stuck.offer(str(i))
    assert stuck.dropped == 5 and stuck.outbox.get_nowait() == "5"


def test_without_the_database_the_pop_still_shows_the_call_and_a_draft() -> None:
    from callcenter.calls.screenpop import screen_pop

    change = ringing("L-7")
    pop = screen_pop(
        None, stage="ringing", system_name=change.system_name, linkedid=change.linkedid,
        caller_number=change.caller_number, caller_name="", queue=change.queue, wait=change.wait,
        variables=change.variables,
    )  # fmt: skip
    assert pop["ivr"] == {"choice": "medical"} and pop["ticket"] is None and pop["history"] is None
    assert pop["draft"] == {
        "channel": "112", "category": None, "district": "", "reporter_number": "081200001111", "summary": "",
    }  # fmt: skip
