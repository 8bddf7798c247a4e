"""The engine's HTTP side. For now: /healthz, the one page every operator and monitor needs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from callcenter import __version__

HealthProbe = Callable[[], Awaitable[dict[str, object]]]
HEALTH: web.AppKey[HealthProbe] = web.AppKey("health", HealthProbe)  # type: ignore[arg-type]


@web.middleware
async def security_headers(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    response = await handler(request)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    response.headers.setdefault("Cache-Control", "no-store")
    return response


async def healthz(request: web.Request) -> web.Response:
    report = await request.app[HEALTH]()
    report["version"] = __version__
    status = 200 if report.get("status") == "ok" else 503
    return web.json_response(report, status=status)


def create_web_app(health: HealthProbe) -> web.Application:
    app = web.Application(middlewares=[security_headers], client_max_size=1024 * 1024)
    app[HEALTH] = health
    app.router.add_get("/healthz", healthz)
    return app
