from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from panoramisk.message import Message

from callcenter.ami.connection import AmiConnection, AmiError, AmiState, EventHandler
from tests.ami.fake_ami import FakeAmi, block


def connection(
    port: int, secret: str = "s3cret", handlers: dict[str, EventHandler] | None = None, ping: float = 5.0
) -> AmiConnection:
    return AmiConnection(
        system_name="pbx-a",
        host="127.0.0.1",
        port=port,
        username="callcenter",
        secret=secret,
        handlers=handlers or {},
        ping_interval=ping,
        min_backoff=0.05,
        max_backoff=0.2,
        connect_timeout=2.0,
    )


@contextlib.asynccontextmanager
async def running(conn: AmiConnection) -> AsyncIterator[AmiConnection]:
    task = asyncio.create_task(conn.run())
    try:
        yield conn
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.fixture
async def fake() -> AsyncIterator[FakeAmi]:
    server = FakeAmi()
    await server.start()
    yield server
    await server.stop()


async def test_login_and_fully_booted(fake: FakeAmi) -> None:
    async with running(connection(fake.port)) as conn:
        await conn.wait_connected(5)
        await conn.wait_fully_booted(5)
        status = conn.status.as_dict()
        assert status["state"] == "connected" and status["fully_booted"] is True
        assert status["error"] is None and status["system_name"] == "pbx-a"


async def test_events_are_handled_in_arrival_order(fake: FakeAmi) -> None:
    seen: list[str] = []
    done = asyncio.Event()

    async def on_newchannel(message: Message) -> None:
        await asyncio.sleep(0)  # a handler that yields must not reorder events
        seen.append(message["Uniqueid"])

    def on_hangup(message: Message) -> None:
        seen.append("hangup:" + message["Uniqueid"])
        done.set()

    def broken(message: Message) -> None:
        raise RuntimeError("handler bug")

    handlers: dict[str, EventHandler] = {"Newchannel": on_newchannel, "Hangup": on_hangup, "Newstate": broken}
    async with running(connection(fake.port, handlers=handlers)) as conn:
        await conn.wait_connected(5)
        # Several events in one read, a malformed block, an event we do not handle, a failing handler.
        await fake.send(
            block(Event="Newchannel", Uniqueid="1.1")
            + b"garbage without colon\r\n\r\n"
            + block(Event="Newstate", Uniqueid="1.1")
            + block(Event="Newchannel", Uniqueid="1.2")
            + block(Event="DeviceStateChange", Device="PJSIP/agent1")
        )
        await fake.send(block(Event="Hangup", Uniqueid="1.1"))
        await asyncio.wait_for(done.wait(), 5)
    assert seen == ["1.1", "1.2", "hangup:1.1"]


async def test_wrong_secret_is_reported_and_retried(fake: FakeAmi, caplog: pytest.LogCaptureFixture) -> None:
    async with running(connection(fake.port, secret="wrong")) as conn:
        await fake.wait_logins(3)  # retried with backoff
        status = await conn.wait_status(lambda s: s.state is AmiState.LOGIN_FAILED, 5)
        assert status.state is AmiState.LOGIN_FAILED
        assert status.error == "AMI login as 'callcenter' refused: Authentication failed"
    # One error line for the problem, not one per retry.
    assert [r.message for r in caplog.records if r.levelname == "ERROR"] == [status.error]


async def test_unreachable_server_is_reported() -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    async with running(connection(port)) as conn:
        status = await conn.wait_status(lambda s: "cannot reach" in s.error, 5)
        assert status.state is AmiState.DISCONNECTED
        assert status.error.startswith(f"cannot reach AMI at 127.0.0.1:{port}")


async def test_silent_link_is_detected_and_reconnected() -> None:
    fake = FakeAmi(answer_pings=False)
    await fake.start()
    try:
        async with running(connection(fake.port, ping=0.2)) as conn:
            await conn.wait_connected(5)
            await fake.wait_logins(2)
            await conn.wait_status(lambda s: s.connects >= 2, 5)
    finally:
        await fake.stop()


async def test_reconnects_after_server_restart(fake: FakeAmi) -> None:
    async with running(connection(fake.port)) as conn:
        await conn.wait_connected(5)
        for writer in list(fake.writers):
            writer.close()
        await conn.wait_status(lambda s: s.connects >= 2 and s.fully_booted, 5)


async def test_actions_refuse_header_injection(fake: FakeAmi) -> None:
    async with running(connection(fake.port)) as conn:
        await conn.wait_connected(5)
        with pytest.raises(AmiError, match="line break"):
            await conn.send_action({"Action": "QueuePause", "Reason": "break\r\nAction: Originate"})
        reply = await conn.send_action({"Action": "QueueStatus"})
        assert reply["Message"] == "ok"
    assert not any(a.get("Action") == "Originate" for a in fake.actions)


async def test_send_action_when_disconnected() -> None:
    conn = connection(1)
    with pytest.raises(AmiError, match="not connected"):
        await conn.send_action({"Action": "Ping"})
