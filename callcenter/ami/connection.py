"""One AMI connection to one Asterisk server, kept alive by the engine.

panoramisk does the wire work (framing, parsing messages, matching responses to actions);
this class owns the life cycle that its ``Manager`` mixes together: connect with a timeout, log
in and tell a wrong secret apart from an unreachable server, wait for ``FullyBooted``, ping to
detect a silent dead link, reconnect with exponential backoff, and hand events to their
handlers one at a time in arrival order, from a queue so that reading the socket never waits
for a handler (a slow reader would trip Asterisk's write timeout and lose the connection).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import inspect
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from panoramisk.ami_protocol import AMIProtocol
from panoramisk.message import Message

EOL = "\r\n"
_QUOTED_KEYS = frozenset(key.lower() for key in Message.quoted_keys)

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 256 * 1024
EVENT_QUEUE_LIMIT = 100_000

EventHandler = Callable[[Message], Awaitable[None] | None]


class AmiState(enum.StrEnum):
    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    LOGIN_FAILED = "login_failed"
    CONNECTED = "connected"


class AmiError(Exception):
    """An action could not be sent or was refused."""


class AmiLoginError(AmiError):
    pass


@dataclass(frozen=True)
class AmiStatus:
    system_name: str
    address: str
    state: AmiState
    fully_booted: bool
    error: str
    connects: int
    since: float

    def as_dict(self) -> dict[str, object]:
        return {
            "system_name": self.system_name,
            "address": self.address,
            "state": self.state.value,
            "connected": self.state is AmiState.CONNECTED,
            "fully_booted": self.fully_booted,
            "error": self.error or None,
            "connects": self.connects,
            "since": self.since,
        }


class _BoundedProtocol(AMIProtocol):  # type: ignore[misc]
    """panoramisk's protocol with a cap on an unfinished message, so a peer cannot grow it, and a
    quicker way through event blocks.

    Events are most of what Asterisk sends, and building them through ``Message.from_line`` and
    ``CaseInsensitiveDict.update`` was the largest cost under load (bench/ami.py). Event blocks
    are parsed here into the same ``Message`` (same keys, the same lists for repeated headers,
    the same ``content`` entry); everything else, and every message's routing (responses to
    their actions, list items, events), still goes through panoramisk.
    """

    def data_received(self, data: bytes) -> None:
        text = data.decode(getattr(self, "encoding", "ascii"), "ignore")
        if getattr(self, "version", None) is None and text.startswith("Asterisk Call Manager/"):
            self.version = text.partition(EOL)[0].partition("/")[2].strip()
        if self.queue:
            text = self.queue.popleft() + text
        blocks = text.split(EOL + EOL)
        self.queue.append(blocks.pop())
        for raw in blocks:
            block = raw.strip()
            message = _event(block) if block.startswith("Event: ") else Message.from_line(block)
            if message is not None:
                self.handle_message(message)
        if self.queue and len(self.queue[0]) > MAX_MESSAGE_BYTES:
            log.warning("AMI message larger than %d bytes; dropping the connection", MAX_MESSAGE_BYTES)
            self.transport.abort()


def _event(block: str) -> Message:
    """``Message.from_line`` for an event block, without the per-header ``__setitem__`` calls."""
    store: dict[str, tuple[str, Any]] = {}
    for line in block.split(EOL):
        key, found, value = line.partition(": ")
        if not found:
            continue
        lower = key.lower()
        if lower in _QUOTED_KEYS:
            value = unquote(value).strip()
        seen = store.get(lower)
        if seen is None:
            store[lower] = (key, value)
        else:
            # A repeated header (ChanVariable) becomes a list, as panoramisk makes it.
            earlier = seen[1]
            store[lower] = (key, [*earlier, value] if isinstance(earlier, list) else [earlier, value])
    store["content"] = ("content", "")
    message: Message = Message.__new__(Message)
    message._store = store
    message.manager = None
    return message


def _check_value(key: str, value: object) -> str:
    text = str(value)
    if "\r" in text or "\n" in text:
        # A line break would start a new AMI header: refuse rather than inject.
        raise AmiError(f"AMI action field {key!r} contains a line break")
    return text


class AmiConnection:
    def __init__(
        self,
        *,
        system_name: str,
        host: str,
        port: int,
        username: str,
        secret: str,
        handlers: Mapping[str, EventHandler],
        ping_interval: float = 5.0,
        max_backoff: float = 30.0,
        min_backoff: float = 1.0,
        connect_timeout: float = 5.0,
        on_booted: Callable[[AmiConnection], Awaitable[None]] | None = None,
    ) -> None:
        self.system_name = system_name
        self.host = host
        self.port = port
        self._username = username
        self._secret = secret
        self._handlers = {name.lower(): handler for name, handler in handlers.items()}
        self.ping_interval = ping_interval
        self.max_backoff = max_backoff
        self.min_backoff = min_backoff
        self.connect_timeout = connect_timeout
        # Run by the consumer when FullyBooted arrives (after every login), in event order: the
        # place to ask Asterisk for a snapshot of live state.
        self._on_booted = on_booted
        self._state = AmiState.DISCONNECTED
        self._error = "not connected yet"
        self._logged_error = ""
        self._since = time.time()
        self._connects = 0
        self._fully_booted = False
        self._protocol: Any = None
        self._lost: asyncio.Future[None] | None = None
        self._events: asyncio.Queue[Message] = asyncio.Queue(EVENT_QUEUE_LIMIT)
        # Replaced on every change; waiters hold the old one, which is set to wake them.
        self._changed = asyncio.Event()
        self._connected = asyncio.Event()
        self._booted = asyncio.Event()
        # panoramisk's protocol reads these from its factory.
        self.forgetable_actions = ("ping", "login")
        self.awaiting_actions: deque[Any] = deque()

    # ---- what others may look at --------------------------------------------------------
    @property
    def status(self) -> AmiStatus:
        return AmiStatus(
            system_name=self.system_name,
            address=f"{self.host}:{self.port}",
            state=self._state,
            fully_booted=self._fully_booted,
            error=self._error if self._state is not AmiState.CONNECTED else "",
            connects=self._connects,
            since=self._since,
        )

    async def wait_connected(self, timeout: float) -> None:
        await asyncio.wait_for(self._connected.wait(), timeout)

    async def wait_fully_booted(self, timeout: float) -> None:
        await asyncio.wait_for(self._booted.wait(), timeout)

    async def wait_status(self, predicate: Callable[[AmiStatus], bool], timeout: float) -> AmiStatus:
        """Wait until the connection's status satisfies ``predicate`` (for health checks, tests)."""
        async with asyncio.timeout(timeout):
            while not predicate(self.status):
                await self._changed.wait()
        return self.status

    async def send_action(self, action: Mapping[str, object], timeout: float = 10.0) -> Any:
        """Send an action and return its response (a list of messages for event lists)."""
        if self._state is not AmiState.CONNECTED or self._protocol is None:
            raise AmiError(f"AMI {self.system_name} is not connected")
        clean = {_check_value("key", k): _check_value(str(k), v) for k, v in action.items()}
        future = self._protocol.send(clean)
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise AmiError(f"AMI action {clean.get('Action')!r} got no response in {timeout:.0f} s") from None

    # ---- the owned background tasks -----------------------------------------------------
    async def run(self) -> None:
        """Keep the connection up until cancelled."""
        consumer = asyncio.create_task(self._consume(), name=f"ami-events-{self.system_name}")
        backoff = self.min_backoff
        try:
            while True:
                started = time.monotonic()
                try:
                    await self._session()
                except AmiLoginError as exc:
                    self._set_state(AmiState.LOGIN_FAILED, f"AMI login as '{self._username}' refused: {exc}")
                except (OSError, TimeoutError) as exc:
                    reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
                    error = f"cannot reach AMI at {self.host}:{self.port}: {reason}"
                    self._set_state(AmiState.DISCONNECTED, error)
                if time.monotonic() - started > 60:
                    backoff = self.min_backoff  # it was up for a while: retry quickly
                delay = backoff * (0.8 + 0.4 * random.random())  # noqa: S311 - jitter, not crypto
                log.info("AMI %s: retrying in %.1f s", self.system_name, delay)
                await asyncio.sleep(delay)
                backoff = min(backoff * 2, self.max_backoff)
        finally:
            consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await consumer
            self._close()

    async def _session(self) -> None:
        loop = asyncio.get_running_loop()
        self._set_state(AmiState.CONNECTING, self._error)
        transport, protocol = await asyncio.wait_for(
            loop.create_connection(_BoundedProtocol, self.host, self.port), self.connect_timeout
        )
        protocol.factory = self
        protocol.encoding = "utf-8"
        protocol.log = log
        self._protocol = protocol
        self._lost = loop.create_future()
        pinger: asyncio.Task[None] | None = None
        try:
            login = protocol.send(
                {"Action": "Login", "Username": self._username, "Secret": self._secret, "Events": "on"}
            )
            reply = await asyncio.wait_for(login, self.connect_timeout)
            if not reply.success:
                raise AmiLoginError(reply.get("Message", "refused"))
            self._connects += 1
            self._set_state(AmiState.CONNECTED, "")
            log.info(
                "AMI %s: logged in to %s:%s as %s", self.system_name, self.host, self.port, self._username
            )
            pinger = asyncio.create_task(self._ping(), name=f"ami-ping-{self.system_name}")
            await self._lost
            self._set_state(AmiState.DISCONNECTED, f"AMI connection to {self.host}:{self.port} lost")
        finally:
            if pinger is not None:
                pinger.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await pinger
            self._close()
            transport.close()

    async def _ping(self) -> None:
        while True:
            await asyncio.sleep(self.ping_interval)
            try:
                await self.send_action({"Action": "Ping"}, timeout=self.ping_interval)
            except AmiError:
                log.warning("AMI %s: no answer to ping; dropping the link", self.system_name)
                if self._protocol is not None:
                    self._protocol.transport.abort()
                return

    async def _consume(self) -> None:
        events = self._events
        while True:
            message: Message | None = await events.get()
            # Take what is already queued without a new await per event: under load a read
            # brings many events, and each await costs a trip through the event loop.
            while message is not None:
                await self._handle(message)
                try:
                    message = events.get_nowait()
                except asyncio.QueueEmpty:
                    message = None

    async def _handle(self, message: Message) -> None:
        name = str(message.get("Event", ""))
        handler = self._handlers.get(name.lower())
        try:
            if handler is not None:
                result = handler(message)
                if result is not None and inspect.isawaitable(result):
                    await result
            if name == "FullyBooted" and self._on_booted is not None:
                # The event can be read before the login reply has been handled.
                await asyncio.wait_for(self._connected.wait(), self.connect_timeout)
                await self._on_booted(self)
        except (AmiError, TimeoutError) as exc:
            log.warning("AMI %s: after %s: %s", self.system_name, name, exc or "timed out")
        except Exception:
            log.exception("AMI %s: handler for %s failed", self.system_name, name)

    # ---- called by panoramisk's protocol ------------------------------------------------
    def dispatch(self, message: Message) -> None:
        name = str(message.get("Event", ""))
        if name == "FullyBooted":
            self._fully_booted = True
            self._booted.set()
            self._notify()
        try:
            self._events.put_nowait(message)
        except asyncio.QueueFull:
            log.error("AMI %s: event queue full; dropping %s", self.system_name, name)

    def connection_lost(self, exc: object) -> None:
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(None)

    # ---- internals ----------------------------------------------------------------------
    def _set_state(self, state: AmiState, error: str) -> None:
        if state in (AmiState.LOGIN_FAILED, AmiState.DISCONNECTED) and error != self._logged_error:
            # One line per distinct problem, not one per retry.
            log.error("%s", error)
            self._logged_error = error
        if state is AmiState.CONNECTED:
            self._logged_error = ""
        if state is not self._state:
            self._since = time.time()
        self._state = state
        self._error = error
        self._notify()
        if state is AmiState.CONNECTED:
            self._connected.set()
        else:
            self._connected.clear()
            self._fully_booted = False
            self._booted.clear()

    def _notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def _close(self) -> None:
        protocol, self._protocol = self._protocol, None
        if protocol is not None and not protocol.closed:
            protocol.close()
        # Actions that were waiting for a reply will never get one on this connection.
        while self.awaiting_actions:
            action = self.awaiting_actions.popleft()
            if not action.future.done():
                action.future.set_exception(AmiError("AMI connection lost"))
