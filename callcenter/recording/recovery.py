"""Recordings whose end the engine never saw: found on disk, then catalogued like any other.

The engine learns that a recording is complete from the recorded channel's ``Hangup``. While the
engine is down (a restart, a crash, an upgrade) Asterisk still answers 112 and still records
(DESIGN.md), but those Hangups are never seen; without this pass such a recording would never be
catalogued, hashed or transcribed. So now and then (and at start) the day folders of the last
``days`` days are read for mixed files the dialplan made (``<id>.wav``, the id only letters,
digits and ``_``) that the catalogue does not know and that nothing has written to for ``quiet``
seconds (MixMonitor writes every 20 ms while a call lasts), and each is handed to the intake as a
:class:`~callcenter.recording.closed.RecordingClosed`, so it is checked, hashed, catalogued and
queued for transcription exactly as if its Hangup had arrived.

Which call it was: the dialplan names the files from the recorded channel's Uniqueid with ``.``
and ``-`` made ``_``. The call log row of this system whose Linkedid maps to the same name is the
call (a ``LIKE`` with the name as the pattern: ``_`` matches one character, and the name holds no
``%``), so a call the engine saw start keeps its caller number, queue and agent. Otherwise the
call is logged under the Uniqueid the name was made from (Asterisk's ``[systemname-]epoch.seq``)
with no number.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from collections.abc import Callable, Sequence
from datetime import date, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from callcenter.calls.records import CallRecord
from callcenter.recording.closed import RecordingClosed
from callcenter.recording.models import Recording
from callcenter.storage.base import utcnow
from callcenter.storage.database import Database

log = logging.getLogger(__name__)

# The name the dialplan gives a mixed file (cc-record in extensions.conf).
_MIXED = re.compile(r"^([A-Za-z0-9_]{1,120})\.wav$")
LEGS = ("", "-caller", "-agent")
QUIET_SECONDS = 300.0


def closed_on_disk(
    root: Path, days: int, today: date, now: float, quiet: float = QUIET_SECONDS
) -> list[Path]:
    """Bases (paths without ``.wav``) of recordings in the last ``days`` day folders whose files
    nobody has written to for ``quiet`` seconds, oldest folder first. Blocking (reads folders).

    ``today`` is UTC's; the folders are named in Asterisk's time zone, which may be a day ahead
    (WIB is UTC+7), so tomorrow's folder is read too.
    """
    found: list[Path] = []
    for back in range(days, -2, -1):
        day = today - timedelta(days=back)
        folder = root / f"{day:%Y}" / f"{day:%m}" / f"{day:%d}"
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except (FileNotFoundError, NotADirectoryError):
            continue
        for entry in entries:
            match = _MIXED.match(entry.name)
            if match is None or not entry.is_file(follow_symlinks=False):
                continue
            base = folder / match.group(1)
            if _quiet(base, now, quiet):
                found.append(base)
    return found


def _quiet(base: Path, now: float, quiet: float) -> bool:
    for leg in LEGS:
        try:
            if os.stat(f"{base}{leg}.wav", follow_symlinks=False).st_mtime > now - quiet:
                return False
        except FileNotFoundError:
            continue  # a missing leg is the integrity check's to report
    return True


def not_catalogued(session: Session, system_name: str, bases: Sequence[Path]) -> list[RecordingClosed]:
    """Of ``bases``, those the catalogue does not know, each with the call it most likely was."""
    if not bases:
        return []
    known: set[str] = set()
    paths = [str(b) for b in bases]
    for start in range(0, len(paths), 500):
        chunk = paths[start : start + 500]
        known.update(session.scalars(select(Recording.path).where(Recording.path.in_(chunk))))
    missing = []
    for base in bases:
        if str(base) in known:
            continue
        call = session.scalars(
            select(CallRecord)
            .where(CallRecord.system_name == system_name, CallRecord.linkedid.like(base.name))
            .order_by(CallRecord.id.desc())
            .limit(1)
        ).first()
        if call is not None:
            linkedid, number = call.linkedid, call.caller_number
        else:
            linkedid, number = uniqueid_of(base.name, system_name), ""
        missing.append(RecordingClosed(system_name, linkedid, base.name, base, number))
    return missing


_EPOCH_SEQ = re.compile(r"^([0-9]+)_([0-9]+)$")


def uniqueid_of(name: str, system_name: str) -> str:
    """The Uniqueid a recording's name was most likely made from: Asterisk's are
    ``[systemname-]epoch.seq`` (``systemname`` from asterisk.conf, this system's name)."""
    prefix = re.sub(r"[^A-Za-z0-9_]", "", system_name.replace(".", "_").replace("-", "_")) + "_"
    rest = name[len(prefix) :] if system_name and name.startswith(prefix) else None
    if rest is not None and (match := _EPOCH_SEQ.match(rest)):
        return f"{system_name}-{match.group(1)}.{match.group(2)}"
    if match := _EPOCH_SEQ.match(name):
        return f"{match.group(1)}.{match.group(2)}"
    return name


class RecordingRecovery:
    """The periodic pass (the engine owns the task running :meth:`run`)."""

    def __init__(
        self,
        database: Database,
        root: Path,
        system_name: str,
        submit: Callable[[RecordingClosed], bool],
        *,
        interval: float,
        days: int,
        quiet: float = QUIET_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.database, self.root, self.system_name = database, root, system_name
        self.submit, self.interval, self.days, self.quiet, self.clock = submit, interval, days, quiet, clock
        self.recovered_total = 0

    async def run_once(self) -> list[RecordingClosed]:
        now = self.clock()
        today = utcnow().date()
        loop = asyncio.get_running_loop()
        bases = await loop.run_in_executor(None, closed_on_disk, self.root, self.days, today, now, self.quiet)
        found = await self.database.run(lambda s: not_catalogued(s, self.system_name, bases))
        handed = [closed for closed in found if self.submit(closed)]  # not those waiting already
        for closed in handed:
            log.warning(
                "recording %s closed without the engine seeing its call end (call %s): catalogued now",
                closed.base,
                closed.linkedid,
            )
        self.recovered_total += len(handed)
        return handed

    async def run(self) -> None:
        while True:
            try:
                await self.run_once()
            except (SQLAlchemyError, OSError) as exc:
                log.warning("looking for recordings not catalogued failed: %s", str(exc).splitlines()[0])
            await asyncio.sleep(self.interval)
