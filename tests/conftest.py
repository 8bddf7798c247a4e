"""Shared fixtures: a migrated database on SQLite and on PostgreSQL.

PostgreSQL comes from CALLCENTER_TEST_DATABASE_URL or the local server (127.0.0.1:5432, trust
auth, database ``test``); each test gets a fresh database created and dropped around it. Under
CI a missing PostgreSQL fails the run (CI must test both back ends).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from callcenter.storage.database import Database
from callcenter.storage.migrate import upgrade
from tests.realparts import missing

ADMIN_URL = os.environ.get(
    "CALLCENTER_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"cc_test_{secrets.token_hex(6)}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as exc:
        admin.dispose()
        missing(f"PostgreSQL at {make_url(ADMIN_URL).render_as_string()}: {str(exc).splitlines()[0]}")
    url = make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'callcenter.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    upgrade(database_url)
    database = Database(database_url)
    database.open()
    yield database
    database.close()
