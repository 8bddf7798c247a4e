"""What a closed recording's files really hold: size, format, duration and SHA-256, or why not.

Blocking file I/O throughout: the engine calls :func:`check_recording` on an executor thread, the
``recordings verify`` command calls :func:`verify_files` directly. Nothing here touches the
database; :mod:`callcenter.recording.catalogue` stores what these functions find.

A WAV file is judged by its own header. MixMonitor writes the RIFF and ``data`` sizes when it
closes the file, so sizes that disagree with the file's length mean the file was never closed
properly (Asterisk killed, disk full) or was cut short afterwards: the recording is *failed*, with
the reason, and the engine says so loudly. A file with a header and no audio is failed as empty.
"""

from __future__ import annotations

import hashlib
import os
import re
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from callcenter.recording.closed import RecordingClosed
from callcenter.recording.models import AGENT, CALLER, FAILED, MIXED, OK

_BLOCK = 1 << 20
_RIFF = struct.Struct("<4sI4s")
_CHUNK = struct.Struct("<4sI")
_FMT = struct.Struct("<HHIIHH")
# At most this many chunks before 'data': a WAV from MixMonitor has one ('fmt '); a crafted file
# with millions of tiny chunks must not keep the checker busy.
_MAX_CHUNKS = 64
_FORMAT_NAMES = {1: "pcm", 3: "float", 6: "alaw", 7: "ulaw", 0x31: "gsm"}
# What the dialplan makes (FILTER(A-Za-z0-9_) of the Uniqueid) under <recordings>/YYYY/MM/DD/.
_SAFE_BASE = re.compile(r"^/[A-Za-z0-9_./-]+$")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_]{1,120}$")
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


class BadWav(Exception):
    """The file is not a complete WAV file; the message says what is wrong, for the catalogue."""


@dataclass(frozen=True)
class WavFormat:
    format: str  # "wav/pcm", "wav/gsm", "wav/0x0002"
    sample_rate: int
    channels: int
    sample_width: int  # bytes per sample (per channel)
    data_bytes: int
    duration_seconds: float


@dataclass(frozen=True)
class FileCheck:
    """One file of a recording as found: ``status`` ok or failed (then ``failure`` says why)."""

    kind: str  # mixed | caller | agent
    path: Path
    status: str
    failure: str = ""
    size_bytes: int | None = None
    sha256: str = ""
    wav: WavFormat | None = None

    @property
    def ok(self) -> bool:
        return self.status == OK


@dataclass(frozen=True)
class RecordingCheck:
    files: tuple[FileCheck, ...]

    @property
    def ok(self) -> bool:
        return all(f.ok for f in self.files)

    @property
    def status(self) -> str:
        return OK if self.ok else FAILED

    @property
    def failure(self) -> str:
        """One line per failed file, for the recording's row and the log."""
        return "; ".join(f"{f.kind} {f.path.name}: {f.failure}" for f in self.files if not f.ok)

    @property
    def duration_seconds(self) -> float | None:
        for f in self.files:
            if f.kind == MIXED and f.wav is not None:
                return f.wav.duration_seconds
        return None


@dataclass(frozen=True)
class RecordingFailed:
    """Published on the bus when a closed recording's files are missing, empty or truncated."""

    system_name: str
    linkedid: str
    uniqueid: str
    base: Path
    recording_id: int | None
    reason: str


def recording_files(base: Path) -> dict[str, Path]:
    """The three files of a recording by kind, named as the dialplan names them."""
    return {
        MIXED: base.with_name(base.name + ".wav"),
        CALLER: base.with_name(base.name + "-caller.wav"),
        AGENT: base.with_name(base.name + "-agent.wav"),
    }


def unsafe_reason(base: Path, root: Path) -> str | None:
    """Why the engine must not open (or ever delete) files at ``base``; None when it may.

    The dialplan builds the name from the channel's Uniqueid, filtered to [A-Za-z0-9_], under the
    recordings folder; anything else did not come from us. ``root`` is resolved (symlinks too),
    so a link inside the folder pointing elsewhere is refused as well.
    """
    text = str(base)
    if not _SAFE_BASE.match(text) or ".." in text or not _SAFE_NAME.match(base.name):
        return "refused: the name is not one the dialplan makes"
    try:
        resolved_root = root.resolve()
        if not base.parent.resolve().is_relative_to(resolved_root):
            return f"refused: not inside the recordings folder {resolved_root}"
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop
        return f"refused: cannot resolve the path ({exc})"
    return None


