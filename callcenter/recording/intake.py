"""Closed recordings wait here to be catalogued, off the AMI event path.

Cataloguing a recording reads its three files whole (header checks, SHA-256) and writes to the
database; for an hour-long call that is a few hundred megabytes. Done inline, every AMI event
after the Hangup (the next call's ringing, a screen-pop) would wait for it. So the AMI consumer
only :meth:`RecordingIntake.submit`\\ s the closed recording and goes on; one owned task
catalogues them in arrival order.

Nothing is dropped: the queue is unbounded (an entry is a few paths), a failure to catalogue one
recording is logged and the next is taken, and :meth:`RecordingIntake.drain` lets the engine
finish what was handed over before it closes the database.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from callcenter.recording.closed import RecordingClosed

log = logging.getLogger(__name__)

Handler = Callable[[RecordingClosed], Awaitable[None]]


class RecordingIntake:
    def __init__(self, handle: Handler) -> None:
        self._handle = handle
        self._queue: asyncio.Queue[RecordingClosed] = asyncio.Queue()
        # Recordings handed over and not catalogued yet (the one in progress included).
        self._waiting: set[Path] = set()
        self.catalogued_total = 0

    @property
    def backlog(self) -> int:
        return len(self._waiting)

    def submit(self, closed: RecordingClosed) -> bool:
        """Queue ``closed``; False if that recording is waiting already (a replayed Hangup, or
        a recovery pass finding what the intake has not reached yet)."""
        if closed.base in self._waiting:
            return False
        self._waiting.add(closed.base)
        self._queue.put_nowait(closed)
        return True

    async def run(self) -> None:
        while True:
            closed = await self._queue.get()
            try:
                await self._handle(closed)
                self.catalogued_total += 1
            except asyncio.CancelledError:
                raise
            except Exception:
                # The handler reports what it can (a database error, a failed recording); this is
                # for the unforeseen, which must not stop the recordings after it.
                log.exception("call %s: recording %s not catalogued", closed.linkedid, closed.base)
            finally:
                self._waiting.discard(closed.base)
                self._queue.task_done()

    async def drain(self, timeout: float) -> bool:
        """Wait until every recording handed over is catalogued; False if ``timeout`` ran out."""
        try:
            await asyncio.wait_for(self._queue.join(), timeout)
        except TimeoutError:
            log.error("stopping with %d closed recording(s) not catalogued", self.backlog)
            return False
        return True
