"""Cataloguing closed recordings: rows with what each file holds, failures kept, replays harmless;
and the engine doing it from the recorded channel's Hangup (a fake AMI on loopback)."""

from __future__ import annotations

import asyncio
import hashlib
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from callcenter.app import Engine
from callcenter.calls.records import CallRecord
from callcenter.events import Subscription
from callcenter.recording.catalogue import catalogue, files_of
from callcenter.recording.closed import RecordingClosed
from callcenter.recording.integrity import RecordingFailed, check_recording
from callcenter.recording.models import FAILED, OK, Recording, RecordingFile
from callcenter.settings import load_settings
from callcenter.storage.database import Database
from callcenter.transcription.events import TranscriptionQueued
from callcenter.transcription.jobmodels import TranscriptionJob
from tests.ami.fake_ami import EOL, FakeAmi
from tests.recording.kit import closed_recording, record

NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)


def test_a_complete_recording_is_catalogued_with_its_files(db: Database, tmp_path: Path) -> None:
    closed = record(tmp_path, "pbx-1700000000.0", seconds=1.5)
    check = check_recording(closed, tmp_path)
    with db.transaction() as s, s.begin():
        done = catalogue(s, closed, check, NOW)
    assert (done.created, done.status, done.failure) == (True, OK, "")
    with db.transaction() as s, s.begin():
        recording = s.get(Recording, done.recording_id)
        assert recording is not None
        assert (recording.path, recording.status, recording.failure) == (str(closed.base), OK, "")
        assert (recording.duration_seconds, recording.closed_at, recording.deleted_at) == (1.5, NOW, None)
        assert (recording.legal_hold, recording.legal_hold_by) == (False, "")
        call = s.get(CallRecord, recording.call_id)
        assert call is not None
        assert (call.system_name, call.linkedid, call.ended_at) == ("pbx", "pbx-1700000000.0", NOW)
        files = files_of(s, recording.id)
        assert [(f.kind, Path(f.path), f.status) for f in files] == [
            ("mixed", closed.mixed, OK),
            ("caller", closed.caller_leg, OK),
            ("agent", closed.agent_leg, OK),
        ]
        mixed = files[0]
        assert (mixed.size_bytes, mixed.format, mixed.sample_rate, mixed.channels, mixed.sample_width) == (
            24044,
            "wav/pcm",
            8000,
            1,
            2,
        )
        assert mixed.duration_seconds == 1.5
        assert mixed.sha256 == hashlib.sha256(closed.mixed.read_bytes()).hexdigest()
        assert mixed.checked_at == NOW


def test_a_replayed_hangup_finds_the_same_row(db: Database, tmp_path: Path) -> None:
    closed = record(tmp_path, "pbx-1700000000.0")
    check = check_recording(closed, tmp_path)
    with db.transaction() as s, s.begin():
        first = catalogue(s, closed, check, NOW)
    # The files changed meanwhile (a replay much later): the catalogue keeps what it found first.
    closed.agent_leg.unlink()
    with db.transaction() as s, s.begin():
        again = catalogue(s, closed, check_recording(closed, tmp_path), NOW)
    assert (again.recording_id, again.call_id, again.created, again.status) == (
        first.recording_id,
        first.call_id,
        False,
        OK,
    )
    with db.transaction() as s, s.begin():
        assert s.scalar(select(func.count()).select_from(Recording)) == 1
        assert s.scalar(select(func.count()).select_from(RecordingFile)) == 3


def test_a_failed_recording_keeps_its_reason(db: Database, tmp_path: Path) -> None:
    closed = record(tmp_path, "pbx-1700000000.0")
    closed.caller_leg.write_bytes(b"")
    check = check_recording(closed, tmp_path)
    with db.transaction() as s, s.begin():
        done = catalogue(s, closed, check, NOW)
    assert (done.status, done.failure) == (FAILED, "caller pbx_1700000000_0-caller.wav: empty: 0 bytes")
    with db.transaction() as s, s.begin():
        recording = s.get(Recording, done.recording_id)
        assert recording is not None
        assert (recording.status, recording.failure) == (FAILED, done.failure)
        by_kind = {f.kind: (f.status, f.failure, f.size_bytes) for f in files_of(s, done.recording_id)}
        assert by_kind == {
            "mixed": (OK, "", 24044),
            "caller": (FAILED, "empty: 0 bytes", 0),
            "agent": (OK, "", 24044),
        }


