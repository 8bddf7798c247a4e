"""Append to the audit log and check its hash chain.

Every entry's ``hash`` is SHA-256 over a canonical serialization (a compact JSON array, in a fixed
order) of ``seq``, ``at`` (UTC, microseconds), ``actor``, ``action``, ``object_kind``,
``object_id``, ``detail`` (canonical JSON text) and ``prev_hash``; the first entry's
``prev_hash`` is :data:`GENESIS`. :func:`verify` recomputes every hash and follows every link:

- an entry edited in place no longer matches its hash;
- an entry edited *and* re-hashed breaks the link to the next entry;
- a deleted entry leaves a gap in ``seq`` and a link that points at nothing;
- entries swapped (their ``seq``) match neither their hashes nor their links.

What the chain alone cannot show is the newest entries removed, or the whole tail rewritten by
someone who knows the algorithm: keep :func:`head` somewhere else now and then (a report, a
ticket, a print-out) and compare.

Appends are serialized so the chain never forks: on PostgreSQL a transaction-scoped advisory lock
(held until the caller's transaction ends, so the entry commits before the next appender reads
the head), on SQLite the engine's ``BEGIN IMMEDIATE`` write lock. The unique ``seq`` (and
``hash``) is the last line of defence: a racing twin fails on the constraint instead of forking.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from callcenter.audit.models import AuditEntry
from callcenter.errors import InvalidInput

GENESIS = "0" * 64
# pg_advisory_xact_lock key for the audit chain: any constant unique within the engine.
ADVISORY_LOCK_KEY = 0x6363_6175_6469_74  # "ccaudit"

RECORDING_PLAY = "recording.play"
RECORDING_DOWNLOAD = "recording.download"
RECORDING_DELETE = "recording.delete"  # by retention
RECORDING_HOLD = "recording.hold"
RECORDING_RELEASE = "recording.release"
RECORDING_VERIFY = "recording.verify"  # an integrity check asked for from the recording page

_ACTION = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
_LIMITS = {"actor": 100, "action": 64, "object_kind": 32, "object_id": 64}
MAX_DETAIL = 20_000

Detail = Mapping[str, Any] | str | None


def canonical_detail(detail: Detail) -> str:
    """The detail as the one JSON text that is stored and hashed (keys sorted, no spaces)."""
    try:
        encoded = json.dumps(
            {} if detail is None else detail,
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
            allow_nan=False,
        )
    except (TypeError, ValueError) as exc:
        raise InvalidInput("detail", f"not JSON data: {exc}") from None
    if len(encoded) > MAX_DETAIL:
        raise InvalidInput("detail", f"longer than {MAX_DETAIL} characters")
    return encoded


def _at_text(at: datetime) -> str:
    if at.tzinfo is None:
        raise ValueError("naive datetime in the audit log")
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def entry_hash(
    seq: int,
    at: datetime,
    actor: str,
    action: str,
    object_kind: str,
    object_id: str,
    detail: str,
    prev_hash: str,
) -> str:
    fields = [seq, _at_text(at), actor, action, object_kind, object_id, detail, prev_hash]
    serialized = json.dumps(fields, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(serialized.encode("utf-8")).hexdigest()


def hash_of(entry: AuditEntry) -> str:
    """What ``entry.hash`` must be for the entry's fields as they are now."""
    return entry_hash(
        entry.seq,
        entry.at,
        entry.actor,
        entry.action,
        entry.object_kind,
        entry.object_id,
        entry.detail,
        entry.prev_hash,
    )


def _lock_chain(session: Session) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY})
    # SQLite: the engine's sessions begin with BEGIN IMMEDIATE, the database-wide write lock.


