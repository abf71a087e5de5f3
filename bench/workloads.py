"""What the bench creates: RetoolDeployments (through the tests' helpers), their Secrets, and the
peer workloads, the same children rendered by the operator's own builders but created directly,
with no owner and no operator label, so that only Kubernetes' controllers act on them."""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from kubernetes import client

from bench.kube import Body, WatchEvent, raw
from retool_operator.core import builders, naming
from retool_operator.core.builders import WorkloadPlan
from retool_operator.core.models import Component, RetoolDeploymentSpec
from retool_operator.core.naming import Owner
from tests.support import retool
from tests.support.pgserver import PostgresServer

VERSION = "3.196.1-stable"
NEW_VERSION = "3.200.0-stable"
PEER_MANAGER = "retool-bench-peer"
MERGE = "application/merge-patch+json"
READY_DELAY = "pod-ready.stage.kwok.x-k8s.io/delay"


def create_secrets(api: client.ApiClient, namespace: str, db: PostgresServer) -> None:
    """The two Secrets every RetoolDeployment of the bench references."""
    retool.create_secrets(api, namespace, db)


def rtd(
    name: str, db: PostgresServer, spec: Mapping[str, Any] | None = None, version: str = VERSION
) -> Body:
    """A RetoolDeployment pointing at the bench's database."""
    return retool.manifest(name, version, db, spec)


def create_rtd(api: client.ApiClient, namespace: str, body: Body) -> None:
    """Create one RetoolDeployment."""
    client.CustomObjectsApi(api).create_namespaced_custom_object(
        retool.GROUP, retool.VERSION, namespace, retool.PLURAL, body, _preload_content=False
    )


def get_rtd(api: client.ApiClient, namespace: str, name: str) -> Body:
    """One RetoolDeployment as stored."""
    return raw(
        client.CustomObjectsApi(api).get_namespaced_custom_object(
            retool.GROUP, retool.VERSION, namespace, retool.PLURAL, name, _preload_content=False
        )
    )


def patch_rtd_spec(api: client.ApiClient, namespace: str, name: str, spec: Body) -> None:
    """Merge-patch a RetoolDeployment's spec."""
    client.CustomObjectsApi(api).patch_namespaced_custom_object(
        retool.GROUP,
        retool.VERSION,
        namespace,
        retool.PLURAL,
        name,
        {"spec": spec},
        _content_type=MERGE,
        _preload_content=False,
    )


def rtd_ready(body: Mapping[str, Any]) -> bool:
    """Ready=True for the current generation (what `kubectl wait --for=condition=Ready` waits
    for, plus observedGeneration)."""
    return retool.is_ready(body)


def peer_children(name: str, namespace: str, db: PostgresServer, api_replicas: int) -> list[Body]:
    """The children the operator would make for a RetoolDeployment NAME, as plain objects: the
    ServiceAccount, the jobs-runner StatefulSet and its headless Service, the api Deployment and
    the api Service."""
    spec = RetoolDeploymentSpec.model_validate(
        retool.manifest(name, VERSION, db, {"api": {"replicas": api_replicas}})["spec"]
    )
    owner = Owner(
        api_version=f"{retool.GROUP}/{retool.VERSION}",
        kind="RetoolDeployment",
        name=name,
        namespace=namespace,
        uid="00000000-0000-0000-0000-000000000000",
    )
    plan = {
        Component.JOBS_RUNNER: WorkloadPlan(VERSION, 1),
        Component.API: WorkloadPlan(VERSION, api_replicas),
    }
    children = []
    for manifest in builders.desired_children(owner, spec, plan):
        body = copy.deepcopy(manifest)
        metadata = body["metadata"]
        metadata.pop("ownerReferences", None)  # no owner: the garbage collector would delete it
        metadata["labels"][naming.LABEL_MANAGED_BY] = PEER_MANAGER
        template = body.get("spec", {}).get("template")
        if template is not None:
            template["metadata"]["labels"][naming.LABEL_MANAGED_BY] = PEER_MANAGER
        children.append(body)
    return children


def create_child(api: client.ApiClient, body: Any) -> None:
    """POST one peer child (Deployment, StatefulSet, Service or ServiceAccount)."""
    namespace = body["metadata"]["namespace"]
    kind = body["kind"]
    if kind == "Deployment":
        client.AppsV1Api(api).create_namespaced_deployment(namespace, body, _preload_content=False)
    elif kind == "StatefulSet":
        client.AppsV1Api(api).create_namespaced_stateful_set(
            namespace, body, _preload_content=False
        )
    elif kind == "Service":
        client.CoreV1Api(api).create_namespaced_service(namespace, body, _preload_content=False)
    elif kind == "ServiceAccount":
        client.CoreV1Api(api).create_namespaced_service_account(
            namespace, body, _preload_content=False
        )
    else:
        raise ValueError(f"no peer child of kind {kind}")


def deployment_settled(body: Mapping[str, Any]) -> bool:
    """The Deployment controller caught up and every replica is updated, ready and available."""
    spec, status = body.get("spec") or {}, body.get("status") or {}
    replicas = spec.get("replicas", 1)
    return bool(
        status.get("observedGeneration", 0) >= body["metadata"].get("generation", 0)
        and status.get("replicas", 0) == replicas
        and status.get("readyReplicas", 0) == replicas
        and status.get("updatedReplicas", 0) == replicas
        and status.get("availableReplicas", 0) == replicas
    )


def statefulset_ready(body: Mapping[str, Any]) -> bool:
    """The StatefulSet controller caught up and every replica is ready."""
    spec, status = body.get("spec") or {}, body.get("status") or {}
    replicas = spec.get("replicas", 1)
    return bool(
        status.get("observedGeneration", 0) >= body["metadata"].get("generation", 0)
        and status.get("readyReplicas", 0) == replicas
        and status.get("replicas", 0) == replicas
    )


class ReadySet:
    """Counts objects for which READY holds, from watch events; records when each first did."""

    def __init__(self, ready: Callable[[Mapping[str, Any]], bool]) -> None:
        self._ready = ready
        self._cond = threading.Condition()
        self.first_ready: dict[str, float] = {}  # name -> monotonic
        self.seen: set[str] = set()

    def on_event(self, event: WatchEvent) -> None:
        """Watch callback."""
        name = event.object["metadata"]["name"]
        with self._cond:
            self.seen.add(name)
            if (
                name not in self.first_ready
                and event.type != "DELETED"
                and self._ready(event.object)
            ):
                self.first_ready[name] = event.monotonic
                self._cond.notify_all()

    def wait(self, count: int, timeout: float) -> float:
        """Block until COUNT objects have been ready; the monotonic time the last one was."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.first_ready) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"{len(self.first_ready)} of {count} ready after {timeout:.0f}s"
                    )
                self._cond.wait(min(left, 1.0))
            return sorted(self.first_ready.values())[count - 1]
