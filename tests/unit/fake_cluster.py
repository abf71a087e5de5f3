"""A fake of the operator's own Kubernetes wrapper (`cluster.kube.Cluster`), for the real
reconcile path in unit tests.

It keeps objects in memory with resourceVersions and generations, answers the status patch
with 409 when the resourceVersion is stale, and plays the controllers at their fastest: a
Deployment or StatefulSet that is applied or scaled is at once rolled out, with Ready pods of
its template's image. Faults are queued per verb (`fail`). `view()` is what the watches would
hold; `lagging_view()` is a watch that has not delivered anything since it was taken.
"""

from __future__ import annotations

import copy
import itertools
import threading
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from retool_operator.cluster.kube import ConflictError
from retool_operator.core.models import API_VERSION, KIND
from retool_operator.core.observed import DatabaseProbe
from retool_operator.core.statemachine import EventRecord
from retool_operator.database.probe import Target
from retool_operator.runtime.ports import Body, Key
from retool_operator.runtime.reconcile import View

NAMESPACE, NAME = "shop", "retool"
KEY: Key = (NAMESPACE, NAME)
SECRETS = {
    "retool-db": {"password": "hunter2"},
    "retool-secrets": {"license-key": "license", "encryption-key": "encryption"},
}
SPEC = {
    "version": "3.148.0-stable",
    "database": {"host": "db", "passwordSecretRef": {"name": "retool-db", "key": "password"}},
    "secretRef": {"name": "retool-secrets"},
}
ChildId = tuple[str, str]  # (kind, name)


def reachable_database(target: Target, now: datetime, /) -> DatabaseProbe:
    """A probe of a healthy PostgreSQL 15 (no connection made)."""
    return DatabaseProbe(
        checked_at=now,
        reachable=True,
        server_version="15.4",
        server_version_num=150004,
        migrations_applied=100,
        blocked_queries=0,
    )


