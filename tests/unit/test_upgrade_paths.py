"""Upgrade paths through stable releases and the progress-aware migration timeout (design §11).

Everything runs on the simulator, whose invariants (one jobs-runner pod, no new api pod before
the new jobs-runner is Ready, ...) are checked at every tick.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from retool_operator.core.conditions import STALLED, Reason
from retool_operator.core.models import (
    SKIP_UPGRADE_PATH_ANNOTATION,
    ChangeKind,
    Component,
    Step,
    UpgradeResult,
    UpgradeStatus,
    release_key,
)
from retool_operator.core.releases import STABLE_LINES, plan_path
from retool_operator.core.versions import classify
from tests.unit import simulator
from tests.unit.simulator import Cluster, Readiness, Run, condition, installed, is_ready

OLD = "3.148.0-stable"
MID = "3.196.1-stable"
TARGET = "3.253.3-stable"


def _path_run(target: str, via: list[str], **kwargs: Any) -> Run:
    run = installed(OLD, **kwargs)
    if via:
        run.set_upgrade(via=via)
    run.set_version(target)
    return run


def _hops(run: Run) -> list[tuple[str, str, UpgradeResult]]:
    return [(h.from_version, h.to, h.result) for h in run.status.history]


def _upgrades(run: Run) -> list[UpgradeStatus]:
    return [u for t in run.ticks if (u := t.decision.status.upgrade) is not None]


def _events(run: Run, reason: str) -> list[str]:
    return [e.message for t in run.ticks for e in t.decision.events if e.reason == reason]


def _all_on(run: Run, version: str) -> bool:
    return all(
        run.cluster.rolled_out(c, version, w.replicas) for c, w in run.cluster.workloads.items()
    )


def test_stable_lines_ascend() -> None:
    assert list(STABLE_LINES) == sorted(set(STABLE_LINES))


@pytest.mark.parametrize("strategy", ["Recreate", "RollingUpdate"])
def test_a_path_through_via_runs_each_hop_as_a_full_upgrade(strategy: simulator.Strategy) -> None:
    run = _path_run(TARGET, [MID], strategy=strategy).run(budget=400)
    assert is_ready(run.status, run.spec)
    assert _hops(run) == [
        (OLD, MID, UpgradeResult.SUCCEEDED),
        (MID, TARGET, UpgradeResult.SUCCEEDED),
    ]
    seen = {(u.to, u.path, tuple(u.path_left), u.target) for u in _upgrades(run)}
    assert seen == {(MID, "1/2", (TARGET,), TARGET), (TARGET, "2/2", (), TARGET)}
    steps = {(u.to, u.step) for u in _upgrades(run)}
    stops = strategy == "Recreate"
    for hop in (MID, TARGET):
        assert (hop, Step.MIGRATING_DATABASE) in steps
        assert ((hop, Step.STOPPING_SERVICES) in steps) is stops


def test_a_jump_over_a_stable_line_holds_until_via_names_it() -> None:
    run = _path_run(TARGET, []).run(budget=60)
    reason = condition(run.status, STALLED)
    assert reason == ("True", Reason.UPGRADE_PATH_REQUIRED)
    message = next(c.message for c in run.status.conditions if c.type == STALLED)
    assert "3.196" in message
    assert "spec.upgrade.via" in message
    assert run.status.upgrade is None
    assert _all_on(run, OLD)
    assert all(
        p.version == OLD for t in run.ticks if t.decision.plan for p in t.decision.plan.values()
    )
    assert len(_events(run, Reason.UPGRADE_PATH_REQUIRED)) == 1
    run.set_upgrade(via=[MID])  # and nothing else
    run.run(lambda r: is_ready(r.status, r.spec), budget=400)
    assert [h.to for h in run.status.history] == [MID, TARGET]


def test_the_annotation_skips_the_path_check() -> None:
    run = installed(OLD)
    run.annotate(SKIP_UPGRADE_PATH_ANNOTATION, "true")
    run.set_version(TARGET)
    run.run(lambda r: is_ready(r.status, r.spec), budget=200)
    assert _hops(run) == [(OLD, TARGET, UpgradeResult.SUCCEEDED)]


def test_a_patch_hop_stops_nothing() -> None:
    run = _path_run(MID, ["3.148.2-stable"]).run(budget=400)
    assert [h.to for h in run.status.history] == ["3.148.2-stable", MID]
    first = [u for u in _upgrades(run) if u.to == "3.148.2-stable"]
    assert {u.kind for u in first} == {ChangeKind.PATCH}
    assert Step.STOPPING_SERVICES not in {u.step for u in first}
    assert Step.STOPPING_SERVICES in {u.step for u in _upgrades(run) if u.to == MID}


def test_a_failed_hop_rolls_back_that_hop_only_and_stops_the_path() -> None:
    broken = "3.253.0-neverready"
    run = _path_run(broken, [MID]).run(budget=400)
    assert _hops(run) == [
        (OLD, MID, UpgradeResult.SUCCEEDED),
        (MID, broken, UpgradeResult.ROLLED_BACK),
    ]
    assert run.status.current_version == MID
    assert condition(run.status, STALLED) == ("True", Reason.UPGRADE_FAILED)
    assert _all_on(run, MID)
    rolled_back = _events(run, "UpgradeRolledBack")
    assert rolled_back
    assert "hop 2/2" in rolled_back[0]


@pytest.mark.parametrize(
    ("new_target", "hops"),
    [("3.253.5-stable", [MID, "3.253.5-stable"]), (MID, [MID])],
    ids=["further", "to-the-hop"],
)
def test_spec_version_changed_mid_path_replans_from_the_running_version(
    new_target: str, hops: list[str]
) -> None:
    run = _path_run(TARGET, [MID], cluster=Cluster(readiness=Readiness(slow={MID: 4})))
    run.run_until_step(Step.MIGRATING_DATABASE)
    assert run.status.upgrade is not None
    assert run.status.upgrade.to == MID
    run.set_version(new_target)
    run.run(lambda r: is_ready(r.status, r.spec), budget=400)
    assert [h.to for h in run.status.history] == hops
    assert all(h.result is UpgradeResult.SUCCEEDED for h in run.status.history)


_STABLE_TAGS = ["3.148.2-stable", "3.196.1-stable", "3.196.3-stable", "3.253.3-stable"]
_TARGETS = ["3.196.1-stable", "3.200.0-edge", "3.253.3-stable", "3.260.0-edge"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(["Recreate", "RollingUpdate"]),
    st.sampled_from(_TARGETS),
    st.lists(st.sampled_from(_STABLE_TAGS), unique=True, max_size=3),
)
def test_random_paths_run_hop_by_hop_or_hold(
    strategy: simulator.Strategy, target: str, via: list[str]
) -> None:
    via = sorted((v for v in via if release_key(v) < release_key(target)), key=release_key)
    run = _path_run(target, via, strategy=strategy).run(budget=600)
    path = plan_path(OLD, target, via)
    if path.missing:
        assert condition(run.status, STALLED) == ("True", Reason.UPGRADE_PATH_REQUIRED)
        assert run.status.history == []
        assert _all_on(run, OLD)
        return
    assert is_ready(run.status, run.spec)
    assert [h.to for h in run.status.history] == list(path.hops)
    previous = OLD
    for hop, entry in zip(path.hops, run.status.history, strict=True):
        assert entry.result is UpgradeResult.SUCCEEDED
        kinds = {u.kind for u in _upgrades(run) if u.to == hop}
        assert kinds == {classify(previous, hop).kind}
        previous = hop


# --- the progress-aware migration timeout (migrationTimeout 5m = 30 ticks of 10s) -------------


def _slow_migration(**upgrade: str) -> Run:
    # The new jobs-runner is Ready after 1000s: over 3x migrationTimeout.
    cluster = Cluster(readiness=Readiness(slow_components={(MID, Component.JOBS_RUNNER): 100}))
    run = installed(OLD, cluster=cluster, upgrade=upgrade)
    run.set_version(MID)
    run.run_until_step(Step.MIGRATING_DATABASE)
    return run


def _drive(run: Run, ticks: int, *, rows_every: int = 0, statements: int = 0) -> None:
    for tick in range(ticks):
        if rows_every and tick % rows_every == 0:
            run.cluster.migration_rows += 1
        run.cluster.running_statements = statements
        run.step()


@pytest.mark.parametrize(
    ("rows_every", "statements"), [(5, 0), (0, 1)], ids=["new-rows", "a-long-statement"]
)
def test_a_migration_making_progress_is_not_rolled_back(rows_every: int, statements: int) -> None:
    run = _slow_migration()
    _drive(run, 95, rows_every=rows_every, statements=statements)  # 950s, > 3x 300s
    assert run.status.upgrade is not None
    assert run.status.upgrade.step is Step.MIGRATING_DATABASE
    migration = run.status.upgrade.migration
    assert migration is not None
    assert run.cluster.now - migration.last_progress_at <= timedelta(seconds=50)
    assert migration.progress
    assert _events(run, "MigrationStalled") == []
    run.run(lambda r: is_ready(r.status, r.spec), budget=40)
    assert _hops(run) == [(OLD, MID, UpgradeResult.SUCCEEDED)]


def test_a_migration_that_stops_is_rolled_back_one_timeout_after_its_last_progress() -> None:
    run = _slow_migration()
    _drive(run, 20, rows_every=2)
    assert run.status.upgrade is not None
    assert run.status.upgrade.migration is not None
    last = run.status.upgrade.migration.last_progress_at
    run.run(lambda r: r.status.upgrade is None, budget=60)
    entry = run.status.history[-1]
    assert entry.result is UpgradeResult.ROLLED_BACK
    assert "no progress" in entry.message
    failed_at = min(
        t.inputs.now
        for t in run.ticks
        if (u := t.decision.status.upgrade) is not None and u.step is Step.ROLLING_BACK
    )
    assert timedelta(seconds=300) < failed_at - last <= timedelta(seconds=310)
    stalled = _events(run, "MigrationStalled")
    assert len(stalled) == 1
    assert _all_on(run, OLD)


def test_the_migration_deadline_caps_the_step_whatever_the_progress() -> None:
    run = _slow_migration(migrationDeadline="10m")
    start = run.status.upgrade.step_started_at if run.status.upgrade else None
    assert start is not None
    _drive(run, 70, statements=1)
    entry = run.status.history[-1]
    assert entry.result is UpgradeResult.ROLLED_BACK
    assert "migrationDeadline 10m" in entry.message
    assert entry.finished_at - start > timedelta(seconds=600)


def test_the_probe_shows_running_statements_in_the_status() -> None:
    run = _slow_migration()
    _drive(run, 3, statements=2)
    assert run.status.database is not None
    assert run.status.database.running_statements == 2
