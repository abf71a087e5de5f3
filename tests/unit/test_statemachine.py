"""The upgrade state machine, end to end through a simulated cluster (tests/unit/simulator.py).

Every scenario runs `decide` in a loop against the simulator, which checks the invariants of
docs/design.md §5 after every decision and tick (one jobs-runner pod at most; no pod of a
version before a jobs-runner of it was Ready; no api while a Recreate upgrade migrates; a Ready
api throughout a RollingUpdate; plans only on the current or target version; lastTransitionTime
only moves with the status; steps only forward) and that re-deciding on the status just written
(an operator restarted at that instant) changes nothing and emits no Event.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from retool_operator.core import statemachine
from retool_operator.core.builders import WorkloadPlan
from retool_operator.core.conditions import (
    DATABASE_REACHABLE,
    READY,
    RECONCILING,
    STALLED,
    Reason,
)
from retool_operator.core.models import (
    ALLOW_DOWNGRADE_ANNOTATION,
    HISTORY_LIMIT,
    RETRY_ANNOTATION,
    SKIP_UPGRADE_PATH_ANNOTATION,
    ChangeKind,
    Component,
    OptionalComponentSpec,
    Phase,
    RetoolDeploymentStatus,
    Step,
    UpgradeResult,
    UpgradeStrategy,
    parse_duration,
    release_key,
)
from retool_operator.core.observed import PodObservation, Snapshot, WorkloadObservation
from retool_operator.core.releases import plan_path
from retool_operator.core.statemachine import Decision, Inputs, decide
from retool_operator.core.versions import classify
from tests.unit import simulator
from tests.unit.simulator import (
    Cluster,
    InvariantError,
    Readiness,
    Run,
    condition,
    installed,
    is_ready,
    is_stalled,
    new_run,
)

OLD = "3.148.0-stable"
NEW = "3.196.1-stable"
NEWER = "3.196.9-edge"
BROKEN = "3.196.2-neverready"
RECREATE_STEPS = [
    "Preflight",
    "StoppingServices",
    "MigratingDatabase",
    "StartingServices",
    "Verifying",
]
ROLLING_STEPS = ["Preflight", "MigratingDatabase", "StartingServices", "Verifying"]
OPTIONAL = {
    "workflowsBackend": {"replicas": 2},
    "workflowsWorker": {"replicas": 1},
    "codeExecutor": {"replicas": 3},
    "dbConnector": {"replicas": 2},
    "multiplayer": {"replicas": 1},
    "agentWorker": {"replicas": 1},
    "agentEvalWorker": {"replicas": 1},
}
AUTOSCALED = {"api": {"autoscaling": {"minReplicas": 2, "maxReplicas": 6}}}
STRATEGIES = ["Recreate", "RollingUpdate"]


# --- helpers ----------------------------------------------------------------------------------


def upgrade_steps(run: Run) -> list[str]:
    """Every step entered, in order: Preflight at each start, then each UpgradeStep Event."""
    steps = []
    for event in run.events:
        if event.reason == "UpgradeStarted":
            steps.append("Preflight")
        elif event.reason == "UpgradeStep":
            steps.append(event.message.split(": step ", 1)[1].split(" ")[0])
    return steps


def cond(run: Run, kind: str) -> tuple[str | None, str | None]:
    return condition(run.status, kind)


def versions(run: Run) -> dict[str, str]:
    """Template version of every workload."""
    return {c.value: w.version for c, w in run.cluster.workloads.items()}


def replicas(run: Run) -> dict[str, int]:
    return {c.value: w.replicas for c, w in run.cluster.workloads.items()}


def assert_rolled_out(run: Run, version: str, counts: dict[str, int]) -> None:
    """Every component runs VERSION, all pods Ready, with COUNTS replicas."""
    assert set(counts) == {c.value for c in run.cluster.workloads}, run.cluster.describe()
    for component, workload in run.cluster.workloads.items():
        wanted = counts[component.value]
        assert run.cluster.rolled_out(component, version, wanted), (
            f"{component} is not rolled out on {version} x{wanted}\n{run.cluster.describe()}"
        )
        assert workload.replicas == wanted


def api_ready_counts(run: Run) -> list[int]:
    """Ready api pods seen by each decision of the run."""
    return [
        w.ready_replicas if (w := t.inputs.observed.workload(Component.API)) else 0
        for t in run.ticks
    ]


def planned(run: Run, component: Component) -> list[WorkloadPlan]:
    return [plan[component] for plan in run.plans() if component in plan]


def assert_ready_on(run: Run, version: str) -> None:
    status = run.status
    assert status.phase is Phase.READY, (status.phase, run.conditions_summary())
    assert status.current_version == version
    assert status.target_version == version
    assert status.upgrade is None
    assert cond(run, READY) == ("True", Reason.ALL_COMPONENTS_READY)
    assert cond(run, RECONCILING) == ("False", Reason.RECONCILED)
    assert cond(run, STALLED) == ("False", Reason.NOT_STALLED)
    assert cond(run, DATABASE_REACHABLE) == ("True", Reason.CONNECTED)


def upgraded(
    version: str = OLD,
    to: str = NEW,
    *,
    budget: int = 200,
    **kwargs: Any,
) -> Run:
    run = installed(version, **kwargs)
    run.set_version(to)
    return run.run(budget=budget)


# --- the simulator itself: its Kubernetes semantics must hold for the tests to mean anything ----


class TestSimulator:
    def test_deployment_rolls_with_max_unavailable_zero(self) -> None:
        cluster = Cluster(readiness=Readiness(default_ticks=2))
        decision = Decision(
            status=RetoolDeploymentStatus(), plan={Component.API: WorkloadPlan(OLD, 4)}
        )
        cluster.apply(decision)
        for _ in range(4):
            cluster.advance()
        assert len(cluster.ready_pods(Component.API)) == 4
        cluster.apply(dataclasses.replace(decision, plan={Component.API: WorkloadPlan(NEW, 4)}))
        ready_seen, total_seen = [], []
        for _ in range(20):
            cluster.advance()
            ready_seen.append(len(cluster.ready_pods(Component.API)))
            total_seen.append(len(cluster.pods(Component.API, include_terminating=False)))
        assert min(ready_seen) >= 4, ready_seen
        assert max(total_seen) <= 5, "maxSurge 25% of 4 is one extra pod"
        assert cluster.rolled_out(Component.API, NEW, 4), cluster.describe()

    def test_deployment_scaled_to_zero_loses_every_pod(self) -> None:
        cluster = Cluster()
        cluster.apply(
            Decision(status=RetoolDeploymentStatus(), plan={Component.API: WorkloadPlan(OLD, 3)})
        )
        cluster.advance()
        cluster.advance()
        cluster.apply(
            Decision(status=RetoolDeploymentStatus(), plan={Component.API: WorkloadPlan(OLD, 0)})
        )
        cluster.advance()
        assert all(p.terminating for p in cluster.pods(Component.API))
        cluster.advance()
        assert cluster.pods(Component.API) == []

    def test_statefulset_stops_the_old_pod_before_starting_the_new(self) -> None:
        cluster = Cluster(terminate_ticks=3)
        plan = {Component.JOBS_RUNNER: WorkloadPlan(OLD, 1)}
        cluster.apply(Decision(status=RetoolDeploymentStatus(), plan=plan))
        cluster.advance()
        cluster.advance()
        cluster.apply(
            Decision(
                status=RetoolDeploymentStatus(), plan={Component.JOBS_RUNNER: WorkloadPlan(NEW, 1)}
            )
        )
        seen = []
        for _ in range(8):
            cluster.advance()
            pods = cluster.pods(Component.JOBS_RUNNER)
            assert len(pods) <= 1, cluster.describe()
            seen.append(tuple((p.version, p.terminating) for p in pods))
        assert (OLD, True) in [s[0] for s in seen if s], "the old pod terminated first"
        assert [s[0][0] for s in seen if s] == [OLD] * 3 + [NEW] * 5, seen
        assert cluster.rolled_out(Component.JOBS_RUNNER, NEW, 1)

    def test_statefulset_does_not_replace_a_broken_pod_when_reverted(self) -> None:
        """kubernetes/kubernetes#67250: only deleting the pod helps."""
        cluster = Cluster()
        status = RetoolDeploymentStatus()
        cluster.apply(Decision(status, {Component.JOBS_RUNNER: WorkloadPlan(OLD, 1)}))
        cluster.advance()
        cluster.advance()
        cluster.apply(Decision(status, {Component.JOBS_RUNNER: WorkloadPlan(BROKEN, 1)}))
        for _ in range(6):
            cluster.advance()
        (pod,) = cluster.pods(Component.JOBS_RUNNER)
        assert pod.version == BROKEN
        observed = pod.observe()
        assert observed.crash_looping, observed
        assert observed.waiting_reason == "CrashLoopBackOff"
        assert observed.restarts >= 3
        cluster.apply(Decision(status, {Component.JOBS_RUNNER: WorkloadPlan(OLD, 1)}))
        for _ in range(6):
            cluster.advance()
        assert [p.version for p in cluster.pods(Component.JOBS_RUNNER)] == [BROKEN]
        cluster.apply(Decision(status, {Component.JOBS_RUNNER: WorkloadPlan(OLD, 1)}, (pod.name,)))
        for _ in range(3):
            cluster.advance()
        assert cluster.rolled_out(Component.JOBS_RUNNER, OLD, 1), cluster.describe()

    def test_slow_versions_and_components(self) -> None:
        readiness = Readiness(
            default_ticks=1,
            slow={NEW: 4},
            slow_components={(NEWER, Component.API): 7},
            broken=frozenset({(OLD, Component.CODE_EXECUTOR)}),
        )
        assert readiness.ticks(Component.API, OLD) == 1
        assert readiness.ticks(Component.JOBS_RUNNER, NEW) == 4
        assert readiness.ticks(Component.API, NEWER) == 7
        assert readiness.ticks(Component.JOBS_RUNNER, NEWER) == 1
        assert readiness.ticks(Component.CODE_EXECUTOR, OLD) is None
        assert readiness.ticks(Component.API, BROKEN) is None

    def test_hpa_keeps_the_api_at_its_count_unless_stopped(self) -> None:
        cluster = Cluster(hpa_desired=5)
        status = RetoolDeploymentStatus()
        cluster.apply(Decision(status, {Component.API: WorkloadPlan(OLD, None)}))
        cluster.advance((2, 4))
        assert cluster.workloads[Component.API].replicas == 4, "clamped to maxReplicas"
        cluster.apply(Decision(status, {Component.API: WorkloadPlan(OLD, 0)}))
        cluster.advance((2, 4))
        assert cluster.workloads[Component.API].replicas == 0, "an HPA does not scale up from 0"

    def test_time_is_explicit(self) -> None:
        cluster = Cluster(seconds_per_tick=7.5)
        for _ in range(4):
            cluster.advance()
        assert (cluster.now - simulator.START).total_seconds() == 30


