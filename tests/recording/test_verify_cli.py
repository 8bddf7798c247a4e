"""`callcenter recordings verify`: a real database (SQLite file and PostgreSQL), real WAV files."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

from callcenter.recording.catalogue import catalogue
from callcenter.recording.integrity import check_recording
from callcenter.recording.models import Recording
from callcenter.storage.database import Database
from tests.recording.kit import record
from tests.test_cli import run_cli

NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)


def flip_byte(path: Path, offset: int) -> None:
    with path.open("r+b") as handle:
        handle.seek(offset)
        byte = handle.read(1)
        handle.seek(offset)
        handle.write(bytes([byte[0] ^ 0x01]))


def test_verify_reports_tampered_and_missing_files(db: Database, database_url: str, tmp_path: Path) -> None:
    root = tmp_path / "recordings"
    first = record(root, "pbx-1700000000.0", seconds=1.0)
    second = record(root, "pbx-1700000001.0", seconds=2.0)
    second.agent_leg.unlink()  # failed when recorded: not hashed, so not re-checked
    gone = record(root, "pbx-1700000002.0")
    ids = []
    for closed in (first, second, gone):
        with db.transaction() as s, s.begin():
            ids.append(catalogue(s, closed, check_recording(closed, root), NOW).recording_id)
    with db.transaction() as s, s.begin():
        recording = s.get(Recording, ids[2])
        assert recording is not None
        recording.deleted_at = NOW  # retention removed it: its files are not looked for
    for path in (gone.mixed, gone.caller_leg, gone.agent_leg):
        path.unlink()
    env = {"CALLCENTER_DATABASE_URL": database_url}

    result = run_cli("recordings", "verify", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "ok: 5 files checked, 5 ok, 0 mismatched, 0 missing; 1 failed when recorded, "
        "1 recordings deleted by retention, 0 not hashed"
    ]

    catalogued_sha = hashlib.sha256(first.mixed.read_bytes()).hexdigest()
    flip_byte(first.mixed, 500)
    second.caller_leg.unlink()
    result = run_cli("recordings", "verify", cwd=tmp_path, env=env)
    assert result.returncode == 1, result.stderr
    actual_sha = hashlib.sha256(first.mixed.read_bytes()).hexdigest()
    assert result.stdout.splitlines() == [
        f"MISMATCH {first.mixed}: recording {ids[0]} (call pbx-1700000000.0) mixed: sha256 {actual_sha}, "
        f"catalogued {catalogued_sha} (16044 bytes, catalogued 16044)",
        f"MISSING  {second.caller_leg}: recording {ids[1]} (call pbx-1700000001.0) caller",
        "FAILED: 5 files checked, 3 ok, 1 mismatched, 1 missing; 1 failed when recorded, "
        "1 recordings deleted by retention, 0 not hashed",
    ]

    result = run_cli("recordings", "verify", "--json", cwd=tmp_path, env=env)
    assert result.returncode == 1, result.stderr
    document = json.loads(result.stdout)
    assert (document["ok"], document["checked"], document["files_ok"]) == (False, 5, 3)
    assert [(p["problem"], p["path"], p["recording_id"]) for p in document["problems"]] == [
        ("mismatch", str(first.mixed), ids[0]),
        ("missing", str(second.caller_leg), ids[1]),
    ]
    assert document["problems"][0]["catalogued_sha256"] == catalogued_sha
    assert document["problems"][0]["actual_sha256"] == actual_sha


def test_verify_an_empty_catalogue(tmp_path: Path) -> None:
    result = run_cli("recordings", "verify", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith("ok: 0 files checked")
