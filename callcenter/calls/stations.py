"""Agent stations: an agent logs in to the queues of its skills, pauses with a reason, logs out.

Asterisk is the source of truth for queue membership (QueueAdd / QueuePause / QueueRemove), and
the live state shows what Asterisk reports. The engine also remembers whom it logged in, because
Asterisk forgets dynamic members when it restarts (``persistentmembers = no``): after each
resync, ``restore`` adds back anyone who is missing, paused as they were.

Nothing typed by a user reaches an AMI action: the station and queues come from the user's
record and the settings and are checked against strict patterns here, the pause reason is a
code from a fixed table.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from callcenter.errors import Conflict, InvalidInput

# The queues agents log in to, as asterisk-conf/queues.conf defines them (a test keeps the two
# in step).
SERVICE_QUEUES = ("q112", "hotline")
STATION_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
CALLBACK_NUMBER_RE = re.compile(r"^\+?[0-9]{1,32}$")
QUEUE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$")

# Pause reasons an agent may choose: code -> (Indonesian, English). The code is what Asterisk
# records as PausedReason and what the wallboard shows.
PAUSE_REASONS: Mapping[str, tuple[str, str]] = {
    "istirahat": ("Istirahat", "Break"),
    "wrapup": ("Menyelesaikan laporan", "Wrap-up"),
    "pelatihan": ("Pelatihan", "Training"),
    "briefing": ("Briefing", "Briefing"),
    "administrasi": ("Administrasi", "Administration"),
    "ibadah": ("Ibadah", "Prayer"),
}

# Supervisor modes -> ChanSpy options: listen only, whisper to the agent, or join the call.
SPY_MODES: Mapping[str, str] = {"listen": "qE", "whisper": "qEw", "barge": "qEB"}

# Asterisk's answers that mean "already as you want it": login and logout are idempotent.
_ALREADY = ("already there", "not there")


class AmiPort(Protocol):
    async def send_action(self, action: Mapping[str, object], timeout: float = 10.0) -> Any: ...


@dataclass(frozen=True)
class Station:
    username: str
    station: str
    queues: tuple[str, ...]

    @property
    def interface(self) -> str:
        return f"PJSIP/{self.station}"


def station_of(username: str, station: str, skills: Sequence[str], known_queues: Sequence[str]) -> Station:
    """The station an agent logs in at, or InvalidInput saying what is missing."""
    if not station:
        raise InvalidInput("station", f"user {username!r} has no station; an administrator sets it")
    if not STATION_RE.match(station):
        raise InvalidInput("station", f"station {station!r} is not a valid endpoint name")
    queues = tuple(q for q in skills if q in known_queues)
    if not queues:
        raise InvalidInput("skills", f"user {username!r} has no skill for any queue of {list(known_queues)}")
    for queue in queues:
        if not QUEUE_RE.match(queue):
            raise InvalidInput("skills", f"queue name {queue!r} is not valid")
    return Station(username=username, station=station, queues=queues)


class AgentStations:
    def __init__(self, ami: AmiPort) -> None:
        self._ami = ami
        # username -> (station, pause reason or ""): whom to restore after an Asterisk restart.
        self._logged_in: dict[str, tuple[Station, str]] = {}

    def logged_in(self) -> dict[str, tuple[Station, str]]:
        return dict(self._logged_in)

    async def login(self, station: Station, paused_reason: str = "") -> None:
        for queue in station.queues:
            action = {
                "Action": "QueueAdd",
                "Queue": queue,
                "Interface": station.interface,
                "MemberName": station.username,
                "StateInterface": station.interface,
                "Paused": "true" if paused_reason else "false",
            }
            if paused_reason:
                action["Reason"] = paused_reason
            await self._send(action)
        self._logged_in[station.username] = (station, paused_reason)

    async def pause(self, station: Station, reason: str) -> None:
        if reason not in PAUSE_REASONS:
            raise InvalidInput("reason", f"unknown pause reason {reason!r}; one of {sorted(PAUSE_REASONS)}")
        await self._send(
            {"Action": "QueuePause", "Interface": station.interface, "Paused": "true", "Reason": reason}
        )
        self._logged_in[station.username] = (station, reason)

    async def resume(self, station: Station) -> None:
        await self._send({"Action": "QueuePause", "Interface": station.interface, "Paused": "false"})
        self._logged_in[station.username] = (station, "")

    async def logout(self, station: Station) -> None:
        self._logged_in.pop(station.username, None)
        for queue in station.queues:
            await self._send({"Action": "QueueRemove", "Queue": queue, "Interface": station.interface})

    async def call_back(self, station: Station, number: str, callback_id: int) -> None:
        """Ring the agent's station; when the agent answers, Asterisk dials the citizen
        (extensions.conf [cc-callback]). ``number`` must already be a checked caller number."""
        if not CALLBACK_NUMBER_RE.match(number):
            raise InvalidInput("number", "a callback number is digits with an optional leading +")
        await self._send(
            {
                "Action": "Originate",
                "Channel": station.interface,
                "Context": "cc-callback",
                "Exten": number,
                "Priority": "1",
                "CallerID": f"Panggilan balik <{number}>",
                "Timeout": "30000",
                "Async": "true",
                "Variable": f"CC_CALLBACK={int(callback_id)}",
            }
        )

    async def spy(self, supervisor: Station, agent_interface: str, mode: str) -> None:
        """Ring the supervisor's station; once answered it listens to, whispers to, or barges
        into the agent's call (ChanSpy). ``agent_interface`` must be a known agent station."""
        options = SPY_MODES.get(mode)
        if options is None:
            raise InvalidInput("mode", f"must be one of {', '.join(SPY_MODES)}")
        station = agent_interface.removeprefix("PJSIP/")
        if not agent_interface.startswith("PJSIP/") or not STATION_RE.match(station):
            raise InvalidInput("agent", "an agent is a station interface such as PJSIP/agent1")
        if station == supervisor.station:
            raise InvalidInput("agent", "a station cannot listen to itself")
        await self._send(
            {
                "Action": "Originate",
                "Channel": supervisor.interface,
                "Application": "ChanSpy",
                # q: no beep or name announcement; E: stop when the spied call ends.
                "Data": f"{agent_interface},{options}",
                "CallerID": f"Pantau <{station}>",
                "Timeout": "30000",
                "Async": "true",
            }
        )

    async def restore(self, members: Mapping[str, set[str]]) -> list[str]:
        """Log in again whoever the engine logged in but Asterisk no longer has.

        ``members`` maps an interface to the queues Asterisk reports it in. Returns the
        usernames restored."""
        restored = []
        for username, (station, reason) in list(self._logged_in.items()):
            missing = [q for q in station.queues if q not in members.get(station.interface, set())]
            if missing:
                await self.login(Station(station.username, station.station, tuple(missing)), reason)
                self._logged_in[username] = (station, reason)
                restored.append(username)
        return restored

    async def _send(self, action: Mapping[str, object]) -> None:
        reply = await self._ami.send_action(action)
        if reply is None or getattr(reply, "success", True):
            return
        message = str(reply.get("Message", "refused"))
        if any(word in message.lower() for word in _ALREADY):
            return
        raise Conflict(f"Asterisk refused {action['Action']}: {message}")
