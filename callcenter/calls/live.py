"""The live state of calls, channels, bridges, queues and agents on each Asterisk system.

Pure: no I/O, no clock of its own. Typed AMI events go in with the time they were seen (seconds
since the epoch, the clock Asterisk's LastCall/LastPause use); ``apply`` returns the changes a
consumer (screen-pop, wallboard, call log) cares about. Everything is kept per system name, and a
call is keyed by (system name, Linkedid).

Robustness rules:
- an event about a channel, caller or member we don't know is counted in ``stats`` and otherwise
  ignored (only Newchannel or a resync's channel list creates a channel), so a late event cannot
  resurrect a ghost;
- a repeated event changes nothing and emits nothing; counters (answered, completed, abandoned)
  remember what they counted;
- a resync (``begin_resync``, the CoreShowChannels / QueueStatus list items, then both
  ``*Complete`` events or ``end_resync``) replaces the system's state with Asterisk's snapshot.
  Live events that arrive meanwhile are applied to the current state and to the snapshot being
  built, so the swap loses nothing that happened during the listing. Other systems are untouched.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, TypeVar

from callcenter.ami.events import (
    AgentCalled,
    AgentComplete,
    AgentConnect,
    AgentDump,
    AgentEvent,
    AgentRingNoAnswer,
    AmiEvent,
    BridgeCreate,
    BridgeDestroy,
    BridgeEnter,
    BridgeLeave,
    ChannelSnapshot,
    CoreShowChannel,
    CoreShowChannelsComplete,
    DialBegin,
    DialEnd,
    FullyBooted,
    Hangup,
    ListEvent,
    MalformedEvent,
    MemberSnapshot,
    NewCallerid,
    Newchannel,
    NewConnectedLine,
    Newstate,
    QueueCallerAbandon,
    QueueCallerJoin,
    QueueCallerLeave,
    QueueEntry,
    QueueMember,
    QueueMemberAdded,
    QueueMemberPause,
    QueueMemberRemoved,
    QueueMemberRinginuse,
    QueueMemberStatus,
    QueueParams,
    QueueStatusComplete,
)

# How many counted queue events (answered, completed, abandoned) each system remembers, so a
# replayed event is not counted twice. A replay comes within seconds; this covers hours.
RECENT_LIMIT = 4096

# Asterisk device states (AST_DEVICE_*) as the Status of QueueMember* events reports them.
_DEVICE_BUSY = frozenset({2, 3, 8})  # in use, busy, on hold
_DEVICE_RINGING = frozenset({6, 7})  # ringing, ring in use
_DEVICE_UNAVAILABLE = frozenset({4, 5})  # invalid, unavailable (app_queue calls UNKNOWN usable)
_CHANNEL_UP = 6
_CHANNEL_RINGING = frozenset({4, 5})  # ring, ringing


class AgentState(enum.StrEnum):
    """What a supervisor sees; earlier in this list wins when several apply."""

    IN_CALL = "in_call"
    RINGING = "ringing"
    PAUSED = "paused"
    UNAVAILABLE = "unavailable"
    AVAILABLE = "available"


# ---- the state (mutable records; read them, change them only through LiveState.apply) ------
@dataclass(slots=True)
class Channel:
    uniqueid: str
    name: str
    linkedid: str
    state: int
    state_desc: str
    caller_number: str
    caller_name: str
    connected_number: str
    connected_name: str
    context: str
    exten: str
    variables: dict[str, str]
    created: float
    bridge: str = ""


@dataclass(slots=True)
class Call:
    linkedid: str
    started: float
    # Of the call's first channel; kept here because that channel may hang up first.
    caller_number: str = ""
    caller_name: str = ""
    channels: set[str] = field(default_factory=set)  # uniqueids
    queue: str = ""
    agent: str = ""  # interface of the agent who answered
    answered_at: float | None = None


@dataclass(slots=True)
class Bridge:
    uniqueid: str
    bridge_type: str
    technology: str
    channels: set[str] = field(default_factory=set)


@dataclass(slots=True)
class WaitingCaller:
    uniqueid: str
    linkedid: str
    channel: str
    caller_number: str
    caller_name: str
    joined: float
    abandoned: bool = False
    hold_time: int | None = None  # Asterisk's count, once it reported an abandon


@dataclass(slots=True)
class Queue:
    name: str
    strategy: str = ""
    service_level: int = 0  # seconds (queues.conf servicelevel)
    max_callers: int = 0
    weight: int = 0
    completed: int = 0
    abandoned: int = 0
    service_level_perf: float = 0.0  # Asterisk's %, as of the last resync
    answered: int = 0  # AgentConnect seen by this state
    answered_within_sl: int = 0
    callers: list[WaitingCaller] = field(default_factory=list)  # position order


@dataclass(slots=True)
class Membership:
    queue: str
    penalty: int
    membership: str
    paused: bool
    paused_reason: str
    paused_at: float
    calls_taken: int
    in_call: bool
    last_call: int
    state: AgentState = AgentState.UNAVAILABLE
    since: float = 0.0


@dataclass(slots=True)
class AgentRing:
    queue: str
    caller_uniqueid: str
    linkedid: str
    agent_channel: str
    caller_number: str
    since: float


@dataclass(slots=True)
class AgentCall:
    queue: str
    caller_uniqueid: str
    linkedid: str
    agent_channel: str
    caller_number: str
    since: float


@dataclass(slots=True)
class Agent:
    interface: str
    name: str
    status: int = 0
    memberships: dict[str, Membership] = field(default_factory=dict)
    ringing: AgentRing | None = None
    call: AgentCall | None = None
    state: AgentState | None = None
    since: float = 0.0
    paused_reason: str = ""

    @property
    def calls_taken(self) -> int:
        # Asterisk counts per queue; with shared_lastcall every queue counts the same call.
        return max((m.calls_taken for m in self.memberships.values()), default=0)


@dataclass(slots=True)
class _System:
    name: str
    channels: dict[str, Channel] = field(default_factory=dict)
    calls: dict[str, Call] = field(default_factory=dict)
    bridges: dict[str, Bridge] = field(default_factory=dict)
    queues: dict[str, Queue] = field(default_factory=dict)
    agents: dict[str, Agent] = field(default_factory=dict)
    counted: dict[tuple[str, str, str], None] = field(default_factory=dict)


@dataclass(slots=True)
class _Resync:
    state: _System
    channels_done: bool = False
    queues_done: bool = False


# ---- changes for consumers ---------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Change:
    system_name: str


@dataclass(frozen=True, slots=True)
class CallStarted(Change):
    linkedid: str
    caller_number: str
    caller_name: str
    channel: str
    started: float


@dataclass(frozen=True, slots=True)
class CallEnded(Change):
    linkedid: str
    caller_number: str
    started: float
    duration: float
    queue: str
    agent: str
    answered: bool
    vanished: bool = False  # gone from Asterisk's snapshot at a resync, no Hangup seen


@dataclass(frozen=True, slots=True)
class CallerWaiting(Change):
    queue: str
    uniqueid: str
    linkedid: str
    caller_number: str
    caller_name: str
    position: int
    joined: float
    variables: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CallerLeft(Change):
    queue: str
    uniqueid: str
    linkedid: str
    caller_number: str
    wait: float
    abandoned: bool
    vanished: bool = False


@dataclass(frozen=True, slots=True)
class AgentRinging(Change):
    interface: str
    member_name: str
    queue: str
    uniqueid: str  # the caller's channel
    linkedid: str
    caller_number: str
    caller_name: str
    wait: float
    variables: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AgentRingEnded(Change):
    interface: str
    queue: str
    linkedid: str
    reason: str  # no_answer | dump | caller_left | hangup


@dataclass(frozen=True, slots=True)
class AgentAnswered(Change):
    interface: str
    member_name: str
    queue: str
    uniqueid: str
    linkedid: str
    caller_number: str
    caller_name: str
    wait: float
    ring_time: int
    variables: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AgentCallEnded(Change):
    interface: str
    queue: str
    linkedid: str
    hold_time: int
    talk_time: int
    reason: str


@dataclass(frozen=True, slots=True)
class AgentStateChanged(Change):
    interface: str
    member_name: str
    state: AgentState | None  # None: no longer a member of any queue
    previous: AgentState | None
    since: float
    paused_reason: str
    # The state in each queue: a pause may hold for some queues only.
    queues: Mapping[str, AgentState] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class MembershipChanged(Change):
    interface: str
    member_name: str
    queue: str
    added: bool


@dataclass(frozen=True, slots=True)
class Resynced(Change):
    channels: int
    calls_added: int
    calls_removed: int


# ---- applying one event ------------------------------------------------------------------
@dataclass(slots=True)
class _Ctx:
    system: _System
    now: float
    stats: Counter[str]
    changes: list[Change] = field(default_factory=list)

    def emit(self, change: Change) -> None:
        self.changes.append(change)

    def once(self, kind: str, scope: str, key: str) -> bool:
        """True the first time this counted event is seen on this system."""
        counted = self.system.counted
        token = (kind, scope, key)
        if token in counted:
            return False
        counted[token] = None
        if len(counted) > RECENT_LIMIT:
            del counted[next(iter(counted))]
        return True


def _refresh(ctx: _Ctx, snap: ChannelSnapshot, *, count_unknown: bool = True) -> Channel | None:
    """Update a known channel from a newer snapshot in any event."""
    channel = ctx.system.channels.get(snap.uniqueid)
    if channel is None:
        if count_unknown:
            ctx.stats["unknown_channel"] += 1
        return None
    channel.name = snap.name
    channel.state = snap.state if snap.state >= 0 else channel.state
    channel.state_desc = snap.state_desc or channel.state_desc
    channel.caller_number = snap.caller_number
    channel.caller_name = snap.caller_name
    channel.connected_number = snap.connected_number
    channel.connected_name = snap.connected_name
    channel.context = snap.context
    channel.exten = snap.exten
    channel.variables.update(snap.variables)
    if channel.uniqueid == channel.linkedid:
        call = ctx.system.calls.get(channel.linkedid)
        if call is not None:
            call.caller_number, call.caller_name = channel.caller_number, channel.caller_name
    return channel


def _new_channel(snap: ChannelSnapshot, created: float) -> Channel:
    return Channel(
        uniqueid=snap.uniqueid,
        name=snap.name,
        linkedid=snap.linkedid,
        state=snap.state,
        state_desc=snap.state_desc,
        caller_number=snap.caller_number,
        caller_name=snap.caller_name,
        connected_number=snap.connected_number,
        connected_name=snap.connected_name,
        context=snap.context,
        exten=snap.exten,
        variables=dict(snap.variables),
        created=created,
    )


def _add_channel(ctx: _Ctx, channel: Channel) -> None:
    system = ctx.system
    system.channels[channel.uniqueid] = channel
    call = system.calls.get(channel.linkedid)
    if call is None:
        call = Call(
            linkedid=channel.linkedid,
            started=channel.created,
            caller_number=channel.caller_number,
            caller_name=channel.caller_name,
        )
        system.calls[channel.linkedid] = call
        ctx.emit(
            CallStarted(
                system_name=system.name,
                linkedid=call.linkedid,
                caller_number=channel.caller_number,
                caller_name=channel.caller_name,
                channel=channel.name,
                started=call.started,
            )
        )
    call.channels.add(channel.uniqueid)


def _origin(system: _System, call: Call) -> Channel | None:
    """The call's first channel: the one whose Uniqueid is the Linkedid, else the oldest."""
    first = system.channels.get(call.linkedid)
    if first is not None:
        return first
    known = [system.channels[u] for u in call.channels if u in system.channels]
    return min(known, key=lambda c: (c.created, c.uniqueid), default=None)


