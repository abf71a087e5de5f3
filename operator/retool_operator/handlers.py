"""kopf wiring: watches feed in-memory indexes; every event triggers one coalesced reconcile.

The handlers only route: a RetoolDeployment event, a child's event (by its instance label) or
a due wake-up each call `Reconciler.trigger` for the RetoolDeployment concerned. kopf's
indexes are the informer caches (filled before any handler runs), so a reconcile reads no
object it already watches. No change-handlers are used: kopf keeps no progress annotations.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
from collections.abc import Iterable
from typing import Any

import kopf

from retool_operator import metrics
from retool_operator.cluster.kube import Cluster, new_api_client
from retool_operator.core import models, naming, reading
from retool_operator.reconciler import Body, Key, Reconciler, View

log = logging.getLogger("retool_operator")

RTD = (models.GROUP, models.VERSION, models.PLURAL)
MANAGED = {naming.LABEL_MANAGED_BY: naming.MANAGED_BY}
CHILD_RESOURCES = (
    ("apps", "v1", "deployments"),
    ("apps", "v1", "statefulsets"),
    ("", "v1", "services"),
    ("policy", "v1", "poddisruptionbudgets"),
    ("autoscaling", "v2", "horizontalpodautoscalers"),
)

_reconciler: Reconciler | None = None


def reconciler() -> Reconciler:
    """The process's reconciler (made at start-up)."""
    assert _reconciler is not None, "the operator has not started"
    return _reconciler


class _NoDiffBase(kopf.DiffBaseStorage):
    """No diff base: kopf would deep-copy every event's body to diff it for change handlers,
    and this operator has none (every event goes through `Reconciler.trigger`)."""

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return kopf.BodyEssence()

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        pass

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> kopf.BodyEssence:
        return kopf.BodyEssence()


