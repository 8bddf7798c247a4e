"""The 112 desk in the REST API (call classification, prank-caller blocks, blocked attempts) over a
real HTTP server and a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from callcenter.auth import service as auth
from callcenter.calls.blocks import active_block, log_blocked_attempt
from callcenter.calls.models import CallClassification, CallerBlock
from callcenter.calls.records import CallRecord
from callcenter.dispatch.seed import seed_directory
from callcenter.events import EventBus
from callcenter.storage.base import utcnow
from callcenter.storage.database import Database
from callcenter.tickets.service import TicketService
from callcenter.tickets.sla import DEFAULT_CALENDAR, load_calendar
from callcenter.web.app import ApiDeps, create_web_app

ROLES = {
    "agent": ("ani", "agent", None),
    "supervisor": ("sri", "supervisor", None),
    "admin": ("root", "admin", None),
    "auditor": ("adi", "auditor", None),
    "pupr": ("budi", "opd-operator", "PUPR"),
    "sms": ("sms-gateway", "integration", None),
}
ALLOWED = ("agent", "supervisor", "admin")
REFUSED = ("auditor", "pupr", "sms")
PRANKSTER = "081200000002"
CLASSIFY = "/api/v1/calls/pbx/1795000000.7/classification"


@dataclass
class Api:
    client: TestClient[Any, Any]
    tokens: dict[str, str]
    db: Database

    async def call(
        self, method: str, path: str, who: str | None = None, body: object = None, **kwargs: Any
    ) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"} if who else {}
        headers.update(kwargs.pop("headers", {}))
        if body is not None:
            kwargs["json"] = body
        async with self.client.request(method, path, headers=headers, **kwargs) as response:
            assert response.content_type == "application/json"
            return response.status, await response.json()


async def _healthy() -> dict[str, object]:
    return {"status": "ok"}


@pytest.fixture
async def api(db: Database) -> AsyncIterator[Api]:
    tokens: dict[str, str] = {}
    with db.transaction() as s, s.begin():
        seed_directory(s)
        for key, (name, role, agency) in ROLES.items():
            user = auth.create_user(s, name, f"password-{name}", role, agency)
            tokens[key] = auth.create_token(s, user, "test")
    app = create_web_app(_healthy, ApiDeps(db, TicketService(load_calendar(DEFAULT_CALENDAR)), EventBus()))
    async with TestClient(TestServer(app)) as client:
        yield Api(client, tokens, db)


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value)


# ---- who may ---------------------------------------------------------------------------------
ENDPOINTS = [
    ("POST", CLASSIFY, {"code": "iseng"}),
    ("GET", "/api/v1/blocks", None),
    ("POST", "/api/v1/blocks", {"number": PRANKSTER, "reason": "iseng"}),
    ("POST", "/api/v1/blocks/1/lift", None),
    ("GET", f"/api/v1/blocks/{PRANKSTER}/attempts", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
async def test_auditors_opd_operators_and_integrations_are_refused(
    api: Api, method: str, path: str, body: object
) -> None:
    status, payload = await api.call(method, path, None, body)
    assert status == 401 and payload["error"]["code"] == "unauthenticated"
    for who in REFUSED:
        status, payload = await api.call(method, path, who, body)
        assert status == 403 and payload["error"]["code"] == "forbidden", who
    with api.db.transaction() as s:
        assert s.scalars(select(CallerBlock)).all() == []
        assert s.scalars(select(CallClassification)).all() == []


async def test_agents_supervisors_and_admins_may_block_and_classify(api: Api) -> None:
    for who in ALLOWED:
        status, block = await api.call("POST", "/api/v1/blocks", who, {"number": PRANKSTER, "reason": who})
        assert status == 201 and block["blocked_by"] == ROLES[who][0]
        assert (await api.call("GET", "/api/v1/blocks", who))[0] == 200
        assert (await api.call("GET", f"/api/v1/blocks/{PRANKSTER}/attempts", who))[0] == 200
        status, judged = await api.call("POST", CLASSIFY, who, {"code": "iseng"})
        assert status == 200 and judged["classified_by"] == ROLES[who][0]
    status, lifted = await api.call("POST", f"/api/v1/blocks/{block['id']}/lift", "agent")
    assert status == 200 and lifted["lifted_by"] == "ani" and not lifted["active"]


# ---- blocks ----------------------------------------------------------------------------------
async def test_a_block_lasts_24_hours_unless_said_and_is_what_the_ivr_sees(api: Api) -> None:
    before = utcnow()
    status, block = await api.call(
        "POST", "/api/v1/blocks", "supervisor", {"number": PRANKSTER, "reason": "tiga panggilan iseng"}
    )
    assert status == 201
    assert block["number"] == PRANKSTER and block["reason"] == "tiga panggilan iseng" and block["active"]
    assert block["expires_at"] and _time(block["expires_at"]) - _time(block["created_at"]) == timedelta(
        hours=24
    )
    assert before <= _time(block["created_at"]) <= utcnow()
    assert block["lifted_at"] is None and block["replaced_by"] is None
    with api.db.transaction() as s:
        found = active_block(s, PRANKSTER, utcnow())
        assert found is not None and found.id == block["id"]
    status, listed = await api.call("GET", "/api/v1/blocks", "agent")
    assert status == 200 and [b["id"] for b in listed["items"]] == [block["id"]]


async def test_hours_are_configurable_and_bounded(api: Api) -> None:
    status, block = await api.call(
        "POST", "/api/v1/blocks", "agent", {"number": "+6281234567890", "reason": "iseng", "hours": 2}
    )
    assert status == 201 and _time(block["expires_at"]) - _time(block["created_at"]) == timedelta(hours=2)
    status, block = await api.call(
        "POST", "/api/v1/blocks", "agent", {"number": "0811", "reason": "iseng", "hours": 0.5}
    )
    assert status == 201
    for hours in (0, -1, 24 * 366 + 1, "24", True, None, 1e308):
        status, payload = await api.call(
            "POST", "/api/v1/blocks", "agent", {"number": PRANKSTER, "reason": "x", "hours": hours}
        )
        assert status == 422 and payload["error"]["details"][0]["field"] == "hours", hours


@pytest.mark.parametrize(
    "body",
    [
        {"number": "0812-0000-0002", "reason": "iseng"},
        {"number": "anonymous", "reason": "iseng"},
        {"number": "' OR '1'='1", "reason": "iseng"},
        {"number": "", "reason": "iseng"},
        {"number": "1" * 33, "reason": "iseng"},
        {"number": PRANKSTER},
        {"number": PRANKSTER, "reason": "   "},
        {"number": PRANKSTER, "reason": "x" * 501},
        {"number": PRANKSTER, "reason": "iseng\x00"},
        {"number": PRANKSTER, "reason": "iseng", "blocked_by": "root"},
        {"number": 81200000002, "reason": "iseng"},
        [PRANKSTER],
    ],
)
async def test_bad_blocks_are_refused(api: Api, body: object) -> None:
    status, payload = await api.call("POST", "/api/v1/blocks", "agent", body)
    assert status == 422 and payload["error"]["code"] == "invalid_input"
    with api.db.transaction() as s:
        assert s.scalars(select(CallerBlock)).all() == []


async def test_a_body_that_is_not_json_is_refused(api: Api) -> None:
    status, payload = await api.call("POST", "/api/v1/blocks", "agent", data=b"number=0812")
    assert status == 415
    status, payload = await api.call(
        "POST", "/api/v1/blocks", "agent", data=b"{nope", headers={"Content-Type": "application/json"}
    )
    assert status == 400 and payload["error"]["code"] == "invalid_json"


async def test_blocking_again_replaces_and_the_trail_is_kept(api: Api) -> None:
    _, first = await api.call("POST", "/api/v1/blocks", "agent", {"number": PRANKSTER, "reason": "satu"})
    _, second = await api.call(
        "POST", "/api/v1/blocks", "supervisor", {"number": PRANKSTER, "reason": "dua", "hours": 48}
    )
    _, active = await api.call("GET", "/api/v1/blocks", "agent")
    assert [(b["id"], b["reason"], b["blocked_by"]) for b in active["items"]] == [
        (second["id"], "dua", "sri")
    ]
    _, trail = await api.call("GET", "/api/v1/blocks?include_expired=true", "agent")
    assert [b["id"] for b in trail["items"]] == [second["id"], first["id"]]
    old = trail["items"][1]
    assert old["replaced_by"] == second["id"] and old["lifted_by"] == "sri" and not old["active"]
    _, limited = await api.call("GET", "/api/v1/blocks?include_expired=true&limit=1", "agent")
    assert [b["id"] for b in limited["items"]] == [second["id"]]


async def test_lifting(api: Api) -> None:
    _, block = await api.call("POST", "/api/v1/blocks", "agent", {"number": PRANKSTER, "reason": "iseng"})
    status, lifted = await api.call("POST", f"/api/v1/blocks/{block['id']}/lift", "supervisor")
    assert status == 200 and lifted["lifted_by"] == "sri" and lifted["lifted_at"] and not lifted["active"]
    assert (await api.call("GET", "/api/v1/blocks", "agent"))[1]["items"] == []
    with api.db.transaction() as s:
        assert active_block(s, PRANKSTER, utcnow()) is None
    status, payload = await api.call("POST", f"/api/v1/blocks/{block['id']}/lift", "supervisor")
    assert status == 409 and payload["error"]["code"] == "conflict"
    for missing in ("999999", "abc", "1" * 13, "-1"):
        status, payload = await api.call("POST", f"/api/v1/blocks/{missing}/lift", "agent")
        assert status == 404 and payload["error"]["code"] == "not_found", missing


@pytest.mark.parametrize(
    "query", ["include_expired=maybe", "limit=0", "limit=501", "limit=x", "color=red", "limit=1&limit=2"]
)
async def test_bad_list_queries_are_refused(api: Api, query: str) -> None:
    status, payload = await api.call("GET", f"/api/v1/blocks?{query}", "agent")
    assert status == 400 and payload["error"]["code"] == "invalid_query"


# ---- blocked attempts ------------------------------------------------------------------------
async def test_the_calls_a_blocked_number_made_are_listed(api: Api) -> None:
    _, block = await api.call("POST", "/api/v1/blocks", "agent", {"number": PRANKSTER, "reason": "iseng"})
    with api.db.transaction() as s, s.begin():
        row = s.get(CallerBlock, block["id"])
        assert row is not None
        for n in (1, 2):
            log_blocked_attempt(s, row, "pbx", f"1795000000.{n}", utcnow() + timedelta(seconds=n))
    status, listed = await api.call("GET", f"/api/v1/blocks/{PRANKSTER}/attempts", "agent")
    assert status == 200 and listed["number"] == PRANKSTER
    assert [(a["linkedid"], a["system_name"], a["block_id"]) for a in listed["items"]] == [
        ("1795000000.2", "pbx", block["id"]),
        ("1795000000.1", "pbx", block["id"]),
    ]
    _, one = await api.call("GET", f"/api/v1/blocks/{PRANKSTER}/attempts?limit=1", "agent")
    assert len(one["items"]) == 1
    _, none = await api.call("GET", "/api/v1/blocks/0811/attempts", "agent")
    assert none["items"] == []
    # A '+' number travels escaped or not.
    assert (await api.call("GET", "/api/v1/blocks/%2B6281/attempts", "agent"))[1]["number"] == "+6281"


@pytest.mark.parametrize("number", ["anonymous", "0812-34", "%27%20OR%201%3D1", "1" * 40])
async def test_attempts_of_a_bad_number_are_refused(api: Api, number: str) -> None:
    status, payload = await api.call("GET", f"/api/v1/blocks/{number}/attempts", "agent")
    assert status == 422 and payload["error"]["details"][0]["field"] == "number"


# ---- classification --------------------------------------------------------------------------
async def test_classify_a_call_and_classify_again(api: Api) -> None:
    status, judged = await api.call(
        "POST", CLASSIFY, "agent", {"code": "iseng", "note": "tertawa lalu tutup"}
    )
    assert status == 200
    assert judged["system_name"] == "pbx" and judged["linkedid"] == "1795000000.7"
    assert judged["code"] == "iseng" and judged["label"] == "prank call" and not judged["counts_for_kpi"]
    assert judged["note"] == "tertawa lalu tutup" and judged["classified_by"] == "ani"
    status, judged = await api.call("POST", CLASSIFY, "supervisor", {"code": "darurat"})
    assert status == 200 and judged["counts_for_kpi"] and judged["classified_by"] == "sri"
    with api.db.transaction() as s:
        call = s.scalars(select(CallRecord).where(CallRecord.linkedid == "1795000000.7")).one()
        rows = s.scalars(select(CallClassification)).all()
        assert [(r.call_id, r.code, r.note) for r in rows] == [(call.id, "darurat", "")]


@pytest.mark.parametrize(
    "body",
    [
        {"code": "spam"},
        {"code": "ISENG"},
        {},
        {"code": "iseng", "note": "x" * 501},
        {"code": "iseng", "note": "a\x00b"},
        {"code": "iseng", "extra": 1},
        {"code": ["iseng"]},
    ],
)
async def test_bad_classifications_are_refused(api: Api, body: object) -> None:
    status, payload = await api.call("POST", CLASSIFY, "agent", body)
    assert status == 422 and payload["error"]["code"] == "invalid_input"


@pytest.mark.parametrize(
    ("system_name", "linkedid", "field"),
    [
        ("pbx", "a%20b", "linkedid"),
        ("pbx", "1" * 81, "linkedid"),
        ("pbx", "%27%3B--", "linkedid"),
        ("p%20bx", "1795000000.7", "system_name"),
        ("x" * 41, "1795000000.7", "system_name"),
    ],
)
async def test_bad_call_keys_are_refused(api: Api, system_name: str, linkedid: str, field: str) -> None:
    path = f"/api/v1/calls/{system_name}/{linkedid}/classification"
    status, payload = await api.call("POST", path, "agent", {"code": "iseng"})
    assert status == 422 and payload["error"]["details"][0]["field"] == field
    with api.db.transaction() as s:
        assert s.scalars(select(CallRecord)).all() == []
