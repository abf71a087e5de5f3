"""Upgrade paths and long migrations end to end (docs/design.md §11).

A path through spec.upgrade.via with the invariants watched across every hop; a jump over a
stable line held until via names it; and the progress-aware migrationTimeout against the real
PostgreSQL server: a helper stands in for a long Retool migration (it records migration rows and
holds long statements on a schedule) while kwok delays the new jobs-runner's readiness.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from kubernetes import client
from psycopg import sql

from tests.support import retool
from tests.support.invariants import InvariantMonitor
from tests.support.pgserver import PostgresServer
from tests.support.waiting import wait_for

NAME = "rt"
OLD = "3.148.0-stable"
MID = "3.196.1-stable"
TARGET = "3.253.3-stable"
DEADLINE = 120.0
READY_DELAY = "pod-ready.stage.kwok.x-k8s.io/delay"


def _status(api: client.ApiClient, namespace: str) -> dict[str, Any]:
    return retool.get(api, namespace, NAME).get("status") or {}


def _install(
    api: client.ApiClient, namespace: str, db: PostgresServer, spec: dict[str, Any] | None = None
) -> None:
    retool.create(api, namespace, retool.manifest(NAME, OLD, db, spec))
    wait_for(lambda: retool.ready_on(api, namespace, NAME, OLD), DEADLINE, f"Ready on {OLD}")


@pytest.mark.usefixtures("operator")
def test_a_path_through_via_runs_hop_by_hop(
    kube_api: client.ApiClient, namespace: str, retool_secrets: PostgresServer, kubeconfig: str
) -> None:
    """3.148 -> 3.196 -> 3.253 under Recreate: two history entries, invariants on every hop,
    the hop in the status and in `kubectl get rtd -o wide`."""
    _install(kube_api, namespace, retool_secrets, {"upgrade": {"strategy": "Recreate"}})
    paths: set[tuple[str, str, str]] = set()
    wide: set[str] = set()

    def done() -> bool:
        upgrade = _status(kube_api, namespace).get("upgrade") or {}
        if upgrade:
            paths.add((upgrade.get("to", ""), upgrade.get("path", ""), upgrade.get("target", "")))
            table = retool.kubectl(kubeconfig, "get", "rtd", NAME, "-n", namespace, "-o", "wide")
            header, row = table.stdout.splitlines()[:2]
            wide.add(row.split()[header.split().index("PATH")])
        return retool.ready_on(kube_api, namespace, NAME, TARGET) is not None

    with InvariantMonitor(
        kube_api, namespace, NAME, new_versions={MID, TARGET}, recreate=True
    ) as monitor:
        retool.patch_spec(kube_api, namespace, NAME, {"version": TARGET, "upgrade": {"via": [MID]}})
        wait_for(done, DEADLINE * 2, f"Ready on {TARGET} through {MID}")
    assert monitor.violations == [], monitor.first_seen
    history = _status(kube_api, namespace)["history"]
    assert [(h["from"], h["to"], h["result"]) for h in history] == [
        (OLD, MID, "Succeeded"),
        (MID, TARGET, "Succeeded"),
    ]
    assert (MID, "1/2", TARGET) in paths
    assert (TARGET, "2/2", TARGET) in paths
    assert {"1/2", "2/2"} <= wide, wide
    assert "MigratingDatabase" in monitor.steps


@pytest.mark.usefixtures("operator")
def test_a_jump_over_a_stable_line_holds_until_via_names_it(
    kube_api: client.ApiClient, namespace: str, retool_secrets: PostgresServer
) -> None:
    _install(kube_api, namespace, retool_secrets)
    before = retool.images(kube_api, namespace)
    retool.patch_spec(kube_api, namespace, NAME, {"version": TARGET})
    body = wait_for(
        lambda: retool.stalled(kube_api, namespace, NAME, "UpgradePathRequired"),
        DEADLINE,
        "UpgradePathRequired",
    )
    message = present_message(body)
    assert "3.196" in message
    assert "spec.upgrade.via" in message
    assert retool.images(kube_api, namespace) == before
    assert (body.get("status") or {}).get("upgrade") is None
    retool.patch_spec(kube_api, namespace, NAME, {"upgrade": {"via": [MID]}})
    wait_for(
        lambda: retool.ready_on(kube_api, namespace, NAME, TARGET), DEADLINE * 2, f"on {TARGET}"
    )
    assert [h["to"] for h in _status(kube_api, namespace)["history"]] == [MID, TARGET]


def present_message(body: dict[str, Any]) -> str:
    cond = retool.condition(body, "Stalled")
    assert cond is not None
    return str(cond.get("message", ""))


# --- the long-migration pair --------------------------------------------------------------------


class Migration:
    """Stands in for a long Retool migration: rows and long statements on a schedule.

    Each round records a migration row, then runs one statement for STATEMENT seconds, then is
    quiet for PAUSE seconds; after ROUNDS rounds it stops (the migration is stuck).
    """

    def __init__(self, db: PostgresServer, *, rounds: int, statement: float, pause: float) -> None:
        self.db, self.rounds, self.statement, self.pause = db, rounds, statement, pause
        # The last statement's start and end: the operator sees progress somewhere between.
        self.last_started: datetime | None = None
        self.last_progress: datetime | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        table = sql.Identifier("SequelizeMeta")
        with self.db.connect() as conn:
            conn.execute(
                sql.SQL("CREATE TABLE IF NOT EXISTS {} (name text PRIMARY KEY)").format(table)
            )
            for round_ in range(self.rounds):
                if self._stop.is_set():
                    return
                name = f"{time.time_ns()}-{round_}-simulated.js"
                self.last_started = datetime.now().astimezone()
                conn.execute(sql.SQL("INSERT INTO {} VALUES (%s)").format(table), (name,))
                conn.execute("SELECT pg_sleep(%s)", (self.statement,))
                self.last_progress = datetime.now().astimezone()
                self._stop.wait(self.pause)

    @contextlib.contextmanager
    def running(self) -> Iterator[Migration]:
        self._thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            self._thread.join(30)


def _slow_spec(delay: str) -> dict[str, Any]:
    return {
        "upgrade": {"migrationTimeout": "10s", "strategy": "Recreate"},
        "jobsRunner": {"pod": {"annotations": {READY_DELAY: delay}}},
    }


@pytest.mark.usefixtures("operator")
def test_a_migration_that_keeps_making_progress_is_not_rolled_back(
    kube_api: client.ApiClient, namespace: str, retool_secrets: PostgresServer
) -> None:
    """The new jobs-runner is Ready after 35s (3.5x migrationTimeout) and progress never stops
    for 10s: no rollback, one Succeeded entry."""
    _install(kube_api, namespace, retool_secrets, _slow_spec("35s"))
    seen: list[dict[str, Any]] = []

    def on_new() -> bool:
        upgrade = _status(kube_api, namespace).get("upgrade") or {}
        if upgrade.get("migration"):
            seen.append(upgrade["migration"])
        return retool.ready_on(kube_api, namespace, NAME, MID) is not None

    with (
        InvariantMonitor(kube_api, namespace, NAME, new_versions={MID}, recreate=True) as monitor,
        Migration(retool_secrets, rounds=40, statement=3.0, pause=2.0).running(),
    ):
        retool.patch_spec(kube_api, namespace, NAME, {"version": MID})
        wait_for(on_new, DEADLINE, f"Ready on {MID}")
    assert monitor.violations == [], monitor.first_seen
    history = _status(kube_api, namespace)["history"]
    assert [(h["to"], h["result"]) for h in history] == [(MID, "Succeeded")]
    assert any(m.get("progress") for m in seen), seen
    assert "RollingBack" not in monitor.steps


@pytest.mark.usefixtures("operator")
def test_a_migration_that_stops_is_rolled_back_one_timeout_after_its_last_progress(
    kube_api: client.ApiClient, namespace: str, retool_secrets: PostgresServer
) -> None:
    """Progress for about 10s, then none: RollingBack one migrationTimeout (10s) after the last
    progress, give or take the probe's and the requeue's period."""
    _install(kube_api, namespace, retool_secrets, _slow_spec("60s"))
    with (
        InvariantMonitor(kube_api, namespace, NAME, new_versions={MID}, recreate=True) as monitor,
        Migration(retool_secrets, rounds=3, statement=2.0, pause=1.0).running() as migration,
    ):
        retool.patch_spec(kube_api, namespace, NAME, {"version": MID})
        wait_for(
            lambda: (
                (_status(kube_api, namespace).get("upgrade") or {}).get("step") == "RollingBack"
            ),
            DEADLINE,
            "RollingBack",
        )
        rolled_back_at = datetime.now().astimezone()
        started, ended = migration.last_started, migration.last_progress
    assert started is not None
    assert ended is not None
    # The operator saw its last progress during the last statement; the status keeps whole
    # seconds (metav1.Time), so the rollback comes at least 10s - 1s after that statement began,
    # and within the probe's and the requeue's period (2s each) plus slack after it ended.
    assert (rolled_back_at - started).total_seconds() >= 9, (started, rolled_back_at)
    assert (rolled_back_at - ended).total_seconds() <= 18, (ended, rolled_back_at)
    wait_for(
        lambda: (
            [h["result"] for h in _status(kube_api, namespace).get("history", [])] == ["RolledBack"]
        ),
        DEADLINE,
        "a RolledBack entry",
    )
    assert monitor.violations == [], monitor.first_seen
    message = _status(kube_api, namespace)["history"][0]["message"]
    assert "no progress" in message
    events = client.CoreV1Api(kube_api).list_namespaced_event(
        namespace, field_selector=f"involvedObject.name={NAME},reason=MigrationStalled"
    )
    # One per quiet spell of a quarter of migrationTimeout (2.5s here: the helper's own pauses,
    # seen through a probe every 2s, may make one earlier); the last after the last progress.
    stalled_at = [t for e in events.items if (t := e.event_time or e.first_timestamp) is not None]
    assert stalled_at, "no MigrationStalled Event"
    assert max(stalled_at) >= started, (stalled_at, started)
