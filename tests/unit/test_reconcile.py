"""The real reconcile path (queue, observe, decide, apply) against a fake of our Cluster wrapper:
coalescing, conflict retries, write de-duplication and the Events a decision posts."""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
import urllib3
from kubernetes.client import ApiException

from retool_operator.cluster.kube import ConflictError
from retool_operator.core import freshness
from retool_operator.runtime.offload import Offload
from retool_operator.runtime.reconcile import Reconciler, View
from tests.unit.fake_cluster import KEY, FakeCluster, reachable_database

OLD, NEW = "3.148.0-stable", "3.196.1-stable"


@pytest.fixture
def cluster() -> FakeCluster:
    return FakeCluster()


@pytest.fixture
def offload() -> Iterator[Offload]:
    pool = Offload(2)
    yield pool
    pool.close()


def run(work: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(work())  # type: ignore[arg-type]


async def settle(reconciler: Reconciler, cluster: FakeCluster, rounds: int = 10) -> None:
    """Reconcile until a reconcile writes nothing (the fake's controllers act at once)."""
    for _ in range(rounds):
        before = len(cluster.writes)
        await reconciler.trigger(KEY, cluster.view())
        if len(cluster.writes) == before:
            return
    raise AssertionError(f"still writing after {rounds} reconciles: {cluster.writes[-5:]}")


def reconcile_once(cluster: FakeCluster, offload: Offload) -> None:
    """One reconcile on a fresh Reconciler, the watches up to date."""

    async def scenario() -> None:
        reconciler = Reconciler(cluster, reachable_database, offload)
        await reconciler.trigger(KEY, cluster.view())

    run(scenario)


def phase(cluster: FakeCluster) -> str | None:
    found = cluster.retool_deployment["status"].get("phase")
    return str(found) if found is not None else None


def reasons(cluster: FakeCluster) -> list[str]:
    return [event.reason for event in cluster.events]


def test_install_then_a_quiet_reconcile_sends_no_write(
    cluster: FakeCluster, offload: Offload
) -> None:
    async def scenario() -> None:
        reconciler = Reconciler(cluster, reachable_database, offload)
        await settle(reconciler, cluster)
        assert phase(cluster) == "Ready"
        assert reasons(cluster).count("Installed") == 1
        writes = list(cluster.writes)
        await reconciler.trigger(KEY, cluster.view())
        assert cluster.writes == writes

    run(scenario)


def test_triggers_during_a_reconcile_coalesce_into_one_more(
    cluster: FakeCluster, offload: Offload
) -> None:
    """Three triggers that arrive while a reconcile runs lead to exactly one more reconcile."""
    entered, release = threading.Event(), threading.Event()

    def hold() -> None:
        entered.set()
        assert release.wait(10)

    cluster.on_call["read-secret"] = hold
    looks = 0
    view = cluster.view()

    def counted(key: tuple[str, str]) -> dict[str, object] | None:
        nonlocal looks
        looks += 1
        return view.retool_deployment(key)

    counting = View(retool_deployment=counted, children=view.children, pods=view.pods)

    async def scenario() -> None:
        reconciler = Reconciler(cluster, reachable_database, offload)
        first = asyncio.ensure_future(reconciler.trigger(KEY, counting))
        assert await asyncio.to_thread(entered.wait, 10)
        cluster.on_call.clear()
        later = [asyncio.ensure_future(reconciler.trigger(KEY, counting)) for _ in range(3)]
        await asyncio.sleep(0)  # one loop turn: each later trigger has taken its ticket
        release.set()
        await asyncio.gather(first, *later)

    run(scenario)
    assert looks == 2


def test_a_status_conflict_rereads_the_object_and_decides_again(
    cluster: FakeCluster, offload: Offload
) -> None:
    cluster.fail("patch-status", ConflictError("retool"))

    reconcile_once(cluster, offload)
    # One re-read after the conflict; the others are the fence's, before workloads are created.
    assert cluster.calls["read"] == 3
    assert cluster.calls["patch-status"] == 2
    assert phase(cluster) == "Installing"


def test_conflicts_that_persist_give_up_after_three_attempts(
    cluster: FakeCluster, offload: Offload
) -> None:
    cluster.fail("patch-status", *(ConflictError("retool") for _ in range(3)))

    reconcile_once(cluster, offload)
    assert cluster.calls["patch-status"] == 3
    assert cluster.calls["read"] == 5  # three re-reads, two fence reads
    assert ("patch-status", "retool") not in cluster.writes


def test_a_child_written_is_not_sent_again_while_the_watch_lags(
    cluster: FakeCluster, offload: Offload
) -> None:
    async def scenario() -> None:
        reconciler = Reconciler(cluster, reachable_database, offload)
        await settle(reconciler, cluster)
        cluster.edit_spec(service={"port": 8080})
        stale = cluster.lagging_view()  # the old Service, whatever we write
        await reconciler.trigger(KEY, stale)
        # The api's and the jobs-runner's (headless) Services created, then the api's changed.
        assert cluster.writes.count(("apply", "Service")) == 3
        await reconciler.trigger(KEY, stale)
        await reconciler.trigger(KEY, stale)
        assert cluster.writes.count(("apply", "Service")) == 3
        # Once the watch shows the write, nothing is left to send.
        writes = len(cluster.writes)
        await reconciler.trigger(KEY, cluster.view())
        assert len(cluster.writes) == writes

    run(scenario)


def test_an_upgrade_posts_each_step_event_once(cluster: FakeCluster, offload: Offload) -> None:
    async def scenario() -> None:
        reconciler = Reconciler(cluster, reachable_database, offload)
        await settle(reconciler, cluster)
        cluster.events.clear()
        cluster.edit_spec(version=NEW)
        await settle(reconciler, cluster, rounds=20)

    run(scenario)
    assert phase(cluster) == "Ready"
    assert cluster.retool_deployment["status"]["currentVersion"] == NEW
    assert reasons(cluster).count("UpgradeStarted") == 1
    assert reasons(cluster).count("UpgradeSucceeded") == 1
    steps = [e.message for e in cluster.events if e.reason == "UpgradeStep"]
    assert len(steps) == len(set(steps)), steps


def test_a_5xx_on_a_child_write_still_posts_the_recorded_steps_events(
    cluster: FakeCluster, offload: Offload
) -> None:
    """The step is written ahead of the children; its Events go out even when the first child
    write then fails, and exactly once when the retry carries the step out."""

    async def scenario() -> None:
        reconciler = Reconciler(cluster, reachable_database, offload)
        await settle(reconciler, cluster)
        cluster.events.clear()
        cluster.edit_spec(version=NEW)
        cluster.fail("scale", ApiException(status=500, reason="Internal Server Error"))
        await reconciler.trigger(KEY, cluster.view())
        assert cluster.calls["scale"] == 1  # the write that failed
        upgrade = cluster.retool_deployment["status"]["upgrade"]
        assert upgrade["step"] == "StoppingServices"
        assert reasons(cluster).count("UpgradeStarted") == 1
        posted = list(cluster.events)
        await reconciler.trigger(KEY, cluster.view())  # the retry
        assert ("scale", "retool-api") in cluster.writes
        assert cluster.events[: len(posted)] == posted
        await settle(reconciler, cluster, rounds=20)

    run(scenario)
    assert reasons(cluster).count("UpgradeStarted") == 1
    assert reasons(cluster).count("UpgradeSucceeded") == 1


def condition(cluster: FakeCluster, kind: str) -> dict[str, Any] | None:
    conditions = cluster.retool_deployment["status"].get("conditions") or []
    return next((c for c in conditions if c["type"] == kind), None)


def test_an_http_route_without_the_gateway_api_is_a_condition_and_nothing_else(
    cluster: FakeCluster, offload: Offload, monkeypatch: pytest.MonkeyPatch
) -> None:
    """spec.httpRoute in a cluster without Gateway API: everything else runs; a condition says
    what is missing; installing the CRDs lets the route be written."""
    cluster.unserved.add("httproutes")
    cluster.edit_spec(httpRoute={"parentRefs": [{"name": "gateway"}]})

    async def scenario() -> None:
        reconciler = Reconciler(cluster, reachable_database, offload)
        await settle(reconciler, cluster)
        assert phase(cluster) == "Ready"
        assert ("apply", "HTTPRoute") not in cluster.writes
        gateway = condition(cluster, "GatewayAPIAvailable")
        assert gateway is not None
        assert (gateway["status"], gateway["reason"]) == ("False", "GatewayAPIMissing")
        assert "install the Gateway API CRDs" in gateway["message"]
        # Ready and Stalled are about Retool: it runs.
        assert (condition(cluster, "Ready") or {}).get("status") == "True"
        assert (condition(cluster, "Stalled") or {}).get("status") == "False"
        # Discovery is asked once, not at every reconcile.
        asked = cluster.calls["discovery"]
        await settle(reconciler, cluster)
        assert cluster.calls["discovery"] == asked
        # The CRDs arrive (and the cached answer expires): the route is written.
        cluster.unserved.clear()
        monkeypatch.setattr(freshness, "DISCOVERY_TTL_SECONDS", 0.0)
        cluster.edit_spec(httpRoute={"parentRefs": [{"name": "gateway"}], "hostnames": ["a.b"]})
        await settle(reconciler, cluster)
        assert ("apply", "HTTPRoute") in cluster.writes
        gateway = condition(cluster, "GatewayAPIAvailable")
        assert gateway is not None
        assert (gateway["status"], gateway["reason"]) == ("True", "HTTPRouteServed")
        # Dropping spec.httpRoute drops the condition and the route.
        cluster.edit_spec(httpRoute=None)
        await settle(reconciler, cluster)
        assert condition(cluster, "GatewayAPIAvailable") is None
        assert ("delete", "HTTPRoute") in cluster.writes

    run(scenario)


# --- error classes: conflict (fencing), transient, refused --------------------------------------


def images(cluster: FakeCluster) -> set[str]:
    return {
        c["image"]
        for body in cluster.children.values()
        if body["kind"] in {"Deployment", "StatefulSet"}
        for c in body["spec"]["template"]["spec"]["containers"]
    }


def test_a_stale_view_never_puts_an_old_image_back(cluster: FakeCluster, offload: Offload) -> None:
    """Conflict class: a replica whose view of the RetoolDeployment predates the upgrade (a healed
    partition) sees children of the new version; the image write its stale decision calls for
    is fenced by a fresh read, and the decision is made again on the latest object."""

    async def scenario() -> None:
        reconciler = Reconciler(cluster, reachable_database, offload)
        await settle(reconciler, cluster)
        stale = cluster.lagging_view()
        cluster.edit_spec(version=NEW)
        await settle(reconciler, cluster, rounds=20)
        assert {i.rsplit(":", 1)[1] for i in images(cluster)} == {NEW}
        healed = Reconciler(cluster, reachable_database, offload)
        live = cluster.view()
        mixed = View(
            retool_deployment=stale.retool_deployment, children=live.children, pods=live.pods
        )
        reads = cluster.calls["read"]
        writes = len(cluster.writes)
        await healed.trigger(KEY, mixed)
        assert cluster.calls["read"] > reads  # the fence read the latest object
        rollouts = {("apply", "Deployment"), ("apply", "StatefulSet")}
        assert not [w for w in cluster.writes[writes:] if w in rollouts or w[0] == "scale"]
        assert {i.rsplit(":", 1)[1] for i in images(cluster)} == {NEW}

    run(scenario)


def test_a_timeout_backs_off_with_jitter_and_posts_the_steps_events_once(
    cluster: FakeCluster, offload: Offload, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Transient class: a child write with no answer (a read timeout) is retried after a
    jittered back-off that grows, not at a fixed rate; the step's Events go out once."""
    timeout = urllib3.exceptions.ReadTimeoutError(None, "/apis", "read timed out")  # type: ignore[arg-type]

    async def scenario() -> None:
        reconciler = Reconciler(cluster, reachable_database, offload)
        await settle(reconciler, cluster)
        cluster.events.clear()
        cluster.edit_spec(version=NEW)
        cluster.fail("scale", timeout, timeout)
        monkeypatch.setattr(random, "random", lambda: 0.0)
        waits = []
        for _ in range(2):
            await reconciler.trigger(KEY, cluster.view())
            waits.append(reconciler.queue._slots[KEY].due - time.monotonic())
        # The lowest jitter: 0.5 s, then 1 s (less the time the reconcile took since).
        assert 0.0 < waits[0] <= 0.5
        assert 0.5 < waits[1] <= 1.0
        assert cluster.retool_deployment["status"]["upgrade"]["step"] == "StoppingServices"
        await settle(reconciler, cluster, rounds=20)

    run(scenario)
    assert cluster.calls["scale"] >= 3
    assert reasons(cluster).count("UpgradeStarted") == 1
    assert reasons(cluster).count("UpgradeSucceeded") == 1


def test_a_refused_write_is_a_stalled_condition_naming_the_object_and_the_message(
    cluster: FakeCluster, offload: Offload, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Refused class: a quota that forbids the api's Deployment shows in Stalled with the
    object and the API server's words, one Warning Event; once allowed, it clears."""
    message = 'deployments.apps "retool-api" is forbidden: exceeded quota: pods'
    refused = ApiException(status=403, reason="Forbidden")
    refused.body = json.dumps({"kind": "Status", "message": message})
    apply = cluster.apply
    blocked = True

    def quota(manifest: Any) -> str:
        if (
            blocked
            and manifest["kind"] == "Deployment"
            and manifest["metadata"]["name"] == "retool-api"
        ):
            raise refused
        return apply(manifest)

    monkeypatch.setattr(cluster, "apply", quota)

    async def scenario() -> None:
        nonlocal blocked
        reconciler = Reconciler(cluster, reachable_database, offload)
        for _ in range(3):
            await reconciler.trigger(KEY, cluster.view())
        stalled = condition(cluster, "Stalled")
        assert stalled is not None
        assert (stalled["status"], stalled["reason"]) == ("True", "WriteRefused")
        assert stalled["message"] == f"Deployment retool-api: HTTP 403: {message}"
        assert reasons(cluster).count("WriteRefused") == 1
        # Backing off: the third failure in a row waits at least 2 s (1 s of slack for the load).
        assert reconciler.queue._slots[KEY].due - time.monotonic() > 1.0
        blocked = False
        await settle(reconciler, cluster)
        assert phase(cluster) == "Ready"
        assert (condition(cluster, "Stalled") or {}).get("status") == "False"

    run(scenario)
