"""`callcenter asterisk` against the real Asterisk of the test session."""

from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path
from tempfile import mkdtemp

import pytest

from callcenter.asterisk.process import AsteriskProcess
from callcenter.settings import Settings, load_settings
from tests.e2e.conftest import free_port
from tests.test_cli import run_cli

pytestmark = pytest.mark.e2e


def cli_env(settings: Settings) -> dict[str, str]:
    """The environment that gives the CLI the same settings as the test session."""
    return {
        "CALLCENTER_SYSTEM_NAME": settings.system_name,
        "CALLCENTER_SIP_PORT": str(settings.sip_port),
        "CALLCENTER_AMI_PORT": str(settings.ami_port),
        "CALLCENTER_AGI_PORT": str(settings.agi_port),
        "CALLCENTER_HTTP_PORT": str(settings.http_port),
        "CALLCENTER_RTP_PORT_START": str(settings.rtp_port_start),
        "CALLCENTER_RTP_PORT_END": str(settings.rtp_port_end),
        "CALLCENTER_CACHE_DIR": os.environ.get("CALLCENTER_CACHE_DIR", str(settings.cache_dir)),
    }


def test_up_twice_keeps_the_same_asterisk(asterisk: AsteriskProcess, pbx_settings: Settings) -> None:
    pid = asterisk.pid()
    assert pid is not None
    cwd = pbx_settings.data_dir.parent
    result = run_cli("asterisk", "up", cwd=cwd, env=cli_env(pbx_settings), timeout=90)
    assert result.returncode == 0, result.stderr
    assert f"pid {pid}" in result.stdout
    status = run_cli("asterisk", "status", "--json", cwd=cwd, env=cli_env(pbx_settings))
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    assert report["running"] is True and report["fully_booted"] is True and report["pid"] == pid
    assert report["version"].startswith("Asterisk 22.")
    # The reload kept every endpoint and queue.
    assert "q112" in asterisk.cli("queue show q112")
    assert "agent1" in asterisk.cli("pjsip show endpoint agent1")


def test_down_stops_cleanly_and_is_idempotent(
    asterisk: AsteriskProcess,
) -> None:
    # A second instance beside the session's, sharing the same Asterisk installation.
    base = Path(mkdtemp(prefix="cc-down-", dir="/tmp"))
    base.chmod(0o755)
    settings = load_settings(
        environ={
            "CALLCENTER_SYSTEM_NAME": "second",
            "CALLCENTER_SIP_PORT": str(free_port(socket.SOCK_DGRAM)),
            "CALLCENTER_AMI_PORT": str(free_port()),
            "CALLCENTER_RTP_PORT_START": "22000",
            "CALLCENTER_RTP_PORT_END": "22199",
            "CALLCENTER_CACHE_DIR": str(asterisk.settings.cache_dir),
        },
        base_dir=base,
    )
    try:
        second = AsteriskProcess(settings, asterisk.install)
        second.up()
        pid = second.pid()
        assert pid is not None and pid != asterisk.pid()
        env = cli_env(settings)
        first = run_cli("asterisk", "down", cwd=base, env=env, timeout=60)
        assert (first.returncode, first.stdout.strip()) == (0, "Asterisk stopped"), first.stderr
        assert second.pid() is None
        again = run_cli("asterisk", "down", cwd=base, env=env, timeout=60)
        assert (again.returncode, again.stdout.strip()) == (0, "Asterisk was not running")
        status = run_cli("asterisk", "status", cwd=base, env=env)
        assert status.returncode == 3 and status.stdout.startswith("Asterisk stopped")
        # The session's instance was not touched.
        assert asterisk.pid() is not None
    finally:
        AsteriskProcess(settings, asterisk.install).down()
        shutil.rmtree(base, ignore_errors=True)
