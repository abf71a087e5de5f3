"""A small pure cluster simulator for testing the upgrade state machine without a cluster.

`Cluster` holds a world of workloads (one per component) and their pods. It applies a
`Decision` (the plan's template versions and replica counts, and the pods to delete) and advances
one tick with the Kubernetes semantics the state machine relies on:

- A Deployment replaces its pods to match the template as a rolling update with
  `maxUnavailable: 0` and `maxSurge: 25%` (the deployment controller's arithmetic: new pods are
  created up to the surge, old ones removed only while at least `replicas` stay Ready; old pods
  that are not Ready may go first). Scaling to 0 removes every pod.
- The jobs-runner StatefulSet (`OrderedReady`, one replica, RollingUpdate) deletes the old pod
  first and creates the new one only once the old one is gone, so there are never two. It never
  replaces a pod that is not Ready (kubernetes/kubernetes#67250: reverting the template of a broken
  rollout does not help); only a deleted pod is recreated on the current template.
- An api HorizontalPodAutoscaler keeps the api at `hpa_desired` (clamped to its bounds) unless
  the api is scaled to 0, which disables it.
- A pod becomes Ready a configurable number of ticks after it is created. Pods of a version whose
  tag ends in `-neverready` (or listed in `Readiness.broken`) never become Ready: they crash-loop,
  waiting in `CrashLoopBackOff` with one more restart every tick.
- A deleted pod terminates for `terminate_ticks` ticks (it still runs, and counts as a pod) and
  is then gone.

The driver `Run` plays the operator: snapshot -> decide -> write status -> apply -> tick, and
checks the invariants of docs/design.md §5 after every decision and every tick. Time is
explicit (`start + tick * seconds_per_tick`); nothing here reads the clock.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from retool_operator.core.conditions import READY, STALLED, find
from retool_operator.core.models import (
    ChangeKind,
    Component,
    ConditionStatus,
    RetoolDeploymentSpec,
    RetoolDeploymentStatus,
    Step,
    UpgradeStatus,
    UpgradeStrategy,
)
from retool_operator.core.observed import (
    DatabaseProbe,
    PodObservation,
    Snapshot,
    WorkloadObservation,
)
from retool_operator.core.statemachine import Decision, EventRecord, Inputs, decide

START = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
NEVER_READY_SUFFIX = "-neverready"
NAME = "retool"

# --- readiness ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Readiness:
    """How many ticks after creation a pod becomes Ready; None means never (it crash-loops).

    `slow` sets the delay of every component of a version, `slow_components` of one component of
    a version; `broken` lists (version, component) pairs that crash-loop, on top of the versions
    whose tag ends in `-neverready`, which crash-loop everywhere.
    """

    default_ticks: int = 1
    slow: Mapping[str, int] = dataclasses.field(default_factory=dict)
    slow_components: Mapping[tuple[str, Component], int] = dataclasses.field(default_factory=dict)
    broken: frozenset[tuple[str, Component]] = frozenset()

    def ticks(self, component: Component, version: str) -> int | None:
        """Ticks from creation to Ready, or None when the pod never becomes Ready."""
        if version.endswith(NEVER_READY_SUFFIX) or (version, component) in self.broken:
            return None
        if (version, component) in self.slow_components:
            return self.slow_components[version, component]
        return self.slow.get(version, self.default_ticks)


# --- the world ---------------------------------------------------------------------------------


@dataclasses.dataclass
class SimPod:
    name: str
    version: str
    created: int  # tick
    ready: bool = False
    terminating_since: int | None = None
    restarts: int = 0
    waiting_reason: str | None = None

    @property
    def terminating(self) -> bool:
        return self.terminating_since is not None

    def observe(self) -> PodObservation:
        return PodObservation(
            name=self.name,
            version=self.version,
            ready=self.ready and not self.terminating,
            terminating=self.terminating,
            waiting_reason=self.waiting_reason,
            restarts=self.restarts,
        )


@dataclasses.dataclass
class SimWorkload:
    component: Component
    version: str  # the pod template's tag
    replicas: int
    pods: list[SimPod] = dataclasses.field(default_factory=list)
    observed: bool = False  # the controller has seen the latest generation

    @property
    def stateful(self) -> bool:
        return self.component is Component.JOBS_RUNNER

    @property
    def live(self) -> list[SimPod]:
        return [p for p in self.pods if not p.terminating]

    def observe(self) -> WorkloadObservation:
        live = self.live
        return WorkloadObservation(
            version=self.version,
            spec_replicas=self.replicas,
            replicas=len(live),
            ready_replicas=sum(p.ready for p in live),
            updated_replicas=sum(p.version == self.version for p in live),
            generation_observed=self.observed,
            revision_current=all(p.version == self.version for p in live),
            pods=tuple(p.observe() for p in self.pods),
        )


@dataclasses.dataclass
class Cluster:
    """The children of one RetoolDeployment, the Secrets and the database, tick by tick."""

    name: str = NAME
    readiness: Readiness = dataclasses.field(default_factory=Readiness)
    seconds_per_tick: float = 10.0
    terminate_ticks: int = 1
    crash_restarts_per_tick: int = 1
    controller_lag: bool = False  # a controller needs a tick to observe a new generation
    hpa_desired: int = 3
    database_reachable: bool = True
    database_version_num: int = 150004
    missing_secrets: tuple[str, ...] = ()
    # A long migration as the database shows it: rows it has recorded, statements it runs now.
    migration_rows: int = 0
    running_statements: int = 0
    tick: int = 0
    workloads: dict[Component, SimWorkload] = dataclasses.field(default_factory=dict)
    # Versions of which a jobs-runner pod has been Ready at some point (migrations done).
    migrated: set[str] = dataclasses.field(default_factory=set)
    # (tick, component, version) of every pod created that was not yet migrated.
    unmigrated_starts: list[tuple[int, Component, str]] = dataclasses.field(default_factory=list)
    _serial: int = 0

    # -- reading --

    @property
    def now(self) -> datetime:
        return START + timedelta(seconds=self.tick * self.seconds_per_tick)

    def snapshot(self) -> Snapshot:
        return Snapshot(
            workloads={c: w.observe() for c, w in self.workloads.items()},
            missing_secrets=self.missing_secrets,
        )

    def probe(self) -> DatabaseProbe:
        if not self.database_reachable:
            return DatabaseProbe(
                checked_at=self.now, reachable=False, error="connection refused (simulated)"
            )
        major = self.database_version_num // 10000
        return DatabaseProbe(
            checked_at=self.now,
            reachable=True,
            server_version=f"{major}.{self.database_version_num % 100}",
            server_version_num=self.database_version_num,
            migrations_applied=len(self.migrated) + self.migration_rows,
            blocked_queries=0,
            running_statements=self.running_statements,
        )

    def pods(self, component: Component, *, include_terminating: bool = True) -> list[SimPod]:
        workload = self.workloads.get(component)
        if workload is None:
            return []
        return list(workload.pods if include_terminating else workload.live)

    def ready_pods(self, component: Component) -> list[SimPod]:
        return [p for p in self.pods(component, include_terminating=False) if p.ready]

    def rolled_out(self, component: Component, version: str, replicas: int) -> bool:
        workload = self.workloads.get(component)
        return workload is not None and workload.observe().rolled_out(version, replicas)

    def describe(self) -> str:
        """One line per workload, for assertion messages."""
        lines = [f"tick {self.tick}:"]
        for component, w in sorted(self.workloads.items()):
            pods = ", ".join(
                f"{p.name}@{p.version}{'+' if p.ready else '-'}{'(T)' if p.terminating else ''}"
                for p in w.pods
            )
            lines.append(f"  {component.value}: {w.version} x{w.replicas} [{pods}]")
        return "\n".join(lines)

    # -- writing --

    def apply(self, decision: Decision) -> None:
        """Converge the children on the decision's plan and delete the pods it names."""
        for component, wanted in (decision.plan or {}).items():
            replicas = 1 if component is Component.JOBS_RUNNER else wanted.replicas
            workload = self.workloads.get(component)
            if workload is None:
                # A Deployment created without replicas gets 1 (then the HPA takes over).
                self.workloads[component] = SimWorkload(
                    component, wanted.version, 1 if replicas is None else replicas
                )
                continue
            changed = workload.version != wanted.version or (
                replicas is not None and workload.replicas != replicas
            )
            if changed:
                workload.version = wanted.version
                if replicas is not None:
                    workload.replicas = replicas
                workload.observed = False
        for name in decision.delete_pods:
            self.delete_pod(name)

    def delete_pod(self, name: str) -> None:
        for workload in self.workloads.values():
            for pod in workload.pods:
                if pod.name == name and not pod.terminating:
                    pod.terminating_since = self.tick

    def set_replicas(self, component: Component, replicas: int) -> None:
        """Someone else (a person, kubectl scale) changes a workload's replica count."""
        workload = self.workloads[component]
        workload.replicas = replicas
        workload.observed = False

    # -- time --

    def advance(self, hpa: tuple[int, int] | None = None) -> None:
        """One tick: pods terminate and become Ready, the HPA and the controllers act.

        `hpa` is the api autoscaler's (minReplicas, maxReplicas), when the spec has one.
        """
        self.tick += 1
        for workload in self.workloads.values():
            workload.pods = [
                p
                for p in workload.pods
                if p.terminating_since is None
                or self.tick - p.terminating_since < self.terminate_ticks
            ]
            for pod in workload.live:
                self._age(workload.component, pod)
        api = self.workloads.get(Component.API)
        if hpa is not None and api is not None and api.replicas > 0:
            wanted = min(max(self.hpa_desired, hpa[0]), hpa[1])
            if wanted != api.replicas:
                api.replicas = wanted
                api.observed = False
        # The jobs-runner first: a migration that finishes this tick lets the others start.
        for component in sorted(self.workloads, key=lambda c: c is not Component.JOBS_RUNNER):
            workload = self.workloads[component]
            if not workload.observed:
                workload.observed = True
                if self.controller_lag:
                    continue
            if workload.stateful:
                self._statefulset(workload)
            else:
                self._deployment(workload)

    def _age(self, component: Component, pod: SimPod) -> None:
        ticks = self.readiness.ticks(component, pod.version)
        if ticks is None:
            pod.restarts += self.crash_restarts_per_tick
            pod.waiting_reason = "CrashLoopBackOff"
        elif self.tick - pod.created >= ticks and not pod.ready:
            pod.ready, pod.waiting_reason = True, None
            if component is Component.JOBS_RUNNER:
                self.migrated.add(pod.version)

    def _create(self, workload: SimWorkload, name: str | None = None) -> None:
        self._serial += 1
        name = name or f"{self.name}-{workload.component.value}-{self._serial}"
        if (
            workload.component is not Component.JOBS_RUNNER
            and workload.version not in self.migrated
        ):
            self.unmigrated_starts.append((self.tick, workload.component, workload.version))
        workload.pods.append(SimPod(name, workload.version, self.tick))

    def _terminate(self, pod: SimPod) -> None:
        pod.terminating_since = self.tick

    def _statefulset(self, workload: SimWorkload) -> None:
        """OrderedReady, one replica: delete the old pod, create the new one once it is gone."""
        live = workload.live
        if workload.replicas == 0:
            for pod in live:
                self._terminate(pod)
            return
        if live:
            pod = live[0]
            if pod.version != workload.version and pod.ready:
                self._terminate(pod)
            # Not Ready and outdated: the controller waits for it forever (#67250).
            return
        if not workload.pods:  # the old pod is gone, not merely terminating
            self._create(workload, f"{self.name}-{workload.component.value}-0")

    def _deployment(self, workload: SimWorkload) -> None:
        """A rolling update with maxUnavailable 0 and maxSurge 25% (rounded up)."""
        wanted = workload.replicas
        new = [p for p in workload.live if p.version == workload.version]
        old = [p for p in workload.live if p.version != workload.version]
        # Scale the new ReplicaSet down to `wanted` (pods that are not Ready go first).
        excess = len(new) - wanted
        for pod in sorted(new, key=lambda p: (p.ready, -p.created))[: max(excess, 0)]:
            self._terminate(pod)
            new.remove(pod)
        surge = math.ceil(wanted * 0.25)
        create = min(wanted - len(new), wanted + surge - len(new) - len(old))
        for _ in range(max(create, 0)):
            self._create(workload)
        new = [p for p in workload.live if p.version == workload.version]
        # Scale old ReplicaSets down without going under `wanted` available pods.
        new_unready = sum(not p.ready for p in new)
        budget = len(old) + len(new) - wanted - new_unready
        for pod in [p for p in old if not p.ready]:
            if budget <= 0:
                break
            self._terminate(pod)
            budget -= 1
        available = sum(p.ready for p in workload.live)
        removable = min(budget, available - wanted)
        for pod in sorted(
            (p for p in old if p.ready and not p.terminating), key=lambda p: p.created
        ):
            if removable <= 0:
                break
            self._terminate(pod)
            removable -= 1


