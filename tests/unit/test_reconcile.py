"""The real reconcile path (queue, observe, decide, apply) against a fake of our Cluster wrapper:
coalescing, conflict retries, write de-duplication and the Events a decision posts."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
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
    assert cluster.calls["read"] == 1
    assert cluster.calls["patch-status"] == 2
    assert phase(cluster) == "Installing"


def test_conflicts_that_persist_give_up_after_three_attempts(
    cluster: FakeCluster, offload: Offload
) -> None:
    cluster.fail("patch-status", *(ConflictError("retool") for _ in range(3)))

    reconcile_once(cluster, offload)
    assert cluster.calls["patch-status"] == 3
    assert cluster.calls["read"] == 3
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