def _call_ended(system: _System, call: Call, now: float, *, vanished: bool) -> CallEnded:
    return CallEnded(
        system_name=system.name,
        linkedid=call.linkedid,
        caller_number=call.caller_number,
        started=call.started,
        duration=max(0.0, now - call.started),
        queue=call.queue,
        agent=call.agent,
        answered=call.answered_at is not None,
        vanished=vanished,
    )


def _on_newchannel(ctx: _Ctx, event: Newchannel) -> None:
    if event.channel.uniqueid in ctx.system.channels:
        ctx.stats["duplicate"] += 1
        _refresh(ctx, event.channel)
        return
    _add_channel(ctx, _new_channel(event.channel, ctx.now))


def _on_channel_update(ctx: _Ctx, event: Newstate | NewCallerid | NewConnectedLine) -> None:
    _refresh(ctx, event.channel)


def _on_hangup(ctx: _Ctx, event: Hangup) -> None:
    system = ctx.system
    channel = _refresh(ctx, event.channel)
    if channel is None:
        return
    uniqueid = channel.uniqueid
    bridge = system.bridges.get(channel.bridge)
    if bridge is not None:
        bridge.channels.discard(uniqueid)
    for queue in system.queues.values():
        _drop_caller(ctx, queue, uniqueid, abandoned=True)
    for agent in system.agents.values():
        _forget_channel(ctx, agent, uniqueid)
    call = system.calls.get(channel.linkedid)
    if call is not None:
        call.channels.discard(uniqueid)
        if not call.channels:
            ctx.emit(_call_ended(system, call, ctx.now, vanished=False))
            del system.calls[call.linkedid]
    del system.channels[uniqueid]