# --- the operator, played by the test ---------------------------------------------------------

STEP_ORDER = {
    Step.PREFLIGHT: 0,
    Step.STOPPING_SERVICES: 1,
    Step.MIGRATING_DATABASE: 2,
    Step.STARTING_SERVICES: 3,
    Step.VERIFYING: 4,
    Step.ROLLING_BACK: 5,
}


def base_spec(version: str = "3.148.0-stable", **sections: Any) -> RetoolDeploymentSpec:
    """A valid spec, as the API server hands it over; SECTIONS in camelCase override the rest."""
    data: dict[str, Any] = {
        "version": version,
        "database": {"host": "db.example.com", "passwordSecretRef": {"name": "retool-db"}},
        "secretRef": {"name": "retool-secrets"},
        "api": {"replicas": 2},
        "upgrade": {"migrationTimeout": "5m", "verifyTimeout": "10m"},
        # So SECTIONS may enable Workflows, which needs a Temporal.
        "temporal": {"host": "temporal-frontend.temporal"},
    }
    data.update(sections)
    return RetoolDeploymentSpec.model_validate(data)


def condition(status: RetoolDeploymentStatus, kind: str) -> tuple[str | None, str | None]:
    """(status, reason) of a condition, (None, None) when absent."""
    found = find(status.conditions, kind)
    return (None, None) if found is None else (found.status.value, found.reason)


