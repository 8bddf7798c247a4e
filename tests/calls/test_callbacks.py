"""The callback list of dropped and abandoned 112 calls, on SQLite and PostgreSQL: replays,
attempts, outcomes, the transition rules and who may do what."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TypeVar

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from callcenter.auth import service as auth
from callcenter.auth.actor import Actor
from callcenter.calls import callbacks
from callcenter.calls.callbacks import (
    CANCELLED,
    FAILED,
    NO_ANSWER,
    REACHED,
    WAITING,
    IllegalCallbackMove,
    add_callback,
    check_start,
    get_callback,
    next_status,
    open_callbacks,
    record_outcome,
    start_attempt,
)
from callcenter.calls.models import Callback
from callcenter.calls.records import CallRecord
from callcenter.dispatch.seed import seed_directory
from callcenter.errors import Conflict, Forbidden, InvalidInput, NotFound
from callcenter.storage.database import Database

T = TypeVar("T")

# Monday 23 November 2026, 09:00 in Jakarta.
NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
CALLER = "081234567890"


@pytest.fixture
def people(db: Database) -> dict[str, Actor]:
    with db.transaction() as s, s.begin():
        seed_directory(s)
        users = {
            "agent": auth.create_user(s, "ani", "password-agent", "agent"),
            "agent2": auth.create_user(s, "eko", "password-agent", "agent"),
            "supervisor": auth.create_user(s, "sri", "password-super", "supervisor"),
            "auditor": auth.create_user(s, "adi", "password-audit", "auditor"),
            "pupr": auth.create_user(s, "budi", "password-pupr1", "opd-operator", "PUPR"),
        }
        return {key: auth.actor_of(user) for key, user in users.items()}


def run(db: Database, work: Callable[[Session], T]) -> T:
    with db.transaction() as s, s.begin():
        return work(s)


def dropped_call(
    db: Database, linkedid: str = "1700000000.1", number: str = CALLER, at: datetime = NOW
) -> int:
    """A 112 call the call log has written, abandoned in the queue; returns its callback id."""

    def work(s: Session) -> int:
        s.add(CallRecord(system_name="pbx1", linkedid=linkedid, caller_number=number, service="112",
                         queue="q112", started_at=at, ivr={}))  # fmt: skip
        s.flush()
        callback, created = add_callback(s, "pbx1", linkedid, "abandoned", at)
        assert created
        return callback.id

    return run(db, work)


def state(db: Database, callback_id: int) -> tuple[str, int, bool, str, str]:
    cb = run(db, lambda s: get_callback(s, callback_id))
    return cb.status, cb.attempts, cb.attempt_open, cb.last_outcome, cb.last_note


# ---- the pure rules --------------------------------------------------------------------------


def test_transition_table() -> None:
    assert dict(callbacks.TRANSITIONS) == {
        ("menunggu", "dihubungi"): "dihubungi",
        ("menunggu", "tidak_diangkat"): "menunggu",
        ("menunggu", "gagal"): "gagal",
        ("menunggu", "batal"): "batal",
    }
    assert callbacks.STATUSES == ("menunggu", "dihubungi", "gagal", "batal")
    assert callbacks.OUTCOMES == ("dihubungi", "tidak_diangkat", "gagal", "batal")


@pytest.mark.parametrize(
    ("status", "outcome", "attempt_open", "attempts", "expected"),
    [
        (WAITING, REACHED, True, 1, REACHED),
        (WAITING, NO_ANSWER, True, 1, WAITING),
        (WAITING, NO_ANSWER, True, 2, WAITING),
        (WAITING, NO_ANSWER, True, 3, FAILED),  # the third unanswered try ends it
        (WAITING, FAILED, False, 0, FAILED),
        (WAITING, FAILED, True, 1, FAILED),
        (WAITING, CANCELLED, False, 0, CANCELLED),
        (WAITING, CANCELLED, True, 2, CANCELLED),
    ],
)
def test_next_status(status: str, outcome: str, attempt_open: bool, attempts: int, expected: str) -> None:
    assert next_status(status, outcome, attempt_open=attempt_open, attempts=attempts) == expected


@pytest.mark.parametrize(
    ("status", "outcome", "attempt_open", "message"),
    [
        (WAITING, REACHED, False, "'dihubungi' reports on a call: start an attempt first"),
        (WAITING, NO_ANSWER, False, "'tidak_diangkat' reports on a call: start an attempt first"),
        (
            REACHED,
            CANCELLED,
            False,
            "the callback is 'dihubungi', which is closed; no outcome can be recorded",
        ),
        (FAILED, REACHED, True, "the callback is 'gagal', which is closed; no outcome can be recorded"),
        (CANCELLED, NO_ANSWER, True, "the callback is 'batal', which is closed; no outcome can be recorded"),
    ],
)
def test_illegal_outcomes(status: str, outcome: str, attempt_open: bool, message: str) -> None:
    with pytest.raises(IllegalCallbackMove) as caught:
        next_status(status, outcome, attempt_open=attempt_open, attempts=1)
    assert str(caught.value) == message
    assert isinstance(caught.value, Conflict)


def test_unknown_outcome_is_invalid_input() -> None:
    with pytest.raises(InvalidInput) as caught:
        next_status(WAITING, "selesai", attempt_open=True, attempts=1)
    assert caught.value.field == "outcome"
    assert caught.value.message == "must be one of dihubungi, tidak_diangkat, gagal, batal"


def test_max_attempts_is_a_parameter() -> None:
    assert next_status(WAITING, NO_ANSWER, attempt_open=True, attempts=3, max_attempts=5) == WAITING
    assert next_status(WAITING, NO_ANSWER, attempt_open=True, attempts=1, max_attempts=1) == FAILED


def test_check_start() -> None:
    check_start(WAITING, attempt_open=False, placed_at=None, now=NOW)
    # An attempt left open for 10 minutes (a console that died) may be taken over.
    check_start(WAITING, attempt_open=True, placed_at=NOW - timedelta(minutes=10), now=NOW)
    with pytest.raises(IllegalCallbackMove, match=r"being called already \(since 2026-11-23T01:55:00"):
        check_start(WAITING, attempt_open=True, placed_at=NOW - timedelta(minutes=5), now=NOW)
    for closed in (REACHED, FAILED, CANCELLED):
        with pytest.raises(IllegalCallbackMove, match=f"the callback is '{closed}'; only a 'menunggu'"):
            check_start(closed, attempt_open=False, placed_at=None, now=NOW)


# ---- the list --------------------------------------------------------------------------------


def test_abandoned_call_lands_on_the_list(db: Database) -> None:
    callback_id = dropped_call(db)
    cb = run(db, lambda s: get_callback(s, callback_id))
    call = run(db, lambda s: s.scalars(select(CallRecord)).one())
    assert (cb.call_id, cb.number, cb.queue, cb.reason, cb.status) == (
        call.id,
        CALLER,
        "q112",
        "abandoned",
        WAITING,
    )
    assert (cb.created_at, cb.updated_at, cb.attempts, cb.attempt_open) == (NOW, NOW, 0, False)
    assert (cb.placed_by_id, cb.placed_at, cb.last_outcome, cb.closed_at) == (None, None, "", None)
    assert [c.id for c in run(db, open_callbacks)] == [callback_id]


def test_a_replayed_call_makes_no_second_entry(db: Database) -> None:
    callback_id = dropped_call(db)
    for reason in ("abandoned", "dropped"):
        replay = partial(
            add_callback,
            system_name="pbx1",
            linkedid="1700000000.1",
            reason=reason,
            now=NOW + timedelta(seconds=5),
        )
        again, created = run(db, replay)
        assert (again.id, again.reason, again.created_at, created) == (callback_id, "abandoned", NOW, False)
    assert run(db, lambda s: s.scalar(select(func.count()).select_from(Callback))) == 1


def test_a_call_not_yet_logged_gets_its_row(db: Database) -> None:
    # The AMI consumer may see the abandon before the call log has written the call.
    cb, created = run(
        db, lambda s: add_callback(s, "pbx2", "L9", "dropped", NOW, number="+6281299990000", queue="q112")
    )
    call = run(db, lambda s: s.scalars(select(CallRecord)).one())
    assert created
    assert (call.system_name, call.linkedid, call.caller_number) == ("pbx2", "L9", "+6281299990000")
    assert (cb.call_id, cb.number, cb.queue, cb.reason) == (call.id, "+6281299990000", "q112", "dropped")


def test_same_linkedid_on_two_systems_are_two_calls(db: Database) -> None:
    one, _ = run(db, lambda s: add_callback(s, "pbx1", "L1", "abandoned", NOW, number=CALLER))
    two, _ = run(db, lambda s: add_callback(s, "pbx2", "L1", "abandoned", NOW, number=CALLER))
    assert one.id != two.id
    assert one.call_id != two.call_id


def test_concurrent_replays_make_one_entry(db: Database) -> None:
    barrier = threading.Barrier(4)
    results: list[tuple[int, bool]] = []
    errors: list[BaseException] = []

    def replay() -> None:
        try:
            barrier.wait()
            cb, created = run(db, lambda s: add_callback(s, "pbx1", "L1", "abandoned", NOW, number=CALLER))
            results.append((cb.id, created))
        except BaseException as exc:  # surfaced below; a thread cannot fail the test itself
            errors.append(exc)

    threads = [threading.Thread(target=replay) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert len({cb_id for cb_id, _ in results}) == 1
    assert sorted(created for _, created in results) == [False, False, False, True]


@pytest.mark.parametrize(
    ("kwargs", "field", "message"),
    [
        ({"reason": "hangup"}, "reason", "must be one of abandoned, dropped"),
        ({"reason": "<b>abandoned</b>"}, "reason", "must be one of abandoned, dropped"),
        ({"number": "' OR 1=1 --"}, "number", "use 1-32 digits with an optional leading +"),
        ({"number": "<script>0812</script>"}, "number", "use 1-32 digits with an optional leading +"),
        ({"queue": "q" * 41}, "queue", "is longer than 40 characters"),
        ({"system_name": ""}, "system_name", "use 1-40 characters"),
        ({"linkedid": "x" * 81}, "linkedid", "use 1-80 characters"),
    ],
)
def test_bad_input_is_refused(db: Database, kwargs: dict[str, str], field: str, message: str) -> None:
    args = {"system_name": "pbx1", "linkedid": "L1", "reason": "abandoned", "number": CALLER, "queue": ""}
    args.update(kwargs)
    with pytest.raises(InvalidInput) as caught:
        run(
            db,
            lambda s: add_callback(s, args["system_name"], args["linkedid"], args["reason"], NOW,
                                   number=args["number"], queue=args["queue"]),
        )  # fmt: skip
    assert (caught.value.field, caught.value.message) == (field, message)
    assert run(db, lambda s: s.scalar(select(func.count()).select_from(Callback))) == 0


def test_a_withheld_number_cannot_be_called_back(db: Database) -> None:
    with pytest.raises(InvalidInput, match="number: use 1-32 digits"):
        dropped_call(db, number="anonymous")
    # The whole unit of work was undone: no half-made call row either.
    assert run(db, lambda s: s.scalar(select(func.count()).select_from(CallRecord))) == 0


def test_open_callbacks_oldest_first_and_only_waiting(db: Database, people: dict[str, Actor]) -> None:
    newer = dropped_call(db, "L2", "0811", NOW + timedelta(minutes=5))
    older = dropped_call(db, "L1", "0822", NOW)
    closed = dropped_call(db, "L3", "0833", NOW - timedelta(minutes=5))
    run(db, lambda s: record_outcome(s, closed, CANCELLED, people["supervisor"], NOW, "sudah ditangani"))
    assert [c.id for c in run(db, open_callbacks)] == [older, newer]


# ---- attempts and outcomes -------------------------------------------------------------------


def test_reached_on_the_first_try(db: Database, people: dict[str, Actor]) -> None:
    callback_id = dropped_call(db)
    at = NOW + timedelta(minutes=2)
    started = run(db, lambda s: start_attempt(s, callback_id, people["agent"], at))
    assert (started.attempts, started.attempt_open, started.placed_by_id, started.placed_at) == (
        1,
        True,
        people["agent"].user_id,
        at,
    )
    done_at = at + timedelta(minutes=4)
    done = run(
        db, lambda s: record_outcome(s, callback_id, REACHED, people["agent"], done_at, " aman, salah tekan ")
    )
    assert (done.status, done.last_outcome, done.last_note, done.attempt_open) == (
        REACHED,
        REACHED,
        "aman, salah tekan",
        False,
    )
    assert (done.outcome_by_id, done.closed_at, done.updated_at) == (
        people["agent"].user_id,
        done_at,
        done_at,
    )
    assert run(db, open_callbacks) == []
    with pytest.raises(IllegalCallbackMove, match="the callback is 'dihubungi'; only a 'menunggu'"):
        run(db, lambda s: start_attempt(s, callback_id, people["agent"], done_at))
    with pytest.raises(IllegalCallbackMove, match="'dihubungi', which is closed"):
        run(db, lambda s: record_outcome(s, callback_id, CANCELLED, people["supervisor"], done_at))


def test_three_unanswered_tries_give_up(db: Database, people: dict[str, Actor]) -> None:
    callback_id = dropped_call(db)
    at = NOW
    for attempt in (1, 2):
        at += timedelta(minutes=5)
        run(db, partial(start_attempt, callback_id=callback_id, actor=people["agent"], now=at))
        no_answer = partial(
            record_outcome, callback_id=callback_id, outcome=NO_ANSWER, actor=people["agent"], now=at,
            note="tidak diangkat",
        )  # fmt: skip
        run(db, no_answer)
        assert state(db, callback_id) == (WAITING, attempt, False, NO_ANSWER, "tidak diangkat")
    assert [c.id for c in run(db, open_callbacks)] == [callback_id]
    at += timedelta(minutes=5)
    run(db, lambda s: start_attempt(s, callback_id, people["agent2"], at))
    last = run(db, lambda s: record_outcome(s, callback_id, NO_ANSWER, people["agent2"], at, "nada sibuk"))
    assert state(db, callback_id) == (FAILED, 3, False, NO_ANSWER, "nada sibuk")
    assert (last.closed_at, last.placed_by_id) == (at, people["agent2"].user_id)
    assert run(db, open_callbacks) == []


def test_outcome_of_a_call_needs_an_attempt(db: Database, people: dict[str, Actor]) -> None:
    callback_id = dropped_call(db)
    for outcome in (REACHED, NO_ANSWER):
        with pytest.raises(
            IllegalCallbackMove, match=f"'{outcome}' reports on a call: start an attempt first"
        ):
            run(
                db,
                partial(
                    record_outcome, callback_id=callback_id, outcome=outcome, actor=people["agent"], now=NOW
                ),
            )
    assert state(db, callback_id) == (WAITING, 0, False, "", "")
    # Giving up needs no call (the number is known to be out of service, say).
    failed = run(
        db, lambda s: record_outcome(s, callback_id, FAILED, people["supervisor"], NOW, "nomor tidak aktif")
    )
    assert (failed.status, failed.attempts, failed.closed_at) == (FAILED, 0, NOW)


def test_one_attempt_at_a_time(db: Database, people: dict[str, Actor]) -> None:
    callback_id = dropped_call(db)
    run(db, lambda s: start_attempt(s, callback_id, people["agent"], NOW))
    with pytest.raises(IllegalCallbackMove, match=r"being called already \(since 2026-11-23T02:00:00"):
        run(db, lambda s: start_attempt(s, callback_id, people["agent2"], NOW + timedelta(minutes=1)))
    assert state(db, callback_id)[:3] == (WAITING, 1, True)
    # Ten minutes on, the first console is presumed gone and the attempt can be taken over.
    later = NOW + timedelta(minutes=10)
    taken = run(db, lambda s: start_attempt(s, callback_id, people["agent2"], later))
    assert (taken.attempts, taken.placed_by_id, taken.placed_at) == (2, people["agent2"].user_id, later)


def test_cancel_during_an_attempt_closes_it(db: Database, people: dict[str, Actor]) -> None:
    callback_id = dropped_call(db)
    run(db, lambda s: start_attempt(s, callback_id, people["agent"], NOW))
    run(
        db,
        lambda s: record_outcome(
            s, callback_id, CANCELLED, people["supervisor"], NOW, "penelepon menelepon lagi"
        ),
    )
    assert state(db, callback_id) == (CANCELLED, 1, False, CANCELLED, "penelepon menelepon lagi")


def test_outcome_input_is_checked(db: Database, people: dict[str, Actor]) -> None:
    callback_id = dropped_call(db)
    run(db, lambda s: start_attempt(s, callback_id, people["agent"], NOW))
    with pytest.raises(InvalidInput, match="outcome: must be one of dihubungi, tidak_diangkat, gagal, batal"):
        run(db, lambda s: record_outcome(s, callback_id, "'; DROP TABLE callbacks; --", people["agent"], NOW))
    with pytest.raises(InvalidInput, match="note: is longer than 1000 characters"):
        run(db, lambda s: record_outcome(s, callback_id, REACHED, people["agent"], NOW, "x" * 1001))
    with pytest.raises(NotFound, match="callback 999 not found"):
        run(db, lambda s: record_outcome(s, 999, REACHED, people["agent"], NOW))
    with pytest.raises(NotFound, match="callback 999 not found"):
        run(db, lambda s: start_attempt(s, 999, people["agent"], NOW))
    # Markup in a note is kept as text; the UI escapes it.
    note = "<script>alert(1)</script>"
    assert (
        run(db, lambda s: record_outcome(s, callback_id, REACHED, people["agent"], NOW, note)).last_note
        == note
    )


@pytest.mark.parametrize(("role", "may"), [("agent", True), ("supervisor", True),
                                           ("auditor", False), ("pupr", False)])  # fmt: skip
def test_who_may_call_back(db: Database, people: dict[str, Actor], role: str, may: bool) -> None:
    callback_id = dropped_call(db)
    actor = people[role]
    if may:
        run(db, lambda s: start_attempt(s, callback_id, actor, NOW))
        assert run(db, lambda s: record_outcome(s, callback_id, REACHED, actor, NOW)).status == REACHED
        return
    with pytest.raises(Forbidden, match=r"may not do this \(callback.place\)"):
        run(db, lambda s: start_attempt(s, callback_id, actor, NOW))
    with pytest.raises(Forbidden, match=r"may not do this \(callback.place\)"):
        run(db, lambda s: record_outcome(s, callback_id, CANCELLED, actor, NOW))
    assert state(db, callback_id) == (WAITING, 0, False, "", "")
