"""Writes operator/retool_operator/core/kubernetes_schemas.json: Kubernetes' own schemas of the
pod types that a RetoolDeployment embeds (Toleration, Affinity, Volume, Container, ...).

The source is the OpenAPI v3 document that the k8s.io/kubernetes module ships
(`api/openapi-spec/v3/api__v1_openapi.json`), read from the Go module cache, the same module
version the local control plane is built from (hack/versions.sh). Each definition is made
structural, as a CRD needs it: references inlined, `allOf` wrappers removed, quantities and
int-or-string fields marked, bookkeeping keywords dropped. Descriptions keep their first
sentence on the type's own fields and none below them: the types are embedded once per component,
and their full text would make the CRD too large (docs/design.md, "The CRD").

    python -m hack.kubernetes_schemas [--module-dir DIR] > operator/.../kubernetes_schemas.json

`make kubernetes-schemas` runs it; a unit test checks that the models use the file as written.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

Schema = dict[str, Any]

_CORE = "io.k8s.api.core.v1."
# The types a RetoolDeployment embeds, by the name the models use.
EMBEDDED = {
    "Affinity": _CORE + "Affinity",
    "Container": _CORE + "Container",
    "EnvFromSource": _CORE + "EnvFromSource",
    "EnvVarSource": _CORE + "EnvVarSource",
    "HostAlias": _CORE + "HostAlias",
    "PodSecurityContext": _CORE + "PodSecurityContext",
    "SecurityContext": _CORE + "SecurityContext",
    "Toleration": _CORE + "Toleration",
    "TopologySpreadConstraint": _CORE + "TopologySpreadConstraint",
    "Volume": _CORE + "Volume",
    "VolumeMount": _CORE + "VolumeMount",
}
# Types a CRD cannot or need not describe field by field.
_OPAQUE: dict[str, Schema] = {
    # An ephemeral volume's claim template carries object metadata, which a CRD schema may not
    # describe below its own root.
    "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta": {
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": True,
    },
    "io.k8s.apimachinery.pkg.api.resource.Quantity": {"x-kubernetes-int-or-string": True},
    "io.k8s.apimachinery.pkg.util.intstr.IntOrString": {"x-kubernetes-int-or-string": True},
    "io.k8s.apimachinery.pkg.apis.meta.v1.Time": {"type": "string", "format": "date-time"},
}
# Keywords of the OpenAPI document that have no place, or no use, in a CRD schema. List types
# and map keys go too: a CRD list-map needs every key required or defaulted, and defaults go.
_DROPPED = frozenset(
    {
        "default",
        "x-kubernetes-group-version-kind",
        "x-kubernetes-list-map-keys",
        "x-kubernetes-list-type",
        "x-kubernetes-map-type",
        "x-kubernetes-patch-merge-key",
        "x-kubernetes-patch-strategy",
        "x-kubernetes-unions",
    }
)
# A full stop that ends a sentence: after a word, not the abbreviations e.g. and i.e.
_SENTENCE_END = re.compile(r"(?<=[a-z0-9)\]`'\"])(?<!\be\.g)(?<!\bi\.e)\.(\s|$)")


def first_sentence(text: str) -> str:
    """The first sentence of a Kubernetes field description, on one line."""
    text = " ".join(text.split())
    match = _SENTENCE_END.search(text)
    return text[: match.start() + 1] if match else text


def structural(node: Schema, defs: Schema, trail: tuple[str, ...] = (), depth: int = 0) -> Schema:
    """`node` with references inlined and the keywords a CRD refuses removed.

    `depth` counts the objects above `node` within the embedded type: descriptions are kept for
    the type's own fields (depth 1) only.
    """
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        if name in _OPAQUE:
            return dict(_OPAQUE[name])
        if name in trail:
            raise ValueError(f"{name} refers to itself: {' > '.join(trail)}")
        return structural(defs[name], defs, (*trail, name), depth)
    if list(node.get("allOf", [])) and len(node["allOf"]) == 1:
        inner = structural(node["allOf"][0], defs, trail, depth)
        if "description" in node:
            inner["description"] = node["description"]
        return _describe(inner, depth)
    out: Schema = {}
    for key, value in node.items():
        if key in _DROPPED:
            continue
        if key == "properties":
            out[key] = {
                name: _describe(structural(child, defs, trail, depth + 1), depth + 1)
                for name, child in value.items()
            }
        elif key in {"items", "additionalProperties"} and isinstance(value, dict):
            out[key] = structural(value, defs, trail, depth)
        elif key in {"allOf", "oneOf", "anyOf"}:
            raise ValueError(f"{' > '.join(trail)}: {key} has no structural form")
        else:
            out[key] = value
    if "properties" in out:
        out.setdefault("type", "object")
    return _describe(out, depth)


def _describe(schema: Schema, depth: int) -> Schema:
    if "description" in schema:
        if depth == 1:
            schema["description"] = first_sentence(schema["description"])
        else:
            del schema["description"]
    return schema


def module_dir(version: str) -> Path:
    """Where the Go module cache holds k8s.io/kubernetes at `version` (downloaded if missing)."""
    out = subprocess.run(
        ["go", "mod", "download", "-json", f"k8s.io/kubernetes@{version}"],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "GOFLAGS": "-mod=mod"},
    ).stdout
    return Path(json.loads(out)["Dir"])


def render(document: Schema, version: str) -> Schema:
    """The file's content: the source, then each embedded type's structural schema."""
    defs = document["components"]["schemas"]
    return {
        "source": f"k8s.io/kubernetes {version} api/openapi-spec/v3/api__v1_openapi.json",
        "schemas": {name: structural(defs[ref], defs, (ref,)) for name, ref in EMBEDDED.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", default=os.environ.get("K8S_VERSION", "v1.36.3"))
    parser.add_argument("--module-dir", type=Path, help="k8s.io/kubernetes module directory")
    args = parser.parse_args()
    directory = args.module_dir or module_dir(args.version)
    path = directory / "api" / "openapi-spec" / "v3" / "api__v1_openapi.json"
    document = json.loads(path.read_text())
    json.dump(render(document, args.version), sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
