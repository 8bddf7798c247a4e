"""Migration 0003 on a database with recordings catalogued before it, and back."""

from __future__ import annotations

from datetime import UTC, datetime

from alembic import command
from sqlalchemy import create_engine, inspect, text

from callcenter.storage.migrate import alembic_config

NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)


def test_recordings_catalogued_before_count_as_ok_and_not_on_hold(database_url: str) -> None:
    config = alembic_config(database_url)
    command.upgrade(config, "0002")
    engine = create_engine(database_url)
    try:
        with engine.begin() as connection:
            connection.execute(
                text("INSERT INTO calls (system_name, linkedid, caller_number, service, queue, started_at, "
                     "agent, ivr) VALUES ('pbx', '1.0', '', '112', '', :at, '', '{}')"),
                {"at": NOW},
            )  # fmt: skip
            connection.execute(
                text(
                    "INSERT INTO recordings (call_id, path, closed_at) VALUES (1, '/r/2026/11/23/x_1', :at)"
                ),
                {"at": NOW},
            )
        command.upgrade(config, "0003")
        with engine.connect() as connection:
            row = connection.execute(
                text(
                    "SELECT status, failure, legal_hold, legal_hold_by, deleted_at, duration_seconds "
                    "FROM recordings"
                )
            ).one()
        assert tuple(row) == ("ok", "", False, "", None, None)
        assert {"audit_log", "recording_files"} <= set(inspect(engine).get_table_names())
        command.downgrade(config, "0002")
        tables = set(inspect(engine).get_table_names())
        assert "audit_log" not in tables and "recording_files" not in tables
        assert "status" not in {c["name"] for c in inspect(engine).get_columns("recordings")}
    finally:
        engine.dispose()
