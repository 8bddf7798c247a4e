"""asyncio-facing SIP phones backed by pjsua2 running in a child process.

pjsua2 allows exactly one ``Endpoint`` per process, so every phone object
starts its own worker process (``python -m callcenter.sip.worker``) and talks
to it over a Unix socketpair with one JSON object per line (see
:mod:`callcenter.sip._protocol`).  The event loop reads the socket through an
ordinary :class:`asyncio.StreamReader`, so nothing here ever blocks the loop;
every ``wait_*`` method waits on state changes pushed by the worker, always
with a timeout.

Example::

    async with AgentPhone(username="agent1", password="pw", host="127.0.0.1",
                          port=5060) as agent:
        await agent.wait_registered()
        call = await agent.wait_ringing(timeout=30)
        await agent.answer()
        await agent.record(Path("/tmp/agent1.wav"))
        await agent.wait_disconnected(timeout=300)
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import logging
import os
import re
import socket
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import Any, Self, TypeVar

import callcenter
from callcenter.sip import _protocol as proto
from callcenter.sip.uri import build_target_uri

log = logging.getLogger(__name__)

_T = TypeVar("_T")

START_TIMEOUT_S = 15.0
REQUEST_TIMEOUT_S = 10.0
# Worker needs up to ~3 s to hang up calls gracefully plus libDestroy.
STOP_TIMEOUT_S = 8.0

_DTMF_RE = re.compile(r"^[0-9A-Da-d*#]{1,64}$")


class PhoneError(Exception):
    """A phone operation failed.  ``status_code``/``reason`` carry the SIP
    final response when there was one (e.g. 486 / "Busy Here")."""

    def __init__(self, message: str, *, status_code: int | None = None, reason: str | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.reason = reason


class PhoneTimeout(PhoneError, TimeoutError):
    """A ``wait_*``/``dial``/``answer`` did not complete within its timeout."""


@dataclass(frozen=True)
class RegistrationState:
    status_code: int
    reason: str
    active: bool
    expiration: int


@dataclass(frozen=True)
class IncomingCall:
    """An INVITE that reached the phone."""

    call_id: str
    """SIP Call-ID header value."""
    remote_uri: str
    """The From value as pjsua2 reports it, e.g. ``"Budi" <sip:0812@host>``."""
    uri: str
    """The plain caller URI (``sip:0812@host``)."""
    display_name: str | None
    number: str | None
    """User part of the caller URI: the caller number/extension."""
    local_uri: str
    remote_contact: str
    headers: Mapping[str, str] = field(default_factory=dict)
    """Headers of the INVITE, lower-case names, first occurrence only."""


@dataclass(frozen=True)
class Disconnected:
    """How a call ended.  ``status_code`` is the last SIP status seen (200 for
    a normal BYE after answer, 486/603/487/408... for calls never answered)."""

    status_code: int
    reason: str
    call_id: str
    duration: float
    """Seconds the call was connected (0 if never answered)."""
    local_hangup: bool
    """True if this phone hung up (or was stopped)."""

    def error(self, what: str) -> PhoneError:
        """A PhoneError saying ``what`` happened to this call, with its SIP status."""
        return PhoneError(
            f"{what}: {self.status_code} {self.reason}", status_code=self.status_code, reason=self.reason
        )


@dataclass(frozen=True)
class PhoneEvent:
    """Pushed to listeners registered with :meth:`SipPhone.add_listener`.

    ``kind`` is one of ``registration``, ``ringing``, ``call_state``,
    ``connected``, ``disconnected``, ``media``, ``dtmf``, ``playback_done``,
    ``recording_done``, ``worker_exited``.  ``detail`` is the typed object for
    ``registration`` (:class:`RegistrationState`), ``ringing``
    (:class:`IncomingCall`) and ``disconnected`` (:class:`Disconnected`).
    """

    kind: str
    data: Mapping[str, Any]
    detail: RegistrationState | IncomingCall | Disconnected | None = None


@dataclass
class _CallRecord:
    token: str
    state: str = proto.STATE_NULL
    call_id: str = ""
    incoming: IncomingCall | None = None
    disconnected: Disconnected | None = None
    last_status: tuple[int, str] = (0, "")


def _abs_path(path: Path | str) -> str:
    """Absolute path for the worker (whose cwd may differ).  Only getcwd():
    no file-system access, so fine to call from the event loop."""
    return os.path.abspath(os.fspath(path))


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    pkg_root = str(Path(callcenter.__file__).resolve().parent.parent)
    old = env.get("PYTHONPATH")
    env["PYTHONPATH"] = pkg_root if not old else f"{pkg_root}{os.pathsep}{old}"
    return env


class SipPhone:
    """Base class of :class:`CitizenPhone` and :class:`AgentPhone`.

    One phone = one worker process = one SIP UDP transport on 127.0.0.1 and
    at most one call at a time (a second incoming call is answered
    ``486 Busy Here`` by the worker).
    """

    def __init__(
        self,
        *,
        username: str,
        password: str | None = None,
        host: str = "127.0.0.1",
        port: int = 5060,
        register: bool = True,
        local_port: int = 0,
        log_path: Path | None = None,
        log_level: int = 4,
        auto_answer: bool = False,
        display_name: str | None = None,
        reg_expires: int = 300,
    ) -> None:
        if not username or any(ch.isspace() or ch in '<>"@:' for ch in username):
            raise ValueError(f"invalid SIP username {username!r}")
        if display_name is not None and ('"' in display_name or "\n" in display_name):
            raise ValueError("display_name must not contain quotes or newlines")
        self.username = username
        self.password = password
        self.host = host
        self.port = int(port)
        self.register = register
        self.auto_answer = auto_answer
        self.display_name = display_name
        self._requested_local_port = int(local_port)
        self._log_path = log_path
        self._log_level = log_level
        self._reg_expires = reg_expires

        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._ids = itertools.count(1)
        self._cond: asyncio.Condition | None = None
        self._closed = False
        self._closed_reason = ""
        self._stopping = False
        self._returncode: int | None = None

        self._local_port = 0
        self._uri = ""
        self._registration: RegistrationState | None = None
        self._calls: dict[str, _CallRecord] = {}
        self._current: _CallRecord | None = None
        # Incoming calls not yet returned by wait_ringing() (bounded).
        self._incoming: collections.deque[IncomingCall] = collections.deque(maxlen=32)
        self._out_seq = 0
        self._dtmf_all: list[str] = []
        self._dtmf_unread = ""
        self._playback_key: str | None = None
        self._playback_seq = 0
        self._playbacks_done: dict[str, bool] = {}
        self._listeners: list[Callable[[PhoneEvent], None]] = []

    # ------------------------------------------------------------------ state
    @property
    def local_port(self) -> int:
        """UDP port the phone's SIP transport is bound to (after start())."""
        return self._local_port

    @property
    def uri(self) -> str:
        """``sip:username@127.0.0.1:local_port`` — dial this to reach the phone directly."""
        return self._uri

    @property
    def is_running(self) -> bool:
        return self._proc is not None and not self._closed

    @property
    def pid(self) -> int | None:
        """Process id of the worker (None before start / after stop)."""
        return self._proc.pid if self._proc is not None else None

    @property
    def returncode(self) -> int | None:
        """Exit status of the last worker process once it has been reaped
        (0 = clean shutdown; negative = killed by that signal, e.g. -6 abort)."""
        return self._returncode

    @property
    def registration(self) -> RegistrationState | None:
        return self._registration

    @property
    def call_state(self) -> str | None:
        """State of the current/last call (``CALLING``, ``EARLY``, ``CONFIRMED``,
        ``DISCONNECTED``...), None if there has been no call."""
        return self._current.state if self._current is not None else None

    @property
    def received_dtmf(self) -> str:
        """All DTMF digits received during the current/last call."""
        return "".join(self._dtmf_all)

    def add_listener(self, callback: Callable[[PhoneEvent], None]) -> Callable[[], None]:
        """Call *callback* (synchronously, in the event loop) for every event.
        Returns a function that removes the listener."""
        self._listeners.append(callback)

        def remove() -> None:
            with contextlib.suppress(ValueError):
                self._listeners.remove(callback)

        return remove

    # -------------------------------------------------------------- lifecycle
    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self, timeout: float = START_TIMEOUT_S) -> None:
        """Spawn the worker process and bring up pjsua2.  Does not wait for
        registration (see :meth:`wait_registered`)."""
        if self._proc is not None:
            raise PhoneError("phone already started")
        if self._closed:
            raise PhoneError("a stopped phone cannot be restarted; create a new one")
        self._cond = asyncio.Condition()
        parent_sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        worker_level = logging.getLogger("callcenter.sip.worker").getEffectiveLevel()
        try:
            try:
                self._proc = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "callcenter.sip.worker",
                    "--fd",
                    str(child_sock.fileno()),
                    "--log-level",
                    logging.getLevelName(max(worker_level, logging.DEBUG)),
                    pass_fds=(child_sock.fileno(),),
                    stdin=asyncio.subprocess.DEVNULL,
                    # pjlib prints a banner to stdout before its log config applies.
                    stdout=asyncio.subprocess.DEVNULL,
                    env=_child_env(),
                )
            finally:
                child_sock.close()
            self._reader, self._writer = await asyncio.open_unix_connection(
                sock=parent_sock, limit=proto.MAX_MESSAGE_BYTES
            )
        except BaseException:
            parent_sock.close()
            await self._reap()
            raise
        self._reader_task = asyncio.create_task(self._read_loop(), name=f"sip-phone-{self.username}-reader")
        config = {
            "username": self.username,
            "password": self.password,
            "host": self.host,
            "port": self.port,
            "register": self.register,
            "local_port": self._requested_local_port,
            "log_path": _abs_path(self._log_path) if self._log_path is not None else None,
            "log_level": self._log_level,
            "auto_answer": self.auto_answer,
            "display_name": self.display_name,
            "reg_expires": self._reg_expires,
        }
        try:
            result = await self._request("init", timeout=timeout, **config)
        except BaseException:
            await self.stop()
            raise
        self._local_port = int(result["local_port"])
        self._uri = str(result["uri"])
        log.debug("phone %s started (pid %s, %s)", self.username, self.pid, self._uri)

    async def stop(self) -> None:
        """Hang up, close recordings, shut pjsua2 down and reap the worker.
        Safe to call more than once and while a call is up."""
        if self._proc is None or self._stopping:
            return
        self._stopping = True
        try:
            if not self._closed:
                try:
                    await self._request("stop", timeout=2.0)
                except PhoneError as exc:
                    log.debug("stop request failed: %s", exc)
            await self._reap()
            if self._reader_task is not None:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(asyncio.shield(self._reader_task), 2.0)
                if not self._reader_task.done():
                    self._reader_task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await self._reader_task
            if self._writer is not None:
                self._writer.close()
                with contextlib.suppress(OSError):
                    await self._writer.wait_closed()
        finally:
            self._proc = None
            self._writer = None
            self._reader = None
            self._reader_task = None
            self._stopping = False
            await self._mark_closed("phone stopped")

    async def _reap(self) -> None:
        proc = self._proc
        if proc is None:
            return
        try:
            try:
                await asyncio.wait_for(proc.wait(), STOP_TIMEOUT_S)
            except TimeoutError:
                log.warning("SIP worker %s did not exit; terminating", proc.pid)
                with contextlib.suppress(ProcessLookupError):
                    proc.terminate()
                try:
                    await asyncio.wait_for(proc.wait(), 3.0)
                except TimeoutError:
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
                    await proc.wait()
        except asyncio.CancelledError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            raise
        self._returncode = proc.returncode
        if proc.returncode not in (0, None):
            log.warning("SIP worker %s exited with status %s", proc.pid, proc.returncode)

    # ------------------------------------------------------------ plumbing
    async def _request(self, cmd: str, *, timeout: float = REQUEST_TIMEOUT_S, **args: Any) -> Any:
        writer = self._writer
        if writer is None or self._closed:
            why = self._closed_reason or "not started"
            raise PhoneError(f"cannot {cmd}: phone is not running ({why})")
        msg_id = next(self._ids)
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[msg_id] = fut
        try:
            writer.write(proto.encode({"id": msg_id, "cmd": cmd, "args": args}))
            await writer.drain()
            async with asyncio.timeout(timeout):
                reply = await fut
        except TimeoutError:
            raise PhoneTimeout(f"SIP worker did not answer {cmd!r} within {timeout:g} s") from None
        except (ConnectionError, OSError) as exc:
            raise PhoneError(f"cannot {cmd}: lost connection to SIP worker ({exc})") from None
        finally:
            self._pending.pop(msg_id, None)
        if not reply.get("ok"):
            code = reply.get("status_code")
            raise PhoneError(
                str(reply.get("error") or f"{cmd} failed"),
                status_code=int(code) if code is not None else None,
            )
        return reply.get("result")

    async def _read_loop(self) -> None:
        reader = self._reader
        assert reader is not None
        reason = "SIP worker exited"
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                try:
                    msg = proto.decode(line)
                except ValueError:
                    log.error("malformed message from SIP worker: %r", line[:200])
                    continue
                if msg.get("type") == "reply":
                    fut = self._pending.get(int(msg.get("id", 0)))
                    if fut is not None and not fut.done():
                        fut.set_result(msg)
                elif msg.get("type") == "event":
                    self._on_event(str(msg.get("event")), dict(msg.get("data") or {}))
                    await self._notify()
        except (ConnectionError, OSError, ValueError) as exc:
            reason = f"lost connection to SIP worker: {exc}"
        finally:
            await self._mark_closed(reason)

    async def _mark_closed(self, reason: str) -> None:
        if self._closed:
            return
        self._closed = True
        self._closed_reason = reason
        for fut in self._pending.values():
            if not fut.done():
                fut.set_result({"ok": False, "error": reason})
        self._fire(PhoneEvent("worker_exited", {"reason": reason}))
        await self._notify()

    async def _notify(self) -> None:
        if self._cond is None:
            return
        async with self._cond:
            self._cond.notify_all()

    def _fire(self, event: PhoneEvent) -> None:
        for callback in list(self._listeners):
            try:
                callback(event)
            except Exception:
                log.exception("phone event listener failed")

    def _new_call(self, rec: _CallRecord) -> None:
        self._current = rec
        self._dtmf_all = []
        self._dtmf_unread = ""
        # Keep memory bounded on long-running softphones.
        for token in [t for t, r in self._calls.items() if r.disconnected and r is not rec]:
            del self._calls[token]

    def _on_event(self, kind: str, data: dict[str, Any]) -> None:
        token = data.get("token")
        if kind == "reg_state":
            reg = RegistrationState(
                status_code=int(data["status_code"]),
                reason=str(data["reason"]),
                active=bool(data["active"]),
                expiration=int(data["expiration"]),
            )
            self._registration = reg
            self._fire(PhoneEvent("registration", data, reg))
        elif kind == "incoming" and isinstance(token, str):
            info = IncomingCall(
                call_id=str(data["call_id"]),
                remote_uri=str(data["remote_uri"]),
                uri=str(data["uri"]),
                display_name=data.get("display_name"),
                number=data.get("number"),
                local_uri=str(data["local_uri"]),
                remote_contact=str(data["remote_contact"]),
                headers=MappingProxyType(dict(data.get("headers") or {})),
            )
            rec = _CallRecord(token)
            self._calls[token] = rec
            rec.incoming = info
            rec.call_id = info.call_id
            rec.state = proto.STATE_INCOMING
            self._new_call(rec)
            self._incoming.append(info)
            self._fire(PhoneEvent("ringing", data, info))
        elif kind == "call_state" and isinstance(token, str):
            known = self._calls.get(token)
            if known is None:  # e.g. a second caller the worker answered 486 Busy Here
                self._fire(PhoneEvent("call_state", data))
                return
            rec = known
            rec.state = str(data["state"])
            rec.call_id = str(data.get("call_id") or rec.call_id)
            rec.last_status = (int(data.get("status_code") or 0), str(data.get("reason") or ""))
            self._fire(PhoneEvent("call_state", data))
            if rec.state == proto.STATE_CONFIRMED:
                self._fire(PhoneEvent("connected", data))
            elif rec.state == proto.STATE_DISCONNECTED:
                disc = Disconnected(
                    status_code=int(data.get("status_code") or 0),
                    reason=str(data.get("reason") or ""),
                    call_id=rec.call_id,
                    duration=float(data.get("duration") or 0.0),
                    local_hangup=bool(data.get("local_hangup")),
                )
                rec.disconnected = disc
                self._fire(PhoneEvent("disconnected", data, disc))
        elif kind == "dtmf":
            if self._current is not None and token == self._current.token:
                digit = str(data["digit"])
                self._dtmf_all.append(digit)
                self._dtmf_unread += digit
            self._fire(PhoneEvent("dtmf", data))
        elif kind == "playback_done":
            self._playbacks_done[str(data.get("playback_id"))] = bool(data.get("completed"))
            self._fire(PhoneEvent("playback_done", data))
        else:
            self._fire(PhoneEvent(kind, data))

    async def _wait(self, predicate: Callable[[], _T | None], timeout: float, what: str) -> _T:
        cond = self._cond
        if cond is None:
            raise PhoneError(f"cannot wait for {what}: phone not started")
        try:
            async with asyncio.timeout(timeout):
                async with cond:
                    while True:
                        result = predicate()
                        if result is not None:
                            return result
                        if self._closed:
                            raise PhoneError(f"gave up waiting for {what}: {self._closed_reason}")
                        await cond.wait()
        except TimeoutError:
            raise PhoneTimeout(f"timed out after {timeout:g} s waiting for {what}") from None

    def _require_call(self) -> _CallRecord:
        if self._current is None:
            raise PhoneError("no call on this phone")
        return self._current

    # ----------------------------------------------------------- registration
    async def wait_registered(self, timeout: float = 10.0) -> RegistrationState:
        """Wait for a 2xx to REGISTER.  Raises PhoneError on a final failure
        (e.g. 401/403 with bad credentials, 408 when the registrar is down)."""
        if not self.register:
            raise PhoneError("phone was created with register=False")

        def check() -> RegistrationState | None:
            reg = self._registration
            if reg is None:
                return None
            if 200 <= reg.status_code < 300 and reg.active:
                return reg
            if reg.status_code >= 300:
                raise PhoneError(
                    f"registration of {self.username} at {self.host}:{self.port} failed: "
                    f"{reg.status_code} {reg.reason}",
                    status_code=reg.status_code,
                    reason=reg.reason,
                )
            return None

        return await self._wait(check, timeout, f"registration of {self.username}")

    # ------------------------------------------------------------------ calls
    async def dial(
        self,
        target: str,
        *,
        timeout: float = 30.0,
        headers: Mapping[str, str] | None = None,
    ) -> str:
        """Call *target* and return the SIP Call-ID once answered (CONFIRMED).

        *target*: a number/extension/name becomes ``sip:TARGET@host:port``;
        a ``sip:`` URI is used as is.  Raises :class:`PhoneError` with the SIP
        status if the call is rejected or fails, :class:`PhoneTimeout` (after
        hanging up) if it is not answered within *timeout* seconds.
        """
        try:
            uri = build_target_uri(target, self.host, self.port)
        except ValueError as exc:
            raise PhoneError(str(exc)) from None
        for name, value in (headers or {}).items():
            if not re.fullmatch(r"[A-Za-z0-9!%*_+`'~.-]+", name) or "\n" in value or "\r" in value:
                raise PhoneError(f"invalid SIP header {name!r}")
        if self._current is not None and self._current.disconnected is None:
            raise PhoneError("a call is already in progress on this phone")
        # The record exists before the request goes out so that a concurrent
        # hangup() (e.g. from another task while we ring) targets this call.
        self._out_seq += 1
        rec = _CallRecord(f"out-{self._out_seq}", state=proto.STATE_CALLING)
        self._calls[rec.token] = rec
        self._new_call(rec)
        try:
            result = await self._request("dial", uri=uri, token=rec.token, headers=dict(headers or {}))
        except PhoneError as exc:
            if rec.disconnected is None:
                rec.state = proto.STATE_DISCONNECTED
                rec.disconnected = Disconnected(
                    status_code=exc.status_code or 0,
                    reason=str(exc),
                    call_id="",
                    duration=0.0,
                    local_hangup=True,
                )
                await self._notify()
            raise
        rec.call_id = rec.call_id or str(result["call_id"])

        def answered() -> str | None:
            if rec.state == proto.STATE_CONFIRMED:
                return rec.call_id
            if rec.disconnected is not None:
                raise rec.disconnected.error(f"call to {uri} failed")
            return None

        try:
            return await self._wait(answered, timeout, f"{uri} to answer")
        except PhoneTimeout:
            with contextlib.suppress(PhoneError):
                await self._request("hangup", token=rec.token)
            raise

    async def wait_ringing(self, timeout: float = 10.0) -> IncomingCall:
        """Return the next incoming call not yet returned by this method
        (including one that arrived before the call)."""

        def check() -> IncomingCall | None:
            return self._incoming.popleft() if self._incoming else None

        return await self._wait(check, timeout, "an incoming call")

    async def answer(self, timeout: float = 10.0) -> None:
        """Answer the ringing call (200 OK) and wait until it is CONFIRMED.
        Raises PhoneError if the caller already hung up."""
        rec = self._require_call()
        if rec.disconnected is not None:
            raise rec.disconnected.error("cannot answer: call already ended")
        if rec.state != proto.STATE_CONFIRMED:
            await self._request("answer", token=rec.token)
        await self.wait_connected(timeout)

    async def reject(self, status_code: int = 486) -> None:
        """Reject the ringing call with *status_code* (486 Busy Here, 603 Decline...)."""
        rec = self._require_call()
        if not 300 <= status_code < 700:
            raise PhoneError(f"invalid rejection status {status_code}")
        await self._request("hangup", token=rec.token, status_code=status_code)

    async def wait_connected(self, timeout: float = 10.0) -> str:
        """Wait until the current call is CONFIRMED; returns its SIP Call-ID."""

        def check() -> str | None:
            rec = self._current
            if rec is None:
                return None
            if rec.state == proto.STATE_CONFIRMED:
                return rec.call_id
            if rec.disconnected is not None:
                raise rec.disconnected.error("call ended before it was connected")
            return None

        return await self._wait(check, timeout, "the call to be connected")

    async def hangup(self, timeout: float = 5.0) -> Disconnected | None:
        """Hang up the current call (BYE, CANCEL or a 603 for a ringing one)
        and wait until it is disconnected.  Returns None if there was no live
        call."""
        rec = self._current
        if rec is None or rec.disconnected is not None:
            return None
        await self._request("hangup", token=rec.token)
        return await self._wait(lambda: rec.disconnected, timeout, "the call to end")

    async def wait_disconnected(self, timeout: float = 10.0) -> Disconnected:
        """Wait until the current/last call has ended; returns how it ended.
        Any recording of that call is complete when this returns."""
        rec = self._require_call()
        return await self._wait(lambda: rec.disconnected, timeout, "the call to end")

    # ------------------------------------------------------------------ media
    async def send_dtmf(self, digits: str) -> None:
        """Queue RFC 2833 DTMF *digits* (0-9, A-D, *, #) on the connected call.
        Returns once queued; each digit takes roughly 100-200 ms on the wire."""
        if not _DTMF_RE.match(digits):
            raise PhoneError(f"invalid DTMF digits {digits!r}")
        self._require_call()
        await self._request("send_dtmf", digits=digits.upper(), token=self._current_token())

    async def wait_dtmf(self, count: int = 1, timeout: float = 10.0) -> str:
        """Wait for *count* DTMF digits not yet returned by this method and
        return them (received digits are buffered per call)."""
        if count < 1:
            raise ValueError("count must be >= 1")

        def check() -> str | None:
            if len(self._dtmf_unread) >= count:
                digits = self._dtmf_unread[:count]
                self._dtmf_unread = self._dtmf_unread[count:]
                return digits
            return None

        return await self._wait(check, timeout, f"{count} DTMF digit(s)")

    async def play(self, wav_path: Path | str) -> None:
        """Start playing a WAV file (16-bit PCM mono; any rate) into the call
        and return immediately.  If media is not up yet it starts when it is."""
        path = _abs_path(wav_path)
        self._require_call()
        self._playback_seq += 1
        key = str(self._playback_seq)
        self._playbacks_done.clear()  # only the latest playback can be waited for
        await self._request("play", path=path, playback_id=key, token=self._current_token())
        self._playback_key = key

    async def wait_playback_done(self, timeout: float = 30.0) -> bool:
        """Wait for the last :meth:`play` to finish.  True if the file played to
        the end, False if it was interrupted (hangup, stop, another play)."""
        key = self._playback_key
        if key is None:
            raise PhoneError("nothing has been played")

        def check() -> tuple[bool] | None:
            done = self._playbacks_done.get(key)
            return None if done is None else (done,)

        return (await self._wait(check, timeout, "playback to finish"))[0]

    async def stop_playback(self) -> None:
        await self._request("stop_playback", token=self._current_token())

    async def record(self, wav_path: Path | str) -> None:
        """Start recording what this phone hears on the current call to a WAV
        file (8 kHz, 16-bit mono PCM).  The file is finalised (header written)
        by :meth:`stop_recording`, hangup, remote hangup or :meth:`stop`."""
        path = _abs_path(wav_path)
        self._require_call()
        await self._request("record", path=path, token=self._current_token())

    async def stop_recording(self) -> None:
        """Stop recording; the WAV file is complete when this returns."""
        await self._request("stop_recording", token=self._current_token())

    def _current_token(self) -> str:
        return self._require_call().token


class CitizenPhone(SipPhone):
    """A citizen's test line: dials the hotline, sends DTMF, plays speech,
    records what it hears.  Incoming calls (e.g. a call-back) also work."""


class AgentPhone(SipPhone):
    """An agent station: registers, rings on incoming calls
    (:meth:`wait_ringing`), answers (or ``auto_answer=True``), records,
    collects DTMF (:meth:`wait_dtmf`)."""
