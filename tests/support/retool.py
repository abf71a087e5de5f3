"""Creating RetoolDeployments and reading them back, for the end-to-end tests."""

from __future__ import annotations

import copy
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kubernetes import client

from tests.support.pgserver import PostgresServer
from tests.support.typed import present

GROUP, VERSION, PLURAL = "retool-operator.dev", "v1alpha1", "retooldeployments"
# Secret values of the tests: the secret-leak checks look for exactly these strings.
LICENSE_KEY = "license-5f3c9a1e-test-value"
ENCRYPTION_KEY = "encryption-8d2b7c4f-test-value"


def kubectl_binary() -> str:
    """kubectl matching the local control plane's version when it was built, else PATH's."""
    cache = Path.home() / ".cache" / "retool-operator" / "bin"
    built = sorted(cache.glob("kubernetes-*/kubectl"), reverse=True)
    return str(built[0]) if built else (shutil.which("kubectl") or "kubectl")


def kubectl(kubeconfig: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run kubectl against the test cluster."""
    return subprocess.run(
        [kubectl_binary(), "--kubeconfig", kubeconfig, *args],
        capture_output=True,
        text=True,
        check=check,
        timeout=120,
    )


def can_i(kubeconfig: str, account: str, verb: str, resource: str, namespace: str) -> str:
    """`kubectl auth can-i` as ACCOUNT: "yes" or "no"."""
    answer = kubectl(
        kubeconfig, "auth", "can-i", verb, resource, "-n", namespace, "--as", account, check=False
    )
    return answer.stdout.strip()


def create_secrets(api: client.ApiClient, namespace: str, db: PostgresServer) -> None:
    """The two Secrets a RetoolDeployment references: the database password and Retool's keys."""
    core = client.CoreV1Api(api)
    core.create_namespaced_secret(
        namespace,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name="retool-db"), string_data={"password": db.password}
        ),
    )
    core.create_namespaced_secret(
        namespace,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name="retool-secrets"),
            string_data={"license-key": LICENSE_KEY, "encryption-key": ENCRYPTION_KEY},
        ),
    )


def merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """BASE deep-merged with EXTRA (a copy)."""
    result = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(result.get(key), dict):
            result[key] = merge(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def manifest(
    name: str,
    version: str,
    db: PostgresServer,
    spec: Mapping[str, Any] | None = None,
    annotations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A RetoolDeployment pointing at the test database."""
    base = {
        "version": version,
        "database": {
            "host": db.host,
            "port": db.port,
            "name": db.database,
            "user": db.user,
            "passwordSecretRef": {"name": "retool-db", "key": "password"},
            "sslMode": "disable",
        },
        "secretRef": {"name": "retool-secrets"},
        "api": {"replicas": 2},
        "upgrade": {"migrationTimeout": "60s", "verifyTimeout": "60s"},
    }
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "RetoolDeployment",
        "metadata": {"name": name, "annotations": dict(annotations or {})},
        "spec": merge(base, spec or {}),
    }


def create(api: client.ApiClient, namespace: str, body: Mapping[str, Any]) -> None:
    """Create a RetoolDeployment."""
    client.CustomObjectsApi(api).create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, dict(body)
    )


def get(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    """A RetoolDeployment as stored."""
    body = client.CustomObjectsApi(api).get_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, name
    )
    assert isinstance(body, dict)
    return body


def patch_spec(api: client.ApiClient, namespace: str, name: str, spec: Mapping[str, Any]) -> None:
    """Merge-patch the spec, as a GitOps tool or a person would."""
    client.CustomObjectsApi(api).patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, name, {"spec": dict(spec)}
    )


def annotate(
    api: client.ApiClient, namespace: str, name: str, annotations: Mapping[str, str]
) -> None:
    """Set annotations on a RetoolDeployment."""
    client.CustomObjectsApi(api).patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, name, {"metadata": {"annotations": dict(annotations)}}
    )


def step(api: client.ApiClient, namespace: str, name: str) -> str | None:
    """The step of the upgrade in progress (status.upgrade.step), if any."""
    status = get(api, namespace, name).get("status") or {}
    found = (status.get("upgrade") or {}).get("step")
    return str(found) if found is not None else None


def condition(body: Mapping[str, Any], kind: str) -> dict[str, Any] | None:
    """One condition of a RetoolDeployment's status."""
    for item in (body.get("status") or {}).get("conditions") or []:
        if item.get("type") == kind:
            return dict(item)
    return None


def is_ready(body: Mapping[str, Any]) -> bool:
    """Ready=True for the current generation."""
    ready = condition(body, "Ready")
    generation = body["metadata"]["generation"]
    return bool(
        ready
        and ready["status"] == "True"
        and (body.get("status") or {}).get("observedGeneration") == generation
    )


def ready_on(
    api: client.ApiClient, namespace: str, name: str, version: str
) -> dict[str, Any] | None:
    """The RetoolDeployment when it is Ready and runs VERSION, else None (for wait_for)."""
    body = get(api, namespace, name)
    current = (body.get("status") or {}).get("currentVersion")
    return body if is_ready(body) and current == version else None


def api_endpoint_ready(api: client.ApiClient, namespace: str, name: str) -> bool:
    """Whether the api Service has a ready endpoint (for wait_for)."""
    return endpoint_ready(api, namespace, f"{name}-api")


def endpoint_ready(api: client.ApiClient, namespace: str, service: str) -> bool:
    """Whether SERVICE has a ready endpoint (for wait_for)."""
    slices = client.DiscoveryV1Api(api).list_namespaced_endpoint_slice(
        namespace, label_selector=f"kubernetes.io/service-name={service}"
    )
    return any(
        endpoint.conditions and endpoint.conditions.ready
        for item in slices.items
        for endpoint in item.endpoints or []
    )


def stalled(
    api: client.ApiClient, namespace: str, name: str, reason: str | None = None
) -> dict[str, Any] | None:
    """The RetoolDeployment when Stalled=True (with REASON, if given) for its current
    generation, else None (for wait_for)."""
    body = get(api, namespace, name)
    cond = condition(body, "Stalled")
    seen = (body.get("status") or {}).get("observedGeneration") == body["metadata"]["generation"]
    if cond and cond["status"] == "True" and seen and reason in (None, cond["reason"]):
        return body
    return None


def images(api: client.ApiClient, namespace: str) -> dict[str, str]:
    """The image of every Deployment and StatefulSet in NAMESPACE, by name."""
    apps = client.AppsV1Api(api)
    workloads: list[client.V1Deployment | client.V1StatefulSet] = [
        *apps.list_namespaced_deployment(namespace).items,
        *apps.list_namespaced_stateful_set(namespace).items,
    ]
    return {
        present(present(w.metadata).name): present(
            present(w.spec.template.spec).containers[0].image
        )
        for w in workloads
    }