def _forget_channel(ctx: _Ctx, agent: Agent, uniqueid: str) -> None:
    """A channel hung up: drop whatever of this agent's ringing or call depended on it."""
    ring = agent.ringing
    if ring is not None and uniqueid in (ring.agent_channel, ring.caller_uniqueid):
        _end_ring(ctx, agent, "hangup")
    current = agent.call
    if current is not None and uniqueid in (current.agent_channel, current.caller_uniqueid):
        agent.call = None
        _refresh_agent(ctx, agent)


def _on_dial(ctx: _Ctx, event: DialBegin | DialEnd) -> None:
    if event.caller is not None:
        _refresh(ctx, event.caller)
    _refresh(ctx, event.dest)


# ---- bridges -----------------------------------------------------------------------------
def _on_bridge_create(ctx: _Ctx, event: BridgeCreate) -> None:
    snap = event.bridge
    if snap.uniqueid in ctx.system.bridges:
        ctx.stats["duplicate"] += 1
        return
    ctx.system.bridges[snap.uniqueid] = Bridge(snap.uniqueid, snap.bridge_type, snap.technology)


def _on_bridge_enter(ctx: _Ctx, event: BridgeEnter) -> None:
    channel = _refresh(ctx, event.channel)
    if channel is None:
        return
    snap = event.bridge
    bridge = ctx.system.bridges.get(snap.uniqueid)
    if bridge is None:
        ctx.stats["unknown_bridge"] += 1
        bridge = Bridge(snap.uniqueid, snap.bridge_type, snap.technology)
        ctx.system.bridges[snap.uniqueid] = bridge
    bridge.channels.add(channel.uniqueid)
    channel.bridge = bridge.uniqueid


def _on_bridge_leave(ctx: _Ctx, event: BridgeLeave) -> None:
    bridge = ctx.system.bridges.get(event.bridge.uniqueid)
    if bridge is None:
        ctx.stats["unknown_bridge"] += 1
    else:
        bridge.channels.discard(event.channel.uniqueid)
    channel = _refresh(ctx, event.channel)
    if channel is not None and channel.bridge == event.bridge.uniqueid:
        channel.bridge = ""


def _on_bridge_destroy(ctx: _Ctx, event: BridgeDestroy) -> None:
    bridge = ctx.system.bridges.pop(event.bridge.uniqueid, None)
    if bridge is None:
        ctx.stats["unknown_bridge"] += 1
        return
    for uniqueid in bridge.channels:
        channel = ctx.system.channels.get(uniqueid)
        if channel is not None and channel.bridge == bridge.uniqueid:
            channel.bridge = ""


# ---- queue callers -----------------------------------------------------------------------
def _queue(ctx: _Ctx, name: str) -> Queue:
    queue = ctx.system.queues.get(name)
    if queue is None:
        # Queues are learnt from QueueStatus at each resync; a new one means a reload since.
        ctx.stats["unknown_queue"] += 1
        queue = Queue(name=name)
        ctx.system.queues[name] = queue
    return queue


def _find_caller(queue: Queue, uniqueid: str) -> WaitingCaller | None:
    return next((c for c in queue.callers if c.uniqueid == uniqueid), None)


def _on_caller_join(ctx: _Ctx, event: QueueCallerJoin) -> None:
    queue = _queue(ctx, event.queue)
    snap = event.channel
    channel = _refresh(ctx, snap, count_unknown=False)
    if _find_caller(queue, snap.uniqueid) is not None:
        ctx.stats["duplicate"] += 1
        return
    caller = WaitingCaller(
        uniqueid=snap.uniqueid,
        linkedid=snap.linkedid,
        channel=snap.name,
        caller_number=snap.caller_number,
        caller_name=snap.caller_name,
        joined=ctx.now,
    )
    index = min(max(event.position - 1, 0), len(queue.callers))
    queue.callers.insert(index, caller)
    call = ctx.system.calls.get(snap.linkedid)
    if call is not None:
        call.queue = queue.name
    ctx.emit(
        CallerWaiting(
            system_name=ctx.system.name,
            queue=queue.name,
            uniqueid=caller.uniqueid,
            linkedid=caller.linkedid,
            caller_number=caller.caller_number,
            caller_name=caller.caller_name,
            position=index + 1,
            joined=caller.joined,
            variables=dict(channel.variables if channel else snap.variables),
        )
    )


def _on_caller_abandon(ctx: _Ctx, event: QueueCallerAbandon) -> None:
    queue = _queue(ctx, event.queue)
    _refresh(ctx, event.channel, count_unknown=False)
    if not ctx.once("abandon", queue.name, event.channel.uniqueid):
        ctx.stats["duplicate"] += 1
        return
    queue.abandoned += 1
    caller = _find_caller(queue, event.channel.uniqueid)
    if caller is None:
        ctx.stats["unknown_queue_caller"] += 1
        return
    # Asterisk sends QueueCallerLeave right after; that one removes the caller.
    caller.abandoned = True
    caller.hold_time = event.hold_time


def _on_caller_leave(ctx: _Ctx, event: QueueCallerLeave) -> None:
    queue = _queue(ctx, event.queue)
    _refresh(ctx, event.channel, count_unknown=False)
    if _find_caller(queue, event.channel.uniqueid) is None:
        ctx.stats["unknown_queue_caller"] += 1
        return
    _drop_caller(ctx, queue, event.channel.uniqueid, abandoned=False)


def _drop_caller(ctx: _Ctx, queue: Queue, uniqueid: str, *, abandoned: bool) -> None:
    """Remove a waiting caller; ``abandoned`` if it went without a Leave (a Hangup)."""
    caller = _find_caller(queue, uniqueid)
    if caller is None:
        return
    queue.callers.remove(caller)
    gave_up = caller.abandoned or abandoned
    wait = float(caller.hold_time) if caller.hold_time is not None else max(0.0, ctx.now - caller.joined)
    ctx.emit(
        CallerLeft(
            system_name=ctx.system.name,
            queue=queue.name,
            uniqueid=uniqueid,
            linkedid=caller.linkedid,
            caller_number=caller.caller_number,
            wait=wait,
            abandoned=gave_up,
        )
    )
    if gave_up:
        # Nobody answers a caller who hung up: stop the agents' phones ringing for it.
        for agent in ctx.system.agents.values():
            if agent.ringing is not None and agent.ringing.caller_uniqueid == uniqueid:
                _end_ring(ctx, agent, "caller_left")


