"""Group commit for ticket creation.

Every creation takes the yearly number row's lock (``tickets/numbering.py``), so creations are
serialized on PostgreSQL however many threads run them. Made one per transaction, each pays a
whole transaction's round trips and ORM work while others wait on that lock; bench/tickets.py
measured that queue as the ceiling. The writer lets requests that arrive while a transaction
is running wait together and go into the next one (``TicketService.create_many``): at low load a
batch holds one request and costs what it did before, under load the cost per ticket falls.

A batch that fails as a whole (a constraint violated, the connection lost) is retried in halves
down to single requests, so each request gets its own outcome and one bad report never takes
the others down with it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from sqlalchemy.exc import SQLAlchemyError

from callcenter.auth.actor import Actor
from callcenter.storage.database import Database
from callcenter.tickets.service import Creation, NewTicket, TicketService

log = logging.getLogger(__name__)

Pending = tuple[NewTicket, Actor, "asyncio.Future[Creation]"]


class TicketWriter:
    def __init__(self, database: Database, service: TicketService, *, max_batch: int = 128) -> None:
        self._database = database
        self._service = service
        self._max_batch = max_batch
        self._pending: list[Pending] = []
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.batches = 0
        self.created = 0

    async def create(self, new: NewTicket, actor: Actor) -> Creation:
        """Create one ticket (or find its twin); raises what ``TicketService.create`` raises."""
        if self._closed:
            raise RuntimeError("the ticket writer is closed")
        future: asyncio.Future[Creation] = asyncio.get_running_loop().create_future()
        self._pending.append((new, actor, future))
        if self._task is None:
            # The batch runs in the writer's own task: a request that goes away does not
            # abandon the other requests of its batch.
            self._task = asyncio.create_task(self._drain(), name="ticket-writer")
        return await future

    async def close(self) -> None:
        """Finish what was asked for, then refuse new work."""
        self._closed = True
        if self._task is not None:
            await asyncio.shield(self._task)

    async def _drain(self) -> None:
        try:
            while self._pending:
                batch = self._pending[: self._max_batch]
                del self._pending[: self._max_batch]
                await self._write(batch)
        except asyncio.CancelledError:
            for _, _, future in self._pending:
                future.cancel()
            self._pending.clear()
            raise
        finally:
            self._task = None

    async def _write(self, batch: Sequence[Pending]) -> None:
        requests = [(new, actor) for new, actor, _ in batch]
        try:
            outcomes = await self._database.run(lambda s: self._service.create_many(s, requests))
        except (SQLAlchemyError, ValueError) as exc:
            if len(batch) == 1:
                _settle(batch[0][2], exc)
                return
            # Halves until the request that breaks it is alone: a few transactions, not one each.
            log.warning("a batch of %d ticket creations failed (%s); retrying in halves", len(batch), exc)
            half = len(batch) // 2
            await self._write(batch[:half])
            await self._write(batch[half:])
            return
        except BaseException as exc:
            for _, _, future in batch:
                _settle(future, exc)
            raise
        self.batches += 1
        for (_, _, future), outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, Creation) and outcome.created:
                self.created += 1
            _settle(future, outcome)


def _settle(future: asyncio.Future[Creation], outcome: Creation | BaseException) -> None:
    if future.done():  # the request went away; its ticket exists all the same
        return
    if isinstance(outcome, asyncio.CancelledError):
        future.cancel()
    elif isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
