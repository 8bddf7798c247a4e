"""docker-compose.yml stays a valid deployment (checked with Debian's docker-compose client;
no Docker engine is needed to validate)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.realparts import missing

ROOT = Path(__file__).resolve().parents[1]


def compose_config(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("docker-compose")
    if binary is None:
        missing("docker-compose (Debian package) is needed to validate docker-compose.yml")
    base = {k: v for k, v in os.environ.items() if not k.startswith(("CALLCENTER_", "POSTGRES_"))}
    return subprocess.run(
        [binary, "-f", str(ROOT / "docker-compose.yml"), "config", "-q"],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_compose_file_is_valid() -> None:
    result = compose_config({"POSTGRES_PASSWORD": "example"})
    assert result.returncode == 0, result.stderr


def test_compose_refuses_to_run_without_a_database_password() -> None:
    result = compose_config({})
    assert result.returncode != 0
    assert "set POSTGRES_PASSWORD" in result.stderr


@pytest.mark.parametrize("name", ["asterisk.Dockerfile", "engine.Dockerfile"])
def test_dockerfiles_exist_where_compose_points(name: str) -> None:
    assert (ROOT / "asterisk-conf" / "docker" / name).is_file()
    assert f"asterisk-conf/docker/{name}" in (ROOT / "docker-compose.yml").read_text()
