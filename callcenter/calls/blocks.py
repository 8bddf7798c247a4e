"""Prank and ghost calls on the 112 line: how an agent classifies a call, and blocks of prank
callers. Synchronous: callers run these in one database transaction (``Database.run``).

Classification codes (Indonesian, as agents say them; English labels in ``CLASSIFICATIONS``):

- ``darurat``   real emergency
- ``informasi`` information request or other non-emergency call
- ``iseng``     prank call
- ``hantu``     ghost / silent call: the line opens and nobody speaks

Prank and ghost calls are most of the traffic on Indonesian 112 lines; they are kept out of the
KPIs (``KPI_EXCLUDED``, ``counts_for_kpi``) so the scores measure the calls that mattered.

A block keeps a number from reaching an agent directly for a while (24 hours unless said
otherwise). It expires by time alone: ``active_block`` compares ``expires_at`` with ``now``, so no
job has to clear it. Blocking a number that is blocked already *replaces* the active block: the
old row is closed (``lifted_at`` set, ``replaced_by_id`` pointing at the new one) and the new
block carries the new reason and blocker, so there is never more than one active block per number
and the trail shows every decision. The replacement never shortens a block: its expiry is the later
of the old expiry and now + hours. To shorten, lift the block and block again.

A blocked caller is never silently dropped: the IVR (``ivr/blocking.py``) plays a warning, logs
the attempt with ``log_blocked_attempt`` and still offers a path to a human (key 9).
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from types import MappingProxyType

from sqlalchemy import ColumnElement, Select, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import QueryableAttribute, Session

from callcenter.auth.actor import Actor
from callcenter.auth.roles import Permission
from callcenter.calls.models import BlockedAttempt, CallClassification, CallerBlock
from callcenter.errors import Conflict, InvalidInput, NotFound
from callcenter.tickets.service import CallKey, ensure_call

DARURAT = "darurat"
INFORMASI = "informasi"
ISENG = "iseng"
HANTU = "hantu"
CLASSIFICATIONS: Mapping[str, str] = MappingProxyType(
    {
        DARURAT: "real emergency",
        INFORMASI: "information / non-emergency",
        ISENG: "prank call",
        HANTU: "ghost / silent call",
    }
)
# Calls with these classifications are left out of every KPI.
KPI_EXCLUDED = frozenset({ISENG, HANTU})

DEFAULT_BLOCK_HOURS = 24.0
MAX_BLOCK_HOURS = 24.0 * 366
MAX_REASON = 500
MAX_NOTE = 500
MAX_DIGITS = 32
# Digits with an optional leading '+': what Asterisk shows as CALLERID(num) for a real caller.
# Spaces, dashes, letters and anything else are refused rather than cleaned up, so the number an
# agent blocks is exactly the number the dialplan will look up.
_NUMBER = re.compile(rf"\+?[0-9]{{1,{MAX_DIGITS}}}")


# ---- caller numbers and call keys ------------------------------------------------------------


def normalize_number(raw: str) -> str:
    """The caller number in its stored form, or :class:`InvalidInput`. Surrounding whitespace is
    dropped; the value is never echoed back, since it is attacker input."""
    number = raw.strip() if isinstance(raw, str) else ""
    if not _NUMBER.fullmatch(number):
        raise InvalidInput("number", f"use 1-{MAX_DIGITS} digits with an optional leading +")
    return number


def check_call_key(system_name: str, linkedid: str) -> None:
    """A call key as ``calls`` stores it: both parts present and within their column sizes."""
    if not system_name or len(system_name) > 40:
        raise InvalidInput("system_name", "use 1-40 characters")
    if not linkedid or len(linkedid) > 80:
        raise InvalidInput("linkedid", "use 1-80 characters")


def _check_now(now: datetime) -> None:
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime")


def _text(field_name: str, value: str, limit: int, *, required: bool = False) -> str:
    value = value.strip()
    if required and not value:
        raise InvalidInput(field_name, "is required")
    if len(value) > limit:
        raise InvalidInput(field_name, f"is longer than {limit} characters")
    return value


# ---- classification --------------------------------------------------------------------------


def classify_call(
    session: Session,
    system_name: str,
    linkedid: str,
    code: str,
    actor: Actor,
    note: str = "",
    *,
    now: datetime,
) -> CallClassification:
    """Record what the call was; classifying again replaces the earlier judgement.

    The call row is created if the call log has not written it yet (an agent classifies while
    the call is still live), the same way a ticket made during a call does.
    """
    actor.require(Permission.CALL_CLASSIFY)
    _check_now(now)
    check_call_key(system_name, linkedid)
    if code not in CLASSIFICATIONS:
        raise InvalidInput("code", f"must be one of {', '.join(CLASSIFICATIONS)}")
    note = _text("note", note, MAX_NOTE)
    call = ensure_call(session, CallKey(system_name, linkedid), now)
    values = {"code": code, "note": note, "classified_by_id": actor.user_id, "classified_at": now}
    # An upsert, so two agents classifying the same call at once leave one row (the later one).
    session.execute(
        _insert(session)(CallClassification)
        .values(call_id=call.id, **values)
        .on_conflict_do_update(index_elements=["call_id"], set_=values)
    )
    return session.scalars(
        select(CallClassification)
        .where(CallClassification.call_id == call.id)
        .execution_options(populate_existing=True)
    ).one()


def classification_of(session: Session, call_id: int) -> CallClassification | None:
    return session.scalar(select(CallClassification).where(CallClassification.call_id == call_id))


def counts_for_kpi(call_id: QueryableAttribute[int] | ColumnElement[int]) -> ColumnElement[bool]:
    """A WHERE clause that keeps the calls that count for KPIs: unclassified calls and real
    emergencies and information calls, not prank or ghost calls. Pass the call id column of
    the query, e.g. ``select(CallRecord).where(counts_for_kpi(CallRecord.id))``."""
    excluded = select(CallClassification.call_id).where(CallClassification.code.in_(sorted(KPI_EXCLUDED)))
    return call_id.not_in(excluded)


# ---- blocks ----------------------------------------------------------------------------------


def block_caller(
    session: Session,
    number: str,
    reason: str,
    actor: Actor,
    now: datetime,
    hours: float = DEFAULT_BLOCK_HOURS,
) -> CallerBlock:
    """Block ``number`` for ``hours`` from ``now``; replaces an active block (see the module
    docstring) and returns the new block."""
    actor.require(Permission.CALLER_BLOCK)
    _check_now(now)
    number = normalize_number(number)
    reason = _text("reason", reason, MAX_REASON, required=True)
    if isinstance(hours, bool) or not isinstance(hours, (int, float)) or not math.isfinite(hours):
        raise InvalidInput("hours", "must be a number")
    if not 0 < hours <= MAX_BLOCK_HOURS:
        raise InvalidInput("hours", f"must be more than 0 and at most {MAX_BLOCK_HOURS:g}")
    _lock_number(session, number)
    current = session.scalar(_active(number, now).with_for_update())
    expires_at = now + timedelta(hours=hours)
    if current is not None:
        expires_at = max(expires_at, current.expires_at)
    block = CallerBlock(
        number=number,
        reason=reason,
        blocked_by_id=actor.user_id,
        created_at=now,
        expires_at=expires_at,
        lifted_at=None,
        lifted_by_id=None,
        replaced_by_id=None,
    )
    session.add(block)
    session.flush()
    if current is not None:
        current.lifted_at = now
        current.lifted_by_id = actor.user_id
        current.replaced_by_id = block.id
        session.flush()
    return block


def lift_block(session: Session, block_id: int, actor: Actor, now: datetime) -> CallerBlock:
    """End an active block before it expires."""
    actor.require(Permission.CALLER_BLOCK)
    _check_now(now)
    block = session.scalar(select(CallerBlock).where(CallerBlock.id == block_id).with_for_update())
    if block is None:
        raise NotFound(f"block {block_id} not found")
    if block.lifted_at is not None:
        raise Conflict(f"block {block_id} was already lifted at {block.lifted_at.isoformat()}")
    if block.expires_at <= now:
        raise Conflict(f"block {block_id} expired at {block.expires_at.isoformat()}; nothing to lift")
    block.lifted_at = now
    block.lifted_by_id = actor.user_id
    session.flush()
    return block


def active_block(session: Session, number: str, now: datetime) -> CallerBlock | None:
    """The block in force for ``number`` at ``now``, if any.

    A value that is not a valid number (``anonymous``, an empty caller ID, junk) cannot have been
    blocked, so it is simply not blocked: the dialplan's check never fails on odd caller IDs.
    """
    _check_now(now)
    try:
        number = normalize_number(number)
    except InvalidInput:
        return None
    return session.scalar(_active(number, now))


def list_blocks(
    session: Session, now: datetime, include_expired: bool = False, *, limit: int = 200
) -> list[CallerBlock]:
    """Blocks in force at ``now``, newest first; with ``include_expired`` also the expired,
    lifted and replaced ones (the whole trail)."""
    _check_now(now)
    query = select(CallerBlock)
    if not include_expired:
        query = query.where(
            CallerBlock.lifted_at.is_(None), CallerBlock.created_at <= now, CallerBlock.expires_at > now
        )
    query = query.order_by(CallerBlock.created_at.desc(), CallerBlock.id.desc()).limit(limit)
    return list(session.scalars(query))


def log_blocked_attempt(
    session: Session, block: CallerBlock, system_name: str, linkedid: str, now: datetime
) -> BlockedAttempt:
    """Note that a call from a blocked number came in. Once per call: a replayed request for the
    same (system, Linkedid) returns the entry made the first time."""
    _check_now(now)
    check_call_key(system_name, linkedid)
    session.execute(
        _insert(session)(BlockedAttempt)
        .values(number=block.number, system_name=system_name, linkedid=linkedid, at=now, block_id=block.id)
        .on_conflict_do_nothing()
    )
    return session.scalars(
        select(BlockedAttempt).where(
            BlockedAttempt.system_name == system_name, BlockedAttempt.linkedid == linkedid
        )
    ).one()


def blocked_attempts(session: Session, number: str, *, limit: int = 100) -> list[BlockedAttempt]:
    """The calls a number made while blocked, newest first (for the caller's history)."""
    number = normalize_number(number)
    return list(
        session.scalars(
            select(BlockedAttempt)
            .where(BlockedAttempt.number == number)
            .order_by(BlockedAttempt.at.desc(), BlockedAttempt.id.desc())
            .limit(limit)
        )
    )


def _active(number: str, now: datetime) -> Select[CallerBlock]:
    # At most one row matches (block_caller replaces); the order only makes that explicit.
    return (
        select(CallerBlock)
        .where(
            CallerBlock.number == number,
            CallerBlock.lifted_at.is_(None),
            CallerBlock.created_at <= now,
            CallerBlock.expires_at > now,
        )
        .order_by(CallerBlock.expires_at.desc(), CallerBlock.id.desc())
        .limit(1)
    )


def _lock_number(session: Session, number: str) -> None:
    """Serialise blocks of one number so two agents blocking it at once make one active block.

    SQLite transactions here start with BEGIN IMMEDIATE and are serial already. PostgreSQL takes
    a transaction-scoped advisory lock on a stable 64-bit hash of the number (a row lock cannot
    help: for a first block there is no row yet).
    """
    if session.get_bind().dialect.name != "postgresql":
        return
    digest = hashlib.blake2b(f"caller_blocks:{number}".encode(), digest_size=8).digest()
    key = int.from_bytes(digest, "big", signed=True)
    session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


def _insert(session: Session) -> type[postgresql.Insert] | type[sqlite.Insert]:
    return postgresql.Insert if session.get_bind().dialect.name == "postgresql" else sqlite.Insert
