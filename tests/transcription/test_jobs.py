"""The persisted transcription job queue, on SQLite and PostgreSQL, with explicit clocks.

The race test runs two real worker processes (spawn), each with its own Database, claiming from
the same 40 jobs on PostgreSQL (``FOR UPDATE SKIP LOCKED``). No model is needed here: what is
stored comes from a fixed Recognition; the real engines are in test_worker.py.
"""

from __future__ import annotations

import multiprocessing
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from alembic import command
from sqlalchemy import create_engine, delete, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from callcenter.calls.records import CallRecord
from callcenter.storage.database import Database
from callcenter.storage.migrate import alembic_config, upgrade
from callcenter.storage.schema import metadata
from callcenter.transcription import UnknownEngine, jobs
from callcenter.transcription.jobmodels import (
    DONE,
    FAILED,
    PENDING,
    RUNNING,
    Transcript,
    TranscriptionJob,
)
from callcenter.transcription.recognizer import Recognition, Word
from tests.conftest import ADMIN_URL
from tests.realparts import missing

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
LEASE = timedelta(minutes=5)


def recognition(text: str = "tolong ada kebakaran") -> Recognition:
    words = tuple(
        Word(word, start=0.5 * i, end=0.5 * i + 0.4, confidence=0.9) for i, word in enumerate(text.split())
    )
    return Recognition(text=text, words=words, engine="vosk", language="id", confidence=0.9)


def in_tx(db: Database, work: Any) -> Any:
    with db.transaction() as session, session.begin():
        return work(session)


def add(db: Database, name: str, leg: str = "caller", engine: str = "vosk", now: datetime = T0) -> int:
    def work(session: Session) -> int:
        return jobs.enqueue(session, path=f"/rec/{name}.wav", leg=leg, engine=engine, now=now).id

    result: int = in_tx(db, work)
    return result


def claim(db: Database, worker: str, now: datetime, **options: Any) -> jobs.Claim | None:
    result: jobs.Claim | None = in_tx(db, lambda s: jobs.claim(s, worker, now, lease=LEASE, **options))
    return result


def job(db: Database, job_id: int) -> TranscriptionJob:
    found: TranscriptionJob = in_tx(db, lambda s: s.get(TranscriptionJob, job_id))
    return found


def transcript_count(db: Database) -> int:
    found: int = in_tx(db, lambda s: s.scalar(select(func.count()).select_from(Transcript)))
    return found


# --- one migrated database per backend for the whole module, emptied between tests ------------
# (creating and migrating a PostgreSQL database per test costs over a second each)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def shared_database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('jobs') / 'callcenter.db'}"
        upgrade(url)
        yield url
        return
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"cc_test_{secrets.token_hex(6)}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as exc:
        admin.dispose()
        missing(f"PostgreSQL at {make_url(ADMIN_URL).render_as_string()}: {str(exc).splitlines()[0]}")
    url = make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def db(shared_database_url: str) -> Iterator[Database]:
    database = Database(shared_database_url)
    database.open()
    try:
        yield database
    finally:
        with database.transaction() as session, session.begin():
            for table in reversed(metadata().sorted_tables):
                session.execute(delete(table))
        database.close()


# --- enqueue ------------------------------------------------------------------------------------


def test_enqueue_is_idempotent_per_file_and_engine(db: Database) -> None:
    first = add(db, "a")
    assert add(db, "a") == first  # a replayed Hangup
    other_engine = add(db, "a", engine="whisper")
    assert other_engine != first
    row = job(db, first)
    assert (row.status, row.attempts, row.leg, row.engine, row.path) == (
        PENDING,
        0,
        "caller",
        "vosk",
        "/rec/a.wav",
    )
    assert row.created_at == T0 and row.available_at == T0
    # Done jobs stay done when the same leg is enqueued again.
    held = claim(db, "w1", T0)
    assert held is not None and held.job_id == first
    in_tx(db, lambda s: jobs.complete(s, held, recognition(), T0))
    assert add(db, "a") == first
    assert job(db, first).status == DONE
    assert in_tx(db, lambda s: s.scalar(select(func.count()).select_from(TranscriptionJob))) == 2


def test_enqueue_legs_links_recording_and_call(db: Database) -> None:
    def work(session: Session) -> list[TranscriptionJob]:
        call = CallRecord(system_name="local", linkedid="1.1", caller_number="0812", started_at=T0)
        session.add(call)
        session.flush()
        return jobs.enqueue_legs(
            session,
            {"caller": "/rec/x-caller.wav", "agent": "/rec/x-agent.wav"},
            engine="vosk",
            recording_id=None,
            call_id=call.id,
            now=T0,
        )

    made = in_tx(db, work)
    assert [(j.leg, j.path) for j in made] == [("caller", "/rec/x-caller.wav"), ("agent", "/rec/x-agent.wav")]
    assert made[0].call_id is not None and made[0].call_id == made[1].call_id


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"leg": "both"}, jobs.JobError),
        ({"engine": "kaldi"}, UnknownEngine),
        ({"path": "relative.wav"}, jobs.JobError),
        ({"path": "/" + "x" * 600}, jobs.JobError),
    ],
)
def test_enqueue_refuses_bad_input(db: Database, options: dict[str, str], error: type[Exception]) -> None:
    values = {"path": "/rec/a.wav", "leg": "caller", "engine": "vosk", **options}
    with pytest.raises(error):
        in_tx(db, lambda s: jobs.enqueue(s, now=T0, **values))


