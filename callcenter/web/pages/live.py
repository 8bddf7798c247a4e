"""The live pages: the agent console (``/console``) and the supervisor wallboard (``/wallboard``).

The server renders the frame and the words; everything live comes over the console WebSocket
(``/api/v1/live/socket``) and every action goes through the REST API from the browser, with the
session cookie. ``static/live.js`` builds the changing parts with textContent only.
"""

from __future__ import annotations

from aiohttp import web

from callcenter.auth.roles import Permission
from callcenter.calls.stations import PAUSE_REASONS
from callcenter.web.api.framework import DATABASE
from callcenter.web.pages.handlers import Names, current_actor, error_page, login_url, page_user
from callcenter.web.pages.render import Page


async def _frame(request: web.Request, permission: Permission, template: str) -> web.StreamResponse:
    page = Page(request)
    who = await current_actor(request)
    if who is None:
        return page.redirect(login_url(request))
    names = await request.app[DATABASE].run(Names.load)
    user = page_user(page, who, None, names)
    if not who.can(permission):
        return error_page(page, 403, "live", user)
    reasons = [
        (code, names_[1] if page.lang == "en" else names_[0]) for code, names_ in PAUSE_REASONS.items()
    ]
    return page.render(template, user=user, reasons=reasons)


async def console_page(request: web.Request) -> web.StreamResponse:
    return await _frame(request, Permission.AGENT_STATION, "console.html")


async def wallboard_page(request: web.Request) -> web.StreamResponse:
    return await _frame(request, Permission.LIVE_WATCH, "wallboard.html")
