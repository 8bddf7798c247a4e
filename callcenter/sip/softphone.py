"""Terminal softphone for an agent station (``callcenter phone``).

Registers an :class:`~callcenter.sip.phone.AgentPhone`, prints what happens
(``ringing from 0812...``, ``connected``, ``disconnected (200 Normal call
clearing)``) and reads one command per line:

=============  ==========================================
``a``          answer the ringing call
``h``          hang up (or reject a ringing call)
``d NUMBER``   dial a number/extension or a ``sip:`` URI
``t DIGITS``   send DTMF (RFC 2833): 0-9 * # A-D
``q``          quit (end of input quits too)
``help``/``?`` show the commands
=============  ==========================================
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from callcenter.sip.phone import AgentPhone, PhoneError, PhoneEvent

MAX_LINE = 200
REGISTER_TIMEOUT_S = 10.0
DIAL_TIMEOUT_S = 60.0

HELP = "commands: a = answer, h = hang up, d NUMBER = dial, t DIGITS = send DTMF, q = quit, help = this text"

_TOO_LONG = object()


class _LineReader:
    """Reads ``\\n``-terminated lines with a hard length bound.  An overlong
    line is discarded entirely (also the part that arrives later)."""

    def __init__(self, reader: asyncio.StreamReader, max_len: int = MAX_LINE) -> None:
        self._reader = reader
        self._max = max_len
        self._buf = bytearray()
        self._discarding = False
        self._eof = False

    async def readline(self) -> str | object | None:
        """A decoded line, ``_TOO_LONG``, or None at end of input."""
        while True:
            nl = self._buf.find(b"\n")
            if nl >= 0:
                line = bytes(self._buf[:nl])
                del self._buf[: nl + 1]
                if self._discarding:
                    self._discarding = False
                    return _TOO_LONG
                if len(line) > self._max:
                    return _TOO_LONG
                return line.decode("utf-8", "replace").strip()
            if len(self._buf) > self._max:
                self._buf.clear()
                self._discarding = True
            if self._eof:
                if self._discarding:
                    self._discarding = False
                    return _TOO_LONG
                if self._buf:
                    line = bytes(self._buf)
                    self._buf.clear()
                    return line.decode("utf-8", "replace").strip()
                return None
            chunk = await self._reader.read(4096)
            if not chunk:
                self._eof = True
            self._buf.extend(chunk)


class _Stdin:
    """The process's stdin as an asyncio StreamReader (restored on close)."""

    def __init__(self) -> None:
        self.reader = asyncio.StreamReader()
        self._transport: asyncio.BaseTransport | None = None
        self._fd: int | None = None
        self._was_blocking = True
        self._task: asyncio.Task[None] | None = None

    async def open(self) -> asyncio.StreamReader:
        loop = asyncio.get_running_loop()
        stream = sys.stdin
        if stream is None:
            self.reader.feed_eof()
            return self.reader
        fd = stream.fileno()
        self._fd = fd
        self._was_blocking = os.get_blocking(fd)
        pipe = os.fdopen(os.dup(fd), "rb", buffering=0)
        if _pollable(loop, pipe.fileno()):
            protocol = asyncio.StreamReaderProtocol(self.reader)
            try:
                self._transport, _ = await loop.connect_read_pipe(lambda: protocol, pipe)
                return self.reader
            except (ValueError, OSError):
                pass
        # A regular file (``< commands.txt``) or /dev/null: not pollable, but
        # reading it does not block for long and ends.
        self._task = asyncio.create_task(self._read_file(pipe))
        return self.reader

    async def _read_file(self, pipe: Any) -> None:
        try:
            data: bytes = await asyncio.to_thread(pipe.read)
            self.reader.feed_data(data)
        finally:
            pipe.close()
            self.reader.feed_eof()

    async def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task
        if self._fd is not None:
            # The dup shares the open file description: undo O_NONBLOCK so
            # the shell's terminal is left as we found it.
            with contextlib.suppress(OSError):
                os.set_blocking(self._fd, self._was_blocking)


def _pollable(loop: asyncio.AbstractEventLoop, fd: int) -> bool:
    """Can the event loop watch *fd*?  (epoll refuses regular files and /dev/null.)"""
    try:
        loop.add_reader(fd, lambda: None)
    except (OSError, ValueError, NotImplementedError):
        return False
    loop.remove_reader(fd)
    return True


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_+-]", "_", text)[:40] or "unknown"


