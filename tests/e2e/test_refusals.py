"""A write the API server refuses (here a ResourceQuota) surfaces as a condition with the server's
own message, and clears once a person lifts the refusal (docs/design.md §9, error classes)."""

from __future__ import annotations

import pytest
from kubernetes import client

from tests.support import retool
from tests.support.pgserver import PostgresServer
from tests.support.typed import present
from tests.support.waiting import wait_for

NAME = "rt"
VERSION = "3.196.1-stable"
DEADLINE = 90.0


@pytest.mark.usefixtures("operator")
def test_a_quota_that_forbids_the_deployments_is_a_stalled_condition_with_its_message(
    kube_api: client.ApiClient, namespace: str, retool_secrets: PostgresServer
) -> None:
    core = client.CoreV1Api(kube_api)
    quota = client.V1ResourceQuota(
        metadata=client.V1ObjectMeta(name="no-deployments"),
        spec=client.V1ResourceQuotaSpec(hard={"count/deployments.apps": "0"}),
    )
    core.create_namespaced_resource_quota(namespace, quota)
    # Admission counts against the quota's status; wait until the controller has filled it in.
    wait_for(
        lambda: core.read_namespaced_resource_quota("no-deployments", namespace).status,
        DEADLINE,
        "the quota's status",
    )
    retool.create(kube_api, namespace, retool.manifest(NAME, VERSION, retool_secrets))
    body = wait_for(
        lambda: retool.stalled(kube_api, namespace, NAME, "WriteRefused"),
        DEADLINE,
        "Stalled=True WriteRefused",
    )
    message = present(retool.condition(body, "Stalled"))["message"]
    assert message.startswith(f"Deployment {NAME}-"), message
    assert "HTTP 403" in message
    assert "exceeded quota: no-deployments" in message, message
    assert present(retool.condition(body, "Reconciling"))["status"] == "False"
    events = core.list_namespaced_event(
        namespace, field_selector=f"involvedObject.name={NAME},reason=WriteRefused"
    ).items
    assert len(events) == 1
    assert "exceeded quota: no-deployments" in (events[0].message or "")

    core.delete_namespaced_resource_quota("no-deployments", namespace)
    wait_for(
        lambda: retool.ready_on(kube_api, namespace, NAME, VERSION),
        DEADLINE + 300,  # the retry's back-off, at most 5 min; usually seconds
        f"Ready on {VERSION} once the quota is gone",
    )
    stalled = present(retool.condition(retool.get(kube_api, namespace, NAME), "Stalled"))
    assert stalled["status"] == "False"
