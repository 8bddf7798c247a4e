"""Transcription workers: processes that claim jobs, transcribe the audio, and store transcripts.

Shape::

    engine (asyncio)                         N worker processes (spawn)
    ────────────────                         ─────────────────────────────────────────────
    RecordingClosed → jobs.enqueue_legs  ──>  DB  <── claim (SKIP LOCKED) ─ transcribe ─ complete
    pool.wake()  ── doorbell (mp.Queue) ──>  wakes an idle worker at once (else it polls)
    pool.supervise() <── events (mp.Queue) ─  ready / claimed / done / failed / lost
      restarts a dead worker, releases its job

- Each worker process opens its own :class:`~callcenter.storage.database.Database` and loads its
  model ONCE, before it claims anything (a missing model stops the worker, it never fails jobs).
- Per job: the file is decoded to 16 kHz mono 16-bit PCM in the worker
  (:mod:`callcenter.transcription.audio`, FFmpeg through PyAV); audio no longer than
  ``segment_seconds`` is recognised as it is, exactly as a direct decode of the file; longer
  audio is cut in the middle of silences into segments of at most ``segment_seconds``
  (:func:`split_at_silences`), the segments are recognised (on ``segment_threads`` threads that
  share the one model) and their words shifted back to times from the start of the file.
- While a job runs, a heartbeat thread renews its lease; a worker that dies stops renewing, and
  after the lease the job is claimed again (by any worker on any machine). When the pool sees
  one of its own processes exit it releases that worker's job at once.
- Bad audio (missing, empty, corrupt) fails the job with the error text and the worker goes on;
  other errors are retried (``max_attempts``) after a delay.

The engine drives a :class:`TranscriptionPool` with ``await start()`` / ``await stop()``; every
blocking step (spawning, joining, the database) runs in an executor, never on the event loop.
``transcribe_files`` is the batch path for the CLI (no database).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import multiprocessing
import multiprocessing.connection
import multiprocessing.queues
import os
import queue
import secrets
import signal
import socket
import sys
import tempfile
import threading
import time
import wave
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from callcenter.storage.base import utcnow
from callcenter.storage.database import Database
from callcenter.transcription import jobs
from callcenter.transcription.audio import SAMPLE_RATE, SAMPLE_WIDTH, load_pcm16
from callcenter.transcription.jobmodels import PENDING
from callcenter.transcription.recognizer import (
    AudioError,
    GrammarError,
    ModelError,
    Recognition,
    Recognizer,
    TranscriptionError,
    UnsupportedLanguage,
    Word,
    make_recognizer,
)

if TYPE_CHECKING:
    from callcenter.settings import Settings

log = logging.getLogger(__name__)

# Errors that trying again cannot fix: the job fails at once.
PERMANENT_ERRORS: tuple[type[BaseException], ...] = (AudioError, UnsupportedLanguage, GrammarError)
# Exit code of a worker that cannot work at all (no model): the pool does not restart it.
EXIT_FATAL = 3


@dataclass(frozen=True)
class WorkerConfig:
    """Everything a worker process needs (picklable; it is sent to spawned processes)."""

    database_url: str
    engine: str = "vosk"
    # Model folder; None = the model the engine's package ships.
    model_path: str | None = None
    # Used when the job names none; "" = the engine's default.
    language: str = ""
    # More engine options (Whisper: compute_type, beam_size, cpu_threads, vad_filter).
    options: dict[str, Any] = field(default_factory=dict)
    lease_seconds: float = 300.0
    max_attempts: int = jobs.MAX_ATTEMPTS
    retry_delay_seconds: float = 30.0
    # An idle worker looks for jobs this often even when nobody rings the doorbell
    # (jobs enqueued by another node, leases expiring).
    poll_seconds: float = 5.0
    # Audio longer than this is split at silences into segments no longer than this.
    segment_seconds: float = 30.0
    segment_threads: int = 1
    min_silence_seconds: float = 0.4
    # Frames this many dB below the file's average loudness count as silence.
    silence_below_db: float = 16.0
    log_level: str = "INFO"

    @classmethod
    def from_settings(cls, settings: Settings) -> WorkerConfig:
        engine = settings.transcribe_engine
        model = settings.whisper_model_dir if engine == "whisper" else settings.vosk_model_dir
        options: dict[str, Any] = {"cpu_threads": 1} if engine == "whisper" else {}
        return cls(
            database_url=settings.resolved_database_url,
            engine=engine,
            model_path=str(model) if model is not None else None,
            language=settings.transcribe_language,
            options=options,
            lease_seconds=settings.transcription_lease_seconds,
            max_attempts=settings.transcription_max_attempts,
            segment_seconds=settings.transcription_segment_seconds,
            log_level=settings.log_level.upper(),
        )

    @property
    def lease(self) -> timedelta:
        return timedelta(seconds=self.lease_seconds)


def build_recognizer(config: WorkerConfig) -> Recognizer:
    """The configured engine, with its model loaded into this process's cache."""
    model_path = Path(config.model_path) if config.model_path else None
    recognizer = make_recognizer(config.engine, model_path, **config.options)
    load = getattr(recognizer, "model", None)
    if callable(load):
        load()
    return recognizer


