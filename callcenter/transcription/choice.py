"""A speech choice, as one picklable call for a worker process.

The IVR records a few seconds of the caller and asks which word of a small grammar was said.
This runs in a process pool (model decoding is CPU-heavy and must not touch the event loop);
each worker keeps its models loaded between calls (``models.py``'s per-process cache).
"""

from __future__ import annotations

from pathlib import Path

from callcenter.transcription.recognizer import choose, make_recognizer


def recognize_choice(engine: str, audio: str, grammar: list[str]) -> str | None:
    """The grammar word the caller said, or None when nothing in the grammar was understood."""
    recognizer = make_recognizer(engine)
    recognition = recognizer.recognize(Path(audio), grammar=grammar)
    return choose(recognition, grammar)
