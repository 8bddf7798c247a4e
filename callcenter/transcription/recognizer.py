"""One speech-recogniser interface for the IVR's speech choice and for offline transcription.

A :class:`Recognizer` turns an audio file into a :class:`Recognition` (text, timed words, engine,
language, confidence). It is synchronous and CPU-heavy: the event loop never calls it directly but
through :func:`recognize_async`, on a thread or, better, a process pool. Engines are light,
picklable objects (a model path and options); each worker process loads a model once and keeps it
in the per-process cache of :mod:`callcenter.transcription.models`.

:func:`choose` is the IVR's side of grammar mode: the one grammar phrase the caller said, or None
(fall back to DTMF).
"""

from __future__ import annotations

import asyncio
import difflib
import functools
import re
import unicodedata
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable


class TranscriptionError(Exception):
    """Base of every error this capability raises on purpose; the IVR falls back to DTMF on it."""


class AudioError(TranscriptionError):
    """The audio file is missing, empty, corrupt or not audio; the message names the file."""


class ModelError(TranscriptionError):
    """A speech model could not be loaded."""


class ModelNotFound(ModelError):
    """A speech model is not installed; the message names the package or folder to provide."""


class UnknownEngine(TranscriptionError, ValueError):
    """No engine by that name."""


class UnsupportedLanguage(TranscriptionError, ValueError):
    """The model cannot recognise the language asked for (an English-only Whisper, say)."""


class GrammarError(TranscriptionError, ValueError):
    """A grammar the engine cannot use: empty, or with words outside the model's vocabulary."""


@dataclass(frozen=True)
class Word:
    """One recognised word; times in seconds from the start of the file."""

    text: str
    start: float
    end: float
    confidence: float | None


@dataclass(frozen=True)
class Recognition:
    """What an engine heard in one file.

    In grammar mode ``text`` holds only grammar phrases: Vosk's own output (grammar words and
    ``[unk]``), or for Whisper the one grammar phrase the transcript matched ("" if none); ``words``
    always hold what the engine actually decoded, with times.
    """

    text: str
    words: tuple[Word, ...]
    engine: str
    language: str | None
    confidence: float | None


@runtime_checkable
class Recognizer(Protocol):
    name: str

    def recognize(
        self, audio: Path, *, grammar: Sequence[str] | None = None, language: str | None = None
    ) -> Recognition: ...


async def recognize_async(
    recognizer: Recognizer,
    executor: Executor | None,
    audio: Path,
    *,
    grammar: Sequence[str] | None = None,
    language: str | None = None,
) -> Recognition:
    """Run ``recognizer.recognize`` off the event loop, on ``executor``.

    With a ``ProcessPoolExecutor`` the recogniser (a path and options) and the arguments are
    pickled to a worker, which loads the model the first time and reuses it after that. ``None``
    means the loop's default thread pool (fine for tests, not for a busy engine: recognition holds
    the GIL for parts of its work).
    """
    loop = asyncio.get_running_loop()
    call = functools.partial(
        recognizer.recognize,
        Path(audio),
        grammar=None if grammar is None else tuple(grammar),
        language=language,
    )
    return await loop.run_in_executor(executor, call)


# --- grammar matching -------------------------------------------------------------------------

# Default similarity a transcript window needs to count as a grammar phrase (difflib ratio, 0-1).
MATCH_THRESHOLD = 0.8
UNKNOWN_WORD = "[unk]"
_NOT_WORD = re.compile(r"[^\w\s]+")


def normalise(text: str) -> str:
    """Case-folded, NFKC, punctuation dropped, single spaces; Vosk's ``[unk]`` dropped too."""
    text = unicodedata.normalize("NFKC", text).casefold().replace(UNKNOWN_WORD, " ")
    return " ".join(_NOT_WORD.sub(" ", text).split())


