"""Obtain a real Asterisk 22: the host's binary if it has one, else a Debian sid root.

Debian 12 has no Asterisk 22, Debian sid has. The root is built once with debootstrap into the
cache directory (outside the repository) and reused by every instance on the machine; a lock
file keeps two builds (the product and the test suite, say) from racing.
"""

from __future__ import annotations

import fcntl
import logging
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from callcenter.settings import ConfigError, Settings

log = logging.getLogger(__name__)

DEBIAN_MIRROR = "http://deb.debian.org/debian"
PACKAGES = ("asterisk", "asterisk-modules")
READY_MARKER = ".callcenter-ready"
ROOT_ASTERISK = "/usr/sbin/asterisk"
HOSTS = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"


class ProvisionError(Exception):
    """Asterisk could not be obtained; the message says why and what to do."""


@dataclass(frozen=True)
class AsteriskInstall:
    """Where the Asterisk binary is and how to run it."""

    binary: str
    # None for a host install; the sid root directory otherwise.
    root: Path | None
    user: str | None
    uid_gid: tuple[int, int] | None

    @property
    def description(self) -> str:
        return f"sid root {self.root}" if self.root else f"host binary {self.binary}"


def locate(settings: Settings, build: bool = True) -> AsteriskInstall:
    """Find (and if allowed, build) the Asterisk install these settings ask for."""
    if settings.asterisk_binary != "auto":
        binary = settings.asterisk_binary
        if not Path(binary).is_file():
            raise ConfigError(f"setting 'asterisk_binary': no such file {binary}")
        return _host_install(binary)
    host = shutil.which("asterisk")
    if host:
        return _host_install(host)
    root = settings.resolved_asterisk_root
    if not (root / READY_MARKER).is_file():
        if not build:
            raise ProvisionError(
                f"Asterisk is not installed yet (no host binary, no sid root at {root}); "
                "run `callcenter asterisk up`"
            )
        build_root(root)
    uid_gid = _user_ids(root / "etc/passwd", "asterisk")
    return AsteriskInstall(binary=ROOT_ASTERISK, root=root, user="asterisk", uid_gid=uid_gid)


def _host_install(binary: str) -> AsteriskInstall:
    try:
        uid_gid: tuple[int, int] | None = _user_ids(Path("/etc/passwd"), "asterisk")
    except ProvisionError:
        uid_gid = None
    return AsteriskInstall(binary=binary, root=None, user="asterisk" if uid_gid else None, uid_gid=uid_gid)


def build_root(root: Path) -> None:
    """debootstrap a minimal sid root and install Asterisk into it (about a minute)."""
    root.parent.mkdir(parents=True, exist_ok=True)
    with _lock(root.parent / (root.name + ".lock")):
        if (root / READY_MARKER).is_file():
            return  # another process finished it while we waited for the lock
        if shutil.which("debootstrap") is None:
            raise ProvisionError(
                "debootstrap is not installed (needed to build the Asterisk 22 root): "
                "apt-get install debootstrap, or run `make run` which installs it"
            )
        partial = root.with_name(root.name + ".partial")
        if partial.exists():
            log.info("removing an unfinished Asterisk root at %s", partial)
            shutil.rmtree(partial)
        log.info("building a Debian sid root for Asterisk 22 at %s (about a minute)", root)
        _run(["debootstrap", "--variant=minbase", "sid", str(partial), DEBIAN_MIRROR], "debootstrap")
        apt = "apt-get -o Acquire::Check-Valid-Until=false"
        script = (
            f"{apt} update -q && DEBIAN_FRONTEND=noninteractive "
            f"{apt} install -y -q --no-install-recommends {' '.join(PACKAGES)} && apt-get clean"
        )
        _run(["chroot", str(partial), "sh", "-c", script], "apt-get install asterisk in the sid root")
        finish_root(partial)
        if root.exists():
            shutil.rmtree(root)
        partial.rename(root)
        log.info("Asterisk root ready at %s", root)


def finish_root(root: Path) -> None:
    """The few fixes a minbase root needs before Asterisk runs well in it."""
    # Without /etc/hosts every call logs DNS errors for localhost.
    (root / "etc/hosts").write_text(HOSTS, encoding="ascii")
    # The stock users.conf creates phones of its own; the instance config never includes it,
    # but move it aside so nobody mistakes it for ours.
    users = root / "etc/asterisk/users.conf"
    if users.exists():
        users.rename(users.with_name("users.conf.debian"))
    version = subprocess.run(
        ["chroot", str(root), ROOT_ASTERISK, "-V"], capture_output=True, text=True, check=False
    ).stdout.strip()
    if not version.startswith("Asterisk 22"):
        raise ProvisionError(f"the sid root holds {version or 'no Asterisk'}, expected Asterisk 22")
    (root / READY_MARKER).write_text(version + "\n", encoding="ascii")


def _run(cmd: list[str], what: str) -> None:
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise ProvisionError(f"{what} failed (exit {result.returncode}): {' | '.join(tail)}")


def _user_ids(passwd: Path, name: str) -> tuple[int, int]:
    try:
        for line in passwd.read_text(encoding="utf-8").splitlines():
            fields = line.split(":")
            if fields[0] == name:
                return int(fields[2]), int(fields[3])
    except OSError as exc:
        raise ProvisionError(f"cannot read {passwd}: {exc.strerror}") from exc
    raise ProvisionError(f"no '{name}' user in {passwd}")


@contextmanager
def _lock(path: Path) -> Iterator[None]:
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
