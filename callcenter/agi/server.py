"""FastAGI server: one asyncio task per call, bounded reads, idle timeouts, owned sessions.

Asterisk connects for each ``AGI(agi://host:port/<route>)``, sends its ``agi_*`` variables, and
then answers one command at a time. A peer that sends too much, stays silent, or disappears mid
command only ends its own session. The server is written here rather than taken from
panoramisk's ``fast_agi`` because that one reads without bounds or timeouts and ignores the
``HANGUP`` notice Asterisk sends when the caller hangs up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from callcenter.agi.commands import AgiCommand, AgiReply, parse_reply
from callcenter.events import EventBus

log = logging.getLogger(__name__)

MAX_LINE = 8192
MAX_ENV_LINES = 200


class AgiHangup(Exception):
    """The caller hung up (or Asterisk closed the session); the flow just stops."""


class AgiProtocolError(Exception):
    """The peer broke the AGI protocol (garbage, oversized or missing data)."""


@dataclass(frozen=True)
class IvrCommandSent:
    """Published before each AGI command: what the IVR is doing on which call, right now."""

    route: str
    uniqueid: str
    command: str


class AgiSession:
    """One call's FastAGI conversation."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        env: Mapping[str, str],
        timeout: float,
        bus: EventBus | None = None,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._bus = bus
        self.env = MappingProxyType(dict(env))
        self.timeout = timeout
        self.hung_up = False

    @property
    def route(self) -> str:
        return route_of(self.env)

    @property
    def uniqueid(self) -> str:
        return self.env.get("agi_uniqueid", "")

    async def run(self, command: AgiCommand, timeout: float | None = None) -> AgiReply:
        """Send one command and return Asterisk's reply.

        ``timeout`` is how long the reply may take (a prompt plus digit collection can take a
        while); the default is the session's idle timeout.
        """
        if self.hung_up:
            raise AgiHangup("caller already hung up")
        line = command.render()
        log.debug("call %s: AGI %s", self.uniqueid, line)
        if self._bus is not None:
            self._bus.publish(IvrCommandSent(self.route, self.uniqueid, line))
        self._writer.write((line + "\n").encode("utf-8"))
        # asyncio.timeout, not wait_for: wait_for makes a task per await, which showed up as
        # the main per-command cost in bench/agi.py. Drain only waits when the buffer is full.
        if self._writer.transport.get_write_buffer_size():
            async with asyncio.timeout(self.timeout):
                await self._writer.drain()
        wait = timeout if timeout is not None else self.timeout
        while True:
            text = await self._read_line(wait)
            if text == "HANGUP":
                # Asterisk's notice that the channel is gone; the reply to our command follows.
                self.hung_up = True
                continue
            if text.startswith("520-"):
                usage = [text]
                while not text.startswith("520 "):
                    text = await self._read_line(self.timeout)
                    usage.append(text)
                raise AgiProtocolError(f"Asterisk rejected {command.render()!r}: {usage[0][4:]}")
            try:
                reply = parse_reply(text)
            except ValueError as exc:
                raise AgiProtocolError(str(exc)) from None
            log.debug("call %s: AGI reply %s", self.uniqueid, text)
            if reply.code == 100:
                continue
            if reply.code == 511 or (self.hung_up and reply.result.startswith("-1")):
                self.hung_up = True
                raise AgiHangup("caller hung up")
            return reply

    async def _read_line(self, timeout: float) -> str:
        try:
            async with asyncio.timeout(timeout):
                raw = await self._reader.readline()
        except ValueError:  # longer than the reader's limit
            raise AgiProtocolError("AGI line too long") from None
        if not raw:
            self.hung_up = True
            raise AgiHangup("Asterisk closed the FastAGI connection")
        return raw.decode("utf-8", "replace").rstrip("\r\n")


Handler = Callable[[AgiSession], Awaitable[None]]