# ---- agents ------------------------------------------------------------------------------
def _derive(agent: Agent, paused: bool) -> AgentState:
    if agent.call is not None or agent.status in _DEVICE_BUSY:
        return AgentState.IN_CALL
    if agent.ringing is not None or agent.status in _DEVICE_RINGING:
        return AgentState.RINGING
    if paused:
        return AgentState.PAUSED
    if agent.status in _DEVICE_UNAVAILABLE:
        return AgentState.UNAVAILABLE
    return AgentState.AVAILABLE


def _pause_reason(agent: Agent) -> str:
    paused = sorted((m for m in agent.memberships.values() if m.paused), key=lambda m: -m.paused_at)
    return next((m.paused_reason for m in paused if m.paused_reason), "")


def _refresh_agent(ctx: _Ctx, agent: Agent) -> None:
    """Recompute the agent's state (overall and per queue); emit a change if any moved."""
    moved = False
    for membership in agent.memberships.values():
        in_queue = _derive(agent, membership.paused)
        if in_queue is not membership.state:
            membership.state, membership.since = in_queue, ctx.now
            moved = True
    memberships = agent.memberships.values()
    # Paused overall only when no queue can offer it a call; the reason shows for any pause.
    state = _derive(agent, bool(memberships) and all(m.paused for m in memberships))
    reason = _pause_reason(agent)
    if state is agent.state and reason == agent.paused_reason and not moved:
        return
    previous = agent.state
    if state is not previous:
        agent.since = ctx.now
    agent.state, agent.paused_reason = state, reason
    ctx.emit(_agent_change(ctx.system.name, agent, previous))


def _agent_change(system_name: str, agent: Agent, previous: AgentState | None) -> AgentStateChanged:
    return AgentStateChanged(
        system_name=system_name,
        interface=agent.interface,
        member_name=agent.name,
        state=agent.state,
        previous=previous,
        since=agent.since,
        paused_reason=agent.paused_reason,
        queues={queue: m.state for queue, m in sorted(agent.memberships.items())},
    )


def _agent(ctx: _Ctx, interface: str, name: str) -> Agent:
    agent = ctx.system.agents.get(interface)
    if agent is None:
        ctx.stats["unknown_agent"] += 1
        agent = Agent(interface=interface, name=name or interface, since=ctx.now)
        ctx.system.agents[interface] = agent
    elif name:
        agent.name = name
    return agent


def _end_ring(ctx: _Ctx, agent: Agent, reason: str) -> None:
    ring = agent.ringing
    if ring is None:
        return
    agent.ringing = None
    ctx.emit(
        AgentRingEnded(
            system_name=ctx.system.name,
            interface=agent.interface,
            queue=ring.queue,
            linkedid=ring.linkedid,
            reason=reason,
        )
    )
    _refresh_agent(ctx, agent)


def _variables(ctx: _Ctx, snap: ChannelSnapshot) -> dict[str, str]:
    channel = ctx.system.channels.get(snap.uniqueid)
    return dict(channel.variables if channel is not None else snap.variables)


def _on_agent_called(ctx: _Ctx, event: AgentCalled) -> None:
    caller = event.caller
    _refresh(ctx, caller, count_unknown=False)
    if event.agent is not None:
        _refresh(ctx, event.agent, count_unknown=False)
    agent = _agent(ctx, event.interface, event.member_name)
    agent_channel = event.agent.uniqueid if event.agent is not None else ""
    ring = agent.ringing
    if ring is not None and (ring.caller_uniqueid, ring.agent_channel) == (caller.uniqueid, agent_channel):
        ctx.stats["duplicate"] += 1
        return
    queue = ctx.system.queues.get(event.queue)
    waiting = _find_caller(queue, caller.uniqueid) if queue is not None else None
    agent.ringing = AgentRing(
        queue=event.queue,
        caller_uniqueid=caller.uniqueid,
        linkedid=caller.linkedid,
        agent_channel=agent_channel,
        caller_number=caller.caller_number,
        since=ctx.now,
    )
    ctx.emit(
        AgentRinging(
            system_name=ctx.system.name,
            interface=agent.interface,
            member_name=agent.name,
            queue=event.queue,
            uniqueid=caller.uniqueid,
            linkedid=caller.linkedid,
            caller_number=caller.caller_number,
            caller_name=caller.caller_name,
            wait=max(0.0, ctx.now - waiting.joined) if waiting else 0.0,
            variables=_variables(ctx, caller),
        )
    )
    _refresh_agent(ctx, agent)


def _on_ring_stopped(ctx: _Ctx, event: AgentRingNoAnswer | AgentDump) -> None:
    _refresh(ctx, event.caller, count_unknown=False)
    agent = ctx.system.agents.get(event.interface)
    if agent is None:
        ctx.stats["unknown_agent"] += 1
        return
    ring = agent.ringing
    if ring is None or ring.caller_uniqueid != event.caller.uniqueid:
        ctx.stats["duplicate"] += 1
        return
    _end_ring(ctx, agent, "no_answer" if isinstance(event, AgentRingNoAnswer) else "dump")


def _on_agent_connect(ctx: _Ctx, event: AgentConnect) -> None:
    caller = event.caller
    _refresh(ctx, caller, count_unknown=False)
    if not ctx.once("connect", event.queue, caller.uniqueid):
        ctx.stats["duplicate"] += 1
        return
    queue = _queue(ctx, event.queue)
    queue.answered += 1
    if queue.service_level and event.hold_time <= queue.service_level:
        queue.answered_within_sl += 1
    # Asterisk sends QueueCallerLeave before AgentConnect; this covers a lost one.
    _drop_caller(ctx, queue, caller.uniqueid, abandoned=False)
    agent = _agent(ctx, event.interface, event.member_name)
    agent.ringing = None
    agent.call = _agent_call(event, ctx.now)
    call = ctx.system.calls.get(caller.linkedid)
    if call is not None:
        call.queue, call.agent, call.answered_at = queue.name, agent.interface, ctx.now
    ctx.emit(
        AgentAnswered(
            system_name=ctx.system.name,
            interface=agent.interface,
            member_name=agent.name,
            queue=queue.name,
            uniqueid=caller.uniqueid,
            linkedid=caller.linkedid,
            caller_number=caller.caller_number,
            caller_name=caller.caller_name,
            wait=float(event.hold_time),
            ring_time=event.ring_time,
            variables=_variables(ctx, caller),
        )
    )
    _refresh_agent(ctx, agent)


def _agent_call(event: AgentEvent, now: float) -> AgentCall:
    return AgentCall(
        queue=event.queue,
        caller_uniqueid=event.caller.uniqueid,
        linkedid=event.caller.linkedid,
        agent_channel=event.agent.uniqueid if event.agent is not None else "",
        caller_number=event.caller.caller_number,
        since=now,
    )


