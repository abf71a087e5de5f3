"""The Helm chart (charts/retool-operator): it renders what deploy/ renders, and installs for real.

helm is built by `make tools`; deploy/ is rendered by kubectl kustomize, as `kubectl apply -k` does.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from tests.conftest import _file_lock
from tests.support import retool
from tests.support.tools import tool
from tests.support.typed import present
from tests.support.waiting import wait_for

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "retool-operator"
Key = tuple[str, str, str]


def helm(*args: str, kubeconfig: str | None = None, home: Path | None = None) -> str:
    env = dict(os.environ)
    if kubeconfig:
        env["KUBECONFIG"] = kubeconfig
    if home:  # keep helm's cache and config out of the user's home
        for var in ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME"):
            env[var] = str(home / var.lower())
    result = subprocess.run(
        [str(tool("helm")), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def _objects(text: str) -> dict[Key, dict[str, Any]]:
    """Rendered objects by (kind, namespace, name); Namespaces left out: a chart does not own
    them (`helm install --create-namespace`; uninstalling must not delete a namespace)."""
    objects = {}
    for doc in yaml.safe_load_all(text):
        if not doc or doc["kind"] == "Namespace":
            continue
        meta = doc["metadata"]
        objects[(doc["kind"], meta.get("namespace", ""), meta["name"])] = doc
    return objects


def _kustomize(kubeconfig: str, path: Path) -> dict[Key, dict[str, Any]]:
    out = retool.kubectl(
        kubeconfig, "kustomize", "--load-restrictor", "LoadRestrictionsNone", str(path)
    ).stdout
    return _objects(out)


def _chart(*values: str) -> dict[Key, dict[str, Any]]:
    sets = [arg for value in values for arg in ("--set", value)]
    rendered = helm(
        "template", "retool-operator", str(CHART), "-n", "retool-system", "--include-crds", *sets
    )
    return _objects(rendered)


def _assert_same(chart: dict[Key, Any], deploy: dict[Key, Any]) -> None:
    assert sorted(chart) == sorted(deploy)
    for key, expected in deploy.items():
        assert chart[key] == expected, key


def test_default_values_render_deploy(kubeconfig: str) -> None:
    """Cluster-wide: CRDs, RBAC, 2-replica Deployment with peering, metrics Service, PDB."""
    deploy = _kustomize(kubeconfig, REPO / "deploy")
    assert ("PodDisruptionBudget", "retool-system", "retool-operator") in deploy
    _assert_same(_chart(), deploy)


def test_one_namespace_renders_deploy_namespaced(kubeconfig: str) -> None:
    _assert_same(
        _chart("watchNamespace=retool"), _kustomize(kubeconfig, REPO / "deploy" / "namespaced")
    )


def test_options_render_the_optional_parts_of_deploy(kubeconfig: str, tmp_path: Path) -> None:
    """networkPolicy: deploy/components/networkpolicy; prometheusRule: deploy/monitoring."""
    (tmp_path / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [os.path.relpath(REPO / "deploy", tmp_path)],
                "components": [
                    os.path.relpath(REPO / "deploy" / "components" / "networkpolicy", tmp_path)
                ],
            }
        )
    )
    deploy = _kustomize(kubeconfig, tmp_path)
    deploy |= _objects((REPO / "deploy" / "monitoring" / "prometheus-rules.yaml").read_text())
    _assert_same(_chart("networkPolicy.enabled=true", "prometheusRule.enabled=true"), deploy)


def test_service_monitor_scrapes_the_metrics_service() -> None:
    objects = _chart("serviceMonitor.enabled=true")
    monitor = objects[("ServiceMonitor", "retool-system", "retool-operator")]
    service = objects[("Service", "retool-system", "retool-operator-metrics")]
    assert monitor["spec"]["selector"]["matchLabels"] == service["metadata"]["labels"]
    assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"]


def test_copies_in_the_chart_are_the_originals() -> None:
    """The chart cannot reach outside itself: its CRDs and alert rules are copies, kept equal."""
    pairs = [
        (REPO / "crds" / "retooldeployments.yaml", CHART / "crds" / "retooldeployments.yaml"),
        (REPO / "deploy" / "base" / "peering.yaml", CHART / "crds" / "kopf-peerings.yaml"),
        (
            REPO / "deploy" / "monitoring" / "prometheus-rules.yaml",
            CHART / "files" / "prometheus-rules.yaml",
        ),
    ]
    for original, copy in pairs:
        assert copy.read_text() == original.read_text(), f"{copy} differs: run `make crds`"


def test_helm_install_for_real(
    kubeconfig: str, kube_api: client.ApiClient, namespace: str, tmp_path: Path
) -> None:
    """helm install (watching one namespace), RBAC in force as the chart says, helm uninstall."""
    release = ["-n", namespace]
    with _file_lock("chart"):
        helm(
            "install",
            "retool-operator",
            str(CHART),
            *release,
            "--set",
            f"watchNamespace={namespace}",
            "--wait",
            "--timeout",
            "120s",
            kubeconfig=kubeconfig,
            home=tmp_path,
        )
        try:
            deployment = client.AppsV1Api(kube_api).read_namespaced_deployment(
                "retool-operator", namespace
            )
            assert deployment.spec.replicas == 2
            wait_for(
                lambda: (
                    present(
                        client.AppsV1Api(kube_api)
                        .read_namespaced_deployment("retool-operator", namespace)
                        .status
                    ).ready_replicas
                    == 2
                ),
                90,
                "2 Ready operator pods (kwok's)",
            )
            status = helm(
                "status", "retool-operator", *release, kubeconfig=kubeconfig, home=tmp_path
            )
            assert "STATUS: deployed" in status
            account = f"system:serviceaccount:{namespace}:retool-operator"

            def can(verb: str, resource: str) -> str:
                return retool.can_i(kubeconfig, account, verb, resource, namespace)

            assert can("patch", "retooldeployments.retool-operator.dev/status") == "yes"
            assert can("get", "secrets") == "yes"
            assert can("list", "secrets") == "no"
            assert can("create", "secrets") == "no"
            assert can("list", "customresourcedefinitions.apiextensions.k8s.io") == "yes"
        finally:
            helm(
                "uninstall",
                "retool-operator",
                *release,
                "--wait",
                kubeconfig=kubeconfig,
                home=tmp_path,
            )
    gone = client.AppsV1Api(kube_api).list_namespaced_deployment(namespace).items
    assert [present(d.metadata).name for d in gone] == []


@pytest.fixture(autouse=True)
def _helm_built() -> None:
    tool("helm")
