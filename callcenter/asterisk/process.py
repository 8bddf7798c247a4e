"""Start, stop and inspect one Asterisk instance (the product's, or a test suite's).

An instance is a directory (config, run, spool, logs) rendered from ``asterisk-conf/``. With
the sid root, Asterisk runs chrooted in a private mount namespace where the instance directory,
the recordings folder and /proc are bind-mounted at the same absolute paths as outside: file
names Asterisk reports are valid for the engine, and the mounts vanish with the process.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from callcenter.asterisk.provision import AsteriskInstall
from callcenter.asterisk.render import InstanceDirs, render
from callcenter.credentials import load_or_create
from callcenter.settings import Settings

log = logging.getLogger(__name__)

# The mount script gets every path as a positional argument, never spliced into the text.
_CHROOT_SCRIPT = """set -e
root="$1"; inst="$2"; rec="$3"
mkdir -p "$root$inst" "$root$rec" "$root/proc"
mount --bind "$inst" "$root$inst"
mount --bind "$rec" "$root$rec"
mount -t proc proc "$root/proc"
shift 3
exec chroot "$root" "$@"
"""


class AsteriskError(Exception):
    """Asterisk did not start, stop or answer; the message says what happened."""


@dataclass(frozen=True)
class AsteriskStatus:
    running: bool
    booted: bool
    pid: int | None
    version: str
    install: str
    instance: Path

    def as_dict(self) -> dict[str, object]:
        return {
            "running": self.running,
            "fully_booted": self.booted,
            "pid": self.pid,
            "version": self.version,
            "install": self.install,
            "instance": str(self.instance),
        }


class AsteriskProcess:
    def __init__(self, settings: Settings, install: AsteriskInstall) -> None:
        self.settings = settings
        self.install = install
        self.dirs = InstanceDirs(settings.asterisk_dir)

    # ---- life cycle ---------------------------------------------------------------------
    def up(self) -> AsteriskStatus:
        """Render the configuration and start Asterisk, or reload it if it already runs."""
        credentials = load_or_create(self.settings)
        render(self.settings, credentials, self.dirs, owner=self.install.uid_gid)
        if self.pid() is not None:
            log.info("Asterisk already running (pid %s); reloading its configuration", self.pid())
            self.cli("core reload")
            self.cli("core waitfullybooted", timeout=self.settings.asterisk_boot_timeout)
            return self.status()
        self._start()
        self._wait_booted()
        status = self.status()
        log.info("%s fully booted (pid %s, %s)", status.version, status.pid, self.install.description)
        return status

    def down(self, timeout: float = 20.0) -> bool:
        """Stop Asterisk cleanly; returns False if it was not running."""
        pid = self.pid()
        if pid is None:
            return False
        try:
            self.cli("core stop now", timeout=timeout)
        except AsteriskError as exc:
            log.warning("clean stop failed (%s); sending SIGTERM", exc)
            _signal(pid, signal.SIGTERM)
        if not _wait_exit(pid, timeout):
            log.warning("Asterisk pid %s did not stop in %.0f s; killing it", pid, timeout)
            _signal(pid, signal.SIGKILL)
            _wait_exit(pid, 5.0)
        self.dirs.pid_file.unlink(missing_ok=True)
        log.info("Asterisk stopped")
        return True

    def status(self) -> AsteriskStatus:
        pid = self.pid()
        version, booted = "", False
        if pid is not None:
            try:
                version = " ".join(self.cli("core show version", timeout=10).split()[:2])
                booted = "fully booted" in self.cli("core waitfullybooted", timeout=5).lower()
            except AsteriskError as exc:
                version = f"not answering: {exc}"
        return AsteriskStatus(
            running=pid is not None,
            booted=booted,
            pid=pid,
            version=version,
            install=self.install.description,
            instance=self.dirs.root,
        )

    def pid(self) -> int | None:
        """The running Asterisk of this instance, judged by its pid file and /proc."""
        try:
            pid = int(self.dirs.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
            # "pid (comm) S ...": a crashed Asterisk that nobody reaped yet is a zombie (Z),
            # which must count as stopped or `up` would try to reload a dead process.
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return None
        return pid if comm == "asterisk" and state != "Z" else None

    # ---- the Asterisk CLI ---------------------------------------------------------------
    def cli(self, command: str, timeout: float = 15.0) -> str:
        """Run one CLI command on the running instance through its control socket."""
        pid = self.pid()
        if pid is None:
            raise AsteriskError("Asterisk is not running")
        cmd = [self.install.binary, "-C", str(self.dirs.config_file), "-rx", command]
        if self.install.root is not None:
            # Enter the instance's mount namespace and chroot to reach its control socket.
            cmd = ["nsenter", f"--target={pid}", "--mount", "--root", "--wd", "--", *cmd]
        try:
            result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise AsteriskError(f"'{command}' did not answer within {timeout:.0f} s") from None
        if result.returncode != 0:
            raise AsteriskError(f"'{command}' failed: {(result.stderr or result.stdout).strip()}")
        return result.stdout

    def _start(self) -> None:
        args = [self.install.binary, "-C", str(self.dirs.config_file)]
        if self.install.user:
            args += ["-U", self.install.user, "-G", self.install.user]
        if self.install.root is not None:
            args = [
                "unshare", "--mount", "--propagation", "private", "--",
                "sh", "-c", _CHROOT_SCRIPT, "callcenter-asterisk",
                str(self.install.root), str(self.dirs.root), str(self.settings.recordings_dir),
                *args,
            ]  # fmt: skip
        # A crashed Asterisk leaves both behind; a stale socket would look like the new one.
        self.dirs.pid_file.unlink(missing_ok=True)
        self.dirs.control_socket.unlink(missing_ok=True)
        startup_log = self.dirs.log / "startup.log"
        log.info("starting Asterisk (%s), instance %s", self.install.description, self.dirs.root)
        with startup_log.open("ab") as err:
            # Asterisk daemonizes itself: this returns when the parent has forked the daemon.
            result = subprocess.run(
                args, stdin=subprocess.DEVNULL, stdout=err, stderr=err, timeout=60, check=False
            )
        if result.returncode != 0:
            raise AsteriskError(
                f"Asterisk failed to start (exit {result.returncode}); see {startup_log} "
                f"and {self.dirs.log / 'messages.log'}"
            )

    def _wait_booted(self) -> None:
        deadline = time.monotonic() + self.settings.asterisk_boot_timeout
        # The pid file and control socket appear a moment after the fork; there is no event
        # to wait on from outside, so look for them at a short interval.
        while self.pid() is None or not self.dirs.control_socket.exists():
            if time.monotonic() > deadline:
                raise AsteriskError(
                    f"Asterisk did not come up within {self.settings.asterisk_boot_timeout:.0f} s; "
                    f"see {self.dirs.log / 'messages.log'}"
                )
            time.sleep(0.05)
        remaining = max(1.0, deadline - time.monotonic())
        self.cli("core waitfullybooted", timeout=remaining)


def _signal(pid: int, sig: signal.Signals) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _wait_exit(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            return True
        if comm != "asterisk":
            return True
        time.sleep(0.05)
    return False
