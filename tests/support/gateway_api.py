"""Gateway API CRDs for the tests, from the Go module proxy (sigs.k8s.io/gateway-api).

The module ships the CRDs it defines under config/crd/standard; `go mod download` brings the
version hack/versions.sh pins into the module cache, and the HTTPRoute and Gateway CRDs are
applied from there. Nothing else is downloaded.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

from tests.support import retool

REPO = Path(__file__).resolve().parents[2]
CRDS = ("gateway.networking.k8s.io_httproutes.yaml", "gateway.networking.k8s.io_gateways.yaml")


def version() -> str:
    """GATEWAY_API_VERSION from the environment, else as hack/versions.sh pins it."""
    text = (REPO / "hack" / "versions.sh").read_text(encoding="utf-8")
    pinned = re.search(r'GATEWAY_API_VERSION="\$\{GATEWAY_API_VERSION:-([^}]+)\}"', text)
    assert pinned, "hack/versions.sh pins no GATEWAY_API_VERSION"
    return os.environ.get("GATEWAY_API_VERSION", pinned.group(1))


def module_dir() -> Path:
    """The module's directory in the Go module cache (downloaded when missing)."""
    out = subprocess.run(
        ["go", "mod", "download", "-json", f"sigs.k8s.io/gateway-api@{version()}"],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    ).stdout
    directory = Path(json.loads(out)["Dir"])
    assert directory.is_dir(), out
    return directory


def install(kubeconfig: str) -> None:
    """Apply the HTTPRoute and Gateway CRDs and wait until they are established."""
    standard = module_dir() / "config" / "crd" / "standard"
    for name in CRDS:
        retool.kubectl(
            kubeconfig, "apply", "--server-side", "--force-conflicts", "-f", str(standard / name)
        )
    retool.kubectl(
        kubeconfig,
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/httproutes.gateway.networking.k8s.io",
    )