def _on_agent_complete(ctx: _Ctx, event: AgentComplete) -> None:
    caller = event.caller
    _refresh(ctx, caller, count_unknown=False)
    if not ctx.once("complete", event.queue, caller.uniqueid):
        ctx.stats["duplicate"] += 1
        return
    _queue(ctx, event.queue).completed += 1
    agent = ctx.system.agents.get(event.interface)
    if agent is None:
        ctx.stats["unknown_agent"] += 1
    elif agent.call is not None and agent.call.caller_uniqueid == caller.uniqueid:
        agent.call = None
    ctx.emit(
        AgentCallEnded(
            system_name=ctx.system.name,
            interface=event.interface,
            queue=event.queue,
            linkedid=caller.linkedid,
            hold_time=event.hold_time,
            talk_time=event.talk_time,
            reason=event.reason,
        )
    )
    if agent is not None:
        _refresh_agent(ctx, agent)


# ---- queue members -----------------------------------------------------------------------
def _membership(snap: MemberSnapshot, now: float) -> Membership:
    return Membership(
        queue=snap.queue,
        penalty=snap.penalty,
        membership=snap.membership,
        paused=snap.paused,
        paused_reason=snap.paused_reason if snap.paused else "",
        paused_at=float(snap.last_pause) if snap.paused and snap.last_pause else now,
        calls_taken=snap.calls_taken,
        in_call=snap.in_call,
        last_call=snap.last_call,
        since=now,
    )


def _upsert_member(ctx: _Ctx, snap: MemberSnapshot, *, expected: bool) -> tuple[Agent, bool]:
    """Record a member as Asterisk reports it; returns the agent and whether it is new here."""
    agent = ctx.system.agents.get(snap.interface)
    if agent is None:
        agent = Agent(interface=snap.interface, name=snap.member_name or snap.interface, since=ctx.now)
        ctx.system.agents[snap.interface] = agent
    agent.name = snap.member_name or agent.name
    agent.status = snap.status
    _queue_if_new(ctx, snap.queue)
    old = agent.memberships.get(snap.queue)
    if old is None and not expected:
        ctx.stats["unknown_agent"] += 1
    fresh = _membership(snap, ctx.now)
    if old is not None:
        fresh.state, fresh.since = old.state, old.since
        if old.paused and fresh.paused:
            fresh.paused_at = old.paused_at
    agent.memberships[snap.queue] = fresh
    return agent, old is None


def _queue_if_new(ctx: _Ctx, name: str) -> None:
    if name not in ctx.system.queues:
        ctx.system.queues[name] = Queue(name=name)


def _on_member_added(ctx: _Ctx, event: QueueMemberAdded) -> None:
    agent, new = _upsert_member(ctx, event.member, expected=True)
    if not new:
        ctx.stats["duplicate"] += 1
    else:
        ctx.emit(
            MembershipChanged(
                system_name=ctx.system.name,
                interface=agent.interface,
                member_name=agent.name,
                queue=event.member.queue,
                added=True,
            )
        )
    _refresh_agent(ctx, agent)


def _on_member_removed(ctx: _Ctx, event: QueueMemberRemoved) -> None:
    snap = event.member
    agent = ctx.system.agents.get(snap.interface)
    if agent is None or agent.memberships.pop(snap.queue, None) is None:
        ctx.stats["unknown_agent"] += 1
        return
    ctx.emit(
        MembershipChanged(
            system_name=ctx.system.name,
            interface=agent.interface,
            member_name=agent.name,
            queue=snap.queue,
            added=False,
        )
    )
    if agent.memberships:
        _refresh_agent(ctx, agent)
        return
    del ctx.system.agents[agent.interface]
    gone = Agent(interface=agent.interface, name=agent.name, since=ctx.now)
    ctx.emit(_agent_change(ctx.system.name, gone, agent.state))


def _on_member_update(ctx: _Ctx, event: QueueMemberPause | QueueMemberStatus | QueueMemberRinginuse) -> None:
    agent, _ = _upsert_member(ctx, event.member, expected=False)
    _refresh_agent(ctx, agent)


def _on_malformed(ctx: _Ctx, event: MalformedEvent) -> None:
    ctx.stats["malformed"] += 1
    ctx.stats[f"malformed:{event.event.lower()}"] += 1


def _on_fully_booted(ctx: _Ctx, event: FullyBooted) -> None:
    # The connection layer starts a resync after each FullyBooted; nothing to change here.
    ctx.stats["fully_booted"] += 1


# ---- list items: they only build the snapshot of a resync --------------------------------
def _on_core_show_channel(ctx: _Ctx, event: CoreShowChannel) -> None:
    snap = event.channel
    existing = ctx.system.channels.get(snap.uniqueid)
    if existing is None:
        existing = _new_channel(snap, ctx.now - event.duration)
        _add_channel(ctx, existing)
    else:
        _refresh(ctx, snap)
    if event.bridge_id:
        bridge = ctx.system.bridges.setdefault(event.bridge_id, Bridge(event.bridge_id, "", ""))
        bridge.channels.add(snap.uniqueid)
        existing.bridge = event.bridge_id
    if snap.uniqueid == snap.linkedid:
        # Listed in any order: the first channel names the caller and dates the call.
        call = ctx.system.calls[snap.linkedid]
        call.started = min(call.started, existing.created)
        call.caller_number, call.caller_name = existing.caller_number, existing.caller_name


def _on_queue_params(ctx: _Ctx, event: QueueParams) -> None:
    _queue_if_new(ctx, event.queue)
    queue = ctx.system.queues[event.queue]
    queue.strategy = event.strategy
    queue.service_level = event.service_level
    queue.max_callers = event.max_callers
    queue.weight = event.weight
    queue.completed = event.completed
    queue.abandoned = event.abandoned
    queue.service_level_perf = event.service_level_perf


def _on_queue_member(ctx: _Ctx, event: QueueMember) -> None:
    agent, _ = _upsert_member(ctx, event.member, expected=True)
    _refresh_agent(ctx, agent)


def _on_queue_entry(ctx: _Ctx, event: QueueEntry) -> None:
    _queue_if_new(ctx, event.queue)
    queue = ctx.system.queues[event.queue]
    if _find_caller(queue, event.uniqueid) is not None:
        return
    # QueueEntry has no Linkedid: the channel list supplies it when the resync ends.
    caller = WaitingCaller(
        uniqueid=event.uniqueid,
        linkedid="",
        channel=event.channel_name,
        caller_number=event.caller_number,
        caller_name=event.caller_name,
        joined=ctx.now - event.wait,
    )
    index = min(max(event.position - 1, 0), len(queue.callers))
    queue.callers.insert(index, caller)