def test_nothing_recorded_at_all(db: Database, tmp_path: Path) -> None:
    closed = closed_recording(tmp_path, "pbx-1700000000.0")
    with db.transaction() as s, s.begin():
        done = catalogue(s, closed, check_recording(closed, tmp_path), NOW)
    assert done.status == FAILED
    assert done.failure == (
        "mixed pbx_1700000000_0.wav: missing; caller pbx_1700000000_0-caller.wav: missing; "
        "agent pbx_1700000000_0-agent.wav: missing"
    )
    with db.transaction() as s, s.begin():
        recording = s.get(Recording, done.recording_id)
        assert recording is not None and recording.duration_seconds is None


# -- the engine: the recorded channel's Hangup is the signal ------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def ami() -> AsyncIterator[FakeAmi]:
    server = FakeAmi()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def engine_environ(ami: FakeAmi, tmp_path: Path) -> dict[str, str]:
    """An engine on the fake AMI, its recordings under ``tmp_path``, no transcription workers."""
    return {
        "CALLCENTER_SYSTEM_NAME": "pbx",
        "CALLCENTER_AMI_PORT": str(ami.port),
        "CALLCENTER_AMI_SECRET": "s3cret",
        "CALLCENTER_AGI_PORT": str(free_port()),
        "CALLCENTER_HTTP_PORT": str(free_port()),
        "CALLCENTER_RECORDINGS_DIR": str(tmp_path / "recordings"),
        "CALLCENTER_TRANSCRIPTION_WORKERS": "0",
    }


@pytest.fixture
async def engine(ami: FakeAmi, tmp_path: Path) -> AsyncIterator[Engine]:
    running = Engine(load_settings(environ=engine_environ(ami, tmp_path), base_dir=tmp_path))
    await running.start()
    try:
        await running.ami.wait_fully_booted(10)
        yield running
    finally:
        await running.stop()


def hangup(closed: RecordingClosed) -> bytes:
    lines = [
        "Event: Hangup",
        "Privilege: call,all",
        "SystemName: pbx",
        "Channel: PJSIP/citizen1-00000001",
        "ChannelState: 6",
        "ChannelStateDesc: Up",
        "CallerIDNum: 081234567890",
        "CallerIDName: <unknown>",
        "ConnectedLineNum: <unknown>",
        "ConnectedLineName: <unknown>",
        "Language: en",
        "AccountCode: ",
        "Context: cc-queues",
        "Exten: q112",
        "Priority: 2",
        f"Uniqueid: {closed.uniqueid}",
        f"Linkedid: {closed.linkedid}",
        "ChanVariable: CC_SERVICE=112",
        f"ChanVariable: CC_RECORDING={closed.base}",
        "Cause: 16",
        "Cause-txt: Normal Clearing",
    ]
    return (EOL.join(lines) + EOL + EOL).encode()


async def until_closed(events: Subscription) -> list[object]:
    """Every event up to and including the next RecordingClosed, in order."""
    seen: list[object] = []
    async with asyncio.timeout(10):
        while not isinstance(event := await events.get(), RecordingClosed):
            seen.append(event)
    return [*seen, event]


async def test_the_engine_catalogues_a_closed_recording(engine: Engine, ami: FakeAmi) -> None:
    closed = record(engine.settings.recordings_dir, "pbx-1700000000.0")
    async with engine.bus.subscribe() as events:
        await ami.send(hangup(closed))
        seen = await events.wait_for(RecordingClosed, 10)
    assert seen == closed
    rows = await engine.database.run(lambda s: [(r.path, r.status) for r in s.scalars(select(Recording))])
    assert rows == [(str(closed.base), OK)]


