"""In-process event bus: producers publish typed domain events, consumers subscribe.

Each subscriber gets its own bounded queue, so a slow consumer (a browser tab, a test) never
holds up the producer; when its queue is full the oldest event is dropped and counted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


class Subscription:
    def __init__(self, limit: int) -> None:
        self._queue: asyncio.Queue[object] = asyncio.Queue(limit)
        self.dropped = 0

    def _offer(self, event: object) -> None:
        if self._queue.full():
            self._queue.get_nowait()
            self.dropped += 1
        self._queue.put_nowait(event)

    async def get(self) -> object:
        return await self._queue.get()

    async def wait_for(self, kind: type[T], timeout: float, match: Callable[[T], bool] | None = None) -> T:
        """The next event of ``kind`` (for which ``match(event)`` is true, if given)."""
        async with asyncio.timeout(timeout):
            while True:
                event = await self._queue.get()
                if isinstance(event, kind) and (match is None or match(event)):
                    return event


class EventBus:
    def __init__(self, limit: int = 1000) -> None:
        self._limit = limit
        self._subscribers: set[Subscription] = set()

    def publish(self, event: object) -> None:
        for subscription in self._subscribers:
            subscription._offer(event)

    @asynccontextmanager
    async def subscribe(self) -> AsyncIterator[Subscription]:
        subscription = Subscription(self._limit)
        self._subscribers.add(subscription)
        try:
            yield subscription
        finally:
            self._subscribers.discard(subscription)
