"""Server-rendered web pages for OPD operators (and command-center staff who look in).

``GET /login``, ``GET /opd`` (the queue) and ``GET /opd/tickets/{number}`` (one ticket), the live
console and wallboard, the auditor's ``GET /audit/recordings`` (search) and
``GET /audit/recordings/{id}`` (player and transcripts) and ``GET /audit/log`` (the audit log and
its chain check), plus their CSS and JavaScript under
``/static/pages/``. The pages only read; every change goes
through the REST API, called from the browser with the session cookie.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from callcenter.web.pages import audit, handlers, live
from callcenter.web.pages.render import DEFAULT_TIMEZONE, JINJA, STATIC_PREFIX, TIMEZONE, environment, zone

STATIC_DIR = Path(__file__).parent / "static"

__all__ = ["add_pages"]


def add_pages(app: web.Application, *, timezone: str = DEFAULT_TIMEZONE) -> None:
    """Register the pages and their static files on an app that already serves the API."""
    app[JINJA] = environment()
    app[TIMEZONE] = zone(timezone)
    app.router.add_get("/login", handlers.login_page)
    app.router.add_get("/opd", handlers.queue_page)
    app.router.add_get("/opd/tickets/{number}", handlers.ticket_page)
    app.router.add_get("/console", live.console_page)
    app.router.add_get("/wallboard", live.wallboard_page)
    app.router.add_get("/audit/recordings", audit.recordings_page)
    app.router.add_get("/audit/recordings/{id}", audit.recording_page)
    app.router.add_get("/audit/log", audit.audit_log_page)
    app.router.add_static(STATIC_PREFIX, STATIC_DIR, append_version=False)
