"""Every write to the API server: the status, the children, pods, Events; each one counted.

The status is one JSON merge patch guarded by resourceVersion (a stale decision fails with 409
instead of overwriting newer state); our own last status write is kept until the watch catches
up (read-your-writes). Children are server-side applied, scaled or deleted; a manifest written
once is not sent again while the watch has yet to show that write. `metrics.API_WRITES` is
incremented here and nowhere else.

Fencing: a write that changes an image or a replica count (or creates a workload, or deletes a
pod) is never sent from a view older than the latest status. Either the status was just
written under its resourceVersion guard, or the object is read once first and a newer one
raises ConflictError (the reconcile then decides again on it). A failed child write is raised
as ChildWriteError, naming the object, for the reconcile to classify.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import time
from collections.abc import Iterator, Sequence
from datetime import datetime
from functools import partial
from typing import Any

from retool_operator import metrics
from retool_operator.cluster.kube import ConflictError
from retool_operator.core import children, naming, reading
from retool_operator.core.models import API_VERSION, KIND, Component, RetoolDeploymentSpec
from retool_operator.core.statemachine import Decision, EventRecord
from retool_operator.runtime.offload import Offload
from retool_operator.runtime.ports import Body, Key, KubeApi

log = logging.getLogger("retool_operator")

ChildKey = children.ChildKey
FENCE_WINDOW_SECONDS = 5.0


def resource_version(body: Body | None) -> int:
    """An object's resourceVersion as a number (0 when absent)."""
    try:
        return int((body or {}).get("metadata", {}).get("resourceVersion", 0))
    except (TypeError, ValueError):
        return 0


class ChildWriteError(Exception):
    """A write to one child failed; the cause is chained (`__cause__`)."""

    def __init__(self, kind: str, name: str) -> None:
        super().__init__(f"{kind} {name}")
        self.kind = kind
        self.name = name


@contextlib.contextmanager
def _writing(kind: str, name: str) -> Iterator[None]:
    try:
        yield
    except ConflictError:
        raise
    except Exception as error:
        raise ChildWriteError(kind, name) from error


@dataclasses.dataclass
class _Written:
    latest: Body | None = None  # our own last status write, newer than the watch may be
    # What we last applied to each child, and the resourceVersion it got.
    applied: dict[ChildKey, tuple[int, Body]] = dataclasses.field(default_factory=dict)


