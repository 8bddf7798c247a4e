"""The audit log in the REST API, for auditors and administrators (``AUDIT_READ``).

- ``GET /api/v1/audit/entries``: entries newest first, by actor, action and object.
- ``GET /api/v1/audit/verify``: the hash chain checked now, as ``callcenter audit verify --json``.

Reading the log is not itself logged (it would grow with every look); changing it is impossible
through the API.
"""

from __future__ import annotations

import json
from typing import Annotated

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy.orm import Session

from callcenter.audit import log as audit
from callcenter.audit.models import AuditEntry
from callcenter.auth.roles import Permission as P
from callcenter.web.api.framework import DATABASE, QUERY, Route, json_ok
from callcenter.web.api.views import iso

MAX_LIMIT = 200
Name = Annotated[str, StringConstraints(max_length=100, pattern=r"^[A-Za-z0-9_.@:-]*$")]


class EntryQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    actor: Name = ""
    action: Annotated[str, StringConstraints(max_length=64, pattern=r"^[a-z0-9_.]*$")] = ""
    object_kind: Annotated[str, StringConstraints(max_length=32, pattern=r"^[a-z0-9_]*$")] = ""
    object_id: Annotated[str, StringConstraints(max_length=64, pattern=r"^[A-Za-z0-9_.:-]*$")] = ""
    limit: Annotated[int, Field(ge=1, le=MAX_LIMIT)] = 50
    offset: Annotated[int, Field(ge=0, le=10_000_000)] = 0

    def wanted(self) -> audit.EntryFilter:
        return audit.EntryFilter(self.actor, self.action, self.object_kind, self.object_id)


def entry_json(entry: AuditEntry) -> dict[str, object]:
    return {
        "seq": entry.seq,
        "at": iso(entry.at),
        "actor": entry.actor,
        "action": entry.action,
        "object_kind": entry.object_kind,
        "object_id": entry.object_id,
        "detail": json.loads(entry.detail),
        "hash": entry.hash,
    }


def chain_json(session: Session) -> dict[str, object]:
    problems = audit.verify(session)
    last = audit.head(session)
    return {
        "ok": not problems,
        "entries": last.entries,
        "head": {"seq": last.seq, "hash": last.hash},
        "problems": [p.as_dict() for p in problems],
    }


async def list_entries(request: web.Request) -> web.Response:
    query: EntryQuery = request[QUERY]

    def work(session: Session) -> list[dict[str, object]]:
        found = audit.entries(session, query.wanted(), limit=query.limit, offset=query.offset)
        return [entry_json(e) for e in found]

    items = await request.app[DATABASE].run(work)
    return json_ok({"items": items, "limit": query.limit, "offset": query.offset})


async def verify_chain(request: web.Request) -> web.Response:
    return json_ok(await request.app[DATABASE].run(chain_json))


AUDIT_ROUTES: list[Route] = [
    Route("GET", "/api/v1/audit/entries", list_entries, "The audit log, newest first", "audit",
          P.AUDIT_READ, query=EntryQuery),
    Route("GET", "/api/v1/audit/verify", verify_chain, "Check the audit log's hash chain now", "audit",
          P.AUDIT_READ),
]  # fmt: skip