# --- claim, complete, fail ----------------------------------------------------------------------


def test_claim_takes_one_job_at_a_time_in_order(db: Database) -> None:
    ids = [add(db, f"j{i}") for i in range(3)]
    assert claim(db, "w1", T0 - timedelta(seconds=1)) is None  # not yet available
    first = claim(db, "w1", T0)
    second = claim(db, "w2", T0)
    assert first is not None and second is not None
    assert (first.job_id, second.job_id) == (ids[0], ids[1])
    assert (first.attempt, first.worker_id, first.lease_until) == (1, "w1", T0 + LEASE)
    row = job(db, ids[0])
    assert (row.status, row.claimed_by, row.claimed_at, row.lease_until) == (RUNNING, "w1", T0, T0 + LEASE)
    third = claim(db, "w1", T0)
    assert third is not None and third.job_id == ids[2]
    assert claim(db, "w3", T0) is None


def test_claim_only_for_the_engines_a_worker_has(db: Database) -> None:
    add(db, "v", engine="vosk")
    w = add(db, "w", engine="whisper")
    held = claim(db, "w1", T0, engines=["whisper"])
    assert held is not None and held.job_id == w and held.engine == "whisper"
    assert claim(db, "w1", T0, engines=["whisper"]) is None


def test_complete_stores_the_transcript_once(db: Database) -> None:
    job_id = add(db, "a", leg="agent")
    held = claim(db, "w1", T0)
    assert held is not None
    stored = in_tx(
        db, lambda s: jobs.complete(s, held, recognition(), T0 + timedelta(seconds=9), duration=2.0)
    )
    assert (stored.speaker, stored.leg, stored.text, stored.engine, stored.language) == (
        "petugas",
        "agent",
        "tolong ada kebakaran",
        "vosk",
        "id",
    )
    assert stored.words[2] == {"word": "kebakaran", "start": 1.0, "end": 1.4, "conf": 0.9}
    assert stored.duration_seconds == 2.0
    row = job(db, job_id)
    assert (row.status, row.finished_at, row.lease_until, row.error) == (
        DONE,
        T0 + timedelta(seconds=9),
        None,
        "",
    )
    with pytest.raises(jobs.LostClaim):
        in_tx(db, lambda s: jobs.complete(s, held, recognition(), T0))
    assert transcript_count(db) == 1


def test_a_dead_workers_job_is_taken_again_and_done_exactly_once(db: Database) -> None:
    job_id = add(db, "a")
    dead = claim(db, "w-dead", T0)
    assert dead is not None
    # Within the lease nobody else may take it.
    assert claim(db, "w2", T0 + LEASE - timedelta(seconds=1)) is None
    # After it, another worker does.
    later = T0 + LEASE + timedelta(seconds=1)
    taken = claim(db, "w2", later)
    assert taken is not None and (taken.job_id, taken.attempt) == (job_id, 2)
    # The first worker was only slow: it comes back, and may neither renew nor store.
    with pytest.raises(jobs.LostClaim):
        in_tx(db, lambda s: jobs.renew(s, dead, later))
    with pytest.raises(jobs.LostClaim):
        in_tx(db, lambda s: jobs.complete(s, dead, recognition("first"), later))
    with pytest.raises(jobs.LostClaim):
        in_tx(db, lambda s: jobs.fail(s, dead, "boom", later))
    in_tx(db, lambda s: jobs.complete(s, taken, recognition("second"), later))
    assert transcript_count(db) == 1
    assert in_tx(db, lambda s: s.scalars(select(Transcript.text)).all()) == ["second"]
    row = job(db, job_id)
    assert (row.status, row.attempts, row.claimed_by) == (DONE, 2, "w2")


def test_renewing_keeps_the_job(db: Database) -> None:
    add(db, "a")
    held = claim(db, "w1", T0)
    assert held is not None
    renewed = in_tx(db, lambda s: jobs.renew(s, held, T0 + timedelta(minutes=4), LEASE))
    assert renewed.lease_until == T0 + timedelta(minutes=9)
    assert claim(db, "w2", T0 + timedelta(minutes=6)) is None
    assert claim(db, "w2", T0 + timedelta(minutes=10)) is not None


