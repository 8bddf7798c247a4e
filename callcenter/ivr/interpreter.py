"""Runs an IVR flow over one FastAGI session.

One explicit table maps each node type to the coroutine that performs it; each returns the id of
the next node, or None when the IVR part of the call is over (transfer, hang-up). Everything the
caller keys in is validated against what the node offered before it is used; collected answers
live in :class:`IvrCall` and end up on the ticket and, as channel variables, on the call.

If anything goes wrong inside a flow (a bug, the database away), the call is sent to the
call-taker queue: an emergency caller must never be stuck in a menu.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, time
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from callcenter.agi.commands import GetData, GetVariable, RecordFile, SetVariable, StreamFile
from callcenter.agi.commands import Hangup as HangupCommand
from callcenter.agi.server import AgiHangup, AgiProtocolError, AgiSession
from callcenter.auth.actor import Actor
from callcenter.auth.roles import Role
from callcenter.errors import NotFound
from callcenter.ivr import flow as f
from callcenter.ivr.blocking import CallerScreen, Verdict
from callcenter.ivr.prompts import digit_name, prompt_file, prompt_name
from callcenter.storage.base import utcnow
from callcenter.storage.database import Database
from callcenter.tickets.numbering import parse_number
from callcenter.tickets.service import CallKey, NewTicket, TicketService, ensure_call
from callcenter.tickets.sla import WorkCalendar

log = logging.getLogger(__name__)

FALLBACK_QUEUE = "q112"
MAX_STEPS = 200
IVR_ACTOR = Actor(user_id=None, username="ivr", role=Role.AGENT)
DIGITS = "0123456789"
KEYS = "0123456789*#"

# Speech: (recording, grammar words, engine) -> the word understood, or None.
Recognize = Callable[[Path, list[str], str], Awaitable[str | None]]


@dataclass
class IvrCall:
    session: AgiSession
    linkedid: str
    caller: str
    language: str
    fields: dict[str, str] = field(default_factory=dict)
    # Flows we are inside as a subflow: (flow name, node to return to).
    stack: list[tuple[str, str]] = field(default_factory=list)

    def answers(self) -> dict[str, str]:
        """The collected fields that are plain enough to store and pass on."""
        return {k: v for k, v in self.fields.items() if f.FIELD_VALUE.fullmatch(v)}

    def key(self, system_name: str) -> CallKey:
        number = self.caller if f.FIELD_VALUE.fullmatch(self.caller) else ""
        return CallKey(system_name, self.linkedid, number)


class FlowRunner:
    def __init__(
        self,
        flows: Callable[[], dict[str, f.Flow]],
        sounds_dir: Path,
        *,
        system_name: str,
        database: Database,
        tickets: TicketService,
        calendar: WorkCalendar,
        spool_dir: Path,
        recognize: Recognize | None = None,
        clock: Callable[[], datetime] = utcnow,
        screen: CallerScreen | None = None,
    ) -> None:
        self.flows = flows
        self.sounds_dir = sounds_dir
        self.system_name = system_name
        self.database = database
        self.tickets = tickets
        self.calendar = calendar
        # Where Asterisk may write the caller's spoken answers (its own spool folder).
        self.spool_dir = spool_dir
        self.recognize = recognize
        self.clock = clock
        # Blocked prank callers are warned before the 112 and hotline flows (blocking.py).
        self.screen = screen or CallerScreen(database, sounds_dir, system_name=system_name, clock=clock)

    # ---- entry point: every FastAGI route ends here ---------------------------------------
    async def handle(self, session: AgiSession) -> None:
        flow = self.flows().get(session.route)
        linkedid = (await session.run(GetVariable("CHANNEL(linkedid)"))).data or session.uniqueid
        if flow is None:
            log.warning(
                "call %s: no flow %r; sending the call to %s", linkedid, session.route, FALLBACK_QUEUE
            )
            await session.run(SetVariable("CC_QUEUE", FALLBACK_QUEUE))
            return
        caller = session.env.get("agi_callerid", "")[:40]
        call = IvrCall(session=session, linkedid=linkedid, caller=caller, language=flow.language)
        try:
            verdict = await self.screen.screen(
                session, flow.name, linkedid, caller, call.language, call.fields
            )
            if verdict is Verdict.CLEAR:
                await self._walk(call, flow)
        except (AgiHangup, AgiProtocolError):
            raise
        except Exception:
            # A bug or an outage must not strand the caller: hand the call to humans.
            log.exception(
                "call %s: flow %s failed; sending the call to %s", linkedid, flow.name, FALLBACK_QUEUE
            )
            await session.run(SetVariable("CC_QUEUE", FALLBACK_QUEUE))
        finally:
            await self._save_answers(call, flow)

    async def _save_answers(self, call: IvrCall, flow: f.Flow) -> None:
        """What the caller chose and keyed in, kept on the call (for the screen-pop and history),
        even when the caller hung up half-way."""
        answers = {**call.answers(), "flow": flow.name, "language": call.language}
        key = call.key(self.system_name)

        def save(session: Session) -> None:
            record = ensure_call(session, key, self.clock())
            record.ivr = {**(record.ivr or {}), **answers}
            if not record.service:
                record.service = flow.name[:16]

        try:
            await self.database.run(save)
        except SQLAlchemyError as exc:
            log.error("call %s: IVR answers not saved: %s", call.linkedid, exc)

    async def _walk(self, call: IvrCall, flow: f.Flow) -> None:
        node_id: str | None = flow.start
        for _ in range(MAX_STEPS):
            if node_id is None:
                return
            node = flow.nodes[node_id]
            log.info("call %s: %s/%s (%s)", call.linkedid, flow.name, node_id, type(node).__name__)
            if isinstance(node, f.SubFlow):
                call.stack.append((flow.name, node.next))
                flow, node_id = self.flows()[node.flow], self.flows()[node.flow].start
                continue
            if isinstance(node, f.Hangup) and call.stack:
                # A subflow's hang-up hands the caller back to the flow that called it.
                if node.prompt:
                    await self._play(call, flow, node_id, "")
                name, node_id = call.stack.pop()
                flow = self.flows()[name]
                continue
            node_id = await NODE_HANDLERS[type(node)](self, call, flow, node_id, node)
        log.error(
            "call %s: flow %s ran %d steps without ending; transferring", call.linkedid, flow.name, MAX_STEPS
        )
        await call.session.run(SetVariable("CC_QUEUE", FALLBACK_QUEUE))

    # ---- prompts and keys -----------------------------------------------------------------
    def _file(self, flow: f.Flow, node_id: str, lang: str, part: str = "") -> str:
        return prompt_file(self.sounds_dir, prompt_name(flow.name, node_id, lang, part))

    async def _play(self, call: IvrCall, flow: f.Flow, node_id: str, part: str) -> None:
        await call.session.run(StreamFile(self._file(flow, node_id, call.language, part)), timeout=120)

    async def _ask(
        self, call: IvrCall, flow: f.Flow, node_id: str, timeout: float, digits: int, part: str = ""
    ) -> str:
        reply = await call.session.run(
            GetData(self._file(flow, node_id, call.language, part), int(timeout * 1000), digits),
            timeout=timeout + 120,
        )
        # Caller input: keep only keys a phone can send.
        return "".join(c for c in reply.result if c in KEYS)[:digits]

    async def _say_digits(self, call: IvrCall, digits: str) -> None:
        for digit in digits:
            if digit in DIGITS:
                await call.session.run(
                    StreamFile(prompt_file(self.sounds_dir, digit_name(digit, call.language))), timeout=30
                )

    # ---- node types ---------------------------------------------------------------------
    async def _node_play(self, call: IvrCall, flow: f.Flow, node_id: str, node: f.Play) -> str | None:
        await self._play(call, flow, node_id, "")
        return node.next

    async def _node_menu(self, call: IvrCall, flow: f.Flow, node_id: str, node: f.Menu) -> str | None:
        for attempt in range(node.retries + 1):
            key = await self._ask(call, flow, node_id, node.timeout, 1)
            option = node.options.get(key)
            if option is not None:
                call.fields.update(option.set)
                log.info("call %s: %s/%s key %s", call.linkedid, flow.name, node_id, key)
                return option.next
            last = attempt == node.retries
            if key == "":
                log.info("call %s: %s/%s no key", call.linkedid, flow.name, node_id)
                if node.timeout_prompt and not last:
                    await self._play(call, flow, node_id, "timeout")
            else:
                log.info("call %s: %s/%s invalid key", call.linkedid, flow.name, node_id)
                if node.invalid_prompt and not last:
                    await self._play(call, flow, node_id, "invalid")
        return node.default

    async def _node_collect(self, call: IvrCall, flow: f.Flow, node_id: str, node: f.Collect) -> str | None:
        pattern = re.compile(node.pattern) if node.pattern else None
        for attempt in range(node.retries + 1):
            digits = await self._ask(call, flow, node_id, node.timeout, node.max_digits)
            digits = digits.rstrip(node.terminator) if node.terminator else digits
            valid = (
                digits.isdigit()
                and node.min_digits <= len(digits) <= node.max_digits
                and (pattern is None or pattern.fullmatch(digits) is not None)
            )
            if valid:
                call.fields[node.field] = digits
                return node.next
            if node.invalid_prompt and attempt < node.retries:
                await self._play(call, flow, node_id, "invalid")
        return node.on_fail

    async def _node_speech(
        self, call: IvrCall, flow: f.Flow, node_id: str, node: f.SpeechChoice
    ) -> str | None:
        key = None
        if self.recognize is not None:
            key = await self._listen(call, flow, node_id, node)
        if key is not None and key in node.options:
            option = node.options[key]
            call.fields.update(option.set)
            return option.next
        # Not understood (or no recogniser): the same choice by keypad.
        menu = f.Menu(prompt=node.prompt, options=node.options, default=node.default, timeout=node.timeout,
                      retries=node.retries)  # fmt: skip
        return await self._node_menu(call, flow, node_id, menu)

    async def _listen(self, call: IvrCall, flow: f.Flow, node_id: str, node: f.SpeechChoice) -> str | None:
        """The option key the caller chose by voice (or by a key pressed while we listened)."""
        # Named from the channel's unique id and the node id only: no caller data in file names.
        base = self.spool_dir / f"ivr-{_safe(call.session.uniqueid)}-{node_id}"
        await self._play(call, flow, node_id, "")
        listen_ms = int(node.listen_seconds * 1000)
        reply = await call.session.run(
            RecordFile(str(base), "wav", KEYS, listen_ms, silence=1), timeout=node.listen_seconds + 30
        )
        if reply.data == "dtmf":
            return reply.digit or None
        assert self.recognize is not None
        word = await self.recognize(base.with_suffix(".wav"), list(node.grammar), node.engine)
        log.info("call %s: %s/%s heard %r", call.linkedid, flow.name, node_id, word)
        return node.grammar.get(word) if word else None

    async def _node_set(self, call: IvrCall, flow: f.Flow, node_id: str, node: f.SetFields) -> str | None:
        call.fields.update(node.values)
        return node.next

    async def _node_create(
        self, call: IvrCall, flow: f.Flow, node_id: str, node: f.CreateTicket
    ) -> str | None:
        fields = call.answers()
        new = NewTicket(
            summary=node.summary.get(call.language) or node.summary[flow.language],
            channel=node.channel,
            category=fields.get("category"),
            district=fields.get("district", ""),
            description="; ".join(f"{k}={v}" for k, v in sorted(fields.items())),
            call=call.key(self.system_name),
        )

        def create(session: Session) -> str:
            ticket, _created = self.tickets.create(session, new, IVR_ACTOR)
            return ticket.number

        try:
            number = await self.database.run(create)
        except (SQLAlchemyError, ValueError) as exc:
            log.error("call %s: ticket not created: %s", call.linkedid, exc)
            return node.next
        call.fields["ticket_number"] = number
        log.info("call %s: ticket %s created by the IVR", call.linkedid, number)
        await call.session.run(SetVariable("CC_TICKET", number))
        await self._play(call, flow, node_id, "readback")
        await self._say_digits(call, number)
        return node.next

    async def _node_lookup(
        self, call: IvrCall, flow: f.Flow, node_id: str, node: f.LookupTicket
    ) -> str | None:
        number = call.fields.get(node.field, "")

        def status(session: Session) -> str | None:
            if parse_number(number) is None:
                return None
            try:
                return self.tickets.get(session, number, IVR_ACTOR).status
            except NotFound:
                return None

        found = await self.database.run(status)
        log.info("call %s: status lookup -> %s", call.linkedid, found or "not found")
        if found is None or found not in node.status:
            await self._play(call, flow, node_id, "not_found")
        else:
            await self._play(call, flow, node_id, "found")
            await self._play(call, flow, node_id, f"status-{found}")
        return node.next

    async def _node_transfer(self, call: IvrCall, flow: f.Flow, node_id: str, node: f.Transfer) -> str | None:
        if node.prompt:
            await self._play(call, flow, node_id, "")
        choice = call.fields.get("service") or call.fields.get("category") or ""
        if f.FIELD_VALUE.fullmatch(choice):
            await call.session.run(SetVariable("CC_CHOICE", choice))
        if node.priority:
            await call.session.run(SetVariable("QUEUE_PRIO", str(node.priority)))
        await call.session.run(SetVariable("CC_QUEUE", node.queue))
        log.info("call %s: to queue %s", call.linkedid, node.queue)
        return None

    async def _node_condition(
        self, call: IvrCall, flow: f.Flow, node_id: str, node: f.Condition
    ) -> str | None:
        local = self.clock().astimezone(self.calendar.timezone)
        opens, closes = time.fromisoformat(node.open_from), time.fromisoformat(node.open_until)
        is_open = local.isoweekday() in node.open_days and opens <= local.time() < closes
        if node.closed_on_holidays and local.date() in self.calendar.holidays:
            is_open = False
        return node.if_open if is_open else node.if_closed

    async def _node_language(self, call: IvrCall, flow: f.Flow, node_id: str, node: f.Language) -> str | None:
        key = await self._ask(call, flow, node_id, node.timeout, 1)
        if key in node.options:
            call.language = node.options[key]
        return node.next

    async def _node_goto(self, call: IvrCall, flow: f.Flow, node_id: str, node: f.Goto) -> str | None:
        return node.next

    async def _node_hangup(self, call: IvrCall, flow: f.Flow, node_id: str, node: f.Hangup) -> str | None:
        if node.prompt:
            await self._play(call, flow, node_id, "")
        await call.session.run(HangupCommand())
        return None


def _safe(value: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", value)[:80]


# Each handler takes its own node type; the table guarantees the pairing.
NodeHandler = Callable[..., Awaitable[str | None]]
NODE_HANDLERS: dict[type, NodeHandler] = {
    f.Play: FlowRunner._node_play,
    f.Menu: FlowRunner._node_menu,
    f.Collect: FlowRunner._node_collect,
    f.SpeechChoice: FlowRunner._node_speech,
    f.SetFields: FlowRunner._node_set,
    f.CreateTicket: FlowRunner._node_create,
    f.LookupTicket: FlowRunner._node_lookup,
    f.Transfer: FlowRunner._node_transfer,
    f.Condition: FlowRunner._node_condition,
    f.Language: FlowRunner._node_language,
    f.Goto: FlowRunner._node_goto,
    f.Hangup: FlowRunner._node_hangup,
}
