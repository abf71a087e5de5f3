"""The database probe against a real PostgreSQL server (no cluster needed)."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

from psycopg import sql

from retool_operator.core.models import DatabaseSpec
from retool_operator.core.observed import DatabaseProbe
from retool_operator.database.probe import CONNECT_TIMEOUT_SECONDS, Target, probe
from tests.support.pgserver import PostgresServer, free_port
from tests.support.waiting import wait_for


def _target(
    db: PostgresServer,
    *,
    password: str | None = None,
    port: int | None = None,
    table: str = "SequelizeMeta",
) -> Target:
    spec = DatabaseSpec.model_validate(
        {
            "host": db.host,
            "port": port or db.port,
            "name": db.database,
            "user": db.user,
            "passwordSecretRef": {"name": "db"},
            "sslMode": "disable",
            "migrationsTable": table,
        }
    )
    return Target.from_spec(spec, password if password is not None else db.password)


def _probe_until(target: Target, count: str) -> DatabaseProbe:
    """Probe until the probe's COUNT field (blocked_queries, ...) is above zero."""
    return wait_for(
        lambda: r if getattr(r := probe(target, datetime.now(UTC)), count) else None,
        20,
        f"{count} to show",
    )


def test_reachable_server_reports_version_and_no_migrations_table(postgres: PostgresServer) -> None:
    """A fresh database: reachable, PostgreSQL 13+, no migrations table yet."""
    result = probe(_target(postgres, table="NoSuchMigrationsTable"), datetime.now(UTC))
    assert result.reachable
    assert result.supported
    assert result.server_version is not None
    assert result.server_version.split(".")[0].isdigit()
    assert result.migrations_applied is None
    assert result.blocked_queries == 0


def test_counts_migrations_and_blocked_sessions(postgres: PostgresServer) -> None:
    """Rows of the migrations table are counted; a session waiting on a lock is counted too,
    and the probe still answers while a migration holds the table."""
    table = "SequelizeMeta_probe_test"
    with postgres.connect() as conn:
        name = sql.Identifier(table)
        conn.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {} (name text PRIMARY KEY)").format(name))
        conn.execute(sql.SQL("TRUNCATE {}").format(name))
        rows = ("a.js", "b.js", "c.js")
        conn.execute(sql.SQL("INSERT INTO {} VALUES (%s), (%s), (%s)").format(name), rows)
    assert probe(_target(postgres, table=table), datetime.now(UTC)).migrations_applied == 3

    holder = postgres.connect()
    holder.autocommit = False
    holder.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(sql.Identifier(table)))
    waiter_started = threading.Event()

    def wait_on_lock() -> None:
        with postgres.connect() as waiter:
            waiter_started.set()
            waiter.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table)))

    thread = threading.Thread(target=wait_on_lock, daemon=True)
    thread.start()
    try:
        waiter_started.wait(10)
        result = _probe_until(_target(postgres, table=table), "blocked_queries")
        assert result.reachable
        assert result.blocked_queries is not None
        assert result.blocked_queries >= 1
        assert result.migrations_applied is None  # locked: unknown, not an outage
    finally:
        holder.rollback()
        holder.close()
        thread.join(10)


def test_wrong_password_is_unreachable_without_leaking_it(postgres: PostgresServer) -> None:
    """Authentication fails: reachable False, a reason, and never the password."""
    secret = "not-the-password-7e1f"
    result = probe(_target(postgres, password=secret), datetime.now(UTC))
    assert not result.reachable
    assert result.error
    assert secret not in result.error
    assert "password" in result.error.lower() or "authentication" in result.error.lower()


def test_nothing_listening_fails_fast(postgres: PostgresServer) -> None:
    """No server on the port: unreachable within the connect timeout."""
    started = time.monotonic()
    result = probe(_target(postgres, port=free_port()), datetime.now(UTC))
    assert not result.reachable
    assert time.monotonic() - started < CONNECT_TIMEOUT_SECONDS + 2
    assert isinstance(result.error, str)


def test_counts_running_statements_of_other_sessions_only(postgres: PostgresServer) -> None:
    """A statement another session runs is a migration at work; the probe's own is not, and
    neither is a session that is idle."""
    assert probe(_target(postgres), datetime.now(UTC)).running_statements == 0
    started = threading.Event()

    def long_statement() -> None:
        with postgres.connect() as worker:
            started.set()
            worker.execute("SELECT pg_sleep(4)")

    idle = postgres.connect()
    thread = threading.Thread(target=long_statement, daemon=True)
    thread.start()
    try:
        started.wait(10)
        result = _probe_until(_target(postgres), "running_statements")
        assert result.running_statements == 1
    finally:
        thread.join(10)
        idle.close()
    assert probe(_target(postgres), datetime.now(UTC)).running_statements == 0