def read_wav_format(handle: BinaryIO, file_size: int) -> WavFormat:
    """Parse the RIFF/WAVE header and check its sizes against the file's length."""
    head = handle.read(_RIFF.size)
    if len(head) < _RIFF.size:
        raise BadWav(f"header unreadable: only {file_size} bytes")
    riff, riff_size, wave = _RIFF.unpack(head)
    if riff != b"RIFF" or wave != b"WAVE":
        raise BadWav("header unreadable: not a RIFF/WAVE file")
    fmt: tuple[int, int, int, int, int, int] | None = None
    data: tuple[int, int] | None = None
    position = _RIFF.size
    for _ in range(_MAX_CHUNKS):
        handle.seek(position)
        chunk = handle.read(_CHUNK.size)
        if len(chunk) < _CHUNK.size:
            break
        chunk_id, chunk_size = _CHUNK.unpack(chunk)
        if chunk_id == b"fmt ":
            if chunk_size < _FMT.size:
                raise BadWav(f"header unreadable: fmt chunk of {chunk_size} bytes")
            body = handle.read(_FMT.size)
            if len(body) < _FMT.size:
                raise BadWav("truncated inside the fmt chunk")
            fmt = _FMT.unpack(body)
        elif chunk_id == b"data":
            data = (position + _CHUNK.size, chunk_size)
            break  # the audio runs to the end; chunks after it (LIST) do not matter here
        position += _CHUNK.size + chunk_size + (chunk_size & 1)  # chunks are padded to even sizes
    if fmt is None:
        raise BadWav("header unreadable: no fmt chunk before the audio")
    if data is None:
        raise BadWav("header unreadable: no data chunk")
    audio_format, channels, sample_rate, byte_rate, block_align, bits = fmt
    if channels == 0 or sample_rate == 0 or byte_rate == 0 or block_align == 0:
        raise BadWav(
            f"header unreadable: {channels} channels, {sample_rate} Hz, {byte_rate} bytes/s, "
            f"block {block_align}"
        )
    if riff_size + 8 != file_size:
        # MixMonitor fills the sizes in when it closes the file: a mismatch means it never did,
        # or the file was cut (or grown) afterwards.
        raise BadWav(f"truncated: the RIFF header says {riff_size + 8} bytes, the file has {file_size}")
    data_offset, data_bytes = data
    if data_offset + data_bytes > file_size:
        raise BadWav(
            f"truncated: the data chunk says {data_bytes} bytes, the file has {file_size - data_offset}"
        )
    if data_bytes == 0:
        raise BadWav("empty: a header and no audio")
    name = _FORMAT_NAMES.get(audio_format, f"0x{audio_format:04x}")
    return WavFormat(
        format=f"wav/{name}",
        sample_rate=sample_rate,
        channels=channels,
        sample_width=(bits + 7) // 8,
        data_bytes=data_bytes,
        duration_seconds=round(data_bytes / byte_rate, 3),
    )


