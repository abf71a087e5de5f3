"""Probe the Retool database: reachable? which PostgreSQL? how far are the migrations? stuck?

Short connect and statement timeouts keep a dead database from stalling a reconcile; TCP
keepalives and `tcp_user_timeout` end a connection whose peer stopped answering mid-query
(libpq's default would wait two hours), and the runtime bounds the whole probe by
`PROBE_DEADLINE_SECONDS`. The
password is passed to libpq and nowhere else: errors are reduced to their class and a message
scrubbed of it, and the connection string is never logged.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime

import psycopg
from psycopg import sql

from retool_operator.core.models import DatabaseSpec, SslMode
from retool_operator.core.observed import DatabaseProbe

CONNECT_TIMEOUT_SECONDS = 3
STATEMENT_TIMEOUT_MS = 3000
# A migration may hold a lock on its table: wait this long for it, then report "unknown".
LOCK_TIMEOUT_MS = 500
# Unacknowledged data, or a silent idle peer, ends the connection after about this long.
TCP_USER_TIMEOUT_MS = 5000
# The longest a probe may take in all (a connect, three statements, with margin).
PROBE_DEADLINE_SECONDS = 15.0
# The probe's own sessions (of every operator replica) are not a migration at work.
APPLICATION_NAME = "retool-operator"
# Sessions waiting on a lock, and statements of other sessions running (not waiting on a lock):
# the second is progress of a migration that is busy with one long statement.
_ACTIVITY = (
    "SELECT count(*) FILTER (WHERE wait_event_type = 'Lock'), "
    "count(*) FILTER (WHERE state = 'active' AND wait_event_type IS DISTINCT FROM 'Lock' "
    "AND pid <> pg_backend_pid() AND application_name <> %s) "
    "FROM pg_stat_activity WHERE datname = current_database() AND backend_type = 'client backend'"
)
# libpq's sslmode names equal the spec's.
_SSL_MODES = {mode: mode.value for mode in SslMode}


@dataclasses.dataclass(frozen=True)
class Target:
    """Where to connect; `password` is held only for the connection itself."""

    host: str
    port: int
    dbname: str
    user: str
    password: str = dataclasses.field(repr=False)
    sslmode: str
    migrations_table: str

    @classmethod
    def from_spec(cls, spec: DatabaseSpec, password: str) -> Target:
        """The connection target a RetoolDeployment's database section describes."""
        return cls(
            host=spec.host,
            port=spec.port,
            dbname=spec.name,
            user=spec.user,
            password=password,
            sslmode=_SSL_MODES[spec.ssl_mode],
            migrations_table=spec.migrations_table,
        )

    def fingerprint(self) -> tuple[str, int, str, str, str, str, int]:
        """Identity for caching probe results; the password counts only through its hash."""
        return (
            self.host,
            self.port,
            self.dbname,
            self.user,
            self.sslmode,
            self.migrations_table,
            hash(self.password),
        )


def _scrub(error: Exception, target: Target) -> str:
    """A one-line reason for a failure, never containing the password."""
    text = " ".join(str(error).split()) or type(error).__name__
    if target.password:
        text = text.replace(target.password, "***")
    return f"{type(error).__name__}: {text}"[:300]


def probe(target: Target, now: datetime) -> DatabaseProbe:
    """Connect once: the server version, the migrations count, blocked and running sessions."""
    try:
        with psycopg.connect(
            host=target.host,
            port=target.port,
            dbname=target.dbname,
            user=target.user,
            password=target.password,
            sslmode=target.sslmode,
            connect_timeout=CONNECT_TIMEOUT_SECONDS,
            options=f"-c statement_timeout={STATEMENT_TIMEOUT_MS} "
            f"-c lock_timeout={LOCK_TIMEOUT_MS}",
            application_name=APPLICATION_NAME,
            autocommit=True,
            tcp_user_timeout=TCP_USER_TIMEOUT_MS,
            keepalives=1,
            keepalives_idle=5,
            keepalives_interval=2,
            keepalives_count=2,
        ) as conn:
            version_num = int(conn.info.server_version)
            activity = conn.execute(_ACTIVITY, (APPLICATION_NAME,)).fetchone()
            migrations = _migrations_applied(conn, target.migrations_table)
            return DatabaseProbe(
                checked_at=now,
                reachable=True,
                server_version=_version_text(version_num),
                server_version_num=version_num,
                migrations_applied=migrations,
                blocked_queries=int(str(activity[0])) if activity else 0,
                running_statements=int(str(activity[1])) if activity else 0,
            )
    except psycopg.Error as error:
        return DatabaseProbe(checked_at=now, reachable=False, error=_scrub(error, target))


def _version_text(version_num: int) -> str:
    """`150004` -> `15.4` (PostgreSQL 10 and later number their versions this way)."""
    return f"{version_num // 10000}.{version_num % 10000}"


def _migrations_applied(conn: psycopg.Connection[tuple[object, ...]], table: str) -> int | None:
    """Rows in the migrations table, or None when it does not exist (yet)."""
    exists = conn.execute("SELECT to_regclass(quote_ident(%s)) IS NOT NULL", (table,)).fetchone()
    if not exists or not exists[0]:
        return None
    query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
    try:
        row = conn.execute(query).fetchone()
    except (psycopg.errors.LockNotAvailable, psycopg.errors.QueryCanceled):
        return None  # a migration holds the table: the count is unknown, not an outage
    return int(str(row[0])) if row else None
