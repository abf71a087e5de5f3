"""Prometheus metrics, all in one place. Labels are namespace/name/step: never a secret."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import Counter, Gauge, Histogram, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

from retool_operator.core.models import RetoolDeploymentStatus, Step, UpgradeResult
from retool_operator.core.statemachine import Decision

PREFIX = "retool_operator"

RECONCILES = Counter(f"{PREFIX}_reconcile_total", "Reconciles run, by result.", ["result"])
RECONCILE_ERRORS = Counter(f"{PREFIX}_reconcile_errors_total", "Reconciles that raised an error.")
RECONCILE_SECONDS = Histogram(
    f"{PREFIX}_reconcile_duration_seconds",
    "Time one reconcile took.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
API_WRITES = Counter(
    f"{PREFIX}_api_writes_total",
    "Write requests sent to the Kubernetes API, by kind and verb.",
    ["kind", "verb"],
)
UPGRADES_STARTED = Counter(f"{PREFIX}_upgrades_started_total", "Upgrades started.")
UPGRADES_SUCCEEDED = Counter(f"{PREFIX}_upgrades_succeeded_total", "Upgrades that succeeded.")
UPGRADES_ROLLED_BACK = Counter(f"{PREFIX}_upgrades_rolled_back_total", "Upgrades rolled back.")
UPGRADES_FAILED = Counter(f"{PREFIX}_upgrades_failed_total", "Upgrades that failed.")
UPGRADE_SECONDS = Histogram(
    f"{PREFIX}_upgrade_duration_seconds",
    "Time from the start of an upgrade to its end, by result.",
    ["result"],
    buckets=(10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200),
)
STEP_SECONDS = Histogram(
    f"{PREFIX}_upgrade_step_duration_seconds",
    "Time spent in each upgrade step.",
    ["step"],
    buckets=(0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800),
)
CURRENT_STEP = Gauge(
    f"{PREFIX}_upgrade_step",
    "1 for the step each RetoolDeployment's upgrade is in (no series when none is running).",
    ["namespace", "name", "step"],
)
API_DESIRED = Gauge(
    f"{PREFIX}_api_replicas_desired", "Desired api replicas.", ["namespace", "name"]
)
API_READY = Gauge(f"{PREFIX}_api_replicas_ready", "Ready api replicas.", ["namespace", "name"])
JOBS_RUNNER_READY = Gauge(
    f"{PREFIX}_jobs_runner_ready", "1 when the jobs-runner pod is Ready.", ["namespace", "name"]
)
DATABASE_REACHABLE = Gauge(
    f"{PREFIX}_database_reachable",
    "1 when the last database probe connected, 0 when it failed.",
    ["namespace", "name"],
)
STALLED = Gauge(
    f"{PREFIX}_stalled",
    "1 when the RetoolDeployment needs a person (Stalled=True).",
    ["namespace", "name", "reason"],
)


READINESS_PATH = "/readyz"


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """No access log: Prometheus scrapes and probes are not news."""


def _app() -> Callable[[dict[str, Any], Any], Iterable[bytes]]:
    """/metrics (any other path too, as prometheus_client serves it) and the readiness probe.

    Readiness means "what the metrics Service routes to answers": this server runs once the
    operator has started (handlers.configure), and /readyz costs nothing, unlike a scrape.
    The liveness probe is kopf's /healthz on its own port: it fails only when the loop is stuck.
    """
    metrics_app = make_wsgi_app()

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == READINESS_PATH:
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"ok\n"]
        return metrics_app(environ, start_response)  # type: ignore[no-any-return]

    return app


def serve(port: int) -> Callable[[], None]:
    """Expose /metrics and /readyz on PORT (all interfaces, as a pod's port); returns what
    stops it."""
    server = make_server(
        "0.0.0.0",  # noqa: S104 (a pod's port)
        port,
        _app(),
        ThreadingWSGIServer,
        handler_class=_QuietHandler,
    )
    thread = threading.Thread(target=server.serve_forever, name="metrics", daemon=True)
    thread.start()

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join()

    return stop


def observe_reconcile(result: str, seconds: float) -> None:
    """Count one reconcile and its duration."""
    RECONCILES.labels(result).inc()
    RECONCILE_SECONDS.observe(seconds)
    if result == "error":
        RECONCILE_ERRORS.inc()


def _clear(gauge: Gauge, namespace: str, name: str) -> None:
    """Drop every series of GAUGE for one RetoolDeployment."""
    # prometheus_client offers no public way to list a metric's label sets.
    for labels in list(gauge._metrics):
        if labels[:2] == (namespace, name):
            gauge.remove(*labels)


def forget(namespace: str, name: str) -> None:
    """The RetoolDeployment is gone: drop its series."""
    for gauge in (
        CURRENT_STEP,
        API_DESIRED,
        API_READY,
        JOBS_RUNNER_READY,
        DATABASE_REACHABLE,
        STALLED,
    ):
        _clear(gauge, namespace, name)


def observe_decision(
    namespace: str,
    name: str,
    previous: RetoolDeploymentStatus,
    decision: Decision,
    now: datetime,
) -> None:
    """Update the per-RetoolDeployment gauges and the upgrade counters from one decision."""
    status = decision.status
    if any(event.reason == "UpgradeStarted" for event in decision.events):
        UPGRADES_STARTED.inc()
    _observe_upgrade(previous, status, now)
    _observe_steps(namespace, name, status)
    if status.api is not None:
        API_DESIRED.labels(namespace, name).set(status.api.replicas)
        API_READY.labels(namespace, name).set(status.api.ready_replicas)
    if status.jobs_runner is not None:
        JOBS_RUNNER_READY.labels(namespace, name).set(1 if status.jobs_runner.ready_replicas else 0)
    if status.database is not None and status.database.reachable is not None:
        DATABASE_REACHABLE.labels(namespace, name).set(1 if status.database.reachable else 0)
    _clear(STALLED, namespace, name)
    stalled = next((c for c in status.conditions if c.type == "Stalled"), None)
    if stalled is not None and stalled.status == "True":
        STALLED.labels(namespace, name, stalled.reason).set(1)


_RESULT_COUNTERS = {
    UpgradeResult.SUCCEEDED: UPGRADES_SUCCEEDED,
    UpgradeResult.ROLLED_BACK: UPGRADES_ROLLED_BACK,
    UpgradeResult.FAILED: UPGRADES_FAILED,
}


def _observe_upgrade(
    previous: RetoolDeploymentStatus, status: RetoolDeploymentStatus, now: datetime
) -> None:
    """Step and upgrade durations, when a step or an upgrade has just ended."""
    before = previous.upgrade
    if before is None:
        return
    after = status.upgrade
    if (
        after is None
        or after.step != before.step
        or after.step_started_at != before.step_started_at
    ):
        STEP_SECONDS.labels(before.step.value).observe(
            (now - before.step_started_at).total_seconds()
        )
    if after is None and status.history and len(status.history) >= len(previous.history):
        last = status.history[-1]
        UPGRADE_SECONDS.labels(last.result.value).observe(
            (last.finished_at - last.started_at).total_seconds()
        )
        _RESULT_COUNTERS[last.result].inc()


def _observe_steps(namespace: str, name: str, status: RetoolDeploymentStatus) -> None:
    current = status.upgrade.step if status.upgrade is not None else None
    for step in Step:
        if step is current:
            CURRENT_STEP.labels(namespace, name, step.value).set(1)
        else:
            with contextlib.suppress(KeyError):
                CURRENT_STEP.remove(namespace, name, step.value)
