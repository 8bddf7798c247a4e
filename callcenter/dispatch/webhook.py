"""Outbound signed webhooks: "No Wrong Door" forwarding of tickets to another instance.

A forwarded ticket becomes a :class:`~callcenter.dispatch.models.WebhookDelivery` row (queued by
the ticket service, in the same transaction as the forwarding). :class:`WebhookSender` sends the
pending rows and retries them with exponential backoff until they are delivered or given up.

Wire format of one delivery::

    POST <delivery.url>
    Content-Type: application/json
    X-Callcenter-Timestamp: <unix seconds>
    X-Callcenter-Signature: sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>
    X-Callcenter-Source: <this instance's name>
    Idempotency-Key: <delivery.idempotency_key>

    <delivery.payload, byte for byte>

Guarantees and rules:

* At-least-once delivery. The idempotency key lives on the row and is sent unchanged on every
  retry; the receiver de-duplicates on it, which turns at-least-once into exactly-once.
* Claiming is a lease: a pass takes due rows (``FOR UPDATE SKIP LOCKED`` on PostgreSQL; SQLite
  serialises writers with ``BEGIN IMMEDIATE``) and moves their ``next_attempt_at`` past the
  request timeout, so a second sender process never sends the same row at the same time. A
  sender that dies mid-request leaves the row pending; it is retried when the lease runs out.
* 2xx is success. Redirects are not followed (a forwarded complaint, with the reporter's
  personal data, goes only to the URL an administrator configured); a 3xx is retried like any
  other failure and shows in ``last_error``.
* 4xx other than 408 (Request Timeout) and 429 (Too Many Requests) is a permanent failure: the
  receiver refused this very request, and sending the same bytes again will not change its mind.
  The row is failed at once, with the answer in ``last_error``, for an administrator to look at.
* Everything else (5xx, 408, 429, 3xx, connection refused, timeout) is retried after
  ``min(base_delay * 2**(attempts-1), max_delay)`` seconds +-20% jitter, up to ``max_attempts``
  attempts; then the row is failed. Failed rows are kept as the delivery log.
* A row whose agency is missing, inactive or has no secret, or whose URL is not a usable http(s)
  URL, is failed without sending.
* The secret never leaves the process: not in a header, a log line or ``last_error``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import aiohttp
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from callcenter.dispatch.models import Agency, WebhookDelivery
from callcenter.events import EventBus
from callcenter.storage.base import utcnow
from callcenter.storage.database import Database

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Callcenter-Signature"
TIMESTAMP_HEADER = "X-Callcenter-Timestamp"
SOURCE_HEADER = "X-Callcenter-Source"
IDEMPOTENCY_HEADER = "Idempotency-Key"
USER_AGENT = "callcenter-webhook/1"

PENDING = "pending"
DELIVERED = "delivered"
FAILED = "failed"

SIGNATURE_PREFIX = "sha256="
DEFAULT_TOLERANCE = timedelta(minutes=5)
# A claimed row is hidden from other senders for the request timeout plus this margin.
LEASE_MARGIN = timedelta(seconds=30)
# 4xx answers that mean "not now" rather than "never".
RETRYABLE_4XX = frozenset({408, 429})
ERROR_LIMIT = 200  # characters of last_error we keep (the column holds 500)
_TIMESTAMP_RE = re.compile(r"[0-9]{1,12}")
_SIGNATURE_RE = re.compile(r"sha256=[0-9a-f]{64}")


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """``"sha256=" + hex(HMAC-SHA256(secret, timestamp + "." + body))``."""
    message = timestamp.encode("utf-8") + b"." + body
    return SIGNATURE_PREFIX + hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def verify(
    secret: str,
    timestamp: str,
    body: bytes,
    signature: str,
    now: datetime,
    tolerance: timedelta = DEFAULT_TOLERANCE,
) -> bool:
    """True if ``signature`` signs ``timestamp`` and ``body`` with ``secret`` and the timestamp
    (unix seconds) lies within ``tolerance`` of ``now`` either way (replay protection).

    Anything malformed (empty secret, a timestamp that is not plain digits, a signature that is
    not ``sha256=`` and 64 lower-case hex digits, a header of the wrong type) is refused with
    False, never an exception: the arguments come straight from a request. ``now`` is the
    caller's own clock and must be timezone-aware (a naive ``now`` is a programming error and
    raises ValueError).
    """
    if now.tzinfo is None:
        raise ValueError("verify() needs an aware 'now'")
    if not isinstance(secret, str) or not secret:
        return False
    if not isinstance(timestamp, str) or not _TIMESTAMP_RE.fullmatch(timestamp):
        return False
    if not isinstance(signature, str) or not _SIGNATURE_RE.fullmatch(signature):
        return False
    if not isinstance(body, bytes | bytearray | memoryview):
        return False
    sent_at = int(timestamp)
    if abs(now.timestamp() - sent_at) > tolerance.total_seconds():
        return False
    expected = sign(secret, timestamp, bytes(body))
    return hmac.compare_digest(expected.encode("ascii"), signature.encode("ascii"))


def backoff(attempts: int, base_delay: float, max_delay: float) -> float:
    """Seconds before the next try after ``attempts`` failed attempts, before jitter."""
    exponent = min(max(attempts - 1, 0), 60)  # 2**60 seconds is past any max_delay
    return float(min(base_delay * 2**exponent, max_delay))


@dataclass(frozen=True)
class DeliveryAttempted:
    """Published on the bus once an attempt's outcome is recorded in the delivery log."""

    delivery_id: int
    delivered: bool
    status_code: int | None