class Writer:
    """Sends the writes a decision calls for, and only those the cluster does not already show."""

    def __init__(self, cluster: KubeApi, offload: Offload) -> None:
        self._cluster = cluster
        self._offload = offload
        self._written: dict[Key, _Written] = {}

    def forget(self, key: Key) -> None:
        """The RetoolDeployment is gone: drop what was remembered of our writes."""
        self._written.pop(key, None)

    # --- the RetoolDeployment --------------------------------------------------------------

    def freshest(self, key: Key, watched: Body | None) -> Body | None:
        """WATCHED, or our own last status write when the watch has yet to show it."""
        if watched is None:
            return None
        written = self._written.setdefault(key, _Written())
        if written.latest is not None and resource_version(written.latest) > resource_version(
            watched
        ):
            return written.latest
        written.latest = None
        return watched

    async def reread(self, key: Key) -> None:
        """After a conflict: take the object as the API server has it now."""
        latest = await self._offload(self._cluster.read_retool_deployment, *key)
        self._written.setdefault(key, _Written()).latest = latest

    async def write_status(self, key: Key, body: Body, patch: dict[str, Any]) -> None:
        """Merge-patch the status (ConflictError when BODY is no longer current)."""
        if not patch:
            return
        log.debug("%s/%s: status patch %s", *key, patch)
        metrics.API_WRITES.labels(KIND, "patch-status").inc()
        latest = await self._offload(
            self._cluster.patch_status, *key, body["metadata"]["resourceVersion"], patch
        )
        self._written.setdefault(key, _Written()).latest = latest

    async def post_events(
        self, body: Body, events: Sequence[EventRecord], now: datetime, fields: dict[str, Any]
    ) -> None:
        """Post each Event on the RetoolDeployment (and log it, with structured FIELDS)."""
        metadata = body["metadata"]
        for event in events:
            log.info(
                "%s/%s: %s: %s",
                metadata["namespace"],
                metadata["name"],
                event.reason,
                event.message,
                extra=fields,
            )
            metrics.API_WRITES.labels("Event", "create").inc()
            await self._offload(self._cluster.post_event, body, event, now)

    # --- the children ----------------------------------------------------------------------

    async def converge(
        self,
        key: Key,
        body: Body,
        spec: RetoolDeploymentSpec,
        decision: Decision,
        live: list[Body],
        *,
        absent_kinds: frozenset[str] = frozenset(),
        fenced: bool = False,
    ) -> None:
        """Apply each planned child that live does not already match; remove unwanted ones.

        Children of a kind the cluster does not serve (ABSENT_KINDS) are not sent. FENCED: BODY
        is known to be the latest (its status was just written); else it is checked first.
        """
        converge = partial(self._converge, absent_kinds=absent_kinds, fenced=fenced)
        await self._offload(converge, key, body, spec, decision, live)

    def _converge(
        self,
        key: Key,
        body: Body,
        spec: RetoolDeploymentSpec,
        decision: Decision,
        live: list[Body],
        *,
        absent_kinds: frozenset[str],
        fenced: bool,
    ) -> None:
        assert decision.plan is not None

        fenced_at = time.monotonic() if fenced else -math.inf

        def fence() -> None:
            # A fence read vouches for the writes of the next FENCE_WINDOW_SECONDS only: a
            # converge slowed by a sick API server reads again (docs/design.md §9, fencing).
            nonlocal fenced_at
            if time.monotonic() - fenced_at > FENCE_WINDOW_SECONDS:
                self._fence(key, body)
                fenced_at = time.monotonic()

        namespace, name = key
        metadata = body["metadata"]
        owner = naming.Owner(
            api_version=API_VERSION, kind=KIND, name=name, namespace=namespace, uid=metadata["uid"]
        )
        by_key = {(c["kind"], c["metadata"]["name"]): c for c in live}
        applied = self._written.setdefault(key, _Written()).applied
        planned = children.planned_children(owner, spec, decision.plan, absent_kinds)
        for manifest in planned.manifests:
            child = (manifest["kind"], manifest["metadata"]["name"])
            current = by_key.get(child)
            if _awaiting_watch(applied, child, current, manifest):
                continue
            replicas = None if current is None else reading.replicas_change(manifest, current)
            if replicas is None and current is not None and reading.is_subset(manifest, current):
                continue
            if reading.changes_rollout(manifest, current):
                fence()
            with _writing(*child):
                if replicas is not None:
                    log.info(
                        "%s/%s: scaling Deployment %s to %d", namespace, name, child[1], replicas
                    )
                    version = self._scale(namespace, child[1], replicas)
                else:
                    log.info("%s/%s: applying %s %s", namespace, name, *child)
                    version = self._cluster.apply(manifest)
                    metrics.API_WRITES.labels(manifest["kind"], "apply").inc()
            applied[child] = (int(version), manifest)
        if planned.api_scale is not None:
            api_name = naming.workload_name(name, Component.API)
            current = by_key.get(("Deployment", api_name))
            if current is None or (current.get("spec") or {}).get("replicas") != planned.api_scale:
                fence()
                with _writing("Deployment", api_name):
                    self._scale(namespace, api_name, planned.api_scale)
        for kind, unwanted in children.unwanted_children(name, spec, by_key, metadata["uid"]):
            fence()
            with _writing(kind, unwanted):
                self._cluster.delete(kind, namespace, unwanted)
            metrics.API_WRITES.labels(kind, "delete").inc()
        for pod in decision.delete_pods:
            log.info(
                "%s/%s: deleting pod %s that the StatefulSet will not replace", namespace, name, pod
            )
            fence()
            with _writing("Pod", pod):
                self._cluster.delete_pod(namespace, pod)
            metrics.API_WRITES.labels("Pod", "delete").inc()

    def _fence(self, key: Key, body: Body) -> None:
        """Raise ConflictError unless BODY is still the object the API server has."""
        latest = self._cluster.read_retool_deployment(*key)
        if latest is not None and resource_version(latest) != resource_version(body):
            self._written.setdefault(key, _Written()).latest = latest
            raise ConflictError(key[1])

    def _scale(self, namespace: str, name: str, replicas: int) -> str:
        version = self._cluster.scale_deployment(namespace, name, replicas)
        metrics.API_WRITES.labels("Deployment", "scale").inc()
        return version


def _awaiting_watch(
    applied: dict[ChildKey, tuple[int, Body]], child: ChildKey, live: Body | None, manifest: Body
) -> bool:
    """Whether MANIFEST was already written and the watch has not yet shown that write.

    Reconciles triggered by other events in between would otherwise send the same write again.
    A child that is not (or no longer) watched is written again: it may have been deleted.
    """
    known = applied.get(child)
    if known is None:
        return False
    version, written = known
    if live is None or resource_version(live) >= version:
        del applied[child]
        return False
    return written == manifest
