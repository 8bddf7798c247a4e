"""The REST API over a real HTTP server and a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import io
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from aiohttp.test_utils import TestClient, TestServer

from callcenter.auth import service as auth
from callcenter.dispatch import webhook
from callcenter.dispatch.directory import create_agency
from callcenter.dispatch.seed import seed_directory
from callcenter.events import EventBus
from callcenter.storage.database import Database
from callcenter.tickets.service import TicketService
from callcenter.tickets.sla import DEFAULT_CALENDAR, load_calendar
from callcenter.web.app import ApiDeps, create_web_app

ROLES = {
    "agent": ("ani", "agent", None),
    "supervisor": ("sri", "supervisor", None),
    "auditor": ("adi", "auditor", None),
    "admin": ("root", "admin", None),
    "pupr": ("budi", "opd-operator", "PUPR"),
    "dlh": ("citra", "opd-operator", "DLH"),
    "sms": ("sms-gateway", "integration", None),
}


@dataclass
class Api:
    client: TestClient
    tokens: dict[str, str]
    peer_secret: str

    async def call(
        self, method: str, path: str, who: str | None = None, body: object = None, **kwargs: object
    ) -> tuple[int, object]:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"} if who else {}
        headers.update(kwargs.pop("headers", {}))  # type: ignore[call-overload]
        if body is not None:
            kwargs["json"] = body
        async with self.client.request(method, path, headers=headers, **kwargs) as response:  # type: ignore[arg-type]
            if response.content_type == "application/json":
                return response.status, await response.json()
            return response.status, await response.text()


async def no_health() -> dict[str, object]:
    return {"status": "ok"}


@pytest.fixture
async def api(db: Database) -> AsyncIterator[Api]:
    tokens: dict[str, str] = {}
    with db.transaction() as s, s.begin():
        seed_directory(s)
        _, secret = create_agency(s, "KABUPATEN-X", "Pemkab X", "external", "http://127.0.0.1:9/hook")
        for key, (name, role, agency) in ROLES.items():
            user = auth.create_user(s, name, f"password-{name}", role, agency)
            tokens[key] = auth.create_token(s, user, "test")
    service = TicketService(load_calendar(DEFAULT_CALENDAR))
    app = create_web_app(no_health, ApiDeps(db, service, EventBus()))
    async with TestClient(TestServer(app)) as client:
        yield Api(client, tokens, secret or "")


TICKET = {
    "summary": "Lampu jalan mati di Jl. Sudirman",
    "channel": "hotline",
    "category": "PJU",
    "reporter_name": "Wati",
    "reporter_number": "081299990000",
    "district": "Kota",
}


async def create(api: Api, **fields: object) -> dict[str, object]:
    status, body = await api.call("POST", "/api/v1/tickets", "agent", {**TICKET, **fields})
    assert status == 201, body
    assert isinstance(body, dict)
    return body


async def test_create_read_and_work_a_ticket(api: Api) -> None:
    ticket = await create(api)
    number = ticket["number"]
    assert ticket["status"] == "menunggu" and ticket["suggested_agency"] == "PUPR"
    status, body = await api.call("POST", f"/api/v1/tickets/{number}/dispatch", "agent", {"agency": "PUPR"})
    assert status == 200 and body["agency"] == "PUPR"  # type: ignore[index]
    status, body = await api.call("POST", f"/api/v1/tickets/{number}/transitions", "pupr", {"to": "diproses"})
    assert status == 200 and body["status"] == "diproses"  # type: ignore[index]
    status, body = await api.call(
        "POST", f"/api/v1/tickets/{number}/comments", "pupr", {"note": "teknisi dikirim"}
    )
    assert status == 200
    status, body = await api.call(
        "POST", f"/api/v1/tickets/{number}/transitions", "pupr", {"to": "selesai", "note": "lampu diganti"}
    )
    assert status == 200 and body["status"] == "selesai"  # type: ignore[index]
    status, detail = await api.call("GET", f"/api/v1/tickets/{number}", "supervisor")
    assert status == 200
    assert [(e["kind"], e["actor"]) for e in detail["trail"]] == [  # type: ignore[index]
        ("created", "ani"),
        ("dispatched", "ani"),
        ("start", "budi"),
        ("comment", "budi"),
        ("resolve", "budi"),
    ]
    status, body = await api.call("POST", f"/api/v1/tickets/{number}/reviews", "supervisor", {"score": 4})
    assert status == 200


async def test_list_filters(api: Api) -> None:
    first = await create(api)
    await create(api, reporter_number="085600001111", category="SAMPAH")
    status, body = await api.call("GET", "/api/v1/tickets?caller_number=081299990000", "agent")
    assert status == 200 and [t["number"] for t in body["items"]] == [first["number"]]  # type: ignore[index]
    status, body = await api.call("GET", "/api/v1/tickets?status=menunggu&category=SAMPAH", "agent")
    assert [t["category"] for t in body["items"]] == ["SAMPAH"]  # type: ignore[index]
    today = time.strftime("%Y-%m-%d")
    status, body = await api.call("GET", f"/api/v1/tickets?from={today}", "agent")
    assert status == 200 and len(body["items"]) == 2  # type: ignore[index]


async def test_access_control_per_role_and_object(api: Api) -> None:
    ticket = await create(api)
    number = ticket["number"]
    assert (await api.call("GET", f"/api/v1/tickets/{number}"))[0] == 401
    assert (await api.call("GET", "/api/v1/tickets", None, headers={"Authorization": "Bearer cc_nope"}))[
        0
    ] == 401
    # Not dispatched to DLH: DLH's operator cannot tell it exists.
    assert (await api.call("GET", f"/api/v1/tickets/{number}", "dlh"))[0] == 404
    await api.call("POST", f"/api/v1/tickets/{number}/dispatch", "agent", {"agency": "PUPR"})
    assert (await api.call("GET", f"/api/v1/tickets/{number}", "pupr"))[0] == 200
    assert (await api.call("GET", f"/api/v1/tickets/{number}", "dlh"))[0] == 404
    status, body = await api.call("GET", "/api/v1/tickets", "dlh")
    assert status == 200 and body["items"] == []  # type: ignore[index]
    # An auditor reads but never writes.
    assert (await api.call("GET", f"/api/v1/tickets/{number}", "auditor"))[0] == 200
    for path, payload in [
        ("/api/v1/tickets", TICKET),
        (f"/api/v1/tickets/{number}/transitions", {"to": "diproses"}),
        (f"/api/v1/tickets/{number}/comments", {"note": "x"}),
        ("/api/v1/agencies", {"code": "NEW", "name": "x"}),
    ]:
        status, body = await api.call("POST", path, "auditor", payload)
        assert status == 403, (path, body)
    assert (
        await api.call(
            "POST",
            "/api/v1/users",
            "supervisor",
            {"username": "x", "password": "0123456789", "role": "admin"},
        )
    )[0] == 403
    assert (await api.call("GET", "/api/v1/users", "pupr"))[0] == 403
    assert (await api.call("POST", "/api/v1/tickets", "sms", TICKET))[0] == 403


async def test_confidential_reporter_is_hidden_from_opd_and_exports(api: Api) -> None:
    ticket = await create(api, confidential=True, reporter_name="Pelapor Rahasia")
    number = ticket["number"]
    assert ticket["reporter"]["name"] == "Pelapor Rahasia"  # type: ignore[index]
    await api.call("POST", f"/api/v1/tickets/{number}/dispatch", "agent", {"agency": "PUPR"})
    status, body = await api.call("GET", f"/api/v1/tickets/{number}", "pupr")
    assert status == 200 and body["reporter"] == {"hidden": True}  # type: ignore[index]
    assert "Pelapor Rahasia" not in json.dumps(body) and "081299990000" not in json.dumps(body)
    status, csv_text = await api.call("GET", "/api/v1/reports/tickets", "supervisor")
    assert status == 200 and isinstance(csv_text, str)
    assert number in csv_text and "Pelapor Rahasia" not in csv_text


async def test_bad_input_gets_clear_errors_and_changes_nothing(api: Api) -> None:
    cases = [
        ({**TICKET, "colour": "red"}, 422, "colour"),
        ({**TICKET, "confidential": "yes"}, 422, "confidential"),
        ({**TICKET, "channel": "fax"}, 422, "channel"),
        ({**TICKET, "summary": ""}, 422, "summary"),
        ({**TICKET, "category": "NOPE"}, 422, "unknown category"),
        ([1, 2], 422, "(body)"),
    ]
    for body, status, needle in cases:
        got, answer = await api.call("POST", "/api/v1/tickets", "agent", body)
        assert got == status, (body, answer)
        assert needle in json.dumps(answer), answer
        assert set(answer["error"]) == {"status", "code", "message", "details"}  # type: ignore[index]
    headers = {"Authorization": f"Bearer {api.tokens['agent']}", "Content-Type": "application/json"}
    async with api.client.post("/api/v1/tickets", data=b"{not json", headers=headers) as response:
        assert response.status == 400 and (await response.json())["error"]["code"] == "invalid_json"
    async with api.client.post(
        "/api/v1/tickets", data=io.BytesIO(b"x" * (2 * 1024 * 1024)), headers=headers
    ) as response:
        assert response.status == 413
    async with api.client.post(
        "/api/v1/tickets",
        data="summary=x",
        headers={**headers, "Content-Type": "application/x-www-form-urlencoded"},
    ) as response:
        assert response.status == 415
    assert (await api.call("GET", "/api/v1/tickets?limit=100000", "agent"))[0] == 400
    assert (await api.call("GET", "/api/v1/tickets?sort=evil", "agent"))[0] == 400
    assert (await api.call("GET", "/api/v1/tickets/1' OR '1'='1", "agent"))[0] == 404
    status, body = await api.call("GET", "/api/v1/tickets", "agent")
    assert body["items"] == []  # type: ignore[index]


async def test_sql_and_html_in_text_are_stored_as_text(api: Api) -> None:
    evil = "<script>alert(1)</script>'; DROP TABLE tickets; --"
    ticket = await create(api, summary=evil, description=evil, location_text=evil)
    status, body = await api.call("GET", f"/api/v1/tickets/{ticket['number']}", "agent")
    assert status == 200 and body["summary"] == evil and body["description"] == evil  # type: ignore[index]
    assert (await api.call("GET", "/api/v1/tickets", "agent"))[0] == 200


async def test_illegal_transition_is_409(api: Api) -> None:
    number = (await create(api))["number"]
    status, body = await api.call("POST", f"/api/v1/tickets/{number}/transitions", "agent", {"to": "ditolak"})
    assert status == 409 and "needs a reason" in body["error"]["message"]  # type: ignore[index]
    status, body = await api.call("GET", f"/api/v1/tickets/{number}", "agent")
    assert body["status"] == "menunggu" and len(body["trail"]) == 1  # type: ignore[index]


async def test_ticket_during_a_call_is_linked_once(api: Api) -> None:
    call = {"system_name": "pbx-a", "linkedid": "pbx-a-1795440000.7", "caller_number": "081277776666"}
    first = await create(api, call=call, reporter_number="")
    status, again = await api.call("POST", "/api/v1/tickets", "agent", {**TICKET, "call": call})
    assert status == 200 and again["number"] == first["number"]  # type: ignore[index]
    status, detail = await api.call("GET", f"/api/v1/tickets/{first['number']}", "agent")
    assert [c["linkedid"] for c in detail["calls"]] == [call["linkedid"]]  # type: ignore[index]
    assert detail["reporter"]["number"] == "081277776666"  # type: ignore[index]


async def test_inbound_api_no_wrong_door(api: Api) -> None:
    report = {
        "external_id": "SMS-2026-0042",
        "summary": "Banjir setinggi lutut",
        "channel": "sms",
        "category": "BENCANA",
        "reporter_number": "081355550000",
    }
    status, first = await api.call("POST", "/api/v1/inbound/tickets", "sms", report)
    assert status == 201 and first["channel"] == "sms"  # type: ignore[index]
    status, again = await api.call("POST", "/api/v1/inbound/tickets", "sms", report)
    assert status == 200 and again["number"] == first["number"]  # type: ignore[index]
    assert (await api.call("POST", "/api/v1/inbound/tickets", "agent", report))[0] == 403


async def test_inbound_forwarded_needs_a_valid_signature(api: Api) -> None:
    payload = json.dumps(
        {"source_ticket": "2026000777", "summary": "Pohon tumbang", "reporter": {"hidden": True}}
    )
    raw = payload.encode()
    stamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        webhook.SOURCE_HEADER: "KABUPATEN-X",
        webhook.TIMESTAMP_HEADER: stamp,
        webhook.SIGNATURE_HEADER: webhook.sign(api.peer_secret, stamp, raw),
        webhook.IDEMPOTENCY_HEADER: "2026000777-PROV",
    }
    async with api.client.post("/api/v1/inbound/forwarded", data=raw, headers=headers) as response:
        assert response.status == 201, await response.text()
        body = await response.json()
        assert body["channel"] == "forwarded" and body["confidential"] is True
    async with api.client.post("/api/v1/inbound/forwarded", data=raw, headers=headers) as response:
        assert response.status == 200 and (await response.json())["number"] == body["number"]
    forged = {**headers, webhook.SIGNATURE_HEADER: "sha256=" + "0" * 64}
    async with api.client.post("/api/v1/inbound/forwarded", data=raw, headers=forged) as response:
        assert response.status == 401


async def test_openapi_document(api: Api) -> None:
    status, doc = await api.call("GET", "/api/v1/openapi.json")
    assert status == 200 and isinstance(doc, dict)
    assert doc["openapi"].startswith("3.")
    assert {"/api/v1/tickets", "/api/v1/tickets/{number}/transitions", "/api/v1/inbound/tickets"} <= set(
        doc["paths"]
    )
    assert doc["components"]["schemas"]["TicketCreate"]["additionalProperties"] is False


async def test_session_login_for_the_web_ui(api: Api) -> None:
    async with api.client.post("/api/v1/session", json={"username": "budi", "password": "wrong"}) as response:
        assert response.status == 401
    async with api.client.post(
        "/api/v1/session", json={"username": "budi", "password": "password-budi"}
    ) as response:
        assert response.status == 200
        assert (
            "HttpOnly" in response.headers["Set-Cookie"]
            and "SameSite=Strict" in response.headers["Set-Cookie"]
        )
    async with api.client.get("/api/v1/me") as response:
        me = await response.json()
        assert me["role"] == "opd-operator" and me["agency"] == "PUPR"
    async with api.client.delete("/api/v1/session") as response:
        assert response.status == 200
    async with api.client.get("/api/v1/me") as response:
        assert response.status == 401
