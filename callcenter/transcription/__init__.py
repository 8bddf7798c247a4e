"""Speech recognition: one interface, two engines (Vosk, faster-whisper). See docs/SPEECH.md."""

from callcenter.transcription.recognizer import (
    ENGINES,
    AudioError,
    GrammarError,
    ModelError,
    ModelNotFound,
    Recognition,
    Recognizer,
    TranscriptionError,
    UnknownEngine,
    UnsupportedLanguage,
    Word,
    choose,
    make_recognizer,
    match_grammar,
    recognize_async,
)
from callcenter.transcription.vosk_engine import VoskRecognizer
from callcenter.transcription.whisper_engine import WhisperRecognizer

__all__ = [
    "ENGINES",
    "AudioError",
    "GrammarError",
    "ModelError",
    "ModelNotFound",
    "Recognition",
    "Recognizer",
    "TranscriptionError",
    "UnknownEngine",
    "UnsupportedLanguage",
    "VoskRecognizer",
    "WhisperRecognizer",
    "Word",
    "choose",
    "make_recognizer",
    "match_grammar",
    "recognize_async",
]
