"""Kubernetes' own pod types (Toleration, Affinity, Volume, Container, ...) for the models.

A RetoolDeployment embeds these types as users would write them in a PodSpec. The operator does
not interpret them: it copies them into the pod templates it renders. So in Python each is a
plain JSON object, and only the CRD carries its schema: Kubernetes' own, from the OpenAPI
document of the Kubernetes release the project is tested against (`kubernetes_schemas.json`,
written by `python -m hack.kubernetes_schemas`). The API server thus checks them at admission
and `kubectl explain` documents their fields.

The CRD generator recognises these schemas by `EMBEDDED_MARK` and copies them as they are
(they are structural already); the reference document names the type instead of listing its
fields.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from importlib import resources
from typing import Annotated, Any

from pydantic import WithJsonSchema

JsonObject = dict[str, Any]

# The key that marks an embedded Kubernetes type in the models' JSON Schema.
EMBEDDED_MARK = "x-retool-operator-kubernetes-type"


@cache
def _document() -> JsonObject:
    text = resources.files(__package__).joinpath("kubernetes_schemas.json").read_text()
    document: JsonObject = json.loads(text)
    return document


def source() -> str:
    """Where the schemas come from: module, version and file."""
    return str(_document()["source"])


# Bounds Kubernetes enforces in code rather than in its schema. The CRD states them, because the
# API server estimates the cost of a CEL rule over these lists from them (names are DNS labels).
_BOUNDS: dict[str, dict[str, int]] = {
    "Container": {"name": 63},
    "Volume": {"name": 63},
    "VolumeMount": {"name": 63, "mountPath": 4096},
}


def schema(name: str) -> JsonObject:
    """The structural schema of Kubernetes type `name`, marked as embedded."""
    node: JsonObject = copy.deepcopy(_document()["schemas"][name])
    for field, length in _BOUNDS.get(name, {}).items():
        node["properties"][field]["maxLength"] = length
    node[EMBEDDED_MARK] = name
    return node


# Each a JSON object in Python; the CRD describes it with Kubernetes' schema of that name.
Affinity = Annotated[JsonObject, WithJsonSchema(schema("Affinity"))]
Container = Annotated[JsonObject, WithJsonSchema(schema("Container"))]
EnvFromSource = Annotated[JsonObject, WithJsonSchema(schema("EnvFromSource"))]
EnvVarSource = Annotated[JsonObject, WithJsonSchema(schema("EnvVarSource"))]
HostAlias = Annotated[JsonObject, WithJsonSchema(schema("HostAlias"))]
PodSecurityContext = Annotated[JsonObject, WithJsonSchema(schema("PodSecurityContext"))]
SecurityContext = Annotated[JsonObject, WithJsonSchema(schema("SecurityContext"))]
Toleration = Annotated[JsonObject, WithJsonSchema(schema("Toleration"))]
TopologySpreadConstraint = Annotated[JsonObject, WithJsonSchema(schema("TopologySpreadConstraint"))]
Volume = Annotated[JsonObject, WithJsonSchema(schema("Volume"))]
VolumeMount = Annotated[JsonObject, WithJsonSchema(schema("VolumeMount"))]


NAMES = (
    "Affinity",
    "Container",
    "EnvFromSource",
    "EnvVarSource",
    "HostAlias",
    "PodSecurityContext",
    "SecurityContext",
    "Toleration",
    "TopologySpreadConstraint",
    "Volume",
    "VolumeMount",
)


def _bare(node: JsonObject) -> JsonObject:
    return {k: v for k, v in node.items() if k not in {"description", EMBEDDED_MARK}}


def embedded_name(node: JsonObject) -> str | None:
    """Which Kubernetes type a CRD schema node is (its description aside), if it is one."""
    return next((name for name in NAMES if _bare(schema(name)) == _bare(node)), None)
