"""Retention: the rule table with a fixed clock, then the job on a real database and real files."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from callcenter.audit.log import RECORDING_DELETE, RECORDING_HOLD, RECORDING_RELEASE
from callcenter.audit.log import verify as audit_verify
from callcenter.audit.models import AuditEntry
from callcenter.calls.records import CallRecord
from callcenter.errors import Conflict, InvalidInput, NotFound
from callcenter.recording.catalogue import catalogue
from callcenter.recording.closed import RecordingClosed
from callcenter.recording.integrity import check_recording
from callcenter.recording.models import Recording
from callcenter.recording.retention import (
    EXPIRED,
    KEPT_FOR_EVER,
    KEPT_IN_PERIOD,
    KEPT_ON_HOLD,
    KEPT_OPEN_TICKET,
    Candidate,
    Decision,
    RetentionJob,
    RetentionPolicy,
    apply_batch,
    choose,
    decide,
    lift_legal_hold,
    place_legal_hold,
)
from callcenter.settings import ConfigError, load_settings
from callcenter.storage.database import Database
from callcenter.tickets.models import Ticket, TicketCall
from tests.recording.kit import record

NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
POLICY = RetentionPolicy(days_112=365, days_hotline=180)


def candidate(service: str, age: timedelta, hold: bool = False, open_ticket: bool = False) -> Candidate:
    return Candidate(7, service, NOW - age, hold, open_ticket)


D = timedelta(days=1)


@pytest.mark.parametrize(
    ("service", "age", "hold", "open_ticket", "outcome"),
    [
        ("112", 364 * D, False, False, Decision(7, False, KEPT_IN_PERIOD, 365)),
        ("112", 365 * D - timedelta(microseconds=1), False, False, Decision(7, False, KEPT_IN_PERIOD, 365)),
        ("112", 365 * D, False, False, Decision(7, True, EXPIRED, 365)),
        ("112", 2000 * D, True, False, Decision(7, False, KEPT_ON_HOLD)),
        ("112", 2000 * D, False, True, Decision(7, False, KEPT_OPEN_TICKET)),
        ("112", 2000 * D, True, True, Decision(7, False, KEPT_ON_HOLD)),
        ("hotline", 179 * D, False, False, Decision(7, False, KEPT_IN_PERIOD, 180)),
        ("hotline", 180 * D, False, False, Decision(7, True, EXPIRED, 180)),
        ("hotline", 364 * D, False, True, Decision(7, False, KEPT_OPEN_TICKET)),
        # A callback, or a call whose service was never learned: the longer period.
        ("callback", 364 * D, False, False, Decision(7, False, KEPT_IN_PERIOD, 365)),
        ("callback", 365 * D, False, False, Decision(7, True, EXPIRED, 365)),
        ("", 200 * D, False, False, Decision(7, False, KEPT_IN_PERIOD, 365)),
        ("", 365 * D, False, False, Decision(7, True, EXPIRED, 365)),
    ],
)
def test_the_rule_table(
    service: str, age: timedelta, hold: bool, open_ticket: bool, outcome: Decision
) -> None:
    assert decide(candidate(service, age, hold, open_ticket), POLICY, NOW) == outcome


def test_zero_days_keeps_for_ever() -> None:
    policy = RetentionPolicy(days_112=0, days_hotline=180)
    assert policy.days_for("112") is None
    assert policy.days_for("hotline") == 180
    assert policy.days_for("callback") is None  # the longer period is "for ever"
    assert decide(candidate("112", 9000 * D), policy, NOW) == Decision(7, False, KEPT_FOR_EVER)
    assert decide(candidate("callback", 9000 * D), policy, NOW) == Decision(7, False, KEPT_FOR_EVER)
    assert decide(candidate("hotline", 180 * D), policy, NOW).delete


def test_choose_gives_the_expired_oldest_first() -> None:
    candidates = [
        Candidate(1, "112", NOW - 400 * D, False, False),
        Candidate(2, "hotline", NOW - 500 * D, False, False),
        Candidate(3, "hotline", NOW - 10 * D, False, False),
        Candidate(4, "112", NOW - 900 * D, True, False),
        Candidate(5, "hotline", NOW - 181 * D, False, False),
    ]
    assert [d.recording_id for d in choose(candidates, POLICY, NOW)] == [2, 1, 5]


def test_policy_from_settings(tmp_path: Path) -> None:
    settings = load_settings(environ={}, base_dir=tmp_path)
    assert RetentionPolicy.from_settings(settings) == RetentionPolicy(365, 180)
    assert settings.retention_check_interval == 3600.0
    custom = load_settings(
        environ={"CALLCENTER_RETENTION_DAYS_112": "730", "CALLCENTER_RETENTION_DAYS_HOTLINE": "0"},
        base_dir=tmp_path,
    )
    assert RetentionPolicy.from_settings(custom) == RetentionPolicy(730, 0)
    with pytest.raises(
        ConfigError, match="'retention_days_112' must be between 0 \\(keep for ever\\) and 36500"
    ):
        load_settings(environ={"CALLCENTER_RETENTION_DAYS_112": "-1"}, base_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"'retention_check_interval' .* must be positive"):
        load_settings(environ={"CALLCENTER_RETENTION_CHECK_INTERVAL": "0"}, base_dir=tmp_path)


# -- on a database, with files --------------------------------------------------------------


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def add_recording(
    db: Database, root: Path, n: int, service: str, age: timedelta
) -> tuple[int, RecordingClosed]:
    closed = record(root, f"pbx-17000000{n:02d}.0", seconds=0.1)
    with db.transaction() as s, s.begin():
        done = catalogue(s, closed, check_recording(closed, root), NOW - age)
        call = s.get(CallRecord, done.call_id)
        assert call is not None
        call.service = service
    return done.recording_id, closed


def add_ticket(s: Session, n: int, status: str, origin_call_id: int | None) -> Ticket:
    ticket = Ticket(
        number=f"2026-{n:06d}", year=2026, seq=n, channel="112", status=status, summary="kebakaran",
        verify_by=NOW + 3 * D, origin_call_id=origin_call_id,
    )  # fmt: skip
    s.add(ticket)
    s.flush()
    return ticket


def call_of(db: Database, recording_id: int) -> int:
    with db.transaction() as s, s.begin():
        recording = s.get(Recording, recording_id)
        assert recording is not None
        return recording.call_id


def files_exist(closed: RecordingClosed) -> list[bool]:
    return [p.exists() for p in (closed.mixed, closed.caller_leg, closed.agent_leg)]


async def test_the_job_deletes_only_what_the_rule_allows(db: Database, tmp_path: Path) -> None:
    root = tmp_path / "recordings"
    old_112, old_112_files = add_recording(db, root, 1, "112", 400 * D)
    young_112, young_112_files = add_recording(db, root, 2, "112", 300 * D)
    old_hotline, old_hotline_files = add_recording(db, root, 3, "hotline", 200 * D)
    held, held_files = add_recording(db, root, 4, "112", 800 * D)
    origin_open, origin_open_files = add_recording(db, root, 5, "hotline", 700 * D)
    linked_open, linked_open_files = add_recording(db, root, 6, "112", 700 * D)
    closed_ticket, closed_ticket_files = add_recording(db, root, 7, "112", 700 * D)
    callback, callback_files = add_recording(db, root, 8, "callback", 200 * D)
    calls = {r: call_of(db, r) for r in (origin_open, linked_open, closed_ticket)}
    with db.transaction() as s, s.begin():
        place_legal_hold(s, held, "auditor1", "perkara 12/Pid/2026", NOW - 10 * D)
        add_ticket(s, 1, "menunggu", calls[origin_open])
        linked = add_ticket(s, 2, "diproses", None)
        s.add(TicketCall(ticket_id=linked.id, call_id=calls[linked_open]))
        done = add_ticket(s, 3, "selesai", calls[closed_ticket])
        s.add(TicketCall(ticket_id=done.id, call_id=calls[closed_ticket]))

    job = RetentionJob(db, POLICY, root, interval=3600, clock=Clock(NOW), batch_size=2)
    outcome = await job.run_once()
    assert (outcome.deleted, outcome.refused) == (3, ())

    for closed in (old_112_files, old_hotline_files, closed_ticket_files):
        assert files_exist(closed) == [False, False, False]
    for closed in (young_112_files, held_files, origin_open_files, linked_open_files, callback_files):
        assert files_exist(closed) == [True, True, True]
    with db.transaction() as s, s.begin():
        stamped = {r.id: r.deleted_at for r in s.scalars(select(Recording))}
        assert stamped == {
            old_112: NOW, young_112: None, old_hotline: NOW, held: None,
            origin_open: None, linked_open: None, closed_ticket: NOW, callback: None,
        }  # fmt: skip
        entries = list(s.scalars(select(AuditEntry).order_by(AuditEntry.seq)))
        assert [(e.actor, e.action, e.object_kind, e.object_id) for e in entries] == [
            ("auditor1", RECORDING_HOLD, "recording", str(held)),
            ("system:retention", RECORDING_DELETE, "recording", str(old_112)),
            ("system:retention", RECORDING_DELETE, "recording", str(old_hotline)),
            ("system:retention", RECORDING_DELETE, "recording", str(closed_ticket)),
        ]
        assert audit_verify(s) == []

    # Nothing more to do on the next run; a day later nothing new either.
    assert (await job.run_once()).deleted == 0
    job.clock = Clock(NOW + 65 * D)  # the young 112 call reaches 365 days
    assert (await job.run_once()).deleted == 1
    assert files_exist(young_112_files) == [False, False, False]


async def test_a_lifted_hold_lets_retention_apply(db: Database, tmp_path: Path) -> None:
    root = tmp_path / "recordings"
    held, files = add_recording(db, root, 1, "hotline", 400 * D)
    with db.transaction() as s, s.begin():
        place_legal_hold(s, held, "auditor1", "permintaan kejaksaan", NOW - D)
    job = RetentionJob(db, POLICY, root, interval=3600, clock=Clock(NOW))
    assert (await job.run_once()).deleted == 0
    with db.transaction() as s, s.begin():
        recording = lift_legal_hold(s, held, "admin", "perkara selesai", NOW)
        assert (recording.legal_hold, recording.legal_hold_by, recording.legal_hold_at) == (
            False,
            "auditor1",
            NOW - D,
        )
        assert recording.legal_hold_reason == "permintaan kejaksaan"
    assert (await job.run_once()).deleted == 1
    assert files_exist(files) == [False, False, False]
    with db.transaction() as s, s.begin():
        actions = [e.action for e in s.scalars(select(AuditEntry).order_by(AuditEntry.seq))]
        assert actions == [RECORDING_HOLD, RECORDING_RELEASE, RECORDING_DELETE]
        with pytest.raises(Conflict, match="was deleted by retention on 2026-11-23"):
            place_legal_hold(s, held, "auditor1", "terlambat", NOW)


def test_legal_hold_rules(db: Database, tmp_path: Path) -> None:
    recording_id, _ = add_recording(db, tmp_path / "recordings", 1, "112", D)
    with db.transaction() as s, s.begin():
        with pytest.raises(InvalidInput, match="reason"):
            place_legal_hold(s, recording_id, "auditor1", "   ", NOW)
        with pytest.raises(NotFound):
            place_legal_hold(s, recording_id + 100, "auditor1", "x", NOW)
        with pytest.raises(Conflict, match="is not on legal hold"):
            lift_legal_hold(s, recording_id, "auditor1", "x", NOW)
        place_legal_hold(s, recording_id, "auditor1", "x", NOW)
        with pytest.raises(Conflict, match=r"on legal hold already \(by auditor1\)"):
            place_legal_hold(s, recording_id, "auditor2", "y", NOW)


def test_files_outside_the_recordings_folder_are_never_deleted(db: Database, tmp_path: Path) -> None:
    root = tmp_path / "recordings"
    outside, files = add_recording(db, tmp_path / "elsewhere", 1, "112", 400 * D)
    inside, _ = add_recording(db, root, 2, "112", 400 * D)
    with db.transaction() as s, s.begin():
        batch = apply_batch(s, POLICY, root, NOW)
    assert batch.deleted == [inside]
    assert batch.refused == [(outside, f"refused: not inside the recordings folder {root}")]
    assert files_exist(files) == [True, True, True]
    with db.transaction() as s, s.begin():
        recording = s.get(Recording, outside)
        assert recording is not None and recording.deleted_at is None
