"""The packaging for real: `kubectl apply -k deploy/`, least-privilege RBAC, HA with peering."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from tests.conftest import _file_lock
from tests.support import retool
from tests.support.invariants import InvariantMonitor
from tests.support.operator_process import OperatorProcess
from tests.support.pgserver import PostgresServer
from tests.support.typed import present
from tests.support.waiting import wait_for

REPO = Path(__file__).resolve().parents[2]
SERVICE_ACCOUNT = "system:serviceaccount:retool-system:retool-operator"
NAME = "rt"
OLD, NEW = "3.196.1-stable", "3.200.0-stable"
DEADLINE = 90.0


@pytest.fixture(scope="module")
def deployed(kubeconfig: str, kube_api: client.ApiClient) -> str:
    """`kubectl apply -k deploy/` applied for real (the operator pods are kwok's fakes)."""
    with _file_lock("deploy"):
        result = retool.kubectl(
            kubeconfig, "apply", "--server-side", "--force-conflicts", "-k", str(REPO / "deploy")
        )
    return result.stdout


def test_apply_k_deploy_succeeds(deployed: str, kube_api: client.ApiClient) -> None:
    """Every object of the kustomization is applied; the operator Deployment is hardened."""
    for kind_name in (
        "namespace/retool-system",
        "customresourcedefinition.apiextensions.k8s.io/retooldeployments.retool-operator.dev",
        "serviceaccount/retool-operator",
        "clusterrole.rbac.authorization.k8s.io/retool-operator",
        "clusterrolebinding.rbac.authorization.k8s.io/retool-operator",
        "deployment.apps/retool-operator",
        "service/retool-operator-metrics",
        "poddisruptionbudget.policy/retool-operator",
    ):
        assert kind_name in deployed
    deployment = client.AppsV1Api(kube_api).read_namespaced_deployment(
        "retool-operator", "retool-system"
    )
    pod = present(deployment.spec.template.spec)
    container = pod.containers[0]
    assert deployment.spec.replicas == 2
    assert "--peering=retool-operator" in present(container.args)
    pod_security = present(pod.security_context)
    assert pod_security.run_as_non_root is True
    assert present(pod_security.seccomp_profile).type == "RuntimeDefault"
    security = present(container.security_context)
    assert security.read_only_root_filesystem is True
    assert security.allow_privilege_escalation is False
    assert present(security.capabilities).drop == ["ALL"]
    resources = present(container.resources)
    assert resources.requests
    assert resources.limits
    assert present(present(container.liveness_probe).http_get).path == "/healthz"
    readiness = present(present(container.readiness_probe).http_get)
    assert (readiness.path, readiness.port) == ("/readyz", "metrics")
    assert present(resources.requests)["ephemeral-storage"]
    assert present(resources.limits)["ephemeral-storage"]


def test_namespaced_variant_renders(kubeconfig: str) -> None:
    """deploy/namespaced swaps the ClusterRole for a Role and watches one namespace."""
    rendered = retool.kubectl(kubeconfig, "kustomize", str(REPO / "deploy" / "namespaced")).stdout
    docs = [d for d in yaml.safe_load_all(rendered) if d]
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert ("Role", "retool-operator") in kinds
    assert ("ClusterRole", "retool-operator") not in kinds
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    assert "--namespace=retool" in deployment["spec"]["template"]["spec"]["containers"][0]["args"]


def _service_account_kubeconfig(kubeconfig: str, path: Path) -> str:
    """A kubeconfig that authenticates as the operator's ServiceAccount (a bound token)."""
    token = retool.kubectl(
        kubeconfig, "-n", "retool-system", "create", "token", "retool-operator", "--duration=1h"
    ).stdout.strip()
    config: dict[str, Any] = yaml.safe_load(Path(kubeconfig).read_text())
    config["users"] = [{"name": "retool-operator", "user": {"token": token}}]
    for context in config["contexts"]:
        context["context"]["user"] = "retool-operator"
    path.write_text(yaml.safe_dump(config))
    return str(path)


@pytest.mark.usefixtures("deployed")
def test_install_and_upgrade_as_the_service_account(
    kubeconfig: str,
    kube_api: client.ApiClient,
    namespace: str,
    retool_secrets: PostgresServer,
    tmp_path: Path,
) -> None:
    """With nothing but the ServiceAccount's RBAC, the operator installs and upgrades Retool."""
    sa_kubeconfig = _service_account_kubeconfig(kubeconfig, tmp_path / "sa-kubeconfig")
    operator = OperatorProcess(sa_kubeconfig, namespace, tmp_path / "operator.log")
    operator.start()
    try:
        retool.create(kube_api, namespace, retool.manifest(NAME, OLD, retool_secrets))
        wait_for(
            lambda: retool.ready_on(kube_api, namespace, NAME, OLD), DEADLINE, f"Ready on {OLD}"
        )
        retool.patch_spec(kube_api, namespace, NAME, {"version": NEW})
        wait_for(
            lambda: retool.ready_on(kube_api, namespace, NAME, NEW), DEADLINE, f"Ready on {NEW}"
        )
    finally:
        operator.stop()
    log = operator.log_path.read_text()
    assert "Forbidden" not in log, operator.log_tail(80)
    assert " 403" not in log, operator.log_tail(80)


@pytest.mark.usefixtures("deployed")
@pytest.mark.parametrize(
    ("verb", "resource"),
    [
        ("list", "secrets"),
        ("create", "secrets"),
        ("update", "secrets"),
        ("delete", "secrets"),
        ("update", "retooldeployments.retool-operator.dev"),
        ("delete", "retooldeployments.retool-operator.dev"),
        ("create", "retooldeployments.retool-operator.dev"),
        ("delete", "services"),
        ("create", "pods"),
        ("create", "clusterrolebindings.rbac.authorization.k8s.io"),
        ("delete", "namespaces"),
        ("*", "*"),
    ],
)
def test_verbs_the_operator_does_not_need_are_refused(
    kubeconfig: str, verb: str, resource: str
) -> None:
    """Least privilege: what the operator never does, its ServiceAccount may not do."""
    answer = retool.can_i(kubeconfig, SERVICE_ACCOUNT, verb, resource, "default")
    assert answer == "no", (verb, resource, answer)


@pytest.mark.usefixtures("deployed")
def test_a_refused_call_really_fails_with_the_token(kubeconfig: str, tmp_path: Path) -> None:
    """The bound token is refused listing Secrets (403), and allowed to read one it names."""
    sa_kubeconfig = _service_account_kubeconfig(kubeconfig, tmp_path / "sa-kubeconfig")
    refused = retool.kubectl(sa_kubeconfig, "-n", "default", "get", "secrets", check=False)
    assert refused.returncode != 0
    assert "forbidden" in refused.stderr.lower()


def test_two_operators_one_acts_and_the_other_takes_over(
    kubeconfig: str,
    kube_api: client.ApiClient,
    namespace: str,
    retool_secrets: PostgresServer,
    tmp_path: Path,
) -> None:
    """HA: only the higher priority acts; SIGKILL it mid-upgrade and the other finishes."""
    peering = ["--peering", "retool-operator", "--peering-lifetime", "4"]
    active = OperatorProcess(
        kubeconfig, namespace, tmp_path / "active.log", *peering, "--priority", "200"
    )
    standby = OperatorProcess(
        kubeconfig, namespace, tmp_path / "standby.log", *peering, "--priority", "100"
    )
    active.start()
    standby.start()
    try:
        slow = {
            "jobsRunner": {"pod": {"annotations": {"pod-ready.stage.kwok.x-k8s.io/delay": "6s"}}}
        }
        retool.create(kube_api, namespace, retool.manifest(NAME, OLD, retool_secrets, slow))
        wait_for(
            lambda: retool.ready_on(kube_api, namespace, NAME, OLD), DEADLINE, f"Ready on {OLD}"
        )
        assert active.metric_sum("retool_operator_reconcile_total") > 0
        assert standby.metric_sum("retool_operator_reconcile_total") == 0, "the standby acted"
        with InvariantMonitor(
            kube_api, namespace, NAME, new_versions={NEW}, recreate=True
        ) as monitor:
            retool.patch_spec(kube_api, namespace, NAME, {"version": NEW})
            wait_for(lambda: "MigratingDatabase" in monitor.steps, DEADLINE, "MigratingDatabase")
            active.kill()
            wait_for(
                lambda: retool.ready_on(kube_api, namespace, NAME, NEW),
                DEADLINE,
                f"Ready on {NEW} by the standby",
            )
        assert monitor.violations == []
        assert standby.metric_sum("retool_operator_reconcile_total") > 0
    finally:
        active.stop()
        standby.stop()
