"""Events the ticket capability publishes on the bus (screens, wallboard, the OPD queue)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TicketChanged:
    """A ticket was created or changed; ``kind`` is the trail entry's kind."""

    number: str
    kind: str
