"""The OPD operator's pages: log in, the queue of the agency's tickets, one ticket.

The pages read through the same services and JSON shapes as the REST API (what an actor may see
is decided there, not here) and change nothing themselves: the buttons call the API from the
browser. Only which buttons to show is worked out here, from the lifecycle's own rules.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from sqlalchemy.orm import Session

from callcenter.auth.actor import Actor
from callcenter.auth.roles import Permission
from callcenter.dispatch import directory as directory_service
from callcenter.errors import Forbidden, NotFound
from callcenter.tickets import lifecycle
from callcenter.tickets.lifecycle import CLOSED_STATUSES, OPEN_STATUSES, STATUSES, IllegalTransition
from callcenter.tickets.service import TicketFilter
from callcenter.web.api import framework
from callcenter.web.api.framework import DATABASE
from callcenter.web.api.routes import TICKETS
from callcenter.web.api.views import Directory, detail_json, ticket_json, ticket_transcripts
from callcenter.web.pages.render import Page, parse_time

OPEN_LIMIT = 500  # per open status; the API's own page limit
CLOSED_LIMIT = 50  # latest closed tickets shown under the open ones
SAFE_NEXT = re.compile(
    r"(/opd(/tickets/[0-9]{1,16})?|/console|/wallboard|/audit/recordings(/[0-9]{1,12})?)"
    r"(\?[A-Za-z0-9=&_.%+-]{0,200})?"
)
NUMBER = re.compile(r"[0-9]{8,16}")


@dataclass(frozen=True)
class Action:
    name: str  # data-action: claim, done, reject, release, comment, escalate
    kind: str  # which API call: transition, comment, escalate
    to: str = ""  # target status of a transition


# The transitions the pages offer, with the lifecycle's name for each move.
TRANSITION_ACTIONS = (
    (Action("claim", "transition", lifecycle.IN_PROCESS), "start"),
    (Action("done", "transition", lifecycle.DONE), "resolve"),
    (Action("reject", "transition", lifecycle.REJECTED), "reject"),
    (Action("release", "transition", lifecycle.WAITING), "release"),
)


def allowed_actions(status: str, actor: Actor) -> list[Action]:
    """The buttons for a ticket in ``status``: what the lifecycle and the actor's role allow."""
    actions: list[Action] = []
    if actor.can(Permission.TICKET_WORK):
        for action, move in TRANSITION_ACTIONS:
            if lifecycle.TRANSITIONS.get((status, action.to)) != move:
                continue
            try:
                # A placeholder reason: the real one is asked for (and checked) when rejecting.
                lifecycle.check_transition(status, action.to, actor.role, reason="-")
            except IllegalTransition:
                continue
            actions.append(action)
        actions.append(Action("comment", "comment"))
    if actor.can(Permission.TICKET_ESCALATE) and status in OPEN_STATUSES:
        actions.append(Action("escalate", "escalate"))
    return actions


def is_late(item: dict[str, Any], now: datetime) -> bool:
    """Flagged overdue by the deadline job, or open past its follow-up deadline."""
    if item.get("overdue"):
        return True
    if item.get("status") not in OPEN_STATUSES:
        return False
    deadline = parse_time(item["deadlines"]["follow_up_by"])
    return deadline is not None and deadline < now


STATUS_ORDER = {s: i for i, s in enumerate(STATUSES)}


def open_first(item: dict[str, Any]) -> tuple[int, int, float]:
    """Waiting, then in process, each with the soonest deadline first; then the closed ones in
    the order given (newest first). ``sorted`` is stable."""
    if item["status"] not in OPEN_STATUSES:
        return (len(STATUS_ORDER), 0, 0.0)
    deadline = parse_time(item["deadlines"]["follow_up_by"]) or parse_time(item["deadlines"]["verify_by"])
    return (STATUS_ORDER[item["status"]], 0 if deadline else 1, deadline.timestamp() if deadline else 0.0)


@dataclass(frozen=True)
class Names:
    """Display names of the directory: categories in both languages, agencies."""

    categories: dict[str, tuple[str, str]]
    agencies: dict[str, str]

    @classmethod
    def load(cls, session: Session) -> Names:
        categories = {
            c.code: (c.name_id, c.name_en or c.name_id) for c, _ in directory_service.list_categories(session)
        }
        agencies = {a.code: a.name for a in directory_service.list_agencies(session)}
        return cls(categories, agencies)

    def category(self, code: object, lang: str) -> str:
        if not isinstance(code, str):
            return ""
        names = self.categories.get(code)
        if names is None:
            return code
        return names[1] if lang == "en" else names[0]

    def agency(self, code: object) -> str:
        if not isinstance(code, str):
            return ""
        return self.agencies.get(code, code)


