"""Tests for callcenter.sip against real pjsua2 (no Asterisk needed).

Phones call each other directly over 127.0.0.1; registration is exercised
against a tiny in-process digest registrar.  Nothing here sleeps to
synchronise: every step waits on an event with a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import secrets
import socket
import sys
import time
import wave
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import cast

import pytest

from callcenter.sip import AgentPhone, CitizenPhone, PhoneError, PhoneTimeout
from callcenter.sip.softphone import MAX_LINE, run_softphone
from callcenter.sip.uri import build_target_uri, parse_name_addr, parse_sip_headers
from callcenter.sip.wav import is_complete_wav
from callcenter.sip.wav import wav_rms as shared_wav_rms
from tests.realparts import speak

pytestmark = pytest.mark.timeout(60)

# A recording of speech at normal level has an RMS in the thousands; silence
# (or a recorder that was never connected) is 0.
RMS_FLOOR = 300.0


# --------------------------------------------------------------------- helpers
def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wav_rms(path: Path) -> tuple[float, float, wave._wave_params]:
    """(RMS, duration in s, params) of a 16-bit PCM WAV."""
    with wave.open(str(path), "rb") as w:
        params = w.getparams()
    rms, duration = shared_wav_rms(path)
    return rms, duration, params


@pytest.fixture(scope="session")
def speech_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """~2.5 s of speech, 8 kHz mono 16-bit (espeak-ng + sox; sine fallback)."""
    out_dir = tmp_path_factory.mktemp("speech")
    target = out_dir / "speech.wav"
    speak("Tolong, ada kecelakaan. Kirim ambulans.", target, voice="id")
    rms, duration, _ = wav_rms(target)
    assert rms > RMS_FLOOR and duration > 1.0
    return target


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def wait_pid_exit(pid: int, timeout: float) -> None:
    """Wait for a (not necessarily child) process to exit via a pidfd."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    loop = asyncio.get_running_loop()
    exited = asyncio.Event()
    loop.add_reader(fd, exited.set)
    try:
        async with asyncio.timeout(timeout):
            await exited.wait()
    finally:
        loop.remove_reader(fd)
        os.close(fd)


