"""The fault-injection suite runs on its own local control plane (hack/cluster.sh with another
CLUSTER_NAME): its faults (an API server restarted, etcd stopped) must not hit the end-to-end
suite's cluster. Serial: one scenario at a time, each with its own namespace and operator."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
KUBECONFIG = REPO / ".local" / "faults-kubeconfig"
CLUSTER_NAME = "retool-faults-" + hashlib.sha256(str(REPO).encode()).hexdigest()[:8]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def kubeconfig() -> str:
    """The fault suite's own cluster (started if it is not running)."""
    env = {**os.environ, "CLUSTER_NAME": CLUSTER_NAME, "CLUSTER_KUBECONFIG": str(KUBECONFIG)}
    subprocess.run(["bash", str(REPO / "hack" / "cluster.sh"), "up"], check=True, env=env)
    return str(KUBECONFIG)