def _on_list_complete(ctx: _Ctx, event: ListEvent) -> None:
    """Completion is tracked by LiveState itself."""


# ---- dispatch tables ---------------------------------------------------------------------
E = TypeVar("E", bound=AmiEvent)
_Handler = Callable[[_Ctx, AmiEvent], None]


def _on(kind: type[E], handler: Callable[[_Ctx, E], None]) -> tuple[type[AmiEvent], _Handler]:
    def run(ctx: _Ctx, event: AmiEvent) -> None:
        if isinstance(event, kind):  # always true: tables are keyed by the exact type
            handler(ctx, event)

    return kind, run


_HANDLERS: Mapping[type[AmiEvent], _Handler] = MappingProxyType(
    dict(
        [
            _on(MalformedEvent, _on_malformed),
            _on(FullyBooted, _on_fully_booted),
            _on(Newchannel, _on_newchannel),
            _on(Newstate, _on_channel_update),
            _on(NewCallerid, _on_channel_update),
            _on(NewConnectedLine, _on_channel_update),
            _on(Hangup, _on_hangup),
            _on(DialBegin, _on_dial),
            _on(DialEnd, _on_dial),
            _on(BridgeCreate, _on_bridge_create),
            _on(BridgeEnter, _on_bridge_enter),
            _on(BridgeLeave, _on_bridge_leave),
            _on(BridgeDestroy, _on_bridge_destroy),
            _on(QueueCallerJoin, _on_caller_join),
            _on(QueueCallerLeave, _on_caller_leave),
            _on(QueueCallerAbandon, _on_caller_abandon),
            _on(AgentCalled, _on_agent_called),
            _on(AgentConnect, _on_agent_connect),
            _on(AgentComplete, _on_agent_complete),
            _on(AgentRingNoAnswer, _on_ring_stopped),
            _on(AgentDump, _on_ring_stopped),
            _on(QueueMemberAdded, _on_member_added),
            _on(QueueMemberRemoved, _on_member_removed),
            _on(QueueMemberPause, _on_member_update),
            _on(QueueMemberStatus, _on_member_update),
            _on(QueueMemberRinginuse, _on_member_update),
        ]
    )
)

_LIST_HANDLERS: Mapping[type[AmiEvent], _Handler] = MappingProxyType(
    dict(
        [
            _on(CoreShowChannel, _on_core_show_channel),
            _on(CoreShowChannelsComplete, _on_list_complete),
            _on(QueueParams, _on_queue_params),
            _on(QueueMember, _on_queue_member),
            _on(QueueEntry, _on_queue_entry),
            _on(QueueStatusComplete, _on_list_complete),
        ]
    )
)


# ---- the public face ---------------------------------------------------------------------
class LiveState:
    """Calls, channels, bridges, queues and agents of every connected Asterisk system."""

    def __init__(self) -> None:
        self._systems: dict[str, _System] = {}
        self._resyncs: dict[str, _Resync] = {}
        # Anomalies and counts: unknown_channel, unknown_queue_caller, duplicate, malformed, ...
        self.stats: Counter[str] = Counter()

    # ---- input -------------------------------------------------------------------------
    def apply(self, event: AmiEvent, now: float) -> list[Change]:
        """Apply one event seen at ``now``; returns what changed for consumers."""
        self.stats["events"] += 1
        handler = _HANDLERS.get(type(event))
        if handler is not None:
            ctx = _Ctx(self._system(event.system_name), now, self.stats)
            handler(ctx, event)
            resync = self._resyncs.get(event.system_name)
            if resync is not None:
                # The snapshot being built must also see what happens while it is listed.
                handler(_Ctx(resync.state, now, Counter()), event)
            return ctx.changes
        list_handler = _LIST_HANDLERS.get(type(event))
        if list_handler is None:
            self.stats["untracked"] += 1
            return []
        return self._apply_list(event, list_handler, now)

    def begin_resync(self, system_name: str) -> None:
        """Start building a fresh snapshot of ``system_name`` from the list events to come.

        Call it before sending CoreShowChannels and QueueStatus; calling it again starts over.
        The resync ends by itself when both lists are complete.
        """
        self._resyncs[system_name] = _Resync(_System(system_name))

    def resyncing(self, system_name: str) -> bool:
        return system_name in self._resyncs

    def end_resync(self, system_name: str, now: float) -> list[Change]:
        """Replace the system's state with the snapshot; the parts whose list completed only."""
        resync = self._resyncs.pop(system_name, None)
        if resync is None:
            return []
        old = self._system(system_name)
        marks = {interface: _AgentMark.of(agent) for interface, agent in old.agents.items()}
        new = _merge(old, resync)
        self._systems[system_name] = new
        ctx = _Ctx(new, now, self.stats)
        _rebuild_links(ctx)
        # What consumers need is the difference from before the resync, computed next.
        ctx.changes.clear()
        _emit_differences(ctx, old, new, marks)
        self.stats["resyncs"] += 1
        return ctx.changes

    def _apply_list(self, event: AmiEvent, handler: _Handler, now: float) -> list[Change]:
        resync = self._resyncs.get(event.system_name)
        if resync is None:
            self.stats["list_outside_resync"] += 1
            return []
        handler(_Ctx(resync.state, now, Counter()), event)
        if isinstance(event, CoreShowChannelsComplete):
            resync.channels_done = True
        if isinstance(event, QueueStatusComplete):
            resync.queues_done = True
        if resync.channels_done and resync.queues_done:
            return self.end_resync(event.system_name, now)
        return []

    def _system(self, name: str) -> _System:
        system = self._systems.get(name)
        if system is None:
            system = _System(name)
            self._systems[name] = system
        return system

    # ---- reading -----------------------------------------------------------------------
    def system_names(self) -> list[str]:
        return sorted(self._systems)

    def channel(self, system_name: str, uniqueid: str) -> Channel | None:
        system = self._systems.get(system_name)
        return system.channels.get(uniqueid) if system else None

    def call(self, system_name: str, linkedid: str) -> Call | None:
        system = self._systems.get(system_name)
        return system.calls.get(linkedid) if system else None

    def calls(self, system_name: str) -> list[Call]:
        system = self._systems.get(system_name)
        return sorted(system.calls.values(), key=lambda c: c.started) if system else []

    def bridge(self, system_name: str, uniqueid: str) -> Bridge | None:
        system = self._systems.get(system_name)
        return system.bridges.get(uniqueid) if system else None

    def queue(self, system_name: str, name: str) -> Queue | None:
        system = self._systems.get(system_name)
        return system.queues.get(name) if system else None

    def queues(self, system_name: str) -> list[Queue]:
        system = self._systems.get(system_name)
        return [q for _, q in sorted(system.queues.items())] if system else []

    def agent(self, system_name: str, interface: str) -> Agent | None:
        system = self._systems.get(system_name)
        return system.agents.get(interface) if system else None

    def agents(self, system_name: str) -> list[Agent]:
        system = self._systems.get(system_name)
        return [a for _, a in sorted(system.agents.items())] if system else []

    def snapshot(self, now: float) -> dict[str, Any]:
        """Plain, JSON-able data for a wallboard."""
        return {
            "systems": {
                name: _system_snapshot(system, now, name in self._resyncs)
                for name, system in sorted(self._systems.items())
            },
            "stats": dict(sorted(self.stats.items())),
        }


