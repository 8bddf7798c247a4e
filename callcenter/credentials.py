"""Secrets generated on first use and kept in the data directory, never in the repository.

The file holds the AMI secret and one password per SIP account of the local profile. It is
written once with mode 0600 and reused, so phones configured by hand keep working across restarts.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path

from callcenter.settings import ConfigError, Settings

CITIZEN = "citizen"
AGENT = "agent"


@dataclass(frozen=True)
class SipAccount:
    username: str
    password: str
    host: str
    port: int
    role: str
    # The line's phone number (caller ID) for citizen lines; agent stations are internal.
    number: str = ""

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class Credentials:
    ami_secret: str
    sip_passwords: dict[str, str]


def account_names(settings: Settings) -> list[tuple[str, str]]:
    """(username, role) of every SIP account in the local profile, citizens first."""
    citizens = [(f"citizen{i}", CITIZEN) for i in range(1, settings.citizen_lines + 1)]
    agents = [(f"agent{i}", AGENT) for i in range(1, settings.agent_stations + 1)]
    return citizens + agents


def load_or_create(settings: Settings) -> Credentials:
    """Read the secrets file, adding whatever is missing (new accounts, a first AMI secret)."""
    path = settings.secrets_file
    data: dict[str, object] = {}
    if path.exists():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"secrets file {path} is unreadable: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"secrets file {path} is not a JSON object")
    changed = False
    ami_secret = data.get("ami_secret")
    if not isinstance(ami_secret, str) or not ami_secret:
        ami_secret = secrets.token_urlsafe(24)
        changed = True
    raw_passwords = data.get("sip_passwords")
    passwords = dict(raw_passwords) if isinstance(raw_passwords, dict) else {}
    for username, _role in account_names(settings):
        if not isinstance(passwords.get(username), str):
            passwords[username] = secrets.token_urlsafe(12)
            changed = True
    if changed:
        _write_private(path, {"ami_secret": ami_secret, "sip_passwords": passwords})
    return Credentials(ami_secret=ami_secret, sip_passwords=passwords)


def ami_secret(settings: Settings) -> str:
    return settings.ami_secret or load_or_create(settings).ami_secret


def sip_accounts(settings: Settings, credentials: Credentials) -> list[SipAccount]:
    return [
        SipAccount(
            username=name,
            password=credentials.sip_passwords[name],
            host=settings.sip_host,
            port=settings.sip_port,
            role=role,
            number=line_number(name) if role == CITIZEN else "",
        )
        for name, role in account_names(settings)
    ]


def line_number(username: str) -> str:
    """The phone number of a local citizen line: a mobile-style number, so caller ID, prank
    blocks and callbacks see digits as they would from the network (citizen1 -> 081200000001)."""
    index = int(username.removeprefix("citizen"))
    return f"0812{index:08d}"


def _write_private(path: Path, payload: dict[str, object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(payload, handle, indent=2, sort_keys=True)
    os.replace(tmp, path)
