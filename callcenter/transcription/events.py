"""What the engine publishes on its bus as recordings are transcribed (pure data)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TranscriptionQueued:
    """A closed recording's legs were put on the transcription queue."""

    recording_id: int
    call_id: int
    job_ids: tuple[int, ...]


@dataclass(frozen=True)
class TranscriptReady:
    """A worker stored the transcript of one leg (``transcript_id``) for job ``job_id``."""

    job_id: int
    transcript_id: int


@dataclass(frozen=True)
class TranscriptionFailed:
    """A job ended without a transcript: ``final`` when it will not be tried again."""

    job_id: int
    error: str
    final: bool
