"""Typed settings: defaults, then a TOML file, then ``CALLCENTER_*`` environment variables.

Every value is checked once, here, so the rest of the engine can trust it. A bad value raises
:class:`ConfigError` with one line that names the setting and what is wrong with it; the CLI
prints that line instead of a traceback.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import tomllib
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

ENV_PREFIX = "CALLCENTER_"
DEFAULT_CONFIG_FILE = "callcenter.toml"
DEFAULT_CACHE_DIR = Path("/var/cache/callcenter")


class ConfigError(Exception):
    """A setting is missing or wrong; the message is one line meant for the operator."""


@dataclass(frozen=True)
class Settings:
    # Name of the Asterisk server this engine talks to; part of every call's key.
    system_name: str = "local"
    data_dir: Path = Path("var")
    database_url: str = ""
    recordings_dir: Path = Path("recordings")
    flows_dir: Path = Path("ivr_flows")
    log_level: str = "INFO"

    http_host: str = "127.0.0.1"
    http_port: int = 8080

    agi_host: str = "127.0.0.1"
    agi_port: int = 4573
    # Seconds a FastAGI peer may stay silent before we drop it.
    agi_idle_timeout: float = 30.0

    ami_host: str = "127.0.0.1"
    ami_port: int = 5038
    ami_username: str = "callcenter"
    # Empty means: use the secret generated into the data directory.
    ami_secret: str = ""
    ami_ping_interval: float = 5.0
    ami_max_backoff: float = 30.0
    # More Asterisk servers to watch, as "name=host:port, ..." (same AMI user and secret; a
    # remote server's AMI is reached through a tunnel to a loopback port).
    other_asterisks: str = ""

    sip_host: str = "127.0.0.1"
    sip_port: int = 5060
    rtp_port_start: int = 10000
    rtp_port_end: int = 10999

    emergency_number: str = "112"
    hotline_number: str = "1500"
    citizen_lines: int = 3
    agent_stations: int = 4

    cache_dir: Path = DEFAULT_CACHE_DIR
    # Where the Debian sid root with Asterisk lives; empty means cache_dir/asterisk-root.
    asterisk_root: Path | None = None
    # "auto": a host `asterisk` on PATH if there is one, else the sid root.
    asterisk_binary: str = "auto"
    asterisk_boot_timeout: float = 60.0

    # Working-day calendar for follow-up deadlines (SP4N-LAPOR: 3 + 5 working days).
    timezone: str = "Asia/Jakarta"
    # TOML with workdays and holidays; empty means the calendar shipped with the engine.
    holidays_file: Path | None = None
    verify_days: int = 3
    follow_up_days: int = 5
    # Seconds after a queue call before Asterisk offers the agent the next one (queues.conf).
    wrapup_seconds: int = 10
    overdue_check_interval: float = 60.0

    # Recording retention in days per service (0 keeps them for ever); files of calls linked to an
    # open ticket or on legal hold are kept regardless. Checked every retention_check_interval s.
    retention_days_112: int = 365
    retention_days_hotline: int = 180
    retention_check_interval: float = 3600.0
    # Recordings Asterisk closed while the engine was not watching (down, restarting) are looked
    # for on disk every recording_recovery_interval s, in the day folders of the last
    # recording_recovery_days days, and catalogued (recording/recovery.py). 0 turns it off (a node
    # that does not own the recordings folder).
    recording_recovery_interval: int = 600
    recording_recovery_days: int = 7

    # Speech choices in the IVR: worker processes that decode, and how long a caller may wait.
    speech_workers: int = 1
    speech_timeout: float = 20.0

    # Offline transcription of recordings (docs/SPEECH.md): engine (vosk | whisper), model
    # folders (empty: the model the engine's package ships), language ("" = the engine's default;
    # "id" with a multilingual Whisper for Bahasa Indonesia), worker processes on this node (0:
    # this node only enqueues, other machines transcribe), a job's lease and attempts, and the
    # longest audio decoded in one piece (longer recordings are split at silences).
    transcribe_engine: str = "vosk"
    transcription_workers: int = 2
    vosk_model_dir: Path | None = None
    whisper_model_dir: Path | None = None
    transcribe_language: str = ""
    transcription_lease_seconds: float = 300.0
    transcription_max_attempts: int = 3
    transcription_segment_seconds: float = 30.0

    # Internal: the file the settings came from, for messages.
    source: str = field(default="defaults", compare=False)

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'callcenter.db'}"

    @property
    def asterisk_dir(self) -> Path:
        """The per-instance Asterisk tree (config, run, spool, logs) rendered by the engine."""
        return self.data_dir / "asterisk"

    @property
    def secrets_file(self) -> Path:
        return self.data_dir / "secrets.json"

    @property
    def resolved_asterisk_root(self) -> Path:
        return self.asterisk_root or self.cache_dir / "asterisk-root"

    @property
    def other_ami_servers(self) -> list[tuple[str, str, int]]:
        """(system name, host, port) of each other Asterisk server, parsed and checked."""
        return _other_asterisks(self.other_asterisks, self.system_name)

    def replace(self, **changes: Any) -> Settings:
        return _validated(dataclasses.replace(self, **changes))


_FIELD_TYPES: dict[str, str] = {f.name: str(f.type) for f in fields(Settings)}
_PORT_FIELDS = ("http_port", "agi_port", "ami_port", "sip_port", "rtp_port_start", "rtp_port_end")
_NUMBER_RE = re.compile(r"^[0-9]{2,15}$")
_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def load_settings(
    config_file: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    base_dir: Path | None = None,
) -> Settings:
    """Build settings from defaults, the TOML file and the environment, in that order.

    ``config_file`` given explicitly (or through ``CALLCENTER_CONFIG``) must exist; the default
    ``callcenter.toml`` in ``base_dir`` is optional. Relative paths are taken from ``base_dir``
    (the current directory by default) and made absolute, because Asterisk in its root needs the
    same absolute paths as the engine.
    """
    env = os.environ if environ is None else environ
    base = (base_dir or Path.cwd()).resolve()
    values: dict[str, Any] = {}
    source = "defaults"

    explicit = config_file or env.get(ENV_PREFIX + "CONFIG")
    path = Path(explicit) if explicit else base / DEFAULT_CONFIG_FILE
    if not path.is_absolute():
        path = base / path
    if path.is_file():
        values.update(_read_toml(path))
        source = str(path)
    elif explicit:
        raise ConfigError(f"config file not found: {path}")

    for name in _FIELD_TYPES:
        if name == "source":
            continue
        raw = env.get(ENV_PREFIX + name.upper())
        if raw is not None:
            values[name] = raw
            source = f"{source} + environment" if "environment" not in source else source

    converted = {name: _convert(name, value, source) for name, value in values.items()}
    settings = Settings(source=source, **converted)
    settings = dataclasses.replace(settings, **_absolute_paths(settings, base))
    return _validated(settings)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from exc
    # Accept both a flat file and one with a [callcenter] table.
    table = data.get("callcenter", data)
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [callcenter] must be a table")
    unknown = sorted(set(table) - set(_FIELD_TYPES) - {"source"})
    if unknown:
        raise ConfigError(f"{path}: unknown setting '{unknown[0]}'")
    return dict(table)


def _convert(name: str, value: Any, source: str) -> Any:
    kind = _FIELD_TYPES[name]
    where = f"setting '{name}' (from {source})"
    if kind == "int":
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected a whole number, got {value!r}")
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected a whole number, got {value!r}") from None
    if kind == "float":
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected a number, got {value!r}") from None
        if number <= 0:
            raise ConfigError(f"{where}: must be positive, got {value!r}")
        return number
    if kind in ("Path", "Path | None"):
        if value in ("", None):
            return None if kind == "Path | None" else Path(".")
        return Path(str(value))
    if not isinstance(value, str):
        raise ConfigError(f"{where}: expected text, got {value!r}")
    return value


def _absolute_paths(settings: Settings, base: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in ("data_dir", "recordings_dir", "flows_dir", "cache_dir", "asterisk_root", "holidays_file"):
        value = getattr(settings, name)
        if isinstance(value, Path) and not value.is_absolute():
            out[name] = (base / value).resolve()
    return out


def _other_asterisks(value: str, system_name: str) -> list[tuple[str, str, int]]:
    servers: list[tuple[str, str, int]] = []
    for entry in (part.strip() for part in value.split(",")):
        if not entry:
            continue
        name, _, address = entry.partition("=")
        host, _, port_text = address.rpartition(":")
        where = f"setting 'other_asterisks': {entry!r}"
        if not _NAME_RE.match(name) or not host or not (port_text.isascii() and port_text.isdigit()):
            raise ConfigError(f"{where} must look like name=127.0.0.1:5038")
        if name == system_name or name in {s[0] for s in servers}:
            raise ConfigError(f"{where}: the system name {name!r} is used twice")
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise ConfigError(f"{where}: AMI is reached on a loopback address only (tunnel a remote one)")
        port = int(port_text)
        if not 1 <= port <= 65535:
            raise ConfigError(f"{where}: port must be between 1 and 65535")
        servers.append((name, host, port))
    return servers


def _validated(settings: Settings) -> Settings:
    for name in _PORT_FIELDS:
        port = getattr(settings, name)
        if not 1 <= port <= 65535:
            raise ConfigError(f"setting '{name}': port must be between 1 and 65535, got {port}")
    if settings.rtp_port_start >= settings.rtp_port_end:
        raise ConfigError("setting 'rtp_port_start' must be below 'rtp_port_end'")
    for name in ("http_host", "agi_host", "ami_host", "sip_host"):
        _check_host(name, getattr(settings, name))
    # FastAGI and AMI carry call control; they must never listen beyond this machine by default.
    for name in ("agi_host", "ami_host"):
        if not ipaddress.ip_address(getattr(settings, name)).is_loopback:
            raise ConfigError(f"setting '{name}' must be a loopback address, got {getattr(settings, name)}")
    for name in ("emergency_number", "hotline_number"):
        if not _NUMBER_RE.match(getattr(settings, name)):
            raise ConfigError(f"setting '{name}' must be 2-15 digits, got {getattr(settings, name)!r}")
    if settings.emergency_number == settings.hotline_number:
        raise ConfigError("settings 'emergency_number' and 'hotline_number' must differ")
    for name in ("system_name", "ami_username"):
        if not _NAME_RE.match(getattr(settings, name)):
            raise ConfigError(
                f"setting '{name}' may hold only letters, digits, '-' and '_', "
                f"got {getattr(settings, name)!r}"
            )
    _other_asterisks(settings.other_asterisks, settings.system_name)
    if not 1 <= settings.speech_workers <= 16:
        raise ConfigError("setting 'speech_workers' must be between 1 and 16")
    if settings.transcribe_engine not in ("vosk", "whisper"):
        raise ConfigError("setting 'transcribe_engine' must be 'vosk' or 'whisper'")
    if not 0 <= settings.transcription_workers <= 32:
        raise ConfigError("setting 'transcription_workers' must be between 0 and 32")
    for name in ("vosk_model_dir", "whisper_model_dir"):
        if getattr(settings, name) is not None and not getattr(settings, name).is_dir():
            raise ConfigError(f"setting '{name}': no such folder {getattr(settings, name)}")
    if not re.match(r"^([a-z]{2,3}([-_][A-Za-z0-9]{2,8})?)?$", settings.transcribe_language):
        raise ConfigError("setting 'transcribe_language' must be a language code like 'id', or empty")
    if not 10 <= settings.transcription_lease_seconds <= 86400:
        raise ConfigError("setting 'transcription_lease_seconds' must be between 10 and 86400")
    if not 1 <= settings.transcription_max_attempts <= 20:
        raise ConfigError("setting 'transcription_max_attempts' must be between 1 and 20")
    if not 5 <= settings.transcription_segment_seconds <= 600:
        raise ConfigError("setting 'transcription_segment_seconds' must be between 5 and 600")
    for name in ("citizen_lines", "agent_stations"):
        if not 1 <= getattr(settings, name) <= 500:
            raise ConfigError(f"setting '{name}' must be between 1 and 500")
    try:
        zoneinfo.ZoneInfo(settings.timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"setting 'timezone': unknown time zone {settings.timezone!r}") from None
    for name in ("verify_days", "follow_up_days"):
        if not 1 <= getattr(settings, name) <= 60:
            raise ConfigError(f"setting '{name}' must be between 1 and 60 working days")
    for name in ("retention_days_112", "retention_days_hotline"):
        if not 0 <= getattr(settings, name) <= 36500:
            raise ConfigError(f"setting '{name}' must be between 0 (keep for ever) and 36500 days")
    if not 1 <= settings.recording_recovery_days <= 366:
        raise ConfigError("setting 'recording_recovery_days' must be between 1 and 366")
    if settings.recording_recovery_interval != 0 and not 10 <= settings.recording_recovery_interval <= 86400:
        raise ConfigError(
            "setting 'recording_recovery_interval' must be 0 (off) or between 10 and 86400 seconds"
        )
    if not 0 <= settings.wrapup_seconds <= 600:
        raise ConfigError("setting 'wrapup_seconds' must be between 0 and 600")
    if settings.holidays_file is not None and not settings.holidays_file.is_file():
        raise ConfigError(f"setting 'holidays_file': no such file {settings.holidays_file}")
    if settings.log_level.upper() not in _LOG_LEVELS:
        raise ConfigError(f"setting 'log_level' must be one of {', '.join(_LOG_LEVELS)}")
    if settings.asterisk_binary != "auto" and not Path(settings.asterisk_binary).is_absolute():
        raise ConfigError("setting 'asterisk_binary' must be 'auto' or an absolute path")
    url = settings.database_url
    if url and not url.startswith(("sqlite:///", "postgresql")):
        raise ConfigError(f"setting 'database_url' must be sqlite:///... or postgresql://..., got {url!r}")
    return settings


def _check_host(name: str, value: str) -> None:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise ConfigError(f"setting '{name}' must be an IP address, got {value!r}") from None
