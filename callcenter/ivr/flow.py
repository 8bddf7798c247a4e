"""IVR flows as data: the validated, typed form of an ``ivr_flows/*.yaml`` file. Pure.

A flow is a set of named nodes and a start node. Each node does one thing (play, ask, collect,
create a ticket, transfer, ...) and names the node that comes next. The loader
(``ivr/loader.py``) turns YAML into these objects and refuses a file with any error, naming the
file, line and field; the interpreter (``ivr/interpreter.py``) runs them over a FastAGI session.

Prompt texts are per language (``{"id": "...", "en": "..."}``); the flow's default language
must always be present. Audio files are made from the texts by ``callcenter prompts build`` and
named ``<flow>-<node>[-<part>]-<lang>``; a recorded file under that name replaces the generated one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

LANGUAGES = ("id", "en")
# Values a flow sets (category, service, ...) and answers it passes on end up in tickets and
# channel variables: short and plain. The loader requires them of flow files; the interpreter
# drops anything else the caller produced.
FIELD_VALUE = re.compile(r"[A-Za-z0-9_ .-]{0,64}")
Prompt = dict[str, str]  # language -> text


@dataclass(frozen=True)
class Play:
    prompt: Prompt
    next: str


@dataclass(frozen=True)
class MenuOption:
    next: str
    # Ticket/call fields this choice sets, e.g. {"category": "JALAN"} or {"service": "police"}.
    set: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Menu:
    """One DTMF key out of ``options``; retries on invalid or missing input, then ``default``."""

    prompt: Prompt
    options: dict[str, MenuOption]  # key ("0"-"9", "*", "#") -> option
    default: str  # node after the retries are used up (or at once on timeout if retries == 0)
    timeout: float = 5.0  # seconds to wait for the key after the prompt
    retries: int = 2
    invalid_prompt: Prompt | None = None
    timeout_prompt: Prompt | None = None


@dataclass(frozen=True)
class Collect:
    """Several digits into ``field`` (e.g. a district code or a ticket number)."""

    prompt: Prompt
    field: str
    next: str
    on_fail: str  # where to go when nothing valid was entered after the retries
    min_digits: int = 1
    max_digits: int = 10
    terminator: str = "#"
    timeout: float = 6.0
    retries: int = 2
    invalid_prompt: Prompt | None = None
    # Digits must match this regular expression (after min/max), e.g. "^[0-9]{4}$".
    pattern: str | None = None


@dataclass(frozen=True)
class SpeechChoice:
    """Say one word of ``grammar``; understood words map to options; otherwise DTMF as in Menu."""

    prompt: Prompt
    grammar: dict[str, str]  # spoken word -> DTMF key of the same option
    options: dict[str, MenuOption]
    default: str
    engine: str = "vosk"
    listen_seconds: float = 3.0
    timeout: float = 5.0
    retries: int = 1


@dataclass(frozen=True)
class SetFields:
    values: dict[str, str]
    next: str


@dataclass(frozen=True)
class CreateTicket:
    """Create the ticket from what was collected and read its number back, digit by digit."""

    channel: Literal["112", "hotline"]
    summary: Prompt  # a summary per language for the ticket (agents edit it later)
    readback: Prompt  # spoken before the digits, e.g. "Nomor tiket Anda adalah"
    next: str


@dataclass(frozen=True)
class LookupTicket:
    """Read ``field`` (a ticket number the caller keyed in) and speak the ticket's status."""

    field: str
    found: Prompt  # spoken before the status, e.g. "Status tiket Anda:"
    not_found: Prompt
    status: dict[str, Prompt]  # status -> words ("menunggu" -> {"id": "menunggu", ...})
    next: str


@dataclass(frozen=True)
class Transfer:
    """Leave the IVR for a queue of humans (the dialplan does the Queue())."""

    queue: Literal["q112", "hotline"]
    priority: int = 0
    prompt: Prompt | None = None


@dataclass(frozen=True)
class Condition:
    """Branch on the clock: office hours and holidays (the working-day calendar)."""

    open_days: tuple[int, ...]  # ISO weekdays
    open_from: str  # "HH:MM" local time
    open_until: str
    if_open: str
    if_closed: str
    closed_on_holidays: bool = True


@dataclass(frozen=True)
class Language:
    prompt: Prompt
    options: dict[str, str]  # key -> language code
    next: str
    timeout: float = 4.0


@dataclass(frozen=True)
class Goto:
    next: str


@dataclass(frozen=True)
class SubFlow:
    """Run another flow, then come back to ``next`` (unless it transfers or hangs up)."""

    flow: str
    next: str


@dataclass(frozen=True)
class Hangup:
    prompt: Prompt | None = None


Node = (
    Play | Menu | Collect | SpeechChoice | SetFields | CreateTicket | LookupTicket | Transfer
    | Condition | Language | Goto | SubFlow | Hangup
)  # fmt: skip

# The YAML ``kind`` of each node type: an explicit table, shared by the loader and the graph.
KINDS: dict[str, type[Node]] = {
    "play": Play,
    "menu": Menu,
    "collect": Collect,
    "speech": SpeechChoice,
    "set": SetFields,
    "create_ticket": CreateTicket,
    "lookup_ticket": LookupTicket,
    "transfer": Transfer,
    "condition": Condition,
    "language": Language,
    "goto": Goto,
    "subflow": SubFlow,
    "hangup": Hangup,
}


@dataclass(frozen=True)
class Flow:
    name: str  # the FastAGI route: agi://host:port/<name>
    start: str
    nodes: dict[str, Node]
    language: str = "id"
    description: str = ""
    source: str = ""  # the file it came from, for messages


def successors(node: Node) -> list[str]:
    """The nodes a node can lead to (within its flow), for validation and the graph."""
    out: list[str] = []
    if isinstance(node, (Menu, SpeechChoice)):
        out += [o.next for o in node.options.values()] + [node.default]
    elif isinstance(node, Collect):
        out += [node.next, node.on_fail]
    elif isinstance(node, Condition):
        out += [node.if_open, node.if_closed]
    elif isinstance(node, (Play, SetFields, CreateTicket, LookupTicket, Language, Goto, SubFlow)):
        out.append(node.next)
    return out


def is_exit(node: Node) -> bool:
    """Nodes that end the IVR part of the call."""
    return isinstance(node, (Transfer, Hangup))
