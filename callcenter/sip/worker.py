"""Child-process side of a SIP phone: owns this process's single pjsua2 ``Endpoint``.

Run as ``python -m callcenter.sip.worker --fd N`` by :mod:`callcenter.sip.phone`;
``N`` is the child's end of a Unix socketpair.  Everything pjsua2 happens in
this process's main thread:

* ``uaConfig.threadCnt = 0`` and ``mainThreadOnly = True``: pjsua2 starts no SIP
  worker thread and delivers callbacks from inside ``libHandleEvents()``,
  which only the main loop below calls.  pjmedia still runs its own RTP and
  conference-clock threads, and one callback escapes mainThreadOnly:
  ``AudioMediaPlayer.onEof2`` runs on the clock thread, so it only sets a flag
  and queues work (thread-safe deque) for the main loop.
* The main loop alternates ``libHandleEvents(POLL_MS)`` with a non-blocking
  poll of the command socket, so commands are serviced between polls and no
  callback can ever run concurrently with a command.
* Work that must not happen inside a pjsua2 callback (destroying players,
  recorders and ``Call`` objects) is queued in ``Worker.deferred`` and run by
  the main loop right after ``libHandleEvents`` returns.

See ``docs/SIP.md`` for the protocol and the pitfalls this module works around.
"""

from __future__ import annotations

import argparse
import collections
import logging
import os
import select
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import pjsua2 as pj

from callcenter.sip import _protocol as proto
from callcenter.sip.uri import parse_name_addr, parse_sip_headers
from callcenter.sip.wav import is_complete_wav

log = logging.getLogger(__name__)

POLL_MS = 10
INIT_TIMEOUT_S = 30.0
SHUTDOWN_GRACE_S = 3.0
UNREGISTER_TIMEOUT_S = 1.5
WAV_FINAL_TIMEOUT_S = 2.0
BIND_ADDRESS = "127.0.0.1"

_STATE_NAMES: dict[int, str] = {
    pj.PJSIP_INV_STATE_NULL: proto.STATE_NULL,
    pj.PJSIP_INV_STATE_CALLING: proto.STATE_CALLING,
    pj.PJSIP_INV_STATE_INCOMING: proto.STATE_INCOMING,
    pj.PJSIP_INV_STATE_EARLY: proto.STATE_EARLY,
    pj.PJSIP_INV_STATE_CONNECTING: proto.STATE_CONNECTING,
    pj.PJSIP_INV_STATE_CONFIRMED: proto.STATE_CONFIRMED,
    pj.PJSIP_INV_STATE_DISCONNECTED: proto.STATE_DISCONNECTED,
}

# Codecs we keep enabled (Asterisk offers ulaw/alaw); everything else gets
# priority 0 (disabled).  telephone-event (RFC 2833) is not a codec here and
# stays on.
_CODEC_PRIORITIES = {"PCMU/8000": 255, "PCMA/8000": 254}


class CommandError(Exception):
    """A command failed in a way the parent should see as PhoneError."""

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


def _pj_error_text(exc: Exception) -> str:
    if isinstance(exc, pj.Error):
        return f"{exc.title}: {exc.reason} (pj status {exc.status})"
    return f"{type(exc).__name__}: {exc}"


