"""The integrity check of a closed recording's files: real WAV files, cut, emptied and removed."""

from __future__ import annotations

import hashlib
import os
import struct
from pathlib import Path

import pytest

from callcenter.recording.integrity import (
    MISMATCH,
    MISSING,
    CataloguedFile,
    WavFormat,
    check_file,
    check_recording,
    recording_files,
    unsafe_reason,
    verify_files,
)
from callcenter.recording.models import FAILED, OK
from tests.recording.kit import DAY, closed_recording, record, write_wav


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_complete_file_gives_its_size_format_duration_and_hash(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "a.wav", 1.5)
    found = check_file("mixed", path)
    assert (found.status, found.failure) == (OK, "")
    assert found.size_bytes == 44 + 24000 == path.stat().st_size
    assert found.sha256 == sha256(path)
    assert found.wav == WavFormat(
        format="wav/pcm", sample_rate=8000, channels=1, sample_width=2, data_bytes=24000, duration_seconds=1.5
    )


def test_stereo_16khz(tmp_path: Path) -> None:
    found = check_file("mixed", write_wav(tmp_path / "s.wav", 0.25, rate=16000, channels=2))
    assert found.wav is not None
    assert (found.wav.sample_rate, found.wav.channels, found.wav.data_bytes) == (16000, 2, 16000)
    assert found.wav.duration_seconds == 0.25


def test_missing_file(tmp_path: Path) -> None:
    found = check_file("agent", tmp_path / "none.wav")
    assert (found.status, found.failure, found.size_bytes, found.sha256) == (FAILED, "missing", None, "")


def test_zero_bytes(tmp_path: Path) -> None:
    path = tmp_path / "zero.wav"
    path.write_bytes(b"")
    found = check_file("caller", path)
    assert (found.status, found.failure, found.size_bytes) == (FAILED, "empty: 0 bytes", 0)
    assert found.sha256 == hashlib.sha256(b"").hexdigest()


def test_header_only(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "h.wav", 0)
    found = check_file("mixed", path)
    assert (found.status, found.failure, found.size_bytes) == (FAILED, "empty: a header and no audio", 44)


def test_cut_short(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "cut.wav", 1.5)
    with path.open("r+b") as handle:
        handle.truncate(24044 - 1000)
    found = check_file("mixed", path)
    assert found.status == FAILED
    assert found.failure == "truncated: the RIFF header says 24044 bytes, the file has 23044"
    # The hash is kept: it is evidence of what was there.
    assert found.sha256 == sha256(path)


def test_never_closed_header_sizes_zero(tmp_path: Path) -> None:
    """What a MixMonitor file looks like when Asterisk died before closing it."""
    path = write_wav(tmp_path / "open.wav", 1.0)
    with path.open("r+b") as handle:
        handle.seek(4)
        handle.write(struct.pack("<I", 0))
        handle.seek(40)
        handle.write(struct.pack("<I", 0))
    found = check_file("mixed", path)
    assert found.failure == "truncated: the RIFF header says 8 bytes, the file has 16044"


def test_data_chunk_longer_than_the_file(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "long.wav", 1.0)
    with path.open("r+b") as handle:
        handle.seek(40)
        handle.write(struct.pack("<I", 20000))
    found = check_file("mixed", path)
    assert found.failure == "truncated: the data chunk says 20000 bytes, the file has 16000"


@pytest.mark.parametrize(
    ("content", "failure"),
    [
        (b"RIFF", "header unreadable: only 4 bytes"),
        (b"ID3\x03" + b"\x00" * 60, "header unreadable: not a RIFF/WAVE file"),
        (
            b"RIFF" + struct.pack("<I", 12) + b"WAVEdata" + struct.pack("<I", 0),
            "header unreadable: no fmt chunk",
        ),
    ],
)
def test_not_a_wav_file(tmp_path: Path, content: bytes, failure: str) -> None:
    path = tmp_path / "x.wav"
    path.write_bytes(content)
    found = check_file("mixed", path)
    assert found.status == FAILED
    assert found.failure.startswith(failure)


