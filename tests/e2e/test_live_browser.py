"""The live pages in a real headless Chromium against the real Asterisk and engine: an agent logs in
on the console, gets the screen-pop of a 112 call and saves the ticket; a supervisor watches a
caller wait and an agent's pause on the wallboard, live, without reloading."""

from __future__ import annotations

import re
import secrets
import shutil
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from callcenter.agi.server import IvrCommandSent
from callcenter.app import Engine
from callcenter.asterisk.process import AsteriskProcess
from callcenter.auth import service as auth
from callcenter.auth.actor import Actor
from callcenter.auth.roles import Role
from callcenter.calls.blocks import lift_block, list_blocks
from callcenter.calls.calllog import CallLogged
from callcenter.calls.live import AgentAnswered, CallerWaiting
from callcenter.calls.records import CallRecord
from callcenter.credentials import SipAccount
from callcenter.settings import Settings
from callcenter.sip import AgentPhone, CitizenPhone
from callcenter.storage.base import utcnow
from callcenter.tickets.models import Ticket
from tests.e2e.conftest import running_engine
from tests.e2e.test_opd_browser import CHROMIUM, CHROMIUM_ARGS
from tests.realparts import missing

pytestmark = pytest.mark.e2e


@pytest.fixture
async def live_engine(pbx_settings: Settings, asterisk: AsteriskProcess) -> AsyncIterator[Engine]:
    async with running_engine(pbx_settings) as engine:
        yield engine


async def users(engine: Engine) -> dict[str, str]:
    tag = secrets.token_hex(3)
    names = {"agent": f"ani-{tag}", "supervisor": f"sri-{tag}"}

    def make(session: Session) -> None:
        auth.create_user(
            session, names["agent"], "password-ani-1", "agent", station="agent1", skills=["q112"]
        )
        auth.create_user(session, names["supervisor"], "password-sri-1", "supervisor")

    await engine.database.run(make)
    return names


def lift_all(session: Session, number: str) -> None:
    """The database lives as long as the test session: later tests call from this number."""
    system = Actor(user_id=None, username="e2e", role=Role.ADMIN)
    for block in list_blocks(session, utcnow()):
        if block.number == number:
            lift_block(session, block.id, system, utcnow())


async def log_in(browser: Any, base: str, username: str, password: str, target: str) -> Any:
    from playwright.async_api import expect

    page = await browser.new_page(viewport={"width": 1366, "height": 768})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.errors = errors
    await page.goto(f"{base}{target}")
    await expect(page.locator("#login-form")).to_be_visible()
    await page.fill("#username", username)
    await page.fill("#password", password)
    await page.click("#login-submit")
    await page.wait_for_url(f"**{target}")
    await expect(page.locator("#socket-state")).to_have_attribute("data-connected", "true", timeout=10_000)
    return page


def chromium() -> Any:
    if shutil.which(CHROMIUM) is None:
        missing("Debian chromium is needed for browser tests")
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        missing("playwright (PyPI) is needed for browser tests")
    return async_playwright()


