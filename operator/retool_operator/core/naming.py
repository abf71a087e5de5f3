"""Names, labels and owner references of a RetoolDeployment's children (DESIGN.md section 3)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from retool_operator.core.models import Component

FIELD_MANAGER = "retool-operator"
APP_NAME = "retool"
MANAGED_BY = "retool-operator"

LABEL_NAME = "app.kubernetes.io/name"
LABEL_INSTANCE = "app.kubernetes.io/instance"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_VERSION = "app.kubernetes.io/version"

# A label value: at most 63 characters, alphanumeric at both ends.
MAX_LABEL_VALUE_LENGTH = 63
_LABEL_VALUE_EDGE = re.compile(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$")

# The longest name a RetoolDeployment can have: a StatefulSet's pods carry the label
# `controller-revision-hash: <name>-jobs-runner-<hash of up to 10 chars>`, which must fit in a
# 63-character label value (kubernetes/kubernetes#64023). Enforcing it is admission's job.
MAX_INSTANCE_NAME_LENGTH = MAX_LABEL_VALUE_LENGTH - len("-jobs-runner-") - 10


def workload_name(instance: str, component: Component) -> str:
    """Name of a component's Deployment or StatefulSet: `<instance>-<component>`."""
    return f"{instance}-{component.value}"


def service_name(instance: str) -> str:
    """Name of the api Service."""
    return workload_name(instance, Component.API)


def jobs_runner_service_name(instance: str) -> str:
    """`serviceName` of the jobs-runner StatefulSet (the governing Service's name)."""
    return workload_name(instance, Component.JOBS_RUNNER)


def pod_disruption_budget_name(instance: str, component: Component = Component.API) -> str:
    """Name of a component's PodDisruptionBudget: `<instance>-<component>`."""
    return workload_name(instance, component)


def route_name(instance: str) -> str:
    """Name of the Ingress and of the HTTPRoute to the api: the instance's own name."""
    return instance


def horizontal_pod_autoscaler_name(instance: str) -> str:
    """Name of the api HorizontalPodAutoscaler."""
    return workload_name(instance, Component.API)


def version_label_value(version: str) -> str:
    """`version` made a valid label value: cut to 63 characters, alphanumeric at both ends.

    A Retool tag may be longer than a label value allows or end in `-` or `.`; the label is for
    people and tools, so a shortened value is acceptable. Read the exact version from the image.
    """
    return _LABEL_VALUE_EDGE.sub("", version[:MAX_LABEL_VALUE_LENGTH])


def selector_labels(instance: str, component: Component) -> dict[str, str]:
    """Labels that select a component's pods; never the version, as selectors are immutable."""
    return {
        LABEL_NAME: APP_NAME,
        LABEL_INSTANCE: instance,
        LABEL_COMPONENT: component.value,
    }


def labels(instance: str, component: Component, version: str) -> dict[str, str]:
    """The five labels every child and pod carries."""
    return {
        **selector_labels(instance, component),
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_VERSION: version_label_value(version),
    }


@dataclass(frozen=True)
class Owner:
    """The RetoolDeployment that owns the children, as an owner reference needs it."""

    api_version: str
    kind: str
    name: str
    namespace: str
    uid: str

    @classmethod
    def from_object(cls, obj: Mapping[str, Any]) -> Owner:
        """The owner described by a RetoolDeployment object as read from the API server."""
        metadata = obj["metadata"]
        return cls(
            api_version=obj["apiVersion"],
            kind=obj["kind"],
            name=metadata["name"],
            namespace=metadata["namespace"],
            uid=metadata["uid"],
        )

    def owner_reference(self) -> dict[str, Any]:
        """A controller owner reference, so deleting the CR deletes the child."""
        return {
            "apiVersion": self.api_version,
            "kind": self.kind,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }
