"""Blocked prank callers: the check at the start of every 112 and hotline call.

Before the flow's first node, the caller number is looked up (``calls.blocks.active_block``, in
one transaction on an executor thread). A caller who is not blocked hears the flow as usual. A
blocked caller:

1. is logged (``log_blocked_attempt``, once per call) and the channel variable ``CC_BLOCKED`` is
   set to ``1``; the call field ``blocked`` is ``1`` too, so the screen-pop shows it;
2. hears the warning ``blocked-warning-<lang>`` ("Nomor Anda diblokir sementara karena panggilan
   iseng ... tekan sembilan untuk berbicara dengan petugas") while a key is awaited (GET DATA);
3. pressing 9 (the override) hears ``blocked-connect-<lang>`` and goes to the flow's queue with
   ``QUEUE_PRIO=0``, the lowest priority a flow can give, so a human stays reachable (call field
   ``block_override`` is ``1``); no key or another key hears ``blocked-goodbye-<lang>`` and is hung up.

The prompts are owned here and built by the same machinery as the flows' prompts
(``prompts.flow_prompts`` adds :func:`blocking_prompts`); a studio recording under the same name
replaces the generated voice. The caller ID is untrusted: anything that is not a number is simply
not blocked, and no caller data ever reaches a prompt name or an AGI command.

Emergencies fail open: when the database is down or slow, the caller is not blocked and the
failure is logged.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from datetime import datetime
from pathlib import Path
from types import MappingProxyType

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from callcenter.agi.commands import GetData, SetVariable, StreamFile
from callcenter.agi.commands import Hangup as HangupCommand
from callcenter.agi.server import AgiSession
from callcenter.calls.blocks import active_block, log_blocked_attempt
from callcenter.errors import InvalidInput
from callcenter.ivr.prompts import prompt_file, prompt_name
from callcenter.storage.base import utcnow
from callcenter.storage.database import Database

log = logging.getLogger(__name__)

# Flows whose callers are checked, and the queue a blocked caller reaches with the override.
SCREENED_FLOWS: Mapping[str, str] = MappingProxyType({"112": "q112", "hotline": "hotline"})
OVERRIDE_KEY = "9"
# The lowest queue priority a flow can give (transfer priorities are whole numbers >= 0; the 112
# flow uses 10): a blocked caller who insists waits behind everyone else, but is answered.
BLOCKED_PRIORITY = 0
BLOCKED_VAR = "CC_BLOCKED"
WAIT_SECONDS = 6.0  # for the override key, after the warning has been played
LOOKUP_SECONDS = 3.0  # longer than this and the caller is let through (fail open)

PROMPT_GROUP = "blocked"
WARNING, CONNECT, GOODBYE = "warning", "connect", "goodbye"
DEFAULT_LANGUAGE = "id"
PROMPTS: Mapping[str, Mapping[str, str]] = MappingProxyType(
    {
        WARNING: {
            "id": (
                "Nomor Anda diblokir sementara karena panggilan iseng. Panggilan ini dicatat. "
                "Jika ini keadaan darurat, tekan sembilan untuk berbicara dengan petugas."
            ),
            "en": (
                "Your number is blocked for a while because of prank calls. This call is logged. "
                "If this is an emergency, press nine to speak to an operator."
            ),
        },
        CONNECT: {
            "id": "Mohon tunggu, Anda akan dihubungkan dengan petugas.",
            "en": "Please hold, an operator will answer you.",
        },
        GOODBYE: {
            "id": "Panggilan diakhiri. Terima kasih.",
            "en": "This call is ended. Goodbye.",
        },
    }
)


def blocked_prompt_name(part: str, lang: str) -> str:
    """``blocked-<part>-<lang>``: fixed words only."""
    return prompt_name(PROMPT_GROUP, part, lang)


def blocking_prompts(languages: Iterable[str]) -> dict[str, tuple[str, str]]:
    """The prompts of the block check in the given languages (those it has texts for):
    file name -> (language, text), as ``prompts.flow_prompts`` returns them."""
    wanted = set(languages) | {DEFAULT_LANGUAGE}
    return {
        blocked_prompt_name(part, lang): (lang, text)
        for part, texts in PROMPTS.items()
        for lang, text in texts.items()
        if lang in wanted
    }


class Verdict(enum.Enum):
    CLEAR = "clear"  # not blocked (or not known to be): the flow runs as usual
    OVERRIDE = "override"  # blocked, pressed 9: sent to the queue at the lowest priority
    REFUSED = "refused"  # blocked, no override: warned and hung up


class CallerScreen:
    """The block check of one engine; :meth:`screen` runs once per call."""

    def __init__(
        self,
        database: Database,
        sounds_dir: Path,
        *,
        system_name: str,
        clock: Callable[[], datetime] = utcnow,
        wait_seconds: float = WAIT_SECONDS,
        lookup_seconds: float = LOOKUP_SECONDS,
    ) -> None:
        self.database = database
        self.sounds_dir = sounds_dir
        self.system_name = system_name
        self.clock = clock
        self.wait_seconds = wait_seconds
        self.lookup_seconds = lookup_seconds

    async def screen(
        self,
        session: AgiSession,
        flow: str,
        linkedid: str,
        caller: str,
        language: str,
        fields: MutableMapping[str, str],
    ) -> Verdict:
        """Check the caller of a call on ``flow``; warn a blocked one and act on the key.

        ``fields`` are the call's fields (kept on the call and shown on the screen-pop): they get
        ``blocked`` and, on the override, ``block_override``.
        """
        queue = SCREENED_FLOWS.get(flow)
        if queue is None:
            return Verdict.CLEAR
        block_id = await self._lookup(linkedid, caller)
        if block_id is None:
            return Verdict.CLEAR
        log.info("call %s: caller is blocked (block %d); playing the warning", linkedid, block_id)
        fields["blocked"] = "1"
        await session.run(SetVariable(BLOCKED_VAR, "1"))
        lang = language if language in PROMPTS[WARNING] else DEFAULT_LANGUAGE
        reply = await session.run(
            GetData(self._file(WARNING, lang), int(self.wait_seconds * 1000), 1),
            timeout=self.wait_seconds + 120,
        )
        if reply.result.strip() == OVERRIDE_KEY:
            fields["block_override"] = "1"
            log.info("call %s: blocked caller chose to reach an operator; to %s", linkedid, queue)
            await session.run(StreamFile(self._file(CONNECT, lang)), timeout=60)
            await session.run(SetVariable("QUEUE_PRIO", str(BLOCKED_PRIORITY)))
            await session.run(SetVariable("CC_QUEUE", queue))
            return Verdict.OVERRIDE
        log.info("call %s: blocked caller did not ask for an operator; hanging up", linkedid)
        await session.run(StreamFile(self._file(GOODBYE, lang)), timeout=60)
        await session.run(HangupCommand())
        return Verdict.REFUSED

    async def _lookup(self, linkedid: str, caller: str) -> int | None:
        """The id of the block in force for ``caller``, after logging this attempt; None when the
        caller is not blocked, or when that cannot be known (the database is down or slow)."""
        now = self.clock()
        system_name = self.system_name

        def work(session: Session) -> int | None:
            block = active_block(session, caller, now)
            if block is None:
                return None
            try:
                log_blocked_attempt(session, block, system_name, linkedid, now)
            except InvalidInput as exc:  # checked before any write: the transaction is intact
                log.warning("call %s: blocked attempt not logged: %s", linkedid, exc)
            return block.id

        # An emergency line fails open: better a prank call answered than a real one dropped.
        try:
            async with asyncio.timeout(self.lookup_seconds):
                return await self.database.run(work)
        except (SQLAlchemyError, TimeoutError, OSError) as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            log.error("call %s: block check failed, the caller is let through: %s", linkedid, reason)
            return None
        except Exception:
            log.exception("call %s: block check failed, the caller is let through", linkedid)
            return None

    def _file(self, part: str, lang: str) -> str:
        return prompt_file(self.sounds_dir, blocked_prompt_name(part, lang))