async def test_agent_console_and_supervisor_wallboard(
    live_engine: Engine, accounts: dict[str, SipAccount], pbx_settings: Settings
) -> None:
    from playwright.async_api import expect

    engine = live_engine
    names = await users(engine)
    base = f"http://{pbx_settings.http_host}:{engine.http_port}"
    a, c = accounts["agent1"], accounts["citizen3"]
    async with (
        chromium() as playwright,
        engine.bus.subscribe() as events,
        AgentPhone(username=a.username, password=a.password, port=a.port) as phone,
        CitizenPhone(username=c.username, password=c.password, port=c.port) as citizen,
    ):
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        await phone.wait_registered(10)
        console = await log_in(browser, base, names["agent"], "password-ani-1", "/console")
        board = await log_in(browser, base, names["supervisor"], "password-sri-1", "/wallboard")
        await expect(console.locator("#station-name")).to_have_text("agent1")

        # Nobody is logged in yet: the caller waits, and the wallboard shows it live.
        await citizen.dial(pbx_settings.emergency_number, timeout=15)
        await citizen.send_dtmf("1")
        await events.wait_for(CallerWaiting, 40, lambda e: e.caller_number == c.number)
        await expect(board.locator('#queues tr[data-queue="q112"] [data-field="waiting"]')).to_have_text(
            "1", timeout=10_000
        )
        await expect(board.locator(f'#waiting-callers li[data-caller="{c.number}"]')).to_be_visible()

        # The agent logs in from the console; the call rings its phone and pops up.
        await console.click("#station-login")
        await phone.wait_ringing(30)
        await expect(console.locator("#call-stage")).to_have_attribute(
            "data-stage", "ringing", timeout=10_000
        )
        await expect(console.locator("#call-number")).to_have_text(c.number)
        await expect(console.locator("#call-queue")).to_have_text("q112")
        await expect(console.locator("#call-ivr")).to_contain_text("police")
        await phone.answer()
        answered = await events.wait_for(AgentAnswered, 10, lambda e: e.interface == "PJSIP/agent1")
        await expect(console.locator("#call-stage")).to_have_attribute(
            "data-stage", "answered", timeout=10_000
        )
        await expect(board.locator('#agents tr[data-agent="PJSIP/agent1"]')).to_have_attribute(
            "data-state", "in_call", timeout=10_000
        )

        await expect(
            board.locator('#agents tr[data-agent="PJSIP/agent1"] button[data-spy="listen"]')
        ).to_be_visible()
        # One click opens the pre-filled form; the agent writes the summary and saves.
        await expect(console.locator("#tf-number")).to_have_value(c.number)
        await console.fill("#tf-summary", "Orang pingsan di pasar <script>alert(1)</script>")
        await console.click("#tf-save")
        link = console.locator("#call-ticket-link")
        await expect(link).to_have_text(re.compile(r"^20\d{8,}$"), timeout=10_000)
        number = await link.text_content()
        await citizen.hangup()
        # Today's figures come from the call log: once the end of the call is written, a fresh
        # look at the wallboard counts it.
        await events.wait_for(
            CallLogged, 20, lambda e: e.linkedid == answered.linkedid and e.change == "CallEnded"
        )
        await board.reload()
        today = board.locator('#today tr[data-queue="q112"]')
        await expect(today.locator('[data-field="answered"]')).to_have_text(re.compile(r"^[1-9]\d*$"))
        await expect(board.locator("#per-hour .bar")).to_have_count(24)
        await expect(board.locator("#socket-state")).to_have_attribute("data-connected", "true")
        # A prank after all (out of the figures from now on): the agent classifies the call
        # and blocks the number from the page.
        await console.click('[data-classify="iseng"]')
        await expect(console.locator("#classified")).to_have_attribute("data-code", "iseng")
        await console.fill("#block-reason", "iseng berulang")
        await console.click("#block-caller")
        await expect(console.locator("#caller-block")).to_have_attribute("data-blocked", "true")

        # The supervisor sees the agent's pause with its reason, without reloading.
        await console.select_option("#pause-reason", "istirahat")
        await console.click("#station-pause")
        row = board.locator('#agents tr[data-agent="PJSIP/agent1"]')
        await expect(row).to_have_attribute("data-state", "paused", timeout=10_000)
        await expect(row.locator('[data-field="reason"]')).to_have_text("istirahat")
        await console.click("#station-logout")
        assert console.errors == [] and board.errors == []
        await browser.close()

        # The next call from that number hears the warning before anything else.
        async with CitizenPhone(username=c.username, password=c.password, port=c.port) as again:
            await again.dial(pbx_settings.emergency_number, timeout=15)
            warned = await events.wait_for(IvrCommandSent, 20, lambda e: e.command.startswith("GET DATA"))
            assert "/callcenter/blocked-warning-id" in warned.command
            await again.hangup()

    def stored(session: Session) -> tuple[str, str, str]:
        ticket = session.scalars(select(Ticket).where(Ticket.number == number)).one()
        call = session.get(CallRecord, ticket.origin_call_id)
        assert call is not None
        return ticket.summary, ticket.reporter_number, call.caller_number

    summary, reporter, caller = await engine.database.run(stored)
    await engine.database.run(lambda s: lift_all(s, c.number))
    assert summary.endswith("<script>alert(1)</script>")  # stored as text, never run
    assert reporter == c.number and caller == c.number
