"""REST API v1: the route table and its handlers.

Handlers are thin: they take the parsed body, call the domain service inside one database
transaction on an executor thread, and shape the answer with ``views``.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from datetime import UTC, date, datetime, time
from typing import Annotated, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from callcenter.auth import service as auth
from callcenter.auth.models import User
from callcenter.auth.roles import Permission
from callcenter.dispatch import directory as directory_service
from callcenter.dispatch import webhook
from callcenter.dispatch.models import EXTERNAL, Agency
from callcenter.events import EventBus
from callcenter.storage.base import utcnow
from callcenter.tickets.events import TicketChanged
from callcenter.tickets.models import Ticket
from callcenter.tickets.service import CallKey, NewTicket, TicketFilter, TicketService
from callcenter.tickets.writer import TicketWriter
from callcenter.web.api import schemas
from callcenter.web.api.agents import AGENT_ROUTES
from callcenter.web.api.auditlog import AUDIT_ROUTES
from callcenter.web.api.callbacks import CALLBACK_ROUTES
from callcenter.web.api.calls import CALL_ROUTES
from callcenter.web.api.framework import (
    ACTOR,
    BODY,
    DATABASE,
    LOGIN_THROTTLE,
    QUERY,
    SESSION_COOKIE,
    ApiError,
    Route,
    actor,
    error_response,
    json_ok,
    read_json,
)
from callcenter.web.api.recordings import RECORDING_ROUTES
from callcenter.web.api.reports import scores_report
from callcenter.web.api.views import (
    EXPORT_COLUMNS,
    Directory,
    detail_json,
    export_row,
    ticket_json,
    ticket_transcripts,
)

log = logging.getLogger(__name__)

TICKETS: web.AppKey[TicketService] = web.AppKey("tickets", TicketService)
BUS: web.AppKey[EventBus] = web.AppKey("bus", EventBus)
WRITER: web.AppKey[TicketWriter] = web.AppKey("ticket_writer", TicketWriter)


WEBHOOKS: web.AppKey[webhook.WebhookSender] = web.AppKey("webhooks", webhook.WebhookSender)


# ---- query models ----------------------------------------------------------------------------
class Query(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TicketQuery(Query):
    status: schemas.Status | None = None
    agency: schemas.Code | None = None
    category: schemas.Code | None = None
    channel: Literal["112", "hotline", "web", "sms", "api", "forwarded"] | None = None
    caller_number: schemas.CallerId | None = None
    created_from: date | None = Field(default=None, alias="from")
    created_to: date | None = Field(default=None, alias="to")
    overdue: bool | None = None
    limit: Annotated[int, Field(ge=1, le=500)] = 50
    offset: Annotated[int, Field(ge=0, le=1_000_000)] = 0


class ReportQuery(Query):
    by: Literal["operator", "agency"] = "agency"
    created_from: date | None = Field(default=None, alias="from")
    created_to: date | None = Field(default=None, alias="to")
    format: Literal["json", "csv"] = "json"


class ExportQuery(Query):
    created_from: date | None = Field(default=None, alias="from")
    created_to: date | None = Field(default=None, alias="to")
    status: schemas.Status | None = None
    agency: schemas.Code | None = None


def ticket_number(request: web.Request) -> str:
    number = request.match_info["number"]
    if not (number.isascii() and number.isdigit()) or not 8 <= len(number) <= 16:
        raise ApiError(404, "not_found", f"ticket {number[:20]} not found")
    return number


def _day_start(value: date | None) -> datetime | None:
    return datetime.combine(value, time.min, tzinfo=UTC) if value else None


# ---- tickets ---------------------------------------------------------------------------------
async def list_tickets(request: web.Request) -> web.Response:
    who, query = actor(request), request[QUERY]
    filters = TicketFilter(
        status=query.status, agency=query.agency, category=query.category, channel=query.channel,
        caller_number=query.caller_number, created_from=_day_start(query.created_from),
        created_to=_day_start(query.created_to), overdue=query.overdue, limit=query.limit,
        offset=query.offset,
    )  # fmt: skip
    service = request.app[TICKETS]

    def work(session: Session) -> list[dict[str, object]]:
        directory = Directory(session)
        return [ticket_json(t, who, directory) for t in service.search(session, who, filters)]

    items = await request.app[DATABASE].run(work)
    return json_ok({"items": items, "limit": query.limit, "offset": query.offset})


async def create_ticket(request: web.Request) -> web.Response:
    body = request[BODY]
    call = CallKey(body.call.system_name, body.call.linkedid, body.call.caller_number) if body.call else None
    return await _create(request, _new_ticket(body, channel=body.channel, call=call))


def _new_ticket(body: schemas.Report, **extra: object) -> NewTicket:
    return NewTicket(**body.model_dump(include=set(schemas.Report.model_fields)), **extra)  # type: ignore[arg-type]


async def _create(request: web.Request, new: NewTicket) -> web.Response:
    who = actor(request)
    creation = await request.app[WRITER].create(new, who)
    ticket = creation.ticket
    if creation.created:
        # A new ticket is shaped from what was written: no second transaction.
        known = {ticket.category_id: creation.category} if ticket.category_id and creation.category else {}
        directory = Directory.known(categories=known)
        out = ticket_json(ticket, who, directory)
        out["suggested_agency"] = creation.suggested_agency
        request.app[BUS].publish(TicketChanged(number=ticket.number, kind="created"))
        return json_ok(out, status=201)
    service = request.app[TICKETS]

    def shape(session: Session) -> dict[str, object]:
        # The twin made earlier may have moved on since: show it as it is now.
        current = session.get(Ticket, ticket.id)
        assert current is not None  # tickets are never deleted
        out = ticket_json(current, who, Directory(session))
        suggested = service.suggested_agency(session, current)
        out["suggested_agency"] = suggested.code if suggested else None
        return out

    return json_ok(await request.app[DATABASE].run(shape), status=200)


async def get_ticket(request: web.Request) -> web.Response:
    who, number = actor(request), ticket_number(request)
    service = request.app[TICKETS]

    def work(session: Session) -> dict[str, object]:
        detail = service.detail(session, number, who)
        return detail_json(detail, who, Directory(session), ticket_transcripts(session, detail, who))

    return json_ok(await request.app[DATABASE].run(work))


async def _change(request: web.Request, kind: str, change: object) -> web.Response:
    """Run a change, then answer with the ticket as it is now."""
    who, number = actor(request), ticket_number(request)
    service = request.app[TICKETS]

    def work(session: Session) -> dict[str, object]:
        change(session, number)  # type: ignore[operator]
        session.flush()
        return ticket_json(service.get(session, number, who), who, Directory(session))

    out = await request.app[DATABASE].run(work)
    request.app[BUS].publish(TicketChanged(number=number, kind=kind))
    return json_ok(out)


async def transition_ticket(request: web.Request) -> web.Response:
    who, body, service = actor(request), request[BODY], request.app[TICKETS]
    return await _change(
        request, "status",
        lambda s, n: service.transition(s, n, body.to, who, note=body.note, reason=body.reason),
    )  # fmt: skip


async def dispatch_ticket(request: web.Request) -> web.Response:
    who, body, service = actor(request), request[BODY], request.app[TICKETS]
    return await _change(
        request, "dispatched", lambda s, n: service.dispatch(s, n, body.agency, who, body.note)
    )


async def escalate_ticket(request: web.Request) -> web.Response:
    who, body, service = actor(request), request[BODY], request.app[TICKETS]
    return await _change(request, "escalated", lambda s, n: service.escalate(s, n, who, body.note))


async def forward_ticket(request: web.Request) -> web.Response:
    who, body, service = actor(request), request[BODY], request.app[TICKETS]
    response = await _change(
        request, "forwarded", lambda s, n: service.forward(s, n, body.agency, who, body.note)
    )
    sender = request.app.get(WEBHOOKS)
    if sender is not None:
        sender.wake()
    return response


async def comment_ticket(request: web.Request) -> web.Response:
    who, body, service = actor(request), request[BODY], request.app[TICKETS]
    return await _change(request, "comment", lambda s, n: service.comment(s, n, who, body.note))


async def review_ticket(request: web.Request) -> web.Response:
    who, body, service = actor(request), request[BODY], request.app[TICKETS]
    return await _change(
        request, "reviewed", lambda s, n: service.review(s, n, who, body.kind, body.score, body.note)
    )


async def link_call(request: web.Request) -> web.Response:
    who, body, service = actor(request), request[BODY], request.app[TICKETS]
    key = CallKey(body.call.system_name, body.call.linkedid, body.call.caller_number)
    return await _change(request, "call_linked", lambda s, n: service.link_call(s, n, key, who))


# ---- inbound ("No Wrong Door") ----------------------------------------------------------------
async def inbound_ticket(request: web.Request) -> web.Response:
    who, body = actor(request), request[BODY]
    new = _new_ticket(body, channel=body.channel, source=who.username, external_id=body.external_id)
    return await _create(request, new)


async def inbound_forwarded(request: web.Request) -> web.Response:
    """A report forwarded by another instance, authenticated by its HMAC signature."""
    source = request.headers.get(webhook.SOURCE_HEADER, "")
    timestamp = request.headers.get(webhook.TIMESTAMP_HEADER, "")
    signature = request.headers.get(webhook.SIGNATURE_HEADER, "")
    key = request.headers.get(webhook.IDEMPOTENCY_HEADER, "")
    if not (source and timestamp and signature and key) or len(key) > 100:
        raise ApiError(401, "unauthenticated", "signed request headers missing")
    data = await read_json(request)
    raw = await request.read()
    db = request.app[DATABASE]

    def peer(session: Session) -> Agency | None:
        return session.scalar(
            select(Agency).where(Agency.code == source[:32], Agency.kind == EXTERNAL, Agency.active.is_(True))
        )

    agency = await db.run(peer)
    if (
        agency is None
        or not agency.webhook_secret
        or not webhook.verify(agency.webhook_secret, timestamp, raw, signature, utcnow())
    ):
        raise ApiError(401, "unauthenticated", "signature not valid for this source")
    try:
        body = schemas.ForwardedTicket.model_validate(data)
    except ValidationError as exc:
        raise ApiError(422, "invalid_input", "the body does not match the schema", str(exc)) from None
    request[ACTOR] = auth.integration_actor(agency.code)
    hidden = body.reporter.hidden
    new = NewTicket(
        summary=body.summary, channel="forwarded", description=body.description,
        priority=body.priority, location_text=body.location_text, district=body.district,
        reporter_name="" if hidden else body.reporter.name,
        reporter_contact="" if hidden else body.reporter.contact,
        reporter_number="" if hidden else body.reporter.number,
        confidential=hidden, source=agency.code, external_id=body.source_ticket,
    )  # fmt: skip
    return await _create(request, new)


async def inbound_rating(request: web.Request) -> web.Response:
    who, body, service = actor(request), request[BODY], request.app[TICKETS]
    number = ticket_number(request)

    def work(session: Session) -> dict[str, object]:
        service.review(session, number, who, "citizen", body.score, body.note)
        return {"number": number, "rating": body.score}

    return json_ok(await request.app[DATABASE].run(work), status=201)


# ---- session ---------------------------------------------------------------------------------
async def login(request: web.Request) -> web.Response:
    body = request[BODY]
    throttle, client = request.app[LOGIN_THROTTLE], request.remote or ""
    wait = throttle.retry_after(client, body.username)
    if wait is not None:
        # Refused before the password is checked: a guess made now is never tried.
        refused = error_response(
            429, "too_many_attempts", f"too many failed logins from this address; try again in {wait} s"
        )
        refused.headers["Retry-After"] = str(wait)
        return refused

    def work(session: Session) -> tuple[str, dict[str, object]] | None:
        user = auth.authenticate(session, body.username, body.password)
        if user is None:
            return None
        return auth.open_session(session, user), _user_json(user)

    result = await request.app[DATABASE].run(work)
    if result is None:
        throttle.failed(client, body.username)
        # %r: the name is untrusted and must not forge log lines.
        log.warning("failed login for %r from %s", body.username[:64], client or "?")
        raise ApiError(401, "unauthenticated", "wrong username or password")
    throttle.succeeded(client, body.username)
    token, user = result
    response = json_ok(user)
    response.set_cookie(
        SESSION_COOKIE, token, httponly=True, samesite="Strict", path="/", max_age=12 * 3600,
        secure=request.secure,
    )  # fmt: skip
    return response


async def logout(request: web.Request) -> web.Response:
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        await request.app[DATABASE].run(lambda s: auth.close_session(s, token))
    response = web.json_response({"logged_out": True})
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


async def me(request: web.Request) -> web.Response:
    who = actor(request)

    def work(session: Session) -> dict[str, object]:
        return {
            "username": who.username,
            "role": who.role.value,
            "agency": Directory(session).agency(who.agency_id),
            "permissions": sorted(p.value for p in Permission if who.can(p)),
        }

    return json_ok(await request.app[DATABASE].run(work))


# ---- directory -------------------------------------------------------------------------------
def _agency_json(a: Agency) -> dict[str, object]:
    # The webhook secret is never listed; it is shown once, when the agency is created.
    return {"code": a.code, "name": a.name, "kind": a.kind, "webhook_url": a.webhook_url, "active": a.active}


async def list_agencies(request: web.Request) -> web.Response:
    rows = await request.app[DATABASE].run(
        lambda s: [_agency_json(a) for a in directory_service.list_agencies(s)]
    )
    return json_ok({"items": rows})


async def create_agency(request: web.Request) -> web.Response:
    body = request[BODY]

    def work(session: Session) -> dict[str, object]:
        agency, secret = directory_service.create_agency(
            session, body.code, body.name, body.kind, body.webhook_url
        )
        out = _agency_json(agency)
        if secret:
            out["webhook_secret"] = secret
        return out

    return json_ok(await request.app[DATABASE].run(work), status=201)


async def list_categories(request: web.Request) -> web.Response:
    def work(session: Session) -> list[dict[str, object]]:
        return [
            {"code": c.code, "name_id": c.name_id, "name_en": c.name_en, "agency": a.code if a else None}
            for c, a in directory_service.list_categories(session)
        ]

    return json_ok({"items": await request.app[DATABASE].run(work)})


async def create_category(request: web.Request) -> web.Response:
    body = request[BODY]

    def work(session: Session) -> dict[str, object]:
        c = directory_service.create_category(session, body.code, body.name_id, body.name_en, body.agency)
        return {"code": c.code, "name_id": c.name_id, "name_en": c.name_en, "agency": body.agency}

    return json_ok(await request.app[DATABASE].run(work), status=201)


async def set_route(request: web.Request) -> web.Response:
    body, code = request[BODY], request.match_info["code"][:32]

    def work(session: Session) -> dict[str, object]:
        directory_service.set_route(session, code, body.agency)
        return {"category": code, "agency": body.agency}

    return json_ok(await request.app[DATABASE].run(work))


# ---- users -----------------------------------------------------------------------------------
def _user_json(user: User) -> dict[str, object]:
    return {
        "username": user.username,
        "display_name": user.display_name,
        "role": user.role,
        "active": user.active,
    }


async def list_users(request: web.Request) -> web.Response:
    def work(session: Session) -> list[dict[str, object]]:
        directory = Directory(session)
        return [
            {**_user_json(u), "agency": directory.agency(u.agency_id)}
            for u in session.scalars(select(User).order_by(User.username))
        ]

    return json_ok({"items": await request.app[DATABASE].run(work)})


async def create_user(request: web.Request) -> web.Response:
    body = request[BODY]

    def work(session: Session) -> dict[str, object]:
        user = auth.create_user(
            session, body.username, body.password, body.role, body.agency, body.display_name
        )
        return {**_user_json(user), "agency": body.agency}

    return json_ok(await request.app[DATABASE].run(work), status=201)


async def create_token(request: web.Request) -> web.Response:
    body, username = request[BODY], request.match_info["username"][:64]

    def work(session: Session) -> dict[str, object]:
        user = session.scalar(select(User).where(User.username == username))
        if user is None:
            raise ApiError(404, "not_found", f"user {username} not found")
        return {"username": username, "name": body.name, "token": auth.create_token(session, user, body.name)}

    return json_ok(await request.app[DATABASE].run(work), status=201)


# ---- reports ---------------------------------------------------------------------------------
async def report_scores(request: web.Request) -> web.StreamResponse:
    query = request[QUERY]
    service = request.app[TICKETS]
    rows = await request.app[DATABASE].run(
        lambda s: scores_report(s, service.calendar, query.by, _day_start(query.created_from),
                                _day_start(query.created_to))
    )  # fmt: skip
    if query.format == "csv":
        return csv_response(
            f"scores-{query.by}.csv", list(rows[0]) if rows else [], [list(r.values()) for r in rows]
        )
    return json_ok({"by": query.by, "items": rows})


async def export_tickets(request: web.Request) -> web.StreamResponse:
    who, query = actor(request), request[QUERY]
    service = request.app[TICKETS]
    filters = TicketFilter(
        status=query.status, agency=query.agency, created_from=_day_start(query.created_from),
        created_to=_day_start(query.created_to), limit=100_000,
    )  # fmt: skip

    def work(session: Session) -> list[list[object]]:
        directory = Directory(session)
        return [export_row(t, directory) for t in service.search(session, who, filters)]

    rows = await request.app[DATABASE].run(work)
    return csv_response("tickets.csv", list(EXPORT_COLUMNS), rows)


def csv_response(filename: str, header: list[str], rows: list[list[object]]) -> web.Response:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    for row in rows:
        writer.writerow([_cell(v) for v in row])
    return web.Response(
        text=buffer.getvalue(),
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _cell(value: object) -> object:
    # Spreadsheet formula injection: text starting with these is shown as text, not run.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return "" if value is None else value


# ---- OpenAPI ---------------------------------------------------------------------------------
async def openapi(request: web.Request) -> web.Response:
    from callcenter.web.api.openapi import document

    return web.Response(text=json.dumps(document(ROUTES)), content_type="application/json")


P = Permission
T = "/api/v1/tickets/{number}"
ROUTES: list[Route] = [
    Route("GET", "/api/v1/openapi.json", openapi, "This document", "meta", auth="none"),
    Route("POST", "/api/v1/session", login, "Log in (sets a session cookie)", "session", auth="none",
          body=schemas.Login, responses=((401, "wrong username or password"),
                                         (429, "too many failed logins from this address; see Retry-After"))),
    Route("DELETE", "/api/v1/session", logout, "Log out", "session", auth="none"),
    Route("GET", "/api/v1/me", me, "Who am I, and what may I do", "session"),
    Route("GET", "/api/v1/tickets", list_tickets, "List tickets", "tickets", query=TicketQuery),
    Route("POST", "/api/v1/tickets", create_ticket, "Create a ticket", "tickets", P.TICKET_CREATE,
          body=schemas.TicketCreate, ok_status=201),
    Route("GET", T, get_ticket, "Ticket with trail and calls", "tickets", path_params=("number",)),
    Route("POST", T + "/transitions", transition_ticket, "Change status", "tickets", P.TICKET_WORK,
          body=schemas.Transition, path_params=("number",)),
    Route("POST", T + "/dispatch", dispatch_ticket, "Dispatch to an OPD", "tickets", P.TICKET_DISPATCH,
          body=schemas.Dispatch, path_params=("number",)),
    Route("POST", T + "/escalate", escalate_ticket, "Escalate to a supervisor", "tickets",
          P.TICKET_ESCALATE, body=schemas.Escalate, path_params=("number",)),
    Route("POST", T + "/forward", forward_ticket, "Forward to another instance", "tickets",
          P.TICKET_FORWARD, body=schemas.Forward, path_params=("number",)),
    Route("POST", T + "/comments", comment_ticket, "Add a comment", "tickets", P.TICKET_WORK,
          body=schemas.Comment, path_params=("number",)),
    Route("POST", T + "/reviews", review_ticket, "Quality review", "tickets", P.TICKET_REVIEW,
          body=schemas.Review, path_params=("number",)),
    Route("POST", T + "/calls", link_call, "Link a later call", "tickets", P.TICKET_WORK,
          body=schemas.LinkCall, path_params=("number",)),
    Route("POST", "/api/v1/inbound/tickets", inbound_ticket, "Report from another channel", "inbound",
          P.INBOUND_CREATE, body=schemas.InboundTicket, ok_status=201),
    Route("POST", "/api/v1/inbound/forwarded", inbound_forwarded, "Report forwarded by another instance",
          "inbound", auth="signature", ok_status=201),
    Route("POST", "/api/v1/inbound/tickets/{number}/rating", inbound_rating, "Citizen's rating",
          "inbound", P.INBOUND_CREATE, body=schemas.Review, ok_status=201, path_params=("number",)),
    Route("GET", "/api/v1/agencies", list_agencies, "Agencies", "directory", P.DIRECTORY_READ),
    Route("POST", "/api/v1/agencies", create_agency, "Add an agency", "directory", P.DIRECTORY_WRITE,
          body=schemas.AgencyCreate, ok_status=201),
    Route("GET", "/api/v1/categories", list_categories, "Categories and routing", "directory",
          P.DIRECTORY_READ),
    Route("POST", "/api/v1/categories", create_category, "Add a category", "directory",
          P.DIRECTORY_WRITE, body=schemas.CategoryCreate, ok_status=201),
    Route("PUT", "/api/v1/categories/{code}/route", set_route, "Route a category to an OPD",
          "directory", P.DIRECTORY_WRITE, body=schemas.RouteSet, path_params=("code",)),
    Route("GET", "/api/v1/users", list_users, "Users", "users", P.USERS_READ),
    Route("POST", "/api/v1/users", create_user, "Add a user", "users", P.USERS_WRITE,
          body=schemas.UserCreate, ok_status=201),
    Route("POST", "/api/v1/users/{username}/tokens", create_token, "New API token (shown once)", "users",
          P.USERS_WRITE, body=schemas.TokenCreate, ok_status=201, path_params=("username",)),
    Route("GET", "/api/v1/reports/scores", report_scores, "Operator and OPD scores", "reports",
          P.REPORTS_READ, query=ReportQuery, produces_csv=True),
    Route("GET", "/api/v1/reports/tickets", export_tickets, "Ticket export (CSV)", "reports",
          P.REPORTS_READ, query=ExportQuery, produces_csv=True),
    *AGENT_ROUTES,
    *CALLBACK_ROUTES,
    *CALL_ROUTES,
    *RECORDING_ROUTES,
    *AUDIT_ROUTES,
]  # fmt: skip
