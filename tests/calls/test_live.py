"""The live state, driven by AMI traces recorded from Asterisk 22.10 and fed through panoramisk.

The four recorded traces are one session of one Asterisk run, in order: members_and_pause.ami
(idle resync, pause, QueueAdd/QueueRemove), queue_answered.ami, queue_abandoned.ami,
ring_no_answer.ami. The clock is the events' own Timestamp header (list items have none and
reuse the last one), so waits and times in state are Asterisk's real ones.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from callcenter.ami.events import (
    AmiEvent,
    BridgeEnter,
    CoreShowChannelsComplete,
    ListEvent,
    QueueCallerJoin,
    QueueMemberPause,
    QueueStatusComplete,
    parse_event,
)
from callcenter.calls.live import (
    AgentAnswered,
    AgentCallEnded,
    AgentRingEnded,
    AgentRinging,
    AgentState,
    AgentStateChanged,
    CallEnded,
    CallerLeft,
    CallerWaiting,
    CallStarted,
    Change,
    LiveState,
    MembershipChanged,
    Resynced,
)
from tests.ami.test_events import odd_chunks, read_trace, trace_events, wire_messages

SESSION = ["members_and_pause.ami", "queue_answered.ami", "queue_abandoned.ami", "ring_no_answer.ami"]
START = 1795447843.0  # Asterisk's clock when the recording began
ANSWERED = "rec-1795447848.0"  # Linkedid of the call agent1 answers
ABANDONED = "rec-1795447857.2"  # Linkedid of the caller who hangs up in q112
RNA = "rec-1795447866.3"  # Linkedid of the hotline caller agent2 rejects


@dataclass
class Replayer:
    """Feeds events to a LiveState the way the AMI layer does, starting a resync on a new list."""

    state: LiveState
    now: float = START
    lists: set[tuple[str, str]] = field(default_factory=set)

    def feed(self, events: Iterable[AmiEvent]) -> list[Change]:
        changes: list[Change] = []
        for event in events:
            self.now = event.timestamp or self.now
            if isinstance(event, ListEvent):
                key = (event.system_name, event.action_id)
                if key not in self.lists and not self.state.resyncing(event.system_name):
                    self.state.begin_resync(event.system_name)
                self.lists.add(key)
            changes += self.state.apply(event, self.now)
        return changes


def session(system_name: str = "rec") -> list[AmiEvent]:
    return [event for name in SESSION for event in trace_events(name, system_name)]


def until(events: Sequence[AmiEvent], predicate: Any) -> list[AmiEvent]:
    """The events up to and including the first one that matches."""
    index = next(i for i, e in enumerate(events) if predicate(e))
    return list(events[: index + 1])


def kinds(changes: Iterable[Change], *wanted: type[Change]) -> list[Any]:
    return [c for c in changes if isinstance(c, wanted)]


def talking(event: AmiEvent) -> bool:
    return isinstance(event, BridgeEnter) and event.channel.uniqueid == ANSWERED


# ---- a whole recorded session ---------------------------------------------------------------
def test_recorded_session_ends_with_nothing_live_and_counts_right() -> None:
    state = LiveState()
    replay = Replayer(state)
    replay.feed(session())
    assert state.calls("rec") == []
    assert state.channel("rec", ANSWERED) is None
    q112, hotline = state.queue("rec", "q112"), state.queue("rec", "hotline")
    assert q112 is not None and hotline is not None
    assert (q112.answered, q112.answered_within_sl, q112.completed, q112.abandoned) == (1, 1, 1, 1)
    assert (hotline.answered, hotline.completed, hotline.abandoned) == (0, 0, 1)
    assert (q112.callers, hotline.callers) == ([], [])
    assert (q112.strategy, q112.service_level, q112.weight) == ("rrmemory", 20, 10)
    agent1 = state.agent("rec", "PJSIP/agent1")
    assert agent1 is not None
    assert (agent1.state, agent1.calls_taken, agent1.call, agent1.ringing) == (
        AgentState.UNAVAILABLE,
        1,
        None,
        None,
    )
    assert agent1.since == pytest.approx(1795447855.457856)  # the phone unregistered
    assert state.agent("rec", "PJSIP/agent9") is None  # QueueRemove
    # Nothing unknown, malformed or duplicated in a real session.
    assert dict(state.stats) == {"events": 136, "resyncs": 4, "fully_booted": 1}


def test_queue_call_answered_by_an_agent() -> None:
    state = LiveState()
    replay = Replayer(state)
    replay.feed(trace_events("members_and_pause.ami"))
    changes = replay.feed(trace_events("queue_answered.ami"))
    (started,) = kinds(changes, CallStarted)
    assert (started.linkedid, started.caller_number, started.channel) == (
        ANSWERED,
        "citizen1",
        "PJSIP/citizen1-00000000",
    )
    (waiting,) = kinds(changes, CallerWaiting)
    assert (waiting.queue, waiting.position, waiting.linkedid) == ("q112", 1, ANSWERED)
    assert waiting.variables["CC_CHOICE"] == "fire"
    (ringing,) = kinds(changes, AgentRinging)
    assert (ringing.interface, ringing.queue, ringing.caller_number, ringing.linkedid) == (
        "PJSIP/agent1",
        "q112",
        "citizen1",
        ANSWERED,
    )
    assert ringing.wait == pytest.approx(1795447850.395278 - 1795447850.391087)
    assert ringing.variables["CC_SERVICE"] == "112"
    (left,) = kinds(changes, CallerLeft)
    assert (left.abandoned, left.vanished) == (False, False)
    assert left.wait == pytest.approx(1795447851.415298 - 1795447850.391087)
    (answered,) = kinds(changes, AgentAnswered)
    assert (answered.interface, answered.wait, answered.ring_time, answered.linkedid) == (
        "PJSIP/agent1",
        1.0,
        1,
        ANSWERED,
    )
    (done,) = kinds(changes, AgentCallEnded)
    assert (done.hold_time, done.talk_time, done.reason) == (1, 2, "caller")
    (ended,) = kinds(changes, CallEnded)
    assert (ended.linkedid, ended.caller_number, ended.queue, ended.agent) == (
        ANSWERED,
        "citizen1",
        "q112",
        "PJSIP/agent1",
    )
    assert (ended.answered, ended.vanished) == (True, False)
    assert ended.duration == pytest.approx(1795447853.923121 - 1795447848.709837)
    states = [(c.previous, c.state) for c in kinds(changes, AgentStateChanged)]
    assert states == [
        (AgentState.UNAVAILABLE, AgentState.AVAILABLE),  # the phone registers
        (AgentState.AVAILABLE, AgentState.RINGING),
        (AgentState.RINGING, AgentState.IN_CALL),
        (AgentState.IN_CALL, AgentState.AVAILABLE),
        (AgentState.AVAILABLE, AgentState.UNAVAILABLE),  # the phone unregisters
    ]
    # Both resyncs (agent ringing, then talking) found exactly what the events had built.
    assert kinds(changes, Resynced) == [
        Resynced(system_name="rec", channels=2, calls_added=0, calls_removed=0),
        Resynced(system_name="rec", channels=2, calls_added=0, calls_removed=0),
    ]


def test_state_while_talking() -> None:
    state = LiveState()
    replay = Replayer(state)
    replay.feed(trace_events("members_and_pause.ami"))
    replay.feed(until(trace_events("queue_answered.ami"), talking))
    call = state.call("rec", ANSWERED)
    assert call is not None
    assert call.channels == {ANSWERED, "rec-1795447850.1"}
    assert (call.queue, call.agent) == ("q112", "PJSIP/agent1")
    assert call.answered_at == pytest.approx(1795447851.415456)
    bridge = state.bridge("rec", "1ac516cb-d5ad-4a21-9453-750d4239345a")
    assert bridge is not None and bridge.channels == call.channels
    citizen = state.channel("rec", ANSWERED)
    assert citizen is not None
    assert (citizen.state, citizen.bridge, citizen.connected_number) == (6, bridge.uniqueid, "112")
    assert citizen.variables["CC_QUEUE"] == "q112"
    agent1 = state.agent("rec", "PJSIP/agent1")
    assert agent1 is not None and agent1.call is not None
    assert (agent1.state, agent1.call.linkedid, agent1.call.agent_channel) == (
        AgentState.IN_CALL,
        ANSWERED,
        "rec-1795447850.1",
    )


def test_wallboard_snapshot_while_the_agent_rings() -> None:
    state = LiveState()
    replay = Replayer(state)
    replay.feed(trace_events("members_and_pause.ami"))
    # Up to the end of the resync sent while agent1 rang.
    replay.feed(until(trace_events("queue_answered.ami"), lambda e: isinstance(e, QueueStatusComplete)))
    board = state.snapshot(now=1795447852.391087)
    assert json.loads(json.dumps(board)) == board
    rec = board["systems"]["rec"]
    assert rec["resyncing"] is False
    q112 = next(q for q in rec["queues"] if q["name"] == "q112")
    assert q112["waiting_count"] == 1
    (caller,) = q112["waiting"]
    assert (caller["position"], caller["caller_number"], caller["linkedid"]) == (1, "citizen1", ANSWERED)
    assert caller["wait"] == pytest.approx(2.0)
    assert q112["longest_wait"] == pytest.approx(2.0)
    assert q112["agents_by_state"] == {
        "in_call": 0,
        "ringing": 1,
        "paused": 0,
        "unavailable": 3,
        "available": 0,
    }
    agent1 = next(a for a in q112["agents"] if a["interface"] == "PJSIP/agent1")
    assert (agent1["state"], agent1["paused"]) == ("ringing", False)
    assert agent1["time_in_state"] == pytest.approx(1795447852.391087 - 1795447850.395278, abs=1e-3)
    (call,) = rec["calls"]
    assert (call["linkedid"], call["caller_number"], call["queue"], call["agent"]) == (
        ANSWERED,
        "citizen1",
        "q112",
        "",
    )
    assert call["channels"] == ["PJSIP/citizen1-00000000", "PJSIP/agent1-00000001"]
    assert call["variables"]["CC_CHOICE"] == "fire"
    (ringing,) = [a for a in rec["agents"] if a["ringing"]]
    assert ringing["ringing"] == {"linkedid": ANSWERED, "queue": "q112", "caller_number": "citizen1"}


def test_caller_who_hangs_up_while_waiting_is_abandoned() -> None:
    state = LiveState()
    replay = Replayer(state)
    replay.feed(trace_events("members_and_pause.ami"))
    changes = replay.feed(trace_events("queue_abandoned.ami"))
    (waiting,) = kinds(changes, CallerWaiting)
    (left,) = kinds(changes, CallerLeft)
    assert (left.linkedid, left.queue, left.abandoned, left.wait) == (ABANDONED, "q112", True, 5.0)
    (ended,) = kinds(changes, CallEnded)
    assert (ended.linkedid, ended.answered, ended.agent) == (ABANDONED, False, "")
    assert waiting.joined == pytest.approx(1795447858.793926)
    q112 = state.queue("rec", "q112")
    assert q112 is not None and (q112.abandoned, q112.callers) == (1, [])


def test_agent_rung_who_rejects_then_the_caller_gives_up() -> None:
    state = LiveState()
    replay = Replayer(state)
    replay.feed(trace_events("members_and_pause.ami"))
    changes = replay.feed(trace_events("ring_no_answer.ami"))
    rings = kinds(changes, AgentRinging, AgentRingEnded)
    assert [(type(c).__name__, c.interface, c.queue, c.linkedid) for c in rings] == [
        ("AgentRinging", "PJSIP/agent2", "hotline", RNA),
        ("AgentRingEnded", "PJSIP/agent2", "hotline", RNA),
        ("AgentRinging", "PJSIP/agent2", "hotline", RNA),
        ("AgentRingEnded", "PJSIP/agent2", "hotline", RNA),
    ]
    assert [c.reason for c in kinds(changes, AgentRingEnded)] == ["no_answer", "hangup"]
    (left,) = kinds(changes, CallerLeft)
    assert (left.abandoned, left.wait) == (True, 3.0)
    agent2 = state.agent("rec", "PJSIP/agent2")
    assert agent2 is not None and agent2.ringing is None


def test_pause_with_a_reason() -> None:
    state = LiveState()
    replay = Replayer(state)
    events = trace_events("members_and_pause.ami")
    pause = next(e for e in events if isinstance(e, QueueMemberPause))
    changes = replay.feed(events[: events.index(pause) + 1])
    (change,) = kinds(changes[-1:], AgentStateChanged)
    # Paused in q112 only: the queue shows it, the agent still counts for the hotline.
    assert (change.state, change.paused_reason) == (AgentState.UNAVAILABLE, "istirahat")
    assert change.queues == {"hotline": AgentState.UNAVAILABLE, "q112": AgentState.PAUSED}
    board = state.snapshot(now=1795447845.5)["systems"]["rec"]
    q112 = next(q for q in board["queues"] if q["name"] == "q112")
    agent1 = next(a for a in q112["agents"] if a["interface"] == "PJSIP/agent1")
    assert (agent1["state"], agent1["paused"], agent1["paused_reason"]) == ("paused", True, "istirahat")
    assert agent1["since"] == pytest.approx(1795447845.419659)
    # The same pause on the hotline (as QueuePause without a queue does): paused overall.
    everywhere = replace(pause, member=replace(pause.member, queue="hotline"), timestamp=1795447845.5)
    (overall,) = kinds(state.apply(everywhere, 1795447845.5), AgentStateChanged)
    assert (overall.previous, overall.state, overall.paused_reason, overall.since) == (
        AgentState.UNAVAILABLE,
        AgentState.PAUSED,
        "istirahat",
        1795447845.5,
    )
    agent = state.agent("rec", "PJSIP/agent1")
    assert agent is not None and agent.state is AgentState.PAUSED


def test_pause_stops_counting_when_the_agent_rings() -> None:
    state = LiveState()
    replay = Replayer(state)
    events = trace_events("members_and_pause.ami")
    pause = next(e for e in events if isinstance(e, QueueMemberPause))
    replay.feed(events[: events.index(pause) + 1])
    replay.feed([replace(pause, member=replace(pause.member, queue="hotline"))])
    agent = state.agent("rec", "PJSIP/agent1")
    assert agent is not None and agent.state is AgentState.PAUSED
    # A device that rings (say a direct call) outranks the pause.
    status = replace(pause, member=replace(pause.member, status=6))
    (change,) = kinds(state.apply(status, 1795447846.0), AgentStateChanged)
    assert (change.previous, change.state, change.paused_reason) == (
        AgentState.PAUSED,
        AgentState.RINGING,
        "istirahat",
    )


def test_queue_add_and_remove() -> None:
    state = LiveState()
    changes = Replayer(state).feed(trace_events("members_and_pause.ami"))
    nine: list[Any] = [c for c in changes if getattr(c, "interface", "") == "PJSIP/agent9"]
    assert [type(c).__name__ for c in nine] == [
        "MembershipChanged",
        "AgentStateChanged",
        "MembershipChanged",
        "AgentStateChanged",
    ]
    added, _, removed, gone = nine
    assert (added.queue, added.added, added.member_name) == ("hotline", True, "Agen Sembilan")
    assert (removed.queue, removed.added) == ("hotline", False)
    assert (gone.previous, gone.state, gone.queues) == (AgentState.UNAVAILABLE, None, {})
    assert state.agent("rec", "PJSIP/agent9") is None


# ---- resync ------------------------------------------------------------------------------
def test_resync_removes_a_ghost_call_and_adds_a_missing_one() -> None:
    state = LiveState()
    replay = Replayer(state)
    replay.feed(trace_events("members_and_pause.ami"))
    replay.feed(until(trace_events("queue_answered.ami"), talking))
    assert [c.linkedid for c in state.calls("rec")] == [ANSWERED]
    # The engine misses the end of that call and the start of the next one (a dropped link),
    # then reconnects and resyncs: Asterisk now lists only the caller waiting in q112.
    lists = [e for e in trace_events("queue_abandoned.ami") if isinstance(e, ListEvent)]
    replay.now = 1795447862.0
    changes = replay.feed(lists)
    (ghost,) = kinds(changes, CallEnded)
    assert (ghost.linkedid, ghost.vanished, ghost.answered, ghost.caller_number) == (
        ANSWERED,
        True,
        True,
        "citizen1",
    )
    (missing,) = kinds(changes, CallStarted)
    assert (missing.linkedid, missing.caller_number, missing.channel) == (
        ABANDONED,
        "citizen1",
        "PJSIP/citizen1-00000002",
    )
    assert missing.started == pytest.approx(1795447862.0 - 5)  # Duration 00:00:05
    (waiting,) = kinds(changes, CallerWaiting)
    assert (waiting.queue, waiting.linkedid, waiting.position, waiting.joined) == (
        "q112",
        ABANDONED,
        1,
        1795447862.0 - 5,
    )
    (agent1,) = [c for c in kinds(changes, AgentStateChanged) if c.interface == "PJSIP/agent1"]
    assert (agent1.previous, agent1.state) == (AgentState.IN_CALL, AgentState.UNAVAILABLE)
    assert kinds(changes, Resynced) == [
        Resynced(system_name="rec", channels=1, calls_added=1, calls_removed=1)
    ]
    assert [c.linkedid for c in state.calls("rec")] == [ABANDONED]
    assert state.bridge("rec", "1ac516cb-d5ad-4a21-9453-750d4239345a") is None
    q112 = state.queue("rec", "q112")
    assert q112 is not None
    assert (q112.completed, q112.service_level_perf, q112.answered) == (1, 100.0, 1)
    assert state.channel("rec", ABANDONED) is not None
    # Afterwards live events continue on the new state.
    rest = [e for e in trace_events("queue_abandoned.ami") if not isinstance(e, ListEvent)]
    after = replay.feed(rest[rest.index(next(e for e in rest if isinstance(e, QueueCallerJoin))) + 1 :])
    assert [c.abandoned for c in kinds(after, CallerLeft)] == [True]
    assert state.calls("rec") == []


def test_resync_keeps_what_happens_while_the_lists_arrive() -> None:
    state = LiveState()
    replay = Replayer(state)
    replay.feed(trace_events("members_and_pause.ami"))
    events = trace_events("queue_answered.ami")
    join = next(i for i, e in enumerate(events) if isinstance(e, QueueCallerJoin))
    replay.feed(events[:join])
    # A resync starts just before the caller joins the queue; the join and the agent's ringing
    # arrive between the list items, as they did on the wire.
    state.begin_resync("rec")
    rest = events[join:]
    ringing_lists_end = next(i for i, e in enumerate(rest) if isinstance(e, QueueStatusComplete))
    changes = replay.feed(rest[: ringing_lists_end + 1])
    assert not state.resyncing("rec")
    assert kinds(changes, Resynced) == [
        Resynced(system_name="rec", channels=2, calls_added=0, calls_removed=0)
    ]
    agent1 = state.agent("rec", "PJSIP/agent1")
    assert agent1 is not None and agent1.ringing is not None
    assert agent1.ringing.since == pytest.approx(1795447850.395278)  # kept, not the resync's time


def test_only_completed_lists_replace_state() -> None:
    state = LiveState()
    replay = Replayer(state)
    replay.feed(trace_events("members_and_pause.ami"))
    replay.feed(until(trace_events("queue_answered.ami"), talking))
    state.begin_resync("rec")
    # Only the channel list came back (say the QueueStatus action timed out).
    changes = state.apply(CoreShowChannelsComplete("rec", None, "x-1", 0), 1795447852.0)
    assert changes == [] and state.resyncing("rec")
    changes = state.end_resync("rec", 1795447852.0)
    assert [type(c).__name__ for c in changes] == ["CallEnded", "Resynced"]
    # Queues and agents were not listed, so they stay as the events left them.
    agent1 = state.agent("rec", "PJSIP/agent1")
    assert agent1 is not None and agent1.memberships.keys() == {"hotline", "q112"}
    assert state.end_resync("rec", 1795447852.0) == []


# ---- several systems, odd input, duplicates ----------------------------------------------
def test_two_systems_share_nothing() -> None:
    state = LiveState()
    north, south = Replayer(state), Replayer(state)
    north.feed(trace_events("members_and_pause.ami", "north"))
    south.feed(trace_events("members_and_pause.ami", "south"))
    north.feed(until(trace_events("queue_answered.ami", "north"), talking))
    south_events = trace_events("queue_answered.ami", "south")
    south.feed(until(south_events, lambda e: isinstance(e, QueueCallerJoin)))
    # The same Linkedid on two systems is two calls.
    north_call, south_call = state.call("north", ANSWERED), state.call("south", ANSWERED)
    assert north_call is not None and south_call is not None and north_call is not south_call
    assert (north_call.agent, south_call.agent) == ("PJSIP/agent1", "")
    before = state.snapshot(now=1795447852.0)["systems"]["north"]
    # South restarts empty: its resync lists nothing.
    state.begin_resync("south")
    changes = state.apply(CoreShowChannelsComplete("south", None, "s-1", 0), 1795447852.0)
    changes += state.apply(QueueStatusComplete("south", None, "s-2", 0), 1795447852.0)
    assert {c.system_name for c in changes} == {"south"}
    (ghost,) = kinds(changes, CallEnded)
    assert (ghost.linkedid, ghost.vanished) == (ANSWERED, True)
    assert [(c.queue, c.vanished) for c in kinds(changes, CallerLeft)] == [("q112", True)]
    assert len(kinds(changes, MembershipChanged)) == 8
    assert state.calls("south") == [] and state.agent("south", "PJSIP/agent1") is None
    assert state.snapshot(now=1795447852.0)["systems"]["north"] == before
    assert state.system_names() == ["north", "south"]


def test_malformed_and_unknown_events_are_counted_not_fatal() -> None:
    state = LiveState()
    # Applied directly: no AMI layer here starts a resync, so the stray list item stays stray.
    changes = [c for event in trace_events("odd.ami") for c in state.apply(event, 1795447901.0)]
    assert changes == []
    assert dict(state.stats) == {
        "events": 12,
        "malformed": 5,
        "malformed:queuecallerjoin": 1,
        "malformed:agentconnect": 1,
        "malformed:newstate": 1,
        "malformed:hangup": 1,
        "malformed:queuememberpause": 1,
        "unknown_channel": 3,  # Newstate, Hangup, BridgeEnter
        "unknown_queue": 1,  # q112, first heard of in a QueueCallerLeave
        "unknown_queue_caller": 1,
        "unknown_agent": 2,  # AgentRingNoAnswer, QueueMemberRemoved
        "list_outside_resync": 1,
    }
    assert state.calls("rec") == [] and state.channel("rec", "rec-1795447899.9") is None
    assert state.bridge("rec", "0b5e1c4e-0000-4000-8000-000000000009") is None
    assert state.agent("rec", "PJSIP/agent7") is None


def test_every_event_twice_changes_nothing_more() -> None:
    once_state, twice_state = LiveState(), LiveState()
    events = session()
    once = Replayer(once_state).feed(events)
    twice = Replayer(twice_state).feed(e for event in events for e in (event, event))
    assert twice == once
    end = 1795447880.0
    assert twice_state.snapshot(end)["systems"] == once_state.snapshot(end)["systems"]
    assert twice_state.stats["duplicate"] == 19
    assert once_state.stats["duplicate"] == 0


def test_reads_split_anywhere_give_the_same_state() -> None:
    whole, split = LiveState(), LiveState()
    Replayer(whole).feed(session())
    data = b"".join(read_trace(name) for name in SESSION)
    messages = wire_messages(data, odd_chunks(7))
    Replayer(split).feed(e for e in (parse_event("rec", m) for m in messages) if e is not None)
    assert split.snapshot(1795447880.0) == whole.snapshot(1795447880.0)
