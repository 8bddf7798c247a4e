"""The small framework under the REST API: a route table, authentication, JSON bodies and errors.

Every route is declared once in a table (method, path, who may call it, body model); the same
table registers the aiohttp routes and produces ``/api/v1/openapi.json``. Every error leaves as
``{"error": {"status", "code", "message", "details"}}``; nothing unexpected leaks a traceback.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError
from sqlalchemy.exc import SQLAlchemyError

from callcenter.ami.connection import AmiError
from callcenter.auth import service as auth
from callcenter.auth.actor import Actor
from callcenter.auth.roles import Permission
from callcenter.auth.throttle import LoginThrottle
from callcenter.errors import Conflict, Forbidden, Gone, InvalidInput, NotFound
from callcenter.storage.database import Database

log = logging.getLogger(__name__)

SESSION_COOKIE = "cc_session"
MAX_BODY = 256 * 1024
TOKEN_CACHE_SECONDS = 30.0

DATABASE: web.AppKey[Database] = web.AppKey("database", Database)
ACTOR: web.RequestKey[Actor] = web.RequestKey("actor", Actor)
# The parsed body and query: their model depends on the route, handlers know which.
BODY: web.RequestKey[Any] = web.RequestKey("body")
QUERY: web.RequestKey[Any] = web.RequestKey("query")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    permission: Permission | None = None
    # token: a logged-in user or API token; none: public; signature: HMAC-signed by a peer.
    auth: Literal["token", "none", "signature"] = "token"
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    ok_status: int = 200
    produces_csv: bool = False
    produces_audio: bool = False  # audio/wav with HTTP range requests (206, 416)
    path_params: tuple[str, ...] = field(default=())
    # More documented answers: (status, description).
    responses: tuple[tuple[int, str], ...] = field(default=())


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, details: object = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details


def error_response(status: int, code: str, message: str, details: object = None) -> web.Response:
    payload = {"error": {"status": status, "code": code, "message": message, "details": details}}
    return web.json_response(payload, status=status)


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.code, exc.message, exc.details)
    except InvalidInput as exc:
        return error_response(422, "invalid_input", str(exc), [{"field": exc.field, "message": exc.message}])
    except NotFound as exc:
        return error_response(404, "not_found", str(exc))
    except Forbidden as exc:
        return error_response(403, "forbidden", str(exc))
    except Conflict as exc:
        return error_response(409, "conflict", str(exc))
    except Gone as exc:
        return error_response(410, "gone", str(exc))
    except web.HTTPRequestEntityTooLarge:
        return error_response(413, "too_large", f"request body larger than {MAX_BODY} bytes")
    except web.HTTPException as exc:
        if exc.status >= 400 and request.path.startswith("/api/"):
            return error_response(exc.status, exc.reason.lower().replace(" ", "_"), exc.reason)
        raise
    except AmiError as exc:
        log.warning("telephony unavailable on %s %s: %s", request.method, request.path, exc)
        return error_response(503, "telephony_unavailable", f"Asterisk did not answer: {exc}")
    except SQLAlchemyError:
        log.exception("database error on %s %s", request.method, request.path)
        return error_response(503, "database_unavailable", "the database did not answer; try again")
    except Exception:
        log.exception("unexpected error on %s %s", request.method, request.path)
        return error_response(500, "internal_error", "unexpected error; it has been logged")


class ActorCache:
    """API tokens resolved recently, so a busy integration does not cost a lookup per request.
    A revoked token stops working within TOKEN_CACHE_SECONDS."""

    def __init__(self, ttl: float = TOKEN_CACHE_SECONDS, limit: int = 10_000) -> None:
        self.ttl, self.limit = ttl, limit
        self._entries: dict[str, tuple[float, Actor]] = {}

    def get(self, token: str) -> Actor | None:
        entry = self._entries.get(token)
        if entry is None or entry[0] < time.monotonic():
            self._entries.pop(token, None)
            return None
        return entry[1]

    def put(self, token: str, actor: Actor) -> None:
        if len(self._entries) >= self.limit:
            self._entries.clear()
        self._entries[token] = (time.monotonic() + self.ttl, actor)


ACTORS: web.AppKey[ActorCache] = web.AppKey("actors", ActorCache)
LOGIN_THROTTLE: web.AppKey[LoginThrottle] = web.AppKey("login_throttle", LoginThrottle)


async def resolve_actor(request: web.Request) -> Actor | None:
    db = request.app[DATABASE]
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise ApiError(401, "unauthenticated", "Authorization must be 'Bearer <token>'")
        cache = request.app[ACTORS]
        actor = cache.get(token)
        if actor is None:
            actor = await db.run(lambda s: auth.actor_for_token(s, token))
            if actor is not None:
                cache.put(token, actor)
        return actor
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        return await db.run(lambda s: auth.actor_for_session(s, cookie))
    return None


def actor(request: web.Request) -> Actor:
    found: Actor | None = request.get(ACTOR)
    if found is None:
        raise ApiError(401, "unauthenticated", "log in or send an API token")
    return found


def wrap(route: Route) -> Handler:
    """Authentication, permission and body parsing around a handler, per its table entry."""

    async def handle(request: web.Request) -> web.StreamResponse:
        if route.auth == "token":
            who = await resolve_actor(request)
            if who is None:
                raise ApiError(401, "unauthenticated", "log in or send an API token")
            if route.permission is not None and not who.can(route.permission):
                raise ApiError(403, "forbidden", f"role '{who.role}' may not do this")
            request[ACTOR] = who
        if route.query is not None:
            request[QUERY] = parse_query(request, route.query)
        if route.body is not None:
            request[BODY] = await parse_body(request, route.body)
        return await route.handler(request)

    return handle


async def read_json(request: web.Request) -> Any:
    if request.content_type != "application/json":
        # Also what keeps cookie-authenticated writes safe from cross-site forms (no CORS here).
        raise ApiError(415, "unsupported_media_type", "send the body as application/json")
    raw = await request.read()
    if len(raw) > MAX_BODY:
        raise ApiError(413, "too_large", f"request body larger than {MAX_BODY} bytes")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "invalid_json", f"body is not valid JSON: {exc}") from None


async def parse_body(request: web.Request, model: type[M]) -> M:
    data = await read_json(request)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ApiError(422, "invalid_input", "the body does not match the schema", _details(exc)) from None


def parse_query(request: web.Request, model: type[M]) -> M:
    query = request.query
    if any(len(query.getall(key)) > 1 for key in query):
        raise ApiError(400, "invalid_query", "each query parameter may be given once")
    try:
        return model.model_validate(dict(query))
    except ValidationError as exc:
        raise ApiError(400, "invalid_query", "the query parameters are not valid", _details(exc)) from None


def _details(exc: ValidationError) -> list[dict[str, str]]:
    return [
        {"field": ".".join(str(p) for p in err["loc"]) or "(body)", "message": err["msg"]}
        for err in exc.errors(include_url=False, include_input=False)
    ]


def register(app: web.Application, routes: list[Route]) -> None:
    seen: set[tuple[str, str]] = set()
    for route in routes:
        key = (route.method, route.path)
        if key in seen:
            raise ValueError(f"duplicate API route {route.method} {route.path}")
        seen.add(key)
        app.router.add_route(route.method, route.path, wrap(route))


def json_ok(payload: object, status: int = 200) -> web.Response:
    return web.json_response(payload, status=status, dumps=lambda o: json.dumps(o, default=str))