def _guard(where: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Never let a Python exception escape into a SWIG director callback."""

    def deco(fn: Callable[..., None]) -> Callable[..., None]:
        def wrapper(*args: Any, **kwargs: Any) -> None:
            try:
                fn(*args, **kwargs)
            except Exception:
                log.exception("error in pjsua2 callback %s", where)

        wrapper.__name__ = fn.__name__
        wrapper.__doc__ = fn.__doc__
        return wrapper

    return deco


class _Player(pj.AudioMediaPlayer):  # type: ignore[misc]
    def __init__(self, call: _Call, path: str, playback_id: str) -> None:
        super().__init__()
        self.call = call
        self.path = path
        self.playback_id = playback_id
        self.done = False

    @_guard("onEof2")
    def onEof2(self) -> None:
        # NOTE: despite mainThreadOnly, pjsua2 2.15 calls this from pjmedia's
        # conference clock thread.  Only flag it and queue the rest for the
        # main loop (deque.append is thread-safe); the player must not be
        # destroyed from inside its own callback anyway.
        if self.done:
            return
        self.done = True
        call = self.call
        call.worker.deferred.append(lambda: call.finish_playback(self, completed=True))


class _Call(pj.Call):  # type: ignore[misc]
    def __init__(self, worker: Worker, account: _Account, token: str, direction: str, call_id: int) -> None:
        super().__init__(account, call_id)
        self.worker = worker
        self.token = token
        self.direction = direction
        self.state = proto.STATE_NULL
        self.sip_call_id = ""
        self.aud: Any = None
        self.player: _Player | None = None
        self.recorder: Any = None
        self.record_path: str | None = None
        self.finished = False
        self.local_hangup = False
        self.had_response = False

    # -- callbacks (main thread, inside libHandleEvents) -------------------
    @_guard("onCallState")
    def onCallState(self, prm: Any) -> None:
        if self.finished:
            return
        ci = self.getInfo()
        self.sip_call_id = ci.callIdString
        state = _STATE_NAMES.get(ci.state, str(ci.state))
        self.state = state
        code = int(ci.lastStatusCode)
        if code:
            self.had_response = True
        if state == proto.STATE_DISCONNECTED:
            info = {
                "token": self.token,
                "state": state,
                "status_code": code,
                "reason": ci.lastReason,
                "call_id": ci.callIdString,
                "duration": float(ci.connectDuration.sec + ci.connectDuration.msec / 1000.0),
                "local_hangup": self.local_hangup,
            }
            self.worker.deferred.append(lambda: self.worker.finish_call(self, info))
            return
        self.worker.emit(
            "call_state",
            token=self.token,
            state=state,
            status_code=code,
            reason=ci.lastReason,
            call_id=ci.callIdString,
        )

    @_guard("onCallMediaState")
    def onCallMediaState(self, prm: Any) -> None:
        if self.finished:
            return
        ci = self.getInfo()
        for mi in ci.media:
            if mi.type == pj.PJMEDIA_TYPE_AUDIO and mi.status == pj.PJSUA_CALL_MEDIA_ACTIVE:
                self.aud = self.getAudioMedia(mi.index)
                self.connect_media()
                self.worker.emit("media", token=self.token, active=True)
                return
        self.worker.emit("media", token=self.token, active=False)

    @_guard("onDtmfDigit")
    def onDtmfDigit(self, prm: Any) -> None:
        self.worker.emit("dtmf", token=self.token, digit=str(prm.digit))

    # -- helpers -----------------------------------------------------------
    def connect_media(self) -> None:
        if self.aud is None:
            return
        if self.player is not None and not self.player.done:
            self.player.startTransmit(self.aud)
        if self.recorder is not None:
            self.aud.startTransmit(self.recorder)

    def start_playback(self, path: str, playback_id: str) -> None:
        self.stop_playback()
        player = _Player(self, path, playback_id)
        try:
            player.createPlayer(path, pj.PJMEDIA_FILE_NO_LOOP)
        except pj.Error as exc:
            raise CommandError(f"cannot play {path}: {_pj_error_text(exc)}") from None
        self.player = player
        self.connect_media()

    def stop_playback(self) -> None:
        if self.player is not None:
            self.finish_playback(self.player, completed=False)

    def finish_playback(self, player: _Player, *, completed: bool) -> None:
        if self.player is not player:
            return
        player.done = True
        self.player = None  # last reference: the player is destroyed here
        self.worker.emit(
            "playback_done",
            token=self.token,
            path=player.path,
            playback_id=player.playback_id,
            completed=completed,
        )

    def start_recording(self, path: str) -> None:
        self.stop_recording()
        recorder = pj.AudioMediaRecorder()
        try:
            recorder.createRecorder(path)
        except pj.Error as exc:
            raise CommandError(f"cannot record to {path}: {_pj_error_text(exc)}") from None
        self.recorder = recorder
        self.record_path = path
        self.connect_media()

    def stop_recording(self) -> None:
        if self.recorder is None:
            return
        path = self.record_path
        # Dropping the last reference runs ~AudioMediaRecorder, which asks the
        # conference bridge to remove the port.  Since pjmedia 2.14 that
        # removal is asynchronous: the bridge's clock thread destroys the WAV
        # writer (flush + final header) a frame later.  Wait for that, so that
        # "recording_done"/"disconnected" really mean "the file is complete".
        self.recorder = None
        self.record_path = None
        complete = path is not None and self.worker.wait_wav_final(path)
        self.worker.emit("recording_done", token=self.token, path=path, complete=complete)

    def release_media(self) -> None:
        self.stop_playback()
        self.stop_recording()
        self.aud = None


class _Account(pj.Account):  # type: ignore[misc]
    def __init__(self, worker: Worker) -> None:
        super().__init__()
        self.worker = worker

    @_guard("onRegState")
    def onRegState(self, prm: Any) -> None:
        self.worker.unregistering = False
        info = self.getInfo()
        self.worker.emit(
            "reg_state",
            status_code=int(prm.code),
            reason=str(prm.reason),
            active=bool(info.regIsActive),
            expiration=int(prm.expiration),
        )

    @_guard("onIncomingCall")
    def onIncomingCall(self, prm: Any) -> None:
        self.worker.on_incoming_call(self, prm)


class Worker:
    """One phone: the endpoint, one account, and at most one active call."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.rbuf = bytearray()
        self.send_lock = threading.Lock()
        self.ep: Any = None
        self.account: _Account | None = None
        self.local_port = 0
        self.uri = ""
        self.calls: dict[str, _Call] = {}
        self.current: _Call | None = None
        self.next_token = 1
        # Actions run by the main loop outside pjsua2 callbacks; appended to
        # from callbacks, one of which (onEof2) runs on another thread.
        self.deferred: collections.deque[Callable[[], None]] = collections.deque()
        self.stop_requested = False
        self.unregistering = False
        self.parent_pid = os.getppid()
        self.auto_answer = False
        self.host = "127.0.0.1"
        self.port = 5060

    # -- messaging ---------------------------------------------------------
    def send(self, message: dict[str, Any]) -> None:
        data = proto.encode(message)
        try:
            with self.send_lock:  # keep lines whole should a callback run off-thread
                self.sock.sendall(data)
        except OSError:
            # Parent is gone: shut down.
            self.stop_requested = True

    def emit(self, event: str, **data: Any) -> None:
        self.send({"type": "event", "event": event, "data": data})

    def reply_ok(self, msg_id: int, result: Any = None) -> None:
        self.send({"type": "reply", "id": msg_id, "ok": True, "result": result})

    def reply_error(self, msg_id: int, error: str, status_code: int | None = None) -> None:
        self.send({"type": "reply", "id": msg_id, "ok": False, "error": error, "status_code": status_code})

    def read_messages(self, timeout: float) -> list[dict[str, Any]]:
        """Read whatever commands are available (waiting at most *timeout* s)."""
        ready, _, _ = select.select([self.sock], [], [], timeout)
        if not ready:
            return []
        data = self.sock.recv(65536)
        if not data:
            log.info("command socket closed by parent; shutting down")
            self.stop_requested = True
            return []
        self.rbuf.extend(data)
        messages: list[dict[str, Any]] = []
        while True:
            nl = self.rbuf.find(b"\n")
            if nl < 0:
                break
            line = bytes(self.rbuf[:nl])
            del self.rbuf[: nl + 1]
            if not line.strip():
                continue
            try:
                messages.append(proto.decode(line))
            except ValueError:
                log.error("dropping malformed command line")
        if len(self.rbuf) > proto.MAX_MESSAGE_BYTES:
            log.error("command too long; shutting down")
            self.stop_requested = True
        return messages

    # -- lifecycle ---------------------------------------------------------
    def run(self) -> int:
        deadline = time.monotonic() + INIT_TIMEOUT_S
        init: dict[str, Any] | None = None
        while init is None and not self.stop_requested:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                log.error("no init command within %.0f s", INIT_TIMEOUT_S)
                return 1
            for msg in self.read_messages(min(remaining, 0.5)):
                if msg.get("cmd") == "init":
                    init = msg
                    break
        if init is None:
            return 1
        msg_id = int(init.get("id", 0))
        try:
            self.start_lib(dict(init.get("args") or {}))
        except Exception as exc:
            log.debug("init failed", exc_info=True)
            self.reply_error(msg_id, f"SIP phone failed to start: {_pj_error_text(exc)}")
            self.shutdown()
            return 1
        self.reply_ok(msg_id, {"local_port": self.local_port, "uri": self.uri})
        try:
            while not self.stop_requested:
                self.ep.libHandleEvents(POLL_MS)
                self.run_deferred()
                for msg in self.read_messages(0):
                    self.handle(msg)
                self.run_deferred()
                if os.getppid() != self.parent_pid:
                    log.warning("parent process died; shutting down")
                    self.stop_requested = True
        finally:
            self.shutdown()
        return 0

    def start_lib(self, cfg: dict[str, Any]) -> None:
        self.host = str(cfg["host"])
        self.port = int(cfg["port"])
        self.auto_answer = bool(cfg.get("auto_answer", False))
        log_path = cfg.get("log_path")

        ep = pj.Endpoint()
        self.ep = ep
        ep.libCreate()
        ep_cfg = pj.EpConfig()
        ep_cfg.uaConfig.threadCnt = 0
        ep_cfg.uaConfig.mainThreadOnly = True
        ep_cfg.uaConfig.maxCalls = 4
        ep_cfg.uaConfig.userAgent = str(cfg.get("user_agent") or "callcenter-sip")
        ep_cfg.uaConfig.stunServer.clear()
        ep_cfg.logConfig.consoleLevel = 0
        if log_path:
            ep_cfg.logConfig.level = int(cfg.get("log_level", 4))
            ep_cfg.logConfig.filename = str(log_path)
        else:
            ep_cfg.logConfig.level = 0
        # 8 kHz bridge: no resampling for PCMU/PCMA, recordings are 8 kHz mono.
        ep_cfg.medConfig.clockRate = 8000
        ep_cfg.medConfig.sndClockRate = 8000
        ep_cfg.medConfig.noVad = True
        ep_cfg.medConfig.ecTailLen = 0
        ep.libInit(ep_cfg)

        tcfg = pj.TransportConfig()
        tcfg.port = int(cfg.get("local_port", 0))
        tcfg.boundAddress = BIND_ADDRESS
        tcfg.publicAddress = BIND_ADDRESS
        tid = ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tcfg)
        ep.libStart()
        ep.audDevManager().setNullDev()
        self.local_port = int(ep.transportGetInfo(tid).localName.rsplit(":", 1)[1])

        for codec in ep.codecEnum2():
            prio = 0
            for prefix, value in _CODEC_PRIORITIES.items():
                if codec.codecId.startswith(prefix):
                    prio = value
            ep.codecSetPriority(codec.codecId, prio)

        username = str(cfg["username"])
        display = cfg.get("display_name")
        acfg = pj.AccountConfig()
        if cfg.get("register", True):
            domain = self.host if self.port == 5060 else f"{self.host}:{self.port}"
            acfg.regConfig.registrarUri = f"sip:{domain}"
            acfg.regConfig.timeoutSec = int(cfg.get("reg_expires", 300))
            acfg.regConfig.retryIntervalSec = 5
        else:
            domain = f"{BIND_ADDRESS}:{self.local_port}"
        uri = f"sip:{username}@{domain}"
        self.uri = f"sip:{username}@{BIND_ADDRESS}:{self.local_port}"
        acfg.idUri = f'"{display}" <{uri}>' if display else uri
        if cfg.get("password") is not None:
            acfg.sipConfig.authCreds.append(pj.AuthCredInfo("digest", "*", username, 0, str(cfg["password"])))
        acfg.sipConfig.transportId = tid
        nat = acfg.natConfig
        nat.iceEnabled = False
        nat.turnEnabled = False
        nat.sipStunUse = pj.PJSUA_STUN_USE_DISABLED
        nat.mediaStunUse = pj.PJSUA_STUN_USE_DISABLED
        nat.sdpNatRewriteUse = 0
        nat.viaRewriteUse = 0
        nat.contactRewriteUse = 0
        acfg.mediaConfig.srtpUse = pj.PJMEDIA_SRTP_DISABLED
        # Asterisk answers with several codecs (ulaw, alaw); by default pjsua
        # then sends an UPDATE to narrow it to one.  Not needed: skip it.
        acfg.mediaConfig.lockCodecEnabled = False
        acfg.mediaConfig.transportConfig.boundAddress = BIND_ADDRESS
        acfg.mediaConfig.transportConfig.publicAddress = BIND_ADDRESS
        account = _Account(self)
        self.account = account
        account.create(acfg)

    def shutdown(self) -> None:
        """Hang up, finish media (WAV headers!), drop Calls/Account, libDestroy."""
        ep = self.ep
        if ep is None:
            return
        try:
            if any(not c.finished for c in self.calls.values()):
                try:
                    ep.hangupAllCalls()
                except pj.Error:
                    log.debug("hangupAllCalls failed", exc_info=True)
                deadline = time.monotonic() + SHUTDOWN_GRACE_S
                while time.monotonic() < deadline:
                    ep.libHandleEvents(POLL_MS)
                    self.run_deferred()
                    # A call still in CALLING without any response cannot be
                    # cancelled (no provisional yet); don't wait 32 s for it.
                    if all(c.finished or not c.had_response for c in self.calls.values()):
                        break
            for call in list(self.calls.values()):
                if not call.finished:
                    self.finish_call(
                        call,
                        {
                            "token": call.token,
                            "state": proto.STATE_DISCONNECTED,
                            "status_code": 487,
                            "reason": "Phone stopped",
                            "call_id": call.sip_call_id,
                            "duration": 0.0,
                            "local_hangup": True,
                        },
                    )
            self.run_deferred()
            self.calls.clear()
            self.current = None
            if self.account is not None:
                self.unregister(self.account)
                try:
                    self.account.shutdown()
                except pj.Error:
                    log.debug("account shutdown failed", exc_info=True)
                self.account = None
        finally:
            self.ep = None
            # Calls are gone and we unregistered ourselves: skip libDestroy's
            # unconditional ~1 s wait for network activity.
            ep.libDestroy(pj.PJSUA_DESTROY_NO_NETWORK)

    def unregister(self, account: _Account) -> None:
        """Send REGISTER Expires: 0 and wait (bounded) for the answer."""
        try:
            if not account.getInfo().regIsActive:
                return
            self.unregistering = True
            account.setRegistration(False)
        except pj.Error:
            log.debug("unregistration failed", exc_info=True)
            return
        deadline = time.monotonic() + UNREGISTER_TIMEOUT_S
        while self.unregistering and time.monotonic() < deadline:
            self.ep.libHandleEvents(POLL_MS)

    def wait_wav_final(self, path: str, timeout: float = WAV_FINAL_TIMEOUT_S) -> bool:
        """Pump pjsua2 until the WAV at *path* has its final header."""
        deadline = time.monotonic() + timeout
        while True:
            if is_complete_wav(path):
                return True
            if time.monotonic() >= deadline:
                log.warning("WAV header of %s not finalised within %.1f s", path, timeout)
                return False
            if self.ep is None:  # library already gone: nothing left to wait for
                return False
            self.ep.libHandleEvents(POLL_MS // 2)

    def run_deferred(self) -> None:
        while True:
            try:
                action = self.deferred.popleft()
            except IndexError:
                return
            try:
                action()
            except Exception:
                log.exception("deferred action failed")

    # -- call bookkeeping --------------------------------------------------
    def new_token(self) -> str:
        """Token for an incoming call (outgoing ones are named by the parent)."""
        token = f"in-{self.next_token}"
        self.next_token += 1
        return token

    def busy(self) -> bool:
        return self.current is not None and not self.current.finished

    def finish_call(self, call: _Call, info: dict[str, Any]) -> None:
        """Release media (closing any WAV), forget the Call, report disconnect."""
        if call.finished:
            return
        call.finished = True
        call.release_media()
        self.calls.pop(call.token, None)
        if self.current is call:
            self.current = None
        self.emit("call_state", **info)
        # `call` goes out of scope when the caller's closure does: ~Call runs
        # outside any pjsua2 callback.

    def on_incoming_call(self, account: _Account, prm: Any) -> None:
        token = self.new_token()
        call = _Call(self, account, token, "incoming", prm.callId)
        ci = call.getInfo()
        call.sip_call_id = ci.callIdString
        if self.busy():
            log.info("busy: rejecting incoming call %s", ci.callIdString)
            self.calls[token] = call
            op = pj.CallOpParam()
            op.statusCode = pj.PJSIP_SC_BUSY_HERE
            call.hangup(op)
            return
        self.calls[token] = call
        self.current = call
        remote = parse_name_addr(ci.remoteUri)
        try:
            headers = parse_sip_headers(str(prm.rdata.wholeMsg))
        except Exception:
            headers = {}
        self.emit(
            "incoming",
            token=token,
            call_id=ci.callIdString,
            remote_uri=ci.remoteUri,
            remote_contact=ci.remoteContact,
            local_uri=ci.localUri,
            uri=remote.uri,
            display_name=remote.display_name,
            number=remote.user,
            headers=headers,
        )
        op = pj.CallOpParam()
        op.statusCode = pj.PJSIP_SC_OK if self.auto_answer else pj.PJSIP_SC_RINGING
        call.answer(op)

    def get_call(self, token: str | None) -> _Call:
        call = self.current if token is None else self.calls.get(token)
        if call is None or call.finished:
            raise CommandError("no active call")
        return call

    # -- commands (main loop, never inside a callback) ---------------------
    def handle(self, msg: dict[str, Any]) -> None:
        msg_id = int(msg.get("id", 0))
        cmd = str(msg.get("cmd", ""))
        args = msg.get("args") or {}
        handler = getattr(self, f"cmd_{cmd}", None)
        if handler is None or not isinstance(args, dict):
            self.reply_error(msg_id, f"unknown command {cmd!r}")
            return
        try:
            result = handler(**args)
        except CommandError as exc:
            self.reply_error(msg_id, str(exc), exc.status_code)
        except pj.Error as exc:
            self.reply_error(msg_id, _pj_error_text(exc))
        except Exception as exc:
            log.exception("command %s failed", cmd)
            self.reply_error(msg_id, f"{type(exc).__name__}: {exc}")
        else:
            self.reply_ok(msg_id, result)

    def cmd_ping(self) -> str:
        return "pong"

    def cmd_stop(self) -> None:
        self.stop_requested = True

    def cmd_dial(self, uri: str, token: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
        if self.busy():
            raise CommandError("a call is already in progress on this phone")
        if token in self.calls or token.startswith("in-"):
            raise CommandError(f"call token {token!r} already used")
        assert self.account is not None
        call = _Call(self, self.account, token, "outgoing", pj.PJSUA_INVALID_ID)
        op = pj.CallOpParam(True)
        for name, value in (headers or {}).items():
            hdr = pj.SipHeader()
            hdr.hName = str(name)
            hdr.hValue = str(value)
            op.txOption.headers.append(hdr)
        try:
            call.makeCall(uri, op)
        except pj.Error as exc:
            raise CommandError(f"cannot call {uri}: {_pj_error_text(exc)}") from None
        self.calls[token] = call
        self.current = call
        ci = call.getInfo()
        call.sip_call_id = ci.callIdString
        return {"token": token, "call_id": ci.callIdString}

    def cmd_answer(self, token: str | None = None, status_code: int = 200) -> None:
        call = self.current if token is None else self.calls.get(token)
        if call is None or call.finished:
            raise CommandError("cannot answer: the call is already terminated (caller abandoned?)", 487)
        if call.direction != "incoming":
            raise CommandError("cannot answer an outgoing call")
        ci = call.getInfo()
        if ci.state not in (pj.PJSIP_INV_STATE_INCOMING, pj.PJSIP_INV_STATE_EARLY):
            state = _STATE_NAMES.get(ci.state, str(ci.state))
            raise CommandError(
                f"cannot answer: call is in state {state} (last status {ci.lastStatusCode} {ci.lastReason})",
                int(ci.lastStatusCode) or None,
            )
        op = pj.CallOpParam()
        op.statusCode = int(status_code)
        call.answer(op)

    def cmd_hangup(self, token: str | None = None, status_code: int = 0) -> bool:
        call = self.current if token is None else self.calls.get(token)
        if call is None or call.finished:
            return False
        call.local_hangup = True
        op = pj.CallOpParam()
        if status_code:
            op.statusCode = int(status_code)
        try:
            call.hangup(op)
        except pj.Error:
            log.debug("hangup failed", exc_info=True)
        if call.direction == "outgoing" and not call.had_response:
            # pjsip cannot CANCEL before a provisional response arrives and
            # would keep the INVITE alive until Timer B (32 s).  Detach the
            # call now; ~Call hangs up the pjsua call for good.
            self.finish_call(
                call,
                {
                    "token": call.token,
                    "state": proto.STATE_DISCONNECTED,
                    "status_code": 487,
                    "reason": "Request Terminated (no response from remote)",
                    "call_id": call.sip_call_id,
                    "duration": 0.0,
                    "local_hangup": True,
                },
            )
        return True

    def cmd_send_dtmf(self, digits: str, token: str | None = None) -> None:
        call = self.get_call(token)
        if call.state != proto.STATE_CONFIRMED:
            raise CommandError(f"cannot send DTMF: call is {call.state}")
        prm = pj.CallSendDtmfParam()
        prm.method = pj.PJSUA_DTMF_METHOD_RFC2833
        prm.digits = digits
        call.sendDtmf(prm)

    def cmd_play(self, path: str, playback_id: str = "", token: str | None = None) -> None:
        call = self.get_call(token)
        if not Path(path).is_file():
            raise CommandError(f"cannot play {path}: no such file")
        call.start_playback(path, playback_id)

    def cmd_stop_playback(self, token: str | None = None) -> None:
        self.get_call(token).stop_playback()

    def cmd_record(self, path: str, token: str | None = None) -> None:
        call = self.get_call(token)
        if not path.lower().endswith(".wav"):
            raise CommandError("recording path must end in .wav")
        try:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CommandError(f"cannot record to {path}: {exc}") from None
        call.start_recording(path)

    def cmd_stop_recording(self, token: str | None = None) -> None:
        self.get_call(token).stop_recording()


def _orphan_guard() -> None:
    """Ask the kernel to SIGTERM us if the parent dies (Linux only)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="callcenter SIP phone worker (internal)")
    parser.add_argument("--fd", type=int, required=True, help="socketpair file descriptor")
    parser.add_argument("--log-level", default="WARNING")
    ns = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, str(ns.log_level).upper(), logging.WARNING),
        format="sip-worker[%(process)d] %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    sock = socket.socket(fileno=ns.fd)
    worker = Worker(sock)

    def on_term(signum: int, frame: FrameType | None) -> None:
        worker.stop_requested = True

    # The parent owns Ctrl-C; SIGTERM means "shut down cleanly" (close WAVs).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, on_term)
    _orphan_guard()
    if os.getppid() != worker.parent_pid:  # pragma: no cover - raced parent death
        return 1
    try:
        return worker.run()
    finally:
        sock.close()


if __name__ == "__main__":
    sys.exit(main())
