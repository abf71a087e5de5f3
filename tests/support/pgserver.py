"""A throwaway PostgreSQL server on a free loopback port, for tests and `make run`.

PostgreSQL refuses to run as root, so when we are root the server runs as the `postgres`
system user (Debian's package creates it). Usage as a script:
    python -m tests.support.pgserver up DIR     start (or reuse) a server whose data lives in DIR
    python -m tests.support.pgserver down DIR   stop it
`up` prints the connection settings as KEY=VALUE lines.
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import psycopg

SUPERUSER = "postgres"
APP_USER = "retool"
APP_PASSWORD = "retool-test-password-5b1f"  # a test-only credential for a loopback server
APP_DATABASE = "retool"


@dataclasses.dataclass(frozen=True)
class PostgresServer:
    """Where a running test server listens and how to log in."""

    data_dir: Path
    host: str
    port: int
    user: str = APP_USER
    password: str = APP_PASSWORD
    database: str = APP_DATABASE

    def connect(self, *, as_superuser: bool = False) -> psycopg.Connection[tuple[object, ...]]:
        """Open a connection, as the app user or as the superuser (for test set-up)."""
        if as_superuser:
            return psycopg.connect(
                host=self.host, port=self.port, user=SUPERUSER, dbname="postgres", autocommit=True
            )
        return psycopg.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            dbname=self.database,
            autocommit=True,
        )


def _bin_dir() -> Path:
    """The directory of initdb/pg_ctl: PATH first, then Debian's versioned layout."""
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), reverse=True)
    if not candidates:
        raise RuntimeError(
            "PostgreSQL is not installed: no pg_ctl on PATH or in /usr/lib/postgresql"
        )
    return Path(candidates[0]).parent


def _as_server_user(argv: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return argv
    return ["runuser", "-u", "postgres", "--", *argv]


def _run(argv: list[str]) -> None:
    subprocess.run(_as_server_user(argv), check=True, capture_output=True, text=True)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _state_file(data_dir: Path) -> Path:
    return data_dir.parent / f"{data_dir.name}.json"


def _ready(host: str, port: int, deadline: float) -> None:
    while True:
        try:
            with psycopg.connect(
                host=host, port=port, user=SUPERUSER, dbname="postgres", connect_timeout=2
            ):
                return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def start(data_dir: Path, port: int | None = None) -> PostgresServer:
    """Initialise DATA_DIR if needed, start the server on PORT (or a free one), add the app role."""
    data_dir = data_dir.resolve()
    state = _state_file(data_dir)
    bin_dir = _bin_dir()
    if state.exists():
        known = json.loads(state.read_text())
        server = PostgresServer(data_dir=data_dir, host="127.0.0.1", port=int(known["port"]))
        with contextlib.suppress(psycopg.OperationalError):
            _ready(server.host, server.port, time.monotonic())
            return server
        port = port or server.port
    port = port or free_port()
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    if not (data_dir / "PG_VERSION").exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            server_user = pwd.getpwnam("postgres")
            os.chown(data_dir, server_user.pw_uid, server_user.pw_gid)
            # runuser must be able to reach the data directory through its parents.
            for parent in data_dir.parents:
                if parent == Path("/"):
                    break
                parent.chmod(parent.stat().st_mode | 0o011)
        _run(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(data_dir),
                "-U",
                SUPERUSER,
                "-A",
                "trust",
                "-E",
                "UTF8",
            ]
        )
    options = (
        f"-c listen_addresses=127.0.0.1 -p {port} "
        f"-c unix_socket_directories='{data_dir}' -c fsync=off"
    )
    _run(
        [
            str(bin_dir / "pg_ctl"),
            "-D",
            str(data_dir),
            "-o",
            options,
            "-l",
            str(data_dir / "server.log"),
            "-w",
            "start",
        ]
    )
    server = PostgresServer(data_dir=data_dir, host="127.0.0.1", port=port)
    _ready(server.host, server.port, time.monotonic() + 30)
    with server.connect(as_superuser=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (APP_USER,)).fetchone()
        if not exists:
            conn.execute(f"CREATE ROLE {APP_USER} LOGIN PASSWORD '{APP_PASSWORD}'")
            conn.execute(f"CREATE DATABASE {APP_DATABASE} OWNER {APP_USER}")
    # Password logins for the app role from here on; the superuser keeps trust for test set-up.
    hba = data_dir / "pg_hba.conf"
    rules = (
        f"host all {APP_USER} 127.0.0.1/32 scram-sha-256\n"
        "host all all 127.0.0.1/32 trust\n"
        "local all all trust\n"
    )
    if hba.read_text() != rules:
        hba.write_text(rules)
        _run([str(bin_dir / "pg_ctl"), "-D", str(data_dir), "reload"])
    state.write_text(json.dumps({"port": port}))
    return server


def stop(data_dir: Path) -> None:
    """Stop the server whose data lives in DATA_DIR (quietly if it is not running)."""
    data_dir = data_dir.resolve()
    if not (data_dir / "postmaster.pid").exists():
        return
    try:
        _run([str(_bin_dir() / "pg_ctl"), "-D", str(data_dir), "-m", "fast", "-w", "stop"])
    except subprocess.CalledProcessError as error:
        if (data_dir / "postmaster.pid").exists():
            message = f"could not stop PostgreSQL in {data_dir}: {error.stderr}"
            raise RuntimeError(message) from error


def main(argv: list[str]) -> int:
    """Command line: `up DIR` or `down DIR`."""
    if len(argv) != 2 or argv[0] not in {"up", "down"}:
        print(__doc__, file=sys.stderr)
        return 2
    if argv[0] == "down":
        stop(Path(argv[1]))
        return 0
    server = start(Path(argv[1]))
    print(
        f"PGHOST={server.host}\nPGPORT={server.port}\nPGUSER={server.user}\nPGDATABASE={server.database}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