async def test_a_truncated_recording_is_announced_once(engine: Engine, ami: FakeAmi) -> None:
    closed = record(engine.settings.recordings_dir, "pbx-1700000000.0", seconds=1.0)
    with closed.mixed.open("r+b") as handle:
        handle.truncate(8044)
    async with engine.bus.subscribe() as events:
        await ami.send(hangup(closed))
        first = await until_closed(events)
        # The same Hangup again (a replay): catalogued already, not announced again.
        await ami.send(hangup(closed))
        again = await until_closed(events)
    failures = [e for e in first if isinstance(e, RecordingFailed)]
    assert len(failures) == 1
    assert not [e for e in again if isinstance(e, RecordingFailed)]
    failed = failures[0]
    reason = "mixed pbx_1700000000_0.wav: truncated: the RIFF header says 16044 bytes, the file has 8044"
    assert (failed.linkedid, failed.uniqueid, failed.base, failed.reason) == (
        "pbx-1700000000.0",
        "pbx-1700000000.0",
        closed.base,
        reason,
    )
    rows = await engine.database.run(
        lambda s: [(r.id, r.status, r.failure) for r in s.scalars(select(Recording))]
    )
    assert rows == [(failed.recording_id, FAILED, reason)]


async def test_a_closed_recording_queues_each_leg_for_transcription_once(
    engine: Engine, ami: FakeAmi
) -> None:
    closed = record(engine.settings.recordings_dir, "pbx-1700000000.0")
    async with engine.bus.subscribe() as events:
        await ami.send(hangup(closed))
        await events.wait_for(RecordingClosed, 10)
        queued = await events.wait_for(TranscriptionQueued, 10)
        # The same Hangup again (a replay): nothing is queued twice.
        await ami.send(hangup(closed))
        await until_closed(events)
        await ami.send(hangup(closed))  # a third time: what came after the second is in here
        again = await until_closed(events)
    assert not [e for e in again if isinstance(e, TranscriptionQueued)]

    def jobs(s: Session) -> list[tuple[int, str, str, str, str, int | None, int | None]]:
        return [
            (j.id, j.leg, j.path, j.engine, j.status, j.recording_id, j.call_id)
            for j in s.scalars(select(TranscriptionJob).order_by(TranscriptionJob.id))
        ]

    rows = await engine.database.run(jobs)
    health = await engine.health()
    # Three Hangups handed over to the intake task, all catalogued (two found the row there).
    assert health["recordings"] == {"backlog": 0, "catalogued": 3, "recovered": 0}
    assert health["transcription"] == {
        "engine": "vosk",
        "workers": 0,
        "workers_alive": 0,
        "jobs": {"pending": 2, "running": 0, "done": 0, "failed": 0},
    }
    recording_id, call_id = queued.recording_id, queued.call_id
    assert rows == [
        (
            queued.job_ids[0],
            "caller",
            str(closed.caller_leg.absolute()),
            "vosk",
            "pending",
            recording_id,
            call_id,
        ),
        (
            queued.job_ids[1],
            "agent",
            str(closed.agent_leg.absolute()),
            "vosk",
            "pending",
            recording_id,
            call_id,
        ),
    ]


async def test_a_missing_leg_is_not_queued_for_transcription(engine: Engine, ami: FakeAmi) -> None:
    closed = record(engine.settings.recordings_dir, "pbx-1700000001.0")
    closed.agent_leg.unlink()
    async with engine.bus.subscribe() as events:
        await ami.send(hangup(closed))
        failed = await events.wait_for(RecordingFailed, 10)
        queued = await events.wait_for(TranscriptionQueued, 10)
    assert "agent" in failed.reason
    legs = await engine.database.run(
        lambda s: [
            j.leg for j in s.scalars(select(TranscriptionJob).where(TranscriptionJob.id.in_(queued.job_ids)))
        ]
    )
    assert legs == ["caller"]


async def test_a_leg_path_too_long_for_the_job_table_still_catalogues_the_recording(
    engine: Engine, tmp_path: Path
) -> None:
    root = tmp_path / ("d" * 200) / ("e" * 200) / ("f" * 100)
    closed = record(root, "pbx-1700000002.0")
    check = check_recording(closed, root)
    assert check.ok and len(str(closed.caller_leg)) > 500
    done, queued = await engine.database.run(lambda s: engine._catalogue(s, closed, check))
    assert done.created and queued is None
    rows = await engine.database.run(
        lambda s: (
            s.scalar(select(func.count()).select_from(Recording).where(Recording.id == done.recording_id)),
            s.scalar(select(func.count()).select_from(TranscriptionJob)),
        )
    )
    assert rows == (1, 0)
