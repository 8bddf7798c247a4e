"""Failed logins slow down guessing: too many from one address are refused for a while.

Counted per (client address, username) and per client address, over a sliding window. A
username is never locked out as such: an attacker elsewhere must not be able to keep the agents
of a 112 command center out of their consoles by failing logins in their names. A success clears
that client's failures for that username.

Pure and in memory (per engine process): the clock is injected, nothing here does I/O. The
number of addresses and names tracked is bounded; when full, the stalest are forgotten first.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

PER_USER = 5  # failures of one username from one address
PER_CLIENT = 30  # failures from one address, all usernames
WINDOW_SECONDS = 900.0
MAX_TRACKED = 50_000


@dataclass
class LoginThrottle:
    per_user: int = PER_USER
    per_client: int = PER_CLIENT
    window: float = WINDOW_SECONDS
    max_tracked: int = MAX_TRACKED
    clock: Callable[[], float] = time.monotonic
    _failures: OrderedDict[tuple[str, str], deque[float]] = field(default_factory=OrderedDict)

    def retry_after(self, client: str, username: str) -> int | None:
        """Whole seconds until ``client`` may try ``username`` again; None if it may now."""
        now = self.clock()
        waits = []
        for key, limit in ((_key(client, username), self.per_user), ((client, ""), self.per_client)):
            times = self._recent(key, now)
            if times is not None and len(times) >= limit:
                # Allowed again when the oldest failure that still counts leaves the window.
                waits.append(times[len(times) - limit] + self.window - now)
        return max(1, math.ceil(max(waits))) if waits else None

    def failed(self, client: str, username: str) -> None:
        now = self.clock()
        for key in (_key(client, username), (client, "")):
            times = self._recent(key, now)
            if times is None:
                times = self._failures[key] = deque()
            times.append(now)
            self._failures.move_to_end(key)
        while len(self._failures) > self.max_tracked:
            self._failures.popitem(last=False)

    def succeeded(self, client: str, username: str) -> None:
        self._failures.pop(_key(client, username), None)

    def _recent(self, key: tuple[str, str], now: float) -> deque[float] | None:
        times = self._failures.get(key)
        if times is None:
            return None
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._failures[key]
            return None
        return times


def _key(client: str, username: str) -> tuple[str, str]:
    # Usernames are stored lower-case (auth.service); the empty name is the per-client count.
    return client, "\0" + username.strip().lower()[:200]