@dataclass(frozen=True)
class _Job:
    """One claimed delivery, detached from its session."""

    id: int
    url: str
    body: bytes
    key: str
    secret: str


@dataclass(frozen=True)
class _Outcome:
    status_code: int | None
    error: str | None  # None: delivered
    permanent: bool = False

    @property
    def delivered(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class _Recorded:
    """What a failed attempt did to its row, for the log line."""

    id: int
    host: str
    attempts: int
    error: str
    retry_at: datetime | None  # None: given up


class WebhookSender:
    """Sends pending :class:`WebhookDelivery` rows; run :meth:`run` as one background task.

    ``source`` is this instance's name, sent in ``X-Callcenter-Source``. ``clock`` gives aware
    UTC datetimes (tests inject a fake one). ``timeout`` bounds one request, connect to last byte.
    ``batch_size`` is how many rows one pass claims. ``session``: an aiohttp session to use (the
    caller closes it); without one the sender makes its own and :meth:`close` closes it.
    """

    def __init__(
        self,
        db: Database,
        *,
        source: str,
        clock: Callable[[], datetime] = utcnow,
        timeout: float = 10.0,
        max_attempts: int = 12,
        base_delay: float = 2.0,
        max_delay: float = 3600.0,
        poll_interval: float = 5.0,
        session: aiohttp.ClientSession | None = None,
        batch_size: int = 20,
        bus: EventBus | None = None,
    ) -> None:
        if timeout <= 0 or poll_interval <= 0 or base_delay < 0 or max_delay < 0:
            raise ValueError("timeout and poll_interval must be positive, delays not negative")
        if max_attempts < 1 or batch_size < 1:
            raise ValueError("max_attempts and batch_size must be at least 1")
        self.db = db
        self.source = source
        self.clock = clock
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.poll_interval = poll_interval
        self.batch_size = batch_size
        self.bus = bus
        self.lease = timedelta(seconds=timeout) + LEASE_MARGIN
        self._session = session
        self._own_session: aiohttp.ClientSession | None = None
        self._wake = asyncio.Event()
        self._next_due: datetime | None = None
        # Jitter only spreads retries out; it needs no cryptographic randomness.
        self._random = random.Random()  # noqa: S311

    # -- public API ----------------------------------------------------------------------

    def wake(self) -> None:
        """A delivery was just queued: send it now instead of at the next poll.

        Call from the event loop's thread (e.g. after the transaction that queued the row)."""
        self._wake.set()

    async def deliver_due(self) -> int:
        """One pass: claim the due rows, send them, record the outcomes.

        Returns how many requests were attempted (rows failed for a missing secret or an
        inactive agency are not attempts)."""
        attempted, _claimed = await self._pass()
        return attempted

    async def run(self) -> None:
        """Deliver until cancelled: a pass, then wait for :meth:`wake`, the earliest retry or
        ``poll_interval``, whichever comes first. Closes its own HTTP session on the way out."""
        try:
            while True:
                # Cleared before the pass: a wake() during the pass triggers one more pass.
                self._wake.clear()
                try:
                    _attempted, claimed = await self._pass()
                except Exception as exc:  # the database may be away for a while; keep trying
                    log.error("webhook pass failed: %s", _one_line(str(exc)) or type(exc).__name__)
                    self._next_due, claimed = None, 0
                if claimed >= self.batch_size:
                    continue  # probably more due right now
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._wait_seconds())
        finally:
            await self.close()

    async def close(self) -> None:
        """Close the HTTP session this sender created (never one it was given)."""
        session, self._own_session = self._own_session, None
        if session is not None:
            await session.close()

    # -- one pass ------------------------------------------------------------------------

    def _wait_seconds(self) -> float:
        if self._next_due is None:
            return self.poll_interval
        until = (self._next_due - self.clock()).total_seconds()
        # A floor keeps a row that another process has locked from turning this into a spin.
        return min(self.poll_interval, max(until, 0.1))

    async def _pass(self) -> tuple[int, int]:
        jobs, refused, claimed, next_due = await self.db.run(self._claim)
        self._next_due = next_due
        for item in refused:
            self._log(item, sent=False)
        if not jobs:
            return 0, claimed
        outcomes = await asyncio.gather(*(self._send(job) for job in jobs))
        recorded, next_due = await self.db.run(
            lambda s: self._record(s, list(zip(jobs, outcomes, strict=True)))
        )
        self._next_due = next_due
        for item in recorded:
            self._log(item)
        if self.bus is not None:
            for job, outcome in zip(jobs, outcomes, strict=True):
                self.bus.publish(DeliveryAttempted(job.id, outcome.delivered, outcome.status_code))
        return len(jobs), claimed

    def _claim(self, session: Session) -> tuple[list[_Job], list[_Recorded], int, datetime | None]:
        now = self.clock()
        rows = session.scalars(
            select(WebhookDelivery)
            .where(WebhookDelivery.status == PENDING, WebhookDelivery.next_attempt_at <= now)
            .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
            .limit(self.batch_size)
            .with_for_update(skip_locked=True)
        ).all()
        jobs: list[_Job] = []
        refused: list[_Recorded] = []
        for row in rows:
            agency = session.get(Agency, row.agency_id)
            problem = _unusable(agency, row.url)
            if problem is not None:
                row.status = FAILED
                row.last_error = problem
                refused.append(_Recorded(row.id, _host(row.url), row.attempts, problem, None))
                continue
            assert agency is not None and agency.webhook_secret
            row.next_attempt_at = now + self.lease
            jobs.append(
                _Job(row.id, row.url, row.payload.encode("utf-8"), row.idempotency_key, agency.webhook_secret)
            )
        session.flush()
        return jobs, refused, len(rows), _earliest_pending(session)

    async def _send(self, job: _Job) -> _Outcome:
        timestamp = str(int(self.clock().timestamp()))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(job.secret, timestamp, job.body),
            SOURCE_HEADER: self.source,
            IDEMPOTENCY_HEADER: job.key,
        }
        try:
            async with self._http().post(
                job.url,
                data=job.body,
                headers=headers,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=self.timeout),
            ) as response:
                status = response.status
                if 200 <= status < 300:
                    return _Outcome(status, None)
                detail = _one_line((await response.content.read(ERROR_LIMIT)).decode("utf-8", "replace"))
                error = f"HTTP {status} {response.reason or ''}".rstrip()
                if 300 <= status < 400:
                    error += " (redirects are not followed)"
                elif detail:
                    error += f": {detail}"
                permanent = 400 <= status < 500 and status not in RETRYABLE_4XX
                return _Outcome(status, _scrub(error, job.url), permanent)
        except TimeoutError:
            return _Outcome(None, f"no answer within {self.timeout:g} s")
        except (aiohttp.InvalidURL, aiohttp.NonHttpUrlClientError):
            # The exception text repeats the URL, which may carry credentials.
            return _Outcome(None, "invalid webhook URL", permanent=True)
        except (aiohttp.ClientError, OSError) as exc:
            text = _one_line(str(exc))
            return _Outcome(
                None, _scrub(f"{type(exc).__name__}: {text}" if text else type(exc).__name__, job.url)
            )

    def _record(
        self, session: Session, results: Sequence[tuple[_Job, _Outcome]]
    ) -> tuple[list[_Recorded], datetime | None]:
        now = self.clock()
        recorded: list[_Recorded] = []
        for job, outcome in results:
            row = session.get(WebhookDelivery, job.id, with_for_update=True)
            if row is None or row.status != PENDING:
                continue  # cancelled by an administrator meanwhile, or settled by another sender
            row.last_status_code = outcome.status_code
            if outcome.delivered:
                row.status = DELIVERED
                row.delivered_at = now
                row.attempts += 1
                row.last_error = None
                continue
            assert outcome.error is not None
            row.attempts += 1
            row.last_error = outcome.error[:ERROR_LIMIT]
            retry_at: datetime | None = None
            if outcome.permanent or row.attempts >= self.max_attempts:
                row.status = FAILED
            else:
                delay = backoff(row.attempts, self.base_delay, self.max_delay)
                delay *= self._random.uniform(0.8, 1.2)
                retry_at = now + timedelta(seconds=delay)
                row.next_attempt_at = retry_at
            recorded.append(_Recorded(row.id, _host(job.url), row.attempts, row.last_error, retry_at))
        session.flush()
        return recorded, _earliest_pending(session)

    def _log(self, item: _Recorded, *, sent: bool = True) -> None:
        if not sent:
            log.warning("webhook delivery %d to %s not sent, failed: %s", item.id, item.host, item.error)
        elif item.retry_at is None:
            log.warning(
                "webhook delivery %d to %s failed after %d attempt(s), giving up: %s",
                item.id,
                item.host,
                item.attempts,
                item.error,
            )
        else:
            log.warning(
                "webhook delivery %d to %s failed (attempt %d of %d), retry at %s: %s",
                item.id,
                item.host,
                item.attempts,
                self.max_attempts,
                item.retry_at.astimezone(UTC).isoformat(timespec="seconds"),
                item.error,
            )

    def _http(self) -> aiohttp.ClientSession:
        if self._session is not None:
            return self._session
        if self._own_session is None or self._own_session.closed:
            self._own_session = aiohttp.ClientSession(headers={"User-Agent": USER_AGENT})
        return self._own_session


def _unusable(agency: Agency | None, url: str) -> str | None:
    """Why this delivery cannot be sent at all, or None."""
    if agency is None:
        return "agency no longer exists"
    if not agency.active:
        return f"agency {agency.code} is inactive"
    if not agency.webhook_secret:
        return f"agency {agency.code} has no webhook secret"
    try:
        parts = urlsplit(url)
    except ValueError:
        return "invalid webhook URL"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "invalid webhook URL (must be http or https)"
    return None


def _earliest_pending(session: Session) -> datetime | None:
    return session.scalar(
        select(func.min(WebhookDelivery.next_attempt_at)).where(WebhookDelivery.status == PENDING)
    )


def _host(url: str) -> str:
    """The target host for log lines: no path, no query, no credentials."""
    try:
        return urlsplit(url).hostname or "?"
    except ValueError:
        return "?"


def _one_line(text: str) -> str:
    return " ".join(text.split())[:ERROR_LIMIT]


def _scrub(text: str, url: str) -> str:
    """Remove a password given in the URL's user part, should an error message repeat it."""
    try:
        password = urlsplit(url).password
    except ValueError:
        return text
    return text.replace(password, "***") if password else text
