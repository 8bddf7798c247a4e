"""``callcenter transcribe FILE...``: a batch of audio files in, transcripts out.

- stdout carries the transcripts only, one per file **in the order the files finish** (each names
  its file): a ``==> PATH <==`` line then the text, or with ``--json`` one JSON object per line
  (:func:`record`). Every distinct file given gets exactly one JSON line, failed ones included.
- stderr carries the rest: files that do not exist or are folders (reported before anything is
  transcribed), a progress bar redrawn in place when stderr is a terminal (else one plain line
  per file), each failure, and a summary: files ok/failed, seconds of audio, wall-clock seconds
  and audio seconds per wall second.
- Exit status: 0 every file transcribed, 1 any file failed (missing, a folder, bad audio),
  2 the engine or model cannot be used (raised as :class:`TranscriptionError` for the CLI to
  print), 130 interrupted.

Files are transcribed by :func:`~callcenter.transcription.worker.transcribe_files` (spawned
processes, each loads the model once). A path given twice (also as ``./a.wav`` and ``a.wav``) is
transcribed once.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from callcenter.transcription.recognizer import ModelError, UnsupportedLanguage, make_recognizer
from callcenter.transcription.worker import FileResult, WorkerConfig, transcribe_files

BAR_WIDTH = 20
# At most this many processes when --workers is not given (Vosk ko holds ~250 MB in each).
MAX_DEFAULT_WORKERS = 64


def cpu_count() -> int:
    """CPUs this process may run on (a container's or taskset's limit, not the machine's)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def unique_paths(given: Sequence[str]) -> list[str]:
    """``given`` without repeats of one file (``a.wav``, ``./a.wav``, ``/abs/a.wav``), first
    spelling kept, order kept."""
    seen: set[str] = set()
    unique = []
    for path in given:
        key = os.path.realpath(path)
        if key not in seen:
            seen.add(key)
            unique.append(path)
    return unique


def missing_reason(path: str) -> str:
    """Why ``path`` cannot be transcribed at all, in the audio module's words; "" if it can be tried."""
    if os.path.isdir(path):
        return f"{path}: is a directory, not an audio file"
    if not os.path.exists(path):
        return f"{path}: no such audio file"
    return ""


def check_setup(config: WorkerConfig) -> None:
    """Fail before any process starts when the engine, its model or the language is wrong.

    :class:`UnknownEngine`, :class:`ModelNotFound` (package not installed, folder absent or
    lacking its files) and :class:`UnsupportedLanguage` come from here; no model is loaded.
    """
    model = Path(config.model_path) if config.model_path else None
    recognizer = make_recognizer(config.engine, model, **config.options)
    if not config.language:
        return
    # An English-only Whisper refuses any other language when built with it...
    make_recognizer(config.engine, model, **{**config.options, "language": config.language})
    # ...and a Vosk model that says what it speaks (the packaged one: "ko") is checked here, or
    # every file would fail with the same error.
    spoken = getattr(recognizer, "language", None) if config.engine == "vosk" else None
    asked = config.language.lower().replace("_", "-").split("-")[0]
    if spoken and asked != spoken:
        raise UnsupportedLanguage(
            f"the {config.engine} model {getattr(recognizer, 'model_path', '')} recognises "
            f"{spoken!r}, not {config.language!r}"
        )


def record(path: str, result: FileResult | None, error: str, config: WorkerConfig) -> dict[str, Any]:
    """The JSON object of one file (``--json``); failed files have ``ok: false`` and an error."""
    done = result.transcription if result is not None else None
    if done is None:
        return {
            "path": path,
            "ok": False,
            "error": error or (result.error if result is not None else "") or "not transcribed",
            "engine": config.engine,
            "language": config.language or None,
            "duration": None,
            "text": "",
            "confidence": None,
            "words": [],
        }
    recognition = done.recognition
    return {
        "path": path,
        "ok": True,
        "error": "",
        "engine": recognition.engine,
        "language": recognition.language,
        "duration": round(done.duration, 3),
        "text": recognition.text,
        "confidence": recognition.confidence,
        "words": [
            {"word": w.text, "start": w.start, "end": w.end, "conf": w.confidence} for w in recognition.words
        ],
    }


class Progress:
    """The progress bar on stderr: on a terminal one line redrawn in place (``\\r``, and every
    second so the clock moves during a long file), else one plain line per file. Transcripts go
    to stdout through :meth:`file_done`, which lifts the bar first, so the two never tear each
    other on a terminal."""

    def __init__(self, total: int, err: TextIO, out: TextIO, *, tty: bool | None = None) -> None:
        self.total = total
        self.err = err
        self.out = out
        self.tty = err.isatty() if tty is None else tty
        self.done = 0
        self.audio = 0.0
        self.started = time.monotonic()
        self._drawn = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    def bar(self) -> str:
        filled = BAR_WIDTH * self.done // self.total if self.total else BAR_WIDTH
        return (
            f"[{'#' * filled}{'-' * (BAR_WIDTH - filled)}] {self.done}/{self.total} files"
            f"  {self.audio:.1f} s audio  {time.monotonic() - self.started:.0f} s"
        )

    def _clear(self) -> None:
        if self._drawn:
            self.err.write("\r\x1b[K")
            self.err.flush()
            self._drawn = False

    def _draw(self) -> None:
        if self.tty and not self._stop.is_set():
            self.err.write("\r\x1b[K" + self.bar())
            self.err.flush()
            self._drawn = True

    def start(self) -> None:
        if not self.tty:
            return
        with self._lock:
            self._draw()
        self._ticker = threading.Thread(target=self._tick, name="progress", daemon=True)
        self._ticker.start()

    def _tick(self) -> None:
        while not self._stop.wait(1.0):
            with self._lock:
                self._draw()

    def file_done(self, path: str, transcript: str, audio: float, error: str) -> None:
        """One more file: its transcript (if any) on stdout, its failure (if any) on stderr."""
        with self._lock:
            self.done += 1
            self.audio += audio
            self._clear()
            if transcript:
                self.out.write(transcript)
                self.out.flush()
            if self.tty:
                if error:
                    self.err.write(f"callcenter: failed: {error}\n")
                self._draw()
            else:
                status = f"failed: {error}" if error else f"ok: {path}"
                self.err.write(f"{self.done}/{self.total} files  {self.audio:.1f} s audio  {status}\n")
            self.err.flush()

    def close(self) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
            self._ticker = None
        with self._lock:
            self._clear()


@dataclass
class Tally:
    ok: int = 0
    failed: int = 0
    audio: float = 0.0


def summary(tally: Tally, wall: float, *, interrupted: bool = False) -> str:
    files = tally.ok + tally.failed
    rate = f"{tally.audio / wall:.1f}" if wall > 0 else "-"
    verdict = "interrupted" if interrupted else ("FAILED" if tally.failed else "done")
    return (
        f"{verdict}: {files} file{'' if files == 1 else 's'}, {tally.ok} ok, {tally.failed} failed; "
        f"{tally.audio:.1f} s audio in {wall:.1f} s ({rate} s audio per s)"
    )


def _stop_workers_on_interrupt(signum: int, frame: FrameType | None) -> None:
    """Ctrl-C: end our worker processes first, so the pool's shutdown does not wait for every
    queued file, then raise KeyboardInterrupt as usual."""
    for child in multiprocessing.active_children():
        child.terminate()
    raise KeyboardInterrupt


def run(
    paths: Sequence[str],
    config: WorkerConfig,
    *,
    workers: int | None,
    as_json: bool,
    out: TextIO,
    err: TextIO,
    tty: bool | None = None,
) -> int:
    """Transcribe ``paths``; the exit status (see the module notes). Engine and model problems
    are raised (:class:`TranscriptionError`) before any file is looked at."""
    check_setup(config)
    started = time.monotonic()
    files = unique_paths(paths)
    tally = Tally()

    def emit(path: str, result: FileResult | None, error: str, progress: Progress | None) -> None:
        done = result.transcription if result is not None else None
        if done is None:
            tally.failed += 1
        else:
            tally.ok += 1
            tally.audio += done.duration
        if as_json:
            text = json.dumps(record(path, result, error, config), ensure_ascii=False) + "\n"
        elif done is not None:
            text = f"==> {path} <==\n{done.recognition.text}\n"
        else:
            text = ""
        if progress is None:
            out.write(text)
            out.flush()
        else:
            progress.file_done(path, text, done.duration if done else 0.0, error)

    runnable = []
    for path in files:
        reason = missing_reason(path)
        if reason:
            err.write(f"callcenter: {reason}\n")
            emit(path, None, reason, None)
        else:
            runnable.append(path)
    count = max(1, min(workers or min(cpu_count(), MAX_DEFAULT_WORKERS), len(runnable) or 1))
    model = config.model_path or "its packaged model"
    if runnable:
        err.write(
            f"transcribing {len(runnable)} file{'' if len(runnable) == 1 else 's'} with {config.engine} "
            f"({model}) on {count} worker process{'' if count == 1 else 'es'}\n"
        )
    err.flush()
    interrupted = False
    progress = Progress(len(runnable), err, out, tty=tty)
    results: Iterator[FileResult] = transcribe_files([Path(p) for p in runnable], config, count)
    spelling = {Path(p): p for p in runnable}
    pending = set(runnable)
    previous = signal.getsignal(signal.SIGINT)
    in_main = threading.current_thread() is threading.main_thread()
    if in_main:
        signal.signal(signal.SIGINT, _stop_workers_on_interrupt)
    try:
        if runnable:
            progress.start()
        for result in results:
            path = spelling.get(result.path, str(result.path))
            pending.discard(path)
            emit(path, result, result.error, progress)
    except BrokenProcessPool:
        progress.close()
        if len(pending) == len(runnable):
            raise ModelError(
                f"the {config.engine} worker processes stopped before transcribing anything: "
                f"could the model ({model}) not be loaded? (see the message above)"
            ) from None
        for path in runnable:
            if path in pending:
                emit(path, None, f"{path}: not transcribed: a worker process died", progress)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        if in_main:
            signal.signal(signal.SIGINT, previous)
        progress.close()
    err.write(summary(tally, time.monotonic() - started, interrupted=interrupted) + "\n")
    err.flush()
    if interrupted:
        return 130
    return 1 if tally.failed else 0