def route_table(routes: Iterable[tuple[str, Handler]]) -> dict[str, Handler]:
    """An explicit route table; the same route twice is a programming error."""
    table: dict[str, Handler] = {}
    for path, handler in routes:
        if path in table:
            raise ValueError(f"duplicate FastAGI route {path!r}")
        table[path] = handler
    return table


def route_of(env: Mapping[str, str]) -> str:
    script = env.get("agi_network_script", "")
    return script.split("?", 1)[0].strip("/")


async def read_environment(reader: asyncio.StreamReader) -> dict[str, str]:
    env: dict[str, str] = {}
    for _ in range(MAX_ENV_LINES):
        try:
            raw = await reader.readline()
        except ValueError:
            raise AgiProtocolError("AGI variable line too long") from None
        if not raw:
            raise AgiProtocolError("connection closed before the AGI variables ended")
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        if not line:
            if "agi_network_script" not in env and "agi_request" not in env:
                raise AgiProtocolError("no agi_request in the AGI variables")
            return env
        key, sep, value = line.partition(":")
        if not sep or not key.startswith("agi_"):
            raise AgiProtocolError(f"not an AGI variable line: {line[:60]!r}")
        env[key.strip()] = value.strip()
    raise AgiProtocolError("too many AGI variable lines")


class FastAgiServer:
    def __init__(
        self,
        host: str,
        port: int,
        routes: Mapping[str, Handler],
        *,
        unknown_route: Handler | None = None,
        idle_timeout: float = 30.0,
        max_sessions: int = 500,
        bus: EventBus | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self._routes = dict(routes)
        self._unknown_route = unknown_route
        self.idle_timeout = idle_timeout
        self.max_sessions = max_sessions
        self._bus = bus
        self._server: asyncio.Server | None = None
        self._sessions: set[asyncio.Task[None]] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        self.sessions_total = 0

    @property
    def listening(self) -> bool:
        return self._server is not None and self._server.is_serving()

    @property
    def active_sessions(self) -> int:
        return len(self._sessions)

    @property
    def bound_port(self) -> int:
        if self._server is None or not self._server.sockets:
            return self.port
        return int(self._server.sockets[0].getsockname()[1])

    async def wait_idle(self) -> None:
        """Return once no session is open (for orderly shutdowns and tests)."""
        await self._idle.wait()

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._accept, self.host, self.port, limit=MAX_LINE, reuse_address=True
        )
        routes = ", ".join(sorted(self._routes)) or "all to the IVR flows"
        log.info("FastAGI listening on %s:%s (routes: %s)", self.host, self.bound_port, routes)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._sessions):
            task.cancel()
        if self._sessions:
            await asyncio.gather(*self._sessions, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        log.info("FastAGI stopped")

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if len(self._sessions) >= self.max_sessions:
            log.warning("FastAGI: %d sessions open, refusing a new one", len(self._sessions))
            writer.close()
            return
        self._sessions.add(task)
        self._idle.clear()
        self.sessions_total += 1
        try:
            await self._serve(reader, writer)
        finally:
            self._sessions.discard(task)
            if not self._sessions:
                self._idle.set()
            writer.close()
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        try:
            async with asyncio.timeout(self.idle_timeout):
                env = await read_environment(reader)
        except (AgiProtocolError, TimeoutError, ConnectionError) as exc:
            log.warning("FastAGI peer %s dropped before a request: %s", peer, exc or type(exc).__name__)
            return
        session = AgiSession(reader, writer, env, self.idle_timeout, self._bus)
        handler = self._routes.get(session.route)
        if handler is None:
            handler = self._unknown_route
            if handler is None:
                log.warning("FastAGI: unknown route %r (call %s)", session.route, session.uniqueid)
                return
        try:
            await handler(session)
        except AgiHangup:
            log.info("call %s hung up during the IVR (route %s)", session.uniqueid, session.route)
        except (AgiProtocolError, TimeoutError, ConnectionError) as exc:
            log.warning("call %s: FastAGI session ended: %s", session.uniqueid, exc or type(exc).__name__)
        except Exception:
            log.exception("call %s: IVR handler for route %r failed", session.uniqueid, session.route)
