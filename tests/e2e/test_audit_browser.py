"""An auditor finds a call by a word that was said, and plays it, in a real headless Chromium.

The recording is real in every part the engine touches: espeak-ng speech at 8 kHz (as a phone
line carries it) in the three files the dialplan writes, checked and catalogued by the engine's
own functions (``check_recording``, ``catalogue``, with the call row and the ticket the agent
made), transcribed by the real Whisper engine (tiny.en) through a transcription worker claiming
the queued jobs. Then: the auditor logs in, searches a word, opens the hit, plays; the audio
element really plays, and the tamper-evident audit log gains exactly one ``recording.play`` entry
for that auditor. An agent is refused the page and the audio.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web
from sqlalchemy import select

from callcenter.audit import log as audit
from callcenter.audit.models import AuditEntry
from callcenter.auth import service as auth
from callcenter.auth.actor import Actor
from callcenter.auth.roles import Role
from callcenter.dispatch.seed import seed_directory
from callcenter.events import EventBus
from callcenter.recording.integrity import recording_files
from callcenter.recording.models import Recording
from callcenter.storage.database import Database
from callcenter.storage.migrate import upgrade
from callcenter.tickets.service import CallKey, NewTicket, TicketService
from callcenter.tickets.sla import DEFAULT_CALENDAR, load_calendar
from callcenter.transcription import ModelNotFound, WhisperRecognizer
from callcenter.transcription.jobmodels import DONE, Transcript, TranscriptionJob
from callcenter.transcription.worker import Worker, WorkerConfig
from callcenter.web.app import ApiDeps, create_web_app
from tests.e2e.test_opd_browser import CHROMIUM, CHROMIUM_ARGS
from tests.realparts import missing, speak
from tests.recording_seed import catalogue_call, enqueue_legs, recording_base, write_legs

pytestmark = pytest.mark.e2e

CALLER_SAID = "Hello, I want to report a fire in the market near the main road. Please send help quickly."
AGENT_SAID = "The fire brigade is on its way. Please stay away from the building."
CALLER_NUMBER = "081377778888"
AUDITOR, AGENT = ("adi", "password-adi-1"), ("ani", "password-ani-1")
WAIT_MS = 20_000


@dataclass(frozen=True)
class Seeded:
    base_url: str
    db: Database
    recording_id: int
    ticket: str
    caller_text: str


def make_call_audio(folder: Path, base: Path) -> None:
    """Both sides spoken by espeak-ng at 8 kHz, and the mixed file as MixMonitor would make it."""
    caller = speak(CALLER_SAID, folder / "caller.wav")
    agent = speak(AGENT_SAID, folder / "agent.wav", voice="en-gb")
    mixed = folder / "mixed.wav"
    subprocess.run(["sox", "-m", str(caller), str(agent), str(mixed)], check=True, capture_output=True)
    write_legs(base, mixed=mixed, caller=caller, agent=agent)


def seed(db: Database, root: Path, speech: Path, recognizer: WhisperRecognizer) -> tuple[int, str, str]:
    """Blocking: the call, its recording, its ticket and its transcripts, as the engine makes them."""
    linkedid = "1712345678.42"
    base = recording_base(root, linkedid)
    make_call_audio(speech, base)
    service = TicketService(load_calendar(DEFAULT_CALENDAR))
    agent_actor = Actor(user_id=None, username=AGENT[0], role=Role.AGENT)
    with db.transaction() as s, s.begin():
        seed_directory(s)
        auth.create_user(s, AUDITOR[0], AUDITOR[1], "auditor")
        auth.create_user(s, AGENT[0], AGENT[1], "agent", station="agent1", skills=["q112"])
        # The agent makes the ticket during the call (the call row comes with it) ...
        new = NewTicket(
            summary="Kebakaran di pasar", channel="112", call=CallKey("e2e", linkedid, CALLER_NUMBER)
        )
        ticket, _ = service.create(s, new, agent_actor)
        # ... and at hang-up the engine catalogues the recording and queues both legs.
        seeded = catalogue_call(s, root, "e2e", linkedid, CALLER_NUMBER, base)
        enqueue_legs(s, seeded, engine="whisper")
    worker = Worker(WorkerConfig(str(db.url), engine="whisper"), "e2e-worker", db, recognizer)
    events = [worker.run_once(), worker.run_once()]
    assert [e.kind if e else None for e in events] == ["done", "done"], events
    assert worker.run_once() is None
    with db.transaction() as s, s.begin():
        assert {j.status for j in s.scalars(select(TranscriptionJob))} == {DONE}
        caller_text = s.scalars(select(Transcript).where(Transcript.leg == "caller")).one().text
    return seeded.recording_id, ticket.number, caller_text


async def _healthy() -> dict[str, object]:
    return {"status": "ok"}


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Seeded]:
    if shutil.which("espeak-ng") is None or shutil.which("sox") is None:
        missing("espeak-ng and sox are needed to make test speech")
    try:
        recognizer = WhisperRecognizer()
        await asyncio.to_thread(recognizer.model)
    except (ImportError, ModelNotFound) as exc:
        missing(f"faster-whisper or Whisper tiny.en is not installed: {exc}")
    url = f"sqlite:///{tmp_path / 'cc.db'}"
    await asyncio.to_thread(upgrade, url)
    db = Database(url)
    db.open()
    root = tmp_path / "recordings"
    speech = tmp_path / "speech"
    speech.mkdir()
    recording_id, ticket, caller_text = await asyncio.to_thread(seed, db, root, speech, recognizer)
    service = TicketService(load_calendar(DEFAULT_CALENDAR))
    runner = web.AppRunner(create_web_app(_healthy, ApiDeps(db, service, EventBus())), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    try:
        yield Seeded(f"http://127.0.0.1:{port}", db, recording_id, ticket, caller_text)
    finally:
        await runner.cleanup()
        db.close()


def plays(db: Database) -> list[AuditEntry]:
    with db.transaction() as s, s.begin():
        return list(s.scalars(select(AuditEntry).where(AuditEntry.action == audit.RECORDING_PLAY)))


def chain_problems(db: Database) -> list[audit.Problem]:
    with db.transaction() as s, s.begin():
        return audit.verify(s)


def mixed_sha256(db: Database, rid: int) -> str:
    """The SHA-256 of the mixed file as it is on disk now."""
    with db.transaction() as s, s.begin():
        recording = s.get(Recording, rid)
        assert recording is not None
        path = recording_files(Path(recording.path))["mixed"]
    return hashlib.sha256(path.read_bytes()).hexdigest()


def heard_word(expected: str, heard: str) -> str:
    """A word of the spoken sentence that Whisper heard, preferring the one the report is about."""
    said = [w.strip(".,").lower() for w in expected.split()]
    got = {w.strip(".,").lower() for w in heard.split()}
    assert sum(w in got for w in said) >= len(said) // 2, f"Whisper heard too little: {heard!r}"
    for word in ("fire", "market", "road", *said):
        if word in got and len(word) >= 4:
            return word
    raise AssertionError(f"no searchable word in {heard!r}")


async def test_auditor_searches_plays_and_is_audited_agent_refused(site: Seeded, tmp_path: Path) -> None:
    if shutil.which(CHROMIUM) is None:
        missing("Debian chromium is needed for browser tests")
    try:
        from playwright.async_api import async_playwright, expect
    except ImportError:
        missing("playwright (PyPI) is needed for browser tests")
    word = heard_word(CALLER_SAID, site.caller_text)
    rid = site.recording_id
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, "--autoplay-policy=no-user-gesture-required"]
        )
        auditor = await browser.new_context(viewport={"width": 1366, "height": 768}, locale="id-ID")
        page = await auditor.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

        # Log in on the way to the search page, and search a word that was said.
        await page.goto(f"{site.base_url}/audit/recordings")
        await expect(page.locator("#login-form")).to_be_visible()
        await page.fill("#username", AUDITOR[0])
        await page.fill("#password", AUDITOR[1])
        await page.click("#login-submit")
        await page.wait_for_url("**/audit/recordings")
        await expect(page.locator("#nav-recordings")).to_be_visible()
        await page.fill("#search-q", word)
        await page.click("#search-submit")
        hit = page.locator(f"tr.hit[data-recording='{rid}'][data-leg='caller']")
        await expect(hit).to_have_count(1)
        await expect(hit.locator("td.snippet mark").first).to_have_text(word, ignore_case=True)
        await expect(hit.locator("td.caller")).to_have_text(CALLER_NUMBER)
        await expect(hit).to_contain_text(site.ticket)

        # The recording: the player, both transcripts beside it, the files' integrity.
        await hit.locator("a.open-recording").click()
        await page.wait_for_url(f"**/audit/recordings/{rid}")
        await expect(page.locator("#transcript-caller .speaker")).to_have_text("Penelepon")
        await expect(page.locator("#transcript-agent .speaker")).to_have_text("Petugas")
        await expect(page.locator("#transcript-caller")).to_contain_text(word, ignore_case=True)
        await expect(page.locator("#integrity tr.file[data-status='ok']")).to_have_count(3)
        assert plays(site.db) == []  # opening the page fetched no audio (preload="none")

        # Play from the first line of the caller's transcript; wait until it really plays.
        await page.locator("#transcript-caller button.seek").first.click()
        await page.wait_for_function(
            "() => { const a = document.getElementById('player');"
            " return a !== null && !a.paused && a.currentTime > 0 && a.readyState >= 2; }",
            timeout=WAIT_MS,
        )
        assert await page.evaluate("document.getElementById('player').dataset.state") == "playing"
        await page.screenshot(path=str(tmp_path / "recording.png"))
        await page.evaluate("document.getElementById('player').pause()")

        # The audit log has the playback, once, for this auditor; the chain is intact.
        (entry,) = plays(site.db)
        assert (entry.actor, entry.object_kind, entry.object_id) == (AUDITOR[0], "recording", str(rid))
        detail = json.loads(entry.detail)
        assert detail["kind"] == "mixed" and detail["client"] == "127.0.0.1"
        assert detail["sha256"] == await asyncio.to_thread(mixed_sha256, site.db, rid)
        assert chain_problems(site.db) == []
        await page.reload()
        await expect(page.locator("#accesses tr.access[data-action='recording.play'] .actor")).to_have_text(
            AUDITOR[0]
        )
        # The files checked again on demand: all three still match the catalogue.
        await page.click("#verify-submit")
        await expect(page.locator("#verify-result")).to_have_attribute("data-ok", "yes")
        await expect(page.locator("#integrity tr.file[data-verified='ok']")).to_have_count(3)
        # A legal hold placed from the page, with its reason: the page shows it and offers to lift it.
        await expect(page.locator("#legal-hold")).to_have_attribute("data-held", "no")
        await page.fill("#hold-reason", "Permintaan Kejaksaan No. 12/2026")
        await page.click("#hold-submit")
        await expect(page.locator("#legal-hold")).to_have_attribute("data-held", "yes")
        await expect(page.locator("#legal-hold")).to_contain_text("Permintaan Kejaksaan No. 12/2026")
        await expect(page.locator("#hold-submit")).to_have_text("Lepas penahanan")
        assert errors == []

        # An agent is refused: the page, and the audio itself.
        agent = await browser.new_context(locale="id-ID")
        other = await agent.new_page()
        await other.goto(f"{site.base_url}/login?next=/audit/recordings/{rid}")
        await other.fill("#username", AGENT[0])
        await other.fill("#password", AGENT[1])
        await other.click("#login-submit")
        await other.wait_for_url(f"**/audit/recordings/{rid}")
        await expect(other.locator("#error-page")).to_contain_text("Hanya auditor dan administrator")
        assert await other.locator("#player").count() == 0
        await expect(other.locator("#nav-recordings")).to_have_count(0)
        response = await other.request.get(f"{site.base_url}/api/v1/recordings/{rid}/audio?kind=mixed")
        assert response.status == 403
        await browser.close()
    assert len(plays(site.db)) == 1
