"""/healthz of a running engine against the real Asterisk: healthy, wrong secret, no Asterisk."""

from __future__ import annotations

import aiohttp
import pytest

from callcenter.ami.connection import AmiState
from callcenter.app import Engine
from callcenter.asterisk.process import AsteriskProcess
from callcenter.settings import Settings
from tests.e2e.conftest import free_port

pytestmark = pytest.mark.e2e


async def get_health(engine: Engine) -> tuple[int, dict[str, object]]:
    url = f"http://{engine.settings.http_host}:{engine.http_port}/healthz"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.content_type == "application/json"
        return response.status, await response.json()


async def test_health_reports_every_part_ready(engine: Engine) -> None:
    status, report = await get_health(engine)
    assert status == 200
    assert report["status"] == "ok"
    assert report["ami"] == {**report["ami"], "connected": True, "fully_booted": True, "error": None}  # type: ignore[dict-item]
    assert report["fastagi"] == {**report["fastagi"], "listening": True}  # type: ignore[dict-item]
    assert report["database"] == {**report["database"], "ready": True, "error": None}  # type: ignore[dict-item]


async def test_wrong_ami_secret_is_reported_and_retried(
    pbx_settings: Settings, asterisk: AsteriskProcess
) -> None:
    engine = Engine(
        pbx_settings.replace(ami_secret="not-the-secret", http_port=free_port(), agi_port=free_port())
    )
    await engine.start()
    try:
        await engine.ami.wait_status(lambda s: s.state is AmiState.LOGIN_FAILED, 15)
        status, report = await get_health(engine)
    finally:
        await engine.stop()
    assert status == 503
    assert report["status"] == "degraded"
    ami = report["ami"]
    assert isinstance(ami, dict)
    assert ami["state"] == "login_failed"
    assert ami["error"] == "AMI login as 'callcenter' refused: Authentication failed"


async def test_unreachable_ami_is_reported(pbx_settings: Settings) -> None:
    port = free_port()
    engine = Engine(pbx_settings.replace(ami_port=port, http_port=free_port(), agi_port=free_port()))
    await engine.start()
    try:
        await engine.ami.wait_status(lambda s: "cannot reach" in s.error, 15)
        status, report = await get_health(engine)
    finally:
        await engine.stop()
    assert status == 503
    ami = report["ami"]
    assert isinstance(ami, dict)
    assert ami["connected"] is False
    assert str(ami["error"]).startswith(f"cannot reach AMI at 127.0.0.1:{port}")
    # The rest of the engine is up and says so.
    assert report["fastagi"]["listening"] is True  # type: ignore[index]
    assert report["database"]["ready"] is True  # type: ignore[index]
