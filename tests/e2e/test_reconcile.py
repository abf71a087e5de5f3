"""Steady-state reconciliation against a real API server (issue: CRD and steady state).

Each test runs its own operator process on its own namespace.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client

from tests.support import retool
from tests.support.operator_process import OperatorProcess
from tests.support.pgserver import PostgresServer
from tests.support.typed import present
from tests.support.waiting import wait_for

NAME = "rt"
DEADLINE = 60.0


def _statefulset(api: client.ApiClient, namespace: str) -> client.V1StatefulSet | None:
    try:
        return client.AppsV1Api(api).read_namespaced_stateful_set(f"{NAME}-jobs-runner", namespace)
    except client.ApiException as error:
        if error.status == 404:
            return None
        raise


def _deployment(api: client.ApiClient, namespace: str, name: str) -> client.V1Deployment | None:
    try:
        return client.AppsV1Api(api).read_namespaced_deployment(name, namespace)
    except client.ApiException as error:
        if error.status == 404:
            return None
        raise


def _ready(api: client.ApiClient, namespace: str) -> dict[str, Any] | None:
    body = retool.get(api, namespace, NAME)
    return body if retool.is_ready(body) else None


def _install(
    api: client.ApiClient,
    namespace: str,
    db: PostgresServer,
    spec: dict[str, Any] | None = None,
) -> dict[str, Any]:
    retool.create(api, namespace, retool.manifest(NAME, "3.196.1-stable", db, spec))
    return wait_for(lambda: _ready(api, namespace), DEADLINE, "the RetoolDeployment to be Ready")


@pytest.mark.usefixtures("operator")
def test_install_order_printer_columns_and_kubectl_wait(
    kube_api: client.ApiClient, kubeconfig: str, namespace: str, retool_secrets: PostgresServer
) -> None:
    """The jobs-runner becomes Ready before the api exists; kubectl shows and waits on it."""
    delay = {"pod-ready.stage.kwok.x-k8s.io/delay": "3s"}
    retool.create(
        kube_api,
        namespace,
        retool.manifest(
            NAME, "3.196.1-stable", retool_secrets, {"jobsRunner": {"pod": {"annotations": delay}}}
        ),
    )
    # While the jobs-runner migrates the empty database, there is no api at all.
    sts = wait_for(
        lambda: _statefulset(kube_api, namespace), DEADLINE, "the jobs-runner StatefulSet"
    )
    assert sts.spec.replicas == 1
    assert sts.spec.pod_management_policy == "OrderedReady"
    assert _deployment(kube_api, namespace, f"{NAME}-api") is None
    # The StatefulSet may land before the status that records the install (children go first
    # when no step changes): wait for the status, then check it says Installing.
    phase = wait_for(
        lambda: (retool.get(kube_api, namespace, NAME).get("status") or {}).get("phase"),
        DEADLINE,
        "a status phase",
    )
    assert phase == "Installing"
    wait = retool.kubectl(
        kubeconfig, "-n", namespace, "wait", "--for=condition=Ready", f"rtd/{NAME}", "--timeout=60s"
    )
    assert "condition met" in wait.stdout
    assert _statefulset(kube_api, namespace) is not None
    api = _deployment(kube_api, namespace, f"{NAME}-api")
    assert api is not None
    # The api was created only after the jobs-runner was Ready.
    jobs_runner_pod = client.CoreV1Api(kube_api).read_namespaced_pod(
        f"{NAME}-jobs-runner-0", namespace
    )
    ready_at = next(
        present(c.last_transition_time)
        for c in present(present(jobs_runner_pod.status).conditions)
        if c.type == "Ready"
    )
    created = present(present(api.metadata).creation_timestamp)
    assert created >= ready_at.replace(microsecond=0)
    table = retool.kubectl(kubeconfig, "-n", namespace, "get", "rtd", NAME).stdout
    header, row = table.splitlines()[:2]
    assert header.split() == ["NAME", "VERSION", "PHASE", "READY", "AGE"]
    assert row.split()[:4] == [NAME, "3.196.1-stable", "Ready", "2"]
    status = retool.get(kube_api, namespace, NAME)["status"]
    assert status["currentVersion"] == "3.196.1-stable"
    assert status["jobsRunner"]["readyReplicas"] == 1
    assert {c["type"]: c["status"] for c in status["conditions"]} == {
        "Ready": "True",
        "Reconciling": "False",
        "Stalled": "False",
        "DatabaseReachable": "True",
    }


@pytest.mark.usefixtures("operator")
def test_kubectl_scale_drives_the_api(
    kube_api: client.ApiClient, kubeconfig: str, namespace: str, retool_secrets: PostgresServer
) -> None:
    """`kubectl scale rtd --replicas=5` sets spec.api.replicas, and the api Deployment follows."""
    _install(kube_api, namespace, retool_secrets)
    retool.kubectl(kubeconfig, "-n", namespace, "scale", f"rtd/{NAME}", "--replicas=5")
    wait_for(
        lambda: (d := _deployment(kube_api, namespace, f"{NAME}-api")) and d.spec.replicas == 5,
        DEADLINE,
        "the api Deployment to have 5 replicas",
    )
    body = wait_for(
        lambda: (
            (b := retool.get(kube_api, namespace, NAME))["status"]["api"]["readyReplicas"] == 5
            and b
        ),
        DEADLINE,
        "5 ready api replicas in the status",
    )
    scale = json.loads(
        retool.kubectl(
            kubeconfig,
            "-n",
            namespace,
            "get",
            "--raw",
            f"/apis/retool-operator.dev/v1alpha1/namespaces/{namespace}/retooldeployments/{NAME}/scale",
        ).stdout
    )
    assert scale["spec"]["replicas"] == 5
    assert scale["status"]["replicas"] == 5
    assert "app.kubernetes.io/component=api" in scale["status"]["selector"]
    assert body["spec"]["api"]["replicas"] == 5


@pytest.mark.usefixtures("operator")
def test_drift_is_reverted(
    kube_api: client.ApiClient, namespace: str, retool_secrets: PostgresServer
) -> None:
    """A second jobs-runner, edited api replicas or a deleted child are put back within seconds."""
    _install(kube_api, namespace, retool_secrets)
    apps = client.AppsV1Api(kube_api)
    apps.patch_namespaced_stateful_set_scale(
        f"{NAME}-jobs-runner", namespace, {"spec": {"replicas": 2}}
    )
    wait_for(
        lambda: (s := _statefulset(kube_api, namespace)) and s.spec.replicas == 1,
        15,
        "the jobs-runner to be scaled back to 1",
    )
    apps.patch_namespaced_deployment_scale(f"{NAME}-api", namespace, {"spec": {"replicas": 7}})
    wait_for(
        lambda: (d := _deployment(kube_api, namespace, f"{NAME}-api")) and d.spec.replicas == 2,
        15,
        "the api replicas to be put back to 2",
    )
    old_uid = present(present(_deployment(kube_api, namespace, f"{NAME}-api")).metadata).uid
    apps.delete_namespaced_deployment(f"{NAME}-api", namespace)
    wait_for(
        lambda: (
            (d := _deployment(kube_api, namespace, f"{NAME}-api"))
            and present(d.metadata).uid != old_uid
        ),
        15,
        "the api Deployment to be recreated",
    )
    client.CoreV1Api(kube_api).delete_namespaced_service(f"{NAME}-api", namespace)
    wait_for(
        lambda: _service_exists(kube_api, namespace),
        15,
        "the api Service to be recreated",
    )
    wait_for(lambda: _ready(kube_api, namespace), DEADLINE, "Ready again")


def _service_exists(api: client.ApiClient, namespace: str) -> bool:
    try:
        client.CoreV1Api(api).read_namespaced_service(f"{NAME}-api", namespace)
    except client.ApiException:
        return False
    return True


@pytest.mark.usefixtures("operator")
def test_deleting_the_retool_deployment_removes_every_child(
    kube_api: client.ApiClient, namespace: str, retool_secrets: PostgresServer
) -> None:
    """Owner references let the garbage collector remove every child."""
    spec = {
        "workflowsBackend": {"replicas": 1},
        "codeExecutor": {"replicas": 1},
        "temporal": {"host": "temporal-frontend.temporal"},
        "api": {"podDisruptionBudget": {"maxUnavailable": 1}},
    }
    _install(kube_api, namespace, retool_secrets, spec)
    selector = f"app.kubernetes.io/instance={NAME}"

    def children() -> list[str]:
        apps, core = client.AppsV1Api(kube_api), client.CoreV1Api(kube_api)
        policy = client.PolicyV1Api(kube_api)
        found = [
            present(present(d.metadata).name)
            for d in apps.list_namespaced_deployment(namespace, label_selector=selector).items
        ]
        found += [
            present(present(s.metadata).name)
            for s in apps.list_namespaced_stateful_set(namespace, label_selector=selector).items
        ]
        found += [
            present(present(s.metadata).name)
            for s in core.list_namespaced_service(namespace, label_selector=selector).items
        ]
        found += [
            present(present(p.metadata).name)
            for p in policy.list_namespaced_pod_disruption_budget(
                namespace, label_selector=selector
            ).items
        ]
        found += [
            present(present(p.metadata).name)
            for p in core.list_namespaced_pod(namespace, label_selector=selector).items
        ]
        return found

    before = children()
    assert {
        f"{NAME}-api",
        f"{NAME}-jobs-runner",
        f"{NAME}-workflows-backend",
        f"{NAME}-code-executor",
    } <= set(before)
    client.CustomObjectsApi(kube_api).delete_namespaced_custom_object(
        retool.GROUP, retool.VERSION, namespace, retool.PLURAL, NAME
    )
    wait_for(lambda: not children() or None, DEADLINE, f"every child to go (left: {children()})")


@pytest.mark.usefixtures("operator")
def test_missing_secret_stalls_with_its_name_then_recovers(
    kube_api: client.ApiClient, namespace: str, postgres: PostgresServer
) -> None:
    """No Secret: Stalled=True naming it, nothing created; once it exists the install proceeds."""
    retool.create(kube_api, namespace, retool.manifest(NAME, "3.196.1-stable", postgres))

    def stalled() -> dict[str, Any] | None:
        cond = retool.condition(retool.get(kube_api, namespace, NAME), "Stalled")
        return cond if cond and cond["status"] == "True" else None

    cond = wait_for(stalled, DEADLINE, "Stalled=True")
    assert cond["reason"] == "SecretMissing"
    assert "Secret retool-db" in cond["message"]
    assert _statefulset(kube_api, namespace) is None
    retool.create_secrets(kube_api, namespace, postgres)
    wait_for(lambda: _ready(kube_api, namespace), DEADLINE, "Ready once the Secrets exist")


def test_quiet_reconciles_send_no_writes(
    kube_api: client.ApiClient,
    namespace: str,
    retool_secrets: PostgresServer,
    operator: OperatorProcess,
) -> None:
    """Reconciles that find nothing to change send no write (counted by the operator and by RVs).

    Harmless events (annotations on the RetoolDeployment and on the api Deployment, and a full
    operator restart, which reconciles everything it lists) each cause a reconcile.
    """
    _install(kube_api, namespace, retool_secrets)
    apps = client.AppsV1Api(kube_api)
    settled = operator.settled_writes()
    status = retool.get(kube_api, namespace, NAME)["status"]
    untouched = _untouched_versions(kube_api, namespace)
    reconciles = operator.metric_sum("retool_operator_reconcile_total")
    for n in range(3):
        retool.annotate(kube_api, namespace, NAME, {"example.com/nudge": str(n)})
        apps.patch_namespaced_deployment(
            f"{NAME}-api", namespace, {"metadata": {"annotations": {"example.com/nudge": str(n)}}}
        )
    wait_for(
        lambda: operator.metric_sum("retool_operator_reconcile_total") >= reconciles + 3 or None,
        30,
        "the nudges to cause reconciles",
    )
    assert (
        operator.metric_sum("retool_operator_api_writes_total") == 0
        or operator.metric_sum("retool_operator_api_writes_total") - settled == 0
    ), "a reconcile that had nothing to change sent a write"
    operator.restart()
    wait_for(
        lambda: operator.metric_sum("retool_operator_reconcile_total") >= 1 or None,
        30,
        "the restarted operator to reconcile",
    )
    assert operator.metric_sum("retool_operator_api_writes_total") == 0, (
        "the restarted operator sent a write for an installation that needed nothing"
    )
    assert retool.get(kube_api, namespace, NAME)["status"] == status
    assert _untouched_versions(kube_api, namespace) == untouched


def _untouched_versions(api: client.ApiClient, namespace: str) -> dict[str, str]:
    """resourceVersions of the children the test does not touch itself."""
    sts = _statefulset(api, namespace)
    service = client.CoreV1Api(api).read_namespaced_service(f"{NAME}-api", namespace)
    assert sts is not None
    return {
        "sts": present(present(sts.metadata).resource_version),
        "svc": present(present(service.metadata).resource_version),
    }


@pytest.mark.usefixtures("operator")
def test_autoscaled_api_is_left_to_the_hpa(
    kube_api: client.ApiClient, namespace: str, retool_secrets: PostgresServer
) -> None:
    """With api.autoscaling an HPA exists and a replica count it sets is not fought."""
    spec = {"api": {"autoscaling": {"minReplicas": 2, "maxReplicas": 6}}}
    _install(kube_api, namespace, retool_secrets, spec)
    hpa = client.AutoscalingV2Api(kube_api).read_namespaced_horizontal_pod_autoscaler(
        f"{NAME}-api", namespace
    )
    assert hpa.spec.max_replicas == 6
    assert hpa.spec.scale_target_ref.name == f"{NAME}-api"
    apps = client.AppsV1Api(kube_api)
    # What the HPA would do: scale through the scale subresource.
    apps.patch_namespaced_deployment_scale(f"{NAME}-api", namespace, {"spec": {"replicas": 4}})
    wait_for(
        lambda: retool.get(kube_api, namespace, NAME)["status"]["api"]["readyReplicas"] == 4,
        DEADLINE,
        "4 ready api replicas",
    )
    deployment = _deployment(kube_api, namespace, f"{NAME}-api")
    assert deployment is not None
    assert deployment.spec.replicas == 4


@pytest.mark.usefixtures("operator")
def test_paused_changes_no_child(
    kube_api: client.ApiClient, namespace: str, retool_secrets: PostgresServer
) -> None:
    """spec.paused: phase Paused, and a version or replica change is not carried out."""
    _install(kube_api, namespace, retool_secrets)
    retool.patch_spec(kube_api, namespace, NAME, {"paused": True})
    wait_for(
        lambda: retool.get(kube_api, namespace, NAME)["status"]["phase"] == "Paused",
        DEADLINE,
        "phase Paused",
    )
    retool.patch_spec(
        kube_api, namespace, NAME, {"version": "3.200.0-stable", "api": {"replicas": 4}}
    )
    body = wait_for(
        lambda: (
            (b := retool.get(kube_api, namespace, NAME))["status"]["observedGeneration"]
            == b["metadata"]["generation"]
            and b
        ),
        DEADLINE,
        "the paused change to be observed",
    )
    assert body["status"]["phase"] == "Paused"
    deployment = _deployment(kube_api, namespace, f"{NAME}-api")
    assert deployment is not None
    assert deployment.spec.replicas == 2
    image = present(present(deployment.spec.template.spec).containers[0].image)
    assert image.endswith(":3.196.1-stable")
    retool.patch_spec(kube_api, namespace, NAME, {"paused": False})
    wait_for(
        lambda: _ready(kube_api, namespace), DEADLINE, "Ready on the new version once unpaused"
    )
    deployment = _deployment(kube_api, namespace, f"{NAME}-api")
    assert deployment is not None
    assert deployment.spec.replicas == 4
