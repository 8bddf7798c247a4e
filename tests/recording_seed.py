"""Recordings made the way the engine makes them, for web and browser tests.

Files are written where the dialplan writes them (``<root>/YYYY/MM/DD/<uniqueid>{,-caller,-agent}.wav``),
checked with the product's own :func:`check_recording` and catalogued with :func:`catalogue`;
transcripts are stored through the job queue (``jobs.enqueue_legs``, ``claim``, ``complete``), as
a worker stores them.
"""

from __future__ import annotations

import math
import shutil
import struct
import wave
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from sqlalchemy.orm import Session

from callcenter.recording.catalogue import catalogue
from callcenter.recording.closed import RecordingClosed
from callcenter.recording.integrity import check_recording, recording_files
from callcenter.storage.base import utcnow
from callcenter.transcription import jobs
from callcenter.transcription.recognizer import Recognition, Word

RATE = 8000


def tone_wav(path: Path, seconds: float = 2.0, hz: float = 440.0) -> Path:
    """An 8 kHz mono 16-bit WAV of a quiet tone (what MixMonitor writes, in shape)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = b"".join(
        struct.pack("<h", int(3000 * math.sin(2 * math.pi * hz * n / RATE)))
        for n in range(int(seconds * RATE))
    )
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(frames)
    return path


def recording_base(root: Path, uniqueid: str) -> Path:
    now = utcnow()
    safe = uniqueid.replace(".", "_").replace("-", "_")
    return root / f"{now:%Y}" / f"{now:%m}" / f"{now:%d}" / safe


@dataclass(frozen=True)
class Seeded:
    recording_id: int
    call_id: int
    base: Path
    files: dict[str, Path]


def write_legs(
    base: Path, mixed: Path | None = None, caller: Path | None = None, agent: Path | None = None
) -> None:
    """The three files of a recording: copies of the given WAVs, or tones."""
    targets = recording_files(base)
    for kind, source, hz in (("mixed", mixed, 440.0), ("caller", caller, 550.0), ("agent", agent, 660.0)):
        if source is not None:
            targets[kind].parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, targets[kind])
        else:
            tone_wav(targets[kind], hz=hz)


def catalogue_call(
    session: Session, root: Path, system_name: str, linkedid: str, caller_number: str, base: Path
) -> Seeded:
    """Check and catalogue a recording whose files are at ``base`` (the engine's own steps)."""
    closed = RecordingClosed(system_name, linkedid, linkedid, base, caller_number)
    check = check_recording(closed, root)
    assert check.ok, check.failure
    done = catalogue(session, closed, check)
    return Seeded(done.recording_id, done.call_id, base, recording_files(base))


def enqueue_legs(session: Session, seeded: Seeded, engine: str = "whisper") -> list[int]:
    legs = {"caller": seeded.files["caller"], "agent": seeded.files["agent"]}
    made = jobs.enqueue_legs(
        session, legs, engine=engine, recording_id=seeded.recording_id, call_id=seeded.call_id, now=utcnow()
    )
    return [job.id for job in made]


def store_transcripts(
    session: Session, seeded: Seeded, said: dict[str, str], engine: str = "whisper"
) -> None:
    """Transcripts of both legs as a worker stores them (claim, complete), words a second apart
    with a pause before each new sentence."""
    enqueue_legs(session, seeded, engine)
    for _ in range(2):
        held = jobs.claim(session, "seed", utcnow(), lease=timedelta(minutes=5), engines=[engine])
        assert held is not None
        text = said[held.leg]
        words, at = [], 0.5
        for token in text.split():
            words.append(Word(token, at, at + 0.4, 0.9))
            at += 1.6 if token.endswith(".") else 0.5
        recognition = Recognition(text, tuple(words), engine, "en", 0.9)
        jobs.complete(session, held, recognition, utcnow(), duration=at)
