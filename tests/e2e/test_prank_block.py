"""A prank block placed through the API, on the real Asterisk with real SIP phones: the next 112 call
from that number hears the warning and is logged; pressing 9 still reaches a call-taker (at the
lowest priority); without a key the caller is told goodbye and hung up; once the block is lifted
the number hears the normal menu again.

What the caller heard is checked on the AGI commands the engine sent (``IvrCommandSent`` on the
bus), what was logged through the API and the database.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from callcenter.agi.server import IvrCommandSent
from callcenter.app import Engine
from callcenter.asterisk.process import AsteriskProcess
from callcenter.auth import service as auth
from callcenter.auth.actor import SYSTEM
from callcenter.calls.blocks import lift_block
from callcenter.calls.live import CallerWaiting
from callcenter.calls.models import CallerBlock
from callcenter.calls.records import CallRecord
from callcenter.credentials import SipAccount
from callcenter.events import Subscription
from callcenter.settings import Settings
from callcenter.sip import AgentPhone, CitizenPhone
from callcenter.storage.base import utcnow
from tests.e2e.conftest import logged_in, running_engine

pytestmark = pytest.mark.e2e

CITIZEN, STATION = "citizen2", "agent1"


@pytest.fixture
async def live_engine(pbx_settings: Settings, asterisk: AsteriskProcess) -> AsyncIterator[Engine]:
    async with running_engine(pbx_settings) as engine:
        yield engine


async def command(events: Subscription, match: Callable[[str], bool], timeout: float = 40) -> str:
    found = await events.wait_for(IvrCommandSent, timeout, lambda e: match(e.command))
    return found.command


def asks(prompt: str) -> Callable[[str], bool]:
    return lambda cmd: cmd.startswith("GET DATA") and f'/callcenter/{prompt}"' in cmd


def plays(prompt: str) -> Callable[[str], bool]:
    return lambda cmd: cmd.startswith("STREAM FILE") and f'/callcenter/{prompt}"' in cmd


class Desk:
    """A supervisor's API client."""

    def __init__(self, http: aiohttp.ClientSession, base: str) -> None:
        self.http, self.base = http, base

    async def call(self, method: str, path: str, body: object = None, expect: int = 200) -> Any:
        async with self.http.request(method, self.base + path, json=body) as response:
            payload = await response.json()
            assert response.status == expect, payload
            return payload


@contextlib.asynccontextmanager
async def desk(engine: Engine, settings: Settings) -> AsyncIterator[Desk]:
    name = f"sri-{secrets.token_hex(3)}"

    def make(session: Session) -> str:
        return auth.create_token(
            session, auth.create_user(session, name, "password-sri-1", "supervisor"), "e2e"
        )

    token = await engine.database.run(make)
    base = f"http://{settings.http_host}:{engine.http_port}/api/v1"
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http:
        yield Desk(http, base)


async def lift_leftovers(engine: Engine, number: str) -> None:
    """The database lives as long as the session: never leave the number blocked for other tests."""

    def lift(session: Session) -> None:
        now = utcnow()
        for block in session.scalars(
            select(CallerBlock).where(CallerBlock.number == number, CallerBlock.lifted_at.is_(None))
        ):
            if block.expires_at > now:
                lift_block(session, block.id, SYSTEM, now)

    await engine.database.run(lift)


async def test_a_blocked_caller_hears_the_warning_and_can_still_reach_a_human(
    live_engine: Engine, accounts: dict[str, SipAccount], pbx_settings: Settings
) -> None:
    engine = live_engine
    c, a = accounts[CITIZEN], accounts[STATION]
    async with (
        desk(engine, pbx_settings) as sri,
        engine.bus.subscribe() as events,
        logged_in(engine.ami, STATION),
        AgentPhone(username=a.username, password=a.password, port=a.port) as agent,
        CitizenPhone(username=c.username, password=c.password, port=c.port) as citizen,
    ):
        await agent.wait_registered(10)
        try:
            block = await sri.call(
                "POST", "/blocks", {"number": c.number, "reason": "panggilan iseng berulang"}, expect=201
            )
            assert block["active"] and block["number"] == c.number

            # 1. Blocked, presses 9: warned, logged, and still put through to a call-taker.
            await citizen.dial(pbx_settings.emergency_number, timeout=15)
            assert await command(events, lambda cmd: "CC_BLOCKED" in cmd) == 'SET VARIABLE CC_BLOCKED "1"'
            warning = await command(events, asks("blocked-warning-id"))
            assert c.number not in warning  # no caller data in commands
            await citizen.send_dtmf("9")
            await command(events, plays("blocked-connect-id"))
            assert await command(events, lambda cmd: "QUEUE_PRIO" in cmd) == 'SET VARIABLE QUEUE_PRIO "0"'
            assert await command(events, lambda cmd: "CC_QUEUE" in cmd) == 'SET VARIABLE CC_QUEUE "q112"'
            waiting = await events.wait_for(CallerWaiting, 30, lambda e: e.caller_number == c.number)
            assert waiting.queue == "q112"
            incoming = await agent.wait_ringing(20)
            assert c.number in incoming.remote_uri
            await agent.answer()
            await citizen.hangup()
            await agent.wait_disconnected(10)
            attempts = await sri.call("GET", f"/blocks/{c.number}/attempts")
            assert [(x["linkedid"], x["system_name"], x["block_id"]) for x in attempts["items"]] == [
                (waiting.linkedid, "e2e", block["id"])
            ]

            def answers(session: Session) -> dict[str, str]:
                call = session.scalars(
                    select(CallRecord).where(CallRecord.linkedid == waiting.linkedid)
                ).one()
                return dict(call.ivr)

            ivr = await engine.database.run(answers)
            assert ivr["blocked"] == "1" and ivr["block_override"] == "1"

            # 2. Blocked, no key: told goodbye and hung up (and logged again).
            await citizen.dial(pbx_settings.emergency_number, timeout=15)
            await command(events, asks("blocked-warning-id"))
            await command(events, plays("blocked-goodbye-id"), timeout=60)
            assert await command(events, lambda cmd: cmd == "HANGUP") == "HANGUP"
            await citizen.wait_disconnected(20)
            assert len((await sri.call("GET", f"/blocks/{c.number}/attempts"))["items"]) == 2

            # 3. Lifted: the next call hears the normal 112 menu.
            lifted = await sri.call("POST", f"/blocks/{block['id']}/lift")
            assert not lifted["active"]
            await citizen.dial(pbx_settings.emergency_number, timeout=15)
            await command(events, asks("112-layanan-id"))
            await citizen.send_dtmf("1")
            assert await command(events, lambda cmd: "CC_CHOICE" in cmd) == 'SET VARIABLE CC_CHOICE "police"'
            assert await command(events, lambda cmd: "QUEUE_PRIO" in cmd) == 'SET VARIABLE QUEUE_PRIO "10"'
            await agent.wait_ringing(20)
            await agent.answer()
            await citizen.hangup()
            await agent.wait_disconnected(10)
            assert len((await sri.call("GET", f"/blocks/{c.number}/attempts"))["items"]) == 2
        finally:
            await lift_leftovers(engine, c.number)
