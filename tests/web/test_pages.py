"""The OPD operator's web pages over a real HTTP server and a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from callcenter.auth import service as auth
from callcenter.auth.actor import SYSTEM
from callcenter.auth.roles import Role
from callcenter.dispatch.seed import seed_directory
from callcenter.events import EventBus
from callcenter.storage.base import utcnow
from callcenter.storage.database import Database
from callcenter.tickets import lifecycle
from callcenter.tickets.service import NewTicket, TicketService
from callcenter.tickets.sla import DEFAULT_CALENDAR, load_calendar
from callcenter.web import i18n
from callcenter.web.app import ApiDeps, create_web_app
from callcenter.web.pages import handlers

USERS = {
    "budi": ("opd-operator", "PUPR"),
    "citra": ("opd-operator", "DLH"),
    "ani": ("agent", None),
    "adi": ("auditor", None),
}
EVIL = "<script>alert(1)</script>"
TEMPLATES = Path(handlers.__file__).parent / "templates"


def password(name: str) -> str:
    return f"password-{name}"


@dataclass
class Site:
    client: TestClient
    numbers: dict[str, str]

    async def login(self, name: str) -> None:
        self.client.session.cookie_jar.clear()
        async with self.client.post(
            "/api/v1/session", json={"username": name, "password": password(name)}
        ) as response:
            assert response.status == 200, await response.text()

    async def page(self, path: str, **headers: str) -> tuple[int, str]:
        async with self.client.get(path, headers=headers, allow_redirects=False) as response:
            return response.status, await response.text()

    async def post(self, path: str, body: object) -> tuple[int, dict[str, object]]:
        async with self.client.post(path, json=body) as response:
            payload = await response.json()
            assert isinstance(payload, dict)
            return response.status, payload


def make_ticket(
    db: Database, service: TicketService, agency: str | None, summary: str, **fields: object
) -> str:
    with db.transaction() as s, s.begin():
        new = NewTicket(summary=summary, channel="hotline", district="Kota", **fields)  # type: ignore[arg-type]
        ticket, _ = service.create(s, new, SYSTEM)
        if agency:
            service.dispatch(s, ticket.number, agency, SYSTEM)
        return ticket.number


async def no_health() -> dict[str, object]:
    return {"status": "ok"}


@pytest.fixture
async def site(db: Database) -> AsyncIterator[Site]:
    with db.transaction() as s, s.begin():
        seed_directory(s)
        for name, (role, agency) in USERS.items():
            auth.create_user(s, name, password(name), role, agency)
    calendar = load_calendar(DEFAULT_CALENDAR)
    service = TicketService(calendar)
    # A report made and dispatched two months ago: its follow-up deadline has long passed.
    past = utcnow() - timedelta(days=60)
    old = TicketService(calendar, clock=lambda: past)
    numbers = {
        "old": make_ticket(db, old, "PUPR", "Jalan berlubang di depan pasar", category="JALAN"),
        "lamp": make_ticket(db, service, "PUPR", "Lampu jalan mati di Jl. Sudirman", category="PJU",
                            reporter_name="Wati", reporter_number="081299990000"),
        "secret": make_ticket(db, service, "PUPR", "Pungli di kantor kelurahan", confidential=True,
                              reporter_name="Pelapor Rahasia"),
        "evil": make_ticket(db, service, "PUPR", EVIL, description=EVIL + "\nbaris kedua"),
        "waste": make_ticket(db, service, "DLH", "Sampah menumpuk di TPS", category="SAMPAH"),
        "new": make_ticket(db, service, None, "Belum diteruskan"),
        "done": make_ticket(db, service, "PUPR", "Drainase tersumbat", category="DRAINASE"),
    }  # fmt: skip
    with db.transaction() as s, s.begin():
        service.transition(s, numbers["done"], "diproses", SYSTEM)
        service.transition(s, numbers["done"], "selesai", SYSTEM, note="sudah dibersihkan")
    app = create_web_app(no_health, ApiDeps(db, service, EventBus()))
    async with TestClient(TestServer(app)) as client:
        yield Site(client, numbers)


def rows(html: str) -> dict[str, str]:
    """The queue's rows by ticket number (each row's HTML)."""
    table = html.split('id="ticket-table"', 1)[1].split("</table>", 1)[0]
    found = {}
    for chunk in table.split('<tr class="ticket-row')[1:]:
        number = re.search(r'data-number="(\d+)"', chunk)
        assert number is not None
        found[number.group(1)] = chunk.split("</tr>", 1)[0]
    return found


def order(html: str) -> list[str]:
    return re.findall(r'<tr class="ticket-row[^"]*" data-number="(\d+)"', html)


def buttons(html: str) -> set[str]:
    return set(re.findall(r'<button type="button" class="action[^"]*" data-action="([a-z]+)"', html))


async def test_pages_need_a_login(site: Site) -> None:
    async with site.client.get("/opd", allow_redirects=False) as response:
        assert response.status == 302 and response.headers["Location"] == "/login"
    number = site.numbers["lamp"]
    async with site.client.get(f"/opd/tickets/{number}", allow_redirects=False) as response:
        assert response.status == 302
        assert response.headers["Location"] == f"/login?next=%2Fopd%2Ftickets%2F{number}"
    status, html = await site.page("/login?next=/opd/tickets/" + number)
    assert status == 200 and 'id="login-form"' in html and 'id="username"' in html and 'id="password"' in html
    assert f'data-next="/opd/tickets/{number}"' in html
    assert "Kata sandi" in html and 'lang="id"' in html
    # Only paths of these pages are followed after login, never another site.
    status, html = await site.page("/login?next=//evil.example/opd")
    assert 'data-next="/opd"' in html
    async with site.client.post("/api/v1/session", json={"username": "budi", "password": "wrong-one!"}) as r:
        assert r.status == 401
    status, _ = await site.page("/opd")
    assert status == 302


async def test_queue_shows_the_agency_tickets_with_deadlines(site: Site) -> None:
    await site.login("budi")
    status, html = await site.page("/opd")
    assert status == 200
    n = site.numbers
    listed = rows(html)
    # Only PUPR's tickets; not DLH's, not the one still at the command center.
    assert set(listed) == {n["old"], n["lamp"], n["secret"], n["evil"], n["done"]}
    # Open ones first; the done one last.
    assert order(html)[-1] == n["done"]
    assert order(html)[0] == n["old"]  # waiting, and its deadline is the soonest
    # The long-passed deadline is marked; the others are not.
    assert 'class="badge overdue"' in listed[n["old"]] and "row-overdue" in listed[n["old"]]
    for key in ("lamp", "secret", "evil", "done"):
        assert "overdue" not in listed[n[key]], key
    # Deadlines in local time (WIB), labels in Bahasa Indonesia by default.
    assert re.search(r"<time datetime=\"[^\"]+\">\d{4}-\d\d-\d\d \d\d:\d\d WIB</time>", listed[n["lamp"]])
    assert "Batas tindak lanjut" in html and "Terlambat" in listed[n["old"]]
    assert ">Menunggu<" in listed[n["lamp"]] and ">Selesai<" in listed[n["done"]]
    assert "Penerangan jalan umum" in listed[n["lamp"]]
    assert 'id="current-user"' in html and "Operator OPD" in html
    # The summary is text, never markup.
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in listed[n["evil"]] and EVIL not in html

    # English on request, remembered in a cookie.
    async with site.client.get("/opd?lang=en") as response:
        html = await response.text()
        assert response.cookies["cc_lang"].value == "en"
    listed = rows(html)
    assert 'lang="en"' in html and "Follow-up deadline" in html
    assert (
        ">Waiting<" in listed[n["lamp"]] and ">Done<" in listed[n["done"]] and "Overdue" in listed[n["old"]]
    )
    assert "Street lights" in listed[n["lamp"]]
    _, html = await site.page("/opd")
    assert "Follow-up deadline" in html
    _, html = await site.page("/opd?lang=id")
    assert "Batas tindak lanjut" in html

    # Filter by status.
    _, html = await site.page("/opd?status=selesai")
    assert order(html) == [n["done"]]
    assert 'option value="selesai" selected' in html
    _, html = await site.page("/opd?status=ditolak")
    assert 'id="queue-empty"' in html and "ticket-table" not in html
    _, html = await site.page("/opd?status=nonsense")
    assert len(order(html)) == 5


async def test_language_from_the_browser(site: Site) -> None:
    await site.login("citra")
    _, html = await site.page("/opd", **{"Accept-Language": "en-US,en;q=0.9,id;q=0.8"})
    assert "Follow-up deadline" in html
    _, html = await site.page("/opd", **{"Accept-Language": "fr, id;q=0.5, en;q=0.4"})
    assert "Batas tindak lanjut" in html
    assert set(rows(html)) == {site.numbers["waste"]}


async def test_supervisors_and_agents_see_every_ticket(site: Site) -> None:
    await site.login("ani")
    _, html = await site.page("/opd")
    assert set(rows(html)) == set(site.numbers.values())
    assert '<th scope="col">OPD</th>' in html


async def test_detail_shows_trail_and_the_allowed_buttons(site: Site) -> None:
    number = site.numbers["lamp"]
    page = f"/opd/tickets/{number}"
    api = f"/api/v1/tickets/{number}"
    await site.login("budi")
    status, html = await site.page(page)
    assert status == 200
    assert 'id="trail"' in html and html.count('class="trail-entry"') == 2
    assert "Diteruskan ke OPD" in html and "Wati" in html and "081299990000" in html
    assert f'data-api="/api/v1/tickets/{number}"' in html
    # Waiting: an OPD operator claims it first; it cannot be closed or released from here.
    assert buttons(html) == {"claim", "reject", "comment", "escalate"}
    assert 'data-action="claim" data-kind="transition" data-to="diproses"' in html
    assert 'id="action-reason"' in html

    assert (await site.post(api + "/transitions", {"to": "diproses", "note": "teknisi berangkat"}))[0] == 200
    _, html = await site.page(page)
    assert buttons(html) == {"done", "reject", "release", "comment", "escalate"}
    assert "Diambil" in html and "Menunggu → Diproses" in html and "teknisi berangkat" in html
    assert ">Diproses<" in html

    # Rejecting without a reason: the server's own message, for the page to show.
    status, body = await site.post(api + "/transitions", {"to": "ditolak", "reason": "  "})
    assert status == 409 and "needs a reason" in body["error"]["message"]  # type: ignore[index]

    assert (await site.post(api + "/comments", {"note": "menunggu material"}))[0] == 200
    assert (await site.post(api + "/transitions", {"to": "selesai", "note": "lampu diganti"}))[0] == 200
    _, html = await site.page(page + "?lang=en")
    assert buttons(html) == {"comment"}
    assert 'id="action-reason"' not in html
    trail = html.split('id="trail"', 1)[1]
    for label in ("Created", "Dispatched to agency", "Claimed", "Comment", "Resolved", "In process → Done"):
        assert label in trail, label
    assert "lampu diganti" in trail

    # Read-only roles get no buttons.
    await site.login("adi")
    _, html = await site.page(page)
    assert buttons(html) == set() and 'id="read-only"' in html and 'id="actions"' not in html

    # The command center may settle a waiting ticket itself.
    await site.login("ani")
    _, html = await site.page(f"/opd/tickets/{site.numbers['new']}")
    assert buttons(html) == {"claim", "done", "reject", "comment", "escalate"}


async def test_other_agencies_tickets_are_not_found(site: Site) -> None:
    await site.login("budi")
    for path in (f"/opd/tickets/{site.numbers['waste']}", f"/opd/tickets/{site.numbers['new']}",
                 "/opd/tickets/99999999", "/opd/tickets/abc"):  # fmt: skip
        status, html = await site.page(path)
        assert status == 404, path
        assert 'id="error-page"' in html and "Tidak ditemukan" in html
        assert "Sampah menumpuk" not in html
    status, html = await site.page(f"/opd/tickets/{site.numbers['waste']}?lang=en")
    assert status == 404 and "Not found" in html


async def test_text_is_escaped_and_the_reporter_kept_confidential(site: Site) -> None:
    await site.login("budi")
    _, html = await site.page(f"/opd/tickets/{site.numbers['evil']}")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and EVIL not in html
    _, html = await site.page(f"/opd/tickets/{site.numbers['secret']}")
    assert "Identitas pelapor dirahasiakan" in html and "Pelapor Rahasia" not in html
    await site.login("ani")
    _, html = await site.page(f"/opd/tickets/{site.numbers['secret']}")
    assert "Pelapor Rahasia" in html and "Identitas pelapor dirahasiakan" not in html


async def test_pages_run_no_inline_script_and_serve_their_files(site: Site) -> None:
    await site.login("budi")
    for path in ("/login", "/opd", f"/opd/tickets/{site.numbers['lamp']}", "/opd/tickets/1"):
        async with site.client.get(path) as response:
            html = await response.text()
            assert response.content_type == "text/html"
            assert "default-src 'self'" in response.headers["Content-Security-Policy"]
        scripts = re.findall(r"<script[^>]*>", html)
        assert scripts == ['<script src="/static/pages/pages.js" defer>'], path
        assert re.search(r"<[^>]*\son[a-z]+\s*=", html) is None, path  # no onclick=...
    async with site.client.get("/static/pages/pages.js") as response:
        assert response.status == 200 and "javascript" in response.content_type
        script = await response.text()
        assert "innerHTML" not in script and "textContent" in script
    async with site.client.get("/static/pages/pages.css") as response:
        assert response.status == 200 and response.content_type == "text/css"
    async with site.client.get("/static/pages/../../app.py") as response:
        assert response.status in (403, 404)


def test_templates_never_turn_escaping_off() -> None:
    for template in TEMPLATES.glob("*.html"):
        text = template.read_text()
        assert "|safe" not in text.replace(" ", "") and "autoescape" not in text, template.name


def test_every_message_in_both_languages() -> None:
    for key, texts in i18n.MESSAGES.items():
        assert set(texts) == set(i18n.LANGS) and all(texts.values()), key
    kinds = set(lifecycle.TRANSITIONS.values()) | {
        "created", "dispatched", "escalated", "forwarded", "comment", "reviewed", "call_linked",
    }  # fmt: skip
    for prefix, values in (
        ("status", lifecycle.STATUSES), ("priority", lifecycle.PRIORITIES), ("channel", lifecycle.CHANNELS),
        ("action", kinds), ("role", [r.value for r in Role]), ("actions", [a for a in (
            "claim", "done", "reject", "release", "comment", "escalate")]),
    ):  # fmt: skip
        for value in values:
            assert f"{prefix}.{value}" in i18n.MESSAGES, (prefix, value)
    assert [i18n.t(f"status.{s}", "id") for s in lifecycle.STATUSES] == [
        "Menunggu",
        "Diproses",
        "Selesai",
        "Ditolak",
    ]
    assert [i18n.t(f"status.{s}", "en") for s in lifecycle.STATUSES] == [
        "Waiting",
        "In process",
        "Done",
        "Rejected",
    ]
    assert i18n.t("no.such.key", "en") == "no.such.key"
    assert i18n.label("status", "unknown", "en") == "unknown"


def test_language_choice() -> None:
    assert i18n.choose(None, None, None) == "id"
    assert i18n.choose("en", "id", "id") == "en"
    assert i18n.choose("xx", "en", "id") == "en"
    assert i18n.choose(None, None, "en-GB,en;q=0.8") == "en"
    assert i18n.choose(None, None, "de, en;q=0.3, id-ID;q=0.7") == "id"
    assert i18n.choose(None, None, "in") == "id"
    assert i18n.choose(None, None, "en;q=0, fr") == "id"
    assert i18n.choose(None, None, "en;q=abc, id;q=0.1") == "id"


def test_deadline_passed_counts_only_while_open() -> None:
    past = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    now = datetime.now(UTC)
    open_late = {"status": "diproses", "overdue": None, "deadlines": {"follow_up_by": past}}
    assert handlers.is_late(open_late, now)
    assert not handlers.is_late({**open_late, "status": "selesai"}, now)
    assert handlers.is_late({**open_late, "deadlines": {"follow_up_by": None}, "overdue": "verify"}, now)


async def test_live_pages_by_role(site: Site) -> None:
    status, _ = await site.page("/console")
    assert status == 302  # to the login page
    await site.login("adi")
    for path in ("/console", "/wallboard"):
        status, html = await site.page(path)
        assert status == 403 and "Tidak diizinkan" in html
    await site.login("ani")
    status, html = await site.page("/console")
    assert status == 200 and 'id="station-login"' in html and "/static/pages/live.js" in html
    assert 'value="istirahat"' in html  # the pause reasons come from the one table
    assert (await site.page("/wallboard"))[0] == 403  # agents do not watch the wallboard
    status, html = await site.page("/console?lang=en")
    assert status == 200 and "Agent console" in html
