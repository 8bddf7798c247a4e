"""The 112 desk in the REST API: how an agent classifies a call, and blocks of prank callers.

A block placed here is what the IVR checks at the start of the next 112 or hotline call from that
number (``ivr/blocking.py``): the caller hears a warning, is logged, and may still press 9 to
reach an operator. Agents, supervisors and administrators may do all of this (``CALL_CLASSIFY``,
``CALLER_BLOCK``); auditors, OPD operators and integrations may not.

Path parameters are attacker input: they are checked against the same patterns as the bodies
and never echoed back unbounded.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from callcenter.auth.models import User
from callcenter.auth.roles import Permission as P
from callcenter.calls import blocks
from callcenter.calls.models import BlockedAttempt, CallClassification, CallerBlock
from callcenter.errors import InvalidInput
from callcenter.storage.base import utcnow
from callcenter.web.api import schemas
from callcenter.web.api.framework import BODY, DATABASE, QUERY, ApiError, Route, actor, json_ok

# As schemas.CallRef: the call key as the AMI reports it.
_SYSTEM_NAME = re.compile(r"[A-Za-z0-9_-]{1,40}")
_LINKEDID = re.compile(r"[A-Za-z0-9_.-]{1,80}")


class BlockQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    include_expired: bool = False
    limit: Annotated[int, Field(ge=1, le=500)] = 200


class AttemptQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    limit: Annotated[int, Field(ge=1, le=500)] = 100


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


class _Names:
    """User names by id, loaded once per request."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.cache: dict[int, str] = {}

    def __call__(self, user_id: int | None) -> str | None:
        if user_id is None:
            return None
        if user_id not in self.cache:
            self.cache[user_id] = self.session.scalar(select(User.username).where(User.id == user_id)) or ""
        return self.cache[user_id] or None


def block_json(block: CallerBlock, names: _Names, now: datetime) -> dict[str, object]:
    active = block.lifted_at is None and block.created_at <= now < block.expires_at
    return {
        "id": block.id,
        "number": block.number,
        "reason": block.reason,
        "blocked_by": names(block.blocked_by_id),
        "created_at": _iso(block.created_at),
        "expires_at": _iso(block.expires_at),
        "active": active,
        "lifted_at": _iso(block.lifted_at),
        "lifted_by": names(block.lifted_by_id),
        "replaced_by": block.replaced_by_id,
    }


def attempt_json(attempt: BlockedAttempt) -> dict[str, object]:
    return {
        "id": attempt.id,
        "number": attempt.number,
        "system_name": attempt.system_name,
        "linkedid": attempt.linkedid,
        "at": _iso(attempt.at),
        "block_id": attempt.block_id,
    }


def classification_json(
    system_name: str, linkedid: str, row: CallClassification, names: _Names
) -> dict[str, object]:
    return {
        "system_name": system_name,
        "linkedid": linkedid,
        "code": row.code,
        "label": blocks.CLASSIFICATIONS[row.code],
        "counts_for_kpi": row.code not in blocks.KPI_EXCLUDED,
        "note": row.note,
        "classified_by": names(row.classified_by_id),
        "classified_at": _iso(row.classified_at),
    }


def _call_key(request: web.Request) -> tuple[str, str]:
    system_name, linkedid = request.match_info["system_name"], request.match_info["linkedid"]
    if not _SYSTEM_NAME.fullmatch(system_name):
        raise InvalidInput("system_name", "use 1-40 letters, digits, '_' or '-'")
    if not _LINKEDID.fullmatch(linkedid):
        raise InvalidInput("linkedid", "use 1-80 letters, digits, '_', '.' or '-'")
    return system_name, linkedid


def _block_id(request: web.Request) -> int:
    raw = request.match_info["id"]
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 12:
        raise ApiError(404, "not_found", f"block {raw[:20]} not found")
    return int(raw)


# ---- classification --------------------------------------------------------------------------
async def classify(request: web.Request) -> web.Response:
    who, body = actor(request), request[BODY]
    system_name, linkedid = _call_key(request)

    def work(session: Session) -> dict[str, object]:
        row = blocks.classify_call(session, system_name, linkedid, body.code, who, body.note, now=utcnow())
        return classification_json(system_name, linkedid, row, _Names(session))

    return json_ok(await request.app[DATABASE].run(work))


# ---- blocks ----------------------------------------------------------------------------------
async def list_blocks(request: web.Request) -> web.Response:
    query = request[QUERY]
    now = utcnow()

    def work(session: Session) -> list[dict[str, object]]:
        names = _Names(session)
        rows = blocks.list_blocks(session, now, query.include_expired, limit=query.limit)
        return [block_json(b, names, now) for b in rows]

    return json_ok({"items": await request.app[DATABASE].run(work)})


async def create_block(request: web.Request) -> web.Response:
    who, body = actor(request), request[BODY]
    now = utcnow()

    def work(session: Session) -> dict[str, object]:
        block = blocks.block_caller(session, body.number, body.reason, who, now, body.hours)
        return block_json(block, _Names(session), now)

    return json_ok(await request.app[DATABASE].run(work), status=201)


async def lift_block(request: web.Request) -> web.Response:
    who, block_id = actor(request), _block_id(request)
    now = utcnow()

    def work(session: Session) -> dict[str, object]:
        return block_json(blocks.lift_block(session, block_id, who, now), _Names(session), now)

    return json_ok(await request.app[DATABASE].run(work))


async def blocked_attempts(request: web.Request) -> web.Response:
    query = request[QUERY]
    number = blocks.normalize_number(request.match_info["number"])

    def work(session: Session) -> list[dict[str, object]]:
        return [attempt_json(a) for a in blocks.blocked_attempts(session, number, limit=query.limit)]

    return json_ok({"number": number, "items": await request.app[DATABASE].run(work)})


B = "/api/v1/blocks"
CALL_ROUTES: list[Route] = [
    Route("POST", "/api/v1/calls/{system_name}/{linkedid}/classification", classify,
          "Classify a call (darurat, informasi, iseng, hantu)", "calls", P.CALL_CLASSIFY,
          body=schemas.CallClassify, path_params=("system_name", "linkedid")),
    Route("GET", B, list_blocks, "Blocked prank callers (active, or with include_expired the trail)",
          "blocks", P.CALLER_BLOCK, query=BlockQuery),
    Route("POST", B, create_block, "Block a prank caller (24 hours unless said)", "blocks",
          P.CALLER_BLOCK, body=schemas.BlockCreate, ok_status=201),
    Route("POST", B + "/{id}/lift", lift_block, "Lift a block before it expires", "blocks",
          P.CALLER_BLOCK, path_params=("id",)),
    Route("GET", B + "/{number}/attempts", blocked_attempts, "Calls a number made while blocked",
          "blocks", P.CALLER_BLOCK, query=AttemptQuery, path_params=("number",)),
]  # fmt: skip