class _SuccessFilter(logging.Filter):
    """kopf logs every handler success at INFO; at one per event that drowns everything else."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.levelno == logging.INFO and record.getMessage().endswith("succeeded."))


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    """When the operator starts, tune kopf and make the reconciler."""
    global _reconciler  # noqa: PLW0603 (one reconciler per process, made once kopf runs)
    # Our own Events say what happened; kopf's per-handler log lines are not worth an Event each.
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 10
    settings.persistence.finalizer = f"{models.GROUP}/finalizer"
    settings.persistence.diffbase_storage = _NoDiffBase()
    # Filter children on the API server, not in the client: the operator then never receives
    # (nor holds in memory) the cluster's other pods, Deployments and Services.
    managed = ",".join(f"{key}={value}" for key, value in MANAGED.items())
    for resource in (*CHILD_RESOURCES, ("", "v1", "pods")):
        settings.watching.label_selectors[resource[2]] = managed
    objects = logging.getLogger("kopf.objects")
    objects.addFilter(_SuccessFilter())
    if not log.isEnabledFor(logging.DEBUG):
        # Below WARNING kopf only narrates each handler run; skip building those records.
        objects.setLevel(logging.WARNING)
    cluster = Cluster(new_api_client(os.environ.get("KUBECONFIG")))
    _reconciler = Reconciler(cluster)
    peering = os.environ.get("RETOOL_OPERATOR_PEERING")
    if peering:
        settings.peering.mandatory = True
        lifetime = int(os.environ.get("RETOOL_OPERATOR_PEERING_LIFETIME", "60"))
        settings.peering.lifetime = lifetime
        # Peering is mandatory when named: kopf pauses until the peering object exists.
        namespaces = [n for n in os.environ.get("RETOOL_OPERATOR_NAMESPACES", "").split(",") if n]
        cluster.ensure_peering(peering, namespaces)
    port = os.environ.get("RETOOL_OPERATOR_METRICS_PORT")
    if port:
        metrics.serve(int(port))
    # Everything imported so far lives as long as the process: keep it out of the collector's
    # full passes, whose pauses otherwise grow with the imports (kopf, kubernetes, pydantic).
    gc.collect()
    gc.freeze()


def _store(index: kopf.Index[Key, Body], key: Key) -> Iterable[Body]:
    return index.get(key, ())


def _view(indexes: dict[str, Any]) -> View:
    """Read access to the indexes kopf passes to every handler."""
    deployments: kopf.Index[Key, Body] = indexes["retool_deployments"]

    def retool_deployment(key: Key) -> Body | None:
        return next(iter(_store(deployments, key)), None)

    def children(key: Key) -> list[Body]:
        return [body for kind in CHILD_INDEXES for body in _store(indexes[kind], key)]

    def pods(key: Key) -> list[Body]:
        return list(_store(indexes["child_pods"], key))

    return View(retool_deployment=retool_deployment, children=children, pods=pods)


# --- indexes (the informer caches) -------------------------------------------------------------


@kopf.index(*RTD)
def retool_deployments(
    *, namespace: str | None, name: str, body: kopf.Body, **_: Any
) -> dict[Key, Body]:
    """Keep every RetoolDeployment, by (namespace, name)."""
    return {(namespace or "", name): reading.compact_object(dict(body))}


def _instance_key(namespace: str | None, labels: kopf.Labels) -> Key | None:
    instance = labels.get(naming.LABEL_INSTANCE)
    return (namespace, instance) if namespace and instance else None


def _child_index(
    namespace: str | None, labels: kopf.Labels, body: kopf.Body, **_: Any
) -> dict[Key, Body] | None:
    key = _instance_key(namespace, labels)
    return {key: reading.compact_object(dict(body))} if key else None


def _pod_index(
    namespace: str | None, labels: kopf.Labels, body: kopf.Body, **_: Any
) -> dict[Key, Body] | None:
    key = _instance_key(namespace, labels)
    return {key: reading.compact_pod(dict(body))} if key else None


# kopf names each index after its handler id: one per kind, all sharing one function.
CHILD_INDEXES = [f"child_{plural}" for _, _, plural in CHILD_RESOURCES]
for (_group, _version, _plural), _index_id in zip(CHILD_RESOURCES, CHILD_INDEXES, strict=True):
    kopf.index(_group, _version, _plural, labels=MANAGED, id=_index_id)(_child_index)
kopf.index("", "v1", "pods", labels=MANAGED, id="child_pods")(_pod_index)


# --- triggers ----------------------------------------------------------------------------------


@kopf.on.event(*RTD)
async def retool_deployment_changed(
    *, event: kopf.RawEvent, namespace: str | None, name: str, **indexes: Any
) -> None:
    """When a RetoolDeployment changes, reconcile it; when it is gone, forget it."""
    key = (namespace or "", name)
    if event["type"] == "DELETED":
        reconciler().forget(key)
        return
    await reconciler().trigger(key, _view(indexes))


async def _child_changed(*, namespace: str | None, labels: kopf.Labels, **indexes: Any) -> None:
    """When a child or pod changes, reconcile the RetoolDeployment it belongs to."""
    key = _instance_key(namespace, labels)
    if key is not None and key in indexes["retool_deployments"]:
        await reconciler().trigger(key, _view(indexes))


for _group, _version, _plural in (*CHILD_RESOURCES, ("", "v1", "pods")):
    kopf.on.event(_group, _version, _plural, labels=MANAGED, id=f"{_plural}-changed")(
        _child_changed
    )


@kopf.daemon(*RTD, cancellation_timeout=1.0)
async def wake(
    *, namespace: str | None, name: str, stopped: kopf.DaemonStopped, **indexes: Any
) -> None:
    """When a wait runs out (a step timeout, a retry, the periodic resync), reconcile.

    A daemon, not a timer: it sleeps until the due time the last reconcile set, so an idle
    fleet costs no wake-ups; and kopf stops it whenever peering pauses this operator (a standby
    replica never acts on its own clock). A reconcile under way when it stops still finishes.
    """
    key = (namespace or "", name)
    stopping = asyncio.ensure_future(stopped.wait())
    try:
        while True:
            due = asyncio.ensure_future(reconciler().wait_until_due(key))
            await asyncio.wait({due, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if stopping.done():
                due.cancel()
                return
            await asyncio.shield(reconciler().trigger(key, _view(indexes)))
    finally:
        stopping.cancel()
