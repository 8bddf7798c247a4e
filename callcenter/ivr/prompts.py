"""Prompts spoken by the IVR, generated from the texts in the flows with espeak-ng.

A recorded prompt placed in the sounds folder under the same name wins: only missing files are
generated (delete a generated file to have it made again after a text changes). Files are
8 kHz mono 16-bit WAV, which Asterisk plays without transcoding. Names are built only from flow
and node ids and fixed words: ``<flow>-<node>[-<part>]-<lang>``, and ``digit-<d>-<lang>`` for
reading ticket numbers back digit by digit (no Asterisk sound packages are needed).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from pathlib import Path

from callcenter.ivr import flow as f

log = logging.getLogger(__name__)

# espeak-ng voice per language.
VOICES = {"id": "id", "en": "en-us"}
DIGIT_WORDS = {
    "id": ("nol", "satu", "dua", "tiga", "empat", "lima", "enam", "tujuh", "delapan", "sembilan"),
    "en": ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"),
}


def prompts_dir(sounds_dir: Path) -> Path:
    return sounds_dir / "callcenter"


def prompt_name(flow: str, node: str, lang: str, part: str = "") -> str:
    return "-".join(p for p in (flow, node, part, lang) if p)


def digit_name(digit: str, lang: str) -> str:
    return f"digit-{digit}-{lang}"


def prompt_file(sounds_dir: Path, name: str) -> str:
    """The name Asterisk plays: an absolute path without the extension."""
    return str(prompts_dir(sounds_dir) / name)


def flow_prompts(flows: Iterable[f.Flow]) -> dict[str, tuple[str, str]]:
    """Every prompt the flows can play: file name -> (language, text)."""
    out: dict[str, tuple[str, str]] = {}

    def add(flow: f.Flow, node: str, prompt: f.Prompt | None, part: str = "") -> None:
        for lang, text in (prompt or {}).items():
            out[prompt_name(flow.name, node, lang, part)] = (lang, text)

    languages: set[str] = set()
    for flow in flows:
        for node_id, node in flow.nodes.items():
            for part, prompt in _prompts_of(node):
                add(flow, node_id, prompt, part)
                languages.update(prompt or {})
    for lang in sorted(languages):
        for digit, word in enumerate(DIGIT_WORDS.get(lang, DIGIT_WORDS["en"])):
            out[digit_name(str(digit), lang)] = (lang, word)
    # The warning a blocked prank caller hears before any flow (blocking.py owns its texts;
    # imported here, not at the top, because blocking.py builds its file names with this module).
    from callcenter.ivr.blocking import blocking_prompts

    out.update(blocking_prompts(languages))
    return out


def _prompts_of(node: f.Node) -> list[tuple[str, f.Prompt | None]]:
    parts: list[tuple[str, f.Prompt | None]] = []
    if isinstance(node, (f.Play, f.Menu, f.Collect, f.SpeechChoice, f.Language)):
        parts.append(("", node.prompt))
    if isinstance(node, (f.Transfer, f.Hangup)):
        parts.append(("", node.prompt))
    if isinstance(node, (f.Menu, f.Collect)):
        parts.append(("invalid", node.invalid_prompt))
    if isinstance(node, f.Menu):
        parts.append(("timeout", node.timeout_prompt))
    if isinstance(node, f.CreateTicket):
        parts.append(("readback", node.readback))
    if isinstance(node, f.LookupTicket):
        parts += [("found", node.found), ("not_found", node.not_found)]
        parts += [(f"status-{status}", words) for status, words in node.status.items()]
    return parts


def ensure_prompts(
    sounds_dir: Path, prompts: dict[str, tuple[str, str]], owner: tuple[int, int] | None = None
) -> list[Path]:
    """Generate the prompts that are missing; returns the files written.

    Without espeak-ng or sox nothing is generated and a warning says so: the IVR still runs,
    the caller just hears silence where the prompt would be.
    """
    target_dir = prompts_dir(sounds_dir)
    target_dir.mkdir(parents=True, exist_ok=True)
    missing = {n: v for n, v in prompts.items() if not (target_dir / f"{n}.wav").exists()}
    if not missing:
        return []
    tools = [t for t in ("espeak-ng", "sox") if shutil.which(t) is None]
    if tools:
        log.warning("cannot generate %d IVR prompts: %s not installed", len(missing), " and ".join(tools))
        return []
    written = []
    for name, (lang, text) in sorted(missing.items()):
        target = target_dir / f"{name}.wav"
        synthesize(text, VOICES.get(lang, lang), target)
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
