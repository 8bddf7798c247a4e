"""Recordings closed while the engine was not watching: found on disk, catalogued, transcribed."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from callcenter.app import Engine
from callcenter.calls.records import CallRecord
from callcenter.recording.catalogue import catalogue
from callcenter.recording.closed import RecordingClosed
from callcenter.recording.integrity import check_recording
from callcenter.recording.models import Recording
from callcenter.recording.recovery import closed_on_disk, not_catalogued, uniqueid_of
from callcenter.settings import load_settings
from callcenter.storage.database import Database
from callcenter.transcription.events import TranscriptionQueued
from callcenter.transcription.jobmodels import TranscriptionJob
from tests.ami.fake_ami import FakeAmi
from tests.recording.kit import write_wav
from tests.recording.test_catalogue import ami, engine_environ

__all__ = ["ami"]

NOW = time.time()
TODAY = datetime.fromtimestamp(NOW, UTC).date()


def recording(
    root: Path, name: str, *, age: float, day: int = 0, legs: tuple[str, ...] = ("", "-caller", "-agent")
) -> Path:
    when = TODAY - timedelta(days=day)
    base = root / f"{when:%Y}" / f"{when:%m}" / f"{when:%d}" / name
    for leg in legs:
        path = write_wav(Path(f"{base}{leg}.wav"), 1.0)
        os.utime(path, (NOW - age, NOW - age))
    return base


def test_only_quiet_files_the_dialplan_named_in_recent_folders_are_taken(tmp_path: Path) -> None:
    closed = recording(tmp_path, "1700000001_11", age=3600)
    yesterday = recording(tmp_path, "1700000000_5", age=90000, day=1)
    recording(tmp_path, "1700000002_22", age=5)  # still being written: a call in progress
    writing_leg = recording(tmp_path, "1700000003_33", age=3600)
    os.utime(f"{writing_leg}-agent.wav", (NOW, NOW))  # one leg still growing
    recording(tmp_path, "1700000004_44", age=3600, day=30)  # older than the days looked at
    recording(tmp_path, "bad name", age=3600)  # not a name the dialplan makes
    recording(tmp_path, "1700000005_55", age=3600, legs=("-caller",))  # no mixed file: not a base
    no_legs = recording(tmp_path, "1700000006_66", age=3600, legs=("",))  # legs missing: still taken
    found = closed_on_disk(tmp_path, 7, TODAY, NOW, quiet=300)
    assert found == [yesterday, closed, no_legs]
    assert closed_on_disk(tmp_path / "nowhere", 7, TODAY, NOW) == []


def test_the_call_is_found_by_its_name_or_made_up(db: Database, tmp_path: Path) -> None:
    known = recording(tmp_path, "pbx_a_1700000001_11", age=3600)
    unknown = recording(tmp_path, "1700000002_22", age=3600)
    done = recording(tmp_path, "1700000003_33", age=3600)
    with db.transaction() as s, s.begin():
        s.add(CallRecord(system_name="pbx", linkedid="pbx-a-1700000001.11", caller_number="081211112222",
                         queue="q112", agent="agent1", ivr={}))  # fmt: skip
        s.add(CallRecord(system_name="other", linkedid="pbx-a-1700000001.11", caller_number="0", ivr={}))
        closed = RecordingClosed("pbx", "1700000003.33", "1700000003.33", done, "081")
        catalogue(s, closed, check_recording(closed, tmp_path))
    with db.transaction() as s, s.begin():
        found = not_catalogued(s, "pbx", [known, unknown, done])
    assert found == [
        RecordingClosed("pbx", "pbx-a-1700000001.11", "pbx_a_1700000001_11", known, "081211112222"),
        RecordingClosed("pbx", "1700000002.22", "1700000002_22", unknown, ""),
    ]


@pytest.mark.parametrize(
    ("name", "system_name", "uniqueid"),
    [
        ("e2e_1796642105_0", "e2e", "e2e-1796642105.0"),  # asterisk.conf systemname = e2e
        ("pbx_a_1700000001_11", "pbx-a", "pbx-a-1700000001.11"),
        ("1700000001_11", "pbx", "1700000001.11"),  # no systemname in Asterisk
        ("pbx_1700000001_11", "other", "pbx_1700000001_11"),  # not this system's: left as it is
        ("odd_name", "pbx", "odd_name"),
    ],
)
def test_the_uniqueid_a_name_was_made_from(name: str, system_name: str, uniqueid: str) -> None:
    assert uniqueid_of(name, system_name) == uniqueid


@pytest.fixture
async def started(ami: FakeAmi, tmp_path: Path) -> AsyncIterator[tuple[Engine, Path]]:
    # A call recorded while the engine was down: its files are there before the engine starts.
    base = recording(tmp_path / "recordings", "1700000009_99", age=1800)
    engine = Engine(load_settings(environ=engine_environ(ami, tmp_path), base_dir=tmp_path))
    subscription = engine.bus.subscribe()
    events = await subscription.__aenter__()
    await engine.start()
    try:
        queued = await events.wait_for(TranscriptionQueued, 10)
        assert queued.job_ids
        yield engine, base
    finally:
        await subscription.__aexit__(None, None, None)
        await engine.stop()


async def test_the_engine_catalogues_at_start_what_it_missed_while_down(started: tuple[Engine, Path]) -> None:
    engine, base = started

    def rows(s: Session) -> tuple[list[tuple[str, str]], list[str], list[str]]:
        recordings = [(r.path, r.status) for r in s.scalars(select(Recording))]
        calls = [c.linkedid for c in s.scalars(select(CallRecord))]
        legs = [j.leg for j in s.scalars(select(TranscriptionJob).order_by(TranscriptionJob.id))]
        return recordings, calls, legs

    recordings, calls, legs = await engine.database.run(rows)
    assert recordings == [(str(base), "ok")]
    assert calls == ["1700000009.99"]
    assert legs == ["caller", "agent"]
    health = await engine.health()
    assert health["recordings"] == {"backlog": 0, "catalogued": 1, "recovered": 1}
    # The next pass finds nothing new: the catalogue knows it now.
    assert await engine.recovery.run_once() == []
