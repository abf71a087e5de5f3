"""From a plan to child changes: the autoscaled api's count, and which children to remove."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pydantic
import pytest

from retool_operator.core import conditions as cond
from retool_operator.core.builders import WorkloadPlan
from retool_operator.core.children import planned_children, unwanted_children
from retool_operator.core.models import (
    Component,
    Phase,
    RetoolDeploymentSpec,
    RetoolDeploymentStatus,
)
from retool_operator.core.statemachine import decide_invalid_spec
from tests.unit.test_builders import MINIMAL, OWNER, spec_of

V = "3.196.1-stable"
TEMPORAL = {"host": "temporal-frontend.temporal"}
AUTOSCALED = {**MINIMAL, "api": {"autoscaling": {"minReplicas": 2, "maxReplicas": 10}}}


def _api_manifest(manifests: tuple[dict[str, Any], ...]) -> dict[str, Any]:
    return next(m for m in manifests if m["kind"] == "Deployment")


def test_an_autoscaled_apis_count_goes_to_the_scale_subresource() -> None:
    planned = planned_children(OWNER, spec_of(AUTOSCALED), {Component.API: WorkloadPlan(V, 0)})
    assert planned.api_scale == 0
    assert "replicas" not in _api_manifest(planned.manifests)["spec"]


def test_an_autoscaled_api_left_to_its_hpa_is_not_scaled() -> None:
    planned = planned_children(OWNER, spec_of(AUTOSCALED), {Component.API: WorkloadPlan(V, None)})
    assert planned.api_scale is None
    assert "replicas" not in _api_manifest(planned.manifests)["spec"]


def test_a_fixed_api_count_stays_in_the_manifest() -> None:
    planned = planned_children(OWNER, spec_of(MINIMAL), {Component.API: WorkloadPlan(V, 3)})
    assert planned.api_scale is None
    assert _api_manifest(planned.manifests)["spec"]["replicas"] == 3


def _live(kind: str, name: str, uid: str) -> dict[str, Any]:
    return {"kind": kind, "metadata": {"name": name, "ownerReferences": [{"uid": uid}]}}


@pytest.mark.parametrize(
    ("spec", "child", "unwanted"),
    [
        (MINIMAL, ("Deployment", "acme-code-executor"), True),
        ({**MINIMAL, "codeExecutor": {}}, ("Deployment", "acme-code-executor"), False),
        (MINIMAL, ("PodDisruptionBudget", "acme-api"), True),
        (MINIMAL, ("HorizontalPodAutoscaler", "acme-api"), True),
        (AUTOSCALED, ("HorizontalPodAutoscaler", "acme-api"), False),
        (MINIMAL, ("Deployment", "acme-api"), False),
        (MINIMAL, ("PodDisruptionBudget", "acme-workflows-worker"), True),
        (
            {**MINIMAL, "workflowsWorker": {"podDisruptionBudget": {}}, "temporal": TEMPORAL},
            ("PodDisruptionBudget", "acme-workflows-worker"),
            False,
        ),
        (
            {**MINIMAL, "workflowsWorker": {}, "temporal": TEMPORAL},
            ("PodDisruptionBudget", "acme-workflows-worker"),
            True,
        ),
        (MINIMAL, ("Service", "acme-workflows-backend"), True),
        (MINIMAL, ("Service", "acme-multiplayer"), True),
        ({**MINIMAL, "multiplayer": {}}, ("Service", "acme-multiplayer"), False),
        ({**MINIMAL, "dbConnector": {}}, ("Service", "acme-db-connector"), False),
        (MINIMAL, ("Service", "acme-api"), False),
        (MINIMAL, ("Service", "acme-jobs-runner"), False),
        (MINIMAL, ("Ingress", "acme"), True),
        ({**MINIMAL, "ingress": {}}, ("Ingress", "acme"), False),
        (MINIMAL, ("HTTPRoute", "acme"), True),
        ({**MINIMAL, "httpRoute": {"parentRefs": [{"name": "gw"}]}}, ("HTTPRoute", "acme"), False),
        (MINIMAL, ("ServiceAccount", "acme"), False),
        ({**MINIMAL, "serviceAccount": {"name": "other"}}, ("ServiceAccount", "acme"), True),
        ({**MINIMAL, "serviceAccount": {"name": "other"}}, ("ServiceAccount", "other"), False),
        (
            {**MINIMAL, "serviceAccount": {"create": False, "name": "acme"}},
            ("ServiceAccount", "acme"),
            True,
        ),
    ],
)
def test_children_the_spec_no_longer_asks_for_are_unwanted(
    spec: dict[str, Any], child: tuple[str, str], unwanted: bool
) -> None:
    live = {child: _live(*child, OWNER.uid)}
    assert (unwanted_children("acme", spec_of(spec), live, OWNER.uid) == [child]) is unwanted


def test_a_child_someone_else_owns_is_never_unwanted() -> None:
    child = ("Deployment", "acme-code-executor")
    live = {child: _live(*child, "another-uid")}
    assert unwanted_children("acme", spec_of(MINIMAL), live, OWNER.uid) == []


def test_an_invalid_spec_is_stalled_and_touches_nothing() -> None:
    with pytest.raises(pydantic.ValidationError) as caught:
        RetoolDeploymentSpec.model_validate({**MINIMAL, "jobsRunner": {"replicas": 2}})
    now = datetime(2026, 12, 1, tzinfo=UTC)
    decision = decide_invalid_spec(RetoolDeploymentStatus(), caught.value, generation=3, now=now)
    assert decision.plan is None
    assert decision.events == ()
    status = decision.status
    assert status.phase is Phase.DEGRADED
    assert status.observed_generation == 3
    stalled = cond.find(status.conditions, cond.STALLED)
    ready = cond.find(status.conditions, cond.READY)
    assert stalled is not None
    assert ready is not None
    assert (stalled.status, stalled.reason) == ("True", "InvalidSpec")
    assert (ready.status, ready.reason) == ("False", "InvalidSpec")
    assert "spec.jobsRunner.replicas" in stalled.message
