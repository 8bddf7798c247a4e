"""Typed AMI events, parsed from recorded Asterisk 22 wire traces fed through panoramisk.

The helpers here (reading a trace, feeding it through panoramisk's protocol in chunks) are also
used by tests/calls/test_live.py.
"""

from __future__ import annotations

import random
import re
from collections import deque
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pytest
from panoramisk.ami_protocol import AMIProtocol
from panoramisk.message import Message

from callcenter.ami.connection import _BoundedProtocol
from callcenter.ami.events import (
    PARSERS,
    AgentCalled,
    AgentComplete,
    AgentConnect,
    AgentRingNoAnswer,
    AmiEvent,
    BridgeEnter,
    CoreShowChannel,
    CoreShowChannelsComplete,
    DialBegin,
    FullyBooted,
    Hangup,
    MalformedEvent,
    NewCallerid,
    Newchannel,
    QueueCallerAbandon,
    QueueCallerJoin,
    QueueEntry,
    QueueMember,
    QueueMemberAdded,
    QueueMemberPause,
    QueueParams,
    QueueStatusComplete,
    parse_event,
)

TRACES = Path(__file__).parent / "traces"


# ---- feeding wire bytes through panoramisk -------------------------------------------------
class _Transport:
    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True


class _Collector:
    """Stands where AmiConnection stands for panoramisk's protocol: it receives dispatch()."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.forgetable_actions = ("ping", "login")
        self.awaiting_actions: deque[Any] = deque()

    def dispatch(self, message: Message) -> None:
        self.messages.append(message)

    def connection_lost(self, exc: object) -> None:
        pass


def read_trace(name: str) -> bytes:
    """A trace's wire bytes: '#' comment lines dropped, every line ending CRLF as on the wire."""
    raw = (TRACES / name).read_bytes()
    lines = raw.split(b"\n")
    while lines and lines[0].startswith(b"#"):
        lines.pop(0)
    return re.sub(rb"(?<!\r)\n", b"\r\n", b"\n".join(lines))


def wire_messages(data: bytes, chunks: Iterable[int] | None = None) -> list[Message]:
    """The messages panoramisk dispatches when ``data`` arrives in reads of the given sizes."""
    protocol = AMIProtocol()
    protocol.connection_made(_Transport())
    collector = _Collector()
    # The same set-up as AmiConnection._session.
    protocol.factory = collector
    protocol.encoding = "utf-8"
    sizes = iter(chunks) if chunks is not None else iter([len(data) or 1])
    offset = 0
    while offset < len(data):
        size = next(sizes, len(data))
        protocol.data_received(data[offset : offset + size])
        offset += size
    return collector.messages


def odd_chunks(seed: int) -> Iterable[int]:
    """Read sizes from 1 byte up, splitting headers, CRLFs and the blank line between blocks."""
    rng = random.Random(seed)
    while True:
        yield rng.choice((1, 2, 3, 5, 7, 13, 64, 333, 1500))


def trace_events(name: str, system_name: str = "rec", chunks: Iterable[int] | None = None) -> list[AmiEvent]:
    events = (parse_event(system_name, m) for m in wire_messages(read_trace(name), chunks))
    return [e for e in events if e is not None]


def of_type(events: Sequence[AmiEvent], kind: type[AmiEvent]) -> list[Any]:
    return [e for e in events if type(e) is kind]


# ---- the wire path -------------------------------------------------------------------------
RECORDED = ["members_and_pause.ami", "queue_answered.ami", "queue_abandoned.ami", "ring_no_answer.ami"]


@pytest.mark.parametrize("name", [*RECORDED, "odd.ami"])
def test_every_trace_says_where_it_came_from(name: str) -> None:
    first = (TRACES / name).read_text().splitlines()[0]
    assert first.startswith(("# Recorded from Asterisk 22.", "# Written by hand"))


@pytest.mark.parametrize("name", RECORDED)
def test_reads_of_any_size_give_the_same_events(name: str) -> None:
    whole = trace_events(name)
    assert len(whole) > 15
    assert trace_events(name, chunks=iter(lambda: 1, 0)) == whole
    for seed in (1, 2, 3):
        assert trace_events(name, chunks=odd_chunks(seed)) == whole


def test_several_events_in_one_read_are_all_dispatched() -> None:
    data = read_trace("queue_answered.ami")
    messages = wire_messages(data)
    # Every block that names an event arrives, in order, from a single read.
    assert len(messages) == data.count(b"\r\nEvent: ") + data.startswith(b"Event: ")
    assert [m["Event"] for m in messages[:3]] == ["PeerStatus", "QueueMemberStatus", "QueueMemberStatus"]


