"""The bench's own control plane and PostgreSQL, apart from the tests' ones.

The cluster is the local control plane of `hack/cluster.sh` under another name and kubeconfig, so
a bench never disturbs an end-to-end run on the same machine. Each measured phase can start from
a fresh one (`recreate`): that takes seconds and leaves no state of an earlier phase behind.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from kubernetes import client

from bench import kube
from tests.support import pgserver
from tests.support.pgserver import PostgresServer

log = logging.getLogger("bench")

REPO = kube.REPO
DEFAULT_NAME = "retool-bench"
DEFAULT_KUBECONFIG = REPO / ".local" / "bench-kubeconfig"
POSTGRES_DIR = REPO / ".local" / "bench-postgres"
# kwokctl gives Services a /24: not enough for a fleet of 1,000 (one ClusterIP each). A second
# ServiceCIDR widens it. These are bookkeeping addresses inside the API server: kwok's nodes run
# no proxy and nothing ever sends a packet to them.
EXTRA_SERVICE_CIDR = "10.96.0.0/16"


@dataclass
class BenchCluster:
    """A kwokctl cluster run by hack/cluster.sh, named NAME, with its kubeconfig at KUBECONFIG."""

    name: str = DEFAULT_NAME
    kubeconfig: Path = DEFAULT_KUBECONFIG
    managed: bool = True  # False: a cluster someone else runs (never recreated or deleted)
    _api: client.ApiClient | None = field(default=None, repr=False)

    def _script(self, action: str) -> None:
        env = {
            **os.environ,
            "CLUSTER_NAME": self.name,
            "CLUSTER_KUBECONFIG": str(self.kubeconfig),
        }
        result = subprocess.run(
            ["bash", str(REPO / "hack" / "cluster.sh"), action],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"hack/cluster.sh {action} failed:\n{result.stderr[-3000:]}")

    def up(self) -> None:
        """Start the cluster (idempotent) and install the CRD."""
        if self.managed:
            log.info("cluster %s: up", self.name)
            self._script("up")
        self._close()
        kube.install_crd(self.api)
        _widen_service_range(self.api)

    def recreate(self) -> None:
        """A fresh control plane (new etcd, new processes), CRD installed."""
        if not self.managed:
            raise RuntimeError("a cluster the bench does not manage cannot be recreated")
        self.down()
        self.up()

    def down(self) -> None:
        """Delete the cluster."""
        self._close()
        if self.managed:
            log.info("cluster %s: down", self.name)
            self._script("down")

    def control_plane_cpu(self) -> dict[str, float]:
        """CPU seconds (user + system) so far of each control-plane process of this cluster
        (kube-apiserver, etcd, kube-controller-manager, kube-scheduler, kwok-controller)."""
        marker = f"/clusters/{self.name}/bin/"
        found: dict[str, float] = {}
        for process in psutil.process_iter(["cmdline"]):
            command = process.info.get("cmdline") or []
            if command and marker in command[0]:
                try:
                    times = process.cpu_times()
                except psutil.Error:
                    continue
                found[Path(command[0]).name] = times.user + times.system
        postgres = _postgres_cpu()
        if postgres is not None:
            found["postgres"] = postgres
        return found

    @property
    def api(self) -> client.ApiClient:
        """A client for the current cluster (made anew after each recreate)."""
        if self._api is None:
            self._api = kube.api_client(str(self.kubeconfig))
        return self._api

    def _close(self) -> None:
        if self._api is not None:
            self._api.close()  # type: ignore[no-untyped-call]
            self._api = None


def _widen_service_range(api: client.ApiClient) -> None:
    """Add a ServiceCIDR (networking.k8s.io/v1) for the fleet's Services (already there: fine)."""
    body: Any = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "ServiceCIDR",
        "metadata": {"name": "retool-bench"},
        "spec": {"cidrs": [EXTRA_SERVICE_CIDR]},
    }
    networking = client.NetworkingV1Api(api)
    try:
        networking.create_service_cidr(body, _preload_content=False)
    except client.ApiException as error:
        if error.status != 409:
            raise
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = kube.raw(networking.read_service_cidr("retool-bench", _preload_content=False))
        conditions = (found.get("status") or {}).get("conditions") or []
        if any(c["type"] == "Ready" and c["status"] == "True" for c in conditions):
            return
        time.sleep(0.2)
    raise RuntimeError("the bench's ServiceCIDR did not become Ready within 30s")


def _postgres_cpu() -> float | None:
    """CPU seconds of the bench's PostgreSQL: the postmaster and its exited backends (one per
    connection, so the operator's database probes show here)."""
    pid_file = POSTGRES_DIR / "postmaster.pid"
    try:
        postmaster = psutil.Process(int(pid_file.read_text().split()[0]))
        times = postmaster.cpu_times()
        live = 0.0
        for child in postmaster.children():
            with contextlib.suppress(psutil.Error):
                child_times = child.cpu_times()
                live += child_times.user + child_times.system
    except (OSError, ValueError, IndexError, psutil.Error):
        return None
    return times.user + times.system + times.children_user + times.children_system + live


def start_postgres() -> PostgresServer:
    """The bench's PostgreSQL (data in .local/bench-postgres), started if it is not running."""
    return pgserver.start(POSTGRES_DIR)


def stop_postgres() -> None:
    """Stop the bench's PostgreSQL."""
    pgserver.stop(POSTGRES_DIR)
