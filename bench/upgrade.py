"""Scenario 4, upgrade overhead: a minor upgrade (3.196.1 -> 3.200.0) under each strategy, with
a known kwok readiness delay on the jobs-runner (its pods become Ready that long after they
start: the stand-in for a migration), and how much longer each step takes than that.

Per step, from three sources:
- the operator's Events (`UpgradeStarted`, `UpgradeStep`, `UpgradeSucceeded`; eventTime is the
  decision's instant to the microsecond): the step's duration, and `overhead` = duration minus
  the known delay (it includes Kubernetes' own controllers and kwok, not only the operator);
- `retool_operator_upgrade_step_duration_seconds` (before/after deltas): the operator's own view;
- the bench's watches on the pods and workloads: `reaction`, the time from the last change in
  the cluster that the step waited for to the operator's decision to leave the step (the
  operator's share of the overhead), and `act`, the time from the decision to the first change
  of a child (status write, Events, then the apply).
For RollingUpdate (and Recreate, for comparison) an EndpointSlice watch gives the seconds during
which the api Service had no ready endpoint.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from kubernetes import client

from bench import workloads
from bench.kube import Body, Watch, WatchEvent, create_namespace, raw
from bench.operator import OperatorProcess
from tests.support.pgserver import PostgresServer

log = logging.getLogger("bench")

NAME = "up"
STEP_METRIC = "retool_operator_upgrade_step_duration_seconds"
TIMEOUT = 180.0


class ClusterLog:
    """Wall-clock instants of every change to the instance's pods and workloads, and the
    api Service's ready endpoints over time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.changes: list[tuple[float, str]] = []  # (wall, what)
        self._slices: dict[str, int] = {}
        self.endpoints: list[tuple[float, int]] = []  # (wall, ready endpoints in all slices)

    def on_child(self, event: WatchEvent) -> None:
        """Watch callback for pods, Deployments and StatefulSets."""
        if event.type == "SYNC":
            return
        obj = event.object
        kind = "pod" if "containers" in (obj.get("spec") or {}) else "workload"
        with self._lock:
            self.changes.append((event.wall, f"{kind} {obj['metadata']['name']} {event.type}"))

    def on_slice(self, event: WatchEvent) -> None:
        """Watch callback for the api Service's EndpointSlices."""
        obj = event.object
        ready = 0
        if event.type != "DELETED":
            for endpoint in obj.get("endpoints") or []:
                if (endpoint.get("conditions") or {}).get("ready"):
                    ready += 1
        with self._lock:
            self._slices[obj["metadata"]["name"]] = ready
            self.endpoints.append((event.wall, sum(self._slices.values())))

    def without_endpoint(self, start: float, end: float) -> tuple[float, int | None]:
        """Seconds in [START, END] with no ready endpoint; the fewest ready endpoints seen."""
        with self._lock:
            history = list(self.endpoints)
        current = 0
        for at, count in history:
            if at <= start:
                current = count
        fewest: int | None = current if history else None
        dark = 0.0
        since = start
        for at, count in history:
            if at <= start or at > end:
                continue
            if current == 0:
                dark += at - since
            current, since = count, at
            fewest = count if fewest is None else min(fewest, count)
        if current == 0:
            dark += end - since
        return dark, fewest


def _parse_time(text: str) -> float:
    for pattern in ("%Y-%m-%dT%H:%M:%S.%fZ", "%Y-%m-%dT%H:%M:%SZ"):
        try:
            return datetime.strptime(text, pattern).replace(tzinfo=UTC).timestamp()
        except ValueError:
            continue
    raise ValueError(f"unreadable time {text!r}")


def _events(api: client.ApiClient, namespace: str, since: float) -> list[tuple[float, str, str]]:
    """(eventTime, reason, message) of the RetoolDeployment's Events since SINCE, in order."""
    body = raw(
        client.CoreV1Api(api).list_namespaced_event(
            namespace,
            field_selector=f"involvedObject.name={NAME},involvedObject.kind=RetoolDeployment",
            _preload_content=False,
        )
    )
    found = []
    for item in body.get("items") or []:
        stamp = item.get("eventTime") or item.get("firstTimestamp")
        at = _parse_time(stamp)
        if at >= since - 1.0:
            found.append((at, item.get("reason", ""), item.get("message", "")))
    return sorted(found)


def _step_metric(operator: OperatorProcess) -> dict[str, tuple[float, float]]:
    samples = operator.samples()
    sums = {labels["step"]: v for labels, v in samples.get(f"{STEP_METRIC}_sum", [])}
    counts = {labels["step"]: v for labels, v in samples.get(f"{STEP_METRIC}_count", [])}
    return {step: (sums[step], counts.get(step, 0.0)) for step in sums}


def _ready_on(api: client.ApiClient, namespace: str, version: str) -> bool:
    body = workloads.get_rtd(api, namespace, NAME)
    status = body.get("status") or {}
    return (
        workloads.rtd_ready(body)
        and status.get("currentVersion") == version
        and "upgrade" not in status
    )


