"""Typed AMI events: the wire messages the engine tracks, turned into frozen dataclasses.

``parse_event`` looks the event name up in ``PARSERS`` (an explicit table, lower-cased name to
parser). Events we do not track give ``None``; a tracked event with a missing or unreadable header
gives a ``MalformedEvent`` instead of raising, so one bad message never stops the event stream and
the live state can count it.

Facts about Asterisk 22.10 (AMI 11.0.0) that shape the parsers, checked on recorded traces:

- Channel variables named in manager.conf ``channelvars`` arrive as repeated ``ChanVariable:
  NAME=value`` headers (``DestChanVariable`` for the second channel of AgentCalled, DialBegin, ...);
  panoramisk keeps a repeated header as a list. The older ``ChanVariable(NAME): value`` and
  Asterisk 1.8's ``ChanVariable(CHANNEL): NAME=value`` are read too.
- Unset caller ID is ``<unknown>`` in channel snapshots and ``unknown`` in QueueEntry.
- List events answering an action (CoreShowChannel, QueueParams, QueueMember, QueueEntry, the
  ``*Complete`` events) carry no Timestamp; QueueMember names the member ``Name``/``Location``
  where the live member events say ``MemberName``/``Interface``; QueueEntry has no Linkedid.
- AgentConnect's RingTime is in seconds, AgentRingNoAnswer's RingTime in milliseconds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from panoramisk.message import Message

# Asterisk's spellings of "no caller ID"; kept out of the state so the UI shows an empty field.
_UNKNOWN_IDS = frozenset({"<unknown>", "unknown"})


class _Malformed(Exception):
    """A tracked event lacks a header or has one that cannot be read (internal to parsing)."""


# ---- the parts events share ----------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ChannelSnapshot:
    """One channel as an event describes it (Asterisk's channel snapshot)."""

    name: str
    uniqueid: str
    linkedid: str
    state: int
    state_desc: str
    caller_number: str
    caller_name: str
    connected_number: str
    connected_name: str
    context: str
    exten: str
    variables: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BridgeSnapshot:
    uniqueid: str
    bridge_type: str
    technology: str
    num_channels: int


@dataclass(frozen=True, slots=True)
class MemberSnapshot:
    """A queue member as QueueMember* events and the QueueMember list item describe it."""

    queue: str
    interface: str
    member_name: str
    state_interface: str
    membership: str
    penalty: int
    calls_taken: int
    last_call: int
    last_pause: int
    login_time: int
    in_call: bool
    status: int
    paused: bool
    paused_reason: str
    wrapuptime: int


# ---- events ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class AmiEvent:
    system_name: str
    # Asterisk's own clock (manager.conf timestampevents); None on list items, which have none.
    timestamp: float | None


@dataclass(frozen=True, slots=True)
class MalformedEvent(AmiEvent):
    event: str
    reason: str


@dataclass(frozen=True, slots=True)
class FullyBooted(AmiEvent):
    pass


@dataclass(frozen=True, slots=True)
class ChannelEvent(AmiEvent):
    channel: ChannelSnapshot


@dataclass(frozen=True, slots=True)
class Newchannel(ChannelEvent):
    pass


@dataclass(frozen=True, slots=True)
class Newstate(ChannelEvent):
    pass


@dataclass(frozen=True, slots=True)
class NewCallerid(ChannelEvent):
    pass


@dataclass(frozen=True, slots=True)
class NewConnectedLine(ChannelEvent):
    pass


@dataclass(frozen=True, slots=True)
class Hangup(ChannelEvent):
    cause: int
    cause_text: str


@dataclass(frozen=True, slots=True)
class DialBegin(AmiEvent):
    caller: ChannelSnapshot | None  # None for an originated call with no calling channel
    dest: ChannelSnapshot
    dial_string: str


@dataclass(frozen=True, slots=True)
class DialEnd(AmiEvent):
    caller: ChannelSnapshot | None
    dest: ChannelSnapshot
    dial_status: str


@dataclass(frozen=True, slots=True)
class BridgeCreate(AmiEvent):
    bridge: BridgeSnapshot


@dataclass(frozen=True, slots=True)
class BridgeDestroy(AmiEvent):
    bridge: BridgeSnapshot


@dataclass(frozen=True, slots=True)
class BridgeEnter(AmiEvent):
    bridge: BridgeSnapshot
    channel: ChannelSnapshot


@dataclass(frozen=True, slots=True)
class BridgeLeave(AmiEvent):
    bridge: BridgeSnapshot
    channel: ChannelSnapshot


@dataclass(frozen=True, slots=True)
class QueueCallerJoin(ChannelEvent):
    queue: str
    position: int
    count: int


@dataclass(frozen=True, slots=True)
class QueueCallerLeave(ChannelEvent):
    queue: str
    position: int
    count: int


@dataclass(frozen=True, slots=True)
class QueueCallerAbandon(ChannelEvent):
    queue: str
    position: int
    original_position: int
    hold_time: int


@dataclass(frozen=True, slots=True)
class AgentEvent(AmiEvent):
    """An event about a queue caller (``caller``) and a member's channel (``agent``)."""

    caller: ChannelSnapshot
    agent: ChannelSnapshot | None
    queue: str
    interface: str
    member_name: str


@dataclass(frozen=True, slots=True)
class AgentCalled(AgentEvent):
    pass


@dataclass(frozen=True, slots=True)
class AgentConnect(AgentEvent):
    hold_time: int
    ring_time: int  # seconds


@dataclass(frozen=True, slots=True)
class AgentComplete(AgentEvent):
    hold_time: int
    talk_time: int
    reason: str  # caller | agent | transfer


@dataclass(frozen=True, slots=True)
class AgentRingNoAnswer(AgentEvent):
    ring_time_ms: int


@dataclass(frozen=True, slots=True)
class AgentDump(AgentEvent):
    pass


@dataclass(frozen=True, slots=True)
class MemberEvent(AmiEvent):
    member: MemberSnapshot


@dataclass(frozen=True, slots=True)
class QueueMemberAdded(MemberEvent):
    pass


@dataclass(frozen=True, slots=True)
class QueueMemberRemoved(MemberEvent):
    pass


@dataclass(frozen=True, slots=True)
class QueueMemberPause(MemberEvent):
    pass


@dataclass(frozen=True, slots=True)
class QueueMemberStatus(MemberEvent):
    pass


@dataclass(frozen=True, slots=True)
class QueueMemberRinginuse(MemberEvent):
    pass


# ---- list items answering CoreShowChannels / QueueStatus ----------------------------------
@dataclass(frozen=True, slots=True)
class ListEvent(AmiEvent):
    action_id: str


@dataclass(frozen=True, slots=True)
class CoreShowChannel(ListEvent):
    channel: ChannelSnapshot
    bridge_id: str
    application: str
    application_data: str
    duration: int  # seconds


@dataclass(frozen=True, slots=True)
class CoreShowChannelsComplete(ListEvent):
    list_items: int


@dataclass(frozen=True, slots=True)
class QueueParams(ListEvent):
    queue: str
    max_callers: int
    strategy: str
    calls: int
    hold_time: int
    talk_time: int
    completed: int
    abandoned: int
    service_level: int
    service_level_perf: float
    weight: int


@dataclass(frozen=True, slots=True)
class QueueMember(ListEvent):
    member: MemberSnapshot


@dataclass(frozen=True, slots=True)
class QueueEntry(ListEvent):
    queue: str
    position: int
    channel_name: str
    uniqueid: str
    caller_number: str
    caller_name: str
    connected_number: str
    connected_name: str
    wait: int
    priority: int


@dataclass(frozen=True, slots=True)
class QueueStatusComplete(ListEvent):
    list_items: int


# ---- reading headers ---------------------------------------------------------------------
def _headers(message: Mapping[str, Any]) -> dict[str, Any]:
    """Lower-cased header names, with old-style ``ChanVariable(X)`` headers folded into one list."""
    if isinstance(message, Message):
        # panoramisk keeps {lower-case name: (name as sent, value)}. Reading that directly is
        # several times faster than its Mapping interface, and this runs for every event.
        store: dict[str, tuple[str, Any]] = message._store
    else:
        store = {str(name).lower(): (str(name), value) for name, value in message.items()}
    headers = {low: pair[1] for low, pair in store.items()}
    if "(" in "".join(store):  # rare: only Asterisk 1.8-style variables have one
        for low, (name, value) in store.items():
            if "(" in low:
                del headers[low]
                _fold_variable(headers, low, name, value)
    return headers


def _fold_variable(headers: dict[str, Any], low: str, name: str, value: Any) -> None:
    """``ChanVariable(NAME): value`` or Asterisk 1.8's ``ChanVariable(CHANNEL): NAME=value``."""
    head, _, rest = low.partition("(")
    if not head.endswith("chanvariable") or not rest.endswith(")"):
        return
    inner = name[name.index("(") + 1 : -1]  # as sent: variable names are case-sensitive
    items = value if isinstance(value, list) else [value]
    folded = [str(item) if "/" in inner else f"{inner}={item}" for item in items]
    existing = headers.get(head)
    if existing is None:
        headers[head] = folded
    else:
        headers[head] = [*(existing if isinstance(existing, list) else [existing]), *folded]


def _text(h: Mapping[str, Any], key: str) -> str:
    value = h.get(key)
    if isinstance(value, str):
        return value
    raise _Malformed(f"missing header {key}" if value is None else f"header {key} repeated")


def _opt(h: Mapping[str, Any], key: str, default: str = "") -> str:
    value = h.get(key, default)
    if isinstance(value, str):
        return value
    raise _Malformed(f"header {key} repeated")


def _int(h: Mapping[str, Any], key: str, default: int | None = None) -> int:
    raw = h.get(key)
    if raw is None and default is not None:
        return default
    if not isinstance(raw, str):
        raise _Malformed(f"missing header {key}" if raw is None else f"header {key} repeated")
    try:
        return int(raw)  # int() itself allows the spaces around
    except ValueError:
        raise _Malformed(f"header {key} is not an integer: {raw.strip()[:40]!r}") from None


def _float(h: Mapping[str, Any], key: str) -> float:
    raw = _text(h, key).strip()
    try:
        value = float(raw)
    except ValueError:
        raise _Malformed(f"header {key} is not a number: {raw[:40]!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise _Malformed(f"header {key} is not a finite number")
    return value


def _flag(h: Mapping[str, Any], key: str) -> bool:
    return _int(h, key, 0) != 0


def _timestamp(h: Mapping[str, Any]) -> float | None:
    return _float(h, "timestamp") if "timestamp" in h else None


def _duration(h: Mapping[str, Any], key: str) -> int:
    raw = _text(h, key).strip()
    parts = raw.split(":")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise _Malformed(f"header {key} is not HH:MM:SS: {raw[:40]!r}")
    hours, minutes, seconds = (int(p) for p in parts)
    return hours * 3600 + minutes * 60 + seconds


def _caller_id(value: str) -> str:
    return "" if value in _UNKNOWN_IDS else value


def _variables(h: Mapping[str, Any], prefix: str) -> dict[str, str]:
    value = h.get(prefix + "chanvariable")
    if value is None:
        return {}
    found: dict[str, str] = {}
    for item in value if isinstance(value, list) else [value]:
        name, sep, val = str(item).partition("=")
        if sep and name:
            found[name] = val
    return found


def _channel(h: Mapping[str, Any], prefix: str = "") -> ChannelSnapshot:
    return ChannelSnapshot(
        name=_text(h, prefix + "channel"),
        uniqueid=_text(h, prefix + "uniqueid"),
        linkedid=_text(h, prefix + "linkedid"),
        state=_int(h, prefix + "channelstate", -1),
        state_desc=_opt(h, prefix + "channelstatedesc"),
        caller_number=_caller_id(_opt(h, prefix + "calleridnum")),
        caller_name=_caller_id(_opt(h, prefix + "calleridname")),
        connected_number=_caller_id(_opt(h, prefix + "connectedlinenum")),
        connected_name=_caller_id(_opt(h, prefix + "connectedlinename")),
        context=_opt(h, prefix + "context"),
        exten=_opt(h, prefix + "exten"),
        variables=_variables(h, prefix),
    )


def _maybe_channel(h: Mapping[str, Any], prefix: str = "") -> ChannelSnapshot | None:
    return _channel(h, prefix) if prefix + "uniqueid" in h else None


def _bridge(h: Mapping[str, Any]) -> BridgeSnapshot:
    return BridgeSnapshot(
        uniqueid=_text(h, "bridgeuniqueid"),
        bridge_type=_opt(h, "bridgetype"),
        technology=_opt(h, "bridgetechnology"),
        num_channels=_int(h, "bridgenumchannels", 0),
    )


def _member(h: Mapping[str, Any], name_key: str, interface_key: str) -> MemberSnapshot:
    return MemberSnapshot(
        queue=_text(h, "queue"),
        interface=_text(h, interface_key),
        member_name=_opt(h, name_key),
        state_interface=_opt(h, "stateinterface"),
        membership=_opt(h, "membership"),
        penalty=_int(h, "penalty", 0),
        calls_taken=_int(h, "callstaken", 0),
        last_call=_int(h, "lastcall", 0),
        last_pause=_int(h, "lastpause", 0),
        login_time=_int(h, "logintime", 0),
        in_call=_flag(h, "incall"),
        status=_int(h, "status", 0),
        paused=_flag(h, "paused"),
        # Asterisk 13-16 put the reason in "Reason" as well; 22 only in PausedReason.
        paused_reason=_opt(h, "pausedreason") or _opt(h, "reason"),
        wrapuptime=_int(h, "wrapuptime", 0),
    )


def _base(system_name: str, h: Mapping[str, Any]) -> dict[str, Any]:
    return {"system_name": system_name, "timestamp": _timestamp(h)}


def _list_base(system_name: str, h: Mapping[str, Any]) -> dict[str, Any]:
    return {**_base(system_name, h), "action_id": _opt(h, "actionid")}


def _agent_fields(h: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "caller": _channel(h),
        "agent": _maybe_channel(h, "dest"),
        "queue": _text(h, "queue"),
        "interface": _text(h, "interface"),
        "member_name": _opt(h, "membername"),
    }


# ---- one parser per event ----------------------------------------------------------------
Parser = Callable[[str, Mapping[str, Any]], AmiEvent]


def _channel_event(kind: Callable[..., ChannelEvent]) -> Parser:
    def parse(system_name: str, h: Mapping[str, Any]) -> AmiEvent:
        return kind(**_base(system_name, h), channel=_channel(h))

    return parse


def _member_event(kind: Callable[..., MemberEvent]) -> Parser:
    def parse(system_name: str, h: Mapping[str, Any]) -> AmiEvent:
        return kind(**_base(system_name, h), member=_member(h, "membername", "interface"))

    return parse


def _fully_booted(system_name: str, h: Mapping[str, Any]) -> AmiEvent:
    return FullyBooted(**_base(system_name, h))


def _hangup(system_name: str, h: Mapping[str, Any]) -> AmiEvent:
    return Hangup(
        **_base(system_name, h),
        channel=_channel(h),
        cause=_int(h, "cause", 0),
        cause_text=_opt(h, "cause-txt"),
    )


def _dial_begin(system_name: str, h: Mapping[str, Any]) -> AmiEvent:
    return DialBegin(
        **_base(system_name, h),
        caller=_maybe_channel(h),
        dest=_channel(h, "dest"),
        dial_string=_opt(h, "dialstring"),
    )


def _dial_end(system_name: str, h: Mapping[str, Any]) -> AmiEvent:
    return DialEnd(
        **_base(system_name, h),
        caller=_maybe_channel(h),
        dest=_channel(h, "dest"),
        dial_status=_opt(h, "dialstatus"),
    )


def _bridge_create(system_name: str, h: Mapping[str, Any]) -> AmiEvent:
    return BridgeCreate(**_base(system_name, h), bridge=_bridge(h))


def _bridge_destroy(system_name: str, h: Mapping[str, Any]) -> AmiEvent:
    return BridgeDestroy(**_base(system_name, h), bridge=_bridge(h))


def _bridge_enter(system_name: str, h: Mapping[str, Any]) -> AmiEvent:
    return BridgeEnter(**_base(system_name, h), bridge=_bridge(h), channel=_channel(h))


def _bridge_leave(system_name: str, h: Mapping[str, Any]) -> AmiEvent:
    return BridgeLeave(**_base(system_name, h), bridge=_bridge(h), channel=_channel(h))


def _caller_join(system_name: str, h: Mapping[str, Any]) -> AmiEvent:
    return QueueCallerJoin(
        **_base(system_name, h),
        channel=_channel(h),
        queue=_text(h, "queue"),
        position=_int(h, "position"),
        count=_int(h, "count", 0),
    )


def _caller_leave(system_name: str, h: Mapping[str, Any]) -> AmiEvent:
    return QueueCallerLeave(
        **_base(system_name, h),
        channel=_channel(h),
        queue=_text(h, "queue"),
        position=_int(h, "position"),
        count=_int(h, "count", 0),
    )


def _caller_abandon(system_name: str, h: Mapping[str, Any]) -> AmiEvent:
    return QueueCallerAbandon(
        **_base(system_name, h),
        channel=_channel(h),
        queue=_text(h, "queue"),
        position=_int(h, "position"),
        original_position=_int(h, "originalposition", 0),
        hold_time=_int(h, "holdtime"),
    )


def _agent_called(system_name: str, h: Mapping[str, Any]) -> AmiEvent:
    return AgentCalled(**_base(system_name, h), **_agent_fields(h))


def _agent_connect(system_name: str, h: Mapping[str, Any]) -> AmiEvent:
    return AgentConnect(
        **_base(system_name, h),
        **_agent_fields(h),
        hold_time=_int(h, "holdtime"),
        ring_time=_int(h, "ringtime", 0),
    )


def _agent_complete(system_name: str, h: Mapping[str, Any]) -> AmiEvent:
    return AgentComplete(
        **_base(system_name, h),
        **_agent_fields(h),
        hold_time=_int(h, "holdtime"),
        talk_time=_int(h, "talktime"),
        reason=_opt(h, "reason"),
    )


def _agent_ring_no_answer(system_name: str, h: Mapping[str, Any]) -> AmiEvent:
    return AgentRingNoAnswer(**_base(system_name, h), **_agent_fields(h), ring_time_ms=_int(h, "ringtime", 0))


def _agent_dump(system_name: str, h: Mapping[str, Any]) -> AmiEvent:
    return AgentDump(**_base(system_name, h), **_agent_fields(h))


def _core_show_channel(system_name: str, h: Mapping[str, Any]) -> AmiEvent:
    return CoreShowChannel(
        **_list_base(system_name, h),
        channel=_channel(h),
        bridge_id=_opt(h, "bridgeid").strip(),
        application=_opt(h, "application"),
        application_data=_opt(h, "applicationdata"),
        duration=_duration(h, "duration") if "duration" in h else 0,
    )


def _core_show_channels_complete(system_name: str, h: Mapping[str, Any]) -> AmiEvent:
    return CoreShowChannelsComplete(**_list_base(system_name, h), list_items=_int(h, "listitems", 0))


def _queue_params(system_name: str, h: Mapping[str, Any]) -> AmiEvent:
    return QueueParams(
        **_list_base(system_name, h),
        queue=_text(h, "queue"),
        max_callers=_int(h, "max", 0),
        strategy=_opt(h, "strategy"),
        calls=_int(h, "calls", 0),
        hold_time=_int(h, "holdtime", 0),
        talk_time=_int(h, "talktime", 0),
        completed=_int(h, "completed", 0),
        abandoned=_int(h, "abandoned", 0),
        service_level=_int(h, "servicelevel", 0),
        service_level_perf=_float(h, "servicelevelperf") if "servicelevelperf" in h else 0.0,
        weight=_int(h, "weight", 0),
    )


def _queue_member(system_name: str, h: Mapping[str, Any]) -> AmiEvent:
    return QueueMember(**_list_base(system_name, h), member=_member(h, "name", "location"))


def _queue_entry(system_name: str, h: Mapping[str, Any]) -> AmiEvent:
    return QueueEntry(
        **_list_base(system_name, h),
        queue=_text(h, "queue"),
        position=_int(h, "position"),
        channel_name=_text(h, "channel"),
        uniqueid=_text(h, "uniqueid"),
        caller_number=_caller_id(_opt(h, "calleridnum")),
        caller_name=_caller_id(_opt(h, "calleridname")),
        connected_number=_caller_id(_opt(h, "connectedlinenum")),
        connected_name=_caller_id(_opt(h, "connectedlinename")),
        wait=_int(h, "wait"),
        priority=_int(h, "priority", 0),
    )


def _queue_status_complete(system_name: str, h: Mapping[str, Any]) -> AmiEvent:
    return QueueStatusComplete(**_list_base(system_name, h), list_items=_int(h, "listitems", 0))


PARSERS: Mapping[str, Parser] = MappingProxyType(
    {
        "fullybooted": _fully_booted,
        "newchannel": _channel_event(Newchannel),
        "newstate": _channel_event(Newstate),
        "newcallerid": _channel_event(NewCallerid),
        "newconnectedline": _channel_event(NewConnectedLine),
        "hangup": _hangup,
        "dialbegin": _dial_begin,
        "dialend": _dial_end,
        "bridgecreate": _bridge_create,
        "bridgeenter": _bridge_enter,
        "bridgeleave": _bridge_leave,
        "bridgedestroy": _bridge_destroy,
        "queuecallerjoin": _caller_join,
        "queuecallerleave": _caller_leave,
        "queuecallerabandon": _caller_abandon,
        "agentcalled": _agent_called,
        "agentconnect": _agent_connect,
        "agentcomplete": _agent_complete,
        "agentringnoanswer": _agent_ring_no_answer,
        "agentdump": _agent_dump,
        "queuememberadded": _member_event(QueueMemberAdded),
        "queuememberremoved": _member_event(QueueMemberRemoved),
        "queuememberpause": _member_event(QueueMemberPause),
        "queuememberstatus": _member_event(QueueMemberStatus),
        "queuememberringinuse": _member_event(QueueMemberRinginuse),
        "coreshowchannel": _core_show_channel,
        "coreshowchannelscomplete": _core_show_channels_complete,
        "queueparams": _queue_params,
        "queuemember": _queue_member,
        "queueentry": _queue_entry,
        "queuestatuscomplete": _queue_status_complete,
    }
)


def event_name(message: Mapping[str, Any]) -> str:
    """The event's name as sent ('' for a response or a message without one)."""
    for key in ("Event", "event"):
        value = message.get(key)
        if isinstance(value, str):
            return value
    return ""


def parse_event(system_name: str, message: Mapping[str, Any]) -> AmiEvent | None:
    """The typed event for ``message``; None if we don't track it; MalformedEvent if unreadable."""
    name = event_name(message)
    parser = PARSERS.get(name.lower())
    if parser is None:
        return None
    headers = _headers(message)
    try:
        return parser(system_name, headers)
    except _Malformed as exc:
        return MalformedEvent(system_name=system_name, timestamp=None, event=name, reason=str(exc))
