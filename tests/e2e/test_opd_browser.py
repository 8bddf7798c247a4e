"""An OPD operator works a ticket in a real headless Chromium: log in, queue, claim, close."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from callcenter.auth import service as auth
from callcenter.auth.actor import SYSTEM
from callcenter.dispatch.seed import seed_directory
from callcenter.events import EventBus
from callcenter.storage.database import Database
from callcenter.storage.migrate import upgrade
from callcenter.tickets.service import NewTicket, TicketService
from callcenter.tickets.sla import DEFAULT_CALENDAR, load_calendar
from callcenter.web.app import ApiDeps, create_web_app
from tests.realparts import missing

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic",
]  # fmt: skip


async def _healthy() -> dict[str, object]:
    return {"status": "ok"}


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[tuple[str, str, str]]:
    url = f"sqlite:///{tmp_path / 'cc.db'}"
    upgrade(url)
    db = Database(url)
    db.open()
    service = TicketService(load_calendar(DEFAULT_CALENDAR))
    with db.transaction() as s, s.begin():
        seed_directory(s)
        auth.create_user(s, "budi", "password-budi", "opd-operator", "PUPR")
        mine, _ = service.create(
            s, NewTicket(summary="Jembatan retak <b>parah</b>", channel="hotline"), SYSTEM
        )
        service.dispatch(s, mine.number, "PUPR", SYSTEM)
        other, _ = service.create(s, NewTicket(summary="Sampah menumpuk", channel="hotline"), SYSTEM)
        service.dispatch(s, other.number, "DLH", SYSTEM)
        numbers = (mine.number, other.number)
    runner = web.AppRunner(create_web_app(_healthy, ApiDeps(db, service, EventBus())), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}", *numbers
    finally:
        await runner.cleanup()
        db.close()


async def test_opd_operator_claims_and_closes_a_ticket(site: tuple[str, str, str], tmp_path: Path) -> None:
    if shutil.which(CHROMIUM) is None:
        missing("Debian chromium is needed for browser tests")
    try:
        from playwright.async_api import async_playwright, expect
    except ImportError:
        missing("playwright (PyPI) is needed for browser tests")
    base, mine, other = site
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = await browser.new_page(viewport={"width": 1366, "height": 768})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await page.goto(f"{base}/opd?lang=id")
        await expect(page.locator("#login-form")).to_be_visible()
        # A wrong password is said in the page's language; five for one name close the door to
        # that name from this address a while (another name, here budi's, is not held back).
        await page.fill("#username", "tamu")
        for attempt in range(6):
            await page.fill("#password", f"salah-{attempt}")
            await page.click("#login-submit")
            await expect(page.locator("#login-submit")).to_be_enabled()
            if attempt < 5:
                await expect(page.locator("#login-error")).to_have_text(
                    "Nama pengguna atau kata sandi salah."
                )
        await expect(page.locator("#login-error")).to_have_text(
            "Terlalu banyak percobaan masuk yang gagal. Coba lagi dalam 15 menit."
        )
        await page.fill("#username", "budi")
        await page.fill("#password", "password-budi")
        await page.click("#login-submit")
        # The queue: PUPR's ticket only, in Bahasa Indonesia, the summary shown as text.
        rows = page.locator("tr.ticket-row")
        await expect(rows).to_have_count(1)
        await expect(page.locator(f"tr.ticket-row[data-number='{mine}'] td.summary")).to_have_text(
            "Jembatan retak <b>parah</b>"
        )
        assert await page.locator(f"tr.ticket-row[data-number='{other}']").count() == 0
        await page.click(f"tr.ticket-row[data-number='{mine}'] a.ticket-link")
        await expect(page.locator("#ticket-number")).to_contain_text(mine)
        await page.click("button.action[data-action=claim]")
        await expect(page.locator("#ticket-status")).to_have_attribute("data-status", "diproses")
        await page.fill("#action-note", "Tim sudah memperbaiki")
        await page.click("button.action[data-action=done]")
        await expect(page.locator("#ticket-status")).to_have_attribute("data-status", "selesai")
        await expect(page.locator("tr.trail-entry[data-kind=resolve] .note")).to_have_text(
            "Tim sudah memperbaiki"
        )
        await page.screenshot(path=str(tmp_path / "ticket.png"))
        # English on request.
        await page.goto(f"{base}/opd?lang=en")
        await expect(page.locator(f"tr.ticket-row[data-number='{mine}'] span.status")).to_have_text("Done")
        await browser.close()
    assert errors == []
