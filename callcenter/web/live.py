"""Live consoles over WebSocket: screen-pops for agents, live state for supervisors.

The hub is an owned background task subscribed to the engine's bus. A queue call ringing an
agent (``AgentRinging``) or answered by it (``AgentAnswered``) becomes one screen-pop, composed
once in a read transaction and sent to every console open at that agent's station. Supervisors
get the wallboard snapshot when they connect and again after changes, at most every
``WALLBOARD_INTERVAL`` seconds.

Every connection has its own bounded outbox and its own writer, so a slow or stuck browser only
loses its own oldest messages; it never holds up the hub or the other consoles.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import WSMsgType, web
from sqlalchemy.orm import Session

from callcenter.auth.actor import Actor
from callcenter.auth.roles import Permission
from callcenter.calls.callbacks import CallbackListed
from callcenter.calls.live import (
    AgentAnswered,
    AgentRingEnded,
    AgentRinging,
    AgentStateChanged,
    Change,
    LiveState,
)
from callcenter.calls.screenpop import screen_pop
from callcenter.events import EventBus
from callcenter.storage.database import Database

log = logging.getLogger(__name__)

OUTBOX_LIMIT = 200
WALLBOARD_INTERVAL = 0.5
HEARTBEAT_SECONDS = 20.0
MAX_INCOMING_BYTES = 4096


@dataclass(eq=False)
class Console:
    """One open WebSocket: an agent's console (with a station) and/or a supervisor's wallboard."""

    username: str
    interface: str | None
    watches: bool
    outbox: asyncio.Queue[str] = field(default_factory=lambda: asyncio.Queue(OUTBOX_LIMIT))
    dropped: int = 0
    opened: float = field(default_factory=time.monotonic)

    def offer(self, text: str) -> None:
        if self.outbox.full():
            self.outbox.get_nowait()
            self.dropped += 1
        self.outbox.put_nowait(text)


class LiveHub:
    def __init__(
        self, bus: EventBus, database: Database, state: LiveState, clock: Callable[[], float] = time.time
    ) -> None:
        self._bus = bus
        self._database = database
        self._state = state
        self._clock = clock
        self._consoles: set[Console] = set()
        self._wallboard_dirty = asyncio.Event()
        self.pops_sent = 0

    # ---- connections ---------------------------------------------------------------------
    def attach(self, console: Console) -> None:
        self._consoles.add(console)
        if console.watches:
            console.offer(self._wallboard())

    def detach(self, console: Console) -> None:
        self._consoles.discard(console)

    def consoles_at(self, interface: str) -> list[Console]:
        return [c for c in self._consoles if c.interface == interface]

    # ---- the owned task ------------------------------------------------------------------
    async def run(self) -> None:
        wallboard = asyncio.create_task(self._wallboard_loop(), name="live-wallboard")
        try:
            async with self._bus.subscribe() as events:
                while True:
                    change = await events.get()
                    await self._route(change)
        finally:
            wallboard.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await wallboard

    async def _route(self, change: object) -> None:
        if isinstance(change, (AgentRinging, AgentAnswered)):
            await self._pop(change)
        elif isinstance(change, (AgentRingEnded, AgentStateChanged)):
            self._to_station(change.interface, _change_json(change))
        elif isinstance(change, CallbackListed):
            # Every console shows the callback list; tell them to fetch it again.
            text = json.dumps({"type": "callbacks", "queue": change.queue})
            for console in self._consoles:
                if console.interface is not None:
                    console.offer(text)
        if isinstance(change, Change):
            self._wallboard_dirty.set()

    async def _pop(self, change: AgentRinging | AgentAnswered) -> None:
        consoles = self.consoles_at(change.interface)
        if not consoles:
            return
        stage = "ringing" if isinstance(change, AgentRinging) else "answered"

        def compose(session: Session | None) -> dict[str, object]:
            return screen_pop(
                session,
                stage=stage,
                system_name=change.system_name,
                linkedid=change.linkedid,
                caller_number=change.caller_number,
                caller_name=change.caller_name,
                queue=change.queue,
                wait=change.wait,
                variables=change.variables,
            )

        try:
            pop = await self._database.run(compose)
        except Exception:
            # The agent still gets the call and what AMI told us; history can wait.
            log.exception("screen-pop for call %s: database lookup failed", change.linkedid)
            pop = compose(None)
        self._to_station(change.interface, json.dumps(pop, default=str))
        self.pops_sent += 1

    def _to_station(self, interface: str, text: str) -> None:
        for console in self.consoles_at(interface):
            console.offer(text)

    async def _wallboard_loop(self) -> None:
        while True:
            await self._wallboard_dirty.wait()
            self._wallboard_dirty.clear()
            watchers = [c for c in self._consoles if c.watches]
            if watchers:
                text = self._wallboard()
                for console in watchers:
                    console.offer(text)
            await asyncio.sleep(WALLBOARD_INTERVAL)  # a burst of changes makes one update

    def _wallboard(self) -> str:
        return json.dumps(
            {"type": "wallboard", "at": self._clock(), "state": self._state.snapshot(self._clock())},
            default=str,
        )


def _change_json(change: AgentRingEnded | AgentStateChanged) -> str:
    if isinstance(change, AgentRingEnded):
        body: dict[str, object] = {"type": "ring_ended", "linkedid": change.linkedid, "reason": change.reason}
    else:
        body = {
            "type": "agent_state",
            "state": change.state.value if change.state is not None else None,
            "paused_reason": change.paused_reason,
            "since": change.since,
        }
    return json.dumps(body)


async def serve_console(
    request: web.Request, hub: LiveHub, who: Actor, interface: str | None
) -> web.StreamResponse:
    """Run one console's WebSocket until either side closes it."""
    origin = request.headers.get("Origin")
    if origin is not None and origin.split("://", 1)[-1] != request.host:
        # A page on another site must not ride the agent's session cookie into this socket.
        raise web.HTTPForbidden(reason="cross-origin WebSocket refused")
    ws = web.WebSocketResponse(heartbeat=HEARTBEAT_SECONDS, max_msg_size=MAX_INCOMING_BYTES)
    if not ws.can_prepare(request).ok:
        raise web.HTTPBadRequest(reason="this endpoint speaks WebSocket only")
    await ws.prepare(request)
    console = Console(username=who.username, interface=interface, watches=who.can(Permission.LIVE_WATCH))
    hub.attach(console)
    await ws.send_str(
        json.dumps({"type": "hello", "user": who.username, "station": interface, "watches": console.watches})
    )
    reader = asyncio.create_task(_read(ws), name=f"console-read-{who.username}")
    try:
        while not reader.done():
            getter = asyncio.ensure_future(console.outbox.get())
            done, _ = await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
            if getter not in done:
                getter.cancel()
                break
            await ws.send_str(getter.result())
    except (ConnectionResetError, RuntimeError):
        pass  # the browser went away mid-send
    finally:
        hub.detach(console)
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
        await ws.close()
    return ws


async def _read(ws: web.WebSocketResponse) -> None:
    """Consoles only listen; anything they send is read and dropped so pings and close work."""
    async for message in ws:
        if message.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
            return
