"""Call classification, prank-caller blocks and the blocked-attempt log, on SQLite and PostgreSQL;
plus the schema checks of migration 0002 (tables match the models, old users get defaults)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TypeVar

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.orm import Session

from callcenter.auth import service as auth
from callcenter.auth.actor import Actor
from callcenter.auth.models import User
from callcenter.calls.blocks import (
    CLASSIFICATIONS,
    DARURAT,
    HANTU,
    INFORMASI,
    ISENG,
    KPI_EXCLUDED,
    active_block,
    block_caller,
    blocked_attempts,
    classification_of,
    classify_call,
    counts_for_kpi,
    lift_block,
    list_blocks,
    log_blocked_attempt,
    normalize_number,
)
from callcenter.calls.models import BlockedAttempt, CallClassification, CallerBlock
from callcenter.calls.records import CallRecord
from callcenter.dispatch.seed import seed_directory
from callcenter.errors import Conflict, Forbidden, InvalidInput, NotFound
from callcenter.storage.database import Database
from callcenter.storage.migrate import alembic_config
from callcenter.storage.schema import metadata

T = TypeVar("T")

# Monday 23 November 2026, 09:00 in Jakarta.
NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
PRANKSTER = "+6281234567890"


@pytest.fixture
def people(db: Database) -> dict[str, Actor]:
    with db.transaction() as s, s.begin():
        seed_directory(s)
        users = {
            "agent": auth.create_user(s, "ani", "password-agent", "agent"),
            "supervisor": auth.create_user(s, "sri", "password-super", "supervisor"),
            "auditor": auth.create_user(s, "adi", "password-audit", "auditor"),
            "pupr": auth.create_user(s, "budi", "password-pupr1", "opd-operator", "PUPR"),
            "admin": auth.create_user(s, "root", "password-admin", "admin"),
        }
        return {key: auth.actor_of(user) for key, user in users.items()}


def run(db: Database, work: Callable[[Session], T]) -> T:
    with db.transaction() as s, s.begin():
        return work(s)


def block_rows(db: Database) -> list[tuple[int, str, datetime, datetime | None, int | None]]:
    return run(
        db,
        lambda s: [
            (b.id, b.reason, b.expires_at, b.lifted_at, b.replaced_by_id)
            for b in s.scalars(select(CallerBlock).order_by(CallerBlock.id))
        ],
    )


# ---- numbers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "stored"),
    [("+6281234567890", "+6281234567890"), ("081234567890", "081234567890"), (" 112 ", "112"), ("7", "7")],
)
def test_valid_numbers_are_kept_as_given(raw: str, stored: str) -> None:
    assert normalize_number(raw) == stored


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "+",
        "++6281",
        "62+81",
        "0812-3456",
        "0812 3456",
        "anonymous",
        "0812345678\n9",
        "08123\x00",
        "' OR 1=1 --",
        "0812'; DROP TABLE caller_blocks; --",
        "<script>alert(1)</script>",
        "\u0661\u0662\u0663",  # Arabic-Indic digits are digits to str.isdigit, not to us
        "\uff11\uff12\uff13",  # full-width digits
        "1" * 33,
    ],
)
def test_anything_but_digits_and_a_leading_plus_is_refused(raw: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        normalize_number(raw)
    assert caught.value.field == "number"
    assert caught.value.message == "use 1-32 digits with an optional leading +"


def test_the_longest_number_fits_its_column() -> None:
    assert normalize_number("+" + "9" * 32) == "+" + "9" * 32


# ---- classification --------------------------------------------------------------------------


def test_codes_and_kpi_exclusion() -> None:
    assert dict(CLASSIFICATIONS) == {
        "darurat": "real emergency",
        "informasi": "information / non-emergency",
        "iseng": "prank call",
        "hantu": "ghost / silent call",
    }
    assert (DARURAT, INFORMASI, ISENG, HANTU) == ("darurat", "informasi", "iseng", "hantu")
    assert frozenset({"iseng", "hantu"}) == KPI_EXCLUDED


def test_classify_records_who_and_when_and_replaces(db: Database, people: dict[str, Actor]) -> None:
    first = run(db, lambda s: classify_call(s, "pbx1", "1700000000.1", ISENG, people["agent"], now=NOW))
    assert (first.code, first.note, first.classified_by_id, first.classified_at) == (
        "iseng",
        "",
        people["agent"].user_id,
        NOW,
    )
    # The call row did not exist yet (the call is live): it is made, keyed like the call log.
    call = run(db, lambda s: s.scalars(select(CallRecord)).one())
    assert (call.system_name, call.linkedid, call.id) == ("pbx1", "1700000000.1", first.call_id)

    later = NOW + timedelta(minutes=3)
    second = run(
        db,
        lambda s: classify_call(
            s, "pbx1", "1700000000.1", DARURAT, people["supervisor"], "  ternyata kebakaran  ", now=later
        ),
    )
    assert (second.id, second.code, second.note) == (first.id, "darurat", "ternyata kebakaran")
    assert (second.classified_by_id, second.classified_at) == (people["supervisor"].user_id, later)
    assert run(db, lambda s: s.scalar(select(func.count()).select_from(CallClassification))) == 1
    found = run(db, lambda s: classification_of(s, call.id))
    assert found is not None and found.code == "darurat"


def test_classify_an_existing_call_keeps_its_row(db: Database, people: dict[str, Actor]) -> None:
    def existing(s: Session) -> int:
        call = CallRecord(system_name="pbx1", linkedid="L1", caller_number="0812", started_at=NOW, ivr={})
        s.add(call)
        s.flush()
        return call.id

    call_id = run(db, existing)
    made = run(db, lambda s: classify_call(s, "pbx1", "L1", HANTU, people["agent"], now=NOW))
    assert made.call_id == call_id
    assert run(db, lambda s: s.scalar(select(func.count()).select_from(CallRecord))) == 1


@pytest.mark.parametrize("code", ["spam", "ISENG", " iseng", "", "'; DROP TABLE calls; --", "<b>iseng</b>"])
def test_unknown_codes_are_refused(db: Database, people: dict[str, Actor], code: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        run(db, lambda s: classify_call(s, "pbx1", "L1", code, people["agent"], now=NOW))
    assert caught.value.field == "code"
    assert caught.value.message == "must be one of darurat, informasi, iseng, hantu"
    assert run(db, lambda s: s.scalar(select(func.count()).select_from(CallRecord))) == 0


def test_classification_input_is_checked(db: Database, people: dict[str, Actor]) -> None:
    agent = people["agent"]
    for system, linkedid, field in (("", "L1", "system_name"), ("p" * 41, "L1", "system_name"),
                                    ("pbx1", "", "linkedid"), ("pbx1", "x" * 81, "linkedid")):  # fmt: skip
        with pytest.raises(InvalidInput) as caught:
            run(
                db,
                partial(
                    classify_call, system_name=system, linkedid=linkedid, code=ISENG, actor=agent, now=NOW
                ),
            )
        assert caught.value.field == field
    with pytest.raises(InvalidInput, match="note: is longer than 500 characters"):
        run(db, lambda s: classify_call(s, "pbx1", "L1", ISENG, agent, "x" * 501, now=NOW))
    # HTML in a note is kept as text (the UI escapes it).
    stored = run(db, lambda s: classify_call(s, "pbx1", "L1", ISENG, agent, "<img src=x onerror=1>", now=NOW))
    assert stored.note == "<img src=x onerror=1>"


@pytest.mark.parametrize(("role", "may"), [("agent", True), ("supervisor", True), ("admin", True),
                                           ("auditor", False), ("pupr", False)])  # fmt: skip
def test_who_may_classify(db: Database, people: dict[str, Actor], role: str, may: bool) -> None:
    def classify(s: Session) -> CallClassification:
        return classify_call(s, "pbx1", "L1", ISENG, people[role], now=NOW)

    if may:
        assert run(db, classify).code == "iseng"
    else:
        with pytest.raises(Forbidden, match=r"may not do this \(call.classify\)"):
            run(db, classify)
        assert run(db, lambda s: s.scalar(select(func.count()).select_from(CallClassification))) == 0


def test_prank_and_ghost_calls_are_left_out_of_kpis(db: Database, people: dict[str, Actor]) -> None:
    def setup(s: Session) -> None:
        for linkedid in ("real", "info", "prank", "ghost", "unmarked"):
            s.add(CallRecord(system_name="pbx1", linkedid=linkedid, started_at=NOW, ivr={}))
        s.flush()
        for linkedid, code in (("real", DARURAT), ("info", INFORMASI), ("prank", ISENG), ("ghost", HANTU)):
            classify_call(s, "pbx1", linkedid, code, people["agent"], now=NOW)

    run(db, setup)
    counted = run(
        db,
        lambda s: sorted(s.scalars(select(CallRecord.linkedid).where(counts_for_kpi(CallRecord.id)))),
    )
    assert counted == ["info", "real", "unmarked"]
    # A prank call later found to be real counts again.
    run(db, lambda s: classify_call(s, "pbx1", "prank", DARURAT, people["supervisor"], now=NOW))
    assert run(db, lambda s: s.scalar(select(func.count()).where(counts_for_kpi(CallRecord.id)))) == 4


# ---- blocks ----------------------------------------------------------------------------------


def test_block_lasts_24_hours_and_expires_by_itself(db: Database, people: dict[str, Actor]) -> None:
    block = run(db, lambda s: block_caller(s, f" {PRANKSTER} ", "iseng 5x hari ini", people["agent"], NOW))
    assert (block.number, block.reason) == (PRANKSTER, "iseng 5x hari ini")
    assert block.blocked_by_id == people["agent"].user_id
    assert (block.created_at, block.expires_at) == (NOW, NOW + timedelta(hours=24))
    assert (block.lifted_at, block.lifted_by_id, block.replaced_by_id) == (None, None, None)

    def active_at(at: datetime) -> int | None:
        found = run(db, lambda s: active_block(s, PRANKSTER, at))
        return found.id if found else None

    assert active_at(NOW) == block.id
    assert active_at(NOW + timedelta(hours=23, minutes=59, seconds=59)) == block.id
    # At the expiry instant it is over; nothing had to run for that.
    assert active_at(NOW + timedelta(hours=24)) is None
    assert active_at(NOW + timedelta(days=3)) is None
    # Before it was placed it was not in force either (a replayed, older call is not blocked).
    assert active_at(NOW - timedelta(seconds=1)) is None
    assert run(db, lambda s: active_block(s, "081234567890", NOW)) is None  # another number


def test_block_duration_is_configurable(db: Database, people: dict[str, Actor]) -> None:
    short = run(db, lambda s: block_caller(s, "0811", "iseng", people["supervisor"], NOW, hours=2))
    week = run(db, lambda s: block_caller(s, "0822", "iseng berulang", people["supervisor"], NOW, hours=168))
    half = run(db, lambda s: block_caller(s, "0833", "iseng", people["supervisor"], NOW, hours=0.5))
    assert short.expires_at == NOW + timedelta(hours=2)
    assert week.expires_at == NOW + timedelta(days=7)
    assert half.expires_at == NOW + timedelta(minutes=30)
    assert run(db, lambda s: active_block(s, "0811", NOW + timedelta(hours=3))) is None
    assert run(db, lambda s: active_block(s, "0822", NOW + timedelta(hours=3))) is not None


@pytest.mark.parametrize(
    ("hours", "message"),
    [
        (0, "must be more than 0 and at most 8784"),
        (-1, "must be more than 0 and at most 8784"),
        (8785, "must be more than 0 and at most 8784"),
        (float("nan"), "must be a number"),
        (float("inf"), "must be a number"),
        (True, "must be a number"),
    ],
)
def test_bad_durations_are_refused(
    db: Database, people: dict[str, Actor], hours: float, message: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        run(db, lambda s: block_caller(s, PRANKSTER, "iseng", people["agent"], NOW, hours=hours))
    assert (caught.value.field, caught.value.message) == ("hours", message)
    assert block_rows(db) == []


def test_reason_is_required_and_stored_as_text(db: Database, people: dict[str, Actor]) -> None:
    for reason, message in (("", "is required"), ("   ", "is required"),
                            ("x" * 501, "is longer than 500 characters")):  # fmt: skip
        with pytest.raises(InvalidInput) as caught:
            run(db, partial(block_caller, number=PRANKSTER, reason=reason, actor=people["agent"], now=NOW))
        assert (caught.value.field, caught.value.message) == ("reason", message)
    nasty = "<script>alert('x')</script>'); DELETE FROM caller_blocks; --"
    block = run(db, lambda s: block_caller(s, PRANKSTER, nasty, people["agent"], NOW))
    assert block_rows(db) == [(block.id, nasty, NOW + timedelta(hours=24), None, None)]


@pytest.mark.parametrize("number", ["anonymous", "0812-3456", "' OR '1'='1", "<b>0812</b>", ""])
def test_bad_numbers_are_refused_when_blocking(db: Database, people: dict[str, Actor], number: str) -> None:
    with pytest.raises(InvalidInput, match="number: use 1-32 digits"):
        run(db, lambda s: block_caller(s, number, "iseng", people["agent"], NOW))
    assert block_rows(db) == []
    # Looking such a value up is not an error: it was never blocked.
    assert run(db, lambda s: active_block(s, number, NOW)) is None


def test_blocking_again_replaces_the_active_block(db: Database, people: dict[str, Actor]) -> None:
    first = run(db, lambda s: block_caller(s, PRANKSTER, "iseng", people["agent"], NOW))
    later = NOW + timedelta(hours=10)
    second = run(
        db, lambda s: block_caller(s, PRANKSTER, "iseng lagi", people["supervisor"], later, hours=48)
    )
    assert second.id != first.id
    assert (second.reason, second.blocked_by_id, second.created_at) == (
        "iseng lagi",
        people["supervisor"].user_id,
        later,
    )
    assert second.expires_at == later + timedelta(hours=48)
    # The first one is closed and points at its replacement: one active block, full trail.
    assert block_rows(db) == [
        (first.id, "iseng", NOW + timedelta(hours=24), later, second.id),
        (second.id, "iseng lagi", later + timedelta(hours=48), None, None),
    ]
    replaced = run(db, lambda s: s.get(CallerBlock, first.id))
    assert replaced is not None and replaced.lifted_by_id == people["supervisor"].user_id
    found = run(db, lambda s: active_block(s, PRANKSTER, later))
    assert found is not None and found.id == second.id
    assert [b.id for b in run(db, lambda s: list_blocks(s, later))] == [second.id]


def test_a_replacement_never_shortens_a_block(db: Database, people: dict[str, Actor]) -> None:
    week = run(
        db, lambda s: block_caller(s, PRANKSTER, "iseng berulang", people["supervisor"], NOW, hours=168)
    )
    later = NOW + timedelta(hours=1)
    day = run(db, lambda s: block_caller(s, PRANKSTER, "iseng", people["agent"], later))
    assert day.expires_at == week.expires_at == NOW + timedelta(days=7)
    assert run(db, lambda s: active_block(s, PRANKSTER, NOW + timedelta(days=6))) is not None


def test_blocking_after_expiry_starts_afresh(db: Database, people: dict[str, Actor]) -> None:
    first = run(db, lambda s: block_caller(s, PRANKSTER, "iseng", people["agent"], NOW))
    later = NOW + timedelta(days=2)
    second = run(db, lambda s: block_caller(s, PRANKSTER, "iseng lagi", people["agent"], later, hours=1))
    assert second.expires_at == later + timedelta(hours=1)
    # The expired block was not lifted or replaced: it ran out.
    assert block_rows(db) == [
        (first.id, "iseng", NOW + timedelta(hours=24), None, None),
        (second.id, "iseng lagi", later + timedelta(hours=1), None, None),
    ]


def test_lift_a_block(db: Database, people: dict[str, Actor]) -> None:
    block = run(db, lambda s: block_caller(s, PRANKSTER, "iseng", people["agent"], NOW))
    at = NOW + timedelta(hours=1)
    lifted = run(db, lambda s: lift_block(s, block.id, people["supervisor"], at))
    assert (lifted.lifted_at, lifted.lifted_by_id, lifted.replaced_by_id) == (
        at,
        people["supervisor"].user_id,
        None,
    )
    assert run(db, lambda s: active_block(s, PRANKSTER, at)) is None
    with pytest.raises(Conflict, match=f"block {block.id} was already lifted at 2026-11-23T03:00:00"):
        run(db, lambda s: lift_block(s, block.id, people["supervisor"], at + timedelta(minutes=1)))
    with pytest.raises(NotFound, match="block 999 not found"):
        run(db, lambda s: lift_block(s, 999, people["supervisor"], at))


def test_an_expired_block_cannot_be_lifted(db: Database, people: dict[str, Actor]) -> None:
    block = run(db, lambda s: block_caller(s, PRANKSTER, "iseng", people["agent"], NOW, hours=1))
    with pytest.raises(Conflict, match=f"block {block.id} expired at 2026-11-23T03:00:00.*nothing to lift"):
        run(db, lambda s: lift_block(s, block.id, people["agent"], NOW + timedelta(hours=1)))
    assert block_rows(db)[0][3] is None


@pytest.mark.parametrize(("role", "may"), [("agent", True), ("supervisor", True), ("admin", True),
                                           ("auditor", False), ("pupr", False)])  # fmt: skip
def test_who_may_block_and_lift(db: Database, people: dict[str, Actor], role: str, may: bool) -> None:
    actor = people[role]
    if not may:
        with pytest.raises(Forbidden, match=r"may not do this \(caller.block\)"):
            run(db, lambda s: block_caller(s, PRANKSTER, "iseng", actor, NOW))
        assert block_rows(db) == []
        block = run(db, lambda s: block_caller(s, PRANKSTER, "iseng", people["supervisor"], NOW))
        with pytest.raises(Forbidden, match=r"may not do this \(caller.block\)"):
            run(db, lambda s: lift_block(s, block.id, actor, NOW))
        assert run(db, lambda s: active_block(s, PRANKSTER, NOW)) is not None
        return
    block = run(db, lambda s: block_caller(s, PRANKSTER, "iseng", actor, NOW))
    assert block.blocked_by_id == actor.user_id
    assert run(db, lambda s: lift_block(s, block.id, actor, NOW)).lifted_by_id == actor.user_id


def test_list_blocks(db: Database, people: dict[str, Actor]) -> None:
    agent = people["agent"]
    old = run(db, lambda s: block_caller(s, "0811", "iseng", agent, NOW - timedelta(days=2)))
    lifted = run(db, lambda s: block_caller(s, "0822", "iseng", agent, NOW - timedelta(hours=2)))
    run(db, lambda s: lift_block(s, lifted.id, agent, NOW - timedelta(hours=1)))
    one = run(db, lambda s: block_caller(s, "0833", "iseng", agent, NOW - timedelta(hours=1)))
    two = run(db, lambda s: block_caller(s, "0844", "iseng", agent, NOW))
    assert [b.number for b in run(db, lambda s: list_blocks(s, NOW))] == ["0844", "0833"]
    assert [b.id for b in run(db, lambda s: list_blocks(s, NOW, include_expired=True))] == [
        two.id,
        one.id,
        lifted.id,
        old.id,
    ]
    # A day later only the newest is still in force.
    assert [b.id for b in run(db, lambda s: list_blocks(s, NOW + timedelta(hours=23, minutes=30)))] == [
        two.id
    ]
    assert run(db, lambda s: list_blocks(s, NOW + timedelta(days=1))) == []


def test_blocked_attempts_are_logged_once_per_call(db: Database, people: dict[str, Actor]) -> None:
    block = run(db, lambda s: block_caller(s, PRANKSTER, "iseng", people["agent"], NOW))
    at = NOW + timedelta(minutes=5)

    def attempt(system: str, linkedid: str, when: datetime) -> BlockedAttempt:
        def work(s: Session) -> BlockedAttempt:
            found = active_block(s, PRANKSTER, when)
            assert found is not None
            return log_blocked_attempt(s, found, system, linkedid, when)

        return run(db, work)

    first = attempt("pbx1", "1700000100.7", at)
    assert (first.number, first.system_name, first.linkedid, first.at, first.block_id) == (
        PRANKSTER,
        "pbx1",
        "1700000100.7",
        at,
        block.id,
    )
    # The same call replayed (AGI retried, engine restarted): the same entry.
    again = attempt("pbx1", "1700000100.7", at + timedelta(seconds=2))
    assert (again.id, again.at) == (first.id, at)
    # Another call, and the same Linkedid on another Asterisk: new entries.
    attempt("pbx1", "1700000200.9", at + timedelta(minutes=1))
    attempt("pbx2", "1700000100.7", at + timedelta(minutes=2))
    history = run(db, lambda s: blocked_attempts(s, f" {PRANKSTER}"))
    assert [(a.system_name, a.linkedid) for a in history] == [
        ("pbx2", "1700000100.7"),
        ("pbx1", "1700000200.9"),
        ("pbx1", "1700000100.7"),
    ]
    assert run(db, lambda s: blocked_attempts(s, "0811")) == []
    with pytest.raises(InvalidInput, match="linkedid: use 1-80 characters"):
        run(db, lambda s: log_blocked_attempt(s, block, "pbx1", "", at))


def test_two_agents_blocking_at_once_leave_one_active_block(db: Database, people: dict[str, Actor]) -> None:
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def agent_blocks(actor: Actor) -> None:
        try:
            barrier.wait()
            run(db, lambda s: block_caller(s, PRANKSTER, f"iseng ({actor.username})", actor, NOW))
        except BaseException as exc:  # surfaced below; a thread cannot fail the test itself
            errors.append(exc)

    threads = [
        threading.Thread(target=agent_blocks, args=(people[role],))
        for role in ("agent", "supervisor", "admin", "agent")
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    rows = block_rows(db)
    assert len(rows) == 4
    assert [r for r in rows if r[3] is None] == [rows[-1]]
    # Each replaced block points at the next one: a single chain.
    assert [r[4] for r in rows[:-1]] == [r[0] for r in rows[1:]]


def test_naive_now_is_a_programming_error(db: Database, people: dict[str, Actor]) -> None:
    naive = NOW.replace(tzinfo=None)
    with pytest.raises(ValueError, match="aware datetime"):
        run(db, lambda s: active_block(s, PRANKSTER, naive))
    with pytest.raises(ValueError, match="aware datetime"):
        run(db, lambda s: block_caller(s, PRANKSTER, "iseng", people["agent"], naive))


# ---- schema ----------------------------------------------------------------------------------


def test_migrations_match_the_models(db: Database) -> None:
    """What ``alembic revision --autogenerate`` would find: nothing, on either database."""
    assert db.engine is not None
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, metadata()) == []


def test_migration_0002_gives_existing_users_a_station_and_skills(database_url: str) -> None:
    config = alembic_config(database_url)
    command.upgrade(config, "0001")
    engine = create_engine(database_url)
    try:
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO users (username, display_name, role, password_hash, active, created_at) "
                    "VALUES ('lama', '', 'agent', 'x', true, :at)"
                ),
                {"at": NOW},
            )
        command.upgrade(config, "head")
        with Session(engine) as session:
            user = session.scalars(select(User).where(User.username == "lama")).one()
            assert (user.station, user.skills) == ("", [])
            user.station = "agent1"
            user.skills = ["q112", "hotline"]
            session.commit()
        with Session(engine) as session:
            user = session.scalars(select(User).where(User.username == "lama")).one()
            assert (user.station, user.skills) == ("agent1", ["q112", "hotline"])
        # And back: 0002 can be undone and redone.
        command.downgrade(config, "0001")
        with engine.connect() as connection:
            assert connection.execute(text("SELECT username FROM users")).scalars().all() == ["lama"]
        command.upgrade(config, "head")
    finally:
        engine.dispose()
