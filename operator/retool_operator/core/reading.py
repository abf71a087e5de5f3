"""Reading Kubernetes objects: children into observations, and "does live already say this?".

Pure functions over the JSON the API server returns; the I/O layer feeds them what its watches
keep, so a reconcile needs no extra GET and a quiet reconcile sends no write.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from retool_operator.core import naming
from retool_operator.core.models import Component
from retool_operator.core.observed import PodObservation, Snapshot, WorkloadObservation

Body = Mapping[str, Any]

# Kinds whose objects hold a component's pods.
WORKLOAD_KINDS = frozenset({"Deployment", "StatefulSet"})


def image_tag(image: str) -> str | None:
    """The tag of an image reference (`repo:tag` or `repo:tag@sha256:...`), if any."""
    ref = image.split("@", 1)[0]
    name, _, tag = ref.rpartition(":")
    if not name or "/" in tag:
        return None
    return tag


def _first_image(pod_spec: Mapping[str, Any]) -> str | None:
    containers = pod_spec.get("containers") or []
    return containers[0].get("image") if containers else None


def component_of(body: Body) -> Component | None:
    """The component an object belongs to, from its `app.kubernetes.io/component` label."""
    value = ((body.get("metadata") or {}).get("labels") or {}).get(naming.LABEL_COMPONENT)
    try:
        return Component(value) if value else None
    except ValueError:
        return None


def read_pod(body: Body) -> PodObservation:
    """A pod's name, version (its image tag), readiness and why it is waiting, if it is."""
    metadata = body.get("metadata") or {}
    status = body.get("status") or {}
    image = _first_image(body.get("spec") or {})
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )
    waiting_reason, restarts = None, 0
    for container in status.get("containerStatuses") or []:
        restarts = max(restarts, int(container.get("restartCount") or 0))
        waiting = (container.get("state") or {}).get("waiting")
        if waiting and waiting.get("reason"):
            waiting_reason = waiting["reason"]
    return PodObservation(
        name=str(metadata.get("name", "")),
        version=image_tag(image) if image else None,
        ready=ready,
        terminating=metadata.get("deletionTimestamp") is not None,
        waiting_reason=waiting_reason,
        restarts=restarts,
    )


def read_workload(body: Body, pods: Iterable[PodObservation]) -> WorkloadObservation:
    """A Deployment or StatefulSet as the state machine sees it."""
    metadata = body.get("metadata") or {}
    spec = body.get("spec") or {}
    status = body.get("status") or {}
    image = _first_image(((spec.get("template") or {}).get("spec")) or {})
    generation = int(metadata.get("generation") or 0)
    revision_current = True
    if body.get("kind") == "StatefulSet":
        revision_current = status.get("currentRevision") == status.get("updateRevision")
    return WorkloadObservation(
        version=image_tag(image) if image else None,
        spec_replicas=int(spec.get("replicas", 1)),
        replicas=int(status.get("replicas") or 0),
        ready_replicas=int(status.get("readyReplicas") or 0),
        updated_replicas=int(status.get("updatedReplicas") or 0),
        generation_observed=int(status.get("observedGeneration") or 0) >= generation,
        revision_current=revision_current,
        pods=tuple(sorted(pods, key=lambda p: p.name)),
    )


def snapshot(
    workloads: Iterable[Body],
    pods: Iterable[Body],
    missing_secrets: Iterable[str] = (),
    absent_kinds: frozenset[str] = frozenset(),
) -> Snapshot:
    """One RetoolDeployment's snapshot from its workloads and pods (as watched)."""
    pods_by_component: dict[Component, list[PodObservation]] = {}
    for pod in pods:
        component = component_of(pod)
        if component is not None:
            pods_by_component.setdefault(component, []).append(read_pod(pod))
    observed = {}
    for workload in workloads:
        component = component_of(workload)
        if component is not None and workload.get("kind") in WORKLOAD_KINDS:
            observed[component] = read_workload(workload, pods_by_component.get(component, ()))
    return Snapshot(
        workloads=observed, missing_secrets=tuple(missing_secrets), absent_kinds=absent_kinds
    )


# --- desired is a subset of live ---------------------------------------------------------------

_QUANTITY = re.compile(r"^([+-]?[0-9.]+)([eE][+-]?[0-9]+|[a-zA-Z]*)$")
_SUFFIXES = {
    "": Decimal(1),
    "m": Decimal("0.001"),
    "k": Decimal(10) ** 3,
    "M": Decimal(10) ** 6,
    "G": Decimal(10) ** 9,
    "T": Decimal(10) ** 12,
    "P": Decimal(10) ** 15,
    "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10,
    "Mi": Decimal(2) ** 20,
    "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50,
    "Ei": Decimal(2) ** 60,
}


def quantity_value(text: str) -> Decimal | None:
    """The number a Kubernetes quantity stands for (`500m` -> 0.5, `1Gi` -> 1073741824)."""
    match = _QUANTITY.match(text.strip())
    if not match:
        return None
    number, suffix = match.groups()
    try:
        value = Decimal(number)
        if suffix[:1] in {"e", "E"}:
            return value * Decimal(10) ** int(suffix[1:])
        return value * _SUFFIXES[suffix]
    except (InvalidOperation, KeyError):
        return None