def _similarity(heard: list[str], phrase: list[str]) -> float:
    """Best ratio of ``phrase`` against any run of as many words in ``heard``."""
    target = " ".join(phrase)
    if len(heard) <= len(phrase):
        return difflib.SequenceMatcher(None, " ".join(heard), target).ratio()
    return max(
        difflib.SequenceMatcher(None, " ".join(heard[i : i + len(phrase)]), target).ratio()
        for i in range(len(heard) - len(phrase) + 1)
    )


def _contains(longer: list[str], shorter: list[str]) -> bool:
    n = len(shorter)
    return len(longer) > n and any(longer[i : i + n] == shorter for i in range(len(longer) - n + 1))


def match_grammar(text: str, grammar: Sequence[str], *, threshold: float = MATCH_THRESHOLD) -> str | None:
    """The grammar phrase ``text`` says, or None when it says none of them or more than one.

    Every phrase is compared, normalised, with each run of as many words of the text; phrases
    heard exactly count, or if there are none, those whose best ratio reaches ``threshold``. One
    counting phrase wins; a phrase contained
    in a longer counting one ("fire" in "fire brigade") gives way to it; two unrelated counting
    phrases ("ambulance, not the police") are ambiguous and give None, so the caller is asked to
    press a key instead of being routed on a guess.
    """
    heard = normalise(text).split()
    if not heard:
        return None
    scored: list[tuple[str, list[str], float]] = []
    for phrase in grammar:
        words = normalise(phrase).split()
        if words:
            scored.append((phrase, words, _similarity(heard, words)))
    # A phrase heard exactly beats near misses ("아니요" said: "아니" is only similar).
    exact = [(phrase, words) for phrase, words, score in scored if score == 1.0]
    candidates = exact or [(phrase, words) for phrase, words, score in scored if score >= threshold]
    remaining = [
        phrase
        for phrase, words in candidates
        if not any(_contains(other, words) for _, other in candidates if other != words)
    ]
    distinct = {normalise(phrase) for phrase in remaining}
    return remaining[0] if len(distinct) == 1 else None


def choose(
    recognition: Recognition,
    grammar: Sequence[str],
    *,
    threshold: float = MATCH_THRESHOLD,
    min_confidence: float | None = None,
) -> str | None:
    """The grammar phrase the caller said (as written in ``grammar``), or None: use DTMF.

    Works on either engine's result: Vosk's grammar-mode text, Whisper's chosen phrase, or any
    free transcript. ``min_confidence`` additionally rejects results the engine itself doubts.
    """
    if (
        min_confidence is not None
        and recognition.confidence is not None
        and recognition.confidence < min_confidence
    ):
        return None
    return match_grammar(recognition.text, grammar, threshold=threshold)


# --- the engines ------------------------------------------------------------------------------
# Factories rather than the classes themselves: the engine modules import the types above, so
# importing them here would be an import cycle. Importing an engine module is cheap either way;
# vosk and faster-whisper themselves are imported only where a model is loaded.


def _vosk(model_path: Path | None = None, **options: Any) -> Recognizer:
    from callcenter.transcription.vosk_engine import VoskRecognizer

    return VoskRecognizer(model_path, **options)


def _whisper(model_path: Path | None = None, **options: Any) -> Recognizer:
    from callcenter.transcription.whisper_engine import WhisperRecognizer

    return WhisperRecognizer(model_path, **options)


ENGINES: dict[str, Callable[..., Recognizer]] = {"vosk": _vosk, "whisper": _whisper}


def make_recognizer(name: str, model_path: Path | None = None, **options: Any) -> Recognizer:
    """The engine called ``name`` with its model (default: the model its package ships).

    ``options`` go to the engine (for Whisper: ``compute_type``, ``beam_size``, ``language``...).
    Fails at once, in the caller's process, when the engine is unknown or its model is missing.
    """
    try:
        factory = ENGINES[name]
    except KeyError:
        known = ", ".join(sorted(ENGINES))
        raise UnknownEngine(f"unknown speech engine {name!r}; known engines: {known}") from None
    return factory(model_path, **options)
