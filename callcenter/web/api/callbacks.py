"""The callback list in the REST API: dropped or abandoned 112 calls, called back from the agent
console (AMI Originate through the agent's station) with the outcome recorded."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy.orm import Session

from callcenter.auth.roles import Permission as P
from callcenter.calls import callbacks
from callcenter.calls.models import Callback
from callcenter.storage.base import utcnow
from callcenter.web.api import schemas
from callcenter.web.api.agents import agent_station, live_deps
from callcenter.web.api.framework import BODY, DATABASE, ApiError, Route, actor, json_ok


def callback_json(callback: Callback) -> dict[str, object]:
    return {
        "id": callback.id,
        "number": callback.number,
        "queue": callback.queue,
        "reason": callback.reason,
        "status": callback.status,
        "created_at": callback.created_at.isoformat(),
        "attempts": callback.attempts,
        "calling_now": callback.attempt_open,
        "last_outcome": callback.last_outcome or None,
        "last_note": callback.last_note,
    }


def callback_id(request: web.Request) -> int:
    raw = request.match_info["id"]
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 12:
        raise ApiError(404, "not_found", f"callback {raw[:20]} not found")
    return int(raw)


async def list_callbacks(request: web.Request) -> web.Response:
    def work(session: Session) -> list[dict[str, object]]:
        return [callback_json(c) for c in callbacks.open_callbacks(session)]

    return json_ok({"items": await request.app[DATABASE].run(work)})


async def place_callback(request: web.Request) -> web.Response:
    """Start an attempt and ring the agent's station; Asterisk dials the citizen on answer."""
    who, number = actor(request), callback_id(request)
    live = live_deps(request)
    station = await agent_station(request)
    db = request.app[DATABASE]
    started = await db.run(lambda s: callback_json(callbacks.start_attempt(s, number, who, utcnow())))
    try:
        await live.stations.call_back(station, str(started["number"]), number)
    except Exception as exc:
        # The call never left: close the attempt so the callback is not stuck as "calling now".
        note = f"panggilan tidak dapat dibuat: {str(exc)[:200]}"
        await db.run(lambda s: callbacks.record_outcome(s, number, callbacks.NO_ANSWER, who, utcnow(), note))
        raise
    return json_ok(started)


async def callback_outcome(request: web.Request) -> web.Response:
    who, number, body = actor(request), callback_id(request), request[BODY]

    def work(session: Session) -> dict[str, object]:
        return callback_json(
            callbacks.record_outcome(session, number, body.outcome, who, utcnow(), body.note)
        )

    return json_ok(await request.app[DATABASE].run(work))


C = "/api/v1/callbacks"
CALLBACK_ROUTES: list[Route] = [
    Route("GET", C, list_callbacks, "Callers waiting to be called back", "callbacks", P.CALLBACK_PLACE),
    Route("POST", C + "/{id}/attempts", place_callback, "Call back now from my station", "callbacks",
          P.CALLBACK_PLACE, path_params=("id",)),
    Route("POST", C + "/{id}/outcome", callback_outcome, "Record how the callback ended", "callbacks",
          P.CALLBACK_PLACE, body=schemas.CallbackOutcome, path_params=("id",)),
]  # fmt: skip
