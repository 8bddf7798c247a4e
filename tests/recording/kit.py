"""Real WAV files shaped like MixMonitor's, under a recordings folder, for the recording tests."""

from __future__ import annotations

import math
import struct
import wave
from pathlib import Path

from callcenter.recording.closed import RecordingClosed

DAY = "2026/11/23"


def write_wav(path: Path, seconds: float, rate: int = 8000, channels: int = 1) -> Path:
    """A 440 Hz tone, 16-bit PCM; the header sizes are final (the file was closed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = int(seconds * rate)
    samples = b"".join(
        struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / rate))) * channels
        for i in range(frames)
    )
    with wave.open(str(path), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples)
    return path


def closed_recording(
    root: Path, uniqueid: str, system_name: str = "pbx", linkedid: str = ""
) -> RecordingClosed:
    name = uniqueid.replace(".", "_").replace("-", "_")
    return RecordingClosed(
        system_name=system_name,
        linkedid=linkedid or uniqueid,
        uniqueid=uniqueid,
        base=root / DAY / name,
        caller_number="081234567890",
    )


def record(root: Path, uniqueid: str, seconds: float = 1.5, linkedid: str = "") -> RecordingClosed:
    """A complete recording: the mixed file and both legs, all the same length."""
    closed = closed_recording(root, uniqueid, linkedid=linkedid)
    for path in (closed.mixed, closed.caller_leg, closed.agent_leg):
        write_wav(path, seconds)
    return closed
