"""A production RetoolDeployment, modelled on the Helm chart's example values, on a real API server.

Every pod, container, identity and traffic setting is read back from the live children: shared
values on every component, per-component values where they override, the chart's defaults where
nothing is said. Then a shared setting changes: every component rolls, the jobs-runner never
runs two pods, and the reconciles after that send no write.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client

from tests.support import gateway_api, retool
from tests.support.invariants import InvariantMonitor
from tests.support.operator_process import OperatorProcess
from tests.support.pgserver import PostgresServer
from tests.support.production import CA_SECRET, CONFIG_SECRET, PRIORITY_CLASS, production_spec
from tests.support.waiting import wait_for

NAME = "prod"
DEADLINE = 90.0
WORKLOADS = {
    "api": "Deployment",
    "jobs-runner": "StatefulSet",
    "workflows-backend": "Deployment",
    "workflows-worker": "Deployment",
    "code-executor": "Deployment",
}


@pytest.fixture(scope="session")
def priority_class(kube_api: client.ApiClient) -> str:
    """The PriorityClass the production spec names (cluster-wide, shared by the workers)."""
    body = {
        "apiVersion": "scheduling.k8s.io/v1",
        "kind": "PriorityClass",
        "metadata": {"name": PRIORITY_CLASS},
        "value": 1000,
    }
    try:
        client.SchedulingV1Api(kube_api).create_priority_class(body)
    except client.ApiException as error:
        if error.status != 409:
            raise
    return PRIORITY_CLASS


@pytest.fixture
def production(
    kube_api: client.ApiClient,
    namespace: str,
    retool_secrets: PostgresServer,
    priority_class: str,
    gateway_api_crds: None,
) -> dict[str, Any]:
    """The production RetoolDeployment, Ready, with the Secrets its settings name."""
    core = client.CoreV1Api(kube_api)
    for secret in (CONFIG_SECRET, CA_SECRET):
        core.create_namespaced_secret(
            namespace, {"metadata": {"name": secret}, "stringData": {"x": "y"}}
        )
    spec = production_spec()
    retool.create(kube_api, namespace, retool.manifest(NAME, spec["version"], retool_secrets, spec))
    ready: dict[str, Any] = wait_for(
        lambda: retool.ready_on(kube_api, namespace, NAME, spec["version"]),
        DEADLINE,
        "the production RetoolDeployment to be Ready",
    )
    return ready


@pytest.fixture(scope="session")
def gateway_api_crds(kubeconfig: str) -> None:
    gateway_api.install(kubeconfig)


def _workload(api: client.ApiClient, namespace: str, component: str) -> dict[str, Any]:
    apps = client.AppsV1Api(api)
    name = f"{NAME}-{component}"
    if WORKLOADS[component] == "StatefulSet":
        body = apps.read_namespaced_stateful_set(name, namespace, _preload_content=False)
    else:
        body = apps.read_namespaced_deployment(name, namespace, _preload_content=False)
    read: dict[str, Any] = json.loads(body.data)
    return read


def _pod(api: client.ApiClient, namespace: str, component: str) -> dict[str, Any]:
    template: dict[str, Any] = _workload(api, namespace, component)["spec"]["template"]
    return template


@pytest.mark.usefixtures("operator")
def test_every_setting_lands_where_it_belongs(
    kube_api: client.ApiClient, namespace: str, production: dict[str, Any]
) -> None:
    core = client.CoreV1Api(kube_api)
    spec = production_spec()
    pods = {component: _pod(kube_api, namespace, component) for component in WORKLOADS}

    # Shared pod settings on every component.
    for component, template in pods.items():
        meta, pod = template["metadata"], template["spec"]
        assert meta["labels"]["team"] == "platform", component
        assert meta["labels"]["app.kubernetes.io/component"] == component
        assert meta["annotations"]["prometheus.io/scrape"] == "true", component
        assert pod["serviceAccountName"] == NAME
        assert pod["automountServiceAccountToken"] is False
        assert pod["priorityClassName"] == PRIORITY_CLASS
        assert pod["affinity"] == spec["pod"]["affinity"]
        assert pod["topologySpreadConstraints"] == spec["pod"]["topologySpreadConstraints"]
        assert pod["hostAliases"] == spec["pod"]["hostAliases"]
        assert pod["securityContext"]["runAsUser"] == 1000
        assert pod["securityContext"]["fsGroup"] == 2000
        assert [c["name"] for c in pod["initContainers"]] == ["wait-for-db"]
        retool_container, sidecar = pod["containers"]
        assert retool_container["name"] == component
        assert sidecar["name"] == "cloud-sql-proxy"
        assert retool_container["envFrom"] == [{"secretRef": {"name": CONFIG_SECRET}}]
        assert retool_container["imagePullPolicy"] == "IfNotPresent"
        assert retool_container["securityContext"]["runAsNonRoot"] is True
        mounts = {m["mountPath"]: m["name"] for m in retool_container["volumeMounts"]}
        assert mounts == {"/etc/retool/db-ca": "db-ca", "/tmp": "tmp"}
        assert retool_container["readinessProbe"]["failureThreshold"] == 6
        assert retool_container["livenessProbe"]["initialDelaySeconds"] == 30
        env = {e["name"]: e.get("value") for e in retool_container["env"]}
        assert env["COOKIE_INSECURE"] == "false"

    # Per-component values win; the rest of the shared ones stay.
    api, jobs, worker = pods["api"], pods["jobs-runner"], pods["workflows-worker"]
    api_env = {e["name"]: e.get("value") for e in api["spec"]["containers"][0]["env"]}
    jobs_env = {e["name"]: e.get("value") for e in jobs["spec"]["containers"][0]["env"]}
    assert (api_env["LOG_LEVEL"], jobs_env["LOG_LEVEL"]) == ("debug", "info")
    assert api["metadata"]["annotations"]["shared"] == "overridden"
    assert worker["metadata"]["annotations"]["shared"] == "yes"
    assert api["spec"]["terminationGracePeriodSeconds"] == 600
    assert api["spec"]["containers"][0]["lifecycle"]["preStop"]["exec"]["command"] == [
        "sleep",
        "45",
    ]
    assert api["spec"]["containers"][0]["readinessProbe"]["periodSeconds"] == 3
    assert {v["name"]: v for v in api["spec"]["volumes"]}["tmp"]["emptyDir"]["sizeLimit"] == "4Gi"
    assert {v["name"]: v for v in worker["spec"]["volumes"]}["tmp"]["emptyDir"][
        "sizeLimit"
    ] == "1Gi"
    assert jobs["spec"]["nodeSelector"] == {
        "kubernetes.io/arch": "amd64",
        "retool.example.com/pool": "jobs",
    }
    assert "tolerations" not in jobs["spec"]
    assert worker["spec"]["tolerations"] == spec["pod"]["tolerations"]
    assert jobs["spec"]["containers"][1]["args"][-1] == "project:region:jobs-instance"
    # The chart's defaults where the spec says nothing: the code executor may take 391 s to stop.
    assert pods["code-executor"]["spec"]["terminationGracePeriodSeconds"] == 391
    assert "lifecycle" not in jobs["spec"]["containers"][0]

    # The live pods got all of it (what the ReplicaSet and StatefulSet controllers made).
    live = core.list_namespaced_pod(
        namespace, label_selector=f"app.kubernetes.io/instance={NAME}"
    ).items
    assert {p.metadata.labels["app.kubernetes.io/component"] for p in live} == set(WORKLOADS)
    assert all(p.spec.service_account_name == NAME for p in live)
    assert all(p.spec.priority_class_name == PRIORITY_CLASS for p in live)

    # Identity: the ServiceAccount, created and owned.
    account = core.read_namespaced_service_account(NAME, namespace)
    assert account.metadata.annotations == spec["serviceAccount"]["annotations"]
    assert account.automount_service_account_token is False
    assert account.metadata.owner_references[0].kind == "RetoolDeployment"

    # Traffic: the api Service, the jobs-runner's headless Service, the Ingress, the HTTPRoute.
    service = core.read_namespaced_service(f"{NAME}-api", namespace)
    assert service.spec.type == "LoadBalancer"
    assert service.spec.load_balancer_class == "service.k8s.aws/nlb"
    assert service.spec.load_balancer_source_ranges == ["10.0.0.0/8"]
    assert service.spec.external_traffic_policy == "Local"
    assert service.metadata.labels["exposed"] == "internal"
    assert service.spec.ports[0].port == 443
    headless = core.read_namespaced_service(f"{NAME}-jobs-runner", namespace)
    assert headless.spec.cluster_ip == "None"
    sts = _workload(kube_api, namespace, "jobs-runner")
    assert sts["spec"]["serviceName"] == headless.metadata.name
    ingress = client.NetworkingV1Api(kube_api).read_namespaced_ingress(NAME, namespace)
    assert ingress.spec.ingress_class_name == "nginx"
    assert [r.host for r in ingress.spec.rules] == spec["ingress"]["hosts"]
    backend = ingress.spec.rules[0].http.paths[0].backend.service
    assert (backend.name, backend.port.number) == (f"{NAME}-api", 443)
    assert ingress.spec.tls[0].secret_name == "retool-tls"
    route = client.CustomObjectsApi(kube_api).get_namespaced_custom_object(
        "gateway.networking.k8s.io", "v1", namespace, "httproutes", NAME
    )
    assert route["spec"]["parentRefs"][0]["name"] == "public"
    assert route["spec"]["hostnames"] == ["retool.example.com"]
    assert route["spec"]["rules"][0]["backendRefs"][0]["name"] == f"{NAME}-api"

    # A PodDisruptionBudget for every component that can run more than one replica.
    budgets = {
        p.metadata.name: p
        for p in client.PolicyV1Api(kube_api).list_namespaced_pod_disruption_budget(namespace).items
    }
    assert set(budgets) == {
        f"{NAME}-{c}" for c in ("api", "workflows-backend", "workflows-worker", "code-executor")
    }
    assert budgets[f"{NAME}-api"].spec.min_available == 2


def test_a_shared_setting_rolls_every_component_with_one_jobs_runner(
    kube_api: client.ApiClient,
    namespace: str,
    production: dict[str, Any],
    operator: OperatorProcess,
) -> None:
    before = {c: _workload(kube_api, namespace, c)["metadata"]["generation"] for c in WORKLOADS}
    with InvariantMonitor(kube_api, namespace, NAME, new_versions=set(), recreate=False) as monitor:
        retool.patch_spec(kube_api, namespace, NAME, {"pod": {"annotations": {"rollout": "2"}}})

        def rolled() -> bool:
            for component in WORKLOADS:
                workload = _workload(kube_api, namespace, component)
                if workload["spec"]["template"]["metadata"]["annotations"].get("rollout") != "2":
                    return False
                status = workload.get("status") or {}
                want = workload["spec"]["replicas"]
                if status.get("observedGeneration") != workload["metadata"]["generation"] or not (
                    status.get("updatedReplicas") == status.get("readyReplicas") == want
                ):
                    return False
            return retool.is_ready(retool.get(kube_api, namespace, NAME))

        wait_for(rolled, DEADLINE, "every component to roll onto the new pod template")
    assert monitor.violations == []
    after = {c: _workload(kube_api, namespace, c)["metadata"]["generation"] for c in WORKLOADS}
    assert all(after[c] > before[c] for c in WORKLOADS)
    # No upgrade for a settings change.
    body = retool.get(kube_api, namespace, NAME)
    assert body["status"].get("upgrade") is None
    assert body["status"].get("history", []) == []
    # Quiet again: nudges cause reconciles but no write.
    settled = retool.wait_writes_settled(operator)
    reconciles = operator.metric_sum("retool_operator_reconcile_total")
    for n in range(3):
        retool.annotate(kube_api, namespace, NAME, {"example.com/nudge": str(n)})
    wait_for(
        lambda: operator.metric_sum("retool_operator_reconcile_total") >= reconciles + 3 or None,
        30,
        "the nudges to cause reconciles",
    )
    assert operator.metric_sum("retool_operator_api_writes_total") == settled
