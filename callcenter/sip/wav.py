"""WAV helpers shared by the worker and by tests/demos (no pjsua2 import)."""

from __future__ import annotations

import array
import math
import os
import sys
import wave
from pathlib import Path


def is_complete_wav(path: str | os.PathLike[str]) -> bool:
    """True once a WAV writer has closed *path*.

    pjmedia's WAV writer starts the file with a placeholder header (RIFF size
    0) and writes the real sizes when the recorder port is destroyed.  A
    complete file has RIFF and ``data`` sizes that match the file length.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(512)
            size = os.fstat(f.fileno()).st_size
    except OSError:
        return False
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return False
    riff_size = int.from_bytes(head[4:8], "little")
    if riff_size == 0 or riff_size + 8 != size:
        return False
    pos = 12
    while pos + 8 <= len(head):
        chunk_id = head[pos : pos + 4]
        chunk_size = int.from_bytes(head[pos + 4 : pos + 8], "little")
        if chunk_id == b"data":
            return pos + 8 + chunk_size == size
        pos += 8 + chunk_size + (chunk_size & 1)
    return False


def wav_rms(path: str | os.PathLike[str]) -> tuple[float, float]:
    """(RMS amplitude, duration in seconds) of a 16-bit PCM WAV file.

    Speech at a normal level gives an RMS in the thousands; digital silence 0.
    """
    with wave.open(str(Path(path)), "rb") as w:
        if w.getsampwidth() != 2:
            raise ValueError(f"{path}: expected 16-bit samples, got {8 * w.getsampwidth()}-bit")
        nframes = w.getnframes()
        rate = w.getframerate()
        frames = w.readframes(nframes)
    samples = array.array("h")
    samples.frombytes(frames)
    if sys.byteorder == "big":
        samples.byteswap()
    if not samples:
        return 0.0, 0.0
    rms = math.sqrt(math.fsum(float(s) * s for s in samples) / len(samples))
    return rms, nframes / rate