def test_a_job_that_keeps_killing_workers_is_failed(db: Database) -> None:
    job_id = add(db, "poison")
    now = T0
    for attempt in (1, 2, 3):
        held = claim(db, f"w{attempt}", now, max_attempts=3)
        assert held is not None and held.attempt == attempt
        now += LEASE + timedelta(seconds=1)
    assert claim(db, "w4", now, max_attempts=3) is None
    row = job(db, job_id)
    assert row.status == FAILED and row.finished_at == now
    assert "gave up after 3 attempts" in row.error and "w3" in row.error


def test_transient_errors_are_retried_then_failed(db: Database) -> None:
    job_id = add(db, "a")
    now = T0
    for attempt in (1, 2):
        held = claim(db, "w1", now)
        assert held is not None and held.attempt == attempt
        failed = in_tx(db, lambda s, h=held, t=now: jobs.fail(s, h, "decoder crashed", t, retry=True))
        assert failed.status == PENDING and f"attempt {attempt} of 3 failed: decoder crashed" in failed.error
        assert failed.available_at == now + jobs.RETRY_DELAY * attempt
        assert claim(db, "w1", now) is None  # waits its delay
        now = failed.available_at
    held = claim(db, "w1", now)
    assert held is not None and held.attempt == 3
    in_tx(db, lambda s: jobs.fail(s, held, "decoder crashed", now, retry=True))
    row = job(db, job_id)
    assert (row.status, row.error, row.finished_at) == (FAILED, "decoder crashed", now)
    # An operator may put it back.
    again = in_tx(db, lambda s: jobs.retry_failed(s, job_id, now))
    assert again.status == PENDING
    with pytest.raises(jobs.JobError):
        in_tx(db, lambda s: jobs.retry_failed(s, job_id, now))


def test_bad_audio_fails_at_once_with_the_error(db: Database) -> None:
    job_id = add(db, "empty")
    held = claim(db, "w1", T0)
    assert held is not None
    in_tx(db, lambda s: jobs.fail(s, held, "/rec/empty.wav: empty file (0 bytes), no audio in it", T0))
    row = job(db, job_id)
    assert (row.status, row.attempts) == (FAILED, 1)
    assert row.error == "/rec/empty.wav: empty file (0 bytes), no audio in it"
    assert in_tx(db, jobs.counts) == {"pending": 0, "running": 0, "done": 0, "failed": 1}


def test_a_known_dead_worker_is_released_at_once(db: Database) -> None:
    job_id = add(db, "a")
    held = claim(db, "w1", T0)
    assert held is not None
    assert in_tx(db, lambda s: jobs.release(s, "w1", T0 + timedelta(seconds=5))) == 1
    row = job(db, job_id)
    assert (row.status, row.claimed_by) == (PENDING, "")
    assert "w1 died" in row.error
    again = claim(db, "w2", T0 + timedelta(seconds=5))
    assert again is not None and again.attempt == 2


def test_migration_0004_goes_down_and_up(database_url: str) -> None:
    upgrade(database_url)
    config = alembic_config(database_url)
    command.downgrade(config, "0003")
    command.upgrade(config, "head")


# --- two worker processes on PostgreSQL ---------------------------------------------------------


def _claim_until_empty(url: str, worker: str, start: Any, out: Any) -> None:
    """A worker process: claim and complete until nothing is left; report what it took."""
    db = Database(url)
    db.open()
    taken: list[int] = []
    start.wait()
    try:
        while True:
            with db.transaction() as session, session.begin():
                held = jobs.claim(session, worker, T0, lease=LEASE)
                if held is None:
                    break
                jobs.complete(session, held, recognition(f"job {held.job_id}"), T0)
                taken.append(held.job_id)
    finally:
        db.close()
        out.put((worker, taken))


def test_two_worker_processes_never_take_the_same_job(postgres_url: str) -> None:
    upgrade(postgres_url)
    pg = Database(postgres_url)
    pg.open()
    try:
        _race(pg, postgres_url)
    finally:
        pg.close()


def _race(pg: Database, postgres_url: str) -> None:
    ids = [add(pg, f"race{i}") for i in range(40)]
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    out = context.Queue()
    workers = [
        context.Process(target=_claim_until_empty, args=(postgres_url, name, start, out))
        for name in ("a", "b")
    ]
    for process in workers:
        process.start()
    start.set()
    results = dict(out.get(timeout=60) for _ in workers)
    for process in workers:
        process.join(30)
        assert process.exitcode == 0
    taken_a, taken_b = set(results["a"]), set(results["b"])
    assert len(results["a"]) == len(taken_a) and len(results["b"]) == len(taken_b)
    assert not taken_a & taken_b
    assert taken_a | taken_b == set(ids)
    assert in_tx(pg, jobs.counts) == {"pending": 0, "running": 0, "done": 40, "failed": 0}
    assert transcript_count(pg) == 40
    by_job = in_tx(pg, lambda s: dict(s.execute(select(Transcript.job_id, Transcript.text)).all()))
    assert by_job == {i: f"job {i}" for i in ids}
