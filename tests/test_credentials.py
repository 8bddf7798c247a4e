import json
import stat
from pathlib import Path

from callcenter.credentials import load_or_create, sip_accounts
from callcenter.settings import load_settings


def test_secrets_are_generated_once_and_private(tmp_path: Path) -> None:
    settings = load_settings(environ={}, base_dir=tmp_path)
    first = load_or_create(settings)
    second = load_or_create(settings)
    assert first == second
    assert len(first.ami_secret) >= 24
    mode = stat.S_IMODE(settings.secrets_file.stat().st_mode)
    assert mode == 0o600
    stored = json.loads(settings.secrets_file.read_text())
    assert stored["ami_secret"] == first.ami_secret


def test_new_accounts_get_passwords_without_changing_old_ones(tmp_path: Path) -> None:
    settings = load_settings(environ={}, base_dir=tmp_path)
    before = load_or_create(settings)
    bigger = settings.replace(agent_stations=6)
    after = load_or_create(bigger)
    assert after.sip_passwords["agent1"] == before.sip_passwords["agent1"]
    assert "agent6" in after.sip_passwords
    accounts = sip_accounts(bigger, after)
    roles = {a.username: a.role for a in accounts}
    assert roles["citizen1"] == "citizen" and roles["agent6"] == "agent"
    assert len({a.password for a in accounts}) == len(accounts)
