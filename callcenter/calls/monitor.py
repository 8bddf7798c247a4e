"""The adapter between AMI connections and the pure live state.

Each AMI message becomes a typed event (``ami/events.py``), goes through ``LiveState.apply`` with
the time it was handled, and the changes it caused are published on the engine's bus for the
consoles, the wallboard and the call log. After every login (FullyBooted) the monitor asks
Asterisk for its channels and queues; the list items come back as ordinary events, in order
with live ones, and ``LiveState`` swaps in the snapshot when both lists are complete, so a
restart of Asterisk or of the engine leaves no ghost and no missing call.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from callcenter.ami.events import PARSERS, parse_event
from callcenter.calls.live import Change, LiveState
from callcenter.events import EventBus

log = logging.getLogger(__name__)


class AmiPort(Protocol):
    system_name: str

    async def send_action(self, action: Mapping[str, object], timeout: float = 10.0) -> Any: ...


class LiveMonitor:
    def __init__(self, state: LiveState, bus: EventBus, clock: Callable[[], float] = time.time) -> None:
        self.state = state
        self._bus = bus
        self._clock = clock

    def handlers(self, system_name: str) -> dict[str, Callable[[Mapping[str, Any]], None]]:
        """The AMI handler table of one connection: every event the live state understands."""

        def handle(message: Mapping[str, Any]) -> None:
            self.handle(system_name, message)

        return dict.fromkeys(PARSERS, handle)

    def handle(self, system_name: str, message: Mapping[str, Any]) -> list[Change]:
        event = parse_event(system_name, message)
        if event is None:
            return []
        changes = self.state.apply(event, self._clock())
        for change in changes:
            self._bus.publish(change)
        return changes

    async def resync(self, ami: AmiPort) -> None:
        """Ask for the snapshot; its items arrive as events and complete the resync."""
        self.state.begin_resync(ami.system_name)
        try:
            for action in ("CoreShowChannels", "QueueStatus"):
                await ami.send_action({"Action": action})
        except Exception:
            # Only lists that completed replace state, so ending here keeps the rest as it was
            # instead of leaving the system marked as resyncing.
            for change in self.state.end_resync(ami.system_name, self._clock()):
                self._bus.publish(change)
            raise
        log.info("AMI %s: live state resync requested", ami.system_name)
