"""The engine's HTTP side: /healthz, the REST API under /api/v1 and the web pages."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from callcenter import __version__
from callcenter.auth.throttle import LoginThrottle
from callcenter.dispatch.webhook import WebhookSender
from callcenter.events import EventBus
from callcenter.storage.database import Database
from callcenter.tickets.service import TicketService
from callcenter.tickets.writer import TicketWriter
from callcenter.web.api import framework
from callcenter.web.api.agents import LIVE, LiveDeps
from callcenter.web.api.recordings import add_recordings
from callcenter.web.api.routes import BUS, ROUTES, TICKETS, WEBHOOKS, WRITER
from callcenter.web.pages import add_pages
from callcenter.web.pages.render import TIMEZONE

HealthProbe = Callable[[], Awaitable[dict[str, object]]]
HEALTH: web.AppKey[HealthProbe] = web.AppKey("health", HealthProbe)  # type: ignore[arg-type]


@dataclass(frozen=True)
class ApiDeps:
    database: Database
    tickets: TicketService
    bus: EventBus
    webhooks: WebhookSender | None = None
    # Made by the web app (and closed with it) when the caller does not share its own.
    writer: TicketWriter | None = None
    # Live calls (AMI state, agent stations, consoles): only in a running engine.
    live: LiveDeps | None = None


@web.middleware
async def security_headers(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    response = await handler(request)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    response.headers.setdefault("Cache-Control", "no-store")
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; img-src 'self' data:; media-src 'self'; frame-ancestors 'none'",
    )
    return response


async def healthz(request: web.Request) -> web.Response:
    report = await request.app[HEALTH]()
    report["version"] = __version__
    status = 200 if report.get("status") == "ok" else 503
    return web.json_response(report, status=status)


def create_web_app(health: HealthProbe, api: ApiDeps | None = None) -> web.Application:
    app = web.Application(
        middlewares=[security_headers, framework.errors_middleware],
        client_max_size=framework.MAX_BODY,
    )
    app[HEALTH] = health
    app.router.add_get("/healthz", healthz)
    if api is not None:
        app[framework.DATABASE] = api.database
        app[framework.ACTORS] = framework.ActorCache()
        app[framework.LOGIN_THROTTLE] = LoginThrottle()
        app[TICKETS] = api.tickets
        if api.writer is not None:
            app[WRITER] = api.writer
        else:
            writer = app[WRITER] = TicketWriter(api.database, api.tickets)

            async def close_writer(_app: web.Application) -> None:
                await writer.close()

            app.on_cleanup.append(close_writer)
        app[BUS] = api.bus
        if api.webhooks is not None:
            app[WEBHOOKS] = api.webhooks
        if api.live is not None:
            app[LIVE] = api.live
        framework.register(app, ROUTES)
        add_pages(app)
        add_recordings(app, app[TIMEZONE])
    return app
