"""What the operator saw: a snapshot of the children, the Secrets and the database.

The I/O layer fills these from the cluster and from PostgreSQL; the state machine reads them.
They hold only what decisions need, never a secret value.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime

from retool_operator.core.models import Component

# A new-version pod restarting this often while its container waits in one of these reasons is a
# broken release, not a slow one: the upgrade fails at once instead of waiting for its timeout.
CRASHLOOP_RESTARTS = 3
CRASHLOOP_REASONS = frozenset(
    {
        "CrashLoopBackOff",
        "ImagePullBackOff",
        "ErrImagePull",
        "CreateContainerConfigError",
        "InvalidImageName",
    }
)


@dataclasses.dataclass(frozen=True)
class PodObservation:
    """One pod of a component."""

    name: str
    version: str | None
    ready: bool
    terminating: bool = False
    waiting_reason: str | None = None
    restarts: int = 0

    @property
    def crash_looping(self) -> bool:
        """True when the pod keeps failing to start (a broken image or release)."""
        if self.waiting_reason in {"ImagePullBackOff", "ErrImagePull", "InvalidImageName"}:
            return True
        return self.waiting_reason in CRASHLOOP_REASONS and self.restarts >= CRASHLOOP_RESTARTS


@dataclasses.dataclass(frozen=True)
class WorkloadObservation:
    """A component's Deployment or StatefulSet as last seen, with its pods."""

    version: str | None
    spec_replicas: int
    replicas: int = 0
    ready_replicas: int = 0
    updated_replicas: int = 0
    generation_observed: bool = True
    revision_current: bool = True  # StatefulSet: currentRevision == updateRevision
    pods: tuple[PodObservation, ...] = ()

    def rolled_out(self, version: str, replicas: int, *, strict: bool = True) -> bool:
        """Every pod runs VERSION and is Ready, REPLICAS of them, and the controller caught up.

        A Deployment keeps old ReplicaSets, so "updated" needs observedGeneration to have caught
        up and updated == ready == replicas; pods of any other version must be gone. Not STRICT
        (steady state), a generation the controller has yet to observe does not count against
        health: an annotation edit bumps a Deployment's generation without changing a pod.
        """
        if self.version != version or self.spec_replicas != replicas:
            return False
        if strict and not (self.generation_observed and self.revision_current):
            return False
        counts_match = self.updated_replicas == self.ready_replicas == self.replicas == replicas
        pods_match = len(self.pods) == replicas and all(
            p.version == version and p.ready and not p.terminating for p in self.pods
        )
        return counts_match and pods_match

    def crash_looping_pods(self, version: str) -> tuple[str, ...]:
        """Names of pods of VERSION that keep failing to start."""
        return tuple(p.name for p in self.pods if p.version == version and p.crash_looping)


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """All children of one RetoolDeployment as last seen, by component."""

    workloads: Mapping[Component, WorkloadObservation] = dataclasses.field(default_factory=dict)
    missing_secrets: tuple[
        str, ...
    ] = ()  # e.g. "Secret retool-secrets", "key password in Secret db"
    # Kinds of child the spec asks for that the cluster does not serve (a CRD not installed).
    absent_kinds: frozenset[str] = frozenset()

    def workload(self, component: Component) -> WorkloadObservation | None:
        """The component's workload, or None when it does not exist."""
        return self.workloads.get(component)

    def pods(self, component: Component) -> tuple[PodObservation, ...]:
        """The component's pods (none when the workload does not exist)."""
        workload = self.workloads.get(component)
        return workload.pods if workload else ()


@dataclasses.dataclass(frozen=True)
class DatabaseProbe:
    """The outcome of one connection to the Retool database."""

    checked_at: datetime
    reachable: bool
    server_version: str | None = None
    server_version_num: int | None = None
    migrations_applied: int | None = None
    blocked_queries: int | None = None
    # Statements of other sessions running now, not waiting on a lock: a migration at work.
    running_statements: int | None = None
    error: str | None = None  # a short reason, never a password or connection string

    MINIMUM_SERVER_VERSION_NUM = 130000  # PostgreSQL 13

    @property
    def supported(self) -> bool:
        """Reachable and PostgreSQL 13 or newer."""
        return (
            self.reachable
            and self.server_version_num is not None
            and self.server_version_num >= self.MINIMUM_SERVER_VERSION_NUM
        )
