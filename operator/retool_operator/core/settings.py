"""The effective settings of one component: the shared ones (spec) combined with its own.

A RetoolDeployment states env, envFrom, pod and container settings once for all components and
once per component (docs/design.md, "Settings"). The component's value wins, field by field:

- maps (labels, annotations, nodeSelector) and objects (securityContext, affinity, probes) merge
  key by key, the component's key replacing the shared one; probes merge one level deeper, timing
  by timing, since each probe is itself a map of timings;
- lists of named items (env, volumes, initContainers, sidecars) merge by name, and volumeMounts by
  mountPath, the key Kubernetes itself merges them by (one volume may be mounted at several
  paths): a component's item replaces the shared item of the same key in place, new items follow
  the shared ones in the component's order;
- other lists (tolerations, envFrom, hostAliases, topologySpreadConstraints) and scalars are
  replaced whole by the component's value when it sets one.

`effective_settings` is pure; the builders render pods from its result only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from retool_operator.core.models import (
    Component,
    ComponentSpec,
    ContainerSettings,
    EnvVar,
    PodSettings,
    Probes,
    ProbeTimings,
    RetoolDeploymentSpec,
    Settings,
)

T = TypeVar("T")
JsonObject = dict[str, Any]

# Fields that are lists of named items, by the key their items merge on.
NAMED_LISTS: dict[str, str] = {
    "env": "name",
    "volumes": "name",
    "init_containers": "name",
    "sidecars": "name",
    "volume_mounts": "mountPath",
}
# Fields that are maps or objects and merge key by key.
KEYED_MAPS = frozenset({"labels", "annotations", "node_selector", "security_context", "affinity"})


def merge_named(shared: Iterable[T], own: Iterable[T], key: Callable[[T], Any]) -> list[T]:
    """Shared items with the component's same-keyed ones in their place, then the new ones."""
    own = list(own)
    by_key = {key(item): item for item in own}
    merged = [by_key.pop(key(item), item) for item in shared]
    return merged + [item for item in own if key(item) in by_key]


def merge_maps(shared: dict[str, Any] | None, own: dict[str, Any] | None) -> dict[str, Any] | None:
    """Key by key, the component's keys winning; None when neither is set."""
    if shared is None and own is None:
        return None
    return {**(shared or {}), **(own or {})}


def _item_key(field: str) -> Callable[[Any], Any]:
    name = NAMED_LISTS[field]
    return lambda item: item.name if isinstance(item, EnvVar) else item.get(name)


def _merge_probes(shared: Probes | None, own: Probes | None) -> Probes | None:
    if shared is None or own is None:
        return own or shared
    merged: dict[str, ProbeTimings | None] = {}
    for name in Probes.model_fields:
        a: ProbeTimings | None = getattr(shared, name)
        b: ProbeTimings | None = getattr(own, name)
        if a is None or b is None:
            merged[name] = b or a
        else:
            merged[name] = a.model_copy(update=b.model_dump(exclude_none=True))
    return Probes(**merged)


ModelT = TypeVar("ModelT", PodSettings, ContainerSettings)


def _merge_model(shared: ModelT, own: ModelT) -> ModelT:
    """`own` over `shared`, field by field, by the rules of this module."""
    values: dict[str, Any] = {}
    for name in type(shared).model_fields:
        a, b = getattr(shared, name), getattr(own, name)
        if name in NAMED_LISTS:
            values[name] = merge_named(a, b, _item_key(name))
        elif name in KEYED_MAPS:
            merged = merge_maps(a, b)
            values[name] = {} if merged is None and isinstance(a, dict) else merged
        elif name == "probes":
            values[name] = _merge_probes(a, b)
        else:
            values[name] = b if b is not None else a
    return type(shared).model_construct(**values)


def combine(shared: Settings, own: Settings) -> Settings:
    """The settings of a component whose own settings are `own`."""
    return Settings.model_construct(
        env=merge_named(shared.env, own.env, _item_key("env")),
        env_from=own.env_from if own.env_from is not None else shared.env_from,
        pod=_merge_model(shared.pod, own.pod),
        container=_merge_model(shared.container, own.container),
    )


def effective_settings(spec: RetoolDeploymentSpec, component: Component) -> Settings:
    """The settings the pods of `component` get; ValueError when it is not enabled."""
    section: ComponentSpec | None = getattr(spec, component.field)
    if section is None:
        raise ValueError(f"component {component.value} is not enabled in the spec")
    return combine(spec, section)
