"""FastAGI server against a fake Asterisk over a real loopback socket."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from callcenter.agi.commands import GetData, GetVariable, SetVariable
from callcenter.agi.server import AgiSession, FastAgiServer, route_table

Replies = Callable[[str], str]


class FakeAsterisk:
    """Plays Asterisk's side of one FastAGI session."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.commands: list[str] = []
        self.reader: asyncio.StreamReader
        self.writer: asyncio.StreamWriter

    async def connect(self, route: str, callerid: str = "081234") -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        env = {
            "agi_network": "yes",
            "agi_network_script": route,
            "agi_request": f"agi://127.0.0.1/{route}",
            "agi_uniqueid": "local-1700000000.1",
            "agi_callerid": callerid,
        }
        self.writer.write("".join(f"{k}: {v}\n" for k, v in env.items()).encode() + b"\n")
        await self.writer.drain()

    async def serve(self, replies: Replies) -> None:
        """Answer commands until the server closes the connection."""
        while True:
            line = await asyncio.wait_for(self.reader.readline(), 5)
            if not line:
                return
            command = line.decode().rstrip("\n")
            self.commands.append(command)
            self.writer.write((replies(command) + "\n").encode())
            await self.writer.drain()

    async def closed_by_server(self) -> bool:
        return await asyncio.wait_for(self.reader.read(), 5) == b""

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


def answers(digits: str) -> Replies:
    def reply(command: str) -> str:
        if command.startswith("GET VARIABLE"):
            return "200 result=1 (local-1700000000.1)"
        if command.startswith("GET DATA"):
            return f"200 result={digits}" if digits else "200 result= (timeout)"
        return "200 result=1"

    return reply


SERVICES = {"1": "police", "2": "fire", "3": "ambulance"}


class GreetingIvr:
    """A small IVR of the kind the flows produce: linkedid, one key, two variables."""

    def __init__(self, sounds: Path) -> None:
        self.sounds = sounds

    async def emergency(self, session: AgiSession) -> None:
        await session.run(GetVariable("CHANNEL(linkedid)"))
        key = (await session.run(GetData(f"{self.sounds}/callcenter/greeting-112", 5000, 1))).result
        await session.run(SetVariable("CC_CHOICE", SERVICES.get(key, "")))
        await session.run(SetVariable("CC_QUEUE", "q112"))

    async def hotline(self, session: AgiSession) -> None:
        await session.run(GetVariable("CHANNEL(linkedid)"))
        await session.run(GetData(f"{self.sounds}/callcenter/greeting-hotline", 5000, 1))
        await session.run(SetVariable("CC_QUEUE", "hotline"))


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[FastAgiServer]:
    ivr = GreetingIvr(tmp_path / "sounds")
    routes = route_table([("112", ivr.emergency), ("hotline", ivr.hotline)])
    srv = FastAgiServer("127.0.0.1", 0, routes, idle_timeout=1.0)
    await srv.start()
    yield srv
    await srv.stop()


async def test_emergency_menu_choice_sets_service_and_queue(server: FastAgiServer, tmp_path: Path) -> None:
    peer = FakeAsterisk(server.bound_port)
    await peer.connect("112")
    await peer.serve(answers("2"))
    assert peer.commands == [
        "GET VARIABLE CHANNEL(linkedid)",
        f'GET DATA "{tmp_path}/sounds/callcenter/greeting-112" 5000 1',
        'SET VARIABLE CC_CHOICE "fire"',
        'SET VARIABLE CC_QUEUE "q112"',
    ]
    await peer.close()


async def test_silent_caller_still_goes_to_call_takers(server: FastAgiServer) -> None:
    peer = FakeAsterisk(server.bound_port)
    await peer.connect("112")
    await peer.serve(answers(""))
    assert peer.commands[-2:] == ['SET VARIABLE CC_CHOICE ""', 'SET VARIABLE CC_QUEUE "q112"']
    await peer.close()


async def test_hotline_route(server: FastAgiServer) -> None:
    peer = FakeAsterisk(server.bound_port)
    await peer.connect("hotline")
    await peer.serve(answers("1"))
    assert peer.commands[-1] == 'SET VARIABLE CC_QUEUE "hotline"'
    await peer.close()


async def test_hangup_during_a_command_ends_quietly(server: FastAgiServer) -> None:
    peer = FakeAsterisk(server.bound_port)
    await peer.connect("112")

    def hang_up_on_menu(command: str) -> str:
        if command.startswith("GET DATA"):
            return "HANGUP\n200 result=-1"
        return answers("1")(command)

    await peer.serve(hang_up_on_menu)
    # Nothing is sent after the hang-up; the server closed the session itself.
    assert peer.commands[-1].startswith("GET DATA")
    await peer.close()


async def test_dead_channel_reply_ends_session(server: FastAgiServer) -> None:
    peer = FakeAsterisk(server.bound_port)
    await peer.connect("112")
    await peer.serve(lambda _c: "511 Command Not Permitted on a dead channel or intercept routine")
    assert len(peer.commands) == 1
    await peer.close()


async def test_unknown_route_is_closed_without_commands(server: FastAgiServer) -> None:
    peer = FakeAsterisk(server.bound_port)
    await peer.connect("no-such-flow")
    assert await peer.closed_by_server()
    await peer.close()


async def test_silent_peer_is_dropped_and_others_are_served(server: FastAgiServer) -> None:
    silent_reader, silent_writer = await asyncio.open_connection("127.0.0.1", server.bound_port)
    peer = FakeAsterisk(server.bound_port)
    await peer.connect("112")
    await peer.serve(answers("1"))
    assert peer.commands[-1] == 'SET VARIABLE CC_QUEUE "q112"'
    # The idle timeout (1 s) closes the silent connection.
    assert await asyncio.wait_for(silent_reader.read(), 5) == b""
    silent_writer.close()
    await peer.close()


async def test_oversized_line_drops_only_that_peer(server: FastAgiServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.bound_port)
    writer.write(b"agi_network_script: " + b"x" * 20000 + b"\n\n")
    await writer.drain()
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()
    peer = FakeAsterisk(server.bound_port)
    await peer.connect("112")
    await peer.serve(answers("3"))
    assert 'SET VARIABLE CC_CHOICE "ambulance"' in peer.commands
    await peer.close()


async def test_peer_disconnecting_mid_command(server: FastAgiServer) -> None:
    peer = FakeAsterisk(server.bound_port)
    await peer.connect("112")
    line = await asyncio.wait_for(peer.reader.readline(), 5)
    assert line.startswith(b"GET VARIABLE")
    await peer.close()
    # The server notices and frees the session.
    await asyncio.wait_for(server.wait_idle(), 5)
    assert server.listening


async def test_stop_cancels_open_sessions(tmp_path: Path) -> None:
    started = asyncio.Event()

    async def slow(session: AgiSession) -> None:
        started.set()
        await asyncio.Event().wait()

    srv = FastAgiServer("127.0.0.1", 0, route_table([("slow", slow)]), idle_timeout=30)
    await srv.start()
    peer = FakeAsterisk(srv.bound_port)
    await peer.connect("slow")
    await asyncio.wait_for(started.wait(), 5)
    await asyncio.wait_for(srv.stop(), 5)
    assert srv.active_sessions == 0
    assert await peer.closed_by_server()
    await peer.close()


def test_duplicate_route_is_refused() -> None:
    async def handler(session: AgiSession) -> None:
        return None

    with pytest.raises(ValueError, match="duplicate FastAGI route '112'"):
        route_table([("112", handler), ("112", handler)])