@dataclass(frozen=True)
class User:
    username: str
    role: str
    role_label: str
    agency: str
    audit: bool = False  # may open the auditor's recording pages (a link in the top bar)
    audit_log: bool = False  # may read the audit log (a link in the top bar)


def login_url(request: web.Request) -> str:
    target = request.path_qs
    if SAFE_NEXT.fullmatch(target) and target != "/opd":
        return "/login?" + urlencode({"next": target})
    return "/login"


async def current_actor(request: web.Request) -> Actor | None:
    try:
        return await framework.resolve_actor(request)
    except framework.ApiError:
        return None  # a malformed Authorization header: treat as not logged in


def page_user(page: Page, actor: Actor, agency: str | None, names: Names) -> User:
    agency_text = f"{names.agency(agency)} ({agency})" if agency else ""
    return User(
        actor.username, actor.role.value, page.label("role", actor.role.value), agency_text,
        audit=actor.can(Permission.RECORDING_SEARCH), audit_log=actor.can(Permission.AUDIT_READ),
    )  # fmt: skip


def error_page(page: Page, status: int, key: str, user: User | None = None) -> web.StreamResponse:
    return page.render(
        "error.html", status=status, title=page.t(f"error.{key}.title"), text=page.t(f"error.{key}.text"),
        user=user,
    )  # fmt: skip


# ---- handlers --------------------------------------------------------------------------------
async def login_page(request: web.Request) -> web.StreamResponse:
    page = Page(request)
    wanted = request.query.get("next", "")
    target = wanted if SAFE_NEXT.fullmatch(wanted) else "/opd"
    return page.render("login.html", next=target, user=None)


async def queue_page(request: web.Request) -> web.StreamResponse:
    page = Page(request)
    who = await current_actor(request)
    if who is None:
        return page.redirect(login_url(request))
    status = request.query.get("status", "")
    if status not in STATUSES:
        status = ""
    service = request.app[TICKETS]

    def work(session: Session) -> tuple[list[dict[str, Any]], bool, Names, str | None]:
        directory = Directory(session)
        more = False
        if status:
            tickets = service.search(session, who, TicketFilter(status=status, limit=OPEN_LIMIT))
        else:
            tickets = [
                t
                for s in OPEN_STATUSES
                for t in service.search(session, who, TicketFilter(status=s, limit=OPEN_LIMIT))
            ]
            closed = [
                t
                for s in CLOSED_STATUSES
                for t in service.search(session, who, TicketFilter(status=s, limit=CLOSED_LIMIT + 1))
            ]
            closed.sort(key=lambda t: (t.created_at, t.id), reverse=True)
            more = len(closed) > CLOSED_LIMIT
            tickets += closed[:CLOSED_LIMIT]
        items = [ticket_json(t, who, directory) for t in tickets]
        return items, more, Names.load(session), directory.agency(who.agency_id)

    try:
        items, more, names, agency = await request.app[DATABASE].run(work)
    except Forbidden:
        return error_page(page, 403, "forbidden")
    items.sort(key=open_first)
    now = service.clock()
    rows = [
        {**item, "late": is_late(item, now), "category_name": names.category(item["category"], page.lang)}
        for item in items
    ]
    return page.render(
        "queue.html", rows=rows, selected=status, statuses=STATUSES, closed_limited=more,
        show_agency=who.can(Permission.TICKET_READ_ALL), user=page_user(page, who, agency, names),
        agency_name=names.agency(agency) if agency else "",
    )  # fmt: skip


async def ticket_page(request: web.Request) -> web.StreamResponse:
    page = Page(request)
    who = await current_actor(request)
    if who is None:
        return page.redirect(login_url(request))
    number = request.match_info["number"]
    service = request.app[TICKETS]

    def work(session: Session) -> tuple[dict[str, Any] | None, Names, str | None]:
        directory = Directory(session)
        names = Names.load(session)
        agency = directory.agency(who.agency_id)
        try:
            detail = service.detail(session, number, who)
            item = detail_json(detail, who, directory, ticket_transcripts(session, detail, who))
        except NotFound:
            item = None
        return item, names, agency

    if not NUMBER.fullmatch(number):
        return error_page(page, 404, "not_found")
    try:
        item, names, agency = await request.app[DATABASE].run(work)
    except Forbidden:
        return error_page(page, 403, "forbidden")
    user = page_user(page, who, agency, names)
    if item is None:
        return error_page(page, 404, "not_found", user)
    return page.render(
        "ticket.html", ticket=item, late=is_late(item, service.clock()),
        actions=allowed_actions(item["status"], who),
        can_work=who.can(Permission.TICKET_WORK) or who.can(Permission.TICKET_ESCALATE),
        category_name=names.category(item["category"], page.lang), agency_name=names.agency(item["agency"]),
        forwarded_name=names.agency(item["forwarded_to"]), user=user,
    )  # fmt: skip