def _same_scalar(desired: object, live: object) -> bool:
    if desired == live:
        return True
    # The server stores ints it was given as strings in int-or-string fields, and canonicalises
    # quantities (`0.5` -> `500m`): compare such values by what they mean.
    if isinstance(desired, (int, str)) and isinstance(live, (int, str)):
        if str(desired) == str(live):
            return True
        left, right = quantity_value(str(desired)), quantity_value(str(live))
        return left is not None and left == right
    return False


def is_subset(desired: object, live: object) -> bool:
    """True when LIVE already says everything DESIRED says (server defaults may add more).

    Maps: every desired key is in live with a matching value. Lists: same length, items match
    in order (the builders write lists in a stable order, the server keeps it).
    """
    if isinstance(desired, Mapping):
        if not isinstance(live, Mapping):
            return False
        return all(key in live and is_subset(value, live[key]) for key, value in desired.items())
    if isinstance(desired, list):
        if not isinstance(live, list) or len(desired) != len(live):
            return False
        return all(is_subset(d, v) for d, v in zip(desired, live, strict=True))
    return _same_scalar(desired, live)


def replicas_change(desired: Mapping[str, Any], live: Mapping[str, Any]) -> int | None:
    """The replica count to set when that is all a live Deployment lacks, else None.

    A replica change is the commonest edit; sent through the scale subresource it is a few
    bytes for the API server to merge instead of a whole server-side apply.
    """
    wanted = (desired.get("spec") or {}).get("replicas")
    live_spec = live.get("spec") or {}
    if desired.get("kind") != "Deployment" or wanted is None or live_spec.get("replicas") == wanted:
        return None
    rest = {**desired, "spec": {k: v for k, v in desired["spec"].items() if k != "replicas"}}
    return int(wanted) if is_subset(rest, live) else None


def changes_rollout(desired: Mapping[str, Any], live: Mapping[str, Any] | None) -> bool:
    """Whether writing DESIRED over LIVE creates a workload or changes an image or a replica
    count: the writes that must never come from a stale view (they could undo an upgrade)."""
    if desired.get("kind") not in {"Deployment", "StatefulSet"}:
        return False
    if live is None:
        return True
    return _rollout_shape(desired) != _rollout_shape(live)


def _rollout_shape(workload: Mapping[str, Any]) -> tuple[object, ...]:
    spec = workload.get("spec") or {}
    pod = (spec.get("template") or {}).get("spec") or {}
    containers = [*(pod.get("initContainers") or []), *(pod.get("containers") or [])]
    return (spec.get("replicas"), tuple(c.get("image") for c in containers))


def merge_patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON merge patch (RFC 7386) that turns OLD into NEW; empty when they are equal."""
    patch: dict[str, Any] = {}
    for key in old.keys() - new.keys():
        patch[key] = None
    for key, value in new.items():
        before = old.get(key)
        if isinstance(value, Mapping) and isinstance(before, Mapping):
            nested = merge_patch(before, value)
            if nested:
                patch[key] = nested
        elif key not in old or before != value:
            patch[key] = value
    return patch


# --- what the watches keep ---------------------------------------------------------------------

_KEPT_METADATA = (
    "name",
    "namespace",
    "uid",
    "generation",
    "resourceVersion",
    "labels",
    "annotations",
    "ownerReferences",
    "deletionTimestamp",
)


def _metadata(body: Body) -> dict[str, Any]:
    metadata = body.get("metadata") or {}
    return {key: metadata[key] for key in _KEPT_METADATA if key in metadata}


# Top-level fields a child manifest may set and the comparison must see (a ServiceAccount's
# automountServiceAccountToken sits beside metadata, not under a spec).
_KEPT_FIELDS = ("apiVersion", "kind", "spec", "status", "automountServiceAccountToken")


def compact_object(body: Body) -> dict[str, Any]:
    """A RetoolDeployment or child as kept in memory: without managedFields and other bulk."""
    kept = {key: body[key] for key in _KEPT_FIELDS if key in body}
    kept["metadata"] = _metadata(body)
    return kept


def compact_pod(body: Body) -> dict[str, Any]:
    """A pod reduced to what `read_pod` and `component_of` read."""
    spec = body.get("spec") or {}
    status = body.get("status") or {}
    containers = spec.get("containers") or []
    return {
        "kind": "Pod",
        "metadata": _metadata(body),
        "spec": {"containers": [{"image": c.get("image")} for c in containers[:1]]},
        "status": {
            "conditions": [
                {"type": c.get("type"), "status": c.get("status")}
                for c in status.get("conditions") or []
                if c.get("type") == "Ready"
            ],
            "containerStatuses": [
                {"restartCount": c.get("restartCount", 0), "state": c.get("state") or {}}
                for c in status.get("containerStatuses") or []
            ],
        },
    }
