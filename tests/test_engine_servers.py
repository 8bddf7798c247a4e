"""One engine watching two Asterisk servers (fake AMI peers on loopback): both connections log
in and resync, and each server's calls land in the live state under its own system name."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from callcenter.app import Engine
from callcenter.calls.live import CallStarted
from callcenter.settings import ConfigError, load_settings
from tests.ami.fake_ami import FakeAmi, block


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def servers() -> AsyncIterator[tuple[FakeAmi, FakeAmi]]:
    first, second = FakeAmi(), FakeAmi()
    await first.start()
    await second.start()
    try:
        yield first, second
    finally:
        await first.stop()
        await second.stop()


async def test_one_engine_two_asterisk_servers(servers: tuple[FakeAmi, FakeAmi], tmp_path: Path) -> None:
    first, second = servers
    settings = load_settings(
        environ={
            "CALLCENTER_SYSTEM_NAME": "pbx-a",
            "CALLCENTER_AMI_PORT": str(first.port),
            "CALLCENTER_AMI_SECRET": "s3cret",
            "CALLCENTER_OTHER_ASTERISKS": f"pbx-b=127.0.0.1:{second.port}",
            "CALLCENTER_AGI_PORT": str(free_port()),
            "CALLCENTER_HTTP_PORT": str(free_port()),
            "CALLCENTER_TRANSCRIPTION_WORKERS": "0",
        },
        base_dir=tmp_path,
    )
    engine = Engine(settings)
    await engine.start()
    try:
        async with engine.bus.subscribe() as events:
            for ami in engine.amis:
                await ami.wait_fully_booted(10)
            await second.send(
                block(Event="Newchannel", Privilege="call,all", Channel="PJSIP/citizen1-00000001",
                      ChannelState="4", ChannelStateDesc="Ring", CallerIDNum="081200000001",
                      CallerIDName="<unknown>", ConnectedLineNum="<unknown>", ConnectedLineName="<unknown>",
                      Language="en", AccountCode="", Context="citizen-lines", Exten="112", Priority="1",
                      Uniqueid="pbx-b-1.1", Linkedid="pbx-b-1.1")
            )  # fmt: skip
            started = await events.wait_for(CallStarted, 5)
        assert (started.system_name, started.caller_number) == ("pbx-b", "081200000001")
        assert [c.linkedid for c in engine.live.calls("pbx-b")] == ["pbx-b-1.1"]
        assert engine.live.calls("pbx-a") == []
        # Both servers were asked for their live state after login.
        for server in (first, second):
            asked = [a["Action"] for a in server.actions]
            assert "CoreShowChannels" in asked and "QueueStatus" in asked
        health = await engine.health()
        assert [o["system_name"] for o in health["ami_others"]] == ["pbx-b"]  # type: ignore[union-attr]
    finally:
        await engine.stop()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("pbx-b=10.0.0.2:5038", "loopback"),
        ("pbx-b=127.0.0.1", "must look like"),
        ("local=127.0.0.1:5039", "used twice"),
        ("pbx b=127.0.0.1:5039", "must look like"),
    ],
)
def test_other_servers_are_checked(value: str, message: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(environ={"CALLCENTER_OTHER_ASTERISKS": value}, base_dir=tmp_path)
