"""kopf wiring: watches feed in-memory indexes; every event triggers one coalesced reconcile.

The handlers only route: a RetoolDeployment event, a child's event (by its instance label) or
a due wake-up each call `Reconciler.trigger` for the RetoolDeployment concerned. kopf's
indexes are the informer caches (filled before any handler runs), so a reconcile reads no
object it already watches. No change-handlers are used: kopf keeps no progress annotations.
What start-up opens (the API client, the thread pool, the metrics server) lives in kopf's memo
and is closed at clean-up.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import logging
from collections.abc import Callable, Iterable
from typing import Any

import kopf

from retool_operator import metrics
from retool_operator.cluster.kube import Cluster, new_api_client
from retool_operator.config import Config
from retool_operator.core import models, naming, reading
from retool_operator.core.builders import CHILD_KINDS
from retool_operator.database.probe import probe
from retool_operator.runtime.offload import Offload
from retool_operator.runtime.ports import Body, Key
from retool_operator.runtime.reconcile import Reconciler, View

log = logging.getLogger("retool_operator")

RTD = (models.GROUP, models.VERSION, models.PLURAL)
MANAGED = {naming.LABEL_MANAGED_BY: naming.MANAGED_BY}
# (group, version, plural) of every watched kind of child.
CHILD_RESOURCES = tuple(
    (api_version.rpartition("/")[0], api_version.rpartition("/")[2], plural)
    for api_version, _, plural in CHILD_KINDS
)
PODS = ("", "v1", "pods")


@dataclasses.dataclass(frozen=True)
class Running:
    """What start-up made and clean-up closes."""

    reconciler: Reconciler
    cluster: Cluster
    offload: Offload
    stop_metrics: Callable[[], None] | None
    stuck_after: float

    def close(self) -> None:
        """Stop serving metrics, finish the blocking calls under way, close the API client."""
        if self.stop_metrics is not None:
            self.stop_metrics()
        self.offload.close()
        self.cluster.close()


def reconciler(memo: kopf.Memo) -> Reconciler:
    """The process's reconciler (made at start-up, kept in kopf's memo)."""
    running = memo.get("running")
    assert isinstance(running, Running), "the operator has not started"
    return running.reconciler


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
def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    """When the operator starts, tune kopf and make the reconciler (from `memo.config`)."""
    config = memo.get("config", Config())
    assert isinstance(config, Config)
    # Our own Events say what happened; kopf's per-handler log lines are not worth an Event each.
    settings.posting.level = logging.WARNING
    # Deadlines on kopf's own calls too: its watches, its peering keep-alives and patches. A
    # watch that receives nothing for client_timeout is dropped and restarted, so a dead
    # connection hides for at most that long.
    settings.watching.server_timeout = config.watch_timeout
    settings.watching.client_timeout = config.watch_timeout + config.read_timeout
    settings.watching.connect_timeout = config.connect_timeout
    settings.networking.request_timeout = config.read_timeout
    settings.networking.connect_timeout = config.connect_timeout
    # kopf's default retries give up after about 90 s, and a watcher that gives up ends the
    # process: ride out an outage of about 10 minutes instead (then the restart is right).
    settings.networking.error_backoffs = [1, 2, 4, 8, 15, 30, *[60] * 10]
    settings.persistence.finalizer = f"{models.GROUP}/finalizer"
    settings.persistence.diffbase_storage = _NoDiffBase()
    # Filter children on the API server, not in the client: the operator then never receives
    # (nor holds in memory) the cluster's other pods, Deployments and Services.
    managed = ",".join(f"{key}={value}" for key, value in MANAGED.items())
    for resource in (*CHILD_RESOURCES, PODS):
        settings.watching.label_selectors[resource[2]] = managed
    objects = logging.getLogger("kopf.objects")
    objects.addFilter(_SuccessFilter())
    if not log.isEnabledFor(logging.DEBUG):
        # Below WARNING kopf only narrates each handler run; skip building those records.
        objects.setLevel(logging.WARNING)
    cluster = Cluster(
        new_api_client(config.kubeconfig),
        instance=config.instance,
        timeout=(config.connect_timeout, config.read_timeout),
    )
    offload = Offload(config.workers)
    if config.peering:
        settings.peering.mandatory = True
        settings.peering.lifetime = config.peering_lifetime
        # Peering is mandatory when named: kopf pauses until the peering object exists.
        cluster.ensure_peering(config.peering, list(config.namespaces))
    stop_metrics = metrics.serve(config.metrics_port) if config.metrics_port else None
    memo["running"] = Running(
        Reconciler(cluster, probe, offload), cluster, offload, stop_metrics, config.stuck_after
    )
    # Everything imported so far lives as long as the process: keep it out of the collector's
    # full passes, whose pauses otherwise grow with the imports (kopf, kubernetes, pydantic).
    gc.collect()
    gc.freeze()


@kopf.on.probe(id="progress")
def progress(memo: kopf.Memo, **_: Any) -> float:
    """/healthz: fails (HTTP 500) when a blocking call has outlived every deadline it has.

    Answering at all shows the event loop turns; kopf exits by itself on a dead watcher.
    """
    return heartbeat(memo)


def heartbeat(memo: kopf.Memo) -> float:
    """The age of the oldest blocking call under way; raises once it shows no progress."""
    running = memo.get("running")
    if not isinstance(running, Running):
        return 0.0
    age = running.offload.oldest_call_age()
    if age > running.stuck_after:
        raise kopf.PermanentError(f"a blocking call has run for {age:.0f}s: no progress")
    return round(age, 1)


@kopf.on.cleanup()
def close(memo: kopf.Memo, **_: Any) -> None:
    """When the operator stops, close what start-up opened."""
    running = memo.get("running")
    if isinstance(running, Running):
        running.close()


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
kopf.index(*PODS, labels=MANAGED, id="child_pods")(_pod_index)


# --- triggers ----------------------------------------------------------------------------------


@kopf.on.event(*RTD)
async def retool_deployment_changed(
    *, event: kopf.RawEvent, namespace: str | None, name: str, memo: kopf.Memo, **indexes: Any
) -> None:
    """When a RetoolDeployment changes, reconcile it; when it is gone, forget it."""
    key = (namespace or "", name)
    if event["type"] == "DELETED":
        reconciler(memo).forget(key)
        return
    await reconciler(memo).trigger(key, _view(indexes))


async def _child_changed(
    *, namespace: str | None, labels: kopf.Labels, memo: kopf.Memo, **indexes: Any
) -> None:
    """When a child or pod changes, reconcile the RetoolDeployment it belongs to."""
    key = _instance_key(namespace, labels)
    if key is not None and key in indexes["retool_deployments"]:
        await reconciler(memo).trigger(key, _view(indexes))


for _group, _version, _plural in (*CHILD_RESOURCES, PODS):
    kopf.on.event(_group, _version, _plural, labels=MANAGED, id=f"{_plural}-changed")(
        _child_changed
    )


@kopf.daemon(*RTD, cancellation_timeout=1.0)
async def wake(
    *,
    namespace: str | None,
    name: str,
    stopped: kopf.DaemonStopped,
    memo: kopf.Memo,
    **indexes: Any,
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
            due = asyncio.ensure_future(reconciler(memo).wait_until_due(key))
            await asyncio.wait({due, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if stopping.done():
                due.cancel()
                return
            await asyncio.shield(reconciler(memo).trigger(key, _view(indexes)))
    finally:
        stopping.cancel()
