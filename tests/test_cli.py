"""Operator mistakes give one clear line, not a traceback."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest


def run_cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CALLCENTER_")}
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "callcenter.cli", *args],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The one error line; progress logged before it (INFO lines) is fine."""
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith("callcenter: error: ")
    return errors[0]


def test_missing_config_file(tmp_path: Path) -> None:
    line = one_error_line(run_cli("--config", "missing.toml", "serve", cwd=tmp_path))
    assert line == f"callcenter: error: config file not found: {tmp_path}/missing.toml"


def test_bad_port(tmp_path: Path) -> None:
    line = one_error_line(run_cli("serve", cwd=tmp_path, env={"CALLCENTER_HTTP_PORT": "70000"}))
    assert "setting 'http_port': port must be between 1 and 65535, got 70000" in line


def test_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = {"CALLCENTER_AGI_PORT": str(port), "CALLCENTER_AMI_PORT": "1"}
        line = one_error_line(run_cli("serve", cwd=tmp_path, env=env))
    assert line == f"callcenter: error: FastAGI cannot listen on 127.0.0.1:{port}: address already in use"


def test_accounts_json(tmp_path: Path) -> None:
    result = run_cli("asterisk", "accounts", "--json", cwd=tmp_path, env={"CALLCENTER_SIP_PORT": "5070"})
    assert result.returncode == 0, result.stderr
    accounts = json.loads(result.stdout)
    assert {a["role"] for a in accounts} == {"citizen", "agent"}
    first = accounts[0]
    assert set(first) == {"username", "password", "host", "port", "role", "number"}
    assert first["host"] == "127.0.0.1" and first["port"] == 5070
    # Same secrets on the next call: they were generated once into var/.
    again = json.loads(
        run_cli("asterisk", "accounts", "--json", cwd=tmp_path, env={"CALLCENTER_SIP_PORT": "5070"}).stdout
    )
    assert again == accounts


@pytest.mark.parametrize("args", [["phone"], ["phone", "--station", "nobody"]])
def test_phone_needs_a_known_station(tmp_path: Path, args: list[str]) -> None:
    line = one_error_line(run_cli(*args, cwd=tmp_path))
    assert "station" in line


def test_users_add_reads_the_password_from_stdin(tmp_path: Path) -> None:
    assert run_cli("db", "seed", cwd=tmp_path).stdout.strip() == "added 11 agencies and 13 categories"
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CALLCENTER_")}
    command = [sys.executable, "-m", "callcenter.cli", "users", "add", "budi", "--role", "opd-operator"]
    result = subprocess.run(
        [*command, "--agency", "PUPR"],
        cwd=tmp_path, env=environ, input="rahasia-budi-123\n", capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "user budi (opd-operator) added"
    assert "rahasia-budi-123" not in result.stdout + result.stderr
    token = run_cli("users", "token", "budi", cwd=tmp_path)
    assert token.returncode == 0 and token.stdout.startswith("cc_")
    weak = subprocess.run(
        [sys.executable, "-m", "callcenter.cli", "users", "add", "ani", "--role", "agent"],
        cwd=tmp_path, env=environ, input="short\n", capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert one_error_line(weak) == "callcenter: error: password: password must have at least 10 characters"
    nobody = one_error_line(run_cli("users", "add", "x", "--role", "opd-operator", cwd=tmp_path))
    assert "an OPD operator must belong to an agency" in nobody or "password" in nobody
    versions = Path(__file__).resolve().parents[1] / "callcenter/storage/migrations/versions"
    head = max(p.name[:4] for p in versions.glob("[0-9][0-9][0-9][0-9]_*.py"))
    assert f"revision {head}" in run_cli("db", "upgrade", cwd=tmp_path).stdout
