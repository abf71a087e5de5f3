"""Child names, labels and owner references."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from retool_operator.core import naming
from retool_operator.core.models import API_VERSION, KIND, VERSION_PATTERN, Component
from retool_operator.core.naming import Owner

LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")


@pytest.mark.parametrize(
    ("component", "name"),
    [
        (Component.API, "acme-api"),
        (Component.JOBS_RUNNER, "acme-jobs-runner"),
        (Component.WORKFLOWS_BACKEND, "acme-workflows-backend"),
        (Component.WORKFLOWS_WORKER, "acme-workflows-worker"),
        (Component.CODE_EXECUTOR, "acme-code-executor"),
    ],
)
def test_workload_names(component: Component, name: str) -> None:
    assert naming.workload_name("acme", component) == name


def test_api_satellite_names() -> None:
    assert naming.service_name("acme") == "acme-api"
    assert naming.pod_disruption_budget_name("acme") == "acme-api"
    assert naming.horizontal_pod_autoscaler_name("acme") == "acme-api"
    assert naming.jobs_runner_service_name("acme") == "acme-jobs-runner"


def test_field_manager() -> None:
    assert naming.FIELD_MANAGER == "retool-operator"


def test_labels_are_the_five_of_the_design() -> None:
    assert naming.labels("acme", Component.JOBS_RUNNER, "3.196.1-stable") == {
        "app.kubernetes.io/name": "retool",
        "app.kubernetes.io/instance": "acme",
        "app.kubernetes.io/component": "jobs-runner",
        "app.kubernetes.io/managed-by": "retool-operator",
        "app.kubernetes.io/version": "3.196.1-stable",
    }


@pytest.mark.parametrize("component", list(Component))
def test_selector_labels_are_the_labels_without_version_or_manager(component: Component) -> None:
    selector = naming.selector_labels("acme", component)
    assert selector == {
        "app.kubernetes.io/name": "retool",
        "app.kubernetes.io/instance": "acme",
        "app.kubernetes.io/component": component.value,
    }
    assert selector.items() <= naming.labels("acme", component, "3.1.0").items()


def test_labels_return_fresh_dicts() -> None:
    first = naming.labels("acme", Component.API, "3.1.0")
    first["extra"] = "x"
    assert "extra" not in naming.labels("acme", Component.API, "3.1.0")


@pytest.mark.parametrize(
    ("version", "label"),
    [
        ("3.196.1-stable", "3.196.1-stable"),
        ("3.196.1-edge.", "3.196.1-edge"),
        ("3.196.1-a--", "3.196.1-a"),
        ("3.196.1-" + "x" * 100, ("3.196.1-" + "x" * 100)[:63]),
        ("3.196.1-" + "x" * 54 + "-y", "3.196.1-" + "x" * 54),
    ],
)
def test_version_label_value(version: str, label: str) -> None:
    assert naming.version_label_value(version) == label


@given(st.from_regex(VERSION_PATTERN, fullmatch=True))
def test_version_label_value_is_always_a_valid_label_value(version: str) -> None:
    label = naming.version_label_value(version)
    assert len(label) <= 63
    assert LABEL_VALUE.fullmatch(label)
    assert version.startswith(label)


def test_longest_instance_name_keeps_statefulset_labels_valid() -> None:
    assert naming.MAX_INSTANCE_NAME_LENGTH == 40
    revision_label = naming.workload_name("x" * 40, Component.JOBS_RUNNER) + "-" + "h" * 10
    assert len(revision_label) == 63


def test_owner_reference_is_a_blocking_controller_reference() -> None:
    owner = Owner(API_VERSION, KIND, "acme", "apps", "uid-1")
    assert owner.owner_reference() == {
        "apiVersion": "retool-operator.dev/v1alpha1",
        "kind": "RetoolDeployment",
        "name": "acme",
        "uid": "uid-1",
        "controller": True,
        "blockOwnerDeletion": True,
    }


def test_owner_from_object() -> None:
    body = {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": "acme", "namespace": "apps", "uid": "uid-1", "generation": 3},
        "spec": {},
    }
    assert Owner.from_object(body) == Owner(API_VERSION, KIND, "acme", "apps", "uid-1")
