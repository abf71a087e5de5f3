"""Scenario 2, fleet: N RetoolDeployments created at once (api replicas 1) until every one is
Ready; beside it the peer, the same children (a StatefulSet of 1, a Deployment of 1 and a
Service per instance, rendered by the operator's builders) created directly on a fresh control
plane with no operator, until every StatefulSet is Ready and every Deployment Available.

Both sides create their objects from 8 threads; the clock starts before the first create.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from kubernetes import client

from bench import kube, stats, workloads
from bench.cluster import BenchCluster
from bench.kube import Watch, create_namespace
from bench.operator import MeasuredOperator, delta
from tests.support import retool
from tests.support.pgserver import PostgresServer

log = logging.getLogger("bench")

NAMESPACE = "bench-fleet"
PEER_NAMESPACE = "bench-peer-fleet"


def _timeout(count: int) -> float:
    return 120.0 + 1.0 * count


def _ready_times(first_ready: dict[str, float], started: float) -> dict[str, float]:
    values = [at - started for at in first_ready.values()]
    return {q: stats.percentile(values, p) for q, p in (("p50", 50), ("p90", 90))}


def operator_fleet(
    cluster: BenchCluster, operator: MeasuredOperator, db: PostgresServer, count: int
) -> dict[str, Any]:
    """Create COUNT RetoolDeployments at once; time until all are Ready; the operator's cost."""
    api = cluster.api
    create_namespace(api, NAMESPACE)
    workloads.create_secrets(api, NAMESPACE, db)
    bodies = [workloads.rtd(f"f{i:04d}", db, {"api": {"replicas": 1}}) for i in range(count)]
    ready = workloads.ReadySet(workloads.rtd_ready)
    watch = Watch(
        client.CustomObjectsApi(api).list_namespaced_custom_object,
        retool.GROUP,
        retool.VERSION,
        NAMESPACE,
        retool.PLURAL,
        on_event=ready.on_event,
    )
    with watch:
        writes_before = operator.writes()
        reconciles_before = operator.reconciles()
        plane_before = cluster.control_plane_cpu()
        usage = operator.usage()
        started = time.monotonic()
        kube.parallel(lambda i: workloads.create_rtd(api, NAMESPACE, bodies[i]), count)
        created = time.monotonic()
        last = ready.wait(count, _timeout(count))
        window = operator.window(usage)
        plane = delta(cluster.control_plane_cpu(), plane_before)
        writes = delta(operator.writes(), writes_before)
        reconciles = operator.reconciles() - reconciles_before
    return {
        "count": count,
        "create_seconds": created - started,
        "all_ready_seconds": last - started,
        "ready_seconds": _ready_times(ready.first_ready, started),
        "operator_cpu_seconds": window.cpu_seconds,
        "operator_peak_rss_mb": window.peak_rss_mb,
        "operator_rss_end_mb": window.rss_end_mb,
        "reconciles": reconciles,
        "operator_writes": writes,
        "operator_writes_total": sum(writes.values()),
        "control_plane_cpu_seconds": plane,
    }


def peer_fleet(cluster: BenchCluster, db: PostgresServer, count: int) -> dict[str, Any]:
    """Create the children of COUNT instances directly; time until all are Ready/Available."""
    api = cluster.api
    apps = client.AppsV1Api(api)
    create_namespace(api, PEER_NAMESPACE)
    workloads.create_secrets(api, PEER_NAMESPACE, db)
    children = [workloads.peer_children(f"p{i:04d}", PEER_NAMESPACE, db, 1) for i in range(count)]
    statefulsets = workloads.ReadySet(workloads.statefulset_ready)
    deployments = workloads.ReadySet(workloads.deployment_settled)
    watches = [
        Watch(apps.list_namespaced_stateful_set, PEER_NAMESPACE, on_event=statefulsets.on_event),
        Watch(apps.list_namespaced_deployment, PEER_NAMESPACE, on_event=deployments.on_event),
    ]

    def create(i: int) -> None:
        for body in children[i]:
            workloads.create_child(api, body)

    for watch in watches:
        watch.start()
    try:
        plane_before = cluster.control_plane_cpu()
        started = time.monotonic()
        kube.parallel(create, count)
        created = time.monotonic()
        last = max(
            statefulsets.wait(count, _timeout(count)), deployments.wait(count, _timeout(count))
        )
        plane = delta(cluster.control_plane_cpu(), plane_before)
    finally:
        for watch in watches:
            watch.stop()
    per_instance = {
        name.removesuffix("-api"): at
        for name, at in deployments.first_ready.items()
        if name.endswith("-api")
    }
    for name, at in statefulsets.first_ready.items():
        key = name.removesuffix("-jobs-runner")
        per_instance[key] = max(per_instance.get(key, at), at)
    return {
        "count": count,
        "create_seconds": created - started,
        "all_ready_seconds": last - started,
        "ready_seconds": _ready_times(per_instance, started),
        "control_plane_cpu_seconds": plane,
    }