# ------------------------------------------------------------ fake registrar
class FakeRegistrar(asyncio.DatagramProtocol):
    """Minimal UDP registrar with MD5 digest auth (no qop), for tests only."""

    realm = "callcenter-test"

    def __init__(self, users: dict[str, str]) -> None:
        self.users = users
        self.nonce = secrets.token_hex(8)
        self.contacts: dict[str, str] = {}
        self.changed = asyncio.Event()
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (3.11's selector datagram transport does not subclass DatagramTransport)
        self.transport = cast(asyncio.DatagramTransport, transport)

    @staticmethod
    def _md5(text: str) -> str:
        return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()

    def _authorized(self, auth: str) -> str | None:
        params: dict[str, str] = {}
        for m in re.finditer(r'(\w+)=(?:"([^"]*)"|([^\s,]+))', auth):
            params[m.group(1).lower()] = m.group(2) if m.group(2) is not None else m.group(3)
        user = params.get("username", "")
        if user not in self.users or params.get("nonce") != self.nonce:
            return None
        ha1 = self._md5(f"{user}:{self.realm}:{self.users[user]}")
        ha2 = self._md5(f"REGISTER:{params.get('uri', '')}")
        if params.get("response") != self._md5(f"{ha1}:{self.nonce}:{ha2}"):
            return None
        return user

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:  # type: ignore[override]
        text = data.decode("utf-8", "replace")
        if not text.startswith("REGISTER "):
            return
        h = parse_sip_headers(text)
        base = [
            f"Via: {h.get('via', '')}",
            f"From: {h.get('from', '')}",
            f"To: {h.get('to', '')};tag=reg1",
            f"Call-ID: {h.get('call-id', '')}",
            f"CSeq: {h.get('cseq', '')}",
        ]
        auth = h.get("authorization")
        if auth is None:
            lines = [
                "SIP/2.0 401 Unauthorized",
                *base,
                f'WWW-Authenticate: Digest realm="{self.realm}", nonce="{self.nonce}", algorithm=MD5',
            ]
        else:
            user = self._authorized(auth)
            if user is None:
                lines = ["SIP/2.0 403 Forbidden", *base]
            else:
                contact = parse_name_addr(h.get("contact", "")).uri
                expires = h.get("expires", "300")
                if expires.strip() == "0":
                    self.contacts.pop(user, None)
                    lines = ["SIP/2.0 200 OK", *base, "Expires: 0"]
                else:
                    self.contacts[user] = contact
                    lines = [
                        "SIP/2.0 200 OK",
                        *base,
                        f"Contact: <{contact}>;expires={expires}",
                        f"Expires: {expires}",
                    ]
                self.changed.set()
        msg = "\r\n".join([*lines, "Content-Length: 0", "", ""])
        assert self.transport is not None
        self.transport.sendto(msg.encode(), addr)

    async def wait_contact(self, user: str, timeout: float = 5.0) -> str:
        async with asyncio.timeout(timeout):
            while user not in self.contacts:
                self.changed.clear()
                await self.changed.wait()
        return self.contacts[user]


@pytest.fixture
async def registrar() -> AsyncIterator[tuple[FakeRegistrar, int]]:
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_datagram_endpoint(
        lambda: FakeRegistrar({"agent7": "s3cret", "0812555": "citizenpw"}),
        local_addr=("127.0.0.1", 0),
    )
    port = transport.get_extra_info("sockname")[1]
    try:
        yield proto, port
    finally:
        transport.close()


# ------------------------------------------------------------------- pure
def test_build_target_uri() -> None:
    assert build_target_uri("112", "10.0.0.1", 5060) == "sip:112@10.0.0.1:5060"
    assert build_target_uri("*99#", "h", 5080) == "sip:*99%23@h:5080"
    assert build_target_uri("sip:agent@127.0.0.1:5090", "h", 1) == "sip:agent@127.0.0.1:5090"
    assert build_target_uri("<sip:a@b;ob>", "h", 1) == "sip:a@b;ob"
    for bad in ["", "a b", "x@y", "1" * 65, "sip:a b@c"]:
        with pytest.raises(ValueError):
            build_target_uri(bad, "h", 5060)


def test_parse_name_addr_and_headers() -> None:
    na = parse_name_addr('"Budi \\"B\\"" <sip:0812555@127.0.0.1:5060>;tag=abc')
    assert (na.display_name, na.uri, na.user) == ('Budi "B"', "sip:0812555@127.0.0.1:5060", "0812555")
    na = parse_name_addr("sip:112@host;tag=x")
    assert (na.display_name, na.uri, na.user) == (None, "sip:112@host", "112")
    assert parse_name_addr("<sip:host>").user is None
    msg = "INVITE sip:a@b SIP/2.0\r\ni: abc\r\nX-Incident: 1\r\n 2\r\nX-Incident: 3\r\n\r\nv=0"
    assert parse_sip_headers(msg) == {"call-id": "abc", "x-incident": "1 2"}


# ---------------------------------------------------------------- phones
async def test_direct_call_dtmf_speech_recording(speech_wav: Path, tmp_path: Path) -> None:
    agent_port = free_udp_port()
    rec_path = tmp_path / "agent-heard.wav"
    async with (
        AgentPhone(username="agent", register=False, local_port=agent_port) as agent,
        CitizenPhone(username="0812555", register=False, display_name="Budi") as citizen,
    ):
        assert agent.local_port == agent_port
        assert agent.uri == f"sip:agent@127.0.0.1:{agent_port}"
        dial = asyncio.create_task(citizen.dial(f"sip:agent@127.0.0.1:{agent_port}", timeout=5))
        ringing = await agent.wait_ringing(timeout=5)
        assert ringing.number == "0812555"
        assert ringing.display_name == "Budi"
        assert ringing.uri.startswith("sip:0812555@127.0.0.1")
        assert ringing.headers["call-id"] == ringing.call_id
        assert not dial.done()
        assert citizen.call_state in ("CALLING", "EARLY")  # not answered yet

        await agent.answer(timeout=5)
        await agent.record(rec_path)
        call_id = await dial
        assert call_id == ringing.call_id

        await citizen.send_dtmf("12#")
        assert await agent.wait_dtmf(3, timeout=5) == "12#"
        assert agent.received_dtmf == "12#"

        await citizen.play(speech_wav)
        assert await citizen.wait_playback_done(timeout=15) is True

        theirs = await citizen.hangup(timeout=5)
        assert theirs is not None and theirs.local_hangup
        mine = await agent.wait_disconnected(timeout=5)
        assert mine.status_code == 200 and not mine.local_hangup
        assert mine.call_id == call_id
        assert agent.call_state == citizen.call_state == "DISCONNECTED"

        # The recorder was destroyed on disconnect: the WAV is complete now,
        # while the phones are still running.
        assert is_complete_wav(rec_path)
        rms, duration, params = wav_rms(rec_path)
        _, speech_duration, _ = wav_rms(speech_wav)
        assert (params.nchannels, params.sampwidth, params.framerate) == (1, 2, 8000)
        assert duration >= 0.8 * speech_duration
        assert rms > RMS_FLOOR, f"agent recording is (near) silence: rms={rms:.1f}"
    assert agent.returncode == 0 and citizen.returncode == 0


async def test_auto_answer_and_dtmf_back_to_citizen(tmp_path: Path) -> None:
    async with (
        AgentPhone(username="agent", register=False, auto_answer=True) as agent,
        CitizenPhone(username="0812000", register=False) as citizen,
    ):
        started = time.monotonic()
        await citizen.dial(agent.uri, timeout=5, headers={"X-Caller-Location": "-6.2,106.8"})
        assert time.monotonic() - started < 2.0
        info = await agent.wait_ringing(timeout=1)
        assert info.number == "0812000"
        assert info.headers["x-caller-location"] == "-6.2,106.8"
        await agent.wait_connected(timeout=5)
        await agent.send_dtmf("5*")
        assert await citizen.wait_dtmf(1, timeout=5) == "5"
        assert await citizen.wait_dtmf(1, timeout=5) == "*"
        with pytest.raises(PhoneTimeout):
            await citizen.wait_dtmf(1, timeout=0.3)
        # One call per phone: a second caller gets 486 Busy Here.
        async with CitizenPhone(username="0812999", register=False) as second:
            with pytest.raises(PhoneError) as err:
                await second.dial(agent.uri, timeout=5)
            assert err.value.status_code == 486
        with pytest.raises(PhoneError, match="already in progress"):
            await citizen.dial(agent.uri, timeout=1)
        await agent.hangup()
        disc = await citizen.wait_disconnected(timeout=5)
        assert disc.status_code == 200 and not disc.local_hangup


async def test_dial_nobody_listening_fails_within_timeout() -> None:
    dead_port = free_udp_port()
    async with CitizenPhone(username="0812111", register=False) as citizen:
        started = time.monotonic()
        with pytest.raises(PhoneError) as err:
            await citizen.dial(f"sip:112@127.0.0.1:{dead_port}", timeout=1.5)
        assert isinstance(err.value, TimeoutError)
        assert time.monotonic() - started < 4.0
        assert citizen.call_state == "DISCONNECTED"
        # The phone is usable again right away.
        async with AgentPhone(username="agent", register=False, auto_answer=True) as agent:
            await citizen.dial(agent.uri, timeout=5)
            await citizen.hangup()


async def test_rejected_call_raises_with_sip_status() -> None:
    async with (
        AgentPhone(username="agent", register=False) as agent,
        CitizenPhone(username="0812222", register=False) as citizen,
    ):
        dial = asyncio.create_task(citizen.dial(agent.uri, timeout=5))
        await agent.wait_ringing(timeout=5)
        await agent.reject(486)
        with pytest.raises(PhoneError) as err:
            await dial
        assert err.value.status_code == 486
        assert "486" in str(err.value)
        with pytest.raises(PhoneError):
            await citizen.dial("not a number", timeout=1)


async def test_answering_an_abandoned_call_reports_clearly() -> None:
    async with (
        AgentPhone(username="agent", register=False) as agent,
        CitizenPhone(username="0812333", register=False) as citizen,
    ):
        dial = asyncio.create_task(citizen.dial(agent.uri, timeout=5))
        await agent.wait_ringing(timeout=5)
        await citizen.hangup(timeout=5)  # caller gives up while it rings
        with pytest.raises(PhoneError) as dial_err:
            await dial
        assert dial_err.value.status_code == 487
        disc = await agent.wait_disconnected(timeout=5)
        assert disc.status_code == 487
        with pytest.raises(PhoneError, match="already ended") as err:
            await agent.answer(timeout=2)
        assert err.value.status_code == 487


async def test_stop_during_call_finishes_recording_and_reaps_worker(speech_wav: Path, tmp_path: Path) -> None:
    rec_path = tmp_path / "partial.wav"
    async with CitizenPhone(username="0812444", register=False) as citizen:
        agent = AgentPhone(username="agent", register=False, auto_answer=True)
        await agent.start()
        pid = agent.pid
        assert pid is not None and pid_alive(pid)
        await citizen.dial(agent.uri, timeout=5)
        await agent.wait_connected(timeout=5)
        await agent.record(rec_path)
        await citizen.play(speech_wav)
        # Make sure media flows before stopping: a DTMF digit sent after the
        # playback started has to arrive over the same RTP stream.
        await citizen.send_dtmf("9")
        assert await agent.wait_dtmf(1, timeout=5) == "9"

        await agent.stop()
        assert agent.pid is None and agent.returncode == 0
        assert not agent.is_running
        await wait_pid_exit(pid, timeout=1)
        assert not pid_alive(pid) or _is_zombie(pid)

        disc = await citizen.wait_disconnected(timeout=5)
        assert not disc.local_hangup
        assert await citizen.wait_playback_done(timeout=5) is False
        _, duration, params = wav_rms(rec_path)
        assert params.framerate == 8000 and duration > 0
        with pytest.raises(PhoneError, match="not running"):
            await agent.play(speech_wav)
        await agent.stop()  # idempotent


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return False


async def test_worker_exits_when_parent_dies(tmp_path: Path) -> None:
    script = (
        "import asyncio, os, sys\n"
        "from callcenter.sip import AgentPhone\n"
        "async def main():\n"
        "    phone = AgentPhone(username='orphan', register=False)\n"
        "    await phone.start()\n"
        "    print(phone.pid, flush=True)\n"
        "    os._exit(0)\n"
        "asyncio.run(main())\n"
    )
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", script, stdout=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    async with asyncio.timeout(15):
        line = await proc.stdout.readline()
        await proc.wait()
    worker_pid = int(line)
    await wait_pid_exit(worker_pid, timeout=5)
    assert not pid_alive(worker_pid) or _is_zombie(worker_pid)


async def test_start_failure_is_reported() -> None:
    taken = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    taken.bind(("127.0.0.1", 0))
    try:
        phone = CitizenPhone(username="x", register=False, local_port=taken.getsockname()[1])
        with pytest.raises(PhoneError, match="failed to start"):
            await phone.start()
        assert not phone.is_running and phone.pid is None
    finally:
        taken.close()


# -------------------------------------------------------------- registration
async def test_registration_with_digest_auth(registrar: tuple[FakeRegistrar, int]) -> None:
    reg, port = registrar
    async with AgentPhone(username="agent7", password="s3cret", host="127.0.0.1", port=port) as agent:
        state = await agent.wait_registered(timeout=5)
        assert state.status_code == 200 and state.active
        contact = await reg.wait_contact("agent7")
        assert contact.startswith(f"sip:agent7@127.0.0.1:{agent.local_port}")
        # Reach the agent the way a PBX would: via its registered contact.
        async with CitizenPhone(username="0812555", register=False, host="127.0.0.1", port=port) as c:
            dial = asyncio.create_task(c.dial(contact, timeout=5))
            assert (await agent.wait_ringing(timeout=5)).number == "0812555"
            await agent.answer()
            await dial
            await c.hangup()
    assert "agent7" not in reg.contacts  # unregistered on stop


async def test_registration_with_wrong_password_fails(
    registrar: tuple[FakeRegistrar, int],
) -> None:
    _, port = registrar
    async with AgentPhone(username="agent7", password="wrong", port=port) as agent:
        with pytest.raises(PhoneError) as err:
            await agent.wait_registered(timeout=5)
        assert err.value.status_code == 403
    async with CitizenPhone(username="x", register=False) as phone:
        with pytest.raises(PhoneError, match="register=False"):
            await phone.wait_registered(timeout=1)


# ----------------------------------------------------------------- softphone
class Screen:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.changed = asyncio.Event()

    def __call__(self, line: str) -> None:
        self.lines.append(line)
        self.changed.set()

    async def expect(self, pattern: str, timeout: float = 5.0) -> str:
        """Wait for a new line matching *pattern* (lines are consumed in order)."""
        regex = re.compile(pattern)
        async with asyncio.timeout(timeout):
            while True:
                while self.lines:
                    line = self.lines.pop(0)
                    if regex.search(line):
                        return line
                self.changed.clear()
                await self.changed.wait()


async def test_softphone_session(registrar: tuple[FakeRegistrar, int], tmp_path: Path) -> None:
    reg, port = registrar
    stdin = asyncio.StreamReader()
    screen = Screen()
    send: Callable[[str], None] = lambda text: stdin.feed_data(text.encode())  # noqa: E731
    task = asyncio.create_task(
        run_softphone(
            username="agent7",
            password="s3cret",
            host="127.0.0.1",
            port=port,
            auto_answer=False,
            record_dir=tmp_path / "rec",
            stdin=stdin,
            out=screen,
        )
    )
    try:
        await screen.expect(r"^registered as agent7")
        contact = await reg.wait_contact("agent7")
        async with CitizenPhone(username="0812555", register=False, display_name="Siti") as c:
            dial = asyncio.create_task(c.dial(contact, timeout=5))
            line = await screen.expect(r"^ringing from")
            assert "0812555" in line and "Siti" in line
            send("a\n")
            await screen.expect(r"^connected")
            await dial
            await screen.expect(r"^recording to .*0812555\.wav")
            await c.send_dtmf("7")
            await screen.expect(r"^dtmf received: 7")
            send("t 9#\n")
            assert await c.wait_dtmf(2, timeout=5) == "9#"
            send("bogus\n")
            await screen.expect(r"^unknown command")
            send("x" * (MAX_LINE + 50) + "\n")
            await screen.expect(r"too long")
            send("t\n")  # missing argument -> help, nothing sent
            await screen.expect(r"^commands:")
            send("h\n")
            await screen.expect(r"^disconnected \(")
            assert (await c.wait_disconnected(timeout=5)).status_code == 200
            send("h\n")
            await screen.expect(r"^no call")
            # Dial out from the softphone to the citizen.
            send(f"d {c.uri}\n")
            await screen.expect(r"^dialing")
            await c.wait_ringing(timeout=5)
            await c.answer()
            await screen.expect(r"^connected")
            send("q\n")
            assert await asyncio.wait_for(task, 10) == 0
            await c.wait_disconnected(timeout=5)
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    recordings = sorted((tmp_path / "rec").glob("*.wav"), key=lambda p: p.stat().st_mtime_ns)
    assert len(recordings) == 2
    durations = []
    for path in recordings:
        assert is_complete_wav(path)
        _, duration, params = wav_rms(path)
        assert params.framerate == 8000
        durations.append(duration)
    assert durations[0] > 0  # the inbound call lasted a while; the outbound one was quit at once
    assert "agent7" not in reg.contacts


async def test_softphone_registration_failure_and_eof(
    registrar: tuple[FakeRegistrar, int],
) -> None:
    _, port = registrar
    screen = Screen()
    stdin = asyncio.StreamReader()
    rc = await run_softphone(
        username="agent7",
        password="bad",
        host="127.0.0.1",
        port=port,
        auto_answer=True,
        record_dir=None,
        stdin=stdin,
        out=screen,
    )
    assert rc == 2
    await screen.expect(r"^registration failed: .*403")

    stdin = asyncio.StreamReader()
    stdin.feed_eof()
    rc = await run_softphone(
        username="agent7",
        password="s3cret",
        host="127.0.0.1",
        port=port,
        auto_answer=True,
        record_dir=None,
        stdin=stdin,
        out=screen,
    )
    assert rc == 0