def test_untracked_and_out_of_band_messages_give_nothing() -> None:
    messages = wire_messages(read_trace("queue_answered.ami"))
    untracked = {str(m["Event"]) for m in messages if parse_event("rec", m) is None}
    assert untracked == {
        "PeerStatus",
        "DialState",
        "MixMonitorStart",
        "DTMFEnd",
        "HangupRequest",
        "SoftHangupRequest",
    }
    odd = wire_messages(read_trace("odd.ami"))
    # The out-of-band response is not an event; the UserEvent is not tracked.
    assert str(odd[0]["Event"]) == "UserEvent"
    assert parse_event("rec", odd[0]) is None
    assert parse_event("rec", {"Response": "Success"}) is None


# ---- recorded Asterisk 22 events -----------------------------------------------------------
def test_queue_call_answered_by_an_agent() -> None:
    events = trace_events("queue_answered.ami")
    (join,) = of_type(events, QueueCallerJoin)
    assert join.system_name == "rec"
    assert join.timestamp == pytest.approx(1795447850.391087)
    assert (join.queue, join.position, join.count) == ("q112", 1, 1)
    caller = join.channel
    assert caller.name == "PJSIP/citizen1-00000000"
    assert (caller.uniqueid, caller.linkedid) == ("rec-1795447848.0", "rec-1795447848.0")
    assert (caller.caller_number, caller.caller_name) == ("citizen1", "")  # "<unknown>"
    assert (caller.state, caller.state_desc, caller.context, caller.exten) == (6, "Up", "cc-queues", "q112")
    assert caller.variables == {
        "CC_SERVICE": "112",
        "CC_CHOICE": "fire",
        "CC_QUEUE": "q112",
        "CC_RECORDING": "/tmp/cc-rec-t3dk02uw/recordings/2026/11/23/rec_1795447848_0",
    }

    (called,) = of_type(events, AgentCalled)
    assert (called.queue, called.interface, called.member_name) == ("q112", "PJSIP/agent1", "agent1")
    assert called.caller.uniqueid == "rec-1795447848.0"
    assert called.agent is not None
    assert (called.agent.name, called.agent.uniqueid) == ("PJSIP/agent1-00000001", "rec-1795447850.1")
    assert called.agent.linkedid == "rec-1795447848.0"
    assert called.agent.variables == {"CC_SERVICE": "", "CC_CHOICE": "", "CC_QUEUE": "", "CC_RECORDING": ""}

    (connect,) = of_type(events, AgentConnect)
    assert (connect.hold_time, connect.ring_time, connect.interface) == (1, 1, "PJSIP/agent1")
    (complete,) = of_type(events, AgentComplete)
    assert (complete.hold_time, complete.talk_time, complete.reason) == (1, 2, "caller")

    (dial,) = of_type(events, DialBegin)
    assert dial.caller is not None and dial.caller.uniqueid == "rec-1795447848.0"
    assert (dial.dest.uniqueid, dial.dial_string) == ("rec-1795447850.1", "PJSIP/agent1")

    enters = of_type(events, BridgeEnter)
    assert [e.channel.uniqueid for e in enters] == ["rec-1795447850.1", "rec-1795447848.0"]
    assert {e.bridge.uniqueid for e in enters} == {"1ac516cb-d5ad-4a21-9453-750d4239345a"}
    assert [e.bridge.num_channels for e in enters] == [1, 2]

    hangups = of_type(events, Hangup)
    assert [(h.channel.uniqueid, h.cause, h.cause_text) for h in hangups] == [
        ("rec-1795447848.0", 16, "Normal Clearing"),
        ("rec-1795447850.1", 16, "Normal Clearing"),
    ]
    (caller_id,) = of_type(events, NewCallerid)
    assert (caller_id.channel.caller_number, caller_id.channel.connected_number) == ("112", "")


