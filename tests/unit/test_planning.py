"""`kubectl retool plan`'s core: what a bump would do, asked of the state machine, checked
against what the simulated operator then does."""

from __future__ import annotations

import dataclasses

import pytest

from retool_operator.core import planning, statemachine
from retool_operator.core.models import (
    ALLOW_DOWNGRADE_ANNOTATION,
    SKIP_UPGRADE_PATH_ANNOTATION,
    ChangeKind,
    Step,
    UpgradeStrategy,
)
from retool_operator.core.observed import Snapshot
from tests.support.typed import present
from tests.unit.simulator import Cluster, Readiness, installed, new_run

OLD = "3.148.0-stable"
PATCH = "3.148.1-stable"
NEW = "3.196.1-stable"
OLDER = "3.120.0-stable"
MAJOR = "4.0.0-stable"


def _seen_steps(events: list[statemachine.EventRecord]) -> list[str]:
    """Steps an upgrade entered, from its Events (as the operator posts them)."""
    steps = []
    for event in events:
        if event.reason == "UpgradeStarted":
            steps.append("Preflight")
        elif event.reason == "UpgradeStep":
            steps.append(event.message.split(": step ", 1)[1].split(" ")[0])
    return steps


@pytest.mark.parametrize("strategy", ["Recreate", "RollingUpdate"])
@pytest.mark.parametrize(("target", "kind"), [(PATCH, "Patch"), (NEW, "Minor"), (MAJOR, "Major")])
def test_the_planned_steps_are_the_steps_the_upgrade_takes(
    strategy: str, target: str, kind: str
) -> None:
    run = installed(OLD, strategy=strategy)
    run.annotate(SKIP_UPGRADE_PATH_ANNOTATION, "true")  # one hop, whatever it jumps over
    result = planning.plan(run.inputs(), target)
    assert result.kind == kind
    (hop,) = result.path
    run.set_version(target)
    run.run(budget=80)
    assert run.status.current_version == target
    assert [s.step for s in hop.steps] == _seen_steps(run.events)
    assert [
        s.value for s in statemachine.upgrade_steps(ChangeKind(kind), UpgradeStrategy(strategy))
    ] == [s.step for s in hop.steps]


def test_a_minor_under_recreate_stops_every_other_component_with_its_count() -> None:
    run = installed(OLD, workflowsWorker={"replicas": 3})
    (hop,) = planning.plan(run.inputs(), NEW).path
    assert hop.stops == {"api": 2, "workflows-worker": 3}
    assert hop.runs_migrations
    assert not hop.downgrade
    assert "StoppingServices" in [s.step for s in hop.steps]


def test_plan_changes_nothing_and_says_preflight_passes() -> None:
    run = installed(OLD)
    inputs = run.inputs()
    result = planning.plan(inputs, NEW)
    assert run.inputs() == inputs
    assert run.spec.version == OLD
    assert all(check.ok for check in result.preflight)
    assert result.verdict.startswith("start: Preflight passes now")
    assert result.path_note.startswith("one hop")
    assert result.to_json()["path"][0]["to"] == NEW


def test_a_downgrade_across_minor_is_refused_unless_annotated() -> None:
    run = installed(OLD)
    result = planning.plan(run.inputs(), OLDER)
    checks = {c.name: c for c in result.preflight}
    assert checks["downgrade"].reason == "DowngradeRefused"
    assert result.verdict.startswith("refuse (DowngradeRefused)")
    assert result.path[0].downgrade
    run.annotate(ALLOW_DOWNGRADE_ANNOTATION, "true")
    allowed = planning.plan(run.inputs(), OLDER)
    assert all(c.ok for c in allowed.preflight)
    assert allowed.verdict.startswith("start")


def test_a_missing_secret_and_an_unreachable_database_hold_in_preflight() -> None:
    run = installed(OLD)
    inputs = run.inputs()
    broken = dataclasses.replace(
        inputs,
        observed=Snapshot(inputs.observed.workloads, missing_secrets=("Secret retool-secrets",)),
        database=dataclasses.replace(present(inputs.database), reachable=False, error="refused"),
    )
    result = planning.plan(broken, NEW)
    checks = {c.name: c for c in result.preflight}
    assert checks["secrets"].reason == "SecretMissing"
    assert "retool-secrets" in checks["secrets"].detail
    assert checks["database"].reason == "DatabaseUnreachable"
    assert result.verdict.startswith("hold in Preflight (SecretMissing)")


def test_an_upgrade_under_way_is_retargeted_or_finished_first() -> None:
    run = installed(OLD, cluster=Cluster(readiness=Readiness(slow={NEW: 6})))
    run.set_version(NEW)
    run.run_until_step(Step.MIGRATING_DATABASE)
    result = planning.plan(run.inputs(), MAJOR)
    assert result.verdict.startswith("wait: the upgrade")
    same = planning.plan(run.inputs(), NEW)
    assert same.verdict.startswith("already under way")


def test_paused_plans_what_happens_once_resumed() -> None:
    run = installed(OLD)
    run.update_spec(paused=True)
    result = planning.plan(run.inputs(), NEW)
    assert result.verdict.startswith("nothing while spec.paused is true; once resumed: start")


def test_an_install_and_a_bad_tag() -> None:
    run = new_run(OLD)
    result = planning.plan(run.inputs(), NEW)
    assert result.kind == "Install"
    assert result.path == ()
    with pytest.raises(ValueError, match="not a Retool version tag"):
        planning.plan(run.inputs(), "latest")


def test_the_same_version_is_nothing_to_do() -> None:
    run = installed(OLD)
    result = planning.plan(run.inputs(), OLD)
    assert result.kind == "None"
    assert result.verdict.startswith("nothing to do")


def test_a_path_through_via_is_planned_hop_by_hop_as_it_runs() -> None:
    run = installed(OLD)
    run.set_upgrade(via=[NEW])
    result = planning.plan(run.inputs(), "3.253.3-stable")
    assert [(h.from_version, h.to) for h in result.path] == [
        (OLD, NEW),
        (NEW, "3.253.3-stable"),
    ]
    assert result.path_note.startswith("2 hops")
    run.set_version("3.253.3-stable")
    run.run(budget=300)
    assert [(h.from_version, h.to) for h in run.status.history] == [
        (h.from_version, h.to) for h in result.path
    ]


def test_a_jump_over_a_stable_line_is_shown_held() -> None:
    run = installed(OLD)
    result = planning.plan(run.inputs(), MAJOR)
    path = next(c for c in result.preflight if c.name == "upgrade path")
    assert not path.ok
    assert path.reason == "UpgradePathRequired"
    assert "3.196" in path.detail
    assert "jumps over" in result.path_note
    assert "UpgradePathRequired" in result.verdict
