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
    # Deadlines of every API call (connect, read): a call with no answer by then fails as
    # transient. A watch is asked to end after `watch_timeout` and dropped after that plus
    # `read_timeout` with nothing received; the fault suite shortens both.
    connect_timeout: float = 5.0
    read_timeout: float = 20.0
    watch_timeout: int = 300

    @property
    def stuck_after(self) -> float:
        """A blocking call older than this cannot be waiting on an answer: the process is
        stuck (/healthz fails). Every call is bounded by its deadlines, a probe by its own."""
        return 3 * (self.connect_timeout + self.read_timeout)