class TestInvariantChecks:
    """The driver's checks bite: a machine that breaks a rule fails the run."""

    @staticmethod
    def _with(
        monkeypatch: pytest.MonkeyPatch, wrap: Callable[[Inputs, Decision], Decision]
    ) -> None:
        def broken(inp: Inputs) -> Decision:
            return wrap(inp, decide(inp))

        monkeypatch.setattr(simulator, "decide", broken)

    def test_api_started_before_the_jobs_runner_migrated(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        def early_api(inp: Inputs, decision: Decision) -> Decision:
            u = decision.status.upgrade
            if u is not None and u.step is Step.MIGRATING_DATABASE and decision.plan:
                plan = {**decision.plan, Component.API: WorkloadPlan(u.to, 2)}
                return dataclasses.replace(decision, plan=plan)
            return decision

        run = installed(OLD, cluster=Cluster(readiness=Readiness(slow={NEW: 4})))
        self._with(monkeypatch, early_api)
        run.set_version(NEW)
        with pytest.raises(InvariantError):
            run.run(budget=50)

    def test_second_jobs_runner(self, monkeypatch: pytest.MonkeyPatch) -> None:
        run = installed(OLD)

        def double(inp: Inputs, decision: Decision) -> Decision:
            run.cluster.workloads[Component.JOBS_RUNNER].pods.append(
                simulator.SimPod("extra", OLD, run.cluster.tick)
            )
            return decision

        self._with(monkeypatch, double)
        with pytest.raises(InvariantError, match="jobs-runner pods exist"):
            run.step()

    def test_plan_on_a_third_version(self, monkeypatch: pytest.MonkeyPatch) -> None:
        def elsewhere(inp: Inputs, decision: Decision) -> Decision:
            assert decision.plan is not None
            plan = {**decision.plan, Component.API: WorkloadPlan("9.9.9", 2)}
            return dataclasses.replace(decision, plan=plan)

        run = installed(OLD)
        self._with(monkeypatch, elsewhere)
        with pytest.raises(InvariantError, match=r"9\.9\.9"):
            run.step()

    def test_not_idempotent(self, monkeypatch: pytest.MonkeyPatch) -> None:
        calls = iter(range(1000))

        def flaky(inp: Inputs, decision: Decision) -> Decision:
            if next(calls) % 3 == 1:  # the re-decision on the written status
                return dataclasses.replace(decision, plan=None)
            return decision

        run = installed(OLD)
        self._with(monkeypatch, flaky)
        with pytest.raises(InvariantError, match=r"not deterministic|changes the plan"):
            run.step()

    def test_transition_time_moved_without_a_status_change(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        def touch(inp: Inputs, decision: Decision) -> Decision:
            conditions = [
                c.model_copy(update={"last_transition_time": inp.now})
                for c in decision.status.conditions
            ]
            status = decision.status.model_copy(update={"conditions": conditions})
            return dataclasses.replace(decision, status=status)

        run = installed(OLD)
        run.step()
        self._with(monkeypatch, touch)
        with pytest.raises(InvariantError, match="lastTransitionTime"):
            run.step()

    def test_no_ready_api_during_a_rolling_update(self, monkeypatch: pytest.MonkeyPatch) -> None:
        def stop_api(inp: Inputs, decision: Decision) -> Decision:
            u = decision.status.upgrade
            if u is not None and u.step is Step.MIGRATING_DATABASE and decision.plan:
                plan = {**decision.plan, Component.API: WorkloadPlan(u.from_version, 0)}
                return dataclasses.replace(decision, plan=plan)
            return decision

        run = installed(OLD, strategy="RollingUpdate")
        run.cluster.readiness = Readiness(slow={NEW: 4})
        self._with(monkeypatch, stop_api)
        run.set_version(NEW)
        with pytest.raises(InvariantError, match="no api pod is Ready"):
            run.run(budget=50)
        u = run.status.upgrade
        assert u is not None
        assert u.step is Step.MIGRATING_DATABASE, "caught as the api stopped, not later"


# --- install ----------------------------------------------------------------------------------


class TestInstall:
    @pytest.mark.parametrize(
        ("sections", "counts"),
        [
            pytest.param({}, {"api": 2}, id="minimal"),
            pytest.param(
                OPTIONAL,
                {
                    "api": 2,
                    "workflows-backend": 2,
                    "workflows-worker": 1,
                    "code-executor": 3,
                    "db-connector": 2,
                    "multiplayer": 1,
                    "agent-worker": 1,
                    "agent-eval-worker": 1,
                },
                id="optional-components",
            ),
            pytest.param({"api": {"replicas": 0}}, {"api": 0}, id="no-api"),
        ],
    )
    def test_jobs_runner_first_then_the_rest(
        self, sections: dict[str, Any], counts: dict[str, int]
    ) -> None:
        run = new_run(OLD, cluster=Cluster(readiness=Readiness(slow={OLD: 3})), **sections)
        run.run(budget=40)
        first = run.ticks[0].decision
        assert first.plan == {Component.JOBS_RUNNER: WorkloadPlan(OLD, 1)}, first.plan
        # The others are planned only once the jobs-runner was seen Ready.
        for t in run.ticks:
            others = set(t.decision.plan or {}) - {Component.JOBS_RUNNER}
            if others:
                seen = t.inputs.observed.workload(Component.JOBS_RUNNER)
                assert seen is not None, f"tick {t.tick}: {others} before the jobs-runner"
                assert seen.rolled_out(OLD, 1), f"tick {t.tick}: {others} before it was Ready"
        phases = [t.decision.status.phase for t in run.ticks]
        assert phases[:-1] == [Phase.INSTALLING] * (len(phases) - 1), phases
        assert run.event_reasons == ["Installed"]
        assert_ready_on(run, OLD)
        assert run.status.history == []
        assert_rolled_out(run, OLD, {"jobs-runner": 1, **counts})
        assert run.ticks[-1].decision.requeue_after is None

    def test_reports_components_and_database(self) -> None:
        run = installed(OLD)
        run.step()
        status = run.status
        assert status.api is not None
        assert status.jobs_runner is not None
        assert (status.api.replicas, status.api.ready_replicas, status.api.version) == (2, 2, OLD)
        assert status.api.selector is not None
        assert "app.kubernetes.io/component=api" in (status.api.selector)
        assert status.jobs_runner.version == OLD
        assert status.workflows_backend is None
        assert status.database is not None
        assert status.database.reachable is True
        assert status.observed_generation == run.generation

    def test_install_stalls_without_secret_and_touches_nothing(self) -> None:
        run = new_run(OLD, cluster=Cluster(missing_secrets=("Secret retool-secrets",)))
        run.settle(3)
        assert all(t.decision.plan is None for t in run.ticks)
        assert run.cluster.workloads == {}
        assert cond(run, STALLED) == ("True", Reason.SECRET_MISSING)
        assert "retool-secrets" in (run.status.conditions[0].message)
        assert cond(run, READY)[0] == "False"
        assert cond(run, RECONCILING) == ("False", Reason.SECRET_MISSING)
        assert run.ticks[-1].decision.requeue_after == statemachine.REQUEUE_BLOCKED_SECONDS
        run.cluster.missing_secrets = ()
        run.run(budget=20)
        assert_ready_on(run, OLD)

    @pytest.mark.parametrize(
        ("reachable", "version_num", "reason"),
        [
            (False, 150004, Reason.DATABASE_UNREACHABLE),
            (True, 120015, Reason.DATABASE_UNSUPPORTED),
        ],
        ids=["unreachable", "postgres-12"],
    )
    def test_install_waits_for_a_usable_database(
        self, reachable: bool, version_num: int, reason: Reason
    ) -> None:
        run = new_run(
            OLD, cluster=Cluster(database_reachable=reachable, database_version_num=version_num)
        )
        run.settle(3)
        assert all(t.decision.plan is None for t in run.ticks)
        assert cond(run, STALLED) == ("True", reason)
        expected_db = "True" if reachable else "False"
        assert cond(run, DATABASE_REACHABLE)[0] == expected_db
        run.cluster.database_reachable, run.cluster.database_version_num = True, 160002
        run.run(budget=20)
        assert_ready_on(run, OLD)

    def test_a_broken_install_target_replaced_by_a_good_one(self) -> None:
        """The crash-looping jobs-runner of the first target is deleted (#67250)."""
        run = new_run(BROKEN)
        run.settle(6)
        assert cond(run, READY) == ("False", Reason.INSTALLING)
        run.set_version(NEW)
        run.run(budget=30)
        assert_ready_on(run, NEW)
        deleted = [name for t in run.ticks for name in t.decision.delete_pods]
        assert deleted == ["retool-jobs-runner-0"]

    def test_status_lost_adopts_the_running_version(self) -> None:
        run = installed(OLD)
        run.set_version(NEW)
        run.status = RetoolDeploymentStatus()
        run.run(budget=60)
        assert_ready_on(run, NEW)
        assert [h.from_version for h in run.status.history] == [OLD]


# --- upgrades that succeed --------------------------------------------------------------------


class TestUpgrade:
    def test_minor_recreate(self) -> None:
        sections = {"api": {"replicas": 3}, "workflowsBackend": {"replicas": 2}}
        run = installed(OLD, cluster=Cluster(readiness=Readiness(slow={NEW: 3})), **sections)
        run.set_version(NEW)
        run.run(budget=60)
        assert upgrade_steps(run) == RECREATE_STEPS
        assert run.steps_seen == [*RECREATE_STEPS[1:], None]
        assert run.event_reasons == ["UpgradeStarted"] + ["UpgradeStep"] * 4 + ["UpgradeSucceeded"]
        assert_ready_on(run, NEW)
        (entry,) = run.status.history
        assert (entry.from_version, entry.to, entry.result) == (OLD, NEW, UpgradeResult.SUCCEEDED)
        assert entry.started_at < entry.finished_at
        assert_rolled_out(run, NEW, {"jobs-runner": 1, "api": 3, "workflows-backend": 2})
        upgrades = [t.decision.status.upgrade for t in run.ticks if t.decision.status.upgrade]
        assert {u.kind for u in upgrades} == {ChangeKind.MINOR}
        assert {u.strategy for u in upgrades} == {UpgradeStrategy.RECREATE}
        assert {tuple(sorted(u.saved_replicas.items())) for u in upgrades} == {
            (("api", 3), ("workflows-backend", 2))
        }
        # While the jobs-runner migrated, nothing else ran.
        for t in run.ticks:
            u = t.decision.status.upgrade
            if u is not None and u.step is Step.MIGRATING_DATABASE:
                others = [c for c in t.inputs.observed.workloads if c is not Component.JOBS_RUNNER]
                assert all(not t.inputs.observed.pods(c) for c in others), t.tick
        phases = {t.decision.status.phase for t in run.ticks[:-1]}
        assert phases == {Phase.UPGRADING}

    def test_minor_rolling_update_keeps_the_api_serving(self) -> None:
        run = installed(
            OLD,
            strategy="RollingUpdate",
            cluster=Cluster(readiness=Readiness(slow={NEW: 3})),
            api={"replicas": 4},
        )
        run.set_version(NEW)
        run.run(budget=60)
        assert upgrade_steps(run) == ROLLING_STEPS
        assert "StoppingServices" not in run.steps_seen
        assert min(api_ready_counts(run)) >= 4, api_ready_counts(run)
        assert all(p.replicas == 4 for p in planned(run, Component.API))
        assert_ready_on(run, NEW)
        assert_rolled_out(run, NEW, {"jobs-runner": 1, "api": 4})
        # Old api pods served while the new jobs-runner migrated.
        migrating = [
            t
            for t in run.ticks
            if (u := t.decision.status.upgrade) and u.step.value == "MigratingDatabase"
        ]
        assert migrating
        for t in migrating:
            assert all(p.version == OLD for p in t.inputs.observed.pods(Component.API))

    @pytest.mark.parametrize("strategy", STRATEGIES)
    def test_major(self, strategy: simulator.Strategy) -> None:
        run = upgraded("3.334.0-stable", "4.0.0-stable", strategy=strategy, api={"replicas": 2})
        assert run.status.history[-1].result is UpgradeResult.SUCCEEDED
        kinds = {u.kind for t in run.ticks if (u := t.decision.status.upgrade)}
        assert kinds == {ChangeKind.MAJOR}
        assert upgrade_steps(run) == (RECREATE_STEPS if strategy == "Recreate" else ROLLING_STEPS)
        assert_ready_on(run, "4.0.0-stable")

    @pytest.mark.parametrize("strategy", STRATEGIES)
    def test_patch_never_stops_anything(self, strategy: simulator.Strategy) -> None:
        run = installed(
            "3.196.1-stable",
            strategy=strategy,
            cluster=Cluster(readiness=Readiness(slow={"3.196.3-stable": 3})),
            **OPTIONAL,
        )
        run.set_version("3.196.3-stable")
        run.run(budget=60)
        assert upgrade_steps(run) == ROLLING_STEPS
        for plan in run.plans():
            assert all(w.replicas != 0 for w in plan.values()), plan
        assert min(api_ready_counts(run)) >= 2
        kinds = {u.kind for t in run.ticks if (u := t.decision.status.upgrade)}
        assert kinds == {ChangeKind.PATCH}
        assert_ready_on(run, "3.196.3-stable")

    def test_suffix_only_change_is_a_patch(self) -> None:
        run = upgraded("3.196.1-stable", "3.196.1-edge")
        assert run.status.history[-1].result is UpgradeResult.SUCCEEDED
        assert "StoppingServices" not in upgrade_steps(run)

    def test_history_is_capped(self) -> None:
        run = installed("3.196.1-stable")
        for index in range(HISTORY_LIMIT + 3):
            run.set_version("3.196.3-stable" if index % 2 == 0 else "3.196.1-stable")
            run.run(budget=60)
        assert len(run.status.history) == HISTORY_LIMIT
        assert run.status.history[-1].to == run.spec.version
        assert all(h.result is UpgradeResult.SUCCEEDED for h in run.status.history)
        finished = [h.finished_at for h in run.status.history]
        assert finished == sorted(finished), "oldest first, newest last"

    def test_controller_lag_is_waited_for(self) -> None:
        """observedGeneration lagging behind: nothing counts as rolled out until it catches up."""
        run = installed(OLD, cluster=Cluster(controller_lag=True))
        run.set_version(NEW)
        run.run(budget=80)
        assert upgrade_steps(run) == RECREATE_STEPS
        assert_ready_on(run, NEW)

    @pytest.mark.parametrize("terminate_ticks", [1, 4])
    @pytest.mark.parametrize("strategy", STRATEGIES)
    def test_slow_pods_and_termination(
        self, strategy: simulator.Strategy, terminate_ticks: int
    ) -> None:
        cluster = Cluster(readiness=Readiness(default_ticks=3), terminate_ticks=terminate_ticks)
        run = installed(OLD, strategy=strategy, cluster=cluster, **OPTIONAL)
        run.set_version(NEW)
        run.run(budget=120)
        assert_ready_on(run, NEW)
        assert run.status.history[-1].result is UpgradeResult.SUCCEEDED


# --- failures ---------------------------------------------------------------------------------


class TestFailure:
    @pytest.mark.parametrize("strategy", STRATEGIES)
    def test_broken_release_rolls_back(self, strategy: simulator.Strategy) -> None:
        run = installed(OLD, strategy=strategy, api={"replicas": 3}, **OPTIONAL)
        before = replicas(run)
        run.set_version(BROKEN)
        run.run(budget=60)
        expected = (RECREATE_STEPS if strategy == "Recreate" else ROLLING_STEPS)[:-2]
        assert upgrade_steps(run) == [*expected, "RollingBack"]
        assert run.event_reasons[-3:] == ["UpgradeFailed", "UpgradeStep", "UpgradeRolledBack"]
        failed = next(e for e in run.events if e.reason == "UpgradeFailed")
        assert failed.type == "Warning"
        assert "crash-looping" in failed.message
        (entry,) = run.status.history
        assert (entry.from_version, entry.to, entry.result) == (
            OLD,
            BROKEN,
            UpgradeResult.ROLLED_BACK,
        )
        assert run.status.current_version == OLD
        assert run.status.target_version == BROKEN
        assert run.spec.version == BROKEN, "the spec is never rewritten"
        assert cond(run, STALLED) == ("True", Reason.UPGRADE_FAILED)
        assert cond(run, READY) == ("False", Reason.UPGRADE_FAILED)
        assert cond(run, RECONCILING)[0] == "False"
        assert run.status.phase is Phase.DEGRADED
        assert_rolled_out(run, OLD, before)
        assert replicas(run) == before
        deleted = [name for t in run.ticks for name in t.decision.delete_pods]
        assert deleted == ["retool-jobs-runner-0"], "the stuck jobs-runner pod was deleted"
        # It stays put: no retry until a person acts.
        run.ticks.clear()
        run.settle(5)
        assert run.events == []
        assert all(w.version == OLD for plan in run.plans() for w in plan.values())
        assert cond(run, STALLED) == ("True", Reason.UPGRADE_FAILED)

    def test_broken_api_fails_verification_at_once(self) -> None:
        cluster = Cluster(readiness=Readiness(broken=frozenset({(NEW, Component.API)})))
        run = installed(OLD, strategy="RollingUpdate", cluster=cluster)
        run.set_version(NEW)
        run.run(budget=60)
        assert upgrade_steps(run) == [*ROLLING_STEPS, "RollingBack"]
        failed = next(e for e in run.events if e.reason == "UpgradeFailed")
        assert "crash-looping" in failed.message
        assert run.status.history[-1].result is UpgradeResult.ROLLED_BACK
        elapsed = run.status.history[-1].finished_at - run.status.history[-1].started_at
        assert elapsed.total_seconds() < parse_duration("10m"), "did not wait for the timeout"
        assert min(api_ready_counts(run)) >= 2
        assert_rolled_out(run, OLD, {"jobs-runner": 1, "api": 2})

    @pytest.mark.parametrize("strategy", STRATEGIES)
    def test_slow_migration_times_out(self, strategy: simulator.Strategy) -> None:
        cluster = Cluster(readiness=Readiness(slow={NEW: 1000}), seconds_per_tick=20)
        run = installed(OLD, strategy=strategy, cluster=cluster, upgrade={"migrationTimeout": "3m"})
        run.set_version(NEW)
        run.run(budget=60)
        failed_at = next(
            t for t in run.ticks if "UpgradeFailed" in [e.reason for e in t.decision.events]
        )
        u = failed_at.inputs.status.upgrade
        assert u is not None
        assert u.step is Step.MIGRATING_DATABASE
        waited = (failed_at.inputs.now - u.step_started_at).total_seconds()
        assert 180 < waited <= 200, waited
        assert "migrationTimeout 3m" in run.status.history[-1].message
        assert run.status.history[-1].result is UpgradeResult.ROLLED_BACK
        assert run.status.current_version == OLD
        assert_rolled_out(run, OLD, {"jobs-runner": 1, "api": 2})
        assert "retool-jobs-runner-0" in [n for t in run.ticks for n in t.decision.delete_pods]

    @pytest.mark.parametrize("strategy", STRATEGIES)
    def test_slow_api_exceeds_verify_timeout(self, strategy: simulator.Strategy) -> None:
        slow = Readiness(slow_components={(NEW, Component.API): 1000})
        run = installed(
            OLD, strategy=strategy, cluster=Cluster(readiness=slow), upgrade={"verifyTimeout": "2m"}
        )
        run.set_version(NEW)
        run.run(budget=60)
        assert upgrade_steps(run)[-2:] == ["Verifying", "RollingBack"]
        assert "verifyTimeout 2m" in run.status.history[-1].message
        assert run.status.history[-1].result is UpgradeResult.ROLLED_BACK
        assert_rolled_out(run, OLD, {"jobs-runner": 1, "api": 2})
        assert cond(run, STALLED) == ("True", Reason.UPGRADE_FAILED)

    @pytest.mark.parametrize("strategy", STRATEGIES)
    def test_without_auto_rollback_it_stops_for_a_person(
        self, strategy: simulator.Strategy
    ) -> None:
        run = installed(OLD, strategy=strategy, auto_rollback=False)
        run.set_version(BROKEN)
        run.run(budget=60)
        assert "RollingBack" not in upgrade_steps(run)
        (entry,) = run.status.history
        assert entry.result is UpgradeResult.FAILED
        assert run.event_reasons[-1] == "UpgradeFailed"
        assert cond(run, STALLED) == ("True", Reason.UPGRADE_FAILED)
        assert run.status.current_version == OLD
        left = versions(run)
        run.ticks.clear()
        run.settle(5)
        assert [t.decision.plan for t in run.ticks] == [None] * 5, "children left as they are"
        assert [t.decision.delete_pods for t in run.ticks] == [()] * 5
        assert versions(run) == left
        assert run.events == []

    @pytest.mark.parametrize("strategy", STRATEGIES)
    @pytest.mark.parametrize("broken", [Component.JOBS_RUNNER, Component.API])
    @pytest.mark.parametrize("way_out", ["revert", "new-version", "retry-fixed"])
    def test_person_recovers_after_a_failure_without_rollback(
        self, strategy: simulator.Strategy, broken: Component, way_out: str
    ) -> None:
        """Whatever the person does next, the crash-looping pods of the failed attempt go.

        A stuck jobs-runner pod is deleted (#67250); a retry waits in Preflight for the pods of
        the failed attempt to go instead of failing at once on their CrashLoopBackOff.
        """
        cluster = Cluster(readiness=Readiness(broken=frozenset({(NEW, broken)})))
        run = installed(OLD, strategy=strategy, auto_rollback=False, cluster=cluster)
        run.set_version(NEW)
        run.run(budget=60)
        assert run.status.history[-1].result is UpgradeResult.FAILED
        if way_out == "revert":
            run.set_version(OLD)
            target = OLD
        elif way_out == "new-version":
            run.set_version(NEWER)
            target = NEWER
        else:
            cluster.readiness = Readiness()
            run.annotate(RETRY_ANNOTATION, "fixed")
            target = NEW
        run.run(budget=80)
        assert_ready_on(run, target)
        assert_rolled_out(run, target, {"jobs-runner": 1, "api": 2})
        results = [h.result for h in run.status.history]
        assert results[-1] is UpgradeResult.SUCCEEDED or way_out == "revert", results


class TestRetry:
    def test_retry_annotation_starts_attempt_two(self) -> None:
        cluster = Cluster(readiness=Readiness(broken=frozenset({(NEW, Component.JOBS_RUNNER)})))
        run = installed(OLD, cluster=cluster)
        run.set_version(NEW)
        run.run(budget=60)
        assert run.status.history[-1].result is UpgradeResult.ROLLED_BACK
        cluster.readiness = Readiness()  # whatever broke it is fixed
        run.ticks.clear()
        run.settle(5)
        assert "UpgradeStarted" not in run.event_reasons, "no retry without the annotation"
        run.annotate(RETRY_ANNOTATION, "1")
        run.step()
        assert run.status.upgrade is not None
        assert run.status.upgrade.attempt == 2
        assert run.status.retry_token == "1"
        started = next(e for e in run.events if e.reason == "UpgradeStarted")
        assert "attempt 2" in started.message
        run.run(budget=60)
        assert_ready_on(run, NEW)
        assert [h.result for h in run.status.history] == [
            UpgradeResult.ROLLED_BACK,
            UpgradeResult.SUCCEEDED,
        ]

    def test_same_value_is_not_a_retry(self) -> None:
        run = installed(OLD)
        run.annotate(RETRY_ANNOTATION, "a")  # set before anything failed
        run.set_version(BROKEN)
        run.run(budget=60)
        assert run.status.retry_token == "a"
        run.ticks.clear()
        run.settle(5)
        assert run.event_reasons == [], "the value it started with is not a new request"
        run.annotate(RETRY_ANNOTATION, "b")
        run.run(budget=60)
        assert [h.result for h in run.status.history] == [UpgradeResult.ROLLED_BACK] * 2
        attempts = {u.attempt for t in run.ticks if (u := t.decision.status.upgrade)}
        assert attempts == {2}
        run.ticks.clear()
        run.settle(5)
        assert run.event_reasons == [], "b was used up"
        run.annotate(RETRY_ANNOTATION, "c")
        run.step()
        assert run.status.upgrade is not None
        assert run.status.upgrade.attempt == 3

    def test_a_new_version_needs_no_annotation(self) -> None:
        run = installed(OLD)
        run.set_version(BROKEN)
        run.run(budget=60)
        run.set_version(NEW)
        run.run(budget=60)
        assert_ready_on(run, NEW)
        assert run.status.history[-1].to == NEW


# --- downgrades -------------------------------------------------------------------------------


class TestDowngrade:
    def test_refused_across_minor(self) -> None:
        run = installed("3.196.1-stable")
        run.set_version(OLD)
        run.settle(5)
        assert cond(run, STALLED) == ("True", Reason.DOWNGRADE_REFUSED)
        assert cond(run, READY) == ("False", Reason.DOWNGRADE_REFUSED)
        assert ALLOW_DOWNGRADE_ANNOTATION in run.status.conditions[0].message
        assert run.status.current_version == "3.196.1-stable"
        assert run.status.upgrade is None
        assert "UpgradeStarted" not in run.event_reasons
        assert all(w.version == "3.196.1-stable" for p in run.plans() for w in p.values())
        assert set(versions(run).values()) == {"3.196.1-stable"}
        run.annotate(ALLOW_DOWNGRADE_ANNOTATION, "true")
        run.run(budget=60)
        assert_ready_on(run, OLD)
        assert upgrade_steps(run) == RECREATE_STEPS
        entry = run.status.history[-1]
        assert (entry.from_version, entry.to, entry.result) == (
            "3.196.1-stable",
            OLD,
            UpgradeResult.SUCCEEDED,
        )

    @pytest.mark.parametrize("value", ["false", "yes", ""])
    def test_only_true_allows_it(self, value: str) -> None:
        run = installed("3.196.1-stable")
        run.annotate(ALLOW_DOWNGRADE_ANNOTATION, value)
        run.set_version(OLD)
        run.step()
        assert cond(run, STALLED) == ("True", Reason.DOWNGRADE_REFUSED)

    def test_patch_downgrade_is_allowed(self) -> None:
        run = upgraded("3.196.3-stable", "3.196.1-stable")
        assert_ready_on(run, "3.196.1-stable")
        assert upgrade_steps(run) == ROLLING_STEPS


# --- the version changes mid-upgrade ----------------------------------------------------------


class TestVersionChangedMidUpgrade:
    def test_during_preflight_retargets(self) -> None:
        run = installed(OLD)
        run.cluster.database_reachable = False
        run.set_version(NEW)
        run.step()
        assert run.status.upgrade is not None
        assert run.status.upgrade.step is Step.PREFLIGHT
        run.set_version(NEWER)
        run.step()
        assert run.status.upgrade is not None
        assert run.status.upgrade.to == NEWER
        run.cluster.database_reachable = True
        run.run(budget=60)
        assert_ready_on(run, NEWER)
        (entry,) = run.status.history
        assert (entry.from_version, entry.to) == (OLD, NEWER)
        assert "UpgradeRetargeted" in run.event_reasons
        assert not any(
            p.version == NEW for t in run.ticks for p in (t.decision.plan or {}).values()
        )

    @pytest.mark.parametrize("strategy", STRATEGIES)
    @pytest.mark.parametrize(
        "step", [Step.STOPPING_SERVICES, Step.MIGRATING_DATABASE, Step.STARTING_SERVICES]
    )
    def test_a_component_enabled_mid_upgrade_waits_for_its_end(
        self, strategy: simulator.Strategy, step: Step
    ) -> None:
        run = installed(OLD, strategy=strategy, cluster=Cluster(readiness=Readiness(slow={NEW: 3})))
        run.set_version(NEW)
        if strategy == "RollingUpdate" and step is Step.STOPPING_SERVICES:
            step = Step.MIGRATING_DATABASE  # a rolling update stops nothing
        run.run_until_step(step)
        run.update_spec(
            multiplayer=OptionalComponentSpec(replicas=2), db_connector=OptionalComponentSpec()
        )
        while run.status.upgrade is not None:
            run.step()
            if run.status.upgrade is None:
                break  # the upgrade ended: now they may join
            for component in (Component.MULTIPLAYER, Component.DB_CONNECTOR):
                assert component not in run.cluster.workloads, (
                    f"{component} created during {run.status.upgrade}"
                )
        run.run(budget=60)
        assert_ready_on(run, NEW)
        assert_rolled_out(
            run, NEW, {"jobs-runner": 1, "api": 2, "multiplayer": 2, "db-connector": 1}
        )

    @pytest.mark.parametrize("new_target", [NEWER, "3.148.2-stable"], ids=["minor", "to-patch"])
    def test_during_stopping_services_retargets(self, new_target: str) -> None:
        run = installed(OLD, cluster=Cluster(terminate_ticks=4))
        run.set_version(NEW)
        run.run_until_step(Step.STOPPING_SERVICES)
        run.set_version(new_target)
        run.step()
        u = run.status.upgrade
        assert u is not None
        assert u.to == new_target
        assert u.step is Step.STOPPING_SERVICES
        assert u.kind is classify(OLD, new_target).kind
        run.run(budget=60)
        assert_ready_on(run, new_target)
        (entry,) = run.status.history
        assert (entry.from_version, entry.to, entry.result) == (
            OLD,
            new_target,
            UpgradeResult.SUCCEEDED,
        )
        assert run.event_reasons.count("UpgradeRetargeted") == 1
        assert not any(w.version == NEW for p in run.plans() for w in p.values())

    @pytest.mark.parametrize("strategy", STRATEGIES)
    def test_during_migration_finishes_then_upgrades_again(
        self, strategy: simulator.Strategy
    ) -> None:
        run = installed(OLD, strategy=strategy, cluster=Cluster(readiness=Readiness(slow={NEW: 4})))
        run.set_version(NEW)
        run.run_until_step(Step.MIGRATING_DATABASE)
        run.set_version(NEWER)
        run.run(lambda r: r.status.current_version == NEW, budget=40)
        assert all(
            u.to == NEW for t in run.ticks[:-1] if (u := t.decision.status.upgrade) is not None
        ), "the running migration was not retargeted"
        run.run(budget=60)
        assert_ready_on(run, NEWER)
        assert [(h.from_version, h.to, h.result) for h in run.status.history] == [
            (OLD, NEW, UpgradeResult.SUCCEEDED),
            (NEW, NEWER, UpgradeResult.SUCCEEDED),
        ]
        assert "UpgradeRetargeted" not in run.event_reasons

    def test_back_to_the_old_version_during_stopping_cancels(self) -> None:
        run = installed(OLD, cluster=Cluster(terminate_ticks=4), api={"replicas": 3})
        run.set_version(NEW)
        run.run_until_step(Step.STOPPING_SERVICES)
        run.set_version(OLD)
        run.run(budget=60)
        assert upgrade_steps(run) == ["Preflight", "StoppingServices", "RollingBack"]
        assert_ready_on(run, OLD)
        (entry,) = run.status.history
        assert entry.result is UpgradeResult.ROLLED_BACK
        assert "cancelled" in entry.message
        assert_rolled_out(run, OLD, {"jobs-runner": 1, "api": 3})
        assert not any(w.version == NEW for p in run.plans() for w in p.values())

    @pytest.mark.parametrize("when", ["while-rolling-back", "after"])
    def test_asking_again_after_a_cancel_is_a_new_upgrade(self, when: str) -> None:
        """Regression: the cancel's history entry (RolledBack) blocked it as a failed upgrade."""
        run = installed(OLD, cluster=Cluster(terminate_ticks=4))
        run.set_version(NEW)
        run.run_until_step(Step.STOPPING_SERVICES)
        run.set_version(OLD)
        if when == "after":
            run.run(budget=60)
            assert_ready_on(run, OLD)
        else:
            run.run_until_step(Step.ROLLING_BACK)
        run.set_version(NEW)
        run.run(budget=80)
        assert_ready_on(run, NEW)
        assert [(h.to, h.result) for h in run.status.history] == [
            (NEW, UpgradeResult.ROLLED_BACK),
            (NEW, UpgradeResult.SUCCEEDED),
        ]
        assert run.status.history[0].message.startswith(statemachine.CANCELLED)

    def test_back_to_the_old_version_during_preflight_cancels_without_rollback(self) -> None:
        run = installed(OLD)
        run.cluster.database_reachable = False
        run.set_version(NEW)
        run.step()
        run.set_version(OLD)
        run.cluster.database_reachable = True
        run.run(budget=10)
        assert "UpgradeCancelled" in run.event_reasons
        assert "RollingBack" not in upgrade_steps(run)
        assert run.status.history == []
        assert_ready_on(run, OLD)

    def test_to_a_refused_downgrade_during_stopping(self) -> None:
        run = installed("3.196.1-stable", cluster=Cluster(terminate_ticks=4))
        run.set_version("3.200.0-edge")
        run.run_until_step(Step.STOPPING_SERVICES)
        run.set_version(OLD)
        run.run(budget=60)
        assert cond(run, STALLED) == ("True", Reason.DOWNGRADE_REFUSED)
        assert run.status.current_version == "3.196.1-stable"
        assert_rolled_out(run, "3.196.1-stable", {"jobs-runner": 1, "api": 2})


# --- preflight blockers -----------------------------------------------------------------------


class TestPreflight:
    @pytest.mark.parametrize(
        ("breakage", "reason"),
        [
            ({"database_reachable": False}, Reason.DATABASE_UNREACHABLE),
            ({"database_version_num": 120015}, Reason.DATABASE_UNSUPPORTED),
            (
                {"missing_secrets": ("key license-key in Secret retool-secrets",)},
                Reason.SECRET_MISSING,
            ),
        ],
        ids=["database-unreachable", "postgres-12", "secret-missing"],
    )
    def test_blocks_before_anything_is_stopped(
        self, breakage: dict[str, Any], reason: Reason
    ) -> None:
        run = installed(OLD, api={"replicas": 3})
        for key, value in breakage.items():
            setattr(run.cluster, key, value)
        run.set_version(NEW)
        run.settle(5)
        u = run.status.upgrade
        assert u is not None
        assert u.step is Step.PREFLIGHT
        assert cond(run, STALLED) == ("True", reason)
        assert cond(run, READY) == ("False", reason)
        if reason is Reason.DATABASE_UNREACHABLE:
            assert cond(run, DATABASE_REACHABLE) == ("False", Reason.DATABASE_UNREACHABLE)
        assert run.status.phase is Phase.UPGRADING
        assert all(
            plan
            == {Component.JOBS_RUNNER: WorkloadPlan(OLD, 1), Component.API: WorkloadPlan(OLD, 3)}
            for plan in run.plans()
        ), "nothing stopped, nothing moved"
        assert_rolled_out(run, OLD, {"jobs-runner": 1, "api": 3})
        assert run.ticks[-1].decision.requeue_after == statemachine.REQUEUE_BLOCKED_SECONDS
        # Fixed: it proceeds.
        run.cluster.database_reachable = True
        run.cluster.database_version_num = 150004
        run.cluster.missing_secrets = ()
        run.run(budget=60)
        assert_ready_on(run, NEW)
        assert upgrade_steps(run) == RECREATE_STEPS
        assert run.status.history[-1].result is UpgradeResult.SUCCEEDED

    def test_missing_secret_in_steady_state_holds_the_children(self) -> None:
        run = installed(OLD)
        before = run.spec.api.replicas
        run.cluster.missing_secrets = ("Secret retool-secrets",)
        # A settings change that names the missing Secret is held whole, not half applied.
        run.update_spec(api=run.spec.api.model_copy(update={"replicas": 5}))
        run.settle(3)
        assert cond(run, STALLED) == ("True", Reason.SECRET_MISSING)
        assert [t.decision.plan for t in run.ticks[-3:]] == [None] * 3
        assert_rolled_out(run, OLD, {"jobs-runner": 1, "api": before})
        # Once the Secret exists, the change is applied.
        run.cluster.missing_secrets = ()
        run.settle(3)
        assert_rolled_out(run, OLD, {"jobs-runner": 1, "api": 5})


# --- paused -----------------------------------------------------------------------------------


class TestPaused:
    def test_paused_changes_nothing(self) -> None:
        run = installed(OLD)
        run.update_spec(paused=True)
        run.set_version(NEW)
        run.settle(5)
        assert [t.decision.plan for t in run.ticks] == [None] * 5
        assert run.status.phase is Phase.PAUSED
        # A change is pending: not Ready, and in progress for kstatus (Reconciling=True).
        assert cond(run, READY) == ("False", Reason.PAUSED)
        assert cond(run, RECONCILING) == ("True", Reason.PAUSED)
        assert cond(run, STALLED) == ("False", Reason.NOT_STALLED)
        assert run.status.upgrade is None
        assert run.events == []
        assert set(versions(run).values()) == {OLD}
        run.update_spec(paused=False)
        run.run(budget=60)
        assert_ready_on(run, NEW)

    def test_paused_and_healthy_reads_healthy(self) -> None:
        """Paused while running spec.version healthily: Ready=True, nothing in progress."""
        run = installed(OLD)
        run.update_spec(paused=True)
        run.settle(3)
        assert [t.decision.plan for t in run.ticks[-3:]] == [None] * 3
        assert run.status.phase is Phase.PAUSED
        assert cond(run, READY) == ("True", Reason.ALL_COMPONENTS_READY)
        assert cond(run, RECONCILING) == ("False", Reason.PAUSED)
        assert cond(run, STALLED) == ("False", Reason.NOT_STALLED)

    def test_paused_mid_upgrade_keeps_the_step(self) -> None:
        run = installed(OLD, cluster=Cluster(readiness=Readiness(slow={NEW: 4})))
        run.set_version(NEW)
        run.run_until_step(Step.MIGRATING_DATABASE)
        run.update_spec(paused=True)
        run.settle(8)
        u = run.status.upgrade
        assert u is not None
        assert u.step is Step.MIGRATING_DATABASE
        assert all(t.decision.plan is None for t in run.ticks[-8:])
        assert cond(run, READY) == ("False", Reason.PAUSED)
        assert cond(run, RECONCILING) == ("True", Reason.PAUSED)
        run.update_spec(paused=False)
        run.run(budget=60)
        assert_ready_on(run, NEW)

    def test_paused_install(self) -> None:
        run = new_run(OLD)
        run.update_spec(paused=True)
        run.settle(3)
        assert run.cluster.workloads == {}
        assert run.status.phase is Phase.PAUSED


# --- restarts and idempotency -----------------------------------------------------------------


def _full_upgrade_ticks(strategy: simulator.Strategy) -> int:
    return len(upgraded(OLD, NEW, strategy=strategy).ticks)


class TestRestart:
    @pytest.mark.parametrize("strategy", STRATEGIES)
    @pytest.mark.parametrize("scenario", ["success", "rollback"])
    def test_operator_dies_before_applying_at_every_step(
        self, strategy: simulator.Strategy, scenario: str
    ) -> None:
        """The status was written, the plan never applied: the next operator carries on."""
        target = NEW if scenario == "success" else BROKEN
        reference = upgraded(OLD, target, strategy=strategy)
        outcome = [(h.from_version, h.to, h.result) for h in reference.status.history]
        for crash_at in range(len(reference.ticks)):
            run = installed(OLD, strategy=strategy)
            run.set_version(target)
            run.run(budget=200, restarts={crash_at})
            assert [(h.from_version, h.to, h.result) for h in run.status.history] == outcome, (
                crash_at
            )
            assert upgrade_steps(run) == upgrade_steps(reference), crash_at

    def test_repeated_deaths(self) -> None:
        run = installed(OLD, **OPTIONAL)
        run.set_version(NEW)
        run.run(budget=300, restarts=range(0, 300, 2))
        assert_ready_on(run, NEW)

    @pytest.mark.parametrize("strategy", STRATEGIES)
    def test_every_step_decided_twice_is_a_no_op(self, strategy: simulator.Strategy) -> None:
        run = upgraded(OLD, NEW, strategy=strategy)
        assert run.check_fixpoint
        for t in run.ticks:
            again = decide(dataclasses.replace(t.inputs, status=t.decision.status))
            assert again.events == (), (t.tick, again.events)
            assert again.plan == t.decision.plan
            assert again.status == t.decision.status

    def test_a_lost_status_write_on_an_autoscaled_api(self) -> None:
        """Write-ahead makes this impossible, but even then the api must not stay at 0."""
        run = installed(OLD, **AUTOSCALED)
        run.set_version(NEW)
        run.step(write_status=False)
        run.run(budget=60)
        assert_ready_on(run, NEW)
        assert run.cluster.workloads[Component.API].replicas == 3


# --- steady state ----------------------------------------------------------------------------


class TestSteadyState:
    def test_nothing_to_do_is_stable(self) -> None:
        run = installed(OLD, **OPTIONAL)
        run.settle(3)
        decisions = [t.decision for t in run.ticks]
        assert all(d.plan == decisions[0].plan for d in decisions)
        assert all(d.status == decisions[0].status for d in decisions)
        assert all(d.requeue_after is None and d.events == () for d in decisions)

    @pytest.mark.parametrize(
        ("component", "count"), [(Component.JOBS_RUNNER, 2), (Component.API, 5)]
    )
    def test_drift_is_reverted(self, component: Component, count: int) -> None:
        run = installed(OLD)
        run.cluster.set_replicas(component, count)
        decision = run.step()
        assert decision.plan is not None
        assert decision.plan[component].replicas == (1 if component is Component.JOBS_RUNNER else 2)
        run.settle(3)
        assert_rolled_out(run, OLD, {"jobs-runner": 1, "api": 2})
        assert_ready_on(run, OLD)

    def test_unhealthy_steady_state_is_degraded_not_stalled(self) -> None:
        run = installed(OLD)
        run.cluster.readiness = Readiness(broken=frozenset({(OLD, Component.API)}))
        api = run.cluster.workloads[Component.API]
        api.pods.clear()
        run.settle(3)
        assert run.status.phase is Phase.DEGRADED
        assert cond(run, READY) == ("False", Reason.COMPONENTS_NOT_READY)
        assert cond(run, RECONCILING) == ("True", Reason.PROGRESSING)
        assert cond(run, STALLED)[0] == "False"

    def test_condition_times_move_only_with_status(self) -> None:
        run = installed(OLD)
        ready_since = next(c for c in run.status.conditions if c.type == READY)
        run.settle(3)
        again = next(c for c in run.status.conditions if c.type == READY)
        assert again.last_transition_time == ready_since.last_transition_time
        run.set_version(NEW)
        run.step()
        during = next(c for c in run.status.conditions if c.type == READY)
        assert during.status.value == "False"
        assert during.last_transition_time == run.ticks[-1].inputs.now

    def test_other_conditions_are_kept(self) -> None:
        from retool_operator.core.models import Condition, ConditionStatus

        run = installed(OLD)
        foreign = Condition(type="example.com/Audited", status=ConditionStatus.TRUE, reason="Done")
        run.status = run.status.model_copy(update={"conditions": [*run.status.conditions, foreign]})
        run.step()
        assert foreign in run.status.conditions


# --- an autoscaled api -----------------------------------------------------------------------


class TestAutoscaledApi:
    def test_steady_state_leaves_the_count_to_the_hpa(self) -> None:
        run = installed(OLD, cluster=Cluster(hpa_desired=4), **AUTOSCALED)
        run.settle(3)
        assert all(p[Component.API].replicas is None for p in run.plans())
        assert run.cluster.workloads[Component.API].replicas == 4
        assert_ready_on(run, OLD)

    def test_recreate_restarts_it_with_the_saved_count(self) -> None:
        run = installed(OLD, cluster=Cluster(hpa_desired=4), **AUTOSCALED)
        run.set_version(NEW)
        run.run(budget=60)
        assert_ready_on(run, NEW)
        saved = {
            tuple(u.saved_replicas.items()) for t in run.ticks if (u := t.decision.status.upgrade)
        }
        assert saved == {(("api", 4),)}
        by_step: dict[str, set[int | None]] = {}
        for t in run.ticks:
            u = t.decision.status.upgrade
            if u is not None and t.decision.plan is not None:
                by_step.setdefault(u.step.value, set()).add(t.decision.plan[Component.API].replicas)
        assert by_step["StoppingServices"] == {0}
        assert by_step["MigratingDatabase"] == {0}
        assert 4 in by_step["StartingServices"], "started from 0 with the saved count"
        assert by_step.get("Verifying", {None}) == {None}, "then the HPA owns it again"
        assert run.cluster.workloads[Component.API].replicas == 4

    def test_rolling_update_never_pins_the_count(self) -> None:
        run = installed(OLD, strategy="RollingUpdate", cluster=Cluster(hpa_desired=4), **AUTOSCALED)
        run.set_version(NEW)
        run.run(budget=60)
        assert all(p[Component.API].replicas is None for p in run.plans())
        assert_ready_on(run, NEW)

    @pytest.mark.parametrize("strategy", STRATEGIES)
    @pytest.mark.parametrize("when", [Step.MIGRATING_DATABASE, Step.VERIFYING])
    def test_the_hpa_rescales_during_the_upgrade(
        self, strategy: simulator.Strategy, when: Step
    ) -> None:
        """Regression: pinning the saved count fought the HPA until verifyTimeout, then the
        rollback waited for the saved count forever."""
        readiness = Readiness(slow={NEW: 3})
        run = installed(
            OLD,
            strategy=strategy,
            cluster=Cluster(hpa_desired=3, readiness=readiness),
            **AUTOSCALED,
        )
        run.set_version(NEW)
        run.run_until_step(when)
        run.cluster.hpa_desired = 6
        run.run(budget=60)
        assert_ready_on(run, NEW)
        assert run.cluster.workloads[Component.API].replicas == 6

    def test_the_hpa_rescales_during_a_rollback(self) -> None:
        run = installed(OLD, cluster=Cluster(hpa_desired=3), **AUTOSCALED)
        run.set_version(BROKEN)
        run.run_until_step(Step.ROLLING_BACK)
        run.cluster.hpa_desired = 5
        run.run(budget=60)
        assert run.status.history[-1].result is UpgradeResult.ROLLED_BACK
        assert_rolled_out(run, OLD, {"jobs-runner": 1, "api": 5})

    @pytest.mark.parametrize("way_out", ["revert", "new-version"])
    def test_api_left_at_zero_by_a_failed_upgrade_comes_back(self, way_out: str) -> None:
        """Regression: an HPA does not scale from 0, and 0 replicas counted as healthy."""
        run = installed(OLD, auto_rollback=False, cluster=Cluster(hpa_desired=3), **AUTOSCALED)
        run.set_version(BROKEN)
        run.run(budget=60)
        assert run.cluster.workloads[Component.API].replicas == 0
        run.set_version(OLD if way_out == "revert" else NEW)
        run.run(budget=60)
        assert_ready_on(run, run.spec.version)
        assert run.cluster.workloads[Component.API].replicas == 3
        assert len(run.cluster.ready_pods(Component.API)) == 3

    def test_zero_api_replicas_is_not_healthy(self) -> None:
        run = installed(OLD, **AUTOSCALED)
        inputs = run.inputs()
        stopped = dataclasses.replace(
            inputs.observed.workloads[Component.API],
            spec_replicas=0,
            replicas=0,
            ready_replicas=0,
            updated_replicas=0,
            pods=(),
        )
        snapshot = Snapshot(workloads={**inputs.observed.workloads, Component.API: stopped})
        decision = decide(dataclasses.replace(inputs, observed=snapshot))
        assert decision.plan is not None
        assert decision.plan[Component.API] == WorkloadPlan(OLD, 2), "minReplicas"
        assert condition(decision.status, READY)[0] == "False"


# --- direct decisions on hand-made inputs -----------------------------------------------------


def _workload(
    version: str, count: int, *, ready: bool = True, prefix: str = "p"
) -> WorkloadObservation:
    pods = tuple(PodObservation(f"{prefix}-{i}", version, ready) for i in range(count))
    ready_count = count if ready else 0
    return WorkloadObservation(version, count, count, ready_count, count, pods=pods)


class TestDecideDirectly:
    def test_rolling_back_deletes_only_stuck_pods_of_another_version(self) -> None:
        run = installed(OLD)
        run.set_version(BROKEN)
        run.run_until_step(Step.ROLLING_BACK)
        inputs = run.inputs()
        terminating = PodObservation("jr-0", BROKEN, False, terminating=True)
        for pods, expected in [
            ((PodObservation("jr-0", BROKEN, False),), ("jr-0",)),
            ((terminating,), ()),
            ((PodObservation("jr-0", BROKEN, True),), ()),  # Ready: the StatefulSet replaces it
            ((PodObservation("jr-0", OLD, False),), ()),  # right version, just not Ready yet
        ]:
            jobs_runner = WorkloadObservation(OLD, 1, 1, 0, 0, pods=pods)
            snapshot = Snapshot(
                workloads={**inputs.observed.workloads, Component.JOBS_RUNNER: jobs_runner}
            )
            decision = decide(dataclasses.replace(inputs, observed=snapshot))
            assert decision.delete_pods == expected, pods

    def test_no_deletion_before_the_template_is_reverted(self) -> None:
        run = installed(OLD)
        run.set_version(BROKEN)
        run.run_until_step(Step.ROLLING_BACK)
        inputs = run.inputs()
        jobs_runner = WorkloadObservation(
            BROKEN, 1, 1, 0, 1, pods=(PodObservation("jr-0", BROKEN, False),)
        )
        snapshot = Snapshot(
            workloads={**inputs.observed.workloads, Component.JOBS_RUNNER: jobs_runner}
        )
        decision = decide(dataclasses.replace(inputs, observed=snapshot))
        assert decision.delete_pods == ()
        assert decision.plan is not None
        assert decision.plan[Component.JOBS_RUNNER] == WorkloadPlan(OLD, 1)

    def test_database_not_probed_yet(self) -> None:
        run = new_run(OLD)
        decision = decide(dataclasses.replace(run.inputs(), database=None))
        assert decision.plan is None
        assert condition(decision.status, DATABASE_REACHABLE) == ("Unknown", Reason.NOT_PROBED)
        assert condition(decision.status, STALLED) == ("True", Reason.DATABASE_UNREACHABLE)

    def test_database_condition_kept_between_probes(self) -> None:
        run = installed(OLD)
        decision = decide(dataclasses.replace(run.inputs(), database=None))
        assert condition(decision.status, DATABASE_REACHABLE) == ("True", Reason.CONNECTED)
        assert decision.status.database == run.status.database

    def test_step_timeouts_use_step_start(self) -> None:
        """A step that began just now is not timed out however old the upgrade is."""
        run = installed(OLD, cluster=Cluster(readiness=Readiness(slow={NEW: 1000})))
        run.set_version(NEW)
        run.run_until_step(Step.MIGRATING_DATABASE)
        inputs = run.inputs()
        u = inputs.status.upgrade
        assert u is not None
        limit = parse_duration(run.spec.upgrade.migration_timeout)
        from datetime import timedelta

        at_limit = dataclasses.replace(inputs, now=u.step_started_at + timedelta(seconds=limit))
        assert decide(at_limit).status.upgrade is not None
        assert decide(at_limit).status.upgrade.step is Step.MIGRATING_DATABASE  # type: ignore[union-attr]
        past = dataclasses.replace(inputs, now=u.step_started_at + timedelta(seconds=limit + 1))
        after = decide(past).status.upgrade
        assert after is not None
        assert after.step is Step.ROLLING_BACK


# --- property-based: random histories --------------------------------------------------------

POOL = [
    "3.148.0-stable",
    "3.148.2-stable",
    "3.196.1-stable",
    "3.196.3-stable",
    "3.200.0-edge",
    "3.253.3-stable",
    "3.260.0-edge",
    BROKEN,
]
# What random histories put in spec.upgrade.via (ascending subsets; the operator plans the rest).
VIA_POOL = ["3.148.2-stable", "3.196.1-stable", "3.196.3-stable", "3.253.3-stable"]
GOOD = POOL[:-1]
SLOW_TICKS = 1000  # far beyond every timeout: a release that never finishes migrating


@dataclasses.dataclass(frozen=True)
class History:
    initial: str
    strategy: simulator.Strategy
    auto_rollback: bool
    allow_downgrade: bool
    optional: bool
    autoscaled: bool
    delays: dict[str, int]
    terminate_ticks: int
    controller_lag: bool
    actions: list[tuple[int, str, str]]  # (ticks to wait first, kind, value)
    restarts: frozenset[int]  # steps at which the operator dies before applying its plan


@st.composite
def histories(draw: st.DrawFn) -> History:
    initial = draw(st.sampled_from(GOOD))
    delays = {v: draw(st.sampled_from([1, 1, 2, 3, SLOW_TICKS])) for v in GOOD if v != initial}
    delays[initial] = draw(st.integers(1, 3))
    wait = st.one_of(st.integers(0, 3), st.integers(4, 15))
    action = st.one_of(
        st.tuples(wait, st.just("version"), st.sampled_from(POOL)),
        st.tuples(wait, st.just("retry"), st.sampled_from(["1", "2", "3"])),
        st.tuples(wait, st.just("database"), st.sampled_from(["down", "up"])),
        st.tuples(
            wait,
            st.just("via"),
            st.lists(st.sampled_from(VIA_POOL), unique=True, max_size=3).map(
                lambda vs: ",".join(sorted(vs, key=release_key))
            ),
        ),
        st.tuples(wait, st.just("skip"), st.sampled_from(["true", "false"])),
    )
    return History(
        initial=initial,
        strategy=draw(st.sampled_from(STRATEGIES)),
        auto_rollback=draw(st.booleans()),
        allow_downgrade=draw(st.booleans()),
        optional=draw(st.booleans()),
        autoscaled=draw(st.booleans()),
        delays=delays,
        terminate_ticks=draw(st.integers(1, 3)),
        controller_lag=draw(st.booleans()),
        actions=draw(st.lists(action, min_size=1, max_size=5)),
        restarts=frozenset(draw(st.sets(st.integers(0, 120), max_size=12))),
    )


def _bad(history: History, version: str) -> bool:
    return version == BROKEN or history.delays.get(version) == SLOW_TICKS


def _play(history: History) -> Run:
    sections: dict[str, Any] = {}
    if history.optional:
        sections.update(OPTIONAL)
    if history.autoscaled:
        sections.update(AUTOSCALED)
    cluster = Cluster(
        readiness=Readiness(slow=history.delays),
        terminate_ticks=history.terminate_ticks,
        controller_lag=history.controller_lag,
    )
    run = new_run(
        history.initial,
        strategy=history.strategy,
        auto_rollback=history.auto_rollback,
        cluster=cluster,
        **sections,
    )
    if history.allow_downgrade:
        run.annotate(ALLOW_DOWNGRADE_ANNOTATION, "true")
    step = 0

    def tick() -> None:
        nonlocal step
        run.step(apply=step not in history.restarts)
        step += 1

    while not is_ready(run.status, run.spec):  # installs have no timeout: let it finish
        assert step < 60, run.cluster.describe()
        tick()
    for wait, kind, value in history.actions:
        for _ in range(wait):
            tick()
        if kind == "version":
            run.set_version(value)
        elif kind == "retry":
            run.annotate(RETRY_ANNOTATION, value)
        elif kind == "via":
            run.set_upgrade(via=value.split(",") if value else [])
        elif kind == "skip":
            run.annotate(SKIP_UPGRADE_PATH_ANNOTATION, value)
        else:
            run.cluster.database_reachable = value == "up"
    run.cluster.database_reachable = True  # an outage blocks only while it lasts
    for _ in range(400):
        tick()
        if is_ready(run.status, run.spec) or (
            is_stalled(run.status) and run.status.upgrade is None
        ):
            break
    for _ in range(3):  # and it stays there
        tick()
    return run


def _check_outcome(history: History, run: Run) -> None:
    status, spec = run.status, run.spec
    trace = f"{history}\nsteps {run.steps_seen}\nconditions {run.conditions_summary()}"
    for entry in status.history:
        if entry.result is UpgradeResult.SUCCEEDED:
            assert not _bad(history, entry.to), f"{entry} succeeded on a bad release\n{trace}"
        else:
            justified = _bad(history, entry.to) or entry.message.startswith("cancelled")
            assert justified, f"{entry} failed on a good release\n{trace}\n{run.cluster.describe()}"
    if is_ready(status, spec):
        assert status.phase is Phase.READY
        assert not is_stalled(status)
        for component, workload in run.cluster.workloads.items():
            observed = workload.observe()
            assert observed.version == spec.version, (component, trace)
            assert observed.pods or workload.replicas == 0, (component, trace)
            assert all(p.version == spec.version and p.ready for p in observed.pods), trace
        return
    assert is_stalled(status), f"neither Ready nor Stalled\n{trace}\n{run.cluster.describe()}"
    reason = condition(status, STALLED)[1]
    current = status.current_version
    assert current is not None, trace
    skip = run.annotations.get(SKIP_UPGRADE_PATH_ANNOTATION) == "true"
    path = plan_path(current, spec.version, spec.upgrade.via, skip_check=skip)
    if reason == Reason.DOWNGRADE_REFUSED:
        assert not history.allow_downgrade, trace
        assert classify(current, spec.version).refused_downgrade, trace
    elif reason == Reason.UPGRADE_PATH_REQUIRED:
        # Held before anything moved: every child still on the running version.
        assert path.missing, trace
        assert not skip, trace
        for component, workload in run.cluster.workloads.items():
            assert run.cluster.rolled_out(component, current, workload.replicas), trace
    elif reason == Reason.UPGRADE_PATH_INVALID:
        assert path.problem, trace
    else:
        assert reason == Reason.UPGRADE_FAILED, trace
        last = status.history[-1]
        # The hop that failed is the first of the path from the running version.
        assert (last.from_version, last.to) == (current, path.hops[0]), trace
        assert last.result is not UpgradeResult.SUCCEEDED
        if last.result is UpgradeResult.ROLLED_BACK:
            for component, workload in run.cluster.workloads.items():
                assert run.cluster.rolled_out(component, current, workload.replicas), (
                    f"{component} not back on {current}\n{trace}\n{run.cluster.describe()}"
                )


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(histories())
def test_random_histories_keep_the_invariants_and_settle(history: History) -> None:
    run = _play(history)  # every invariant is checked on every tick as it plays
    _check_outcome(history, run)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(STRATEGIES),
    st.lists(st.sampled_from(GOOD), min_size=1, max_size=6),
    st.integers(0, 4),
)
def test_good_releases_always_end_ready(
    strategy: simulator.Strategy, targets: list[str], wait: int
) -> None:
    """With good releases and downgrades allowed, every history ends Ready on the last target.

    Each target names the stable lines below it in spec.upgrade.via, so a change mid-path
    re-plans from the version running.
    """
    run = installed(targets[0], strategy=strategy, **OPTIONAL)
    run.annotate(ALLOW_DOWNGRADE_ANNOTATION, "true")
    for target in targets[1:]:
        stable = ["3.196.1-stable", "3.253.3-stable"]
        run.set_upgrade(via=[v for v in stable if release_key(v) < release_key(target)])
        run.set_version(target)
        for _ in range(wait):
            run.step()
    run.run(lambda r: is_ready(r.status, r.spec), budget=300)
    for h in run.status.history:  # nothing failed; going back mid-upgrade cancels (rolls back)
        cancelled = h.result is UpgradeResult.ROLLED_BACK and h.message.startswith("cancelled")
        assert h.result is UpgradeResult.SUCCEEDED or cancelled, h
    assert_ready_on(run, targets[-1])
