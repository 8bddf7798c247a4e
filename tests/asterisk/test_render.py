import re
from pathlib import Path

import pytest

from callcenter.asterisk.render import InstanceDirs, fill, render
from callcenter.calls.stations import SERVICE_QUEUES
from callcenter.credentials import load_or_create
from callcenter.settings import ConfigError, load_settings


def rendered(tmp_path: Path) -> tuple[dict[str, str], str]:
    settings = load_settings(
        environ={"CALLCENTER_SIP_PORT": "15060", "CALLCENTER_HOTLINE_NUMBER": "1700"}, base_dir=tmp_path
    )
    credentials = load_or_create(settings)
    dirs = InstanceDirs(settings.asterisk_dir)
    files = render(settings, credentials, dirs)
    return {p.name: p.read_text() for p in files}, credentials.ami_secret


def test_every_placeholder_is_filled(tmp_path: Path) -> None:
    files, _secret = rendered(tmp_path)
    for name, text in files.items():
        assert not re.search(r"@\{[a-z_]+\}", text), name
    assert "bind = 127.0.0.1:15060" in files["pjsip.conf"]
    assert "exten => 1700,1,Goto(cc-hotline,s,1)" in files["extensions.conf"]
    assert "exten => 112,1,Goto(cc-emergency,s,1)" in files["extensions.conf"]


def test_ami_is_loopback_least_privilege_with_generated_secret(tmp_path: Path) -> None:
    files, secret = rendered(tmp_path)
    manager = files["manager.conf"]
    assert "bindaddr = 127.0.0.1" in manager
    assert f"secret = {secret}" in manager
    write = re.search(r"^write = (.*)$", manager, re.M)
    assert write and "system" not in write.group(1) and "command" not in write.group(1)


def test_accounts_are_generated_and_queue_members_are_dynamic(tmp_path: Path) -> None:
    files, _secret = rendered(tmp_path)
    accounts = files["pjsip_accounts.conf"]
    assert "[citizen1](citizen-line)" in accounts
    assert "[agent4](agent-station)" in accounts
    # Agents log in through the engine (QueueAdd); no station answers a queue by configuration.
    assert "member =>" not in files["queues.conf"] and "queues_members.conf" not in files
    assert re.search(r"^wrapuptime = 10$", files["queues.conf"], re.M)


def test_the_engine_knows_every_queue_agents_log_in_to(tmp_path: Path) -> None:
    files, _secret = rendered(tmp_path)
    queues = re.findall(r"^\[([A-Za-z0-9_-]+)\]\(queue-defaults\)$", files["queues.conf"], re.M)
    assert sorted(queues) == sorted(SERVICE_QUEUES)


def test_recordings_are_named_from_uniqueid_never_caller_id(tmp_path: Path) -> None:
    files, _secret = rendered(tmp_path)
    dialplan = files["extensions.conf"]
    record = dialplan[dialplan.index("[cc-record]") :]
    assert "CALLERID" not in record.upper()
    assert "UNIQUEID" in record
    # If FastAGI fails the call still reaches a queue of humans.
    emergency = dialplan[dialplan.index("[cc-emergency]") : dialplan.index("[cc-hotline]")]
    assert '"${AGISTATUS}" != "SUCCESS"]?fallback' in emergency
    assert "Goto(cc-queues,q112,1)" in emergency


def test_unknown_placeholder_names_file_and_line() -> None:
    with pytest.raises(ConfigError, match=r"x.conf:2: unknown placeholder @\{nope\}"):
        fill("a\nb = @{nope}\n", {}, "x.conf")
