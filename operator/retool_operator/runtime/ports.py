"""The calls the runtime makes on Kubernetes and the database, as protocols.

`cluster.kube.Cluster` and `database.probe.probe` are the real ones; unit tests drive the real
reconcile path with fakes of the same shape.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

from retool_operator.core.observed import DatabaseProbe
from retool_operator.core.statemachine import EventRecord
from retool_operator.database.probe import Target

Key = tuple[str, str]  # (namespace, name) of a RetoolDeployment
Body = dict[str, Any]  # an object as the API server returns it


class KubeApi(Protocol):
    """The Kubernetes calls of a reconcile (synchronous: run them through `Offload`)."""

    def apply(self, manifest: Mapping[str, Any]) -> str:
        """Server-side apply one child; its new resourceVersion."""

    def scale_deployment(self, namespace: str, name: str, replicas: int) -> str:
        """Set a Deployment's replicas through the scale subresource; its resourceVersion."""

    def delete(self, kind: str, namespace: str, name: str) -> None:
        """Delete one child (already gone is fine)."""

    def delete_pod(self, namespace: str, name: str) -> None:
        """Delete one pod (already gone is fine)."""

    def read_secret(self, namespace: str, name: str) -> dict[str, str] | None:
        """A Secret's decoded data, or None when it does not exist."""

    def serves(self, api_version: str, plural: str) -> bool:
        """Whether the API server serves that resource (discovery): a CRD's may be absent."""

    def read_retool_deployment(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The RetoolDeployment as the API server has it now."""

    def patch_status(
        self, namespace: str, name: str, resource_version: str, status_patch: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Merge-patch the status at RESOURCE_VERSION (ConflictError otherwise); the new object."""

    def post_event(self, owner: Mapping[str, Any], event: EventRecord, now: datetime) -> None:
        """Record an Event on the RetoolDeployment."""


class Prober(Protocol):
    """Connects to a Retool database once and says what it found."""

    def __call__(self, target: Target, now: datetime, /) -> DatabaseProbe:
        """The probe's outcome, stamped NOW."""
