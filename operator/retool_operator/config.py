"""The operator's configuration: one frozen object, built by the command line, read at start-up.

kopf hands it to the start-up handler through its memo; nothing else reads the environment.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Config:
    """How this operator process runs."""

    kubeconfig: str | None = None  # None: $KUBECONFIG, ~/.kube/config, then in-cluster
    namespaces: tuple[str, ...] = ()  # none: every namespace
    metrics_port: int = 0  # 0: no /metrics endpoint
    peering: str | None = None  # kopf peering name: only one replica acts at a time
    peering_lifetime: int = 60
    # Who posts the Events (reportingInstance): the pod's name in a cluster.
    instance: str = "retool-operator"
    # Threads for blocking calls (the Kubernetes client, database probes).
    workers: int = 8
