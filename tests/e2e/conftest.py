"""Real parts for end-to-end tests: Asterisk 22, the engine, pjsua2 phones, espeak-ng speech.

A missing part skips these tests on a developer machine, but fails them under CI (CI=true):
a green CI run must mean the real thing ran (tests/realparts.py).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from callcenter.ami.connection import AmiConnection, AmiError
from callcenter.app import Engine
from callcenter.asterisk.process import AsteriskError, AsteriskProcess
from callcenter.asterisk.provision import ProvisionError, locate
from callcenter.asterisk.render import InstanceDirs
from callcenter.calls.stations import SERVICE_QUEUES, AgentStations, Station
from callcenter.credentials import SipAccount, load_or_create, sip_accounts
from callcenter.ivr.loader import load_flows
from callcenter.ivr.prompts import ensure_prompts, flow_prompts
from callcenter.settings import Settings, load_settings
from tests.realparts import missing, speak

FLOWS = Path(__file__).resolve().parents[2] / "ivr_flows"


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def pbx_settings() -> Iterator[Settings]:
    # A short path: Asterisk's control socket path must stay under the 108-byte limit.
    base = Path(tempfile.mkdtemp(prefix="cc-e2e-", dir="/tmp"))
    base.chmod(0o755)
    environ = {
        "CALLCENTER_SYSTEM_NAME": "e2e",
        "CALLCENTER_SIP_PORT": str(free_port(socket.SOCK_DGRAM)),
        "CALLCENTER_AMI_PORT": str(free_port()),
        "CALLCENTER_AGI_PORT": str(free_port()),
        "CALLCENTER_HTTP_PORT": str(free_port()),
        "CALLCENTER_RTP_PORT_START": "21000",
        "CALLCENTER_RTP_PORT_END": "21999",
        "CALLCENTER_AMI_PING_INTERVAL": "2",
        "CALLCENTER_CACHE_DIR": os.environ.get("CALLCENTER_CACHE_DIR", "/var/cache/callcenter"),
        "CALLCENTER_FLOWS_DIR": str(FLOWS),
        # Recordings are queued for transcription; only tests/e2e/test_transcription.py runs
        # workers (with a model), the other tests need none.
        "CALLCENTER_TRANSCRIPTION_WORKERS": "0",
        # The session's tests share one recordings folder; only the test about recordings made
        # while the engine was down looks for them (tests/e2e/test_first_call.py).
        "CALLCENTER_RECORDING_RECOVERY_INTERVAL": "0",
    }
    yield load_settings(environ=environ, base_dir=base)
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def asterisk(pbx_settings: Settings) -> Iterator[AsteriskProcess]:
    try:
        install = locate(pbx_settings)
    except ProvisionError as exc:
        missing(f"Asterisk 22: {exc}")
    process = AsteriskProcess(pbx_settings, install)
    prompts = flow_prompts(load_flows([pbx_settings.flows_dir]).values())
    ensure_prompts(InstanceDirs(pbx_settings.asterisk_dir).sounds, prompts, owner=install.uid_gid)
    try:
        process.up()
    except AsteriskError as exc:
        missing(f"Asterisk 22 did not start: {exc}")
    yield process
    process.down()


@pytest.fixture(scope="session")
def accounts(pbx_settings: Settings) -> dict[str, SipAccount]:
    return {a.username: a for a in sip_accounts(pbx_settings, load_or_create(pbx_settings))}


AGENT_STATIONS = ("agent1", "agent2", "agent3", "agent4")


@contextlib.asynccontextmanager
async def logged_in(ami: AmiConnection, *stations: str) -> AsyncIterator[list[Station]]:
    """Agent stations logged in to every queue (QueueAdd), as agents do from their console, and
    logged out afterwards: queue members live as long as the session-wide Asterisk."""
    agents = AgentStations(ami)
    made = [Station(name, name, SERVICE_QUEUES) for name in stations]
    for station in made:
        await agents.login(station)
    try:
        yield made
    finally:
        for station in made:
            with contextlib.suppress(AmiError):
                await agents.logout(station)


@contextlib.asynccontextmanager
async def running_engine(settings: Settings, *stations: str) -> AsyncIterator[Engine]:
    running = Engine(settings)
    await running.start()
    try:
        await running.ami.wait_fully_booted(15)
        async with logged_in(running.ami, *stations):
            yield running
    finally:
        await running.stop()


@pytest.fixture
async def engine(pbx_settings: Settings, asterisk: AsteriskProcess) -> AsyncIterator[Engine]:
    """The engine with every agent station logged in to the queues."""
    async with running_engine(pbx_settings, *AGENT_STATIONS) as running:
        yield running


@pytest.fixture(scope="session")
def citizen_speech(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("speech")
    return speak(
        "There is a fire in the market near the main road. Please send help.", folder / "citizen.wav"
    )


@pytest.fixture(scope="session")
def agent_speech(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("speech")
    return speak(
        "Emergency one one two. The fire brigade is on its way. Please stay calm and wait outside.",
        folder / "agent.wav",
    )
