"""The flows the engine serves, swapped as a whole when the files change.

A reload that finds any problem keeps serving the last good set and logs every problem (file,
line, field); a good reload replaces the set at once, so a call never sees half of an edit.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

from callcenter.ivr.flow import Flow
from callcenter.ivr.loader import FlowError, load_flows

log = logging.getLogger(__name__)


class FlowRegistry:
    def __init__(self, folder: Path, on_loaded: Callable[[dict[str, Flow]], None] | None = None) -> None:
        self.folder = folder
        self._flows: dict[str, Flow] = {}
        self._stamp: tuple[tuple[str, int, int], ...] = ()
        self.last_error = ""
        self._on_loaded = on_loaded

    def current(self) -> dict[str, Flow]:
        return self._flows

    def _fingerprint(self) -> tuple[tuple[str, int, int], ...]:
        files = sorted(self.folder.glob("*.yaml")) if self.folder.is_dir() else []
        return tuple((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in files)

    def load(self, *, initial: bool = False) -> bool:
        """Load the folder; on any problem keep the current flows. Blocking: call in an executor."""
        stamp = self._fingerprint()
        if not self.folder.is_dir():
            self._stamp = stamp
            log.warning("no IVR flows folder %s: every call goes straight to the call-takers", self.folder)
            return False
        try:
            flows = load_flows([self.folder])
        except FlowError as exc:
            self.last_error = str(exc)
            self._stamp = stamp
            kept = ", ".join(sorted(self._flows)) or "none"
            log.error("IVR flows not loaded (keeping the last good ones: %s):\n%s", kept, exc)
            return False
        self._flows, self._stamp, self.last_error = flows, stamp, ""
        log.info("IVR flows %s: %s", "loaded" if initial else "reloaded", ", ".join(sorted(flows)))
        if self._on_loaded is not None:
            self._on_loaded(flows)
        return True

    def changed(self) -> bool:
        return self._fingerprint() != self._stamp

    async def watch(self, interval: float = 2.0) -> None:
        """Owned background task: reload when a flow file changes."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(interval)
            if await loop.run_in_executor(None, self.changed):
                await loop.run_in_executor(None, self.load)
