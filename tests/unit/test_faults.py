"""The failure policy: classes by HTTP status, the jittered back-off, the deadline on calls."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import kopf
import pytest
import urllib3
from kubernetes import client

from retool_operator.cluster.kube import Cluster, ConflictError, describe
from retool_operator.core.faults import BACKOFF_CAP_SECONDS, ErrorClass, backoff, classify
from retool_operator.handlers import Running, heartbeat
from retool_operator.runtime.offload import Offload


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (409, ErrorClass.CONFLICT),
        (None, ErrorClass.TRANSIENT),
        (408, ErrorClass.TRANSIENT),
        (429, ErrorClass.TRANSIENT),
        (500, ErrorClass.TRANSIENT),
        (503, ErrorClass.TRANSIENT),
        (400, ErrorClass.REFUSED),
        (403, ErrorClass.REFUSED),
        (422, ErrorClass.REFUSED),
    ],
)
def test_classes_by_status(status: int | None, expected: ErrorClass) -> None:
    assert classify(status) is expected


def test_backoff_doubles_within_its_jitter_and_is_capped() -> None:
    assert backoff(1, 0.0) == 0.5
    assert 0.99 < backoff(1, 0.999) < 1.0
    assert backoff(4, 0.0) == 4.0
    assert 7.99 < backoff(4, 0.999) < 8.0
    assert backoff(50, 0.999) <= BACKOFF_CAP_SECONDS
    assert backoff(50, 0.0) == BACKOFF_CAP_SECONDS / 2


def test_describe_reduces_errors_to_a_status_and_the_servers_message() -> None:
    refused = client.ApiException(status=403, reason="Forbidden")
    refused.body = json.dumps({"message": "exceeded quota: pods"})
    failure = describe(refused)
    assert failure is not None
    assert (failure.status, failure.message) == (403, "exceeded quota: pods")
    timeout = describe(urllib3.exceptions.ReadTimeoutError(None, "/", "timed out"))  # type: ignore[arg-type]
    assert timeout is not None
    assert timeout.status is None
    conflict = describe(ConflictError("x"))
    assert conflict is not None
    assert conflict.status == 409
    assert describe(KeyError("a bug")) is None


def test_every_call_gets_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    """One place sets `_request_timeout`: a call that sets none gets the configured pair."""
    api = client.ApiClient()
    seen: list[Any] = []

    def call_api(*args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs.get("_request_timeout"))
        raise client.ApiException(status=404)

    monkeypatch.setattr(api, "call_api", call_api)
    cluster = Cluster(api, timeout=(2.0, 7.0))
    assert cluster.read_secret("ns", "missing") is None
    assert seen == [(2.0, 7.0)]


def test_the_heartbeat_sees_a_call_that_outlives_its_deadlines() -> None:
    """/healthz's probe: a call under way for longer than `stuck_after` fails it."""
    offload = Offload(1)
    release = threading.Event()
    running = Running(
        reconciler=None,  # type: ignore[arg-type]
        cluster=None,  # type: ignore[arg-type]
        offload=offload,
        stop_metrics=None,
        stuck_after=0.2,
    )
    memo = kopf.Memo(running=running)

    async def scenario() -> None:
        assert heartbeat(memo) == 0.0
        call = asyncio.ensure_future(offload(release.wait, 10))
        await asyncio.sleep(0.05)
        assert heartbeat(memo) < 0.2  # under way, within its bound
        await asyncio.sleep(0.3)
        with pytest.raises(kopf.PermanentError, match="no progress"):
            heartbeat(memo)
        release.set()
        await call
        assert heartbeat(memo) == 0.0

    try:
        asyncio.run(scenario())
    finally:
        release.set()
        offload.close()