def append(
    session: Session,
    actor: str,
    action: str,
    object_kind: str,
    object_id: str | int,
    detail: Detail,
    now: datetime,
) -> AuditEntry:
    """Add one entry at the head of the chain, in the caller's transaction.

    The entry commits (or not) with whatever the caller did: a playback that was logged happened
    in the same transaction. Keep the transaction short after this: on PostgreSQL it holds the
    chain's lock until it ends.
    """
    values = {"actor": actor, "action": action, "object_kind": object_kind, "object_id": str(object_id)}
    for name, value in values.items():
        if not value or len(value) > _LIMITS[name]:
            raise InvalidInput(name, f"must be 1 to {_LIMITS[name]} characters")
    if not _ACTION.match(action):
        raise InvalidInput("action", f"{action!r} is not like 'recording.play'")
    detail_text = canonical_detail(detail)
    _at_text(now)  # refuses a naive time (astimezone would take it as local) before anything is written
    at = now.astimezone(UTC)
    _lock_chain(session)
    last = session.scalars(select(AuditEntry).order_by(AuditEntry.seq.desc()).limit(1)).first()
    seq = last.seq + 1 if last is not None else 1
    prev_hash = last.hash if last is not None else GENESIS
    entry = AuditEntry(
        seq=seq,
        at=at,
        actor=values["actor"],
        action=action,
        object_kind=values["object_kind"],
        object_id=values["object_id"],
        detail=detail_text,
        prev_hash=prev_hash,
        hash=entry_hash(
            seq,
            at,
            values["actor"],
            action,
            values["object_kind"],
            values["object_id"],
            detail_text,
            prev_hash,
        ),
    )
    session.add(entry)
    session.flush()
    return entry


ALTERED = "altered"
BROKEN_LINK = "broken_link"


@dataclass(frozen=True)
class Problem:
    kind: str  # altered | broken_link
    seq: int
    entry_id: int
    message: str

    def line(self) -> str:
        return f"entry {self.seq} (id {self.entry_id}): {self.kind}: {self.message}"

    def as_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "seq": self.seq, "id": self.entry_id, "message": self.message}


@dataclass(frozen=True)
class Head:
    """The newest entry: worth writing down elsewhere, to catch a removed or rewritten tail."""

    entries: int
    seq: int
    hash: str


def head(session: Session) -> Head:
    last = session.scalars(select(AuditEntry).order_by(AuditEntry.seq.desc()).limit(1)).first()
    entries = session.scalar(select(func.count()).select_from(AuditEntry)) or 0
    return Head(entries, last.seq, last.hash) if last is not None else Head(0, 0, GENESIS)


def verify(session: Session) -> list[Problem]:
    """Every entry whose hash does not match its fields, and every link that is broken."""
    problems: list[Problem] = []
    expected_seq, expected_prev = 1, GENESIS
    query = select(AuditEntry).order_by(AuditEntry.seq).execution_options(yield_per=1000)
    for entry in session.scalars(query):
        recomputed = hash_of(entry)
        if recomputed != entry.hash:
            problems.append(
                Problem(ALTERED, entry.seq, entry.id, f"hash {entry.hash} does not match its content")
            )
        if entry.seq != expected_seq:
            missing = (
                f"entry {expected_seq} is missing"
                if entry.seq == expected_seq + 1
                else f"entries {expected_seq}..{entry.seq - 1} are missing"
                if entry.seq > expected_seq
                else f"comes after entry {expected_seq - 1} with sequence {entry.seq}"
            )
            problems.append(Problem(BROKEN_LINK, entry.seq, entry.id, missing))
        elif entry.prev_hash != expected_prev:
            problems.append(
                Problem(
                    BROKEN_LINK,
                    entry.seq,
                    entry.id,
                    f"prev_hash {entry.prev_hash} is not the hash of entry {entry.seq - 1} ({expected_prev})",
                )
            )
        expected_seq, expected_prev = entry.seq + 1, entry.hash
    return problems


@dataclass(frozen=True)
class EntryFilter:
    """What an auditor asks of the log; every field optional, all must hold."""

    actor: str = ""
    action: str = ""
    object_kind: str = ""
    object_id: str = ""


def entries(session: Session, wanted: EntryFilter, *, limit: int, offset: int = 0) -> list[AuditEntry]:
    """Entries matching ``wanted``, newest first (by sequence)."""
    query = select(AuditEntry)
    for column, value in (
        (AuditEntry.actor, wanted.actor),
        (AuditEntry.action, wanted.action),
        (AuditEntry.object_kind, wanted.object_kind),
        (AuditEntry.object_id, wanted.object_id),
    ):
        if value:
            query = query.where(column == value)
    return list(session.scalars(query.order_by(AuditEntry.seq.desc()).limit(limit).offset(offset)))
