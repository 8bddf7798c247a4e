"""The first IVR: a greeting and one DTMF choice per public number.

It stands in until flows as data (``ivr_flows/``) arrive. Whatever the caller presses, the call
ends up in a queue of humans; on 112 a silent caller reaches a call-taker after the timeout.
"""

from __future__ import annotations

import logging
from pathlib import Path

from callcenter.agi.commands import GetData, GetVariable, SetVariable
from callcenter.agi.server import AgiSession, Handler
from callcenter.ivr.prompts import prompt_file

log = logging.getLogger(__name__)

# Key -> service name, for the 112 menu. The queue is the call-taker queue for all of them.
EMERGENCY_SERVICES = {"1": "police", "2": "fire", "3": "ambulance"}
CHOICE_TIMEOUT_MS = 5000


class PlaceholderIvr:
    def __init__(self, sounds_dir: Path) -> None:
        self.sounds_dir = sounds_dir

    def routes(self) -> list[tuple[str, Handler]]:
        return [("112", self.emergency), ("hotline", self.hotline)]

    async def emergency(self, session: AgiSession) -> None:
        linkedid = await self._linkedid(session)
        key = await self._one_key(session, "greeting-112", linkedid)
        service = EMERGENCY_SERVICES.get(key, "")
        log.info("call %s: 112 menu choice %r -> %s", linkedid, key, service or "call-taker")
        await session.run(SetVariable("CC_CHOICE", service))
        await session.run(SetVariable("CC_QUEUE", "q112"))

    async def hotline(self, session: AgiSession) -> None:
        linkedid = await self._linkedid(session)
        key = await self._one_key(session, "greeting-hotline", linkedid)
        log.info("call %s: hotline choice %r", linkedid, key)
        await session.run(SetVariable("CC_CHOICE", "agent" if key == "1" else ""))
        await session.run(SetVariable("CC_QUEUE", "hotline"))

    async def _linkedid(self, session: AgiSession) -> str:
        reply = await session.run(GetVariable("CHANNEL(linkedid)"))
        return reply.data or session.uniqueid

    async def _one_key(self, session: AgiSession, prompt: str, linkedid: str) -> str:
        log.info("call %s: IVR %s from %s", linkedid, session.route, session.env.get("agi_callerid", ""))
        reply = await session.run(
            GetData(prompt_file(self.sounds_dir, prompt), CHOICE_TIMEOUT_MS, 1),
            timeout=CHOICE_TIMEOUT_MS / 1000 + 60,
        )
        # The reply is caller input: keep it only if it is one of the keys we offered.
        return reply.result if len(reply.result) == 1 and reply.result in "0123456789*#" else ""