def test_resync_lists_recorded_while_an_agent_rings() -> None:
    events = trace_events("queue_answered.ami")
    shown = of_type(events, CoreShowChannel)
    assert [(c.channel.uniqueid, c.application, c.bridge_id, c.duration) for c in shown[:2]] == [
        ("rec-1795447848.0", "Queue", "", 1),
        ("rec-1795447850.1", "AppQueue", "", 0),
    ]
    assert shown[2].bridge_id == "1ac516cb-d5ad-4a21-9453-750d4239345a"
    assert shown[0].timestamp is None and shown[0].action_id == "rec-8"
    assert [c.list_items for c in of_type(events, CoreShowChannelsComplete)] == [2, 2]
    assert [c.list_items for c in of_type(events, QueueStatusComplete)] == [11, 10]

    params = of_type(events, QueueParams)
    q112 = next(p for p in params if p.queue == "q112")
    assert (q112.strategy, q112.calls, q112.service_level, q112.weight) == ("rrmemory", 1, 20, 10)
    assert (q112.completed, q112.abandoned, q112.service_level_perf) == (0, 0, 0.0)

    members = of_type(events, QueueMember)
    agent1 = next(m.member for m in members if m.member.queue == "q112")
    # The list item names the member Name/Location, the live events MemberName/Interface.
    assert (agent1.interface, agent1.member_name, agent1.membership) == ("PJSIP/agent1", "agent1", "static")
    assert (agent1.status, agent1.paused, agent1.in_call, agent1.login_time) == (6, False, False, 1795447843)
    assert agent1.last_pause == 1795447845

    (entry,) = of_type(events, QueueEntry)
    assert (entry.queue, entry.position, entry.uniqueid, entry.wait) == ("q112", 1, "rec-1795447848.0", 0)
    assert (entry.channel_name, entry.caller_number, entry.priority) == (
        "PJSIP/citizen1-00000000",
        "citizen1",
        10,
    )
    assert (entry.caller_name, entry.connected_number) == ("", "112")  # "unknown" means none


def test_caller_who_hangs_up_in_the_queue() -> None:
    events = trace_events("queue_abandoned.ami")
    (abandon,) = of_type(events, QueueCallerAbandon)
    assert (abandon.queue, abandon.position, abandon.original_position, abandon.hold_time) == (
        "q112",
        1,
        1,
        5,
    )
    assert abandon.channel.uniqueid == "rec-1795447857.2"
    (entry,) = of_type(events, QueueEntry)
    assert entry.wait == 5


def test_ring_no_answer_reports_milliseconds() -> None:
    events = trace_events("ring_no_answer.ami")
    (no_answer,) = of_type(events, AgentRingNoAnswer)
    assert (no_answer.queue, no_answer.interface, no_answer.ring_time_ms) == ("hotline", "PJSIP/agent2", 1000)
    assert len(of_type(events, AgentCalled)) == 2


def test_pause_with_reason_and_member_added() -> None:
    events = trace_events("members_and_pause.ami")
    assert type(events[0]) is FullyBooted and events[0].timestamp is None
    pause, unpause = of_type(events, QueueMemberPause)
    assert (pause.member.queue, pause.member.interface) == ("q112", "PJSIP/agent1")
    assert (pause.member.paused, pause.member.paused_reason, pause.member.last_pause) == (
        True,
        "istirahat",
        1795447845,
    )
    assert (unpause.member.paused, unpause.member.paused_reason) == (False, "")
    (added,) = of_type(events, QueueMemberAdded)
    assert (added.member.member_name, added.member.membership, added.member.penalty) == (
        "Agen Sembilan",
        "dynamic",
        1,
    )
    assert added.member.status == 4


# ---- hand-made and odd input ----------------------------------------------------------------
def test_malformed_events_are_reported_not_raised() -> None:
    events = trace_events("odd.ami")
    malformed = of_type(events, MalformedEvent)
    assert [(m.event, m.reason) for m in malformed] == [
        ("QueueCallerJoin", "missing header uniqueid"),
        ("AgentConnect", "header holdtime is not an integer: 'soon'"),
        ("Newstate", "header timestamp is not a number: 'yesterday'"),
        ("Hangup", "header uniqueid repeated"),
        ("QueueMemberPause", "header paused is not an integer: 'maybe'"),
    ]
    assert {m.system_name for m in malformed} == {"rec"}


@pytest.mark.parametrize(
    ("header", "value", "reason"),
    [
        ("Duration", "1:02", "header duration is not HH:MM:SS: '1:02'"),
        ("Timestamp", "nan", "header timestamp is not a finite number"),
        ("Uniqueid", None, "missing header uniqueid"),
    ],
)
def test_bad_list_item_headers(header: str, value: str | None, reason: str) -> None:
    message = {
        "Event": "CoreShowChannel",
        "ActionID": "a-1",
        "Channel": "PJSIP/citizen1-00000000",
        "Uniqueid": "rec-1.0",
        "Linkedid": "rec-1.0",
        "Duration": "00:01:02",
    }
    if value is None:
        del message[header]
    else:
        message[header] = value
    event = parse_event("rec", message)
    assert event == MalformedEvent(system_name="rec", timestamp=None, event="CoreShowChannel", reason=reason)


