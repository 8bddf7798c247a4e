"""Prompts spoken by the IVR, generated from text with espeak-ng where no recording exists.

A recorded prompt placed in the sounds folder under the same name wins: only missing files are
generated. Files are 8 kHz mono 16-bit WAV, which Asterisk plays without transcoding.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

# name -> (espeak-ng voice, text). Bahasa Indonesia first: it is the callers' language.
PLACEHOLDER_PROMPTS: dict[str, tuple[str, str]] = {
    "greeting-112": (
        "id",
        "Layanan darurat satu satu dua. Tekan satu untuk polisi, dua untuk pemadam kebakaran, "
        "tiga untuk ambulans. Atau tetap di saluran, petugas kami segera menjawab.",
    ),
    "greeting-hotline": (
        "id",
        "Selamat datang di layanan pengaduan masyarakat. Tekan satu untuk berbicara dengan petugas.",
    ),
}


def prompts_dir(sounds_dir: Path) -> Path:
    return sounds_dir / "callcenter"


def prompt_file(sounds_dir: Path, name: str) -> str:
    """The name Asterisk plays: an absolute path without the extension."""
    return str(prompts_dir(sounds_dir) / name)


def ensure_prompts(sounds_dir: Path, owner: tuple[int, int] | None = None) -> list[Path]:
    """Generate the prompts that are missing; returns the files written.

    Without espeak-ng or sox nothing is generated and a warning says so: the IVR still runs,
    the caller just hears silence where the prompt would be.
    """
    target_dir = prompts_dir(sounds_dir)
    target_dir.mkdir(parents=True, exist_ok=True)
    missing = {n: v for n, v in PLACEHOLDER_PROMPTS.items() if not (target_dir / f"{n}.wav").exists()}
    if not missing:
        return []
    tools = [t for t in ("espeak-ng", "sox") if shutil.which(t) is None]
    if tools:
        log.warning("cannot generate IVR prompts: %s not installed", " and ".join(tools))
        return []
    written = []
    for name, (voice, text) in missing.items():
        target = target_dir / f"{name}.wav"
        synthesize(text, voice, target)
        if owner is not None:
            os.chown(target, *owner)
        written.append(target)
    log.info("generated %d IVR prompt(s) in %s", len(written), target_dir)
    return written


def synthesize(text: str, voice: str, target: Path) -> None:
    """Speak ``text`` with espeak-ng into an 8 kHz mono WAV at ``target``."""
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.wav"
        subprocess.run(
            ["espeak-ng", "-v", voice, "-s", "150", "-w", str(raw), "--", text],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        partial = target.with_suffix(".partial.wav")
        subprocess.run(
            ["sox", str(raw), "-r", "8000", "-c", "1", "-b", "16", str(partial)],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        partial.replace(target)
