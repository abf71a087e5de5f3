"""The merge of shared and per-component settings (core/settings.py), property by property."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from retool_operator.core.models import (
    Component,
    ContainerSettings,
    EnvVar,
    PodSettings,
    Probes,
    ProbeTimings,
    RetoolDeploymentSpec,
    Settings,
)
from retool_operator.core.settings import combine, effective_settings, merge_maps, merge_named
from tests.support.admission_cases import minimal_object
from tests.support.production import production_spec

# Each example builds pydantic models: no per-example deadline on a busy machine.
slow_examples = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
NAMES = st.sampled_from(["a", "b", "c", "d", "e"])
VALUES = st.integers(0, 3)


def named_items(key: str = "name") -> st.SearchStrategy[list[dict[str, Any]]]:
    """Lists of items unique by `key`, each carrying a value to tell them apart."""
    return st.lists(
        st.fixed_dictionaries({key: NAMES, "value": VALUES}),
        max_size=5,
        unique_by=lambda item: item[key],
    )


def _key(item: dict[str, Any]) -> Any:
    return item["name"]


@given(named_items(), named_items())
def test_merge_named_keeps_shared_order_and_lets_the_component_win(
    shared: list[dict[str, Any]], own: list[dict[str, Any]]
) -> None:
    merged = merge_named(shared, own, _key)
    own_by_name = {i["name"]: i for i in own}
    shared_names = [i["name"] for i in shared]
    # Names are unique, and the union of both sides.
    assert len({i["name"] for i in merged}) == len(merged)
    assert {i["name"] for i in merged} == set(shared_names) | set(own_by_name)
    # The component's item wins; a shared item it does not name is kept as it is.
    for item in merged:
        assert item == own_by_name.get(item["name"], item)
        if item["name"] not in own_by_name:
            assert item in shared
    # Shared names keep their places; the component's new names follow, in its order.
    assert [i["name"] for i in merged[: len(shared)]] == shared_names
    assert [i["name"] for i in merged[len(shared) :]] == [
        i["name"] for i in own if i["name"] not in shared_names
    ]


@given(named_items())
def test_merge_named_with_nothing_on_one_side_is_the_other(items: list[dict[str, Any]]) -> None:
    assert merge_named(items, [], _key) == items
    assert merge_named([], items, _key) == items


MAPS = st.dictionaries(NAMES, VALUES, max_size=5)


@given(st.none() | MAPS, st.none() | MAPS)
def test_merge_maps_is_key_by_key_with_the_component_winning(
    shared: dict[str, int] | None, own: dict[str, int] | None
) -> None:
    merged = merge_maps(shared, own)
    if shared is None and own is None:
        assert merged is None
        return
    assert merged is not None
    assert set(merged) == set(shared or {}) | set(own or {})
    for key, value in merged.items():
        assert value == (own or {}).get(key, (shared or {}).get(key))


TIMINGS = st.none() | st.builds(
    ProbeTimings,
    period_seconds=st.none() | st.integers(1, 9),
    timeout_seconds=st.none() | st.integers(1, 9),
    failure_threshold=st.none() | st.integers(1, 9),
)


@st.composite
def random_settings(draw: st.DrawFn) -> Settings:
    """Random settings on every kind of field: named lists, maps, objects, lists, scalars."""
    volumes = draw(named_items())
    return Settings(
        env=[EnvVar(name=i["name"].upper(), value=str(i["value"])) for i in draw(named_items())],
        env_from=draw(st.none() | st.lists(st.just({"secretRef": {"name": "s"}}), max_size=2)),
        pod=PodSettings(
            labels=draw(st.dictionaries(NAMES, NAMES, max_size=3)),
            annotations=draw(st.dictionaries(NAMES, NAMES, max_size=3)),
            node_selector=draw(st.dictionaries(NAMES, NAMES, max_size=3)),
            tolerations=draw(st.none() | st.lists(st.just({"operator": "Exists"}), max_size=2)),
            security_context=draw(st.none() | st.dictionaries(NAMES, VALUES, max_size=3)),
            termination_grace_period_seconds=draw(st.none() | st.integers(0, 900)),
            volumes=[{"name": v["name"], "emptyDir": {"sizeLimit": v["value"]}} for v in volumes],
            sidecars=[
                {"name": f"side-{i['name']}", "image": f"img:{i['value']}"}
                for i in draw(named_items())
            ],
        ),
        container=ContainerSettings(
            volume_mounts=[
                {"name": v["name"], "mountPath": f"/m/{v['name']}"}
                for v in draw(st.permutations(volumes))[: draw(st.integers(0, 2))]
            ],
            probes=draw(st.none() | st.builds(Probes, readiness=TIMINGS, liveness=TIMINGS)),
            pre_stop_sleep_seconds=draw(st.none() | st.integers(0, 60)),
        ),
    )


@slow_examples
@given(random_settings(), random_settings())
def test_combine_follows_the_rules_field_by_field(shared: Settings, own: Settings) -> None:
    merged = combine(shared, own)
    # Named lists: by name, the component winning.
    assert merged.env == merge_named(shared.env, own.env, lambda e: e.name)
    assert merged.pod.volumes == merge_named(shared.pod.volumes, own.pod.volumes, _key)
    assert merged.pod.sidecars == merge_named(shared.pod.sidecars, own.pod.sidecars, _key)
    assert merged.container.volume_mounts == merge_named(
        shared.container.volume_mounts, own.container.volume_mounts, lambda m: m["mountPath"]
    )
    # Maps and objects: key by key.
    assert merged.pod.labels == {**shared.pod.labels, **own.pod.labels}
    assert merged.pod.annotations == {**shared.pod.annotations, **own.pod.annotations}
    assert merged.pod.security_context == merge_maps(
        shared.pod.security_context, own.pod.security_context
    )
    # Other lists and scalars: the component's when it sets one (an empty list too).
    for field in ("tolerations", "termination_grace_period_seconds"):
        mine = getattr(own.pod, field)
        assert getattr(merged.pod, field) == (
            mine if mine is not None else getattr(shared.pod, field)
        )
    assert merged.env_from == (own.env_from if own.env_from is not None else shared.env_from)
    # Probes: timing by timing.
    for name in ("readiness", "liveness"):
        for field in ("period_seconds", "timeout_seconds", "failure_threshold"):
            values = [
                getattr(getattr(side.container.probes, name, None), field, None)
                for side in (own, shared)
            ]
            got = getattr(getattr(merged.container.probes, name, None), field, None)
            assert got == next((v for v in values if v is not None), None)
    sleep = own.container.pre_stop_sleep_seconds
    assert merged.container.pre_stop_sleep_seconds == (
        sleep if sleep is not None else shared.container.pre_stop_sleep_seconds
    )


@slow_examples
@given(random_settings())
def test_combine_with_empty_settings_changes_nothing(values: Settings) -> None:
    assert combine(values, Settings()).model_dump() == values.model_dump()
    assert combine(Settings(), values).model_dump() == values.model_dump()


@slow_examples
@given(random_settings(), random_settings(), random_settings())
def test_combine_is_associative(a: Settings, b: Settings, c: Settings) -> None:
    # So a later "environment" layer could sit between the shared and component ones.
    assert combine(combine(a, b), c).model_dump() == combine(a, combine(b, c)).model_dump()


def test_probe_timings_merge_one_by_one() -> None:
    shared = Settings(
        container=ContainerSettings(
            probes=Probes(readiness=ProbeTimings(period_seconds=5, failure_threshold=6))
        )
    )
    own = Settings(
        container=ContainerSettings(
            probes=Probes(
                readiness=ProbeTimings(period_seconds=3), liveness=ProbeTimings(timeout_seconds=2)
            )
        )
    )
    probes = combine(shared, own).container.probes
    assert probes is not None
    assert probes.readiness == ProbeTimings(period_seconds=3, failure_threshold=6)
    assert probes.liveness == ProbeTimings(timeout_seconds=2)


def test_production_spec_per_component() -> None:
    spec = RetoolDeploymentSpec.model_validate({**minimal_object()["spec"], **production_spec()})
    api = effective_settings(spec, Component.API)
    jobs = effective_settings(spec, Component.JOBS_RUNNER)
    worker = effective_settings(spec, Component.WORKFLOWS_WORKER)
    # env: the api's LOG_LEVEL replaces the shared one in its place.
    assert [(e.name, e.value) for e in api.env] == [
        ("COOKIE_INSECURE", "false"),
        ("LOG_LEVEL", "debug"),
    ]
    assert [(e.name, e.value) for e in jobs.env] == [
        ("COOKIE_INSECURE", "false"),
        ("LOG_LEVEL", "info"),
    ]
    # Annotations key by key.
    assert api.pod.annotations == {
        "prometheus.io/scrape": "true",
        "shared": "overridden",
        "api-only": "yes",
    }
    assert worker.pod.annotations == {"prometheus.io/scrape": "true", "shared": "yes"}
    # The api's tmp volume replaces the shared one; db-ca stays.
    assert api.pod.volumes == [
        {"name": "db-ca", "secret": {"secretName": "retool-db-ca"}},
        {"name": "tmp", "emptyDir": {"sizeLimit": "4Gi"}},
    ]
    # nodeSelector merges; an empty tolerations list clears the shared one.
    assert jobs.pod.node_selector == {
        "kubernetes.io/arch": "amd64",
        "retool.example.com/pool": "jobs",
    }
    assert jobs.pod.tolerations == []
    assert worker.pod.tolerations == production_spec()["pod"]["tolerations"]
    # The jobs-runner's own cloud-sql-proxy replaces the shared sidecar of that name.
    assert [s["args"][-1] for s in jobs.pod.sidecars] == ["project:region:jobs-instance"]
    assert api.pod.termination_grace_period_seconds == 600
    assert worker.pod.termination_grace_period_seconds is None
    assert api.container.pre_stop_sleep_seconds == 45


def test_a_disabled_component_has_no_settings() -> None:
    spec = RetoolDeploymentSpec.model_validate(minimal_object()["spec"])
    with pytest.raises(ValueError, match="not enabled"):
        effective_settings(spec, Component.CODE_EXECUTOR)
