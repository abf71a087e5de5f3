"""The embedded pod types' schemas are Kubernetes' own, for the release the project tests on."""

from __future__ import annotations

import json
import re
from pathlib import Path

from hack import kubernetes_schemas
from retool_operator.core import kubernetes_types

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "operator" / "retool_operator" / "core" / "kubernetes_schemas.json"


def _pinned_version() -> str:
    text = (ROOT / "hack" / "versions.sh").read_text(encoding="utf-8")
    found = re.search(r'K8S_VERSION="\$\{K8S_VERSION:-([^}]+)\}"', text)
    assert found
    return found.group(1)


def test_committed_schemas_are_generated_from_the_pinned_release() -> None:
    # The module is in the Go module cache once the control plane is built (make lint builds it).
    version = _pinned_version()
    directory = kubernetes_schemas.module_dir(version)
    source = directory / "api" / "openapi-spec" / "v3" / "api__v1_openapi.json"
    rendered = kubernetes_schemas.render(json.loads(source.read_text()), version)
    assert json.loads(COMMITTED.read_text()) == rendered, (
        "core/kubernetes_schemas.json is stale: run `make kubernetes-schemas`"
    )
    assert kubernetes_types.source().startswith(f"k8s.io/kubernetes {version} ")


def test_first_sentence() -> None:
    assert kubernetes_schemas.first_sentence("Name of it. More text.") == "Name of it."
    assert kubernetes_schemas.first_sentence("e.g. 1.5 is fine") == "e.g. 1.5 is fine"