# ---- resync internals --------------------------------------------------------------------
def _merge(old: _System, resync: _Resync) -> _System:
    fresh = resync.state
    new = _System(old.name, counted=old.counted)
    source = fresh if resync.channels_done else old
    new.channels, new.calls, new.bridges = source.channels, source.calls, source.bridges
    if resync.channels_done:
        _keep_call_facts(old, new)
    if resync.queues_done:
        new.queues, new.agents = fresh.queues, fresh.agents
        _keep_local_counts(old, new)
        _keep_agent_calls(old, new)
    else:
        new.queues, new.agents = old.queues, old.agents
    return new


def _keep_call_facts(old: _System, new: _System) -> None:
    # The lists give times to the second and no queue or agent; what we saw happen is better.
    for linkedid, call in new.calls.items():
        before = old.calls.get(linkedid)
        if before is None:
            continue
        call.started = before.started
        call.queue = before.queue or call.queue
        call.agent = before.agent or call.agent
        call.answered_at = before.answered_at if before.answered_at is not None else call.answered_at
    for uniqueid, channel in new.channels.items():
        was = old.channels.get(uniqueid)
        if was is not None:
            channel.created = was.created


def _keep_agent_calls(old: _System, new: _System) -> None:
    """Keep an agent's ringing or call if the channels it hangs on are still there."""
    for interface, agent in new.agents.items():
        before = old.agents.get(interface)
        if before is None or agent.call is not None or agent.ringing is not None:
            continue
        if before.call is not None and before.call.agent_channel in new.channels:
            agent.call = before.call
        elif before.ringing is not None and before.ringing.agent_channel in new.channels:
            agent.ringing = before.ringing


def _keep_local_counts(old: _System, new: _System) -> None:
    # Asterisk does not report what only this state counts; carry it over.
    for name, queue in new.queues.items():
        before = old.queues.get(name)
        if before is not None:
            queue.answered = max(queue.answered, before.answered)
            queue.answered_within_sl = max(queue.answered_within_sl, before.answered_within_sl)


def _channel_interface(name: str) -> str:
    # "PJSIP/agent1-0000002a" is a channel of the device "PJSIP/agent1".
    return name.rsplit("-", 1)[0]


def _rebuild_links(ctx: _Ctx) -> None:
    """Fill in what the lists don't say directly: callers' Linkedid, agents' calls and rings."""
    system = ctx.system
    for queue in system.queues.values():
        for caller in queue.callers:
            channel = system.channels.get(caller.uniqueid)
            caller.linkedid = caller.linkedid or (channel.linkedid if channel else caller.uniqueid)
            call = system.calls.get(caller.linkedid)
            if call is not None:
                call.queue = queue.name
    by_interface: dict[str, list[Channel]] = {}
    for channel in system.channels.values():
        by_interface.setdefault(_channel_interface(channel.name), []).append(channel)
    for agent in system.agents.values():
        if agent.call is None and agent.ringing is None:
            _rebuild_agent(ctx, agent, by_interface.get(agent.interface, []))
        _refresh_agent(ctx, agent)


def _rebuild_agent(ctx: _Ctx, agent: Agent, channels: list[Channel]) -> None:
    system = ctx.system
    for channel in channels:
        origin = system.channels.get(channel.linkedid)
        caller_number = origin.caller_number if origin else channel.connected_number
        queue = _queue_of(system, channel.linkedid, origin)
        if channel.state == _CHANNEL_UP and channel.bridge:
            agent.call = AgentCall(
                queue, channel.linkedid, channel.linkedid, channel.uniqueid, caller_number, channel.created
            )
            call = system.calls.get(channel.linkedid)
            if call is not None:
                call.agent = agent.interface
                call.answered_at = call.answered_at or channel.created
            return
        if channel.state in _CHANNEL_RINGING:
            agent.ringing = AgentRing(
                queue, channel.linkedid, channel.linkedid, channel.uniqueid, caller_number, channel.created
            )
            return


def _queue_of(system: _System, linkedid: str, origin: Channel | None) -> str:
    call = system.calls.get(linkedid)
    if call is not None and call.queue:
        return call.queue
    return origin.variables.get("CC_QUEUE", "") if origin else ""


@dataclass(frozen=True, slots=True)
class _AgentMark:
    """An agent as it was before a resync (the objects themselves may be reused)."""

    name: str
    state: AgentState | None
    since: float
    paused_reason: str
    memberships: Mapping[str, tuple[AgentState, float]]

    @classmethod
    def of(cls, agent: Agent) -> _AgentMark:
        return cls(
            name=agent.name,
            state=agent.state,
            since=agent.since,
            paused_reason=agent.paused_reason,
            memberships={q: (m.state, m.since) for q, m in agent.memberships.items()},
        )


def _emit_differences(ctx: _Ctx, old: _System, new: _System, marks: Mapping[str, _AgentMark]) -> None:
    now = ctx.now
    removed = [c for k, c in old.calls.items() if k not in new.calls]
    added = [c for k, c in new.calls.items() if k not in old.calls]
    for call in removed:
        ctx.emit(_call_ended(old, call, now, vanished=True))
    for call in added:
        origin = _origin(new, call)
        ctx.emit(
            CallStarted(
                system_name=new.name,
                linkedid=call.linkedid,
                caller_number=call.caller_number,
                caller_name=call.caller_name,
                channel=origin.name if origin else "",
                started=call.started,
            )
        )
    _emit_queue_differences(ctx, old, new)
    _emit_agent_differences(ctx, marks, new)
    ctx.emit(
        Resynced(
            system_name=new.name,
            channels=len(new.channels),
            calls_added=len(added),
            calls_removed=len(removed),
        )
    )