# --- audio: splitting long recordings at silences ----------------------------------------------


def split_at_silences(
    pcm: bytes,
    *,
    rate: int = SAMPLE_RATE,
    max_seconds: float = 30.0,
    min_silence_seconds: float = 0.4,
    silence_below_db: float = 16.0,
    step_seconds: float = 0.01,
) -> list[tuple[int, int]]:
    """Sample ranges ``[start, end)`` covering all of ``pcm`` (mono s16le), none longer than
    ``max_seconds``; audio no longer than that is one range (never split).

    Like ``pydub.silence.detect_silence``: frames of ``step_seconds`` whose RMS is
    ``silence_below_db`` under the whole file's RMS (dBFS) are silent, and a run of at least
    ``min_silence_seconds`` of them is a silence. Each cut goes in the middle of the last silence
    that keeps the segment under the limit, so no word is cut; where a stretch has no such
    silence, at its quietest frame.
    """
    samples = np.frombuffer(pcm, dtype="<i2")
    total = len(samples)
    limit = max(1, int(max_seconds * rate))
    if total <= limit:
        return [(0, total)]
    step = max(1, int(step_seconds * rate))
    frames = total // step
    blocks = samples[: frames * step].astype(np.float64).reshape(frames, step)
    rms = np.sqrt(np.mean(blocks * blocks, axis=1))
    level = float(np.sqrt(np.mean(samples.astype(np.float64) ** 2)))
    threshold = level * 10 ** (-silence_below_db / 20)
    silent = rms <= threshold
    # Middles (in samples) of silent runs long enough to count.
    need = max(1, math.ceil(min_silence_seconds / step_seconds))
    cuts: list[int] = []
    run_start: int | None = None
    for index, quiet in enumerate([*silent.tolist(), False]):
        if quiet and run_start is None:
            run_start = index
        elif not quiet and run_start is not None:
            if index - run_start >= need:
                cuts.append(((run_start + index) // 2) * step)
            run_start = None
    ranges: list[tuple[int, int]] = []
    start = 0
    shortest = limit // 4
    while total - start > limit:
        window = [c for c in cuts if start + shortest <= c <= start + limit]
        if window:
            cut = window[-1]
        else:
            first, last = (start + limit // 2) // step, (start + limit) // step
            cut = (first + int(np.argmin(rms[first:last]))) * step if last > first else start + limit
        ranges.append((start, cut))
        start = cut
    ranges.append((start, total))
    return ranges


@dataclass(frozen=True)
class Transcription:
    recognition: Recognition
    duration: float  # seconds of audio
    segments: tuple[tuple[float, float], ...]  # (start, end) seconds of each piece recognised


def transcribe(
    recognizer: Recognizer,
    audio: Path,
    *,
    language: str | None = None,
    segment_seconds: float = 30.0,
    segment_threads: int = 1,
    min_silence_seconds: float = 0.4,
    silence_below_db: float = 16.0,
    workdir: Path | None = None,
) -> Transcription:
    """Recognise one file; long audio in segments split at silences (see the module notes)."""
    pcm = load_pcm16(audio)  # a bad file fails here with AudioError
    duration = len(pcm) / SAMPLE_WIDTH / SAMPLE_RATE
    ranges = split_at_silences(
        pcm,
        max_seconds=segment_seconds,
        min_silence_seconds=min_silence_seconds,
        silence_below_db=silence_below_db,
    )
    if len(ranges) == 1:
        # Short audio: the engine's own path on the file itself, nothing of ours in between.
        recognition = recognizer.recognize(audio, language=language)
        return Transcription(recognition, duration, ((0.0, duration),))
    with tempfile.TemporaryDirectory(prefix="segments-", dir=workdir) as folder:
        files = []
        for index, (start, end) in enumerate(ranges):
            path = Path(folder) / f"segment-{index:04d}.wav"
            with wave.open(str(path), "wb") as out:
                out.setnchannels(1)
                out.setsampwidth(SAMPLE_WIDTH)
                out.setframerate(SAMPLE_RATE)
                out.writeframes(pcm[start * SAMPLE_WIDTH : end * SAMPLE_WIDTH])
            files.append(path)

        def one(path: Path) -> Recognition:
            return recognizer.recognize(path, language=language)

        if segment_threads > 1:
            with ThreadPoolExecutor(max_workers=segment_threads) as threads:
                pieces = list(threads.map(one, files))
        else:
            pieces = [one(path) for path in files]
    segments = tuple((start / SAMPLE_RATE, end / SAMPLE_RATE) for start, end in ranges)
    return Transcription(join_recognitions(pieces, [s for s, _ in segments]), duration, segments)


def join_recognitions(pieces: Sequence[Recognition], offsets: Sequence[float]) -> Recognition:
    """One recognition from consecutive pieces, word times shifted by each piece's offset."""
    words = tuple(
        Word(w.text, round(w.start + offset, 3), round(w.end + offset, 3), w.confidence)
        for piece, offset in zip(pieces, offsets, strict=True)
        for w in piece.words
    )
    scores = [(p.confidence, max(1, len(p.words))) for p in pieces if p.confidence is not None]
    weight = sum(n for _, n in scores)
    return Recognition(
        text=" ".join(p.text for p in pieces if p.text),
        words=words,
        engine=pieces[0].engine,
        language=next((p.language for p in pieces if p.language), None),
        confidence=sum(c * n for c, n in scores) / weight if scores else None,
    )


# --- one worker process ---------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkerEvent:
    """What a worker reports to its pool (and to tests, and to the CLI's progress)."""

    kind: str  # ready | claimed | done | failed | retry | lost | fatal | stopped
    worker_id: str
    job_id: int | None = None
    detail: str = ""


class _Heartbeat:
    """Renews a claim's lease every third of the lease while the job is worked on."""

    def __init__(self, db: Database, held: jobs.Claim, lease: timedelta) -> None:
        self._db, self._held, self._lease = db, held, lease
        self._done = threading.Event()
        self.lost = False
        self._thread = threading.Thread(target=self._run, name=f"lease-{held.job_id}", daemon=True)

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._done.set()
        self._thread.join()

    def _run(self) -> None:
        interval = self._lease.total_seconds() / 3
        while not self._done.wait(interval):
            try:
                with self._db.transaction() as session, session.begin():
                    jobs.renew(session, self._held, utcnow(), self._lease)
            except jobs.LostClaim:
                self.lost = True
                return
            except Exception as exc:  # the database may be back by the next beat
                log.warning("cannot renew the lease of job %s: %s", self._held.job_id, exc)


class Worker:
    """The loop of one worker process (also usable in-process, e.g. by tests and the CLI)."""

    def __init__(
        self,
        config: WorkerConfig,
        worker_id: str,
        db: Database,
        recognizer: Recognizer,
        report: Callable[[WorkerEvent], None] = lambda event: None,
    ) -> None:
        self.config = config
        self.worker_id = worker_id
        self.db = db
        self.recognizer = recognizer
        self.report = report

    def claim(self) -> jobs.Claim | None:
        with self.db.transaction() as session, session.begin():
            return jobs.claim(
                session,
                self.worker_id,
                utcnow(),
                lease=self.config.lease,
                engines=[self.config.engine],
                max_attempts=self.config.max_attempts,
            )

    def run_once(self) -> WorkerEvent | None:
        """Claim and do one job; None when there was none."""
        held = self.claim()
        if held is None:
            return None
        self.report(WorkerEvent("claimed", self.worker_id, held.job_id, held.path))
        event = self.process(held)
        self.report(event)
        return event

    def process(self, held: jobs.Claim) -> WorkerEvent:
        config = self.config
        retry = False
        error = ""
        result: Transcription | None = None
        with _Heartbeat(self.db, held, config.lease):
            try:
                result = transcribe(
                    self.recognizer,
                    Path(held.path),
                    language=held.language or config.language or None,
                    segment_seconds=config.segment_seconds,
                    segment_threads=config.segment_threads,
                    min_silence_seconds=config.min_silence_seconds,
                    silence_below_db=config.silence_below_db,
                )
            except PERMANENT_ERRORS as exc:
                error = str(exc)
            except ModelError as exc:
                error, retry = str(exc), True
            except (TranscriptionError, OSError, MemoryError) as exc:
                error, retry = f"{type(exc).__name__}: {exc}", True
            except Exception as exc:
                log.exception("transcription of job %s failed unexpectedly", held.job_id)
                error, retry = f"{type(exc).__name__}: {exc}", True
        now = utcnow()
        try:
            with self.db.transaction() as session, session.begin():
                if result is not None:
                    transcript = jobs.complete(
                        session, held, result.recognition, now, duration=result.duration
                    )
                    return WorkerEvent("done", self.worker_id, held.job_id, str(transcript.id))
                job = jobs.fail(
                    session,
                    held,
                    error,
                    now,
                    retry=retry,
                    max_attempts=config.max_attempts,
                    retry_delay=timedelta(seconds=config.retry_delay_seconds),
                )
                kind = "retry" if job.status == PENDING else "failed"
                return WorkerEvent(kind, self.worker_id, held.job_id, error)
        except jobs.LostClaim as exc:
            log.warning("%s", exc)
            return WorkerEvent("lost", self.worker_id, held.job_id, str(exc))

    def run(self, stop: Any, doorbell: Any, parent_pid: int | None = None) -> None:
        """Work until ``stop`` (an Event) is set; sleep on ``doorbell`` (a Queue) when idle.

        With ``parent_pid``, also stop (after the current job) once that process is gone: an
        engine killed outright leaves no orphan workers behind to race its successor's.
        """
        while not stop.is_set():
            if parent_pid is not None and os.getppid() != parent_pid:
                log.warning("worker %s: the engine (pid %d) is gone; stopping", self.worker_id, parent_pid)
                return
            try:
                event = self.run_once()
            except Exception as exc:  # the database is away: wait and try again
                log.error("worker %s cannot reach the job queue: %s", self.worker_id, exc)
                stop.wait(self.config.poll_seconds)
                continue
            if event is None:
                with contextlib.suppress(queue.Empty):
                    doorbell.get(timeout=self.config.poll_seconds)


def worker_main(
    config: WorkerConfig, worker_id: str, stop: Any, doorbell: Any, events: Any, parent_pid: int | None = None
) -> None:
    """Entry point of a spawned worker process; ``parent_pid`` is the engine's (given by it: the
    engine may already be gone by the time this process asks for its parent)."""
    logging.basicConfig(
        level=config.log_level, format=f"%(asctime)s %(levelname)s transcription[{worker_id}] %(message)s"
    )

    def report(event: WorkerEvent) -> None:
        events.put(event)

    try:
        recognizer = build_recognizer(config)
    except TranscriptionError as exc:
        log.error("cannot start: %s", exc)
        report(WorkerEvent("fatal", worker_id, None, str(exc)))
        raise SystemExit(EXIT_FATAL) from None
    db = Database(config.database_url)
    db.open()
    report(WorkerEvent("ready", worker_id, None, f"pid {os.getpid()}"))
    try:
        Worker(config, worker_id, db, recognizer, report).run(stop, doorbell, parent_pid)
    finally:
        db.close()
        report(WorkerEvent("stopped", worker_id))


# --- the pool the engine owns --------------------------------------------------------------------


@dataclass
class _Slot:
    index: int
    process: multiprocessing.process.BaseProcess | None = None
    worker_id: str = ""
    generation: int = 0
    fatal: bool = False


class TranscriptionPool:
    """N worker processes (spawn), supervised: owned, bounded, stoppable.

    Engine use::

        pool = TranscriptionPool(WorkerConfig.from_settings(settings), settings.transcription_workers, db)
        await pool.start()            # spawns the workers; starts the supervisor task
        pool.wake(2)                  # after enqueueing two jobs
        await pool.stop()             # asks workers to finish their job, then joins them

    ``on_event`` (optional) is called on the event loop for every :class:`WorkerEvent`.
    Synchronous twins (``start_sync``, ``stop_sync``, ``check``) serve tests and the CLI.
    """

    def __init__(
        self,
        config: WorkerConfig,
        workers: int,
        db: Database | None = None,
        *,
        on_event: Callable[[WorkerEvent], None] | None = None,
        check_seconds: float = 2.0,
        stop_timeout: float = 60.0,
    ) -> None:
        if not 0 <= workers <= 64:
            raise ValueError("workers must be between 0 and 64")
        self.config = config
        self.db = db
        self.on_event = on_event
        self.check_seconds = check_seconds
        self.stop_timeout = stop_timeout
        self._context = multiprocessing.get_context("spawn")
        self._token = f"{socket.gethostname()[:60]}:{secrets.token_hex(3)}"
        self._slots = [_Slot(index) for index in range(workers)]
        self._stop = self._context.Event()
        self._doorbell: multiprocessing.queues.Queue[bool | None] = self._context.Queue()
        self.events: multiprocessing.queues.Queue[WorkerEvent] = self._context.Queue()
        self._supervisor: asyncio.Task[None] | None = None
        self._started = False

    @property
    def worker_ids(self) -> list[str]:
        return [slot.worker_id for slot in self._slots if slot.process is not None]

    def processes(self) -> list[multiprocessing.process.BaseProcess]:
        return [slot.process for slot in self._slots if slot.process is not None]

    def process_of(self, worker_id: str) -> multiprocessing.process.BaseProcess | None:
        return next((slot.process for slot in self._slots if slot.worker_id == worker_id), None)

    # -- synchronous core --

    def start_sync(self) -> None:
        if self._started:
            raise RuntimeError("transcription pool already started")
        self._started = True
        for slot in self._slots:
            self._spawn(slot)

    def _spawn(self, slot: _Slot) -> None:
        slot.generation += 1
        slot.worker_id = f"{self._token}:w{slot.index}.{slot.generation}"
        slot.process = self._context.Process(
            target=worker_main,
            args=(self.config, slot.worker_id, self._stop, self._doorbell, self.events, os.getpid()),
            name=f"transcription-{slot.index}",
            daemon=True,
        )
        slot.process.start()

    def wake(self, jobs_added: int = 1) -> None:
        """Ring idle workers after enqueueing (non-blocking; they poll anyway)."""
        for _ in range(max(0, min(jobs_added, len(self._slots)))):
            with contextlib.suppress(ValueError, OSError):
                self._doorbell.put_nowait(True)

    def check(self) -> list[str]:
        """One supervision step: restart dead workers after releasing their jobs. Returns the
        ids of the workers found dead."""
        dead = []
        for slot in self._slots:
            process = slot.process
            if process is None or process.is_alive() or self._stop.is_set():
                continue
            process.join()
            dead.append(slot.worker_id)
            if self.db is not None:
                released = self._release(slot.worker_id)
                log.warning(
                    "transcription worker %s exited (code %s); %d job(s) released",
                    slot.worker_id,
                    process.exitcode,
                    released,
                )
            if process.exitcode == EXIT_FATAL:
                slot.fatal, slot.process = True, None
                log.error("transcription worker %s cannot work (no model?): not restarted", slot.worker_id)
                continue
            self._spawn(slot)
        return dead

    def _release(self, worker_id: str) -> int:
        assert self.db is not None
        with self.db.transaction() as session, session.begin():
            return jobs.release(session, worker_id, utcnow(), max_attempts=self.config.max_attempts)

    def stop_sync(self, timeout: float | None = None) -> None:
        """Ask every worker to stop after its current job; kill those still busy at the timeout
        (their jobs are released, or left to their leases when there is no database here)."""
        if not self._started:
            return
        self._stop.set()
        for _ in self._slots:
            with contextlib.suppress(ValueError, OSError):
                self._doorbell.put_nowait(None)
        deadline = time.monotonic() + (self.stop_timeout if timeout is None else timeout)
        # Keep reading their events while they finish: a child exits only once what it put on
        # the events queue has been written to the pipe.
        while time.monotonic() < deadline and any(
            slot.process is not None and slot.process.is_alive() for slot in self._slots
        ):
            self._drain(notify=False)
            multiprocessing.connection.wait(
                [slot.process.sentinel for slot in self._slots if slot.process is not None],
                timeout=min(0.2, max(0.0, deadline - time.monotonic())),
            )
        for slot in self._slots:
            process = slot.process
            if process is None:
                continue
            if process.is_alive():
                log.warning("transcription worker %s did not stop in time: killed", slot.worker_id)
                process.kill()
                process.join()
                if self.db is not None:
                    self._release(slot.worker_id)
            process.close()
            slot.process = None
        self._drain(notify=False)
        self._doorbell.close()
        self._doorbell.join_thread()

    def _drain(self, notify: bool = True) -> list[WorkerEvent]:
        """Events waiting in the queue; ``on_event`` is called only when ``notify`` (on the loop)."""
        found: list[WorkerEvent] = []
        while True:
            try:
                event = self.events.get_nowait()
            except (queue.Empty, ValueError, OSError):
                return found
            found.append(event)
            if notify and self.on_event is not None:
                self.on_event(event)

    # -- asyncio side --

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self.start_sync)
        self._supervisor = asyncio.create_task(self._supervise(), name="transcription-supervisor")

    async def _supervise(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.check_seconds)
            try:
                await loop.run_in_executor(None, self.check)
            except Exception:
                log.exception("transcription pool supervision failed")
            self._drain()

    async def stop(self, timeout: float | None = None) -> None:
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
            self._supervisor = None
        await asyncio.get_running_loop().run_in_executor(None, self.stop_sync, timeout)


async def run_workers(settings: Settings, count: int, stop: asyncio.Event | None = None) -> None:
    """``callcenter workers``: a pool of ``count`` workers on the configured database until
    ``stop`` is set or SIGINT/SIGTERM arrives; the job in hand is finished (or released)."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)

    def report(event: WorkerEvent) -> None:
        if event.kind in ("ready", "fatal", "failed", "retry"):
            log.log(logging.ERROR if event.kind == "fatal" else logging.INFO, "worker %s %s %s",
                    event.worker_id, event.kind, event.detail)  # fmt: skip

    db = Database(settings.resolved_database_url)
    await loop.run_in_executor(None, db.open)
    pool = TranscriptionPool(WorkerConfig.from_settings(settings), count, db, on_event=report)
    try:
        await pool.start()
        log.info("%d transcription worker(s) (%s) on %s", count, settings.transcribe_engine, db.safe_url)
        await stop.wait()
    finally:
        await pool.stop()
        await loop.run_in_executor(None, db.close)
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)


# --- batch (the CLI): files in, transcriptions out, no database ------------------------------------


@dataclass(frozen=True)
class FileResult:
    path: Path
    transcription: Transcription | None
    error: str = ""


def _batch_init(config: WorkerConfig) -> None:
    try:
        build_recognizer(config)  # loads the model into this process's cache, once
    except ModelError as exc:
        # One line, not the pool's "Exception in initializer" traceback: the parent sees the
        # pool break and says what to check (batch.py).
        print(f"callcenter: worker {os.getpid()}: {exc}", file=sys.stderr, flush=True)
        os._exit(EXIT_FATAL)


def _batch_one(config: WorkerConfig, path: str) -> FileResult:
    recognizer = build_recognizer(config)  # cached model: no reload
    try:
        result = transcribe(
            recognizer,
            Path(path),
            language=config.language or None,
            segment_seconds=config.segment_seconds,
            segment_threads=config.segment_threads,
            min_silence_seconds=config.min_silence_seconds,
            silence_below_db=config.silence_below_db,
        )
    except TranscriptionError as exc:
        return FileResult(Path(path), None, str(exc))
    return FileResult(Path(path), result)


def transcribe_files(paths: Sequence[Path], config: WorkerConfig, workers: int) -> Iterator[FileResult]:
    """Transcribe ``paths`` on ``workers`` spawned processes (each loads the model once),
    yielding each result as it completes (for a progress bar). The model is checked in this
    process first, so a missing one fails at once (:class:`ModelNotFound`)."""
    make_recognizer(config.engine, Path(config.model_path) if config.model_path else None, **config.options)
    if not paths:
        return
    context = multiprocessing.get_context("spawn")
    workers = max(1, min(workers, len(paths)))
    batch_config = replace(config, database_url="")
    with ProcessPoolExecutor(
        workers, mp_context=context, initializer=_batch_init, initargs=(batch_config,)
    ) as pool:
        pending: set[Future[FileResult]] = {
            pool.submit(_batch_one, batch_config, str(path)) for path in paths
        }
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                yield future.result()
