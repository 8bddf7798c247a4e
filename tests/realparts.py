"""Helpers for tests that use real components (espeak-ng speech, Asterisk, phones)."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from pathlib import Path
from typing import NoReturn

# Digital silence and line noise stay far below this; espeak-ng speech through G.711 is ~1000+.
SPEECH_RMS = 200.0


def missing(reason: str) -> NoReturn:
    """Skip on a developer machine, fail under CI (CI=true): green CI means the real thing ran."""
    import pytest

    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"required component missing under CI: {reason}")
    pytest.skip(reason)


def speak(text: str, target: Path, voice: str = "en-us") -> Path:
    """espeak-ng speech as an 8 kHz mono 16-bit WAV, the way a phone line carries it."""
    if shutil.which("espeak-ng") is None or shutil.which("sox") is None:
        missing("espeak-ng and sox are needed to make test speech")
    raw = target.with_suffix(".raw.wav")
    subprocess.run(["espeak-ng", "-v", voice, "-w", str(raw), "--", text], check=True, capture_output=True)
    subprocess.run(["sox", str(raw), "-r", "8000", "-c", "1", "-b", "16", str(target)], check=True)
    with contextlib.suppress(FileNotFoundError):
        raw.unlink()
    return target