def _merge(target: dict[str, Any], patch: Mapping[str, Any]) -> None:
    """RFC 7386 JSON merge patch, in place."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


class FakeCluster:
    """The calls of `runtime.ports.KubeApi`, on an in-memory cluster of one namespace."""

    def __init__(self, spec: Mapping[str, Any] = SPEC) -> None:
        self._versions = itertools.count(1)
        self._lock = threading.Lock()
        self.secrets: dict[str, dict[str, str]] = copy.deepcopy(SECRETS)
        self.children: dict[ChildId, Body] = {}
        self.pods: dict[str, Body] = {}
        self.events: list[EventRecord] = []
        self.writes: list[tuple[str, str]] = []  # (verb, kind or object name)
        self.calls: Counter[str] = Counter()
        self.failures: dict[str, list[Exception]] = {}
        # Called (in the calling thread) at the start of each call, by verb: to hold a call.
        self.on_call: dict[str, Any] = {}
        # Resources (plurals) the fake API server does not serve, as a cluster without a CRD.
        self.unserved: set[str] = set()
        self.retool_deployment: Body = {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "metadata": {
                "name": NAME,
                "namespace": NAMESPACE,
                "uid": "uid-1",
                "generation": 1,
                "resourceVersion": self._next(),
            },
            "spec": copy.deepcopy(dict(spec)),
            "status": {},
        }

    def _next(self) -> str:
        return str(next(self._versions))

    def _enter(self, verb: str) -> None:
        self.calls[verb] += 1
        hook = self.on_call.get(verb)
        if hook is not None:
            hook()
        pending = self.failures.get(verb)
        if pending:
            raise pending.pop(0)

    def fail(self, verb: str, *errors: Exception) -> None:
        """Make the next calls of VERB raise ERRORS, one each."""
        self.failures.setdefault(verb, []).extend(errors)

    # --- what a person or GitOps does --------------------------------------------------------

    def edit_spec(self, **changes: Any) -> None:
        """Change the spec, as `kubectl apply` would (generation and resourceVersion move)."""
        with self._lock:
            metadata = self.retool_deployment["metadata"]
            self.retool_deployment["spec"].update(changes)
            metadata["generation"] += 1
            metadata["resourceVersion"] = self._next()

    # --- the watches -------------------------------------------------------------------------

    def view(self) -> View:
        """The watches, up to date."""
        return View(
            retool_deployment=lambda key: copy.deepcopy(self.retool_deployment),
            children=lambda key: copy.deepcopy(list(self.children.values())),
            pods=lambda key: copy.deepcopy(list(self.pods.values())),
        )

    def lagging_view(self) -> View:
        """The watches as they are now, delivering nothing more (a watch that lags)."""
        body = copy.deepcopy(self.retool_deployment)
        children = copy.deepcopy(list(self.children.values()))
        pods = copy.deepcopy(list(self.pods.values()))
        return View(
            retool_deployment=lambda key: copy.deepcopy(body),
            children=lambda key: copy.deepcopy(children),
            pods=lambda key: copy.deepcopy(pods),
        )

    # --- runtime.ports.KubeApi ---------------------------------------------------------------

    def apply(self, manifest: Mapping[str, Any]) -> str:
        self._enter("apply")
        with self._lock:
            child = (manifest["kind"], manifest["metadata"]["name"])
            self.writes.append(("apply", child[0]))
            current = self.children.get(child)
            body = copy.deepcopy(dict(manifest))
            generation = 1
            if current is not None:
                same = current.get("spec") == body.get("spec")
                generation = current["metadata"]["generation"] + (0 if same else 1)
            body["metadata"].update(generation=generation, resourceVersion=self._next())
            self.children[child] = body
            self._roll_out(body)
            return str(body["metadata"]["resourceVersion"])

    def scale_deployment(self, namespace: str, name: str, replicas: int) -> str:
        self._enter("scale")
        with self._lock:
            self.writes.append(("scale", name))
            body = self.children[("Deployment", name)]
            body["spec"]["replicas"] = replicas
            body["metadata"]["generation"] += 1
            body["metadata"]["resourceVersion"] = self._next()
            self._roll_out(body)
            return str(body["metadata"]["resourceVersion"])

    def delete(self, kind: str, namespace: str, name: str) -> None:
        self._enter("delete")
        with self._lock:
            self.writes.append(("delete", kind))
            self.children.pop((kind, name), None)

    def delete_pod(self, namespace: str, name: str) -> None:
        self._enter("delete-pod")
        with self._lock:
            self.writes.append(("delete-pod", name))
            self.pods.pop(name, None)

    def read_secret(self, namespace: str, name: str) -> dict[str, str] | None:
        self._enter("read-secret")
        found = self.secrets.get(name)
        return dict(found) if found is not None else None

    def serves(self, api_version: str, plural: str) -> bool:
        self._enter("discovery")
        return plural not in self.unserved

    def read_retool_deployment(self, namespace: str, name: str) -> dict[str, Any] | None:
        self._enter("read")
        with self._lock:
            return copy.deepcopy(self.retool_deployment)

    def patch_status(
        self, namespace: str, name: str, resource_version: str, status_patch: Mapping[str, Any]
    ) -> dict[str, Any]:
        self._enter("patch-status")
        with self._lock:
            metadata = self.retool_deployment["metadata"]
            if resource_version != metadata["resourceVersion"]:
                raise ConflictError(name)
            self.writes.append(("patch-status", name))
            _merge(self.retool_deployment.setdefault("status", {}), status_patch)
            metadata["resourceVersion"] = self._next()
            return copy.deepcopy(self.retool_deployment)

    def post_event(self, owner: Mapping[str, Any], event: EventRecord, now: datetime) -> None:
        self._enter("event")
        with self._lock:
            self.events.append(event)

    # --- the controllers, at their fastest ---------------------------------------------------

    def _roll_out(self, workload: Body) -> None:
        if workload["kind"] not in {"Deployment", "StatefulSet"}:
            return
        name = workload["metadata"]["name"]
        spec = workload["spec"]
        replicas = int(spec.get("replicas", 1))
        template = spec["template"]
        for pod in [p for p, body in self.pods.items() if body["owner"] == name]:
            del self.pods[pod]
        for index in range(replicas):
            pod = f"{name}-{index}"
            self.pods[pod] = {
                "owner": name,
                "metadata": {
                    "name": pod,
                    "namespace": NAMESPACE,
                    "labels": dict(template["metadata"]["labels"]),
                    "creationTimestamp": datetime.now(UTC).isoformat(),
                },
                "spec": copy.deepcopy(template["spec"]),
                "status": {"conditions": [{"type": "Ready", "status": "True"}]},
            }
        workload["status"] = {
            "observedGeneration": workload["metadata"]["generation"],
            "replicas": replicas,
            "readyReplicas": replicas,
            "updatedReplicas": replicas,
            "currentRevision": "r",
            "updateRevision": "r",
        }
