"""`kubectl retool` for real: kubectl runs it as a plugin, against the operator and API server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tests.support import retool
from tests.support.pgserver import PostgresServer
from tests.support.typed import present
from tests.support.waiting import wait_for

NAME = "rt"
OLD, PATCH, NEW, OLDER = "3.196.1-stable", "3.196.2-stable", "3.200.0-stable", "3.148.0-stable"
DEADLINE = 90.0
# Where the venv put the console script `kubectl-retool`: kubectl finds plugins on PATH.
SCRIPTS = Path(sys.executable).parent


def kubectl_retool(
    kubeconfig: str, namespace: str, *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """`kubectl retool ARGS` as a person types it (kubectl looks the plugin up on PATH)."""
    env = {**os.environ, "PATH": f"{SCRIPTS}{os.pathsep}{os.environ.get('PATH', '')}"}
    env["KUBECONFIG"] = kubeconfig
    result = subprocess.run(
        [retool.kubectl_binary(), "retool", "-n", namespace, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"kubectl retool {' '.join(args)}: {result.stderr}{result.stdout}")
    return result


def _install(api: client.ApiClient, namespace: str, db: PostgresServer, **spec: Any) -> None:
    retool.create(api, namespace, retool.manifest(NAME, OLD, db, spec))
    wait_for(lambda: retool.ready_on(api, namespace, NAME, OLD), DEADLINE, f"Ready on {OLD}")


def _written_by_people(api: client.ApiClient, namespace: str) -> dict[str, Any]:
    """What plan must leave alone: the object's metadata.generation, annotations and labels, and
    its children's generations (the operator keeps writing the status meanwhile)."""
    body = retool.get(api, namespace, NAME)
    metadata = body["metadata"]
    apps = client.AppsV1Api(api)
    children = {
        present(item.metadata).name: present(item.metadata).generation
        for listing in (apps.list_namespaced_deployment, apps.list_namespaced_stateful_set)
        for item in listing(namespace).items
    }
    return {
        "generation": metadata["generation"],
        "annotations": metadata.get("annotations"),
        "labels": metadata.get("labels"),
        "children": children,
    }


