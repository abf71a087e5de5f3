"""kstatus itself (sigs.k8s.io/cli-utils, built by `make tools`) reads RetoolDeployments as the
API server serves them: what Flux's health checks, Helm's watcher and kubectl wait's peers see."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest
from kubernetes import client

from tests.support import retool
from tests.support.pgserver import PostgresServer
from tests.support.tools import tool
from tests.support.waiting import wait_for

NAME = "rt"
OLD, NEW, OLDER = "3.196.1-stable", "3.200.0-stable", "3.148.0-stable"
DEADLINE = 90.0


def kstatus(obj: dict[str, Any]) -> tuple[str, str]:
    """kstatus's verdict (Current, InProgress, Failed, ...) and message for one object."""
    result = subprocess.run(
        [str(tool("kstatus"))],
        input=json.dumps(obj),
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    line = json.loads(result.stdout)
    return str(line["status"]), str(line["message"])


def _live(kubeconfig: str, namespace: str) -> dict[str, Any]:
    """The object exactly as `kubectl get -o json` serves it."""
    out = retool.kubectl(kubeconfig, "-n", namespace, "get", "rtd", NAME, "-o", "json").stdout
    body: dict[str, Any] = json.loads(out)
    return body


def _kubectl_wait_ready(
    kubeconfig: str, namespace: str, timeout: str
) -> subprocess.CompletedProcess[str]:
    return retool.kubectl(
        kubeconfig,
        "-n",
        namespace,
        "wait",
        "--for=condition=Ready",
        f"rtd/{NAME}",
        f"--timeout={timeout}",
        check=False,
    )


def _reads(kubeconfig: str, namespace: str, verdict: str) -> dict[str, Any] | None:
    body = _live(kubeconfig, namespace)
    return body if kstatus(body)[0] == verdict else None


def test_a_fresh_object_is_in_progress_before_the_operator_looks(
    kube_api: client.ApiClient, kubeconfig: str, namespace: str, postgres: PostgresServer
) -> None:
    """No operator runs here: the API server's status default keeps kstatus from Current."""
    retool.create(kube_api, namespace, retool.manifest(NAME, OLD, postgres))
    body = _live(kubeconfig, namespace)
    assert body["status"] == {"observedGeneration": 0}
    verdict, message = kstatus(body)
    assert verdict == "InProgress", message
    assert "observed generation is 0" in message
    # Without that default (no status at all) kstatus would call it Current: the bug it fixes.
    assert kstatus({k: v for k, v in body.items() if k != "status"})[0] == "Current"
    assert _kubectl_wait_ready(kubeconfig, namespace, "2s").returncode != 0


@pytest.mark.usefixtures("operator")
def test_ready_paused_pending_and_stalled_as_kstatus_reads_them(
    kube_api: client.ApiClient, kubeconfig: str, namespace: str, retool_secrets: PostgresServer
) -> None:
    """Ready: Current. Paused and healthy: still Current (and Ready=True); paused with a change
    pending: InProgress; a refused downgrade: Failed."""
    retool.create(kube_api, namespace, retool.manifest(NAME, OLD, retool_secrets))
    wait_for(lambda: _reads(kubeconfig, namespace, "Current"), DEADLINE, "kstatus Current")
    assert retool.is_ready(_live(kubeconfig, namespace))

    retool.patch_spec(kube_api, namespace, NAME, {"paused": True})
    paused = wait_for(
        lambda: (
            (b := _live(kubeconfig, namespace))["status"].get("phase") == "Paused"
            and retool.is_ready(b)
            and b
        ),
        DEADLINE,
        "paused, observed and still Ready",
    )
    assert kstatus(paused)[0] == "Current"
    assert _kubectl_wait_ready(kubeconfig, namespace, "10s").returncode == 0

    retool.patch_spec(kube_api, namespace, NAME, {"version": NEW})
    pending = wait_for(
        lambda: _reads(kubeconfig, namespace, "InProgress"), DEADLINE, "paused with a change"
    )
    assert (retool.condition(pending, "Ready") or {}).get("reason") == "Paused"
    assert pending["status"]["observedGeneration"] == pending["metadata"]["generation"]

    retool.patch_spec(kube_api, namespace, NAME, {"paused": False})
    wait_for(lambda: retool.ready_on(kube_api, namespace, NAME, NEW), DEADLINE, f"Ready on {NEW}")
    assert kstatus(_live(kubeconfig, namespace))[0] == "Current"

    retool.patch_spec(kube_api, namespace, NAME, {"version": OLDER})
    failed = wait_for(lambda: _reads(kubeconfig, namespace, "Failed"), DEADLINE, "kstatus Failed")
    assert (retool.condition(failed, "Stalled") or {}).get("reason") == "DowngradeRefused"
