"""What the benchmarks share: a fresh database per back end, and CPU accounting from /proc.

Imported by bench/tickets.py and bench/screenpop.py (run as scripts from the repository, which
put the repository on sys.path first).
"""

from __future__ import annotations

import os
import secrets
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

HZ = os.sysconf("SC_CLK_TCK")
ADMIN_URL = os.environ.get(
    "CALLCENTER_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@contextmanager
def fresh_database(backend: str) -> Iterator[str]:
    """A temporary SQLite file, or a ``cc_bench_<hex>`` database on the local PostgreSQL that is
    dropped afterwards ``WITH (FORCE)``."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="cc_bench_") as tmp:
            yield f"sqlite:///{Path(tmp) / 'callcenter.db'}"
        return
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"cc_bench_{secrets.token_hex(6)}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


async def no_health() -> dict[str, object]:
    return {"status": "ok"}


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo ("" when it has none), for the run's facts."""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return ""


def machine_busy() -> float:
    """CPU seconds the whole machine has been busy since boot (all cores), from /proc/stat."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return (sum(values[:8]) - idle) / HZ


def postgres_cpu() -> float:
    """CPU seconds used by every ``postgres`` process now running."""
    total = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        name = stat[stat.find("(") + 1 : stat.rfind(")")]
        if name.startswith("postgres"):
            fields = stat[stat.rfind(")") + 2 :].split()
            total += int(fields[11]) + int(fields[12])  # utime + stime
    return total / HZ


def background_load(seconds: float = 2.0) -> float:
    """How busy the machine is before the run starts, in % of one core (other people's work
    on a shared machine shows up here and in the 'other' CPU column)."""
    before = machine_busy()
    time.sleep(seconds)
    return round(100 * (machine_busy() - before) / seconds, 1)