def _plan(kubeconfig: str, namespace: str, version: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(
        kubectl_retool(kubeconfig, namespace, "plan", NAME, version, "-o", "json").stdout
    )
    return result


@pytest.mark.usefixtures("operator")
def test_plan_minor_patch_downgrade_changes_nothing(
    kube_api: client.ApiClient, kubeconfig: str, namespace: str, retool_secrets: PostgresServer
) -> None:
    """plan reads the live object and asks the state machine; the object stays as it was."""
    _install(kube_api, namespace, retool_secrets)
    before = _written_by_people(kube_api, namespace)

    minor = _plan(kubeconfig, namespace, NEW)
    assert minor["kind"] == "Minor"
    assert len(minor["path"]) == 1
    hop = minor["path"][0]
    assert (hop["from_version"], hop["to"], hop["runs_migrations"]) == (OLD, NEW, True)
    assert [s["step"] for s in hop["steps"]] == [
        "Preflight",
        "StoppingServices",
        "MigratingDatabase",
        "StartingServices",
        "Verifying",
    ]
    assert hop["stops"] == {"api": 2}
    assert all(c["ok"] for c in minor["preflight"]), minor["preflight"]
    assert minor["verdict"].startswith("start: Preflight passes now")

    patch = _plan(kubeconfig, namespace, PATCH)
    assert patch["kind"] == "Patch"
    assert patch["path"][0]["stops"] == {}
    assert "StoppingServices" not in [s["step"] for s in patch["path"][0]["steps"]]

    downgrade = _plan(kubeconfig, namespace, OLDER)
    assert downgrade["path"][0]["downgrade"] is True
    checks = {c["name"]: c for c in downgrade["preflight"]}
    assert checks["downgrade"]["reason"] == "DowngradeRefused"
    assert downgrade["verdict"].startswith("refuse (DowngradeRefused)")

    table = kubectl_retool(kubeconfig, namespace, "plan", NAME, NEW).stdout
    assert "Hop 1/1" in table
    assert "StoppingServices" in table
    assert "one hop" in table  # no spec.upgrade.via entry above the running version
    assert "upgrade path" in table  # Preflight's check of the stable release lines
    bad = kubectl_retool(kubeconfig, namespace, "plan", NAME, "latest", check=False)
    assert bad.returncode == 1
    assert "not a Retool version tag" in bad.stderr

    # Nothing was written: not the spec, annotations or labels, not a child's spec.
    assert _written_by_people(kube_api, namespace) == before

    # What Preflight would find now: a Secret key taken away shows in the plan at once.
    client.CoreV1Api(kube_api).patch_namespaced_secret(
        "retool-secrets", namespace, [{"op": "remove", "path": "/data/encryption-key"}]
    )
    missing = {c["name"]: c for c in _plan(kubeconfig, namespace, NEW)["preflight"]}
    assert missing["secrets"]["reason"] == "SecretMissing"
    assert "key encryption-key in Secret retool-secrets" in missing["secrets"]["detail"]


@pytest.mark.usefixtures("operator")
def test_status_during_an_upgrade_and_history(
    kube_api: client.ApiClient, kubeconfig: str, namespace: str, retool_secrets: PostgresServer
) -> None:
    """status shows the step, the hop and what the operator waits for; history the result."""
    slow = {"pod": {"annotations": {"pod-ready.stage.kwok.x-k8s.io/delay": "40s"}}}
    _install(kube_api, namespace, retool_secrets, jobsRunner=slow)
    retool.patch_spec(kube_api, namespace, NAME, {"version": NEW})
    wait_for(
        lambda: retool.step(kube_api, namespace, NAME) == "MigratingDatabase",
        DEADLINE,
        "step MigratingDatabase",
    )
    # The migration takes 40 s (kwok's delay): both reads fall within it, even on a busy machine.
    report = json.loads(kubectl_retool(kubeconfig, namespace, "status", NAME, "-o", "json").stdout)
    table = kubectl_retool(kubeconfig, namespace, "status", NAME).stdout
    assert report["upgrade"]["to"] == NEW
    assert report["upgrade"]["step"] == "MigratingDatabase"
    assert report["phase"] == "Upgrading"
    assert "MigratingDatabase" in table, table
    assert f"Minor {OLD} -> {NEW} (Recreate), hop 1/1" in table, table
    assert "Waiting for:" in table
    assert "jobs-runner" in table
    assert "COMPONENT" in table
    assert "CONDITION" in table

    wait_for(lambda: retool.ready_on(kube_api, namespace, NAME, NEW), DEADLINE, f"Ready on {NEW}")
    history = json.loads(
        kubectl_retool(kubeconfig, namespace, "history", NAME, "-o", "json").stdout
    )
    assert [(h["from"], h["to"], h["result"]) for h in history] == [(OLD, NEW, "Succeeded")]
    assert "Succeeded" in kubectl_retool(kubeconfig, namespace, "history", NAME).stdout


@pytest.mark.usefixtures("operator")
def test_pause_resume_and_retry_write_only_what_a_person_would(
    kube_api: client.ApiClient, kubeconfig: str, namespace: str, retool_secrets: PostgresServer
) -> None:
    """pause/resume flip spec.paused alone; retry sets the retry annotation after a failure."""
    _install(kube_api, namespace, retool_secrets, upgrade={"migrationTimeout": "3s"})
    spec_before = retool.get(kube_api, namespace, NAME)["spec"]

    kubectl_retool(kubeconfig, namespace, "pause", NAME)
    paused = retool.get(kube_api, namespace, NAME)
    assert paused["spec"] == {**spec_before, "paused": True}
    kubectl_retool(kubeconfig, namespace, "resume", NAME)
    assert retool.get(kube_api, namespace, NAME)["spec"] == {**spec_before, "paused": False}

    nothing = kubectl_retool(kubeconfig, namespace, "retry", NAME, check=False)
    assert nothing.returncode == 1
    assert "nothing to retry" in nothing.stderr
    annotations = retool.get(kube_api, namespace, NAME)["metadata"].get("annotations") or {}
    assert "retool-operator.dev/retry-upgrade" not in annotations

    # A release whose jobs-runner never becomes Ready: rolled back after migrationTimeout.
    broken = "3.200.0-neverready"
    retool.patch_spec(kube_api, namespace, NAME, {"version": broken})
    wait_for(
        lambda: retool.stalled(kube_api, namespace, NAME, "UpgradeFailed"),
        DEADLINE,
        "the broken upgrade to be rolled back",
    )
    kubectl_retool(kubeconfig, namespace, "retry", NAME)
    body = retool.get(kube_api, namespace, NAME)
    assert body["metadata"]["annotations"]["retool-operator.dev/retry-upgrade"]
    assert body["spec"] == {**spec_before, "paused": False, "version": broken}

    def attempts() -> int:
        history = retool.get(kube_api, namespace, NAME)["status"].get("history") or []
        return sum(1 for entry in history if entry["to"] == broken)

    wait_for(lambda: attempts() == 2, DEADLINE, "the operator to run attempt 2 (and roll it back)")
