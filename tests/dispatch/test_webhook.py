"""Outbound signed webhooks against a real aiohttp receiver on 127.0.0.1.

The database is a fresh SQLite file; the tests marked with ``db_url`` also run on a fresh
PostgreSQL database when one answers on 127.0.0.1:5432 (skipped otherwise, failed under CI).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import logging
import secrets
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp import web
from sqlalchemy import create_engine, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from callcenter.dispatch.models import EXTERNAL, Agency, WebhookDelivery
from callcenter.dispatch.webhook import (
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    SOURCE_HEADER,
    TIMESTAMP_HEADER,
    WebhookSender,
    backoff,
    sign,
    verify,
)
from callcenter.storage.base import utcnow
from callcenter.storage.database import Database
from callcenter.storage.schema import metadata
from callcenter.tickets.models import Ticket
from tests.realparts import missing

SECRET = "kunci-rahasia-0123456789abcdef"
SOURCE = "kota-contoh"
PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
WAIT = 10.0  # seconds a test waits for something that should happen at once
_numbers = itertools.count(1)


# -- clock, receiver, database ------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2025, 3, 1, 8, 0, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class Seen:
    key: str
    body: bytes
    headers: dict[str, str]
    valid: bool


@dataclass
class Receiver:
    """The other instance: verifies signatures and de-duplicates on the Idempotency-Key."""

    clock: FakeClock | None
    secret: str = SECRET
    url: str = ""
    answers: list[int] = field(default_factory=list)  # statuses to answer in turn, then 200
    hang: bool = False
    seen: list[Seen] = field(default_factory=list)
    processed: dict[str, bytes] = field(default_factory=dict)  # one entry per logical delivery
    redirect_followed: int = 0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    got: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def now(self) -> datetime:
        return self.clock() if self.clock is not None else utcnow()

    async def hook(self, request: web.Request) -> web.Response:
        body = await request.read()
        headers = dict(request.headers)
        valid = verify(
            self.secret,
            request.headers.get(TIMESTAMP_HEADER, ""),
            body,
            request.headers.get(SIGNATURE_HEADER, ""),
            self.now(),
        )
        key = request.headers.get(IDEMPOTENCY_HEADER, "")
        self.seen.append(Seen(key, body, headers, valid))
        self.arrived.set()
        if not valid:
            self.got.set()
            return web.Response(status=401, text="bad signature")
        if self.hang:
            await self.release.wait()
        # Processed (stored) first, answered after: a lost or failed answer makes the sender
        # retry something already stored, which is exactly what de-duplication is for.
        self.processed.setdefault(key, body)
        status = self.answers.pop(0) if self.answers else 200
        self.got.set()
        return web.Response(status=status, text="diterima" if status < 300 else "field 'x' is invalid")

    async def moved(self, request: web.Request) -> web.Response:
        await request.read()
        self.got.set()
        raise web.HTTPFound("/followed")

    async def followed(self, request: web.Request) -> web.Response:
        self.redirect_followed += 1
        return web.Response(text="ok")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def receiver(clock: FakeClock) -> AsyncIterator[Receiver]:
    rx = Receiver(clock)
    app = web.Application()
    app.router.add_post("/hook", rx.hook)
    app.router.add_post("/moved", rx.moved)
    app.router.add_route("*", "/followed", rx.followed)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    rx.url = f"http://{host}:{port}/hook"
    try:
        yield rx
    finally:
        rx.release.set()
        await runner.cleanup()


def _create_tables(db: Database) -> Database:
    db.open()
    assert db.engine is not None
    metadata().create_all(db.engine)
    return db


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = _create_tables(Database(f"sqlite:///{tmp_path / 'cc.sqlite3'}"))
    yield database
    database.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL of an empty database: a SQLite file, or a fresh PostgreSQL database dropped after."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'cc.sqlite3'}"
        return
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})
    name = f"cc_test_{secrets.token_hex(6)}"
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except OperationalError as exc:
        admin.dispose()
        missing(f"PostgreSQL is not reachable at 127.0.0.1:5432: {str(exc.orig).strip()}")
    try:
        yield make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture
def any_db(db_url: str) -> Iterator[Database]:
    database = _create_tables(Database(db_url))
    yield database
    database.close()


async def add_agency(
    db: Database, url: str, *, secret: str | None = SECRET, active: bool = True
) -> tuple[int, str]:
    """An outside instance reached at ``url``; returns its id and the URL."""

    def work(session: Session) -> int:
        agency = Agency(
            code=f"EXT-{next(_numbers)}",
            name="Pemerintah Provinsi Contoh",
            kind=EXTERNAL,
            webhook_url=url,
            webhook_secret=secret,
            active=active,
        )
        session.add(agency)
        session.flush()
        return agency.id

    return await db.run(work), url


async def queue(
    db: Database, agency: tuple[int, str], count: int = 1, *, due: datetime | None = None
) -> list[int]:
    """A ticket and ``count`` deliveries of it to ``agency``, due at ``due`` (default: long ago)."""
    agency_id, url = agency

    def work(session: Session) -> list[int]:
        seq = next(_numbers)
        ticket = Ticket(
            number=f"2025-{seq:06d}",
            year=2025,
            seq=seq,
            channel="hotline",
            status="menunggu",
            summary="Banjir di Jl. Merdeka",
            verify_by=utcnow(),
        )
        session.add(ticket)
        session.flush()
        rows = []
        for i in range(count):
            # Odd spacing and non-ASCII text: the body must arrive byte for byte as stored.
            payload = f'{{"ticket": "{ticket.number}",  "n": {i}, "ringkasan":"Banjir — Jl. Merdeka ✓"}}'
            row = WebhookDelivery(
                idempotency_key=secrets.token_hex(16),
                ticket_id=ticket.id,
                agency_id=agency_id,
                url=url,
                payload=payload,
                next_attempt_at=due or datetime(2000, 1, 1, tzinfo=UTC),
            )
            session.add(row)
            rows.append(row)
        session.flush()
        return [row.id for row in rows]

    return await db.run(work)


async def load(db: Database, delivery_id: int) -> WebhookDelivery:
    def work(session: Session) -> WebhookDelivery:
        row = session.get(WebhookDelivery, delivery_id)
        assert row is not None
        return row

    return await db.run(work)


async def load_all(db: Database) -> list[WebhookDelivery]:
    def work(session: Session) -> list[WebhookDelivery]:
        return list(session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)))

    return await db.run(work)


@pytest.fixture
async def sender(db: Database, clock: FakeClock) -> AsyncIterator[WebhookSender]:
    s = WebhookSender(db, source=SOURCE, clock=clock, timeout=5.0)
    yield s
    await s.close()


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- signing ------------------------------------------------------------------------------

NOW = datetime(2025, 3, 1, 8, 0, 0, tzinfo=UTC)
TS = str(int(NOW.timestamp()))
BODY = '{"tiket":"2025-000001","teks":"Jalan rusak ✓"}'.encode()


def test_sign_is_hmac_sha256_over_timestamp_dot_body() -> None:
    expected = hmac.new(SECRET.encode(), TS.encode() + b"." + BODY, hashlib.sha256).hexdigest()
    assert sign(SECRET, TS, BODY) == "sha256=" + expected


def test_verify_accepts_a_good_signature_within_tolerance() -> None:
    signature = sign(SECRET, TS, BODY)
    assert verify(SECRET, TS, BODY, signature, NOW)
    assert verify(SECRET, TS, BODY, signature, NOW + timedelta(minutes=5))
    assert verify(SECRET, TS, BODY, signature, NOW - timedelta(minutes=5))


def test_verify_refuses_a_tampered_body() -> None:
    signature = sign(SECRET, TS, BODY)
    assert not verify(SECRET, TS, BODY.replace(b"rusak", b"bagus"), signature, NOW)
    assert not verify(SECRET, TS, BODY + b" ", signature, NOW)


def test_verify_refuses_a_wrong_secret() -> None:
    assert not verify(SECRET, TS, BODY, sign("another-secret", TS, BODY), NOW)


def test_verify_refuses_old_and_future_timestamps() -> None:
    old = str(int((NOW - timedelta(minutes=5, seconds=1)).timestamp()))
    future = str(int((NOW + timedelta(minutes=5, seconds=1)).timestamp()))
    assert not verify(SECRET, old, BODY, sign(SECRET, old, BODY), NOW)
    assert not verify(SECRET, future, BODY, sign(SECRET, future, BODY), NOW)
    assert verify(SECRET, old, BODY, sign(SECRET, old, BODY), NOW, tolerance=timedelta(minutes=10))


def test_verify_refuses_a_signature_moved_to_another_timestamp() -> None:
    later = str(int(NOW.timestamp()) + 1)
    assert not verify(SECRET, later, BODY, sign(SECRET, TS, BODY), NOW)


@pytest.mark.parametrize(
    ("secret", "timestamp", "signature"),
    [
        ("", TS, None),
        (SECRET, "", None),
        (SECRET, "abc", None),
        (SECRET, " " + TS, None),
        (SECRET, TS + ".0", None),
        (SECRET, "-" + TS, None),
        (SECRET, "1" * 5000, None),
        (SECRET, "١٧٤٠٨١٦٠٠٠", None),  # Arabic-Indic digits: str.isdigit() would say yes
        (SECRET, TS, ""),
        (SECRET, TS, "sha256="),
        (SECRET, TS, "sha256=" + "z" * 64),
        (SECRET, TS, "sha1=" + "0" * 64),
        (SECRET, TS, "SHA256=" + "0" * 64),
        (SECRET, TS, "sha256=é" + "0" * 63),
    ],
)
def test_verify_refuses_malformed_input_without_raising(
    secret: str, timestamp: str, signature: str | None
) -> None:
    good = sign(SECRET, TS, BODY)
    assert not verify(secret, timestamp, BODY, good if signature is None else signature, NOW)


def test_verify_refuses_wrong_types_without_raising() -> None:
    good = sign(SECRET, TS, BODY)
    assert not verify(SECRET, None, BODY, good, NOW)  # type: ignore[arg-type]
    assert not verify(SECRET, TS, BODY, None, NOW)  # type: ignore[arg-type]
    assert not verify(SECRET, TS, BODY.decode(), good, NOW)  # type: ignore[arg-type]


def test_verify_wants_an_aware_now() -> None:
    with pytest.raises(ValueError, match="aware"):
        verify(SECRET, TS, BODY, sign(SECRET, TS, BODY), NOW.replace(tzinfo=None))


def test_backoff_doubles_and_is_capped() -> None:
    assert [backoff(n, 2.0, 3600.0) for n in (1, 2, 3, 4)] == [2.0, 4.0, 8.0, 16.0]
    assert backoff(12, 2.0, 3600.0) == 3600.0
    assert backoff(10_000, 2.0, 3600.0) == 3600.0


# -- delivery -----------------------------------------------------------------------------


async def test_delivered_with_a_valid_signature_and_the_exact_payload(
    any_db: Database, clock: FakeClock, receiver: Receiver
) -> None:
    [delivery_id] = await queue(any_db, await add_agency(any_db, receiver.url))
    receiver.answers = [202]
    sender = WebhookSender(any_db, source=SOURCE, clock=clock)
    try:
        assert await sender.deliver_due() == 1
    finally:
        await sender.close()

    row = await load(any_db, delivery_id)
    [seen] = receiver.seen
    assert seen.valid
    assert seen.body == row.payload.encode("utf-8")
    assert seen.key == row.idempotency_key
    assert seen.headers[SOURCE_HEADER] == SOURCE
    assert seen.headers["Content-Type"] == "application/json"
    assert seen.headers["User-Agent"] == "callcenter-webhook/1"
    assert seen.headers[TIMESTAMP_HEADER] == str(int(clock.now.timestamp()))
    assert SECRET not in json.dumps(seen.headers)
    assert receiver.processed == {row.idempotency_key: row.payload.encode("utf-8")}
    assert (row.status, row.last_status_code, row.attempts) == ("delivered", 202, 1)
    assert row.delivered_at == clock.now
    assert row.last_error is None

    # Nothing is due any more: a second pass sends nothing.
    sender = WebhookSender(any_db, source=SOURCE, clock=clock)
    try:
        assert await sender.deliver_due() == 0
    finally:
        await sender.close()
    assert len(receiver.seen) == 1


async def test_retried_after_a_failure_with_the_same_idempotency_key(
    any_db: Database, clock: FakeClock, receiver: Receiver
) -> None:
    [delivery_id] = await queue(any_db, await add_agency(any_db, receiver.url))
    receiver.answers = [500, 200]
    sender = WebhookSender(any_db, source=SOURCE, clock=clock, base_delay=60.0)
    try:
        assert await sender.deliver_due() == 1
        row = await load(any_db, delivery_id)
        assert (row.status, row.attempts, row.last_status_code) == ("pending", 1, 500)
        assert row.last_error is not None and row.last_error.startswith("HTTP 500")
        # 60 s backoff with +-20% jitter.
        assert clock.now + timedelta(seconds=48) <= row.next_attempt_at <= clock.now + timedelta(seconds=72)

        # Not due yet: nothing happens.
        clock.advance(seconds=47)
        assert await sender.deliver_due() == 0
        assert len(receiver.seen) == 1

        clock.now = row.next_attempt_at + timedelta(seconds=1)
        assert await sender.deliver_due() == 1
    finally:
        await sender.close()

    row = await load(any_db, delivery_id)
    assert (row.status, row.attempts, row.last_status_code, row.last_error) == ("delivered", 2, 200, None)
    assert [seen.key for seen in receiver.seen] == [row.idempotency_key] * 2
    assert all(seen.valid for seen in receiver.seen)
    assert len(receiver.processed) == 1  # one logical delivery


async def test_two_senders_deliver_each_row_exactly_once(
    db_url: str, any_db: Database, clock: FakeClock, receiver: Receiver
) -> None:
    ids = await queue(any_db, await add_agency(any_db, receiver.url), count=12)
    # A second process: its own engine and connection pool on the same database.
    other_db = Database(db_url)
    other_db.open()
    senders = [
        WebhookSender(any_db, source=SOURCE, clock=clock, batch_size=3),
        WebhookSender(other_db, source=SOURCE, clock=clock, batch_size=3),
    ]

    async def drain(sender: WebhookSender) -> int:
        total = 0
        while sent := await sender.deliver_due():
            total += sent
        return total

    try:
        counts = await asyncio.gather(*(drain(s) for s in senders))
    finally:
        for s in senders:
            await s.close()
        other_db.close()

    rows = await load_all(any_db)
    assert [row.id for row in rows] == ids
    assert sum(counts) == len(ids)
    assert all(row.status == "delivered" and row.attempts == 1 for row in rows)
    keys = [seen.key for seen in receiver.seen]
    assert sorted(keys) == sorted(row.idempotency_key for row in rows)  # each key exactly once


async def test_two_senders_at_once_in_one_pass_each(
    db_url: str, any_db: Database, clock: FakeClock, receiver: Receiver
) -> None:
    """The plain race: both passes start together; the lease keeps them apart."""
    await queue(any_db, await add_agency(any_db, receiver.url), count=5)
    other_db = Database(db_url)
    other_db.open()
    senders = [
        WebhookSender(any_db, source=SOURCE, clock=clock),
        WebhookSender(other_db, source=SOURCE, clock=clock),
    ]
    try:
        counts = await asyncio.gather(*(s.deliver_due() for s in senders))
    finally:
        for s in senders:
            await s.close()
        other_db.close()
    assert sum(counts) == 5
    assert len(receiver.seen) == 5
    assert len({seen.key for seen in receiver.seen}) == 5


async def test_connection_refused_is_retried_later_and_logged_without_the_secret(
    db: Database, clock: FakeClock, sender: WebhookSender, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"http://127.0.0.1:{closed_port()}/hook"
    [delivery_id] = await queue(db, await add_agency(db, url))
    with caplog.at_level(logging.WARNING, logger="callcenter.dispatch.webhook"):
        assert await sender.deliver_due() == 1

    row = await load(db, delivery_id)
    assert (row.status, row.attempts, row.last_status_code) == ("pending", 1, None)
    assert row.last_error
    assert row.next_attempt_at > clock.now
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    message = warnings[0].getMessage()
    assert f"delivery {delivery_id}" in message and "127.0.0.1" in message
    assert SECRET not in caplog.text and SECRET not in row.last_error


async def test_a_password_in_the_url_stays_out_of_errors_and_logs(
    db: Database, sender: WebhookSender, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"http://user:hunter2-pass@127.0.0.1:{closed_port()}/hook"
    [delivery_id] = await queue(db, await add_agency(db, url))
    with caplog.at_level(logging.WARNING, logger="callcenter.dispatch.webhook"):
        await sender.deliver_due()
    row = await load(db, delivery_id)
    assert row.last_error and "hunter2-pass" not in row.last_error
    assert "hunter2-pass" not in caplog.text


async def test_a_permanent_4xx_fails_at_once(db: Database, sender: WebhookSender, receiver: Receiver) -> None:
    [delivery_id] = await queue(db, await add_agency(db, receiver.url))
    receiver.answers = [400]
    assert await sender.deliver_due() == 1
    row = await load(db, delivery_id)
    assert (row.status, row.attempts, row.last_status_code) == ("failed", 1, 400)
    assert row.last_error == "HTTP 400 Bad Request: field 'x' is invalid"


async def test_a_receiver_with_another_secret_refuses_and_the_row_fails(
    db: Database, sender: WebhookSender, receiver: Receiver
) -> None:
    [delivery_id] = await queue(db, await add_agency(db, receiver.url, secret="not-the-receivers-secret"))
    assert await sender.deliver_due() == 1
    assert [seen.valid for seen in receiver.seen] == [False]
    row = await load(db, delivery_id)
    assert (row.status, row.last_status_code) == ("failed", 401)
    assert receiver.processed == {}


@pytest.mark.parametrize("status", [408, 429, 503])
async def test_not_now_answers_are_retried(
    db: Database, sender: WebhookSender, receiver: Receiver, status: int
) -> None:
    [delivery_id] = await queue(db, await add_agency(db, receiver.url))
    receiver.answers = [status]
    await sender.deliver_due()
    row = await load(db, delivery_id)
    assert (row.status, row.attempts, row.last_status_code) == ("pending", 1, status)


async def test_failed_after_max_attempts(db: Database, clock: FakeClock, receiver: Receiver) -> None:
    [delivery_id] = await queue(db, await add_agency(db, receiver.url))
    receiver.answers = [500, 502, 503]
    sender = WebhookSender(db, source=SOURCE, clock=clock, max_attempts=3, base_delay=1.0, max_delay=5.0)
    try:
        for attempt in (1, 2):
            assert await sender.deliver_due() == 1
            row = await load(db, delivery_id)
            assert (row.status, row.attempts) == ("pending", attempt)
            clock.now = row.next_attempt_at
        assert await sender.deliver_due() == 1
        row = await load(db, delivery_id)
        assert (row.status, row.attempts, row.last_status_code) == ("failed", 3, 503)
        assert row.delivered_at is None

        clock.advance(days=30)
        assert await sender.deliver_due() == 0  # failed rows stay as the log, never resent
    finally:
        await sender.close()
    assert len(receiver.seen) == 3
    assert len({seen.key for seen in receiver.seen}) == 1


async def test_redirects_are_not_followed(db: Database, sender: WebhookSender, receiver: Receiver) -> None:
    [delivery_id] = await queue(db, await add_agency(db, receiver.url.replace("/hook", "/moved")))
    assert await sender.deliver_due() == 1
    assert receiver.redirect_followed == 0
    row = await load(db, delivery_id)
    assert (row.status, row.last_status_code) == ("pending", 302)
    assert row.last_error is not None and "not followed" in row.last_error


async def test_a_slow_receiver_times_out_and_is_retried(
    db: Database, clock: FakeClock, receiver: Receiver
) -> None:
    [delivery_id] = await queue(db, await add_agency(db, receiver.url))
    receiver.hang = True
    sender = WebhookSender(db, source=SOURCE, clock=clock, timeout=0.3)
    try:
        assert await asyncio.wait_for(sender.deliver_due(), WAIT) == 1
    finally:
        await sender.close()
    row = await load(db, delivery_id)
    assert (row.status, row.attempts, row.last_status_code) == ("pending", 1, None)
    assert row.last_error == "no answer within 0.3 s"


@pytest.mark.parametrize(
    ("secret", "active", "error"),
    [
        (None, True, "has no webhook secret"),
        ("", True, "has no webhook secret"),
        (SECRET, False, "is inactive"),
    ],
)
async def test_an_agency_without_a_secret_or_inactive_fails_without_sending(
    db: Database,
    sender: WebhookSender,
    receiver: Receiver,
    secret: str | None,
    active: bool,
    error: str,
) -> None:
    [delivery_id] = await queue(db, await add_agency(db, receiver.url, secret=secret, active=active))
    assert await sender.deliver_due() == 0
    assert receiver.seen == []
    row = await load(db, delivery_id)
    assert (row.status, row.attempts) == ("failed", 0)
    assert row.last_error is not None and error in row.last_error


async def test_a_non_http_url_fails_without_sending(db: Database, sender: WebhookSender) -> None:
    [delivery_id] = await queue(db, await add_agency(db, "ftp://127.0.0.1/hook"))
    assert await sender.deliver_due() == 0
    row = await load(db, delivery_id)
    assert row.status == "failed" and row.last_error is not None and "http" in row.last_error


async def test_a_claim_is_a_lease(db: Database, clock: FakeClock, receiver: Receiver) -> None:
    """A sender that dies mid-request leaves its row leased; another sends it after the lease."""
    [delivery_id] = await queue(db, await add_agency(db, receiver.url))
    receiver.hang = True
    dead = WebhookSender(db, source=SOURCE, clock=clock, timeout=10.0)
    attempt = asyncio.create_task(dead.deliver_due())
    try:
        await asyncio.wait_for(receiver.arrived.wait(), WAIT)
        attempt.cancel()
        with pytest.raises(asyncio.CancelledError):
            await attempt
    finally:
        await dead.close()
    row = await load(db, delivery_id)
    assert (row.status, row.attempts) == ("pending", 0)
    assert row.next_attempt_at == clock.now + timedelta(seconds=10 + 30)

    receiver.hang = False
    sender = WebhookSender(db, source=SOURCE, clock=clock)
    try:
        clock.advance(seconds=39)
        assert await sender.deliver_due() == 0  # still leased
        clock.advance(seconds=1)
        assert await sender.deliver_due() == 1
    finally:
        await sender.close()
    row = await load(db, delivery_id)
    assert (row.status, row.attempts) == ("delivered", 1)
    assert [seen.key for seen in receiver.seen] == [row.idempotency_key] * 2


async def test_run_sends_at_once_after_wake_and_stops_cleanly(db: Database) -> None:
    rx_clockless = Receiver(clock=None)
    app = web.Application()
    app.router.add_post("/hook", rx_clockless.hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    agency = await add_agency(db, f"http://{host}:{port}/hook")

    sender = WebhookSender(db, source=SOURCE, poll_interval=3600.0)
    task = asyncio.create_task(sender.run())
    try:
        for round_ in (1, 2):
            rx_clockless.got.clear()
            [delivery_id] = await queue(db, agency, due=utcnow())
            sender.wake()
            await asyncio.wait_for(rx_clockless.got.wait(), WAIT)
            assert len(rx_clockless.processed) == round_
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await runner.cleanup()
    assert task.cancelled()
    assert sender._own_session is None  # closed by run() on the way out
    assert (await load(db, delivery_id)).idempotency_key in rx_clockless.processed
