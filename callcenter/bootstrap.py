"""Set-up from a fresh Debian machine: ``python3 -m callcenter.bootstrap run|test``.

Standard library only, because it runs before anything is installed. It installs what is
missing and nothing more (Debian packages, the virtual environment ``.venv/`` in the checkout,
the Python packages, the Asterisk 22 root), then either starts the product or runs the whole
test suite. Heavy things are cached outside the checkout (``/var/cache/callcenter``) and reused.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[1]
VENV = CHECKOUT / ".venv"
CACHE = Path(os.environ.get("CALLCENTER_CACHE_DIR", "/var/cache/callcenter"))

# Debian packages on the host. debootstrap builds the Asterisk 22 root (Debian 12 has no
# Asterisk 22); espeak-ng and sox make IVR prompts and test speech.
RUN_PACKAGES = ("debootstrap", "espeak-ng", "sox", "util-linux", "ca-certificates")
# docker-compose (1.29) validates docker-compose.yml without a Docker engine; chromium runs the
# browser tests (driven by PyPI playwright with executable_path: never `playwright install`);
# graphviz draws IVR flows (`callcenter flows graph`).
TEST_PACKAGES = (*RUN_PACKAGES, "docker-compose", "chromium", "graphviz")


def say(message: str) -> None:
    print(f"==> {message}", flush=True)


def run(cmd: list[str], **kwargs: object) -> None:
    subprocess.run(cmd, check=True, **kwargs)  # type: ignore[call-overload]


def missing_debs(packages: tuple[str, ...]) -> list[str]:
    if shutil.which("dpkg-query") is None:
        return []
    result = subprocess.run(
        ["dpkg-query", "-W", "-f=${Package} ${db:Status-Status}\n", *packages],
        capture_output=True,
        text=True,
        check=False,
    )
    installed = {line.split()[0] for line in result.stdout.splitlines() if line.endswith(" installed")}
    return [p for p in packages if p not in installed]


def install_debs(packages: tuple[str, ...]) -> None:
    missing = missing_debs(packages)
    if not missing:
        return
    if shutil.which("apt-get") is None:
        sys.exit(f"bootstrap: missing Debian packages {', '.join(missing)} and no apt-get to install them")
    say(f"installing Debian packages: {' '.join(missing)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    run(["apt-get", "update", "-q"], env=env)
    run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing], env=env)


def ensure_venv() -> Path:
    python = VENV / "bin" / "python"
    if python.exists():
        return python
    say(f"creating the virtual environment {VENV}")
    try:
        run([sys.executable, "-m", "venv", str(VENV)])
    except subprocess.CalledProcessError:
        # Debian's python3 keeps venv's pip bootstrap in a separate package.
        shutil.rmtree(VENV, ignore_errors=True)
        version = f"python3.{sys.version_info.minor}-venv"
        install_debs(("python3-venv", version))
        run([sys.executable, "-m", "venv", str(VENV)])
    return python


def install_python_packages(python: Path, extras: str) -> None:
    spec = (CHECKOUT / "pyproject.toml").read_bytes() + extras.encode()
    digest = hashlib.sha256(spec).hexdigest()
    stamp = VENV / f".installed-{extras or 'base'}"
    if stamp.exists() and stamp.read_text().strip() == digest:
        return
    say(f"installing Python packages ({extras or 'base'})")
    env = {**os.environ, "PIP_CACHE_DIR": str(CACHE / "pip"), "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    target = f".[{extras}]" if extras else "."
    run([str(python), "-m", "pip", "install", "-q", "-e", target], cwd=CHECKOUT, env=env)
    stamp.write_text(digest + "\n")


def prepare(packages: tuple[str, ...], extras: str) -> Path:
    install_debs(packages)
    CACHE.mkdir(parents=True, exist_ok=True)
    python = ensure_venv()
    install_python_packages(python, extras)
    say("making sure Asterisk 22 is installed")
    run([str(VENV / "bin" / "callcenter"), "asterisk", "install"], cwd=CHECKOUT)
    return python


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in ("run", "test"):
        print("usage: python3 -m callcenter.bootstrap run|test", file=sys.stderr)
        return 2
    os.chdir(CHECKOUT)
    if argv[0] == "run":
        prepare(RUN_PACKAGES, "")
        say("starting Asterisk and the engine (Ctrl-C stops both)")
        callcenter = str(VENV / "bin" / "callcenter")
        os.execv(callcenter, [callcenter, "run"])  # noqa: S606 - our own venv's entry point
    python = prepare(TEST_PACKAGES, "dev")
    bin_dir = VENV / "bin"
    say("ruff")
    run([str(bin_dir / "ruff"), "check", "callcenter", "tests"])
    say("mypy")
    run([str(bin_dir / "mypy")])
    say("pytest")
    extra = os.environ.get("PYTEST_ARGS", "").split()
    return subprocess.run([str(python), "-m", "pytest", *extra], check=False).returncode


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except subprocess.CalledProcessError as exc:
        print(f"bootstrap: {' '.join(map(str, exc.cmd))} failed (exit {exc.returncode})", file=sys.stderr)
        sys.exit(exc.returncode or 1)
