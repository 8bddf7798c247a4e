"""The engine's database connection: SQLite under var/ by default, PostgreSQL by URL.

SQLAlchemy's engine is synchronous; every call into it runs in the default executor so the
event loop never waits on the disk or the network.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from callcenter.settings import ConfigError

log = logging.getLogger(__name__)

T = TypeVar("T")


class Database:
    def __init__(self, url: str) -> None:
        try:
            parsed = make_url(url)
        except ArgumentError as exc:
            raise ConfigError(f"setting 'database_url' is not a database URL: {exc}") from None
        self.url = parsed
        self.error = "not checked yet"
        self.ready = False
        self.engine: Engine | None = None
        self.sessions: sessionmaker[Session] | None = None

    @property
    def safe_url(self) -> str:
        """The URL without its password, for logs and /healthz."""
        return self.url.render_as_string(hide_password=True)

    def open(self) -> None:
        if self.url.get_backend_name() == "sqlite" and self.url.database:
            Path(self.url.database).parent.mkdir(parents=True, exist_ok=True)
        sqlite = self.url.get_backend_name() == "sqlite"
        try:
            if sqlite:
                # Transactions start with BEGIN IMMEDIATE (see _sqlite_begin); pysqlite's own
                # transaction handling is switched off so it does not interfere.
                self.engine = create_engine(
                    self.url, connect_args={"timeout": 30, "isolation_level": None}, pool_size=8
                )
            else:
                self.engine = create_engine(self.url, pool_pre_ping=True, pool_size=10, max_overflow=10)
        except (SQLAlchemyError, ImportError) as exc:
            raise ConfigError(f"cannot use database {self.safe_url}: {exc}") from None
        if sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)
            event.listen(self.engine, "begin", _sqlite_begin)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    def check(self) -> bool:
        """One round trip to the database; records the outcome for /healthz."""
        if self.engine is None:
            self.open()
        assert self.engine is not None
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except SQLAlchemyError as exc:
            self.ready, self.error = False, str(exc.__cause__ or exc).splitlines()[0]
            log.error("database %s not ready: %s", self.safe_url, self.error)
        else:
            if not self.ready:
                log.info("database %s ready", self.safe_url)
            self.ready, self.error = True, ""
        return self.ready

    def transaction(self) -> Session:
        """A session for one unit of work: ``with db.transaction() as s, s.begin(): ...``."""
        if self.sessions is None:
            self.open()
        assert self.sessions is not None
        return self.sessions()

    async def run(self, work: Callable[[Session], T]) -> T:
        """Run ``work`` in one transaction on an executor thread (never on the event loop)."""

        def unit() -> T:
            with self.transaction() as session, session.begin():
                return work(session)

        return await asyncio.get_running_loop().run_in_executor(None, unit)

    async def check_async(self) -> bool:
        return await asyncio.get_running_loop().run_in_executor(None, self.check)

    def close(self) -> None:
        if self.engine is not None:
            self.engine.dispose()
            self.engine = None
            self.sessions = None

    def health(self) -> dict[str, object]:
        return {"ready": self.ready, "url": self.safe_url, "error": self.error or None}


def _sqlite_begin(connection: Connection) -> None:
    # Take the write lock at the start: a deferred transaction that reads and then writes can
    # fail with "database is locked" when another writer got in between.
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def _sqlite_pragmas(dbapi_connection: object, _record: object) -> None:
    # WAL lets the web pages read while the engine writes; foreign keys are off by default.
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