def test_channel_variables_in_every_form() -> None:
    base = {"Event": "Newchannel", "Channel": "PJSIP/c-1", "Uniqueid": "u1", "Linkedid": "u1"}
    # Asterisk 12+: "ChanVariable: NAME=value", one header per variable (a list when repeated).
    single = parse_event("s", {**base, "ChanVariable": "CC_CHOICE=fire"})
    many = parse_event(
        "s", Message({**base, "ChanVariable": ["CC_CHOICE=fire", "CC_QUEUE=q112", "CC_X=a=b"]})
    )
    # Older forms: the name in parentheses, or the channel in parentheses (Asterisk 1.8).
    named = parse_event("s", {**base, "ChanVariable(CC_CHOICE)": "police"})
    old = parse_event("s", {**base, "ChanVariable(PJSIP/c-1)": "CC_SERVICE=112"})
    assert isinstance(single, Newchannel) and single.channel.variables == {"CC_CHOICE": "fire"}
    assert isinstance(many, Newchannel)
    assert many.channel.variables == {"CC_CHOICE": "fire", "CC_QUEUE": "q112", "CC_X": "a=b"}
    assert isinstance(named, Newchannel) and named.channel.variables == {"CC_CHOICE": "police"}
    assert isinstance(old, Newchannel) and old.channel.variables == {"CC_SERVICE": "112"}


def test_names_and_headers_are_case_insensitive() -> None:
    event = parse_event(
        "s", {"event": "NEWCHANNEL", "CHANNEL": "PJSIP/c-1", "uniqueid": "u1", "LinkedID": "u1"}
    )
    assert isinstance(event, Newchannel)
    assert (event.channel.name, event.channel.uniqueid, event.channel.state) == ("PJSIP/c-1", "u1", -1)


def test_dispatch_table_covers_the_tracked_events() -> None:
    assert all(name == name.lower() for name in PARSERS)
    expected = {
        "fullybooted", "newchannel", "newstate", "newcallerid", "newconnectedline", "hangup", "dialbegin",
        "dialend", "bridgecreate", "bridgeenter", "bridgeleave", "bridgedestroy", "queuecallerjoin",
        "queuecallerleave", "queuecallerabandon", "agentcalled", "agentconnect", "agentcomplete",
        "agentringnoanswer", "agentdump", "queuememberadded", "queuememberremoved", "queuememberpause",
        "queuememberstatus", "queuememberringinuse", "coreshowchannel", "coreshowchannelscomplete",
        "queueparams", "queuemember", "queueentry", "queuestatuscomplete",
    }  # fmt: skip
    assert set(PARSERS) == expected
    with pytest.raises(TypeError):
        PARSERS["userevent"] = PARSERS["hangup"]  # type: ignore[index]


def test_events_are_frozen() -> None:
    event = parse_event("s", {"Event": "FullyBooted", "Timestamp": "1.5"})
    assert event == FullyBooted(system_name="s", timestamp=1.5)
    with pytest.raises(AttributeError):
        event.system_name = "t"  # type: ignore[misc]


def our_wire_messages(data: bytes, chunks: Iterable[int] | None = None) -> list[Message]:
    """The messages our connection's protocol dispatches for the same reads."""
    protocol = _BoundedProtocol()
    protocol.connection_made(_Transport())
    collector = _Collector()
    protocol.factory = collector
    protocol.encoding = "utf-8"
    sizes = iter(chunks) if chunks is not None else iter([len(data) or 1])
    offset = 0
    while offset < len(data):
        size = next(sizes, len(data))
        protocol.data_received(data[offset : offset + size])
        offset += size
    return collector.messages


@pytest.mark.parametrize("name", [*RECORDED, "odd.ami"])
def test_our_event_parser_gives_what_panoramisk_gives(name: str) -> None:
    data = read_trace(name)
    theirs = wire_messages(data, odd_chunks(7))
    ours = our_wire_messages(data, odd_chunks(11))
    assert len(ours) == len(theirs) > 0
    for mine, reference in zip(ours, theirs, strict=True):
        assert type(mine) is type(reference)
        assert list(mine.items()) == list(reference.items())
        assert mine.get("chanvariable") == reference.get("chanvariable")