def _emit_queue_differences(ctx: _Ctx, old: _System, new: _System) -> None:
    for name in sorted(set(old.queues) | set(new.queues)):
        before = {c.uniqueid: c for c in old.queues[name].callers} if name in old.queues else {}
        after = new.queues[name].callers if name in new.queues else []
        for caller in before.values():
            if all(c.uniqueid != caller.uniqueid for c in after):
                ctx.emit(
                    CallerLeft(
                        system_name=new.name,
                        queue=name,
                        uniqueid=caller.uniqueid,
                        linkedid=caller.linkedid,
                        caller_number=caller.caller_number,
                        wait=max(0.0, ctx.now - caller.joined),
                        abandoned=False,
                        vanished=True,
                    )
                )
        for position, caller in enumerate(after, start=1):
            if caller.uniqueid in before:
                # Seen joining: more exact than the whole seconds of QueueEntry's Wait.
                caller.joined = before[caller.uniqueid].joined
                continue
            channel = new.channels.get(caller.uniqueid)
            ctx.emit(
                CallerWaiting(
                    system_name=new.name,
                    queue=name,
                    uniqueid=caller.uniqueid,
                    linkedid=caller.linkedid,
                    caller_number=caller.caller_number,
                    caller_name=caller.caller_name,
                    position=position,
                    joined=caller.joined,
                    variables=dict(channel.variables) if channel else {},
                )
            )


def _emit_agent_differences(ctx: _Ctx, marks: Mapping[str, _AgentMark], new: _System) -> None:
    for interface, agent in sorted(new.agents.items()):
        mark = marks.get(interface)
        had = set(mark.memberships) if mark else set()
        _emit_membership_differences(ctx, agent, had, set(agent.memberships))
        if mark is not None and _carry_times(mark, agent):
            continue
        ctx.emit(_agent_change(new.name, agent, mark.state if mark else None))
    for interface, mark in sorted(marks.items()):
        if interface in new.agents:
            continue
        gone = Agent(interface=interface, name=mark.name, since=ctx.now)
        _emit_membership_differences(ctx, gone, set(mark.memberships), set())
        ctx.emit(_agent_change(new.name, gone, mark.state))


def _carry_times(mark: _AgentMark, agent: Agent) -> bool:
    """Keep the time in each unchanged state; True if nothing a consumer sees has changed."""
    unchanged = mark.state is agent.state and mark.paused_reason == agent.paused_reason
    if mark.state is agent.state:
        agent.since = mark.since
    elif agent.state is AgentState.PAUSED:
        agent.since = max(m.paused_at for m in agent.memberships.values())
    for queue, membership in agent.memberships.items():
        was = mark.memberships.get(queue)
        if was is not None and was[0] is membership.state:
            membership.since = was[1]
        else:
            unchanged = False
    return unchanged and set(mark.memberships) == set(agent.memberships)


def _emit_membership_differences(ctx: _Ctx, agent: Agent, had: set[str], has: set[str]) -> None:
    for queue in sorted(had ^ has):
        ctx.emit(
            MembershipChanged(
                system_name=ctx.system.name,
                interface=agent.interface,
                member_name=agent.name,
                queue=queue,
                added=queue in has,
            )
        )


# ---- the wallboard's view ----------------------------------------------------------------
def _system_snapshot(system: _System, now: float, resyncing: bool) -> dict[str, Any]:
    return {
        "resyncing": resyncing,
        "queues": [_queue_snapshot(system, q, now) for _, q in sorted(system.queues.items())],
        "agents": [_agent_snapshot(a, now) for _, a in sorted(system.agents.items())],
        "calls": [_call_snapshot(system, c, now) for c in sorted(system.calls.values(), key=_call_order)],
    }


def _call_order(call: Call) -> tuple[float, str]:
    return call.started, call.linkedid


def _queue_snapshot(system: _System, queue: Queue, now: float) -> dict[str, Any]:
    waiting = [
        {
            "position": position,
            "uniqueid": c.uniqueid,
            "linkedid": c.linkedid,
            "channel": c.channel,
            "caller_number": c.caller_number,
            "caller_name": c.caller_name,
            "wait": round(max(0.0, now - c.joined), 3),
        }
        for position, c in enumerate(queue.callers, start=1)
    ]
    members = sorted(
        ((a, a.memberships[queue.name]) for a in system.agents.values() if queue.name in a.memberships),
        key=lambda pair: pair[0].interface,
    )
    agents = [
        {
            "interface": agent.interface,
            "name": agent.name,
            "state": m.state.value,
            "since": m.since,
            "time_in_state": round(max(0.0, now - m.since), 3),
            "paused": m.paused,
            "paused_reason": m.paused_reason,
            "penalty": m.penalty,
        }
        for agent, m in members
    ]
    return {
        "name": queue.name,
        "strategy": queue.strategy,
        "service_level": queue.service_level,
        "waiting": waiting,
        "waiting_count": len(waiting),
        "longest_wait": round(max((max(0.0, now - c.joined) for c in queue.callers), default=0.0), 3),
        "answered": queue.answered,
        "answered_within_service_level": queue.answered_within_sl,
        "completed": queue.completed,
        "abandoned": queue.abandoned,
        "service_level_perf": queue.service_level_perf,
        "agents": agents,
        "agents_by_state": _count_states(m.state for _, m in members),
    }


def _count_states(states: Iterable[AgentState]) -> dict[str, int]:
    counts = Counter(s.value for s in states)
    return {state.value: counts.get(state.value, 0) for state in AgentState}


def _agent_snapshot(agent: Agent, now: float) -> dict[str, Any]:
    call = agent.call
    ring = agent.ringing
    return {
        "interface": agent.interface,
        "name": agent.name,
        "state": agent.state.value if agent.state else None,
        "since": agent.since,
        "time_in_state": round(max(0.0, now - agent.since), 3),
        "paused_reason": agent.paused_reason,
        "queues": sorted(agent.memberships),
        "calls_taken": agent.calls_taken,
        "call": None
        if call is None
        else {"linkedid": call.linkedid, "queue": call.queue, "caller_number": call.caller_number},
        "ringing": None
        if ring is None
        else {"linkedid": ring.linkedid, "queue": ring.queue, "caller_number": ring.caller_number},
    }


def _call_snapshot(system: _System, call: Call, now: float) -> dict[str, Any]:
    origin = _origin(system, call)
    channels = sorted((system.channels[u] for u in call.channels if u in system.channels), key=_by_created)
    return {
        "linkedid": call.linkedid,
        "caller_number": call.caller_number,
        "caller_name": call.caller_name,
        "started": call.started,
        "duration": round(max(0.0, now - call.started), 3),
        "queue": call.queue,
        "agent": call.agent,
        "answered_at": call.answered_at,
        "channels": [c.name for c in channels],
        "variables": dict(origin.variables) if origin else {},
    }


def _by_created(channel: Channel) -> tuple[float, str]:
    return channel.created, channel.uniqueid
