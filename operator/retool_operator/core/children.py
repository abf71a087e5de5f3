"""From a decision's plan to the children: what to apply, what to scale, what to remove.

The state machine decides versions and replica counts per component; this module turns that
into child changes. Two rules live here. An autoscaled api's replica count belongs to its
HorizontalPodAutoscaler, so the manifest never claims the field and a count the plan does set
(0 to stop it, or a restart from 0) goes through the scale subresource. And a child the spec no
longer asks for (a disabled component, a dropped PodDisruptionBudget, HPA, Ingress or HTTPRoute,
a ServiceAccount it no longer creates) is removed, but only if this RetoolDeployment owns it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from retool_operator.core import builders, naming
from retool_operator.core.builders import Manifest, WorkloadPlan
from retool_operator.core.models import Component, RetoolDeploymentSpec

ChildKey = tuple[str, str]  # (kind, name)


@dataclasses.dataclass(frozen=True)
class PlannedChildren:
    """The manifests a plan calls for, and the autoscaled api's count to set by scaling."""

    manifests: tuple[Manifest, ...]
    api_scale: int | None = None


def planned_children(
    owner: naming.Owner,
    spec: RetoolDeploymentSpec,
    plan: Mapping[Component, WorkloadPlan],
    absent_kinds: frozenset[str] = frozenset(),
) -> PlannedChildren:
    """Every child of PLAN; the api's replicas split off to the scale subresource when an HPA
    owns them. Kinds the cluster does not serve are left out (a condition says so)."""
    plan = dict(plan)
    api_scale: int | None = None
    api = plan.get(Component.API)
    if api is not None and spec.api.autoscaling is not None and api.replicas is not None:
        api_scale = api.replicas
        plan[Component.API] = WorkloadPlan(api.version, None)
    manifests = [
        manifest
        for manifest in builders.desired_children(owner, spec, plan)
        if manifest["kind"] not in absent_kinds
    ]
    return PlannedChildren(tuple(manifests), api_scale)


def _unwanted_candidates(
    name: str, spec: RetoolDeploymentSpec, live: Mapping[ChildKey, Mapping[str, Any]]
) -> list[ChildKey]:
    """Children the spec no longer asks for, owned or not."""
    candidates = [
        (kind, naming.workload_name(name, c))
        for c in builders.OPTIONAL_COMPONENTS
        if getattr(spec, c.field) is None
        for kind in ("Deployment", "Service")
        if kind == "Deployment" or builders.has_service(c)
    ]
    for component in (Component.API, *builders.OPTIONAL_COMPONENTS):
        section = getattr(spec, component.field)
        if section is None or section.pod_disruption_budget is None:
            candidates.append(
                ("PodDisruptionBudget", naming.pod_disruption_budget_name(name, component))
            )
    if spec.api.autoscaling is None:
        candidates.append(("HorizontalPodAutoscaler", naming.horizontal_pod_autoscaler_name(name)))
    if spec.ingress is None:
        candidates.append(("Ingress", naming.route_name(name)))
    if spec.http_route is None:
        candidates.append(("HTTPRoute", naming.route_name(name)))
    # A ServiceAccount it made under another name, or any once the spec names an existing one.
    account = (spec.service_account.name or name) if spec.service_account.create else None
    candidates += [key for key in live if key[0] == "ServiceAccount" and key[1] != account]
    return candidates


def unwanted_children(
    name: str, spec: RetoolDeploymentSpec, live: Mapping[ChildKey, Mapping[str, Any]], uid: str
) -> list[ChildKey]:
    """Live children the spec no longer asks for and that the RetoolDeployment UID owns."""
    unwanted = []
    for key in _unwanted_candidates(name, spec, live):
        child = live.get(key)
        owners = (child or {}).get("metadata", {}).get("ownerReferences") or []
        if child is not None and any(o.get("uid") == uid for o in owners):
            unwanted.append(key)
    return unwanted
