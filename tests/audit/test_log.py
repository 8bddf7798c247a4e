"""The audit log's hash chain: appends from many threads keep one chain; edits, deletions and
reordering done behind the engine's back (raw SQL) are found by verify and by the CLI."""

from __future__ import annotations

import hashlib
import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, text

from callcenter.audit.log import (
    ALTERED,
    BROKEN_LINK,
    GENESIS,
    RECORDING_DOWNLOAD,
    RECORDING_PLAY,
    Head,
    Problem,
    append,
    canonical_detail,
    entry_hash,
    hash_of,
    head,
    verify,
)
from callcenter.audit.models import AuditEntry
from callcenter.errors import InvalidInput
from callcenter.storage.database import Database
from tests.test_cli import run_cli

NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)


def fill(db: Database, count: int) -> list[AuditEntry]:
    entries = []
    for n in range(count):
        with db.transaction() as s, s.begin():
            action = RECORDING_PLAY if n % 2 == 0 else RECORDING_DOWNLOAD
            entries.append(
                append(
                    s, f"auditor{n}", action, "recording", 100 + n, {"range": f"bytes={n}-"}, NOW + n * SECOND
                )
            )
    return entries


SECOND = timedelta(seconds=1)


def test_entries_chain_to_each_other(db: Database) -> None:
    first, second = fill(db, 2)
    assert (first.seq, first.prev_hash) == (1, GENESIS)
    assert (second.seq, second.prev_hash) == (2, first.hash)
    # The hash is over a canonical serialization that anyone can recompute from the row.
    serialized = (
        '[1,"2026-11-23T02:00:00.000000+00:00","auditor0","recording.play","recording","100",'
        '"{\\"range\\":\\"bytes=0-\\"}","' + GENESIS + '"]'
    )
    assert first.hash == hashlib.sha256(serialized.encode()).hexdigest()
    with db.transaction() as s, s.begin():
        stored = list(s.scalars(select(AuditEntry).order_by(AuditEntry.seq)))
        assert [(e.actor, e.action, e.object_kind, e.object_id, e.detail) for e in stored] == [
            ("auditor0", "recording.play", "recording", "100", '{"range":"bytes=0-"}'),
            ("auditor1", "recording.download", "recording", "101", '{"range":"bytes=1-"}'),
        ]
        # What came back from the database hashes the same (times survive the round trip).
        assert [hash_of(e) for e in stored] == [first.hash, second.hash]
        assert verify(s) == []
        assert head(s) == Head(2, 2, second.hash)


def test_canonical_detail() -> None:
    assert canonical_detail({"b": 1, "a": "Jalan Ñ"}) == '{"a":"Jalan Ñ","b":1}'
    assert canonical_detail("catatan") == '"catatan"'
    assert canonical_detail(None) == "{}"
    with pytest.raises(InvalidInput, match="detail"):
        canonical_detail({"x": object()})
    with pytest.raises(InvalidInput, match="detail"):
        canonical_detail({"x": float("nan")})


def test_bad_entries_are_refused(db: Database) -> None:
    with db.transaction() as s, s.begin():
        with pytest.raises(InvalidInput, match="action"):
            append(s, "a", "play", "recording", 1, None, NOW)
        with pytest.raises(InvalidInput, match="actor"):
            append(s, "", RECORDING_PLAY, "recording", 1, None, NOW)
        with pytest.raises(InvalidInput, match="object_id"):
            append(s, "a", RECORDING_PLAY, "recording", "x" * 65, None, NOW)
        with pytest.raises(ValueError, match="naive"):
            append(s, "a", RECORDING_PLAY, "recording", 1, None, NOW.replace(tzinfo=None))
    with db.transaction() as s, s.begin():
        assert head(s) == Head(0, 0, GENESIS)


