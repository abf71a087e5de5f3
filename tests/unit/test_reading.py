"""Reading live objects: merge patches, "does live already say this?", replica-only changes."""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from retool_operator.core import reading
from tests.unit.test_builders import production_children

# JSON-like documents: the shapes the API server sends and the builders render.
scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.text("abc", max_size=3))
keys = st.sampled_from(["a", "b", "c", "d"])
documents = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(keys, children, max_size=4)
    ),
    max_leaves=12,
)
objects = st.dictionaries(keys, documents, max_size=4)


def apply_merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386, written out as the RFC's pseudo-code: what the API server does with a patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = apply_merge_patch(result.get(key), value)
    return result


def without_nulls(value: Any) -> Any:
    """A merge patch cannot set a map value to null: the RFC reads null as "remove"."""
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    return value


@given(objects, objects)
def test_merge_patch_turns_old_into_new(old: dict[str, Any], new: dict[str, Any]) -> None:
    new = without_nulls(new)
    patch = reading.merge_patch(old, new)
    assert apply_merge_patch(old, patch) == new


@given(objects)
def test_merge_patch_of_equal_documents_is_empty(document: dict[str, Any]) -> None:
    assert reading.merge_patch(document, copy.deepcopy(document)) == {}


@given(objects)
def test_a_document_is_a_subset_of_itself(document: dict[str, Any]) -> None:
    assert reading.is_subset(document, copy.deepcopy(document))


@given(objects, objects)
def test_server_additions_keep_a_subset(desired: dict[str, Any], extra: dict[str, Any]) -> None:
    # The server adds defaults beside what was applied: keys the applied document lacks.
    live = {**extra, **copy.deepcopy(desired)}
    assert reading.is_subset(desired, live)


@given(objects, keys, scalars)
def test_a_changed_value_is_not_a_subset(desired: dict[str, Any], key: str, value: Any) -> None:
    live = copy.deepcopy(desired)
    changed = {**desired, key: [value, "different"]}
    assert not reading.is_subset(changed, live) or live.get(key) == [value, "different"]


@pytest.mark.parametrize(
    ("desired", "live", "same"),
    [
        ({"cpu": "0.5"}, {"cpu": "500m"}, True),  # quantities canonicalised by the server
        ({"memory": "1Gi"}, {"memory": "1073741824"}, True),
        ({"port": 3000}, {"port": "3000"}, True),  # int-or-string
        ({"cpu": "1"}, {"cpu": "1001m"}, False),
        ({"items": [1, 2]}, {"items": [1, 2, 3]}, False),  # lists compare whole
        ({"a": {"b": 1}}, {"a": "text"}, False),
    ],
)
def test_is_subset_compares_values_by_meaning(desired: Any, live: Any, same: bool) -> None:
    assert reading.is_subset(desired, live) is same


@pytest.mark.parametrize(
    ("text", "value"),
    [("500m", Decimal("0.5")), ("1Gi", Decimal(1024**3)), ("2k", Decimal(2000)), ("1e3", 1000)],
)
def test_quantity_value(text: str, value: Decimal) -> None:
    assert reading.quantity_value(text) == value


@pytest.mark.parametrize("text", ["", "abc", "1Zi", "--1"])
def test_quantity_value_refuses_what_is_no_quantity(text: str) -> None:
    assert reading.quantity_value(text) is None


def deployment(replicas: int | None, image: str = "tryretool/backend:3.196.1") -> dict[str, Any]:
    spec: dict[str, Any] = {"template": {"spec": {"containers": [{"image": image}]}}}
    if replicas is not None:
        spec["replicas"] = replicas
    return {"kind": "Deployment", "metadata": {"name": "x-api"}, "spec": spec}


def with_server_defaults(body: dict[str, Any]) -> dict[str, Any]:
    live = copy.deepcopy(body)
    live["spec"]["revisionHistoryLimit"] = 10
    live["status"] = {"replicas": live["spec"].get("replicas", 1)}
    return live


def test_replicas_change_when_only_replicas_differ() -> None:
    live = with_server_defaults(deployment(2))
    assert reading.replicas_change(deployment(5), live) == 5


def test_no_replicas_change_when_replicas_match() -> None:
    live = with_server_defaults(deployment(2))
    assert reading.replicas_change(deployment(2), live) is None


def test_no_replicas_change_when_more_than_replicas_differ() -> None:
    live = with_server_defaults(deployment(2))
    assert reading.replicas_change(deployment(5, image="tryretool/backend:3.200.0"), live) is None


def test_no_replicas_change_without_desired_replicas() -> None:
    # An autoscaled api: the HPA owns replicas, the manifest does not say any.
    live = with_server_defaults(deployment(2))
    assert reading.replicas_change(deployment(None), live) is None


def test_no_replicas_change_for_a_statefulset() -> None:
    desired = {**deployment(1), "kind": "StatefulSet"}
    live = with_server_defaults({**deployment(0), "kind": "StatefulSet"})
    assert reading.replicas_change(desired, live) is None


@given(st.integers(0, 50), st.integers(0, 50))
def test_replicas_change_says_the_wanted_count(wanted: int, current: int) -> None:
    change = reading.replicas_change(deployment(wanted), with_server_defaults(deployment(current)))
    assert change == (wanted if wanted != current else None)


def test_compact_children_keep_every_field_a_manifest_sets() -> None:
    # Otherwise the comparison never finds the live child current, and it is applied forever.
    for manifest in production_children():
        live = {**manifest, "metadata": {**manifest["metadata"], "managedFields": [{}]}}
        assert reading.is_subset(manifest, reading.compact_object(live)), manifest["kind"]
