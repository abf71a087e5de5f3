"""Scenario 1, reaction latency: how soon a change of `spec.api.replicas` reaches the api
Deployment, beside how soon a change of a plain Deployment's replicas reaches its ReplicaSet
(kube-controller-manager's Deployment controller).

One change at a time, operator and peer interleaved (so a burst of background load hits both):
PATCH, note the instant the response arrived, wait until a watch sees the child's
`spec.replicas` take the new value; then wait until everything settled (pods Ready, the
operator's status caught up) and a random 0-100 ms more, so no change rides on the last one's
aftermath or on the phase of the operator's 5 s timer.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from kubernetes import client

from bench import stats, workloads
from bench.kube import Body, Watch, WatchEvent, create_namespace, raw
from tests.support.pgserver import PostgresServer

log = logging.getLogger("bench")

NAME = "react"
PEER = "react-peer"
SETTLE_TIMEOUT = 120.0
CHANGE_TIMEOUT = 60.0


class ValueTracker:
    """The history of one value of the watched objects (e.g. spec.replicas), as watches see it."""

    def __init__(self, extract: Callable[[Mapping[str, Any]], object]) -> None:
        self._extract = extract
        self._cond = threading.Condition()
        self._last: dict[str, object] = {}
        self.history: list[tuple[float, str, object]] = []  # (monotonic, object name, value)

    def on_event(self, event: WatchEvent) -> None:
        """Watch callback: record the value when it changes."""
        name = event.object["metadata"]["name"]
        value = None if event.type == "DELETED" else self._extract(event.object)
        with self._cond:
            if name in self._last and self._last[name] == value:
                return
            self._last[name] = value
            self.history.append((event.monotonic, name, value))
            self._cond.notify_all()

    def mark(self) -> int:
        """A position in the history: `wait` looks only at what comes after it."""
        with self._cond:
            return len(self.history)

    def wait(self, since: int, value: object, timeout: float) -> float:
        """The monotonic time at which VALUE was first seen after position SINCE."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for at, _name, seen in self.history[since:]:
                    if seen == value:
                        return at
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{value!r} not seen within {timeout:.0f}s")
                self._cond.wait(left)


def _replicas(body: Mapping[str, Any]) -> object:
    return (body.get("spec") or {}).get("replicas")


def _poll(probe: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not settle within {timeout:.0f}s")
        time.sleep(0.05)


@dataclass
class _Subject:
    """One side of the comparison: how to change it, how to see it changed, when it settled."""

    patch: Callable[[int], None]
    tracker: ValueTracker
    settled: Callable[[int], bool]
    latencies: list[float]
    from_request: list[float]


def run(
    api: client.ApiClient,
    db: PostgresServer,
    changes: int,
    namespace: str,
    seed: int = 6,
) -> dict[str, Any]:
    """CHANGES replica changes of a RetoolDeployment and of a plain Deployment, in NAMESPACE."""
    apps = client.AppsV1Api(api)
    create_namespace(api, namespace)
    workloads.create_secrets(api, namespace, db)
    workloads.create_rtd(api, namespace, workloads.rtd(NAME, db, {"api": {"replicas": 1}}))
    # The api Deployment, and the ServiceAccount its pods run as.
    peer_children = workloads.peer_children(PEER, namespace, db, 1)
    for child in peer_children:
        if child["kind"] == "ServiceAccount":
            workloads.create_child(api, child)
    peer = next(c for c in peer_children if c["kind"] == "Deployment")
    workloads.create_child(api, peer)
    peer_name = peer["metadata"]["name"]
    _poll(lambda: _rtd_settled(api, namespace, 1), SETTLE_TIMEOUT, "the RetoolDeployment")
    _poll(lambda: _peer_settled(apps, namespace, peer_name, 1), SETTLE_TIMEOUT, "the peer")

    operator_side = _Subject(
        patch=lambda n: workloads.patch_rtd_spec(api, namespace, NAME, {"api": {"replicas": n}}),
        tracker=ValueTracker(_replicas),
        settled=lambda n: _rtd_settled(api, namespace, n),
        latencies=[],
        from_request=[],
    )

    def patch_peer(replicas: int) -> None:
        apps.patch_namespaced_deployment(
            peer_name,
            namespace,
            {"spec": {"replicas": replicas}},
            _content_type=workloads.MERGE,
            _preload_content=False,
        )

    peer_side = _Subject(
        patch=patch_peer,
        tracker=ValueTracker(_replicas),
        settled=lambda n: _peer_settled(apps, namespace, peer_name, n),
        latencies=[],
        from_request=[],
    )
    watches = [
        Watch(
            apps.list_namespaced_deployment,
            namespace,
            field_selector=f"metadata.name={NAME}-api",
            on_event=operator_side.tracker.on_event,
        ),
        # The peer's ReplicaSets: the Deployment controller scales the current one.
        Watch(
            apps.list_namespaced_replica_set,
            namespace,
            label_selector=f"app.kubernetes.io/instance={PEER}",
            on_event=peer_side.tracker.on_event,
        ),
    ]
    rng = random.Random(seed)
    started = time.monotonic()
    try:
        for watch in watches:
            watch.start()
        for i in range(changes):
            target = 2 if i % 2 == 0 else 1
            for subject in (operator_side, peer_side):
                time.sleep(rng.uniform(0.0, 0.1))
                mark = subject.tracker.mark()
                sent = time.monotonic()
                subject.patch(target)
                answered = time.monotonic()
                seen = subject.tracker.wait(mark, target, CHANGE_TIMEOUT)
                subject.latencies.append(seen - answered)
                subject.from_request.append(seen - sent)
                _poll(partial(subject.settled, target), SETTLE_TIMEOUT, "a replica change")
    finally:
        for watch in watches:
            watch.stop()
    operator_summary = stats.summary(operator_side.latencies)
    peer_summary = stats.summary(peer_side.latencies)
    return {
        "changes": changes,
        "seconds": time.monotonic() - started,
        "operator": operator_summary,
        "peer": peer_summary,
        "ratio": {
            q: stats.ratio(operator_summary[q], peer_summary[q]) for q in ("p50", "p90", "p99")
        },
        # The same, timed from the moment the PATCH was sent (never negative; includes the
        # PATCH's own round trip, the same for both sides).
        "from_request": {
            "operator": stats.summary(operator_side.from_request),
            "peer": stats.summary(peer_side.from_request),
        },
        "operator_latencies": operator_side.latencies,
        "peer_latencies": peer_side.latencies,
        "operator_from_request": operator_side.from_request,
        "peer_from_request": peer_side.from_request,
    }


def _rtd_settled(api: client.ApiClient, namespace: str, replicas: int) -> bool:
    body = workloads.get_rtd(api, namespace, NAME)
    status = body.get("status") or {}
    component = status.get("api") or {}
    return (
        workloads.rtd_ready(body)
        and component.get("replicas") == replicas
        and component.get("readyReplicas") == replicas
    )


def _peer_settled(apps: client.AppsV1Api, namespace: str, name: str, replicas: int) -> bool:
    body: Body = raw(apps.read_namespaced_deployment(name, namespace, _preload_content=False))
    return (body.get("spec") or {}).get("replicas") == replicas and workloads.deployment_settled(
        body
    )