class _Softphone:
    def __init__(
        self,
        phone: AgentPhone,
        *,
        auto_answer: bool,
        record_dir: Path | None,
        out: Callable[[str], None],
    ) -> None:
        self.phone = phone
        self.auto_answer = auto_answer
        self.record_dir = record_dir
        self.out = out
        self.registered = False
        self.dead = asyncio.Event()
        self.tasks: set[asyncio.Task[None]] = set()
        self.peer = "unknown"
        self.dial_task: asyncio.Task[None] | None = None

    def spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    # -- events ------------------------------------------------------------
    def on_event(self, event: PhoneEvent) -> None:
        kind = event.kind
        if kind == "registration" and self.registered:
            data = event.data
            if int(data.get("status_code", 0)) >= 300 or not data.get("active"):
                self.out(f"registration lost: {data.get('status_code')} {data.get('reason')}")
        elif kind == "ringing":
            info = event.detail
            number = getattr(info, "number", None) or getattr(info, "uri", "?")
            display = getattr(info, "display_name", None)
            self.peer = str(number)
            text = f"ringing from {number}"
            if display and display != number:
                text += f" ({display})"
            text += f" [Call-ID {getattr(info, 'call_id', '?')}]"
            text += " - auto-answering" if self.auto_answer else " - type 'a' to answer"
            self.out(text)
        elif kind == "connected":
            self.out("connected")
            if self.record_dir is not None:
                self.spawn(self.start_recording())
        elif kind == "disconnected":
            d = event.detail
            code = getattr(d, "status_code", 0)
            reason = getattr(d, "reason", "")
            self.out(f"disconnected ({code} {reason})")
        elif kind == "dtmf":
            self.out(f"dtmf received: {event.data.get('digit')}")
        elif kind == "worker_exited" and not self.dead.is_set():
            self.dead.set()

    async def start_recording(self) -> None:
        assert self.record_dir is not None
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = self.record_dir / f"{stamp}-{_safe_name(self.peer)}.wav"
        try:
            await self.phone.record(path)
        except PhoneError as exc:
            self.out(f"error: cannot record: {exc}")
        else:
            self.out(f"recording to {path}")

    # -- commands ----------------------------------------------------------
    async def dial(self, target: str) -> None:
        self.peer = target
        self.out(f"dialing {target}")
        try:
            await self.phone.dial(target, timeout=DIAL_TIMEOUT_S)
        except PhoneError as exc:
            self.out(f"call failed: {exc}")

    async def handle(self, line: str) -> bool:
        """Run one command; False means quit."""
        cmd, _, arg = line.partition(" ")
        cmd = cmd.lower()
        arg = arg.strip()
        try:
            if cmd in ("q", "quit", "exit"):
                return False
            if cmd in ("help", "?"):
                self.out(HELP)
            elif cmd == "a" and not arg:
                await self.phone.answer()
            elif cmd == "h" and not arg:
                if await self.phone.hangup() is None:
                    self.out("no call to hang up")
            elif cmd == "d" and arg:
                if self.dial_task is not None and not self.dial_task.done():
                    self.out("error: already dialing")
                elif self.phone.call_state not in (None, "DISCONNECTED"):
                    self.out("error: a call is already in progress")
                else:
                    self.dial_task = self.spawn(self.dial(arg))
            elif cmd == "t" and arg:
                await self.phone.send_dtmf(arg)
                self.out(f"sent dtmf {arg}")
            else:
                self.out(f"unknown command: {line[:40]!r}")
                self.out(HELP)
        except PhoneError as exc:
            self.out(f"error: {exc}")
        return True

    async def command_loop(self, lines: _LineReader) -> int:
        dead_wait = asyncio.create_task(self.dead.wait())
        try:
            while True:
                read = asyncio.create_task(lines.readline())
                done, _ = await asyncio.wait({read, dead_wait}, return_when=asyncio.FIRST_COMPLETED)
                if read not in done:
                    read.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await read
                    self.out("error: phone process exited")
                    return 1
                line = read.result()
                if line is None:
                    return 0
                if line is _TOO_LONG:
                    self.out(f"error: input line too long (max {MAX_LINE} characters), ignored")
                    continue
                assert isinstance(line, str)
                if not line:
                    continue
                if not await self.handle(line):
                    return 0
        finally:
            dead_wait.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await dead_wait

    async def cancel_tasks(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        for task in list(self.tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


async def run_softphone(
    *,
    username: str,
    password: str,
    host: str,
    port: int,
    auto_answer: bool,
    record_dir: Path | None,
    stdin: asyncio.StreamReader | None = None,
    out: Callable[[str], None] = print,
    log_path: Path | None = None,
) -> int:
    """Run the terminal softphone until ``q``/end of input.

    Returns 0 on a normal quit, 1 if the phone could not start or its worker
    died, 2 if registration failed.  *stdin* defaults to the process's stdin;
    *out* receives one line of text per call.
    """
    phone = AgentPhone(
        username=username,
        password=password,
        host=host,
        port=port,
        register=True,
        auto_answer=auto_answer,
        log_path=log_path,
    )
    ui = _Softphone(phone, auto_answer=auto_answer, record_dir=record_dir, out=out)
    remove_listener = phone.add_listener(ui.on_event)
    own_stdin: _Stdin | None = None
    try:
        if stdin is None:
            own_stdin = _Stdin()
            stdin = await own_stdin.open()
        try:
            await phone.start()
        except PhoneError as exc:
            out(f"error: {exc}")
            return 1
        out(f"registering {username} at {host}:{port} ...")
        try:
            await phone.wait_registered(timeout=REGISTER_TIMEOUT_S)
        except PhoneError as exc:
            out(f"registration failed: {exc}")
            return 2
        ui.registered = True
        out(f"registered as {username} at {host}:{port} (contact {phone.uri})")
        out(HELP)
        return await ui.command_loop(_LineReader(stdin))
    finally:
        ui.registered = False  # the unregistration on stop is not "registration lost"
        await ui.cancel_tasks()
        await phone.stop()
        remove_listener()
        if own_stdin is not None:
            await own_stdin.close()
        out("bye")
