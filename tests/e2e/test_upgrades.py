"""Phased upgrades end to end, with the invariants watched at every event (docs/design.md §5).

Each test runs its own operator process on its own namespace. kwok annotations stand in for
Retool's behaviour: a ready delay on the jobs-runner is a slow migration, a delete delay on the
api keeps StoppingServices observable, `-neverready` is a crash-looping release and `-hung` a
migration stuck on a lock.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tests.support import pgserver, retool
from tests.support.invariants import InvariantMonitor, watched_upgrade
from tests.support.operator_process import OperatorProcess
from tests.support.pgserver import PostgresServer
from tests.support.typed import present
from tests.support.waiting import wait_for

NAME = "rt"
OLD = "3.196.1-stable"
NEW = "3.200.0-stable"
NEWER = "3.210.0-stable"
DEADLINE = 90.0
SLOW_MIGRATION = {
    "jobsRunner": {"pod": {"annotations": {"pod-ready.stage.kwok.x-k8s.io/delay": "4s"}}}
}
SLOW_STOP = {"api": {"pod": {"annotations": {"pod-delete.stage.kwok.x-k8s.io/delay": "3s"}}}}
STEP_ORDER = ["Preflight", "StoppingServices", "MigratingDatabase", "StartingServices", "Verifying"]


def _install(
    api: client.ApiClient, namespace: str, db: PostgresServer, spec: dict[str, Any] | None = None
) -> None:
    retool.create(api, namespace, retool.manifest(NAME, OLD, db, spec))
    wait_for(lambda: retool.ready_on(api, namespace, NAME, OLD), DEADLINE, f"Ready on {OLD}")
    # Ready follows the api Deployment; the EndpointSlice controller may lag it a little, and
    # the upgrade's "always a ready endpoint" check starts from a served api.
    wait_for(lambda: retool.api_endpoint_ready(api, namespace, NAME), DEADLINE, "api endpoint")


def _event_messages(api: client.ApiClient, namespace: str) -> list[str]:
    events = client.CoreV1Api(api).list_namespaced_event(
        namespace, field_selector=f"involvedObject.name={NAME},involvedObject.kind=RetoolDeployment"
    )
    ordered = sorted(
        events.items, key=lambda e: (e.event_time or e.first_timestamp, e.metadata.name)
    )
    return [f"{e.reason}: {e.message}" for e in ordered]


def _steps_in_events(api: client.ApiClient, namespace: str) -> list[str]:
    return [
        m.rsplit("step ", 1)[1].split(" ")[0]
        for m in _event_messages(api, namespace)
        if m.startswith("UpgradeStep:")
    ]


def _assert_clean(monitor: InvariantMonitor) -> None:
    assert monitor.violations == [], monitor.first_seen


def _is_subsequence(seen: list[str], order: list[str]) -> bool:
    position = 0
    for step in seen:
        if step not in order[position:]:
            return False
        position = order.index(step, position)
    return True


@pytest.mark.parametrize("strategy", ["Recreate", "RollingUpdate"])
@pytest.mark.usefixtures("operator")
def test_minor_upgrade(
    kube_api: client.ApiClient, namespace: str, retool_secrets: PostgresServer, strategy: str
) -> None:
    """A minor upgrade with a slow migration: steps in order, invariants hold, Ready at the end."""
    spec = retool.merge(SLOW_MIGRATION, {"upgrade": {"strategy": strategy}})
    _install(kube_api, namespace, retool_secrets, spec)
    recreate = strategy == "Recreate"
    monitor, body = watched_upgrade(
        kube_api, namespace, NAME, NEW, recreate=recreate, deadline=DEADLINE
    )
    _assert_clean(monitor)
    expected = STEP_ORDER if recreate else [s for s in STEP_ORDER if s != "StoppingServices"]
    assert _steps_in_events(kube_api, namespace) == expected[1:]
    assert "MigratingDatabase" in monitor.steps
    assert _is_subsequence(monitor.steps, expected), monitor.steps
    if recreate:
        assert 0 in monitor.api_replicas_seen, monitor.api_replicas_seen
    else:
        assert 0 not in monitor.api_replicas_seen, monitor.api_replicas_seen
        assert monitor.min_ready_endpoints is not None
        assert monitor.min_ready_endpoints >= 1
    status = body["status"]
    assert status["api"]["replicas"] == 2
    assert status["api"]["readyReplicas"] == 2
    assert (status["history"][-1]["from"], status["history"][-1]["to"]) == (OLD, NEW)
    assert status["history"][-1]["result"] == "Succeeded"
    assert "upgrade" not in status
    assert set(retool.images(kube_api, namespace).values()) == {f"tryretool/backend:{NEW}"}
    messages = _event_messages(kube_api, namespace)
    assert any(m.startswith("UpgradeStarted:") for m in messages)
    assert any(m.startswith("UpgradeSucceeded:") for m in messages)


@pytest.mark.usefixtures("operator")
def test_patch_upgrade_stops_nothing(
    kube_api: client.ApiClient, namespace: str, retool_secrets: PostgresServer
) -> None:
    """A patch release rolls the jobs-runner first, then the rest; nothing is scaled to 0."""
    _install(kube_api, namespace, retool_secrets, SLOW_MIGRATION)
    patch = "3.196.3-stable"
    with InvariantMonitor(
        kube_api, namespace, NAME, new_versions={patch}, recreate=False, keep_endpoints=True
    ) as monitor:
        retool.patch_spec(kube_api, namespace, NAME, {"version": patch})
        body = wait_for(
            lambda: retool.ready_on(kube_api, namespace, NAME, patch), DEADLINE, f"Ready on {patch}"
        )
    _assert_clean(monitor)
    assert 0 not in monitor.api_replicas_seen, monitor.api_replicas_seen
    assert "StoppingServices" not in _steps_in_events(kube_api, namespace)
    assert body["status"]["history"][-1]["result"] == "Succeeded"


@pytest.mark.parametrize(
    ("broken", "reason_fragment"),
    [("3.200.0-neverready", "crash-looping"), ("3.200.0-hung", "migrationTimeout")],
    ids=["crash-looping", "migration-timeout"],
)
@pytest.mark.usefixtures("operator")
def test_broken_release_rolls_back(
    kube_api: client.ApiClient,
    namespace: str,
    retool_secrets: PostgresServer,
    broken: str,
    reason_fragment: str,
) -> None:
    """A release whose jobs-runner never becomes Ready: back on the old version and replicas."""
    spec = {"api": {"replicas": 3}, "upgrade": {"migrationTimeout": "6s"}}
    _install(kube_api, namespace, retool_secrets, spec)
    monitor, body = watched_upgrade(
        kube_api, namespace, NAME, broken, recreate=True, deadline=DEADLINE, failing=True
    )
    _assert_clean(monitor)
    status = body["status"]
    entry = status["history"][-1]
    assert (entry["from"], entry["to"], entry["result"]) == (OLD, broken, "RolledBack")
    assert reason_fragment in entry["message"]
    assert status["currentVersion"] == OLD
    assert status["phase"] == "Degraded"
    assert present(retool.condition(body, "Ready"))["status"] == "False"
    assert set(retool.images(kube_api, namespace).values()) == {f"tryretool/backend:{OLD}"}
    assert status["api"]["readyReplicas"] == 3
    assert status["jobsRunner"]["readyReplicas"] == 1
    assert "RollingBack" in monitor.steps
    assert any(m.startswith("UpgradeRolledBack:") for m in _event_messages(kube_api, namespace))


@pytest.mark.usefixtures("operator")
def test_retry_annotation_starts_a_new_attempt(
    kube_api: client.ApiClient, namespace: str, retool_secrets: PostgresServer
) -> None:
    """After a rollback nothing is retried until retry-upgrade gets a new value."""
    _install(kube_api, namespace, retool_secrets)
    broken = "3.200.0-neverready"
    retool.patch_spec(kube_api, namespace, NAME, {"version": broken})
    wait_for(
        lambda: retool.stalled(kube_api, namespace, NAME, "UpgradeFailed"),
        DEADLINE,
        "the first rollback",
    )
    retool.annotate(kube_api, namespace, NAME, {"retool-operator.dev/retry-upgrade": "1"})
    body = wait_for(
        lambda: (
            b
            if (b := retool.stalled(kube_api, namespace, NAME, "UpgradeFailed"))
            and len(b["status"]["history"]) == 2
            else None
        ),
        DEADLINE,
        "the second attempt to roll back too",
    )
    assert [e["result"] for e in body["status"]["history"]] == ["RolledBack", "RolledBack"]
    assert body["status"]["retryToken"] == "1"
    started = [m for m in _event_messages(kube_api, namespace) if m.startswith("UpgradeStarted:")]
    assert len(started) == 2
    assert "attempt 2" in started[-1]


@pytest.mark.usefixtures("operator")
def test_downgrade_is_refused_unless_annotated(
    kube_api: client.ApiClient, namespace: str, retool_secrets: PostgresServer
) -> None:
    """3.196 -> 3.148 is refused (nothing changes); with allow-downgrade it proceeds."""
    _install(kube_api, namespace, retool_secrets)
    old_minor = "3.148.0-stable"
    retool.patch_spec(kube_api, namespace, NAME, {"version": old_minor})
    body = wait_for(
        lambda: retool.stalled(kube_api, namespace, NAME, "DowngradeRefused"),
        DEADLINE,
        "DowngradeRefused",
    )
    assert "allow-downgrade" in present(retool.condition(body, "Stalled"))["message"]
    assert set(retool.images(kube_api, namespace).values()) == {f"tryretool/backend:{OLD}"}
    retool.annotate(kube_api, namespace, NAME, {"retool-operator.dev/allow-downgrade": "true"})
    wait_for(
        lambda: retool.ready_on(kube_api, namespace, NAME, old_minor),
        DEADLINE,
        f"Ready on {old_minor}",
    )


@pytest.mark.parametrize(
    ("step", "history"),
    [
        pytest.param("StoppingServices", [(OLD, NEWER, "Succeeded")], id="retargets"),
        pytest.param(
            "MigratingDatabase",
            [(OLD, NEW, "Succeeded"), (NEW, NEWER, "Succeeded")],
            id="finishes-then-upgrades-again",
        ),
    ],
)
@pytest.mark.usefixtures("operator")
def test_version_changed_mid_upgrade(
    kube_api: client.ApiClient,
    namespace: str,
    retool_secrets: PostgresServer,
    step: str,
    history: list[tuple[str, str, str]],
) -> None:
    """A new spec.version before migrations retargets; once they run, the upgrade finishes first."""
    _install(kube_api, namespace, retool_secrets, retool.merge(SLOW_STOP, SLOW_MIGRATION))
    with InvariantMonitor(
        kube_api, namespace, NAME, new_versions={NEW, NEWER}, recreate=True
    ) as monitor:
        retool.patch_spec(kube_api, namespace, NAME, {"version": NEW})
        wait_for(lambda: retool.step(kube_api, namespace, NAME) == step, DEADLINE, step)
        retool.patch_spec(kube_api, namespace, NAME, {"version": NEWER})
        body = wait_for(
            lambda: retool.ready_on(kube_api, namespace, NAME, NEWER),
            DEADLINE * 2,
            f"Ready on {NEWER}",
        )
    _assert_clean(monitor)
    assert [(e["from"], e["to"], e["result"]) for e in body["status"]["history"]] == history
    retargeted = any(
        m.startswith("UpgradeRetargeted:") for m in _event_messages(kube_api, namespace)
    )
    assert retargeted == (step == "StoppingServices")


@pytest.fixture
def own_postgres(tmp_path: Path) -> Iterator[PostgresServer]:
    """A PostgreSQL server this test alone may stop and start."""
    data_dir = tmp_path / "pg"
    server = pgserver.start(data_dir)
    yield server
    pgserver.stop(data_dir)


def test_database_down_blocks_the_upgrade_until_it_is_back(
    kube_api: client.ApiClient,
    namespace: str,
    own_postgres: PostgresServer,
    operator: OperatorProcess,
) -> None:
    """Database stopped before a bump: nothing is stopped; started again: the upgrade proceeds."""
    retool.create_secrets(kube_api, namespace, own_postgres)
    _install(kube_api, namespace, own_postgres)
    pgserver.stop(own_postgres.data_dir)
    with InvariantMonitor(kube_api, namespace, NAME, new_versions={NEW}, recreate=True) as monitor:
        retool.patch_spec(kube_api, namespace, NAME, {"version": NEW})
        body = wait_for(
            lambda: retool.stalled(kube_api, namespace, NAME, "DatabaseUnreachable"),
            DEADLINE,
            "DatabaseUnreachable",
        )
        assert present(retool.condition(body, "DatabaseReachable"))["status"] == "False"
        assert body["status"]["upgrade"]["step"] == "Preflight"
        assert set(retool.images(kube_api, namespace).values()) == {f"tryretool/backend:{OLD}"}
        assert monitor.api_replicas_seen == [2]
        pgserver.start(own_postgres.data_dir, own_postgres.port)
        wait_for(
            lambda: retool.ready_on(kube_api, namespace, NAME, NEW), DEADLINE, f"Ready on {NEW}"
        )
    _assert_clean(monitor)
    assert (
        present(retool.condition(retool.get(kube_api, namespace, NAME), "DatabaseReachable"))[
            "status"
        ]
        == "True"
    )


@pytest.mark.parametrize(
    "step", ["StoppingServices", "MigratingDatabase", "StartingServices", "Verifying"]
)
def test_operator_killed_during_a_step_resumes(
    kube_api: client.ApiClient,
    namespace: str,
    retool_secrets: PostgresServer,
    operator: OperatorProcess,
    step: str,
) -> None:
    """SIGKILL the operator as soon as the status shows STEP; a new process finishes the upgrade."""
    slow_api = {"api": {"pod": {"annotations": {"pod-ready.stage.kwok.x-k8s.io/delay": "3s"}}}}
    _install(
        kube_api,
        namespace,
        retool_secrets,
        retool.merge(retool.merge(SLOW_STOP, SLOW_MIGRATION), slow_api),
    )
    with InvariantMonitor(kube_api, namespace, NAME, new_versions={NEW}, recreate=True) as monitor:
        retool.patch_spec(kube_api, namespace, NAME, {"version": NEW})
        wait_for(
            lambda: (
                step in monitor.steps or retool.ready_on(kube_api, namespace, NAME, NEW) is not None
            ),
            DEADLINE,
            f"step {step}",
        )
        operator.kill()
        killed_in = retool.step(kube_api, namespace, NAME)
        operator.start()
        wait_for(
            lambda: retool.ready_on(kube_api, namespace, NAME, NEW),
            DEADLINE,
            f"Ready on {NEW} after the restart",
        )
    _assert_clean(monitor)
    assert step in monitor.steps, (step, monitor.steps)
    assert killed_in is not None, "the upgrade had already finished when the operator was killed"
    history = retool.get(kube_api, namespace, NAME)["status"]["history"]
    assert [(e["from"], e["to"], e["result"]) for e in history] == [(OLD, NEW, "Succeeded")]


def test_metrics_follow_an_upgrade(
    kube_api: client.ApiClient,
    namespace: str,
    retool_secrets: PostgresServer,
    operator: OperatorProcess,
) -> None:
    """The metrics endpoint, scraped during and after an upgrade, tells what happened."""
    _install(kube_api, namespace, retool_secrets, SLOW_MIGRATION)
    ids = {"namespace": namespace, "name": NAME}
    assert operator.metric("retool_operator_api_replicas_desired", **ids) == 2
    assert operator.metric("retool_operator_database_reachable", **ids) == 1
    retool.patch_spec(kube_api, namespace, NAME, {"version": NEW})
    wait_for(
        lambda: (
            operator.metric("retool_operator_upgrade_step", **ids, step="MigratingDatabase") == 1
        ),
        DEADLINE,
        "the step gauge to show MigratingDatabase",
    )
    wait_for(
        lambda: operator.metric("retool_operator_jobs_runner_ready", **ids) == 0,
        10,
        "the jobs-runner gauge to show the migrating pod not Ready",
    )
    wait_for(lambda: retool.ready_on(kube_api, namespace, NAME, NEW), DEADLINE, f"Ready on {NEW}")
    wait_for(
        lambda: operator.metric("retool_operator_upgrades_succeeded_total") == 1,
        DEADLINE,
        "the succeeded counter",
    )
    assert operator.metric("retool_operator_upgrades_started_total") == 1
    assert operator.metric("retool_operator_upgrades_rolled_back_total") == 0
    assert (
        operator.metric("retool_operator_upgrade_duration_seconds_count", result="Succeeded") == 1
    )
    migrating = operator.metric(
        "retool_operator_upgrade_step_duration_seconds_sum", step="MigratingDatabase"
    )
    assert migrating is not None
    assert migrating >= 3.5  # the jobs-runner's 4s ready delay
    for step in (
        "Preflight",
        "StoppingServices",
        "MigratingDatabase",
        "StartingServices",
        "Verifying",
    ):
        assert operator.metric("retool_operator_upgrade_step", **ids, step=step) is None
    assert operator.metric("retool_operator_api_replicas_ready", **ids) == 2
    assert operator.metric("retool_operator_jobs_runner_ready", **ids) == 1
    assert (operator.metric("retool_operator_reconcile_total", result="ok") or 0) > 0
    assert (operator.metric("retool_operator_reconcile_total", result="error") or 0) == 0


@pytest.mark.parametrize("strategy", ["Recreate", "RollingUpdate"])
@pytest.mark.usefixtures("operator")
def test_a_settings_change_mid_upgrade_is_carried_along(
    kube_api: client.ApiClient, namespace: str, retool_secrets: PostgresServer, strategy: str
) -> None:
    """A shared pod setting changed while migrations run: the upgrade finishes as one upgrade,
    the invariants hold, and every component ends on the new version with the new setting."""
    slow = {"jobsRunner": {"pod": {"annotations": {"pod-ready.stage.kwok.x-k8s.io/delay": "8s"}}}}
    spec = retool.merge(slow, {"upgrade": {"strategy": strategy}})
    _install(kube_api, namespace, retool_secrets, spec)
    wait_for(lambda: retool.ready_on(kube_api, namespace, NAME, OLD), DEADLINE, f"Ready on {OLD}")
    recreate = strategy == "Recreate"
    with InvariantMonitor(
        kube_api,
        namespace,
        NAME,
        new_versions={NEW},
        recreate=recreate,
        keep_endpoints=not recreate,
    ) as monitor:
        retool.patch_spec(kube_api, namespace, NAME, {"version": NEW})
        wait_for(
            lambda: retool.step(kube_api, namespace, NAME) == "MigratingDatabase",
            DEADLINE,
            "step MigratingDatabase",
        )
        retool.patch_spec(kube_api, namespace, NAME, {"pod": {"labels": {"team": "platform"}}})
        body = wait_for(
            lambda: retool.ready_on(kube_api, namespace, NAME, NEW), DEADLINE, f"Ready on {NEW}"
        )
    _assert_clean(monitor)
    history = body["status"]["history"]
    assert [(h["from"], h["to"], h["result"]) for h in history] == [(OLD, NEW, "Succeeded")]
    pods = client.CoreV1Api(kube_api).list_namespaced_pod(
        namespace, label_selector=f"app.kubernetes.io/instance={NAME}"
    )
    running = [present(p.metadata) for p in pods.items]
    labels = [m.labels or {} for m in running if m.deletion_timestamp is None]
    assert labels, "no pods"
    assert all(label.get("team") == "platform" for label in labels), labels
    assert set(retool.images(kube_api, namespace).values()) == {f"tryretool/backend:{NEW}"}
