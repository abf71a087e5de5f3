"""Scenarios 3 and 5, idle cost: with every RetoolDeployment Ready and nothing changing, what the
operator sends to the API server and what it costs in CPU and memory over a window.

Writes are counted twice: by the operator (`retool_operator_api_writes_total`) and at the API
server (`apiserver_request_total`, before/after). The API server's counter has no client label,
so its delta is shown by resource and verb; writes to the resources the operator writes are
singled out, and nothing is subtracted. The window starts after a short settle, so that status
updates still trickling in from the last pods do not count as idle.
"""

from __future__ import annotations

import logging
import math
import time
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from kubernetes import client

from bench import kube
from bench.cluster import BenchCluster
from bench.kube import raw
from bench.operator import MeasuredOperator, delta

log = logging.getLogger("bench")


def _events_since(api: client.ApiClient, since: float) -> dict[str, int]:
    """Events created at or after SINCE (wall clock), by `component reason kind`: who the API
    server's Event writes came from."""
    body = raw(client.CoreV1Api(api).list_event_for_all_namespaces(_preload_content=False))
    found: dict[str, int] = defaultdict(int)
    for item in body.get("items") or []:
        created = datetime.strptime(item["metadata"]["creationTimestamp"], "%Y-%m-%dT%H:%M:%SZ")
        if created.replace(tzinfo=UTC).timestamp() < math.floor(since):
            continue
        component = item.get("reportingComponent") or (item.get("source") or {}).get(
            "component", "?"
        )
        kind = (item.get("involvedObject") or {}).get("kind", "?")
        found[f"{component} {item.get('reason', '?')} {kind}"] += 1
    return dict(sorted(found.items()))


def run(
    cluster: BenchCluster, operator: MeasuredOperator, count: int, seconds: float, settle: float
) -> dict[str, Any]:
    """Measure the operator over SECONDS of idleness with COUNT RetoolDeployments present."""
    time.sleep(settle)
    kubeconfig = str(cluster.kubeconfig)
    apiserver_before = kube.apiserver_requests(kubeconfig)
    writes_before = operator.writes()
    reconciles_before = operator.reconciles()
    plane_before = cluster.control_plane_cpu()
    usage = operator.usage()
    wall = time.time()
    time.sleep(seconds)
    window = operator.window(usage)
    plane = delta(cluster.control_plane_cpu(), plane_before)
    reconciles = operator.reconciles() - reconciles_before
    writes = delta(operator.writes(), writes_before)
    requests = kube.apiserver_requests(kubeconfig).minus(apiserver_before)
    minutes = window.seconds / 60.0
    operator_resources = requests.operator_resource_writes()
    return {
        "count": count,
        "seconds": window.seconds,
        "operator_cpu_seconds": window.cpu_seconds,
        "operator_cpu_percent": window.cpu_percent,
        "operator_rss_mb": window.rss_end_mb,
        "operator_rss_max_mb": window.rss_max_sampled_mb,
        "operator_peak_rss_mb": window.peak_rss_mb,
        "reconciles": reconciles,
        "operator_writes": writes,
        "operator_writes_per_minute": sum(writes.values()) / minutes,
        "apiserver_writes": requests.writes(),
        "apiserver_operator_resource_writes": operator_resources,
        "apiserver_operator_resource_writes_per_minute": sum(operator_resources.values()) / minutes,
        "apiserver_reads": requests.reads(),
        "events_created": _events_since(cluster.api, wall),
        "control_plane_cpu_seconds": plane,
    }