def sha256_of(path: Path) -> tuple[str, int]:
    """The file's SHA-256 (hex) and its size in bytes, from one open of the file."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        while block := handle.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest(), size


def check_file(kind: str, path: Path) -> FileCheck:
    """Size, format, duration and hash of one file; a failed check says why. Blocking."""
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        return FileCheck(kind, path, FAILED, "missing")
    except OSError as exc:
        return FileCheck(kind, path, FAILED, f"unreadable: {exc.strerror}")
    with handle:
        try:
            size = os.fstat(handle.fileno()).st_size
            if size == 0:
                return FileCheck(kind, path, FAILED, "empty: 0 bytes", size_bytes=0, sha256=_EMPTY_SHA256)
            # Hash first: a truncated file keeps its hash too, as evidence of what was there.
            digest = hashlib.sha256()
            while block := handle.read(_BLOCK):
                digest.update(block)
            handle.seek(0)
            try:
                wav = read_wav_format(handle, size)
            except BadWav as exc:
                return FileCheck(kind, path, FAILED, str(exc), size_bytes=size, sha256=digest.hexdigest())
        except OSError as exc:
            return FileCheck(kind, path, FAILED, f"unreadable: {exc.strerror}")
    return FileCheck(kind, path, OK, size_bytes=size, sha256=digest.hexdigest(), wav=wav)


def check_recording(closed: RecordingClosed, root: Path) -> RecordingCheck:
    """All three files of a closed recording. Blocking: run it on an executor thread."""
    files = recording_files(closed.base)
    refused = unsafe_reason(closed.base, root)
    if refused is not None:
        # Not opened at all: the path did not come from our dialplan.
        return RecordingCheck(tuple(FileCheck(kind, path, FAILED, refused) for kind, path in files.items()))
    return RecordingCheck(tuple(check_file(kind, path) for kind, path in files.items()))


# -- verify: the files against what was catalogued ---------------------------------------------

MISSING = "missing"
MISMATCH = "mismatch"


@dataclass(frozen=True)
class CataloguedFile:
    recording_id: int
    linkedid: str
    kind: str
    path: Path
    sha256: str
    size_bytes: int | None


@dataclass(frozen=True)
class VerifyProblem:
    kind: str  # missing | mismatch
    file: CataloguedFile
    actual_sha256: str = ""
    actual_size: int | None = None
    detail: str = ""

    def line(self) -> str:
        f = self.file
        where = f"recording {f.recording_id} (call {f.linkedid}) {f.kind}"
        if self.kind == MISSING:
            return f"MISSING  {f.path}: {where}{': ' + self.detail if self.detail else ''}"
        return (
            f"MISMATCH {f.path}: {where}: sha256 {self.actual_sha256}, catalogued {f.sha256}"
            f" ({self.actual_size} bytes, catalogued {f.size_bytes})"
        )

    def as_dict(self) -> dict[str, object]:
        f = self.file
        return {
            "problem": self.kind,
            "path": str(f.path),
            "recording_id": f.recording_id,
            "linkedid": f.linkedid,
            "kind": f.kind,
            "catalogued_sha256": f.sha256,
            "catalogued_size": f.size_bytes,
            "actual_sha256": self.actual_sha256 or None,
            "actual_size": self.actual_size,
            "detail": self.detail or None,
        }


@dataclass
class VerifyReport:
    checked: int = 0
    ok: int = 0
    problems: list[VerifyProblem] = field(default_factory=list)
    # Counted, not problems: already reported when the recording closed, or removed on purpose.
    failed_when_recorded: int = 0
    deleted_by_retention: int = 0
    not_hashed: int = 0  # catalogued before hashes were kept

    def summary(self) -> str:
        missing = sum(1 for p in self.problems if p.kind == MISSING)
        mismatched = len(self.problems) - missing
        return (
            f"{'FAILED' if self.problems else 'ok'}: {self.checked} files checked, {self.ok} ok, "
            f"{mismatched} mismatched, {missing} missing; {self.failed_when_recorded} failed when recorded, "
            f"{self.deleted_by_retention} recordings deleted by retention, {self.not_hashed} not hashed"
        )

    def as_dict(self) -> dict[str, object]:
        return {
            "ok": not self.problems,
            "checked": self.checked,
            "files_ok": self.ok,
            "problems": [p.as_dict() for p in self.problems],
            "failed_when_recorded": self.failed_when_recorded,
            "deleted_by_retention": self.deleted_by_retention,
            "not_hashed": self.not_hashed,
        }


def verify_files(files: Iterable[CataloguedFile], report: VerifyReport | None = None) -> VerifyReport:
    """Re-hash each file and compare with the catalogue. Blocking; no database session is held."""
    report = report or VerifyReport()
    for catalogued in files:
        report.checked += 1
        try:
            actual, size = sha256_of(catalogued.path)
        except FileNotFoundError:
            report.problems.append(VerifyProblem(MISSING, catalogued))
            continue
        except OSError as exc:
            report.problems.append(VerifyProblem(MISSING, catalogued, detail=f"unreadable: {exc.strerror}"))
            continue
        if actual != catalogued.sha256:
            problem = VerifyProblem(MISMATCH, catalogued, actual_sha256=actual, actual_size=size)
            report.problems.append(problem)
        else:
            report.ok += 1
    return report
