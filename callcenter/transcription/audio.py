"""Audio files in, 16 kHz mono samples out, with errors that name the file.

Both engines want 16 kHz mono: Vosk as 16-bit PCM bytes, Whisper as float32 in [-1, 1]. Input is
what Asterisk writes (8 kHz WAV from MixMonitor and Record, headerless ``.ulaw``/``.alaw``/``.sln``,
``.gsm``) or any common audio file. Decoding and resampling are FFmpeg's, through PyAV (a
dependency of faster-whisper anyway): no subprocess per call, any rate in, exact passthrough when
the file already is 16 kHz mono 16-bit.

The file is opened by Python and handed to FFmpeg as a stream, and only audio container formats
are allowed (``format_whitelist``): a recording path is never interpreted as a URL or protocol,
and a text file that looks like a playlist cannot make FFmpeg open other files.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import av.error
import numpy as np
import numpy.typing as npt

from callcenter.transcription.recognizer import AudioError

SAMPLE_RATE = 16_000
SAMPLE_WIDTH = 2  # bytes: signed 16-bit little-endian

# FFmpeg demuxers we accept (file formats, not codecs).
ALLOWED_FORMATS = (
    "wav",
    "w64",
    "aiff",
    "au",
    "flac",
    "mp3",
    "ogg",
    "matroska",
    "webm",
    "mov",
    "mp4",
    "m4a",
    "gsm",
    "g722",
    "mulaw",
    "alaw",
    "s16le",
)

# Headerless formats Asterisk writes, known by their extension: (FFmpeg format, sample rate).
RAW_FORMATS: dict[str, tuple[str, int]] = {
    ".ulaw": ("mulaw", 8000),
    ".ul": ("mulaw", 8000),
    ".pcm": ("mulaw", 8000),
    ".alaw": ("alaw", 8000),
    ".al": ("alaw", 8000),
    ".sln": ("s16le", 8000),
    ".raw": ("s16le", 8000),
    ".sln16": ("s16le", 16000),
    ".g722": ("g722", 16000),
}


def iter_pcm16(path: Path, *, rate: int = SAMPLE_RATE, chunk_samples: int = 4000) -> Iterator[bytes]:
    """Mono signed 16-bit PCM at ``rate``, in chunks of ``chunk_samples`` (the last may be shorter).

    Raises :class:`AudioError` for a missing, unreadable, empty, corrupt or non-audio file, or one
    with no samples at all. Streams: a long recording is never held in memory whole.
    """
    path = Path(path)
    step = chunk_samples * SAMPLE_WIDTH
    pending = bytearray()
    samples = 0
    fmt, options = _container_options(path)
    try:
        with path.open("rb") as handle:
            if path.stat().st_size == 0:
                raise AudioError(f"{path}: empty file (0 bytes), no audio in it")
            with av.open(handle, mode="r", format=fmt, options=options) as container:
                if not container.streams.audio:
                    raise AudioError(f"{path}: no audio stream (format {container.format.name})")
                stream = container.streams.audio[0]
                resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
                for frame in container.decode(stream):
                    for out in resampler.resample(frame):
                        pending += out.to_ndarray().tobytes()
                    while len(pending) >= step:
                        samples += chunk_samples
                        yield bytes(pending[:step])
                        del pending[:step]
                for out in resampler.resample(None):
                    pending += out.to_ndarray().tobytes()
    except AudioError:
        raise
    except FileNotFoundError:
        raise AudioError(f"{path}: no such audio file") from None
    except IsADirectoryError:
        raise AudioError(f"{path}: is a directory, not an audio file") from None
    except OSError as exc:
        # PyAV's errors (corrupt data, unknown format) are OSError/ValueError subclasses too.
        raise AudioError(f"{path}: cannot read audio: {_reason(exc)}") from exc
    except (av.error.FFmpegError, ValueError) as exc:
        raise AudioError(f"{path}: not a readable audio file: {_reason(exc)}") from exc
    samples += len(pending) // SAMPLE_WIDTH
    if samples == 0:
        raise AudioError(f"{path}: the audio stream holds no samples")
    while pending:
        yield bytes(pending[:step])
        del pending[:step]


def load_pcm16(path: Path, *, rate: int = SAMPLE_RATE) -> bytes:
    """The whole file as mono signed 16-bit PCM at ``rate`` (see :func:`iter_pcm16`)."""
    return b"".join(iter_pcm16(path, rate=rate, chunk_samples=rate))


def load_float32(path: Path, *, rate: int = SAMPLE_RATE) -> npt.NDArray[np.float32]:
    """The whole file as mono float32 samples in [-1, 1) at ``rate``: what Whisper takes."""
    pcm = np.frombuffer(load_pcm16(path, rate=rate), dtype="<i2")
    samples: npt.NDArray[np.float32] = pcm.astype(np.float32)
    samples /= 32768.0
    return samples


def _container_options(path: Path) -> tuple[str | None, dict[str, Any]]:
    options = {"format_whitelist": ",".join(ALLOWED_FORMATS)}
    raw = RAW_FORMATS.get(path.suffix.lower())
    if raw is None:
        return None, options
    fmt, rate = raw
    if fmt in ("mulaw", "alaw", "s16le"):
        options.update(sample_rate=str(rate), ch_layout="mono")
    return fmt, options


def _reason(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return str(text).strip() or type(exc).__name__
