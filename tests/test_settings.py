from pathlib import Path

import pytest

from callcenter.settings import ConfigError, load_settings


def test_defaults_are_loopback_and_absolute(tmp_path: Path) -> None:
    settings = load_settings(environ={}, base_dir=tmp_path)
    assert settings.ami_host == "127.0.0.1"
    assert settings.agi_host == "127.0.0.1"
    assert settings.http_port == 8080
    assert settings.data_dir == tmp_path / "var"
    assert settings.resolved_database_url == f"sqlite:///{tmp_path}/var/callcenter.db"
    assert settings.source == "defaults"


def test_file_then_environment(tmp_path: Path) -> None:
    (tmp_path / "callcenter.toml").write_text('http_port = 9000\nhotline_number = "1700"\n')
    settings = load_settings(environ={"CALLCENTER_HTTP_PORT": "9100"}, base_dir=tmp_path)
    assert settings.http_port == 9100
    assert settings.hotline_number == "1700"
    assert "callcenter.toml" in settings.source


def test_callcenter_table_is_accepted(tmp_path: Path) -> None:
    config = tmp_path / "site.toml"
    config.write_text('[callcenter]\nsystem_name = "pbx-a"\n')
    assert load_settings(config, environ={}, base_dir=tmp_path).system_name == "pbx-a"


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"CALLCENTER_HTTP_PORT": "99999"}, "setting 'http_port': port must be between 1 and 65535"),
        (
            {"CALLCENTER_AMI_PORT": "five"},
            "setting 'ami_port' (from defaults + environment): expected a whole number",
        ),
        ({"CALLCENTER_AMI_HOST": "0.0.0.0"}, "setting 'ami_host' must be a loopback address"),
        ({"CALLCENTER_AGI_HOST": "example.org"}, "setting 'agi_host' must be an IP address"),
        ({"CALLCENTER_HOTLINE_NUMBER": "15;00"}, "setting 'hotline_number' must be 2-15 digits"),
        ({"CALLCENTER_HOTLINE_NUMBER": "112"}, "must differ"),
        ({"CALLCENTER_SYSTEM_NAME": "a b"}, "setting 'system_name' may hold only"),
        ({"CALLCENTER_DATABASE_URL": "mysql://x"}, "setting 'database_url' must be"),
        ({"CALLCENTER_LOG_LEVEL": "LOUD"}, "setting 'log_level' must be one of"),
        ({"CALLCENTER_AMI_PING_INTERVAL": "-1"}, "must be positive"),
    ],
)
def test_bad_values_name_the_setting(tmp_path: Path, environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(environ=environ, base_dir=tmp_path)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_explicit_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"config file not found: .*nope\.toml"):
        load_settings("nope.toml", environ={}, base_dir=tmp_path)


def test_missing_file_from_environment(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(environ={"CALLCENTER_CONFIG": str(tmp_path / "x.toml")}, base_dir=tmp_path)


def test_unknown_setting_and_bad_toml(tmp_path: Path) -> None:
    config = tmp_path / "callcenter.toml"
    config.write_text("htp_port = 1\n")
    with pytest.raises(ConfigError, match="unknown setting 'htp_port'"):
        load_settings(environ={}, base_dir=tmp_path)
    config.write_text("http_port = [\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_settings(environ={}, base_dir=tmp_path)
