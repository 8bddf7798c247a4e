"""Measuring what phones and recordings heard."""

from __future__ import annotations

import array
import math
import sys
import wave
from pathlib import Path


def wav_stats(path: Path) -> tuple[float, float]:
    """(duration in seconds, RMS of 16-bit samples) of a PCM WAV file."""
    with wave.open(str(path), "rb") as wav:
        assert wav.getsampwidth() == 2, f"{path}: expected 16-bit PCM"
        frames = wav.readframes(wav.getnframes())
        duration = wav.getnframes() / float(wav.getframerate())
    samples = array.array("h")
    samples.frombytes(frames)
    if sys.byteorder == "big":
        samples.byteswap()
    if not samples:
        return duration, 0.0
    return duration, math.sqrt(sum(s * s for s in samples) / len(samples))


# Digital silence and line noise stay far below this; espeak-ng speech through G.711 is ~1000+.
SPEECH_RMS = 200.0