def test_a_whole_recording(tmp_path: Path) -> None:
    closed = record(tmp_path, "pbx-1700000000.0", seconds=2.0)
    check = check_recording(closed, tmp_path)
    assert check.ok and check.status == OK and check.failure == ""
    assert [(f.kind, f.path.name) for f in check.files] == [
        ("mixed", "pbx_1700000000_0.wav"),
        ("caller", "pbx_1700000000_0-caller.wav"),
        ("agent", "pbx_1700000000_0-agent.wav"),
    ]
    assert check.duration_seconds == 2.0


def test_a_recording_with_a_missing_and_a_cut_leg(tmp_path: Path) -> None:
    closed = record(tmp_path, "pbx-1700000000.0", seconds=1.0)
    closed.agent_leg.unlink()
    with closed.caller_leg.open("r+b") as handle:
        handle.truncate(1000)
    check = check_recording(closed, tmp_path)
    assert check.status == FAILED
    assert check.failure == (
        "caller pbx_1700000000_0-caller.wav: truncated: the RIFF header says 16044 bytes, the file has 1000; "
        "agent pbx_1700000000_0-agent.wav: missing"
    )
    assert check.duration_seconds == 1.0  # the mixed file is fine


def test_paths_outside_the_recordings_folder_are_not_opened(tmp_path: Path) -> None:
    root = tmp_path / "recordings"
    elsewhere = record(tmp_path / "elsewhere", "pbx-1.0")
    check = check_recording(elsewhere, root)
    assert check.status == FAILED
    assert {f.failure for f in check.files} == {f"refused: not inside the recordings folder {root}"}
    assert all(f.sha256 == "" for f in check.files)


def test_a_symlink_out_of_the_folder_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "recordings"
    (root / "2026" / "11").mkdir(parents=True)
    (root / "2026" / "11" / "23").symlink_to(tmp_path / "etc", target_is_directory=True)
    (tmp_path / "etc").mkdir()
    reason = unsafe_reason(root / DAY / "pbx_1_0", root)
    assert reason == f"refused: not inside the recordings folder {root}"


@pytest.mark.parametrize("name", ["a b", "x;rm", "..", "name.wav", "pbx-1.0"])
def test_names_the_dialplan_does_not_make_are_refused(tmp_path: Path, name: str) -> None:
    assert unsafe_reason(tmp_path / DAY / name, tmp_path) == "refused: the name is not one the dialplan makes"


def test_recording_files_are_named_like_the_dialplan_names_them() -> None:
    closed = closed_recording(Path("/r"), "pbx-1.0")
    assert recording_files(closed.base) == {
        "mixed": closed.mixed,
        "caller": closed.caller_leg,
        "agent": closed.agent_leg,
    }


def test_verify_reports_a_changed_byte_and_a_missing_file(tmp_path: Path) -> None:
    closed = record(tmp_path, "pbx-1.0")
    catalogued = [
        CataloguedFile(1, "pbx-1.0", kind, path, sha256(path), path.stat().st_size)
        for kind, path in recording_files(closed.base).items()
    ]
    assert verify_files(catalogued).summary() == (
        "ok: 3 files checked, 3 ok, 0 mismatched, 0 missing; 0 failed when recorded, "
        "0 recordings deleted by retention, 0 not hashed"
    )
    with closed.caller_leg.open("r+b") as handle:
        handle.seek(100)
        byte = handle.read(1)
        handle.seek(100)
        handle.write(bytes([byte[0] ^ 0xFF]))
    os.remove(closed.agent_leg)
    report = verify_files(catalogued)
    assert [(p.kind, p.file.kind) for p in report.problems] == [(MISMATCH, "caller"), (MISSING, "agent")]
    assert report.problems[0].actual_sha256 == sha256(closed.caller_leg)
    assert report.problems[0].line() == (
        f"MISMATCH {closed.caller_leg}: recording 1 (call pbx-1.0) caller: sha256 "
        f"{sha256(closed.caller_leg)}, catalogued {catalogued[1].sha256} (24044 bytes, catalogued 24044)"
    )
    assert report.problems[1].line() == f"MISSING  {closed.agent_leg}: recording 1 (call pbx-1.0) agent"
    assert report.ok == 1
