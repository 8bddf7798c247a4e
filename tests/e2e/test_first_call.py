"""A citizen dials 112 on the real Asterisk and reaches an agent; with and without the engine."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from panoramisk.message import Message
from sqlalchemy import select
from sqlalchemy.orm import Session

from callcenter.agi.server import IvrCommandSent
from callcenter.ami.connection import AmiConnection
from callcenter.app import Engine
from callcenter.asterisk.process import AsteriskProcess
from callcenter.calls.records import CallRecord
from callcenter.credentials import SipAccount, ami_secret, line_number
from callcenter.recording.catalogue import files_of
from callcenter.recording.closed import RecordingClosed, recording_closed
from callcenter.recording.models import Recording
from callcenter.recording.recovery import QUIET_SECONDS
from callcenter.settings import Settings
from callcenter.sip import AgentPhone, CitizenPhone
from callcenter.sip.wav import wav_rms
from callcenter.transcription.events import TranscriptionQueued
from tests.e2e.conftest import logged_in
from tests.realparts import SPEECH_RMS

pytestmark = pytest.mark.e2e


def phone(cls: type[CitizenPhone] | type[AgentPhone], account: SipAccount, tmp_path: Path) -> CitizenPhone:
    return cls(
        username=account.username,
        password=account.password,
        host=account.host,
        port=account.port,
        log_path=tmp_path / f"{account.username}-pjsip.log",
    )


async def talk(
    citizen: CitizenPhone, agent: AgentPhone, citizen_speech: Path, agent_speech: Path, tmp_path: Path
) -> tuple[Path, Path]:
    """The agent answers; both speak; returns what each one heard."""
    incoming = await agent.wait_ringing(30)
    assert line_number(citizen.username) in incoming.remote_uri
    await agent.answer()
    agent_heard, citizen_heard = tmp_path / "agent-heard.wav", tmp_path / "citizen-heard.wav"
    await agent.record(agent_heard)
    await citizen.record(citizen_heard)
    await citizen.play(citizen_speech)
    await citizen.wait_playback_done(30)
    await agent.play(agent_speech)
    await agent.wait_playback_done(30)
    await citizen.hangup()
    await agent.wait_disconnected(10)
    return agent_heard, citizen_heard


def assert_heard_speech(path: Path, spoken: Path) -> None:
    rms, duration = wav_rms(path)
    _, spoken_duration = wav_rms(spoken)
    assert duration >= spoken_duration * 0.9, f"{path.name}: only {duration:.1f} s recorded"
    assert rms > SPEECH_RMS, f"{path.name}: silence (RMS {rms:.0f})"


def assert_recording_complete(closed: RecordingClosed, spoken: Path, settings: Settings) -> None:
    assert closed.mixed.is_relative_to(settings.recordings_dir)
    assert closed.mixed.parent.relative_to(settings.recordings_dir).as_posix().count("/") == 2  # YYYY/MM/DD
    rms, duration = wav_rms(closed.mixed)
    _, spoken_duration = wav_rms(spoken)
    assert duration > spoken_duration, f"mixed recording only {duration:.1f} s"
    assert rms > SPEECH_RMS
    for leg in (closed.caller_leg, closed.agent_leg):
        assert wav_rms(leg)[1] > spoken_duration
    # The caller's own leg holds the caller's speech.
    assert wav_rms(closed.caller_leg)[0] > SPEECH_RMS


async def test_112_through_the_ivr_reaches_an_agent(
    engine: Engine,
    accounts: dict[str, SipAccount],
    pbx_settings: Settings,
    citizen_speech: Path,
    agent_speech: Path,
    tmp_path: Path,
) -> None:
    async with (
        engine.bus.subscribe() as events,
        phone(AgentPhone, accounts["agent1"], tmp_path) as agent,
        phone(CitizenPhone, accounts["citizen1"], tmp_path) as citizen,
    ):
        await agent.wait_registered(10)
        await citizen.dial(pbx_settings.emergency_number, timeout=15)
        # The FastAGI server answers: the greeting with the one-key menu is playing.
        menu = await events.wait_for(IvrCommandSent, 15, lambda e: e.command.startswith("GET DATA"))
        assert menu.route == "112"
        await citizen.send_dtmf("2")
        choice = await events.wait_for(IvrCommandSent, 15, lambda e: "CC_CHOICE" in e.command)
        assert choice.command == 'SET VARIABLE CC_CHOICE "fire"'
        agent_heard, citizen_heard = await talk(citizen, agent, citizen_speech, agent_speech, tmp_path)
        closed = await events.wait_for(RecordingClosed, 15)
    assert_heard_speech(agent_heard, citizen_speech)
    assert_heard_speech(citizen_heard, agent_speech)
    assert_recording_complete(closed, citizen_speech, pbx_settings)
    assert closed.system_name == "e2e"


@contextlib.asynccontextmanager
async def ami_watch(
    settings: Settings,
) -> AsyncIterator[tuple[AmiConnection, asyncio.Queue[RecordingClosed]]]:
    """An AMI client of the test's own, to see recordings close while the engine is down."""
    closed: asyncio.Queue[RecordingClosed] = asyncio.Queue()

    def on_hangup(message: Message) -> None:
        event = recording_closed(settings.system_name, message)
        if event is not None:
            closed.put_nowait(event)

    conn = AmiConnection(
        system_name=settings.system_name,
        host=settings.ami_host,
        port=settings.ami_port,
        username=settings.ami_username,
        secret=ami_secret(settings),
        handlers={"Hangup": on_hangup},
    )
    task = asyncio.create_task(conn.run())
    try:
        await conn.wait_fully_booted(15)
        yield conn, closed
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_112_reaches_an_agent_when_the_engine_is_down(
    asterisk: AsteriskProcess,
    accounts: dict[str, SipAccount],
    pbx_settings: Settings,
    citizen_speech: Path,
    agent_speech: Path,
    tmp_path: Path,
) -> None:
    # No engine: nothing listens on the FastAGI port, so AGI fails and the dialplan falls back.
    # The agent logged in before the engine went down: Asterisk keeps its queue membership.
    async with (
        ami_watch(pbx_settings) as (ami, closed),
        logged_in(ami, "agent2"),
        phone(AgentPhone, accounts["agent2"], tmp_path) as agent,
        phone(CitizenPhone, accounts["citizen1"], tmp_path) as citizen,
    ):
        await agent.wait_registered(10)
        await citizen.dial(pbx_settings.emergency_number, timeout=15)
        agent_heard, citizen_heard = await talk(citizen, agent, citizen_speech, agent_speech, tmp_path)
        recording = await asyncio.wait_for(closed.get(), 15)
    assert_heard_speech(agent_heard, citizen_speech)
    assert_heard_speech(citizen_heard, agent_speech)
    assert_recording_complete(recording, citizen_speech, pbx_settings)

    # The engine comes back. It never saw that call end, yet it finds the recording on disk,
    # links it to the call Asterisk named, hashes it and queues both sides for transcription.
    # The files are dated back past the quiet time (time passing, not a fake part): a file
    # written in the last minutes could belong to a call still going on.
    past = time.time() - 2 * QUIET_SECONDS
    for path in (recording.mixed, recording.caller_leg, recording.agent_leg):
        os.utime(path, (past, past))
    settings = pbx_settings.replace(recording_recovery_interval=600)
    engine = Engine(settings)
    async with engine.bus.subscribe() as events:
        await engine.start()
        try:
            recovered = await events.wait_for(RecordingClosed, 30, lambda e: e.base == recording.base)
            queued = await events.wait_for(TranscriptionQueued, 15, lambda e: len(e.job_ids) == 2)

            def stored(session: Session) -> tuple[str, str, dict[str, str]]:
                row = session.scalars(select(Recording).where(Recording.path == str(recording.base))).one()
                call = session.get(CallRecord, row.call_id)
                assert call is not None
                return row.status, call.linkedid, {f.kind: f.sha256 for f in files_of(session, row.id)}

            status, linkedid, hashes = await engine.database.run(stored)
        finally:
            await engine.stop()
    # The call's own Linkedid, recovered from the file name (the caller's channel is recorded).
    assert recovered.linkedid == recording.linkedid == linkedid
    assert status == "ok" and queued.recording_id is not None
    files = {"mixed": recording.mixed, "caller": recording.caller_leg, "agent": recording.agent_leg}
    for kind, path in files.items():
        assert hashes[kind] == hashlib.sha256(path.read_bytes()).hexdigest()
