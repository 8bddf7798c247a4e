"""Live calls on the real Asterisk: agents log in from the console API, a 112 call pops up on the
ringing agent's WebSocket before the agent answers, and a paused agent is not rung."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from callcenter.ami.connection import AmiState
from callcenter.app import Engine
from callcenter.asterisk.process import AsteriskProcess
from callcenter.auth import service as auth
from callcenter.calls.callbacks import CallbackListed
from callcenter.calls.live import (
    AgentAnswered,
    AgentState,
    AgentStateChanged,
    CallEnded,
    CallerWaiting,
    MembershipChanged,
    Resynced,
)
from callcenter.calls.records import CallRecord
from callcenter.credentials import SipAccount
from callcenter.settings import Settings
from callcenter.sip import AgentPhone, CitizenPhone
from callcenter.sip.wav import wav_rms
from tests.e2e.conftest import running_engine
from tests.realparts import SPEECH_RMS

pytestmark = pytest.mark.e2e

AGENTS = {"ani": "agent1", "budi": "agent2"}


@pytest.fixture
async def live_engine(pbx_settings: Settings, asterisk: AsteriskProcess) -> AsyncIterator[Engine]:
    # Nobody is logged in: the agents do it themselves through the API.
    async with running_engine(pbx_settings) as engine:
        yield engine


async def tokens(engine: Engine) -> dict[str, str]:
    """API tokens of the two agents; the users are new for each test (the database lives as long
    as the session-wide Asterisk)."""
    tag = secrets.token_hex(3)

    def make(session: Session) -> dict[str, str]:
        made = {}
        for name, station in AGENTS.items():
            user = auth.create_user(
                session, f"{name}-{tag}", f"password-{name}-1", "agent", station=station, skills=["q112"]
            )
            made[name] = auth.create_token(session, user, "e2e")
        return made

    return await engine.database.run(make)


class Console:
    """An agent's console: its API client and its WebSocket."""

    def __init__(self, http: aiohttp.ClientSession, base: str, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.http, self.base, self.ws = http, base, ws

    async def post(self, path: str, body: dict[str, object] | None = None) -> dict[str, Any]:
        async with self.http.post(self.base + path, json=body or {}) as response:
            payload: dict[str, Any] = await response.json()
            assert response.status == 200, payload
            return payload

    async def next(self, kind: str, timeout: float = 30) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                message = json.loads(await self.ws.receive_str())
                if message["type"] == kind:
                    return message  # type: ignore[no-any-return]


@contextlib.asynccontextmanager
async def console(engine: Engine, settings: Settings, token: str) -> AsyncIterator[Console]:
    base = f"http://{settings.http_host}:{engine.http_port}/api/v1"
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(headers=headers) as http, http.ws_connect(base + "/live/socket") as ws:
        hello = json.loads(await ws.receive_str(timeout=10))
        assert hello["type"] == "hello"
        yield Console(http, base, ws)


@contextlib.asynccontextmanager
async def agent_phones(accounts: dict[str, SipAccount]) -> AsyncIterator[dict[str, AgentPhone]]:
    async with contextlib.AsyncExitStack() as stack:
        phones = {}
        for username, station in AGENTS.items():
            a = accounts[station]
            phones[username] = await stack.enter_async_context(
                AgentPhone(username=a.username, password=a.password, port=a.port)
            )
        for phone in phones.values():
            await phone.wait_registered(10)
        yield phones


async def first_pop(consoles: dict[str, Console]) -> tuple[str, dict[str, Any]]:
    """Which console got the ringing screen-pop first, and the pop."""
    waits = {asyncio.ensure_future(c.next("screen_pop")): name for name, c in consoles.items()}
    done, pending = await asyncio.wait(waits, timeout=40, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    assert done, "no console received a screen-pop"
    task = done.pop()
    return waits[task], task.result()


async def test_screen_pop_reaches_the_ringing_agent_before_it_answers(
    live_engine: Engine, accounts: dict[str, SipAccount], pbx_settings: Settings, tmp_path: Path
) -> None:
    engine = live_engine
    made = await tokens(engine)
    c = accounts["citizen2"]
    async with (
        console(engine, pbx_settings, made["ani"]) as ani,
        console(engine, pbx_settings, made["budi"]) as budi,
        agent_phones(accounts) as phones,
        CitizenPhone(username=c.username, password=c.password, port=c.port) as citizen,
    ):
        consoles = {"ani": ani, "budi": budi}
        for agent in consoles.values():
            state = await agent.post("/agent/login")
            assert state["logged_in"] and state["queues"] == ["q112"]
        await citizen.dial(pbx_settings.emergency_number, timeout=15)
        await citizen.send_dtmf("2")  # fire
        name, pop = await first_pop(consoles)
        # The pop arrived while the phone is still ringing: nobody has answered yet.
        assert pop["stage"] == "ringing"
        incoming = await phones[name].wait_ringing(10)
        assert pop["call"]["caller_number"] == c.number
        assert pop["call"]["queue"] == "q112" and pop["call"]["service"] == "112"
        assert pop["ivr"]["choice"] == "fire"
        assert pop["ticket"] is None and pop["draft"]["reporter_number"] == c.number
        assert incoming is not None
        await phones[name].answer()
        answered = await consoles[name].next("screen_pop")
        assert answered["stage"] == "answered" and answered["call"]["linkedid"] == pop["call"]["linkedid"]
        await citizen.hangup()
        for agent in consoles.values():
            assert not (await agent.post("/agent/logout"))["logged_in"]


async def test_a_paused_agent_is_not_rung(
    live_engine: Engine, accounts: dict[str, SipAccount], pbx_settings: Settings, tmp_path: Path
) -> None:
    engine = live_engine
    made = await tokens(engine)
    c = accounts["citizen3"]
    async with (
        engine.bus.subscribe() as events,
        console(engine, pbx_settings, made["ani"]) as ani,
        console(engine, pbx_settings, made["budi"]) as budi,
        agent_phones(accounts) as phones,
        CitizenPhone(username=c.username, password=c.password, port=c.port) as citizen,
    ):
        ani_rang: list[object] = []
        phones["ani"].add_listener(lambda e: ani_rang.append(e) if e.kind == "ringing" else None)
        await ani.post("/agent/login")
        await budi.post("/agent/login")
        paused = await ani.post("/agent/pause", {"reason": "istirahat"})
        assert paused["paused_reason"] == "istirahat"
        # Asterisk confirms the pause (QueueMemberPause) before the call comes in.
        await events.wait_for(
            AgentStateChanged, 10, lambda e: e.interface == "PJSIP/agent1" and e.state is AgentState.PAUSED
        )
        wallboard = await (await ani.http.get(ani.base + "/live/wallboard")).json()
        assert wallboard["error"]["status"] == 403  # an agent does not watch the wallboard
        await citizen.dial(pbx_settings.emergency_number, timeout=15)
        await citizen.send_dtmf("1")
        pop = await budi.next("screen_pop")
        await phones["budi"].wait_ringing(10)
        await phones["budi"].answer()
        assert pop["call"]["caller_number"] == c.number
        # While budi talks, the paused ani was never offered the call.
        assert ani_rang == [] and phones["ani"].call_state is None
        assert engine.live.agent("e2e", "PJSIP/agent1").state is AgentState.PAUSED  # type: ignore[union-attr]
        await citizen.hangup()
        await ani.post("/agent/logout")
        await budi.post("/agent/logout")


async def test_an_abandoned_112_caller_is_called_back_from_the_console(
    live_engine: Engine, accounts: dict[str, SipAccount], pbx_settings: Settings, tmp_path: Path
) -> None:
    engine = live_engine
    made = await tokens(engine)
    c = accounts["citizen1"]
    async with (
        engine.bus.subscribe() as events,
        console(engine, pbx_settings, made["ani"]) as ani,
        agent_phones(accounts) as phones,
        CitizenPhone(username=c.username, password=c.password, port=c.port) as citizen,
    ):
        # Nobody is logged in: the caller waits in q112, then gives up.
        await citizen.dial(pbx_settings.emergency_number, timeout=15)
        await citizen.send_dtmf("3")
        waiting = await events.wait_for(CallerWaiting, 40, lambda e: e.caller_number == c.number)
        assert waiting.queue == "q112"
        await citizen.hangup()
        listed = await events.wait_for(CallbackListed, 20, lambda e: e.linkedid == waiting.linkedid)
        assert listed.number == c.number
        async with ani.http.get(ani.base + "/callbacks") as response:
            items = {i["id"]: i for i in (await response.json())["items"]}
        # Other tests' abandoned callers may be on the list too (one database per session).
        mine = items[listed.callback_id]
        assert (mine["number"], mine["reason"], mine["status"]) == (c.number, "abandoned", "menunggu")
        # The agent calls back: its own phone rings first, then the citizen's.
        placed = await ani.post(f"/callbacks/{listed.callback_id}/attempts")
        assert placed["calling_now"] and placed["attempts"] == 1
        await phones["ani"].wait_ringing(15)
        await phones["ani"].answer()
        await citizen.wait_ringing(20)
        await citizen.answer()
        await phones["ani"].wait_connected(10)
        done = await ani.post(
            f"/callbacks/{listed.callback_id}/outcome", {"outcome": "dihubungi", "note": "aman"}
        )
        assert done["status"] == "dihubungi" and not done["calling_now"]
        await citizen.hangup()
        async with ani.http.get(ani.base + "/callbacks") as response:
            assert listed.callback_id not in {i["id"] for i in (await response.json())["items"]}


async def test_the_engine_resyncs_after_asterisk_crashes_mid_call(
    live_engine: Engine, asterisk: AsteriskProcess, accounts: dict[str, SipAccount], pbx_settings: Settings
) -> None:
    engine = live_engine
    made = await tokens(engine)
    c = accounts["citizen1"]
    loop = asyncio.get_running_loop()
    async with (
        engine.bus.subscribe() as events,
        console(engine, pbx_settings, made["ani"]) as ani,
        agent_phones(accounts) as phones,
        CitizenPhone(username=c.username, password=c.password, port=c.port) as citizen,
    ):
        await ani.post("/agent/login")
        await citizen.dial(pbx_settings.emergency_number, timeout=15)
        await citizen.send_dtmf("2")
        pop = await ani.next("screen_pop")
        linkedid = pop["call"]["linkedid"]
        await phones["ani"].wait_ringing(10)
        await phones["ani"].answer()
        await events.wait_for(AgentAnswered, 10, lambda e: e.linkedid == linkedid)
        assert [call.linkedid for call in engine.live.calls("e2e")] == [linkedid]

        # Asterisk dies without a word (no Hangup events), then comes back.
        pid = asterisk.pid()
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        await engine.ami.wait_status(lambda s: s.state is not AmiState.CONNECTED, 15)
        await loop.run_in_executor(None, asterisk.up)

        # The engine reconnects, asks for the snapshot and drops the call that no longer exists.
        ended = await events.wait_for(CallEnded, 60, lambda e: e.linkedid == linkedid)
        assert ended.vanished
        await events.wait_for(Resynced, 30)
        # Asterisk forgot its dynamic members; the engine logged the agent back in.
        await events.wait_for(
            MembershipChanged, 30, lambda e: e.interface == "PJSIP/agent1" and e.queue == "q112" and e.added
        )
    assert engine.live.calls("e2e") == []
    assert "PJSIP/agent1" in await loop.run_in_executor(None, asterisk.cli, "queue show q112")
    channels = await loop.run_in_executor(None, asterisk.cli, "core show channels count")
    assert "0 active calls" in channels

    def rows(session: Session) -> int:
        return len(session.scalars(select(CallRecord).where(CallRecord.linkedid == linkedid)).all())

    assert await engine.database.run(rows) == 1  # the call was logged once, replays or not


async def test_a_supervisor_listens_to_an_agents_call(
    live_engine: Engine, accounts: dict[str, SipAccount], pbx_settings: Settings, citizen_speech: Path,
    tmp_path: Path,
) -> None:  # fmt: skip
    engine = live_engine
    made = await tokens(engine)
    tag = secrets.token_hex(3)

    def supervisor(session: Session) -> str:
        # The supervisor's desk phone is station agent2 (budi's phone in this test kit).
        user = auth.create_user(session, f"sri-{tag}", "password-sri-1", "supervisor", station="agent2")
        return auth.create_token(session, user, "e2e")

    c = accounts["citizen2"]
    async with (
        engine.bus.subscribe() as events,
        console(engine, pbx_settings, made["ani"]) as ani,
        console(engine, pbx_settings, await engine.database.run(supervisor)) as sri,
        agent_phones(accounts) as phones,
        CitizenPhone(username=c.username, password=c.password, port=c.port) as citizen,
    ):
        await ani.post("/agent/login")
        # Nobody is on a call yet, and agents may not listen to each other.
        async with sri.http.post(sri.base + "/live/spy", json={"agent": "agent1"}) as response:
            assert response.status == 409
        async with ani.http.post(ani.base + "/live/spy", json={"agent": "agent1"}) as response:
            assert response.status == 403
        await citizen.dial(pbx_settings.emergency_number, timeout=15)
        await citizen.send_dtmf("2")
        await phones["ani"].wait_ringing(30)
        await phones["ani"].answer()
        await events.wait_for(AgentAnswered, 10, lambda e: e.interface == "PJSIP/agent1")

        listening = await sri.post("/live/spy", {"agent": "agent1", "mode": "listen"})
        assert listening == {"agent": "agent1", "mode": "listen", "station": "agent2"}
        await phones["budi"].wait_ringing(15)  # the supervisor's own station rings first
        await phones["budi"].answer()
        heard = tmp_path / "supervisor-heard.wav"
        await phones["budi"].record(heard)
        await citizen.play(citizen_speech)
        await citizen.wait_playback_done(30)
        await phones["budi"].stop_recording()
        await citizen.hangup()
    rms, duration = wav_rms(heard)
    assert rms > SPEECH_RMS, f"the supervisor heard silence (RMS {rms:.0f}, {duration:.1f} s)"