def _wait(api: client.ApiClient, namespace: str, version: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not _ready_on(api, namespace, version):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{namespace}/{NAME} not Ready on {version} within {TIMEOUT:.0f}s")
        time.sleep(0.1)


def _steps(events: list[tuple[float, str, str]]) -> list[tuple[str, float, float]]:
    """(step, start, end) from the Events of one upgrade."""
    marks: list[tuple[str, float]] = []
    end: float | None = None
    for at, reason, message in events:
        if reason == "UpgradeStarted":
            marks.append(("Preflight", at))
        elif reason == "UpgradeStep":
            marks.append((message.rsplit("step ", 1)[1].split(" ")[0], at))
        elif reason in {"UpgradeSucceeded", "UpgradeRolledBack"}:
            end = at
    if end is None:
        raise RuntimeError(f"no end of the upgrade among its Events: {events}")
    bounds = [at for _, at in marks[1:]] + [end]
    return [(step, start, stop) for (step, start), stop in zip(marks, bounds, strict=True)]


def run(
    api: client.ApiClient,
    operator: OperatorProcess,
    db: PostgresServer,
    strategy: str,
    ready_delay: float,
) -> dict[str, Any]:
    """One minor upgrade with STRATEGY; the jobs-runner's pods take READY_DELAY s to be Ready."""
    namespace = f"bench-upgrade-{strategy.lower()}"
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    discovery = client.DiscoveryV1Api(api)
    create_namespace(api, namespace)
    workloads.create_secrets(api, namespace, db)
    delay = f"{ready_delay:g}s"
    spec = {
        "api": {"replicas": 2},
        "jobsRunner": {"pod": {"annotations": {workloads.READY_DELAY: delay}}},
        "upgrade": {"strategy": strategy},
    }
    workloads.create_rtd(api, namespace, workloads.rtd(NAME, db, spec))
    _wait(api, namespace, workloads.VERSION)
    time.sleep(1.0)  # let the last status updates of the install pass
    known = {"MigratingDatabase": ready_delay}
    cluster = ClusterLog()
    selector = f"app.kubernetes.io/instance={NAME}"
    watches = [
        Watch(
            core.list_namespaced_pod, namespace, label_selector=selector, on_event=cluster.on_child
        ),
        Watch(
            apps.list_namespaced_deployment,
            namespace,
            label_selector=selector,
            on_event=cluster.on_child,
        ),
        Watch(
            apps.list_namespaced_stateful_set,
            namespace,
            label_selector=selector,
            on_event=cluster.on_child,
        ),
        Watch(
            discovery.list_namespaced_endpoint_slice,
            namespace,
            label_selector=f"kubernetes.io/service-name={NAME}-api",
            on_event=cluster.on_slice,
        ),
    ]
    for watch in watches:
        watch.start()
    try:
        metric_before = _step_metric(operator)
        patched = time.time()
        workloads.patch_rtd_spec(api, namespace, NAME, {"version": workloads.NEW_VERSION})
        _wait(api, namespace, workloads.NEW_VERSION)
        done = time.time()
        time.sleep(0.5)
        metric_after = _step_metric(operator)
    finally:
        for watch in watches:
            watch.stop()
    events = _events(api, namespace, patched)
    steps = _steps(events)
    metric = {
        step: (total - metric_before.get(step, (0.0, 0.0))[0])
        for step, (total, count) in metric_after.items()
        if count > metric_before.get(step, (0.0, 0.0))[1]
    }
    rows = [
        _step_row(step, start, end, known=known, metric=metric, cluster=cluster)
        for step, start, end in steps
    ]
    dark, fewest = cluster.without_endpoint(patched, done)
    first, last = steps[0][1], steps[-1][2]
    return {
        "strategy": strategy,
        "ready_delay_seconds": ready_delay,
        "steps": rows,
        "reaction_to_spec_change_seconds": first - patched,
        "upgrade_seconds": last - first,
        "known_delay_seconds": sum(known.get(step, 0.0) for step, _, _ in steps),
        "overhead_seconds": (last - first) - sum(known.get(s, 0.0) for s, _, _ in steps),
        "max_step_overhead_seconds": max(row["overhead"] for row in rows),
        "max_step_reaction_seconds": max(row["reaction"] for row in rows),
        "seconds_without_ready_endpoint": dark,
        "fewest_ready_endpoints": fewest,
        "events": [
            {"at": at - patched, "reason": reason, "message": message}
            for at, reason, message in events
        ],
    }


def _step_row(
    step: str,
    start: float,
    end: float,
    *,
    known: Mapping[str, float],
    metric: Mapping[str, float],
    cluster: ClusterLog,
) -> Body:
    during = [(at, what) for at, what in cluster.changes if start <= at < end]
    last_change = during[-1][0] if during else start
    return {
        "step": step,
        "seconds": end - start,
        "metric_seconds": metric.get(step),
        "known_delay": known.get(step, 0.0),
        "overhead": end - start - known.get(step, 0.0),
        "reaction": end - last_change,
        "act": (during[0][0] - start) if during else None,
        "cluster_changes": len(during),
    }
