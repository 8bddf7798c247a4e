"""The auditor's recordings API and pages over a real HTTP server and a real database (SQLite and
PostgreSQL): roles, search, range requests, one audit entry per playback, retention, masking of
confidential reporters, escaping of transcripts, and transcripts on the ticket."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from callcenter.audit import log as audit
from callcenter.audit.models import AuditEntry
from callcenter.auth import service as auth
from callcenter.auth.actor import SYSTEM
from callcenter.calls.records import CallRecord
from callcenter.dispatch.seed import seed_directory
from callcenter.events import EventBus
from callcenter.recording.models import Recording
from callcenter.recording.retention import RetentionPolicy, apply_batch
from callcenter.storage.base import utcnow
from callcenter.storage.database import Database
from callcenter.tickets.service import CallKey, NewTicket, TicketService
from callcenter.tickets.sla import DEFAULT_CALENDAR, load_calendar
from callcenter.transcription import jobs
from callcenter.web.api.recordings import PlaybackLog
from callcenter.web.app import ApiDeps, create_web_app
from callcenter.web.pages.audit import Line, Piece, lines, pieces
from tests.recording_seed import (
    Seeded,
    catalogue_call,
    enqueue_legs,
    recording_base,
    store_transcripts,
    write_legs,
)

USERS = {
    "agent": ("ani", "agent", None),
    "supervisor": ("sri", "supervisor", None),
    "auditor": ("adi", "auditor", None),
    "admin": ("root", "admin", None),
    "pupr": ("budi", "opd-operator", "PUPR"),
    "sms": ("sms-gateway", "integration", None),
}
EVIL = "<script>alert(1)</script>"
CALLER_SAID = f"Tolong ada kebakaran di pasar. {EVIL} Kirim pemadam <img src=x onerror=alert(2)> segera."
AGENT_SAID = "Baik, petugas pemadam kebakaran segera berangkat."
SECRET_SAID = "Saya melihat pungli di kantor kelurahan."
NUMBER = "081211112222"


@dataclass
class Site:
    client: TestClient
    db: Database
    tokens: dict[str, str]
    open_call: Seeded  # the open ticket's call, with transcripts (and the XSS)
    secret_call: Seeded  # a confidential ticket's call, same caller number
    plain_call: Seeded  # no ticket: retention may delete it
    numbers: dict[str, str]

    async def call(self, method: str, path: str, who: str | None, **kwargs: object) -> tuple[int, object]:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"} if who else {}
        headers.update(kwargs.pop("headers", {}))  # type: ignore[call-overload]
        async with self.client.request(method, path, headers=headers, **kwargs) as response:  # type: ignore[arg-type]
            if response.content_type == "application/json":
                return response.status, await response.json()
            return response.status, await response.read()

    async def audio(
        self, rid: int, who: str, query: str = "kind=mixed", **headers: str
    ) -> tuple[int, bytes, dict[str, str]]:
        headers["Authorization"] = f"Bearer {self.tokens[who]}"
        async with self.client.get(f"/api/v1/recordings/{rid}/audio?{query}", headers=headers) as response:
            return response.status, await response.read(), dict(response.headers)

    def entries(self, action: str | None = None) -> list[AuditEntry]:
        with self.db.transaction() as s, s.begin():
            query = select(AuditEntry).order_by(AuditEntry.seq)
            if action:
                query = query.where(AuditEntry.action == action)
            return list(s.scalars(query))

    def verify(self) -> list[audit.Problem]:
        with self.db.transaction() as s, s.begin():
            return audit.verify(s)

    async def login(self, name: str) -> None:
        self.client.session.cookie_jar.clear()
        body = {"username": name, "password": f"password-{name}"}
        async with self.client.post("/api/v1/session", json=body) as response:
            assert response.status == 200

    async def page(self, path: str) -> tuple[int, str]:
        async with self.client.get(path, allow_redirects=False) as response:
            return response.status, await response.text()


def size_of(path: str) -> int:
    return Path(path).stat().st_size


async def no_health() -> dict[str, object]:
    return {"status": "ok"}


@pytest.fixture
async def site(db: Database, tmp_path: Path) -> AsyncIterator[Site]:
    root = tmp_path / "recordings"
    service = TicketService(load_calendar(DEFAULT_CALENDAR))
    tokens: dict[str, str] = {}
    with db.transaction() as s, s.begin():
        seed_directory(s)
        for key, (name, role, agency) in USERS.items():
            user = auth.create_user(s, name, f"password-{name}", role, agency)
            tokens[key] = auth.create_token(s, user, "test")
    seeded: dict[str, Seeded] = {}
    numbers: dict[str, str] = {}
    for key, linkedid, confidential, said in (
        ("open", "1700000001.11", False, CALLER_SAID),
        ("secret", "1700000002.22", True, SECRET_SAID),
        ("plain", "1700000003.33", None, "Halo, salah sambung."),
    ):
        base = recording_base(root, linkedid)
        write_legs(base)
        with db.transaction() as s, s.begin():
            if confidential is not None:
                new = NewTicket(
                    summary=f"Laporan {key}", channel="112", reporter_name="Pelapor Rahasia",
                    reporter_number=NUMBER, confidential=confidential,
                    call=CallKey("pbx-a", linkedid, NUMBER),
                )  # fmt: skip
                ticket, _ = service.create(s, new, SYSTEM)
                service.dispatch(s, ticket.number, "PUPR", SYSTEM)
                numbers[key] = ticket.number
            done = catalogue_call(s, root, "pbx-a", linkedid, NUMBER, base)
            call = s.get(CallRecord, done.call_id)
            assert call is not None
            call.agent, call.queue, call.service = "ani", "q112", "112"
            call.started_at = datetime(2024, 5, 1 + len(seeded), 3, 0, tzinfo=UTC)
            store_transcripts(s, done, {"caller": said, "agent": AGENT_SAID})
            seeded[key] = done
    app = create_web_app(no_health, ApiDeps(db, service, EventBus()))
    async with TestClient(TestServer(app)) as client:
        yield Site(client, db, tokens, seeded["open"], seeded["secret"], seeded["plain"], numbers)


# ---- roles -------------------------------------------------------------------------------------


async def test_only_auditors_and_admins_reach_recordings(site: Site) -> None:
    rid = site.open_call.recording_id
    paths = [
        "/api/v1/recordings/search?q=kebakaran",
        f"/api/v1/recordings/{rid}",
        f"/api/v1/recordings/{rid}/audio",
    ]
    for who in ("agent", "supervisor", "pupr", "sms"):
        for path in paths:
            status, body = await site.call("GET", path, who)
            assert status == 403, (who, path, body)
    for path in paths:
        status, _ = await site.call("GET", path, None)
        assert status == 401
    for who in ("auditor", "admin"):
        for path in paths:
            status, _ = await site.call("GET", path, who)
            assert status == 200, (who, path)
    # Refusals are not playbacks.
    assert [e.actor for e in site.entries(audit.RECORDING_PLAY)] == ["adi", "root"]


async def test_ids_that_are_not_plain_digits_are_not_found(site: Site) -> None:
    # Superscript one is a digit to str.isdigit() but not to int() (the API fuzzer found a 500);
    # Arabic-Indic digits are digits to int() but no recording id is written that way.
    for raw in ("%C2%B9", "%D9%A1", "-1", "1e3", "9" * 13):
        for path in (f"/api/v1/recordings/{raw}", f"/api/v1/recordings/{raw}/audio"):
            status, _ = await site.call("GET", path, "auditor")
            assert status == 404, path


# ---- search ------------------------------------------------------------------------------------


async def test_search_finds_words_with_snippets_and_filters(site: Site) -> None:
    status, body = await site.call("GET", "/api/v1/recordings/search?q=kebakaran", "auditor")
    assert status == 200
    items = body["items"]  # type: ignore[index]
    by_leg = {(i["recording_id"], i["leg"]): i for i in items}
    caller = by_leg[(site.open_call.recording_id, "caller")]
    assert caller["speaker"] == "penelepon" and caller["ticket_numbers"] == [site.numbers["open"]]
    assert caller["call"]["agent"] == "ani" and caller["call"]["queue"] == "q112"
    assert caller["call"]["caller_number"] == NUMBER and caller["confidential"] is False
    assert caller["call"]["started_at"].startswith("2024-05-01T03:00")
    assert [caller["snippet"][a:b] for a, b in caller["highlights"]] == ["kebakaran"]
    assert by_leg[(site.open_call.recording_id, "agent")]["speaker"] == "petugas"
    # Prefixes, legs and the call's facts narrow the search.
    status, body = await site.call("GET", "/api/v1/recordings/search?q=kebakar*&leg=caller", "auditor")
    assert [i["recording_id"] for i in body["items"]] == [site.open_call.recording_id]  # type: ignore[index]
    ticket = site.numbers["open"]
    status, body = await site.call("GET", f"/api/v1/recordings/search?ticket={ticket}&leg=agent", "auditor")
    assert [i["recording_id"] for i in body["items"]] == [site.open_call.recording_id]  # type: ignore[index]
    status, body = await site.call("GET", "/api/v1/recordings/search?agent=nobody", "auditor")
    assert body["items"] == []  # type: ignore[index]
    # Dates are days in the command center's zone (WIB): 1 May 10:00 WIB is 03:00 UTC.
    status, body = await site.call(
        "GET", "/api/v1/recordings/search?since=2024-05-01&until=2024-05-01", "auditor"
    )
    assert {i["recording_id"] for i in body["items"]} == {site.open_call.recording_id}  # type: ignore[index]
    query = "since=2024-05-02T00:00:00%2B00:00&until=2024-05-03T00:00:00Z&leg=caller"
    status, body = await site.call("GET", f"/api/v1/recordings/search?{query}", "auditor")
    assert [i["recording_id"] for i in body["items"]] == [site.secret_call.recording_id]  # type: ignore[index]


async def test_a_recording_not_yet_transcribed_is_found_by_its_call(site: Site, tmp_path: Path) -> None:
    root = tmp_path / "recordings"
    base = recording_base(root, "1700000009.99")
    write_legs(base)
    with site.db.transaction() as s, s.begin():
        waiting = catalogue_call(s, root, "pbx-a", "1700000009.99", "081299990000", base)
        call = s.get(CallRecord, waiting.call_id)
        assert call is not None
        call.agent, call.queue = "budi", "hotline"
        enqueue_legs(s, waiting)  # queued, no worker has taken it yet
    status, body = await site.call("GET", "/api/v1/recordings/search?agent=budi", "auditor")
    assert status == 200
    (item,) = body["items"]  # type: ignore[index]
    assert (item["recording_id"], item["transcript_id"], item["transcription"]) == (
        waiting.recording_id,
        None,
        "queued",
    )
    assert (item["snippet"], item["leg"], item["call"]["caller_number"]) == ("", "", "081299990000")
    # Words search transcripts only; a transcribed hit says so.
    status, body = await site.call("GET", "/api/v1/recordings/search?q=kebakaran&agent=budi", "auditor")
    assert body["items"] == []  # type: ignore[index]
    status, body = await site.call("GET", "/api/v1/recordings/search?q=kebakaran", "auditor")
    assert {i["transcription"] for i in body["items"]} == {"transcribed"}  # type: ignore[index]
    # The page lists it with the state instead of a snippet, and a link to play it.
    await site.login("adi")
    status, html = await site.page("/audit/recordings?agent=budi")
    assert status == 200
    assert re.findall(r'<tr class="hit" data-recording="(\d+)"', html) == [str(waiting.recording_id)]
    assert 'data-state="queued">Belum ditranskripsi: dalam antrean<' in html
    assert f'href="/audit/recordings/{waiting.recording_id}"' in html
    status, html = await site.page("/audit/recordings?agent=budi&lang=en")
    assert 'data-state="queued">Not transcribed yet: queued<' in html
    # The recording's page says, per side, why there is no transcript; a failed job gives its reason.
    with site.db.transaction() as s, s.begin():
        held = jobs.claim(s, "w1", utcnow(), lease=timedelta(minutes=5))
        assert held is not None and held.leg == "caller"
        jobs.fail(s, held, "caller leg: not a WAV file <b>", utcnow())
    status, body = await site.call("GET", f"/api/v1/recordings/{waiting.recording_id}", "auditor")
    assert [(j["leg"], j["status"], j["attempts"]) for j in body["transcription_jobs"]] == [  # type: ignore[index]
        ("caller", "failed", 1),
        ("agent", "pending", 0),
    ]
    assert body["transcription_jobs"][0]["error"] == "caller leg: not a WAV file <b>"  # type: ignore[index]
    status, html = await site.page(f"/audit/recordings/{waiting.recording_id}?lang=id")
    assert status == 200
    caller = html.split('id="transcript-caller"', 1)[1].split('id="transcript-agent"', 1)[0]
    agent = html.split('id="transcript-agent"', 1)[1].split("</section>", 1)[0]
    assert 'data-state="failed">Transkripsi gagal' in caller
    assert "caller leg: not a WAV file &lt;b&gt;" in caller
    assert 'data-state="pending">Menunggu transkripsi.' in agent
    status, body = await site.call("GET", "/api/v1/recordings/search?agent=budi", "auditor")
    assert [i["transcription"] for i in body["items"]] == ["queued"]  # type: ignore[index]


@pytest.mark.parametrize(
    ("query", "status", "code", "text"),
    [
        ("q=k*", 400, "invalid_search", "prefix search needs at least 2 letters"),
        ("q=" + "+".join(f"w{i}" for i in range(20)), 400, "invalid_search", "at most 16 words"),
        ("since=yesterday", 400, "invalid_query", "since"),
        ("since=2024-05-03&until=2024-05-01", 422, "invalid_input", "until: must be after since"),
        ("limit=0", 400, "invalid_query", "limit"),
        ("leg=mixed", 400, "invalid_query", "leg"),
        ("caller=%3Cscript%3E", 400, "invalid_query", "caller"),
        ("path=/etc/passwd", 400, "invalid_query", "path"),
        ("until=9999-12-31", 422, "invalid_input", "until: out of range"),
    ],
)
async def test_bad_searches_are_refused_with_a_reason(
    site: Site, query: str, status: int, code: str, text: str
) -> None:
    got, body = await site.call("GET", f"/api/v1/recordings/search?{query}", "auditor")
    assert got == status, body
    error = body["error"]  # type: ignore[index]
    assert error["code"] == code
    assert text in json.dumps(error), error


# ---- one recording -----------------------------------------------------------------------------


async def test_metadata_has_files_transcripts_and_accesses(site: Site) -> None:
    rid = site.open_call.recording_id
    status, body = await site.call("GET", f"/api/v1/recordings/{rid}", "auditor")
    assert status == 200
    data: dict = body  # type: ignore[assignment]
    assert data["status"] == "ok" and data["deleted"] is False and data["legal_hold"]["held"] is False
    assert data["call"]["linkedid"] == "1700000001.11" and data["call"]["caller_number"] == NUMBER
    assert [(f["kind"], f["format"], f["sample_rate"], f["status"]) for f in data["files"]] == [
        ("mixed", "wav/pcm", 8000, "ok"), ("caller", "wav/pcm", 8000, "ok"), ("agent", "wav/pcm", 8000, "ok"),
    ]  # fmt: skip
    for f in data["files"]:
        assert f["size_bytes"] == size_of(f["path"]) and len(f["sha256"]) == 64
        assert f["audio"] == f"/api/v1/recordings/{rid}/audio?kind={f['kind']}"
    caller, agent = data["transcripts"]
    assert (caller["leg"], caller["speaker"], agent["leg"], agent["speaker"]) == (
        "caller", "penelepon", "agent", "petugas",
    )  # fmt: skip
    assert caller["text"] == CALLER_SAID and caller["words"][0] == {
        "word": "Tolong", "start": 0.5, "end": 0.9, "conf": 0.9,
    }  # fmt: skip
    assert data["tickets"][0]["number"] == site.numbers["open"]
    assert data["accesses"] == []
    await site.audio(rid, "auditor")
    _, body = await site.call("GET", f"/api/v1/recordings/{rid}", "auditor")
    (played,) = body["accesses"]  # type: ignore[index]
    assert played["actor"] == "adi" and played["action"] == "recording.play"
    assert played["detail"]["kind"] == "mixed"
    for bad in ("999999", "abc", "1" * 13):
        status, _ = await site.call("GET", f"/api/v1/recordings/{bad}", "auditor")
        assert status == 404


# ---- audio: ranges and the audit log -----------------------------------------------------------


async def test_range_requests(site: Site) -> None:
    rid = site.open_call.recording_id
    content = site.open_call.files["caller"].read_bytes()
    size = len(content)
    status, body, headers = await site.audio(rid, "auditor", "kind=caller")
    assert status == 200 and body == content
    assert headers["Accept-Ranges"] == "bytes" and headers["Content-Type"] == "audio/wav"
    assert headers["Content-Disposition"] == f'inline; filename="recording-{rid}-caller.wav"'
    # The security headers survive the file response; media is same-origin only.
    assert (
        headers["X-Content-Type-Options"] == "nosniff"
        and "media-src 'self'" in headers["Content-Security-Policy"]
    )
    status, body, headers = await site.audio(rid, "auditor", "kind=caller", Range="bytes=100-1099")
    assert status == 206 and body == content[100:1100]
    assert headers["Content-Range"] == f"bytes 100-1099/{size}"
    status, body, headers = await site.audio(rid, "auditor", "kind=caller", Range=f"bytes={size - 10}-")
    assert status == 206 and body == content[-10:]
    status, body, headers = await site.audio(rid, "auditor", "kind=caller", Range="bytes=-50")
    assert (
        status == 206
        and body == content[-50:]
        and headers["Content-Range"] == f"bytes {size - 50}-{size - 1}/{size}"
    )
    status, body, headers = await site.audio(rid, "auditor", "kind=caller", Range=f"bytes={size}-")
    assert status == 416 and headers["Content-Range"] == f"bytes */{size}"
    status, _, _ = await site.audio(rid, "auditor", "kind=caller", Range="bytes=abc")
    assert status == 416
    status, body, _ = await site.audio(rid, "auditor", "kind=agent")
    assert status == 200 and body == site.open_call.files["agent"].read_bytes()
    status, body, _ = await site.audio(rid, "auditor", "kind=../../etc/passwd")
    assert status == 400


async def test_one_audit_entry_per_playback(site: Site) -> None:
    rid = site.open_call.recording_id
    sha256 = hashlib.sha256(site.open_call.files["mixed"].read_bytes()).hexdigest()
    # A browser's playback: from byte 0, then continuations (seeks) and a retried tail.
    for rng in ("bytes=0-", "bytes=20000-", "bytes=30000-", "bytes=-100"):
        status, _, _ = await site.audio(rid, "auditor", Range=rng)
        assert status == 206
    (entry,) = site.entries(audit.RECORDING_PLAY)
    assert (entry.actor, entry.object_kind, entry.object_id) == ("adi", "recording", str(rid))
    assert json.loads(entry.detail) == {"kind": "mixed", "sha256": sha256, "client": "127.0.0.1"}
    # Playing again from the start is another playback; an unsatisfiable range is none.
    await site.audio(rid, "auditor", Range="bytes=0-")
    await site.audio(rid, "auditor", Range="bytes=999999-")
    assert len(site.entries(audit.RECORDING_PLAY)) == 2
    # A request for the middle of a file is logged when it continues no logged playback.
    status, _, _ = await site.audio(rid, "admin", Range="bytes=5000-")
    assert status == 206
    assert [e.actor for e in site.entries(audit.RECORDING_PLAY)] == ["adi", "adi", "root"]
    # Each file is its own playback; a download is its own action.
    await site.audio(rid, "auditor", "kind=agent", Range="bytes=1000-")
    status, _, headers = await site.audio(rid, "auditor", "kind=mixed&download=1")
    assert status == 200 and headers["Content-Disposition"].startswith("attachment;")
    (download,) = site.entries(audit.RECORDING_DOWNLOAD)
    assert download.actor == "adi" and json.loads(download.detail)["kind"] == "mixed"
    assert len(site.entries(audit.RECORDING_PLAY)) == 4
    assert site.verify() == []


def test_playback_log_window_and_bound() -> None:
    log = PlaybackLog(window=10.0, limit=2)
    key = ("adi", 1, "mixed", "play")
    assert not log.continues(key, 0.0)
    log.logged(key, 0.0)
    assert log.continues(key, 9.0) and log.continues(key, 18.0)  # kept alive while it continues
    assert not log.continues(key, 29.0)
    log.logged(key, 30.0)
    log.logged(("adi", 2, "mixed", "play"), 31.0)
    log.logged(("adi", 3, "mixed", "play"), 32.0)
    assert not log.continues(key, 33.0)  # the oldest was forgotten: logged again, never less


async def test_deleted_missing_and_altered_files(site: Site, tmp_path: Path) -> None:
    plain = site.plain_call
    # Retention (the product's own batch) deletes the files of the call without a ticket.
    with site.db.transaction() as s, s.begin():
        batch = apply_batch(s, RetentionPolicy(1, 1), tmp_path / "recordings", utcnow() + timedelta(days=30))
    assert batch.deleted == [plain.recording_id]
    status, body, _ = await site.audio(plain.recording_id, "auditor")
    assert status == 410 and b"deleted by retention" in body
    status, meta = await site.call("GET", f"/api/v1/recordings/{plain.recording_id}", "auditor")
    assert status == 200 and meta["deleted"] is True  # type: ignore[index]
    # A file gone from disk: a clear 404; a file whose size changed: 409.
    rid = site.open_call.recording_id
    site.open_call.files["agent"].unlink()
    status, body, _ = await site.audio(rid, "auditor", "kind=agent")
    assert status == 404 and b"missing from disk" in body
    with site.open_call.files["caller"].open("ab") as handle:
        handle.write(b"\0" * 10)
    status, body, _ = await site.audio(rid, "auditor", "kind=caller")
    assert status == 409 and b"altered" in body
    # None of these was a playback.
    assert site.entries(audit.RECORDING_PLAY) == []
    assert [e.action for e in site.entries()] == [audit.RECORDING_DELETE]


# ---- integrity, on demand ----------------------------------------------------------------------


async def test_verifying_one_recording_rehashes_its_files_and_is_audited(site: Site, tmp_path: Path) -> None:
    rid = site.open_call.recording_id
    url = f"/api/v1/recordings/{rid}/verify"
    for who in ("agent", "supervisor", "pupr"):
        status, _ = await site.call("POST", url, who)
        assert status == 403, who
    status, body = await site.call("POST", url, "auditor")
    assert status == 200
    assert (body["ok"], body["checked"], body["files_ok"], body["problems"]) == (True, 3, 3, [])  # type: ignore[index]
    # One byte changed in the agent's leg, the caller's leg gone: both named, per file.
    agent = site.open_call.files["agent"]
    data = bytearray(agent.read_bytes())
    data[-1] ^= 0xFF
    agent.write_bytes(bytes(data))
    site.open_call.files["caller"].unlink()
    status, body = await site.call("POST", url, "admin")
    assert status == 200 and body["ok"] is False  # type: ignore[index]
    assert sorted((p["kind"], p["problem"]) for p in body["problems"]) == [  # type: ignore[index]
        ("agent", "mismatch"),
        ("caller", "missing"),
    ]
    verified = [(e.actor, json.loads(e.detail)) for e in site.entries(audit.RECORDING_VERIFY)]
    assert verified == [
        ("adi", {"ok": True, "checked": 3, "problems": []}),
        ("root", {"ok": False, "checked": 3, "problems": ["missing:caller", "mismatch:agent"]}),
    ]
    assert site.verify() == []
    # The page has the button; deleted and unknown recordings say so.
    await site.login("adi")
    status, html = await site.page(f"/audit/recordings/{rid}")
    assert f'data-url="/api/v1/recordings/{rid}/verify"' in html
    with site.db.transaction() as s, s.begin():
        apply_batch(s, RetentionPolicy(1, 1), tmp_path / "recordings", utcnow() + timedelta(days=30))
    status, body = await site.call(
        "POST", f"/api/v1/recordings/{site.plain_call.recording_id}/verify", "auditor"
    )
    assert status == 410
    status, _ = await site.call("POST", "/api/v1/recordings/999999/verify", "auditor")
    assert status == 404


# ---- the audit log -----------------------------------------------------------------------------


async def test_the_audit_log_is_read_and_its_chain_checked_by_auditors_only(site: Site) -> None:
    rid = site.open_call.recording_id
    assert (await site.audio(rid, "auditor"))[0] == 200
    status, _ = await site.call(
        "POST", f"/api/v1/recordings/{rid}/legal-hold", "admin", json={"reason": "perkara 7/2026"}
    )
    assert status == 200
    for who in ("agent", "supervisor", "pupr"):
        for path in ("/api/v1/audit/entries", "/api/v1/audit/verify"):
            status, _ = await site.call("GET", path, who)
            assert status == 403, (who, path)
    status, body = await site.call("GET", "/api/v1/audit/entries", "auditor")
    assert status == 200
    assert [(e["seq"], e["actor"], e["action"], e["object_id"]) for e in body["items"]] == [  # type: ignore[index]
        (2, "root", "recording.hold", str(rid)),
        (1, "adi", "recording.play", str(rid)),
    ]
    assert body["items"][0]["detail"] == {"reason": "perkara 7/2026"}  # type: ignore[index]
    status, body = await site.call("GET", "/api/v1/audit/entries?actor=adi&action=recording.play", "auditor")
    assert [e["seq"] for e in body["items"]] == [1]  # type: ignore[index]
    status, body = await site.call("GET", "/api/v1/audit/entries?action=DROP%20TABLE", "auditor")
    assert status == 400  # a query parameter that is not a valid action name
    status, body = await site.call("GET", "/api/v1/audit/verify", "admin")
    assert (body["ok"], body["entries"], body["head"]["seq"], body["problems"]) == (True, 2, 2, [])  # type: ignore[index]
    # The page: the entries, and the chain checked on request; then an entry altered in the database.
    await site.login("adi")
    status, html = await site.page("/audit/log?lang=id")
    assert status == 200 and 'id="nav-audit-log"' in html
    assert re.findall(r'<tr class="entry" data-seq="(\d+)" data-action="([a-z.]+)"', html) == [
        ("2", "recording.hold"),
        ("1", "recording.play"),
    ]
    assert "Ditahan (hukum)" in html and f'href="/audit/recordings/{rid}"' in html
    status, html = await site.page("/audit/log?verify=1")
    assert 'id="chain-result" class="ok" data-ok="yes"' in html and "Rantai utuh: 2 entri, kepala 2." in html
    with site.db.transaction() as s, s.begin():
        entry = s.scalars(select(AuditEntry).where(AuditEntry.seq == 1)).one()
        entry.actor = "orang-lain"
    status, html = await site.page("/audit/log?verify=1&action=recording.play")
    assert 'data-ok="no"' in html and '<li data-seq="1">1: altered:' in html
    assert re.findall(r'<tr class="entry" data-seq="(\d+)"', html) == ["1"]
    status, body = await site.call("GET", "/api/v1/audit/verify", "auditor")
    assert body["ok"] is False and [p["seq"] for p in body["problems"]] == [1]  # type: ignore[index]
    # Others do not get the page.
    await site.login("sri")
    status, html = await site.page("/audit/log")
    assert status == 403 and 'id="nav-audit-log"' not in html


# ---- legal hold --------------------------------------------------------------------------------


async def test_a_legal_hold_keeps_the_files_past_retention_and_is_audited(site: Site, tmp_path: Path) -> None:
    rid = site.plain_call.recording_id
    url = f"/api/v1/recordings/{rid}/legal-hold"
    reason = {"reason": "  Permintaan Kejaksaan No. 12/2026 <b>  "}
    for who in ("agent", "supervisor", "pupr", "sms"):
        status, _ = await site.call("POST", url, who, json=reason)
        assert status == 403, who
    status, body = await site.call("POST", url, "auditor", json={"reason": "   "})
    assert status == 422
    status, body = await site.call("POST", url, "auditor", json=reason)
    assert status == 200
    hold = body["legal_hold"]  # type: ignore[index]
    assert (hold["held"], hold["by"], hold["reason"]) == (True, "adi", "Permintaan Kejaksaan No. 12/2026 <b>")
    status, body = await site.call("POST", url, "admin", json=reason)
    assert status == 409 and "already" in body["error"]["message"]  # type: ignore[index]
    # Retention passes it by, and says why.
    with site.db.transaction() as s, s.begin():
        batch = apply_batch(s, RetentionPolicy(1, 1), tmp_path / "recordings", utcnow() + timedelta(days=30))
    assert batch.deleted == []
    assert all(path.exists() for path in site.plain_call.files.values())
    # The page shows the hold and offers to lift it, with a reason.
    await site.login("adi")
    status, html = await site.page(f"/audit/recordings/{rid}?lang=id")
    assert 'id="legal-hold" data-held="yes"' in html and "Permintaan Kejaksaan No. 12/2026 &lt;b&gt;" in html
    assert f'data-url="/api/v1/recordings/{rid}/legal-hold/release"' in html and "Lepas penahanan" in html
    status, body = await site.call("POST", url + "/release", "admin", json={"reason": ""})
    assert status == 422
    status, body = await site.call("POST", url + "/release", "admin", json={"reason": "perkara selesai"})
    assert status == 200 and body["legal_hold"]["held"] is False  # type: ignore[index]
    status, body = await site.call("POST", url + "/release", "admin", json={"reason": "lagi"})
    assert status == 409
    # Both steps are in the chained audit log, with who and why.
    assert [(e.actor, e.action, json.loads(e.detail)["reason"]) for e in site.entries()] == [
        ("adi", audit.RECORDING_HOLD, "Permintaan Kejaksaan No. 12/2026 <b>"),
        ("root", audit.RECORDING_RELEASE, "perkara selesai"),
    ]
    assert site.verify() == []
    # Retention applies again; a deleted recording cannot be put on hold.
    with site.db.transaction() as s, s.begin():
        batch = apply_batch(s, RetentionPolicy(1, 1), tmp_path / "recordings", utcnow() + timedelta(days=30))
    assert batch.deleted == [rid]
    status, body = await site.call("POST", url, "auditor", json=reason)
    assert status == 409 and "deleted by retention" in body["error"]["message"]  # type: ignore[index]
    status, html = await site.page(f"/audit/recordings/{rid}")
    assert 'id="hold-form"' not in html
    status, _ = await site.call("POST", "/api/v1/recordings/999999/legal-hold", "auditor", json=reason)
    assert status == 404


# ---- confidential reports ----------------------------------------------------------------------


async def test_confidential_reporter_is_masked_and_not_found_by_number(site: Site) -> None:
    secret = site.secret_call.recording_id
    status, body = await site.call("GET", "/api/v1/recordings/search?q=pungli", "auditor")
    (hit,) = body["items"]  # type: ignore[index]
    assert hit["recording_id"] == secret and hit["confidential"] is True
    assert hit["call"]["caller_number"] is None and NUMBER not in json.dumps(hit)
    # A search by the caller's number finds their other calls, never the confidential one.
    status, body = await site.call("GET", f"/api/v1/recordings/search?caller={NUMBER}", "admin")
    found = {i["recording_id"] for i in body["items"]}  # type: ignore[index]
    assert found == {site.open_call.recording_id, site.plain_call.recording_id}
    status, body = await site.call("GET", f"/api/v1/recordings/search?caller={NUMBER}&q=pungli", "admin")
    assert body["items"] == []  # type: ignore[index]
    status, body = await site.call("GET", f"/api/v1/recordings/{secret}", "auditor")
    data: dict = body  # type: ignore[assignment]
    assert data["confidential"] is True and data["call"]["caller_number"] is None
    assert data["tickets"][0]["reporter"] == {"hidden": True}
    assert NUMBER not in json.dumps(data) and "Pelapor Rahasia" not in json.dumps(data)
    await site.login("adi")
    status, html = await site.page(f"/audit/recordings/{secret}")
    assert status == 200 and NUMBER not in html and "dirahasiakan" in html
    status, html = await site.page("/audit/recordings?q=pungli")
    assert status == 200 and NUMBER not in html and "dirahasiakan" in html


# ---- transcripts on the ticket -----------------------------------------------------------------


async def test_ticket_detail_shows_transcripts_to_those_who_may_see_them(site: Site) -> None:
    open_number, secret_number = site.numbers["open"], site.numbers["secret"]
    for who in ("agent", "supervisor", "auditor", "pupr"):
        status, body = await site.call("GET", f"/api/v1/tickets/{open_number}", who)
        assert status == 200
        assert body["transcripts_hidden"] is False  # type: ignore[index]
        assert [(t["leg"], t["speaker"]) for t in body["transcripts"]] == [  # type: ignore[index]
            ("caller", "penelepon"), ("agent", "petugas"),
        ]  # fmt: skip
        assert body["transcripts"][0]["text"] == CALLER_SAID  # type: ignore[index]
        assert body["transcripts"][0]["linkedid"] == "1700000001.11"  # type: ignore[index]
    status, body = await site.call("GET", f"/api/v1/tickets/{secret_number}", "agent")
    assert [t["text"] for t in body["transcripts"]] == [SECRET_SAID, AGENT_SAID]  # type: ignore[index]
    # The OPD operator handles the confidential ticket without hearing or reading the reporter.
    status, body = await site.call("GET", f"/api/v1/tickets/{secret_number}", "pupr")
    assert status == 200 and body["transcripts"] == [] and body["transcripts_hidden"] is True  # type: ignore[index]
    await site.login("budi")
    status, html = await site.page(f"/opd/tickets/{secret_number}")
    assert status == 200 and 'id="transcripts-hidden"' in html and "pungli" not in html
    status, html = await site.page(f"/opd/tickets/{open_number}")
    assert status == 200 and "Penelepon" in html and "Petugas" in html
    assert EVIL not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html


# ---- pages -------------------------------------------------------------------------------------


async def test_search_page_marks_words_and_escapes_transcripts(site: Site) -> None:
    await site.login("adi")
    status, html = await site.page("/audit/recordings?q=kirim+pemadam")
    assert status == 200 and 'lang="id"' in html and "Pencarian rekaman" in html
    rows = re.findall(r'<tr class="hit" data-recording="(\d+)" data-leg="(\w+)"', html)
    assert rows == [(str(site.open_call.recording_id), "caller")]
    snippet = html.split('<td class="snippet">', 1)[1].split("</td>", 1)[0]
    assert "<mark>Kirim</mark> <mark>pemadam</mark>" in snippet
    assert "<script>" not in snippet and "<img" not in snippet
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in snippet and "&lt;img src=x" in snippet
    assert f'href="/audit/recordings/{site.open_call.recording_id}"' in html
    assert 'id="nav-recordings"' in html
    # Bad searches say why, in the page.
    status, html = await site.page("/audit/recordings?q=k*")
    assert status == 200 and 'id="search-error"' in html and "prefix search" in html
    status, html = await site.page("/audit/recordings?since=kemarin")
    assert status == 200 and 'id="search-error"' in html
    # English on request; the same search form, filled in as sent.
    status, html = await site.page("/audit/recordings?q=%3Cb%3E&lang=en")
    assert status == 200 and "Recording search" in html and 'value="&lt;b&gt;"' in html


async def test_recording_page_has_the_player_and_both_transcripts(site: Site) -> None:
    rid = site.open_call.recording_id
    await site.login("adi")
    status, html = await site.page(f"/audit/recordings/{rid}")
    assert status == 200
    assert (
        f'<audio id="player" controls preload="none" src="/api/v1/recordings/{rid}/audio?kind=mixed"' in html
    )
    assert "/static/pages/audit.js" in html
    caller = html.split('id="transcript-caller"', 1)[1].split('id="transcript-agent"', 1)[0]
    assert "Penelepon" in caller and '<button type="button" class="seek" data-start="0.5"' in caller
    assert EVIL not in caller and "&lt;script&gt;" in caller
    assert "Petugas" in html.split('id="transcript-agent"', 1)[1]
    assert html.count('class="file"') == 3 and 'data-status="ok"' in html
    # Opening the page plays nothing (preload="none"): no audit entry.
    assert site.entries(audit.RECORDING_PLAY) == []
    status, html = await site.page("/audit/recordings/999999")
    assert status == 404 and "Rekaman ini tidak ada" in html


async def test_other_roles_get_the_refusal_page(site: Site) -> None:
    rid = site.open_call.recording_id
    for name in ("ani", "sri", "budi"):
        await site.login(name)
        for path in ("/audit/recordings", f"/audit/recordings/{rid}"):
            status, html = await site.page(path)
            assert status == 403 and "Hanya auditor dan administrator" in html, (name, path)
            assert 'id="nav-recordings"' not in html
    site.client.session.cookie_jar.clear()
    async with site.client.get(f"/audit/recordings/{rid}", allow_redirects=False) as response:
        assert response.status == 302
        assert response.headers["Location"] == f"/login?next=%2Faudit%2Frecordings%2F{rid}"


async def test_deleted_recording_page_says_so(site: Site, tmp_path: Path) -> None:
    with site.db.transaction() as s, s.begin():
        apply_batch(s, RetentionPolicy(1, 1), tmp_path / "recordings", utcnow() + timedelta(days=30))
        deleted = s.get(Recording, site.plain_call.recording_id)
        assert deleted is not None and deleted.deleted_at is not None
    await site.login("root")
    status, html = await site.page(f"/audit/recordings/{site.plain_call.recording_id}")
    assert status == 200 and 'id="recording-deleted"' in html and "<audio" not in html


# ---- pure helpers ------------------------------------------------------------------------------


def test_pieces_cut_the_snippet_at_the_highlights() -> None:
    assert pieces("a <b> fire here", [(6, 10)]) == [
        Piece("a <b> ", False),
        Piece("fire", True),
        Piece(" here", False),
    ]
    got = pieces("fire and fire", [(9, 13), (0, 4), (2, 3), (50, 60)])
    assert [(p.text, p.marked) for p in got] == [("fire", True), (" and ", False), ("fire", True)]


def test_lines_break_at_pauses_sentences_and_length() -> None:
    words = [
        {"word": "Hello.", "start": 0.0, "end": 0.4},
        {"word": "Fire", "start": 0.5, "end": 0.8},
        {"word": "here", "start": 0.9, "end": 1.1},
        {"word": "please", "start": 3.0, "end": 3.3},
    ]
    assert lines("", words) == [
        Line(0.0, 0.4, "Hello."),
        Line(0.5, 1.1, "Fire here"),
        Line(3.0, 3.3, "please"),
    ]
    many = [{"word": f"w{i}", "start": i * 0.3, "end": i * 0.3 + 0.2} for i in range(30)]
    assert [len(line.text.split()) for line in lines("", many)] == [16, 14]
    assert lines("untimed text", []) == [Line(None, None, "untimed text")]
    assert lines("", "not a list") == []
    assert Line(75.25, 76.0, "x").clock == "1:15.2"