def test_concurrent_appends_keep_one_chain(db: Database) -> None:
    threads, each = 8, 15
    start = threading.Barrier(threads)
    errors: list[BaseException] = []

    def appender(worker: int) -> None:
        try:
            start.wait()
            for n in range(each):
                with db.transaction() as s, s.begin():
                    append(s, f"user{worker}", RECORDING_PLAY, "recording", worker * 100 + n, {"n": n}, NOW)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    workers = [threading.Thread(target=appender, args=(w,)) for w in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert errors == []
    with db.transaction() as s, s.begin():
        entries = list(s.scalars(select(AuditEntry).order_by(AuditEntry.seq)))
        assert [e.seq for e in entries] == list(range(1, threads * each + 1))
        assert [e.prev_hash for e in entries] == [GENESIS] + [e.hash for e in entries[:-1]]
        assert len({e.object_id for e in entries}) == threads * each
        assert verify(s) == []


def test_an_edited_entry_is_reported(db: Database) -> None:
    entries = fill(db, 5)
    with db.transaction() as s, s.begin():
        s.execute(text('UPDATE audit_log SET detail = \'{"range":"bytes=0-99"}\' WHERE seq = 3'))
    with db.transaction() as s, s.begin():
        assert verify(s) == [
            Problem(ALTERED, 3, entries[2].id, f"hash {entries[2].hash} does not match its content")
        ]


def test_an_edited_and_rehashed_entry_breaks_the_next_link(db: Database) -> None:
    entries = fill(db, 4)
    # A forger who knows the algorithm rewrites entry 2 and recomputes its hash.
    forged = entry_hash(
        2, NOW + SECOND, "someone", RECORDING_DOWNLOAD, "recording", "101", "{}", entries[0].hash
    )
    with db.transaction() as s, s.begin():
        s.execute(
            text("UPDATE audit_log SET actor = 'someone', detail = '{}', hash = :h WHERE seq = 2"),
            {"h": forged},
        )
    with db.transaction() as s, s.begin():
        problems = verify(s)
    assert problems == [
        Problem(
            BROKEN_LINK,
            3,
            entries[2].id,
            f"prev_hash {entries[1].hash} is not the hash of entry 2 ({forged})",
        )
    ]


def test_a_deleted_entry_is_reported(db: Database) -> None:
    entries = fill(db, 5)
    with db.transaction() as s, s.begin():
        s.execute(text("DELETE FROM audit_log WHERE seq = 2"))
    with db.transaction() as s, s.begin():
        assert verify(s) == [Problem(BROKEN_LINK, 3, entries[2].id, "entry 2 is missing")]
    with db.transaction() as s, s.begin():
        s.execute(text("DELETE FROM audit_log WHERE seq IN (1, 4)"))
    with db.transaction() as s, s.begin():
        assert verify(s) == [
            Problem(BROKEN_LINK, 3, entries[2].id, "entries 1..2 are missing"),
            Problem(BROKEN_LINK, 5, entries[4].id, "entry 4 is missing"),
        ]


def test_reordered_entries_are_reported(db: Database) -> None:
    entries = fill(db, 4)
    with db.transaction() as s, s.begin():
        # Swap entries 2 and 3 (through a free number, the column is unique).
        s.execute(text("UPDATE audit_log SET seq = 1000 WHERE seq = 2"))
        s.execute(text("UPDATE audit_log SET seq = 2 WHERE seq = 3"))
        s.execute(text("UPDATE audit_log SET seq = 3 WHERE seq = 1000"))
    with db.transaction() as s, s.begin():
        problems = verify(s)
    assert [(p.kind, p.seq, p.entry_id) for p in problems] == [
        (ALTERED, 2, entries[2].id),
        (BROKEN_LINK, 2, entries[2].id),
        (ALTERED, 3, entries[1].id),
        (BROKEN_LINK, 3, entries[1].id),
        (BROKEN_LINK, 4, entries[3].id),
    ]


def test_the_cli(db: Database, database_url: str, tmp_path: Path) -> None:
    entries = fill(db, 3)
    env = {"CALLCENTER_DATABASE_URL": database_url}
    result = run_cli("audit", "verify", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f"ok: the chain is intact; 3 entries, head 3 {entries[2].hash}"]

    with db.transaction() as s, s.begin():
        s.execute(text("UPDATE audit_log SET actor = 'lain' WHERE seq = 1"))
        s.execute(text("DELETE FROM audit_log WHERE seq = 2"))
    result = run_cli("audit", "verify", cwd=tmp_path, env=env)
    assert result.returncode == 1, result.stderr
    assert result.stdout.splitlines() == [
        f"entry 1 (id {entries[0].id}): altered: hash {entries[0].hash} does not match its content",
        f"entry 3 (id {entries[2].id}): broken_link: entry 2 is missing",
        f"FAILED: 2 problem(s); 2 entries, head 3 {entries[2].hash}",
    ]

    result = run_cli("audit", "verify", "--json", cwd=tmp_path, env=env)
    assert result.returncode == 1, result.stderr
    assert json.loads(result.stdout) == {
        "ok": False,
        "entries": 2,
        "head": {"seq": 3, "hash": entries[2].hash},
        "problems": [
            {
                "kind": "altered",
                "seq": 1,
                "id": entries[0].id,
                "message": f"hash {entries[0].hash} does not match its content",
            },
            {"kind": "broken_link", "seq": 3, "id": entries[2].id, "message": "entry 2 is missing"},
        ],
    }
