"""Agent stations and live views in the REST API: log in to the queues, pause, resume, log out,
the wallboard snapshot, and the console WebSocket.

Live parts exist only in a running engine (they need AMI); a web app built without them answers
these endpoints with 503 and says why.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo

from aiohttp import web
from sqlalchemy.orm import Session

from callcenter.auth.models import User
from callcenter.auth.roles import Permission as P
from callcenter.calls import stats
from callcenter.calls.live import LiveState
from callcenter.calls.stations import PAUSE_REASONS, SERVICE_QUEUES, AgentStations, Station, station_of
from callcenter.errors import Conflict, InvalidInput, NotFound
from callcenter.web.api import schemas
from callcenter.web.api.framework import BODY, DATABASE, ApiError, Route, actor, json_ok
from callcenter.web.live import LiveHub, serve_console


@dataclass(frozen=True)
class LiveDeps:
    state: LiveState
    stations: AgentStations
    hub: LiveHub
    # Where "today" starts for the wallboard's figures.
    timezone: tzinfo = field(default_factory=lambda: ZoneInfo("Asia/Jakarta"))


LIVE: web.AppKey[LiveDeps] = web.AppKey("live", LiveDeps)


def live_deps(request: web.Request) -> LiveDeps:
    live = request.app.get(LIVE)
    if live is None:
        raise ApiError(
            503, "live_unavailable", "live calls need the running engine (AMI); not available here"
        )
    return live


async def agent_station(request: web.Request) -> Station:
    who = actor(request)

    def load(session: Session) -> Station:
        user = session.get(User, who.user_id) if who.user_id is not None else None
        if user is None:
            raise NotFound(f"user {who.username!r} not found")
        return station_of(user.username, user.station, list(user.skills or []), SERVICE_QUEUES)

    return await request.app[DATABASE].run(load)


def _station_json(live: LiveDeps, station: Station) -> dict[str, object]:
    entry = live.stations.logged_in().get(station.username)
    return {
        "station": station.station,
        "interface": station.interface,
        "queues": list(station.queues),
        "logged_in": entry is not None,
        "paused_reason": (entry[1] or None) if entry is not None else None,
    }


async def agent_login(request: web.Request) -> web.Response:
    live = live_deps(request)
    station = await agent_station(request)
    await live.stations.login(station)
    return json_ok(_station_json(live, station))


async def agent_pause(request: web.Request) -> web.Response:
    live = live_deps(request)
    station = await agent_station(request)
    await live.stations.pause(station, request[BODY].reason)
    return json_ok(_station_json(live, station))


async def agent_resume(request: web.Request) -> web.Response:
    live = live_deps(request)
    station = await agent_station(request)
    await live.stations.resume(station)
    return json_ok(_station_json(live, station))


async def agent_logout(request: web.Request) -> web.Response:
    live = live_deps(request)
    station = await agent_station(request)
    await live.stations.logout(station)
    return json_ok(_station_json(live, station))


async def agent_status(request: web.Request) -> web.Response:
    live = live_deps(request)
    return json_ok(_station_json(live, await agent_station(request)))


async def pause_reasons(request: web.Request) -> web.Response:
    return json_ok(
        {"items": [{"code": c, "name_id": i, "name_en": e} for c, (i, e) in PAUSE_REASONS.items()]}
    )


async def wallboard(request: web.Request) -> web.Response:
    return json_ok(live_deps(request).state.snapshot(time.time()))


async def today_figures(request: web.Request) -> web.Response:
    live = live_deps(request)
    now = time.time()
    logged_in: dict[str, int] = {}
    for system in live.state.system_names():
        for agent in live.state.agents(system):
            for queue in agent.memberships:
                logged_in[queue] = logged_in.get(queue, 0) + 1
    tz = live.timezone
    when = datetime.fromtimestamp(now, UTC)
    return json_ok(await request.app[DATABASE].run(lambda s: stats.today(s, when, tz, logged_in)))


async def spy_on_agent(request: web.Request) -> web.Response:
    """Listen, whisper or barge: the supervisor's own station rings and joins the agent's call."""
    live, who, body = live_deps(request), actor(request), request[BODY]

    def load(session: Session) -> str:
        user = session.get(User, who.user_id) if who.user_id is not None else None
        if user is None or not user.station:
            raise InvalidInput("station", f"user {who.username!r} has no station to listen from")
        return user.station

    own = Station(who.username, await request.app[DATABASE].run(load), ())
    interface = f"PJSIP/{body.agent}"
    in_call = any(
        agent.call is not None
        for system in live.state.system_names()
        if (agent := live.state.agent(system, interface)) is not None
    )
    if not in_call:
        raise Conflict(f"{body.agent} is not in a queue call now")
    await live.stations.spy(own, interface, body.mode)
    return json_ok({"agent": body.agent, "mode": body.mode, "station": own.station})


async def console_socket(request: web.Request) -> web.StreamResponse:
    live = live_deps(request)
    who = actor(request)
    interface = None
    if who.can(P.AGENT_STATION):
        try:
            interface = (await agent_station(request)).interface
        except (NotFound, ValueError):
            interface = None  # a supervisor without a station still watches the wallboard
    if interface is None and not who.can(P.LIVE_WATCH):
        raise ApiError(409, "no_station", f"user {who.username!r} has no station to receive calls at")
    return await serve_console(request, live.hub, who, interface)


A = "/api/v1/agent"
AGENT_ROUTES: list[Route] = [
    Route("POST", A + "/login", agent_login, "Log in to the queues of my skills", "agents", P.AGENT_STATION),
    Route("POST", A + "/pause", agent_pause, "Pause with a reason", "agents", P.AGENT_STATION,
          body=schemas.Pause),
    Route("POST", A + "/resume", agent_resume, "End the pause", "agents", P.AGENT_STATION),
    Route("POST", A + "/logout", agent_logout, "Log out of the queues", "agents", P.AGENT_STATION),
    Route("GET", A, agent_status, "My station and queue state", "agents", P.AGENT_STATION),
    Route("GET", "/api/v1/pause-reasons", pause_reasons, "Pause reasons", "agents", P.AGENT_STATION),
    Route("GET", "/api/v1/live/wallboard", wallboard, "Queues, callers and agents now", "live", P.LIVE_WATCH),
    Route("GET", "/api/v1/live/today", today_figures, "Today's calls, service level and staffing", "live",
          P.LIVE_WATCH),
    Route("POST", "/api/v1/live/spy", spy_on_agent, "Listen, whisper or barge on an agent's call", "live",
          P.LIVE_WATCH, body=schemas.Spy),
    Route("GET", "/api/v1/live/socket", console_socket, "Console WebSocket (screen-pops, live state)",
          "live", P.LIVE_CONSOLE),
]  # fmt: skip