def is_ready(status: RetoolDeploymentStatus, spec: RetoolDeploymentSpec) -> bool:
    return (
        condition(status, READY)[0] == ConditionStatus.TRUE.value
        and status.current_version == spec.version
        and status.upgrade is None
    )


def is_stalled(status: RetoolDeploymentStatus) -> bool:
    return condition(status, STALLED)[0] == ConditionStatus.TRUE.value


@dataclasses.dataclass(frozen=True)
class Tick:
    """One round of the operator: what it saw, decided and wrote."""

    tick: int
    inputs: Inputs
    decision: Decision
    applied: bool


def _upgrade_key(u: UpgradeStatus) -> tuple[str, datetime]:
    return (u.from_version, u.started_at)


class InvariantError(AssertionError):
    pass


@dataclasses.dataclass
class Run:
    """A RetoolDeployment, the operator and a simulated cluster, stepped together.

    Every `step` checks the invariants; `check_fixpoint` also re-decides on the status just
    written (an operator restarted at that instant): the same plan and status, and no Event.
    """

    spec: RetoolDeploymentSpec
    cluster: Cluster = dataclasses.field(default_factory=Cluster)
    status: RetoolDeploymentStatus = dataclasses.field(default_factory=RetoolDeploymentStatus)
    annotations: dict[str, str] = dataclasses.field(default_factory=dict)
    generation: int = 1
    check_fixpoint: bool = True
    ticks: list[Tick] = dataclasses.field(default_factory=list)
    # Per upgrade (from, startedAt): the highest step reached, to check the order.
    _step_marks: dict[tuple[str, datetime], int] = dataclasses.field(default_factory=dict)
    # Set from a RollingUpdate version bump (while the api serves) to the end of the upgrade:
    # at least one api pod must be Ready at every tick.
    rolling_watch: bool = False

    # -- the custom resource, as a person or a GitOps tool edits it --

    def set_version(self, version: str) -> None:
        self.update_spec(version=version)
        if self.spec.upgrade.strategy is UpgradeStrategy.ROLLING_UPDATE:
            self._watch_api()

    def update_spec(self, **changes: Any) -> None:
        self.spec = self.spec.model_copy(update=changes)
        self.generation += 1

    def set_upgrade(self, **changes: Any) -> None:
        self.update_spec(upgrade=self.spec.upgrade.model_copy(update=changes))

    def annotate(self, key: str, value: str | None) -> None:
        if value is None:
            self.annotations.pop(key, None)
        else:
            self.annotations[key] = value

    # -- one round --

    def inputs(self) -> Inputs:
        return Inputs(
            name=self.cluster.name,
            generation=self.generation,
            spec=self.spec,
            status=self.status,
            observed=self.cluster.snapshot(),
            database=self.cluster.probe(),
            now=self.cluster.now,
            annotations=dict(self.annotations),
        )

    def step(self, *, apply: bool = True, write_status: bool = True) -> Decision:
        """snapshot -> decide -> write status -> apply -> tick, checking every invariant.

        apply=False is an operator that died after writing the status and before applying the
        plan; write_status=False one whose status write was lost although the plan was applied.
        """
        inputs = self.inputs()
        decision = decide(inputs)
        self._check_decision(inputs, decision)
        if self.check_fixpoint:
            self._check_restart(inputs, decision)
        self.ticks.append(Tick(self.cluster.tick, inputs, decision, apply))
        if write_status:
            self.status = decision.status
        if apply:
            self.cluster.apply(decision)
        hpa = self.spec.api.autoscaling
        self.cluster.advance((hpa.min_replicas, hpa.max_replicas) if hpa else None)
        self._check_world(decision)
        return decision

    def run(
        self,
        until: Callable[[Run], bool] | None = None,
        *,
        budget: int = 200,
        restarts: Iterable[int] = (),
    ) -> Run:
        """Step until UNTIL holds (default: Ready on spec.version, or Stalled) or fail.

        RESTARTS are step numbers (from 0) at which the operator dies before applying its plan.
        """
        until = until or (lambda r: is_ready(r.status, r.spec) or is_stalled(r.status))
        crash = set(restarts)
        for index in range(budget):
            self.step(apply=index not in crash)
            if until(self):
                return self
        raise AssertionError(
            f"not done within {budget} ticks: phase {self.status.phase}, "
            f"step {self.status.upgrade.step if self.status.upgrade else None}, "
            f"conditions {self.conditions_summary()}\n"
            f"{self.cluster.describe()}"
        )

    def run_until_step(self, step: Step, *, budget: int = 100) -> Run:
        return self.run(
            lambda r: r.status.upgrade is not None and r.status.upgrade.step is step, budget=budget
        )

    def settle(self, ticks: int = 5) -> Run:
        """Step a few more times (e.g. to see that a stalled state stays put)."""
        for _ in range(ticks):
            self.step()
        return self

    # -- what was seen --

    def conditions_summary(self) -> list[tuple[str, str, str, str]]:
        return [(c.type, c.status.value, c.reason, c.message) for c in self.status.conditions]

    @property
    def events(self) -> list[EventRecord]:
        return [e for t in self.ticks for e in t.decision.events]

    @property
    def event_reasons(self) -> list[str]:
        return [e.reason for e in self.events]

    @property
    def steps_seen(self) -> list[str | None]:
        """status.upgrade.step of every written status, consecutive repeats collapsed."""
        seen: list[str | None] = []
        for t in self.ticks:
            u = t.decision.status.upgrade
            value = u.step.value if u is not None else None
            if not seen or seen[-1] != value:
                seen.append(value)
        return seen

    @property
    def step_events(self) -> list[str]:
        """The steps entered, as UpgradeStep Events say (including those passed in one round)."""
        return [
            e.message.split(": step ", 1)[1].split(" ")[0]
            for e in self.events
            if e.reason == "UpgradeStep"
        ]

    def plans(self) -> list[Mapping[Component, Any]]:
        return [t.decision.plan for t in self.ticks if t.decision.plan is not None]

    # -- invariants --

    def _fail(self, text: str) -> None:
        raise InvariantError(f"{text}\n{self.cluster.describe()}")

    def _check_decision(self, inputs: Inputs, decision: Decision) -> None:
        status = decision.status
        # The plan only ever names the running version or the one being upgraded to.
        allowed = {inputs.spec.version, inputs.status.current_version, status.current_version}
        for u in (inputs.status.upgrade, status.upgrade):
            if u is not None:
                allowed |= {u.from_version, u.to}
        for component, wanted in (decision.plan or {}).items():
            if wanted.version not in allowed:
                self._fail(f"plan puts {component} on {wanted.version}, not one of {allowed}")
            if component is Component.JOBS_RUNNER and wanted.replicas != 1:
                self._fail(f"plan gives the jobs-runner {wanted.replicas} replicas")
            if wanted.replicas is not None and wanted.replicas < 0:
                self._fail(f"plan gives {component} {wanted.replicas} replicas")
        # lastTransitionTime moves only when the condition's status does.
        before = {c.type: c for c in inputs.status.conditions}
        for c in status.conditions:
            old = before.get(c.type)
            if old is None:
                continue
            if old.status == c.status and old.last_transition_time != c.last_transition_time:
                self._fail(f"{c.type} stayed {c.status} but lastTransitionTime moved")
            if old.status != c.status and c.last_transition_time != inputs.now:
                self._fail(f"{c.type} changed status but lastTransitionTime was not set to now")
        types = [c.type for c in status.conditions]
        if len(types) != len(set(types)):
            self._fail(f"duplicate conditions: {types}")
        if status.observed_generation != inputs.generation:
            self._fail("observedGeneration not written")
        if len(status.history) > 10:
            self._fail(f"history has {len(status.history)} entries")
        # Steps only move forward along the documented order, per upgrade (RollingBack last).
        u = status.upgrade
        if u is not None:
            key = _upgrade_key(u)
            mark, previous = STEP_ORDER[u.step], self._step_marks.get(key, 0)
            if mark < previous:
                self._fail(f"step went back to {u.step} (had reached {previous})")
            self._step_marks[key] = max(previous, mark)
            if u.step is Step.STOPPING_SERVICES and u.strategy is UpgradeStrategy.ROLLING_UPDATE:
                self._fail("a RollingUpdate upgrade stopped the services")
            stops = u.strategy is UpgradeStrategy.RECREATE and u.kind is not ChangeKind.PATCH
            if stops and u.step is Step.MIGRATING_DATABASE and decision.plan is not None:
                running = {
                    c: w.replicas
                    for c, w in decision.plan.items()
                    if c is not Component.JOBS_RUNNER and w.replicas != 0
                }
                if running:
                    self._fail(f"Recreate migrates while the plan runs {running}")
        if decision.plan is None and decision.delete_pods:
            self._fail("pods deleted while the plan leaves every child alone")

    def _check_restart(self, inputs: Inputs, decision: Decision) -> None:
        """Deciding again is a no-op: same inputs, or the status just written (a restart)."""
        again = decide(inputs)
        if again != decision:
            self._fail("decide is not deterministic on the same inputs")
        restarted = decide(dataclasses.replace(inputs, status=decision.status))
        if restarted.plan != decision.plan:
            self._fail(
                f"re-deciding on the written status changes the plan:\n"
                f"{decision.plan}\n{restarted.plan}"
            )
        if restarted.delete_pods != decision.delete_pods:
            self._fail("re-deciding on the written status deletes other pods")
        if restarted.events:
            self._fail(f"re-deciding on the written status emits {restarted.events}")
        if restarted.status != decision.status:
            self._fail(
                "re-deciding on the written status changes it:\n"
                f"{decision.status.to_api()}\n{restarted.status.to_api()}"
            )

    def _watch_api(self) -> None:
        """From now until the upgrade ends, an api that serves must keep serving."""
        installed = self.status.current_version is not None
        if installed and self.cluster.ready_pods(Component.API):
            self.rolling_watch = True

    def _check_world(self, decision: Decision) -> None:
        cluster = self.cluster
        jobs_runner = cluster.pods(Component.JOBS_RUNNER)
        if len(jobs_runner) > 1:
            self._fail(f"{len(jobs_runner)} jobs-runner pods exist")
        if cluster.unmigrated_starts:
            tick, component, version = cluster.unmigrated_starts[0]
            self._fail(
                f"a {component} pod of {version} started at tick {tick} before a jobs-runner "
                f"of {version} was Ready"
            )
        u = decision.status.upgrade
        others = [c for c in cluster.workloads if c is not Component.JOBS_RUNNER]
        if (
            u is not None
            and u.strategy is UpgradeStrategy.RECREATE
            and u.kind is not ChangeKind.PATCH
        ):
            migrating = [p for p in jobs_runner if p.version == u.to and not p.ready]
            running = [p.name for c in others for p in cluster.pods(c)]
            if migrating and running:
                self._fail(f"{running} run while the jobs-runner on {u.to} migrates")
        if u is not None and u.strategy is UpgradeStrategy.ROLLING_UPDATE:
            self._watch_api()
        if (
            self.rolling_watch
            and u is None
            and decision.status.current_version == self.spec.version
        ):
            self.rolling_watch = False
        no_api_wanted = self.spec.api.autoscaling is None and self.spec.api.replicas == 0
        serving = no_api_wanted or cluster.ready_pods(Component.API)
        if self.rolling_watch and not serving:
            self._fail("no api pod is Ready during a RollingUpdate upgrade")


Strategy = Literal["Recreate", "RollingUpdate"]


def new_run(
    version: str = "3.148.0-stable",
    *,
    strategy: Strategy = "Recreate",
    auto_rollback: bool = True,
    cluster: Cluster | None = None,
    **sections: Any,
) -> Run:
    """A fresh RetoolDeployment (nothing installed yet) on a fresh simulated cluster."""
    upgrade = {
        "strategy": strategy,
        "migrationTimeout": "5m",
        "verifyTimeout": "10m",
        "autoRollback": auto_rollback,
        **sections.pop("upgrade", {}),
    }
    spec = base_spec(version, upgrade=upgrade, **sections)
    return Run(spec=spec, cluster=cluster or Cluster())


def installed(version: str = "3.148.0-stable", **kwargs: Any) -> Run:
    """A Run whose RetoolDeployment is installed and Ready on VERSION."""
    run = new_run(version, **kwargs)
    run.run(budget=60)
    assert is_ready(run.status, run.spec), run.status
    run.ticks.clear()
    return run
