"""The upgrade state machine: (spec, recorded status, observed snapshot, database, now) -> decision.

A pure function. The handlers observe the cluster and the database, call `decide`, write the
status it returns (one patch) and apply the children of its plan; nothing here performs I/O or
reads the clock, so every path below is unit-tested without a cluster.

The steps, as `status.upgrade.step` records them (docs/design.md §5):

Install (no recorded version): the jobs-runner alone at spec.version (it migrates the empty
database); the api and the other services only once it is Ready.

Preflight
    Database reachable and PostgreSQL >= 13, Secrets present, not a refused downgrade. Nothing is
    touched until it passes; an unreachable database holds the upgrade here, retried, with
    `DatabaseReachable=False` and `Stalled=True`. On success the replica counts are remembered.
    Pods a failed attempt left behind (not Ready, of another version) go first: their components
    return to the old version, so a retry is not judged by a pod of the previous attempt.
StoppingServices (Major/Minor, `Recreate`)
    Every component but the jobs-runner scales to 0 on the old version; wait until their pods are
    gone, so no api pod runs while migrations do.
MigratingDatabase
    The jobs-runner StatefulSet moves to the new tag; OrderedReady with one replica stops the old
    pod before the new one starts, so there is never a second jobs-runner. Wait until it is Ready,
    within `migrationTimeout`. Under `RollingUpdate` and for a Patch the old api keeps serving.
StartingServices
    Every other component moves to the new tag with its remembered replicas (the api rolls with
    maxUnavailable 0). Done when their controllers have taken the new template.
Verifying
    Every component runs the new version and is Ready, within `verifyTimeout`: the upgrade
    succeeded, `currentVersion` moves on and history records it.
RollingBack
    After a timeout or a crash-looping new pod (with `autoRollback`): every component returns to
    the previous tag and remembered replicas (migrations are backward-compatible). A jobs-runner
    pod of the new version that is not Ready is deleted by the operator, since a StatefulSet with
    OrderedReady does not replace it (kubernetes/kubernetes#67250). History records `RolledBack`
    and `Stalled=True` (UpgradeFailed) until spec.version changes or the retry annotation does.

Upgrade paths (docs/design.md §11): the running version to spec.version through the entries of
spec.upgrade.via above the running version (core/releases.py). A path that jumps over a known
stable release line holds before anything starts (Stalled, UpgradePathRequired) unless the
skip-upgrade-path annotation is set. Each hop is a full upgrade through the steps above, its
kind decided per hop, with its own history entry; when a hop succeeds the next starts,
re-planned from the version now running. A failed hop rolls back that hop only and the path stops.
MigratingDatabase counts migrationTimeout from the last progress the database probe showed (a new
migrations row, a running statement of another session), capped by migrationDeadline.

A spec.version change before MigratingDatabase retargets the upgrade; from MigratingDatabase on
the current upgrade finishes (or rolls back) and the next one starts after it. Every step is
idempotent: the plan it returns depends only on the recorded status and the spec, so an operator
restarted at any instant reads the step back from the status and carries on.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime
from typing import Literal

import pydantic

from retool_operator.core import conditions as cond
from retool_operator.core import naming, releases
from retool_operator.core.builders import OPTIONAL_COMPONENTS, WorkloadPlan
from retool_operator.core.conditions import ConditionState, Reason
from retool_operator.core.models import (
    ALLOW_DOWNGRADE_ANNOTATION,
    HISTORY_LIMIT,
    RETRY_ANNOTATION,
    SKIP_UPGRADE_PATH_ANNOTATION,
    ChangeKind,
    Component,
    ComponentStatus,
    DatabaseStatus,
    HistoryEntry,
    MigrationProgress,
    Phase,
    RetoolDeploymentSpec,
    RetoolDeploymentStatus,
    Step,
    UpgradeResult,
    UpgradeStatus,
    UpgradeStrategy,
    parse_duration,
)
from retool_operator.core.observed import DatabaseProbe, Snapshot, WorkloadObservation
from retool_operator.core.versions import classify

Plan = Mapping[Component, WorkloadPlan]
EventType = Literal["Normal", "Warning"]

# How soon to look again while waiting on the cluster (events usually come first).
REQUEUE_ACTIVE_SECONDS = 2.0
REQUEUE_BLOCKED_SECONDS = 10.0
# Preflight trusts only a database probe at most this old (a cached one may predate an outage).
PREFLIGHT_PROBE_MAX_AGE_SECONDS = 5.0
# Steps that may still change their target version (nothing has migrated yet).
RETARGETABLE_STEPS = frozenset({Step.PREFLIGHT, Step.STOPPING_SERVICES})
_MAX_TRANSITIONS = 12
# How the message of an upgrade cancelled by a spec.version change begins (history included).
CANCELLED = "cancelled"


@dataclasses.dataclass(frozen=True)
class Inputs:
    """Everything one decision depends on."""

    name: str
    generation: int
    spec: RetoolDeploymentSpec
    status: RetoolDeploymentStatus
    observed: Snapshot
    database: DatabaseProbe | None
    now: datetime
    annotations: Mapping[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class EventRecord:
    """A Kubernetes Event to post on the RetoolDeployment."""

    type: EventType
    reason: str
    message: str


@dataclasses.dataclass(frozen=True)
class Decision:
    """What to do now: the status to write and the children to converge on.

    `plan` None means "leave every child as it is" (paused, or a state a person must resolve).
    """

    status: RetoolDeploymentStatus
    plan: Plan | None
    delete_pods: tuple[str, ...] = ()
    events: tuple[EventRecord, ...] = ()
    requeue_after: float | None = None


@dataclasses.dataclass(frozen=True)
class _Progress:
    """The state carried through one decision: the recorded status as it evolves."""

    current_version: str | None
    upgrade: UpgradeStatus | None
    history: tuple[HistoryEntry, ...]
    retry_token: str | None
    plan: Plan | None = None
    events: tuple[EventRecord, ...] = ()
    blocker: ConditionState | None = None
    waiting: str = ""
    # The hop the next upgrade begins as: 1, or the one after a hop that just succeeded.
    next_hop: int = 1

    def emit(self, type_: EventType, reason: str, message: str) -> _Progress:
        """The same progress with one more Event."""
        return dataclasses.replace(self, events=(*self.events, EventRecord(type_, reason, message)))


# --- what the spec asks for --------------------------------------------------------------------


def enabled_components(spec: RetoolDeploymentSpec) -> tuple[Component, ...]:
    """The components this spec runs, in a fixed order."""
    optional = tuple(c for c in OPTIONAL_COMPONENTS if getattr(spec, c.field) is not None)
    return (Component.JOBS_RUNNER, Component.API, *optional)


def desired_replicas(spec: RetoolDeploymentSpec, component: Component) -> int | None:
    """Replicas the spec asks for; None for an autoscaled api (the HPA owns the count)."""
    if component is Component.JOBS_RUNNER:
        return 1
    if component is Component.API:
        return None if spec.api.autoscaling is not None else spec.api.replicas
    section = getattr(spec, component.field)
    return int(section.replicas) if section is not None else 0


def steady_plan(spec: RetoolDeploymentSpec, version: str) -> dict[Component, WorkloadPlan]:
    """Every enabled component at VERSION with the replicas the spec asks for."""
    return {c: WorkloadPlan(version, desired_replicas(spec, c)) for c in enabled_components(spec)}


def _expected_replicas(
    spec: RetoolDeploymentSpec, component: Component, workload: WorkloadObservation
) -> int:
    """The replica count a healthy component shows (an HPA's count for an autoscaled api)."""
    wanted = desired_replicas(spec, component)
    return _hpa_count(spec, workload.spec_replicas) if wanted is None else wanted


def _hpa_count(spec: RetoolDeploymentSpec, observed: int) -> int:
    """An autoscaled api's replica count: what the HPA chose, never below minReplicas.

    An api left at 0 (stopped by an upgrade that failed without rollback) is not the HPA's
    choice: an HPA does not scale a workload that has 0 replicas.
    """
    autoscaling = spec.api.autoscaling
    return max(observed, autoscaling.min_replicas) if autoscaling is not None else observed


def _unhealthy(
    spec: RetoolDeploymentSpec, observed: Snapshot, plan: Plan, *, strict: bool = True
) -> list[str]:
    """Components of PLAN not yet running their planned version and replicas, Ready.

    STRICT (during install and upgrades) also waits for each controller to observe its latest
    generation; the steady state judges health by the pods alone.
    """
    lagging = []
    for component, wanted in plan.items():
        workload = observed.workload(component)
        if workload is None:
            lagging.append(f"{component.value} does not exist yet")
            continue
        replicas = wanted.replicas
        if replicas is None or (replicas > 0 and desired_replicas(spec, component) is None):
            # An autoscaled api runs the HPA's count once started (see _autoscaled_api).
            replicas = _expected_replicas(spec, component, workload)
        if not workload.rolled_out(wanted.version, replicas, strict=strict):
            lagging.append(
                f"{component.value} has {workload.ready_replicas}/{replicas} ready "
                f"on {workload.version or 'no version'} (want {wanted.version})"
            )
    return lagging


def current_replicas(spec: RetoolDeploymentSpec, observed: Snapshot) -> dict[str, int]:
    """Replica counts of every component but the jobs-runner, to restore after stopping."""
    saved = {}
    for component in enabled_components(spec):
        if component is Component.JOBS_RUNNER:
            continue
        wanted = desired_replicas(spec, component)
        if wanted is None:  # an autoscaled api: whatever the HPA last chose
            workload = observed.workload(component)
            autoscaling = spec.api.autoscaling
            fallback = autoscaling.min_replicas if autoscaling is not None else 1
            wanted = _hpa_count(spec, workload.spec_replicas) if workload is not None else fallback
        saved[component.value] = wanted
    return saved


def _plan_with(
    spec: RetoolDeploymentSpec,
    *,
    jobs_runner: str,
    others: str,
    replicas: Mapping[str, int] | None,
) -> dict[Component, WorkloadPlan]:
    """A plan with the jobs-runner at one version and the rest at another, at given replicas.

    REPLICAS, once an upgrade saved them, also names the components the upgrade runs: one
    enabled after that joins when the upgrade ends (a new pod mid-upgrade would run against a
    database being migrated, or stop nothing that the upgrade waits for).
    """
    plan: dict[Component, WorkloadPlan] = {}
    for component in enabled_components(spec):
        if component is Component.JOBS_RUNNER:
            plan[component] = WorkloadPlan(jobs_runner, 1)
            continue
        if replicas and component.value not in replicas:
            continue
        count = (replicas or {}).get(component.value)
        if count is None:
            count = desired_replicas(spec, component)
        plan[component] = WorkloadPlan(others, count)
    return plan


def _stopped(replicas: Mapping[str, int]) -> dict[str, int]:
    return dict.fromkeys(replicas, 0)


# --- transitions -------------------------------------------------------------------------------


def _blocked(p: _Progress, reason: Reason, message: str, plan: Plan | None) -> _Progress:
    return dataclasses.replace(
        p, blocker=cond.true(cond.STALLED, reason, message), plan=plan, waiting=message
    )


def _summary(u: UpgradeStatus) -> str:
    text = f"{u.kind.value} upgrade {u.from_version} -> {u.to}"
    if u.hops > 1 or u.path_left:
        text += f" (hop {u.path} of the path to {u.target})"
    return text


def _to_step(p: _Progress, step: Step, now: datetime, message: str = "") -> _Progress:
    assert p.upgrade is not None
    upgrade = p.upgrade.model_copy(
        update={"step": step, "step_started_at": now, "message": message}
    )
    moved = dataclasses.replace(p, upgrade=upgrade)
    text = f"{_summary(upgrade)}: step {step.value}" + (f" ({message})" if message else "")
    return moved.emit("Warning" if step is Step.ROLLING_BACK else "Normal", "UpgradeStep", text)


def _elapsed(inp: Inputs, since: datetime) -> float:
    return (inp.now - since).total_seconds()


def _finish_upgrade(inp: Inputs, p: _Progress, result: UpgradeResult, message: str) -> _Progress:
    assert p.upgrade is not None
    u = p.upgrade
    entry = HistoryEntry(
        from_version=u.from_version,
        to=u.to,
        started_at=u.started_at,
        finished_at=inp.now,
        result=result,
        message=message,
    )
    history = (*p.history, entry)[-HISTORY_LIMIT:]
    current = u.to if result is UpgradeResult.SUCCEEDED else u.from_version
    next_hop = u.hop + 1 if result is UpgradeResult.SUCCEEDED and u.to != inp.spec.version else 1
    done = dataclasses.replace(
        p, upgrade=None, history=history, current_version=current, next_hop=next_hop
    )
    if result is UpgradeResult.SUCCEEDED:
        return done.emit("Normal", "UpgradeSucceeded", f"{_summary(u)} succeeded")
    if result is UpgradeResult.ROLLED_BACK:
        return done.emit("Warning", "UpgradeRolledBack", f"{_summary(u)} rolled back: {message}")
    return done  # Failed: _fail already said why


def _fail(inp: Inputs, p: _Progress, why: str) -> _Progress:
    """An upgrade step failed: roll back when allowed, else stop for a person."""
    assert p.upgrade is not None
    failed = p.emit("Warning", "UpgradeFailed", f"{_summary(p.upgrade)} failed: {why}")
    if inp.spec.upgrade.auto_rollback:
        return _to_step(failed, Step.ROLLING_BACK, inp.now, why)
    return _finish_upgrade(inp, failed, UpgradeResult.FAILED, why)


def stops_services(kind: ChangeKind, strategy: UpgradeStrategy) -> bool:
    """Whether such an upgrade stops every other component while the jobs-runner migrates."""
    return kind is not ChangeKind.PATCH and strategy is UpgradeStrategy.RECREATE


def upgrade_steps(kind: ChangeKind, strategy: UpgradeStrategy) -> tuple[Step, ...]:
    """The steps an upgrade of KIND under STRATEGY goes through when all goes well, in order."""
    stopping = (Step.STOPPING_SERVICES,) if stops_services(kind, strategy) else ()
    return (
        Step.PREFLIGHT,
        *stopping,
        Step.MIGRATING_DATABASE,
        Step.STARTING_SERVICES,
        Step.VERIFYING,
    )


def _stops_services(u: UpgradeStatus) -> bool:
    return stops_services(u.kind, u.strategy)


def _timed_out(inp: Inputs, u: UpgradeStatus, limit: str) -> bool:
    return _elapsed(inp, u.step_started_at) > parse_duration(limit)


def upgrade_path(inp: Inputs, current: str) -> releases.UpgradePath:
    """The hops from CURRENT to spec.version through spec.upgrade.via (core/releases.py)."""
    skip = inp.annotations.get(SKIP_UPGRADE_PATH_ANNOTATION, "").lower() == "true"
    return releases.plan_path(current, inp.spec.version, inp.spec.upgrade.via, skip_check=skip)


def _path_blocker(inp: Inputs, current: str) -> tuple[Reason, str] | None:
    """Why the path from CURRENT to spec.version may not start, or None."""
    path = upgrade_path(inp, current)
    if path.problem:
        return Reason.UPGRADE_PATH_INVALID, path.problem
    if path.missing:
        return Reason.UPGRADE_PATH_REQUIRED, releases.missing_message(
            path, current, inp.spec.version
        )
    return None


def _with_path(u: UpgradeStatus, target: str, hops_after: tuple[str, ...]) -> UpgradeStatus:
    """U as hop u.hop of a path to TARGET that continues through HOPS_AFTER."""
    total = u.hop + len(hops_after)
    return u.model_copy(
        update={
            "target": target,
            "hops": total,
            "path": f"{u.hop}/{total}",
            "path_left": list(hops_after),
        }
    )


# --- no upgrade in progress --------------------------------------------------------------------


def _database_blocker(probe: DatabaseProbe | None) -> tuple[Reason, str] | None:
    """Why the database stops an install or upgrade, or None when it is fine."""
    if probe is None:
        return Reason.DATABASE_UNREACHABLE, "the database has not been probed yet"
    if not probe.reachable:
        return Reason.DATABASE_UNREACHABLE, f"cannot connect to the database: {probe.error}"
    if not probe.supported:
        return (
            Reason.DATABASE_UNSUPPORTED,
            f"PostgreSQL {probe.server_version} is too old: Retool needs PostgreSQL 13 or newer",
        )
    return None


def _secrets_blocker(inp: Inputs) -> str | None:
    missing = inp.observed.missing_secrets
    return f"missing {', '.join(missing)}" if missing else None


def preflight_findings(inp: Inputs) -> dict[str, tuple[Reason, str] | None]:
    """What Preflight checks, each with its blocker (reason, message) or None when it passes.

    The same checks `_preflight` and `_begin_upgrade` make, one by one, for a person to read
    (kubectl retool plan); decide remains the one judge of what happens.
    """
    secrets = _secrets_blocker(inp)
    current = inp.status.current_version
    refused = _refused_downgrade(inp, current) if current is not None else None
    path = _path_blocker(inp, current) if current is not None else None
    return {
        "database": _database_blocker(inp.database),
        "secrets": (Reason.SECRET_MISSING, secrets) if secrets else None,
        "downgrade": (Reason.DOWNGRADE_REFUSED, refused) if refused else None,
        "upgrade path": path,
    }


def _refused_downgrade(inp: Inputs, current: str) -> str | None:
    """Why moving from CURRENT to spec.version is refused as a downgrade, or None."""
    target = inp.spec.version
    allowed = inp.annotations.get(ALLOW_DOWNGRADE_ANNOTATION, "").lower() == "true"
    if current == target or allowed or not classify(current, target).refused_downgrade:
        return None
    return (
        f"spec.version {target} is older than the running {current} across MAJOR.MINOR; "
        f'set annotation {ALLOW_DOWNGRADE_ANNOTATION}: "true" to downgrade anyway'
    )


def _adopted_version(inp: Inputs) -> str | None:
    """The version already running when the status was lost (a running jobs-runner's)."""
    jobs_runner = inp.observed.workload(Component.JOBS_RUNNER)
    if jobs_runner is None or jobs_runner.version is None:
        return None
    if jobs_runner.version == inp.spec.version or not jobs_runner.rolled_out(
        jobs_runner.version, 1
    ):
        return None
    return jobs_runner.version


def _install(inp: Inputs, p: _Progress) -> tuple[_Progress, bool]:
    """Jobs-runner first (it migrates the empty database), then everything else."""
    target = inp.spec.version
    secrets = _secrets_blocker(inp)
    if secrets:
        return _blocked(p, Reason.SECRET_MISSING, secrets, None), False
    database = _database_blocker(inp.database)
    if database:
        return _blocked(p, database[0], database[1], None), False
    first = {Component.JOBS_RUNNER: WorkloadPlan(target, 1)}
    if _unhealthy(inp.spec, inp.observed, first):
        waiting = f"installing {target}: waiting for the jobs-runner to migrate and become Ready"
        return dataclasses.replace(p, plan=first, waiting=waiting), False
    plan = steady_plan(inp.spec, target)
    lagging = _unhealthy(inp.spec, inp.observed, plan)
    if lagging:
        return dataclasses.replace(p, plan=plan, waiting="; ".join(lagging)), False
    installed = dataclasses.replace(p, current_version=target, plan=plan)
    return installed.emit("Normal", "Installed", f"Retool {target} is installed and Ready"), True


def _previous_failure(p: _Progress, to: str) -> HistoryEntry | None:
    """The last upgrade, when it tried this very hop and failed (a cancel is no failure)."""
    if not p.history:
        return None
    last = p.history[-1]
    same = last.to == to and last.from_version == p.current_version
    failed = last.result is not UpgradeResult.SUCCEEDED and not last.message.startswith(CANCELLED)
    return last if same and failed else None


def _attempt(p: _Progress, to: str) -> int:
    attempts = 0
    for entry in reversed(p.history):
        if entry.to != to or entry.result is UpgradeResult.SUCCEEDED:
            break
        attempts += 1
    return attempts + 1


def _begin_upgrade(inp: Inputs, p: _Progress) -> tuple[_Progress, bool]:
    """spec.version differs from the running version: start an upgrade, unless refused."""
    assert p.current_version is not None
    current, target = p.current_version, inp.spec.version
    path = upgrade_path(inp, current)
    to = path.hops[0]
    token = inp.annotations.get(RETRY_ANNOTATION)
    failed = _previous_failure(p, to)
    if failed is not None and (token is None or token == p.retry_token):
        stopped = f" (a hop of the path to {target}, which stopped there)" if to != target else ""
        message = (
            f"the upgrade {current} -> {to}{stopped} {failed.result.value}: {failed.message}; "
            f"change spec.version, or set annotation {RETRY_ANNOTATION} to a new value to retry"
        )
        keep = (
            steady_plan(inp.spec, current) if failed.result is UpgradeResult.ROLLED_BACK else None
        )
        return _blocked(p, Reason.UPGRADE_FAILED, message, keep), False
    refused = _refused_downgrade(inp, current)
    if refused:
        return _blocked(p, Reason.DOWNGRADE_REFUSED, refused, steady_plan(inp.spec, current)), False
    path_blocker = _path_blocker(inp, current)
    if path_blocker is not None:
        # Held before anything is touched: the children stay on the running version.
        reason, why = path_blocker
        return _blocked(p, reason, why, steady_plan(inp.spec, current)), False
    change = classify(current, to)
    assert change.kind is not None
    upgrade = UpgradeStatus(
        from_version=current,
        to=to,
        kind=change.kind,
        strategy=inp.spec.upgrade.strategy,
        step=Step.PREFLIGHT,
        started_at=inp.now,
        step_started_at=inp.now,
        attempt=_attempt(p, to),
        hop=p.next_hop,
    )
    upgrade = _with_path(upgrade, target, path.hops[1:])
    started = dataclasses.replace(
        p, upgrade=upgrade, retry_token=token if token is not None else p.retry_token
    )
    text = f"{_summary(upgrade)} started ({upgrade.strategy.value}, attempt {upgrade.attempt})"
    return started.emit("Normal", "UpgradeStarted", text), True


def _steady(inp: Inputs, p: _Progress) -> tuple[_Progress, bool]:
    """Running spec.version: keep every child as the spec says (reverts drift)."""
    plan = steady_plan(inp.spec, inp.spec.version)
    lagging = _unhealthy(inp.spec, inp.observed, plan, strict=False)
    steady = dataclasses.replace(p, plan=plan, waiting="; ".join(lagging))
    secrets = _secrets_blocker(inp)
    if secrets:
        # Hold every child as it is: a template naming a missing Secret would give pods that
        # cannot start, and half of a change is worse than none of it.
        return _blocked(steady, Reason.SECRET_MISSING, secrets, None), False
    return steady, False


# --- the steps ---------------------------------------------------------------------------------


def _retarget(inp: Inputs, p: _Progress) -> tuple[_Progress, bool] | None:
    """spec.version changed before migrations started: follow it (or cancel)."""
    assert p.upgrade is not None
    u = p.upgrade
    if u.step not in RETARGETABLE_STEPS:
        return None
    path = upgrade_path(inp, u.from_version)
    # A path that may not start (UpgradePathRequired, ...) cancels: Preflight then says why.
    target = path.hops[0] if path.runnable else u.from_version
    if target == u.to:
        return None
    change = classify(u.from_version, target)
    allowed = inp.annotations.get(ALLOW_DOWNGRADE_ANNOTATION, "").lower() == "true"
    if target == u.from_version or (change.refused_downgrade and not allowed):
        if u.step is Step.PREFLIGHT:  # nothing was touched yet
            cancelled = dataclasses.replace(p, upgrade=None)
            return cancelled.emit("Normal", "UpgradeCancelled", f"{_summary(u)} cancelled"), True
        why = f"{CANCELLED}: spec.version changed to {inp.spec.version}"
        return _to_step(p, Step.ROLLING_BACK, inp.now, why), True
    assert change.kind is not None
    moved = _with_path(
        u.model_copy(update={"to": target, "kind": change.kind}), inp.spec.version, path.hops[1:]
    )
    retargeted = dataclasses.replace(p, upgrade=moved).emit(
        "Normal", "UpgradeRetargeted", f"{_summary(u)} now targets {target}"
    )
    if u.step is Step.PREFLIGHT:
        return _to_step(retargeted, Step.PREFLIGHT, inp.now), True
    return retargeted, True


def _refresh_path(inp: Inputs, p: _Progress) -> _Progress:
    """The recorded path left after this hop, re-planned from the hop's target.

    spec.version or spec.upgrade.via changed while a hop runs: the hop goes on (or was
    retargeted), and the path after it follows the spec. A path that may not continue keeps what
    was recorded; the next hop's start says why (UpgradePathRequired, ...).
    """
    assert p.upgrade is not None
    u = p.upgrade
    path = upgrade_path(inp, u.to)
    if not path.runnable:
        return p
    after = () if u.to == inp.spec.version else path.hops
    refreshed = _with_path(u, inp.spec.version, after)
    if refreshed == u:
        return p
    return dataclasses.replace(p, upgrade=refreshed)


def _pods_left_behind(inp: Inputs, version: str) -> dict[Component, list[str]]:
    """Per component, its pods of another version than VERSION that are not Ready."""
    left: dict[Component, list[str]] = {}
    for component in enabled_components(inp.spec):
        for pod in inp.observed.pods(component):
            if pod.version != version and not pod.ready:
                left.setdefault(component, []).append(pod.name)
    return left


def _preflight(inp: Inputs, p: _Progress) -> tuple[_Progress, bool]:
    assert p.upgrade is not None
    u = p.upgrade
    leftover = _pods_left_behind(inp, u.from_version)
    if leftover:
        # A failed attempt left pods that never became Ready (they may still show
        # CrashLoopBackOff): judging a new attempt by them would fail it at once. Put those
        # components back on the previous version (the rest stays put) until the pods are gone;
        # a stuck jobs-runner pod is deleted (_stuck_jobs_runner_pods).
        names = [name for pods in leftover.values() for name in pods]
        revert = {c: WorkloadPlan(u.from_version, desired_replicas(inp.spec, c)) for c in leftover}
        waiting = f"preflight: waiting for pods of a failed attempt to go ({', '.join(names[:5])})"
        return dataclasses.replace(p, plan=revert, waiting=waiting), False
    hold = steady_plan(inp.spec, u.from_version)
    secrets = _secrets_blocker(inp)
    if secrets:
        return _blocked(p, Reason.SECRET_MISSING, secrets, hold), False
    database = _database_blocker(inp.database)
    if database:
        return _blocked(p, database[0], f"preflight: {database[1]}", hold), False
    assert inp.database is not None
    if _elapsed(inp, inp.database.checked_at) > PREFLIGHT_PROBE_MAX_AGE_SECONDS:
        return dataclasses.replace(
            p, plan=hold, waiting="preflight: waiting for a fresh database probe"
        ), False
    saved = current_replicas(inp.spec, inp.observed)
    ready = dataclasses.replace(p, upgrade=u.model_copy(update={"saved_replicas": saved}))
    stops = _stops_services(u)
    return _to_step(
        ready, Step.STOPPING_SERVICES if stops else Step.MIGRATING_DATABASE, inp.now
    ), True


def _stopping_services(inp: Inputs, p: _Progress) -> tuple[_Progress, bool]:
    assert p.upgrade is not None
    u = p.upgrade
    plan = _plan_with(
        inp.spec,
        jobs_runner=u.from_version,
        others=u.from_version,
        replicas=_stopped(u.saved_replicas),
    )
    running = [
        pod.name
        for c in enabled_components(inp.spec)
        if c is not Component.JOBS_RUNNER
        for pod in inp.observed.pods(c)
    ]
    progress = dataclasses.replace(p, plan=plan)
    if not running:
        return _to_step(progress, Step.MIGRATING_DATABASE, inp.now), True
    if _timed_out(inp, u, inp.spec.upgrade.verify_timeout):
        why = f"pods still running after verifyTimeout {inp.spec.upgrade.verify_timeout}"
        return _fail(inp, progress, why), True
    waiting = f"stopping services: waiting for {len(running)} pods to go ({', '.join(running[:5])})"
    return dataclasses.replace(progress, waiting=waiting), False


def _migrating_database(inp: Inputs, p: _Progress) -> tuple[_Progress, bool]:
    assert p.upgrade is not None
    u = p.upgrade
    stopped = _stops_services(u)
    plan = _plan_with(
        inp.spec,
        jobs_runner=u.to,
        others=u.from_version,
        replicas=_stopped(u.saved_replicas) if stopped else u.saved_replicas,
    )
    progress = dataclasses.replace(p, plan=plan)
    jobs_runner = inp.observed.workload(Component.JOBS_RUNNER)
    if jobs_runner is not None and jobs_runner.rolled_out(u.to, 1):
        return _to_step(progress, Step.STARTING_SERVICES, inp.now), True
    crashing = jobs_runner.crash_looping_pods(u.to) if jobs_runner else ()
    if crashing:
        return _fail(
            inp, progress, f"jobs-runner pod {crashing[0]} of {u.to} is crash-looping"
        ), True
    migration = _migration_progress(inp, u)
    progress = dataclasses.replace(progress, upgrade=u.model_copy(update={"migration": migration}))
    limit = inp.spec.upgrade.migration_timeout
    quiet = _elapsed(inp, migration.last_progress_at)
    if quiet > parse_duration(limit):
        why = (
            f"the jobs-runner on {u.to} was not Ready and the migration showed no progress for "
            f"migrationTimeout {limit} (last progress at {migration.last_progress_at.isoformat()})"
        )
        return _fail(inp, progress, why), True
    deadline = inp.spec.upgrade.migration_deadline
    if deadline is not None and _timed_out(inp, u, deadline):
        why = f"the jobs-runner on {u.to} was not Ready within migrationDeadline {deadline}"
        return _fail(inp, progress, why), True
    if quiet > parse_duration(limit) / 4 and not migration.stall_reported:
        stalled = migration.model_copy(update={"stall_reported": True})
        progress = dataclasses.replace(
            progress, upgrade=u.model_copy(update={"migration": stalled})
        ).emit(
            "Warning",
            "MigrationStalled",
            f"{_summary(u)}: no migration progress for {int(quiet)}s (a quarter of "
            f"migrationTimeout {limit}); rolled back after {limit} without progress",
        )
    detail = ""
    if inp.database is not None and inp.database.migrations_applied is not None:
        applied, blocked = inp.database.migrations_applied, inp.database.blocked_queries or 0
        detail = f" ({applied} migrations recorded, {blocked} blocked queries)"
    waiting = f"migrating: waiting for the jobs-runner on {u.to} to become Ready{detail}"
    return dataclasses.replace(progress, waiting=waiting), False


def _migration_progress(inp: Inputs, u: UpgradeStatus) -> MigrationProgress:
    """The migration's progress, with what this probe shows (docs/design.md §11).

    Progress is a new row in the migrations table or a statement of another session running
    (not waiting on a lock); sessions waiting on a lock are shown but are no progress. The step's
    start counts as progress, so migrationTimeout never counts from before it.
    """
    recorded = u.migration or MigrationProgress(last_progress_at=u.step_started_at)
    probe = inp.database
    if probe is None or not probe.reachable:
        return recorded
    count, running = probe.migrations_applied, probe.running_statements or 0
    if u.migration is None:  # the first look: the rows already there are the baseline
        return recorded.model_copy(update={"migrations_seen": count, "running_statements": running})
    if probe.checked_at <= recorded.last_progress_at:
        return recorded
    new_rows = count is not None and (
        recorded.migrations_seen is None or count > recorded.migrations_seen
    )
    if not new_rows and not running:
        return recorded.model_copy(update={"running_statements": 0})
    seen = []
    if new_rows:
        seen.append(f"{count} migrations recorded")
    if running:
        seen.append(f"{running} statements running")
    return recorded.model_copy(
        update={
            "migrations_seen": count if count is not None else recorded.migrations_seen,
            "running_statements": running,
            "last_progress_at": probe.checked_at,
            "progress": ", ".join(seen),
            "stall_reported": False,
        }
    )


def _new_version_plan(inp: Inputs, u: UpgradeStatus) -> dict[Component, WorkloadPlan]:
    return _plan_with(inp.spec, jobs_runner=u.to, others=u.to, replicas=u.saved_replicas)


def _crash_looping(inp: Inputs, version: str) -> list[str]:
    return [
        name
        for component in enabled_components(inp.spec)
        if (workload := inp.observed.workload(component)) is not None
        for name in workload.crash_looping_pods(version)
    ]


def _starting_services(inp: Inputs, p: _Progress) -> tuple[_Progress, bool]:
    assert p.upgrade is not None
    u = p.upgrade
    plan = _new_version_plan(inp, u)
    progress = dataclasses.replace(p, plan=plan)
    taken = all(
        (w := inp.observed.workload(c)) is not None and w.version == u.to and w.generation_observed
        for c in plan
    )
    if taken:
        return _to_step(progress, Step.VERIFYING, inp.now), True
    if _timed_out(inp, u, inp.spec.upgrade.verify_timeout):
        return _fail(inp, progress, "services did not take the new version in time"), True
    return dataclasses.replace(progress, waiting=f"starting services on {u.to}"), False


def _verifying(inp: Inputs, p: _Progress) -> tuple[_Progress, bool]:
    assert p.upgrade is not None
    u = p.upgrade
    plan = _new_version_plan(inp, u)
    progress = dataclasses.replace(p, plan=plan)
    lagging = _unhealthy(inp.spec, inp.observed, plan)
    if not lagging:
        return _finish_upgrade(inp, progress, UpgradeResult.SUCCEEDED, ""), True
    crashing = _crash_looping(inp, u.to)
    if crashing:
        return _fail(inp, progress, f"pod {crashing[0]} of {u.to} is crash-looping"), True
    if _timed_out(inp, u, inp.spec.upgrade.verify_timeout):
        limit = inp.spec.upgrade.verify_timeout
        why = f"not every component was Ready on {u.to} within verifyTimeout {limit}: {lagging[0]}"
        return _fail(inp, progress, why), True
    return dataclasses.replace(progress, waiting="verifying: " + "; ".join(lagging)), False


def _rolling_back(inp: Inputs, p: _Progress) -> tuple[_Progress, bool]:
    assert p.upgrade is not None
    u = p.upgrade
    jobs_runner = inp.observed.workload(Component.JOBS_RUNNER)
    # Services that the upgrade stopped stay stopped until the jobs-runner is back on the old
    # version and Ready: a failing new jobs-runner may still be migrating at each restart.
    stopped = _stops_services(u)
    others_down = not any(
        inp.observed.pods(c) for c in enabled_components(inp.spec) if c is not Component.JOBS_RUNNER
    )
    old_runner_back = jobs_runner is not None and jobs_runner.rolled_out(u.from_version, 1)
    hold = stopped and others_down and not old_runner_back
    plan = _plan_with(
        inp.spec,
        jobs_runner=u.from_version,
        others=u.from_version,
        replicas=_stopped(u.saved_replicas) if hold else u.saved_replicas,
    )
    # A stuck jobs-runner pod of the new version is deleted by decide (_stuck_jobs_runner_pods).
    progress = dataclasses.replace(p, plan=plan)
    lagging = _unhealthy(inp.spec, inp.observed, plan)
    if not lagging and not hold:
        return _finish_upgrade(inp, progress, UpgradeResult.ROLLED_BACK, u.message), True
    waiting = "; ".join(lagging) or "waiting for the jobs-runner to be back on the old version"
    return dataclasses.replace(progress, waiting=f"rolling back: {waiting}"), False


def _stuck_jobs_runner_pods(inp: Inputs, plan: Plan | None) -> tuple[str, ...]:
    """Jobs-runner pods the StatefulSet will never replace, to delete so that it can.

    A StatefulSet with OrderedReady does not replace a pod that is not Ready, whatever its
    template says (kubernetes/kubernetes#67250): a pod of a broken version stays after a rollback,
    a revert of spec.version, a later upgrade or a new install target. Once the StatefulSet has
    the planned template, such a pod of another version is deleted; the StatefulSet recreates it
    on the template, one pod at a time.
    """
    wanted = plan.get(Component.JOBS_RUNNER) if plan is not None else None
    jobs_runner = inp.observed.workload(Component.JOBS_RUNNER)
    if wanted is None or jobs_runner is None or jobs_runner.version != wanted.version:
        return ()
    return tuple(
        pod.name
        for pod in jobs_runner.pods
        if pod.version != wanted.version and not pod.ready and not pod.terminating
    )


def _autoscaled_api(inp: Inputs, plan: Plan | None) -> Plan | None:
    """PLAN with the replica count of a running autoscaled api left to its HPA.

    The operator sets an autoscaled api's count only to stop it (0) and to start it again from 0,
    where an HPA does not act (the saved count, else minReplicas). Pinning a running api to the
    saved count would fight the HPA, and a step waiting for that count would never finish.
    """
    autoscaling = inp.spec.api.autoscaling
    api = inp.observed.workload(Component.API)
    wanted = plan.get(Component.API) if plan is not None else None
    if autoscaling is None or api is None or wanted is None or wanted.replicas == 0:
        return plan
    assert plan is not None
    replicas = None if api.spec_replicas > 0 else (wanted.replicas or autoscaling.min_replicas)
    return {**plan, Component.API: WorkloadPlan(wanted.version, replicas)}


_STEPS = {
    Step.PREFLIGHT: _preflight,
    Step.STOPPING_SERVICES: _stopping_services,
    Step.MIGRATING_DATABASE: _migrating_database,
    Step.STARTING_SERVICES: _starting_services,
    Step.VERIFYING: _verifying,
    Step.ROLLING_BACK: _rolling_back,
}


def _advance(inp: Inputs, p: _Progress) -> tuple[_Progress, bool]:
    """One move of the machine; True when it changed state and should look again."""
    if p.upgrade is not None:
        retargeted = _retarget(inp, p)
        if retargeted is not None:
            return retargeted
        return _STEPS[p.upgrade.step](inp, _refresh_path(inp, p))
    if p.current_version is None:
        adopted = _adopted_version(inp)
        if adopted is not None:
            return dataclasses.replace(p, current_version=adopted), True
        return _install(inp, p)
    if p.current_version == inp.spec.version:
        return _steady(inp, p)
    return _begin_upgrade(inp, p)


# --- status ------------------------------------------------------------------------------------


def _phase(inp: Inputs, p: _Progress, healthy: bool) -> Phase:
    if inp.spec.paused:
        return Phase.PAUSED
    if p.upgrade is not None:
        return Phase.ROLLING_BACK if p.upgrade.step is Step.ROLLING_BACK else Phase.UPGRADING
    if p.current_version is None and p.blocker is None:
        return Phase.INSTALLING
    return Phase.READY if healthy else Phase.DEGRADED


def _database_condition(inp: Inputs) -> ConditionState | None:
    probe = inp.database
    if probe is None:
        recorded = cond.find(inp.status.conditions, cond.DATABASE_REACHABLE)
        if recorded is not None:
            return None  # keep what the last probe said
        return cond.unknown(cond.DATABASE_REACHABLE, Reason.NOT_PROBED, "not probed yet")
    if probe.reachable:
        return cond.true(
            cond.DATABASE_REACHABLE, Reason.CONNECTED, f"PostgreSQL {probe.server_version}"
        )
    return cond.false(cond.DATABASE_REACHABLE, Reason.DATABASE_UNREACHABLE, probe.error or "")


_PAUSED_PENDING = "spec.paused is true: children are left as they are, a change is pending"


def _conditions(inp: Inputs, p: _Progress, healthy: bool) -> list[ConditionState]:
    # Paused and healthy on spec.version reads healthy (kstatus Current, Ready=True); paused with
    # a change pending reads in progress (Reconciling=True, reason Paused) until it is resumed.
    if healthy:
        suffix = " (paused)" if inp.spec.paused else ""
        ready = cond.true(
            cond.READY, Reason.ALL_COMPONENTS_READY, f"Retool {inp.spec.version} is Ready{suffix}"
        )
    elif p.blocker is not None:
        ready = cond.false(cond.READY, p.blocker.reason, p.blocker.message)
    elif inp.spec.paused:
        ready = cond.false(cond.READY, Reason.PAUSED, _PAUSED_PENDING)
    elif p.upgrade is not None:
        reason = Reason.ROLLING_BACK if p.upgrade.step is Step.ROLLING_BACK else Reason.UPGRADING
        ready = cond.false(cond.READY, reason, f"{_summary(p.upgrade)}: {p.upgrade.step.value}")
    elif p.current_version is None:
        ready = cond.false(cond.READY, Reason.INSTALLING, p.waiting)
    else:
        ready = cond.false(cond.READY, Reason.COMPONENTS_NOT_READY, p.waiting)
    if p.blocker is not None:
        stalled = p.blocker
        reconciling = cond.false(cond.RECONCILING, p.blocker.reason, "waiting for a person to act")
    else:
        stalled = cond.false(cond.STALLED, Reason.NOT_STALLED)
        if healthy:
            reason = Reason.PAUSED if inp.spec.paused else Reason.RECONCILED
            reconciling = cond.false(cond.RECONCILING, reason)
        elif inp.spec.paused:
            reconciling = cond.true(cond.RECONCILING, Reason.PAUSED, _PAUSED_PENDING)
        elif p.upgrade is not None:
            reconciling = cond.true(cond.RECONCILING, p.upgrade.step.value, p.waiting)
        elif p.current_version is None:
            reconciling = cond.true(cond.RECONCILING, Reason.INSTALLING, p.waiting)
        else:
            reconciling = cond.true(cond.RECONCILING, Reason.PROGRESSING, p.waiting)
    states = [ready, reconciling, stalled]
    database = _database_condition(inp)
    if database is not None:
        states.append(database)
    if inp.spec.http_route is not None:
        states.append(_gateway_api_condition(inp))
    return states


def _gateway_api_condition(inp: Inputs) -> ConditionState:
    """Whether the HTTPRoute spec.httpRoute asks for can exist: the Gateway API's CRDs."""
    if "HTTPRoute" in inp.observed.absent_kinds:
        return cond.false(
            cond.GATEWAY_API,
            Reason.GATEWAY_API_MISSING,
            "spec.httpRoute is set, but the cluster serves no HTTPRoute "
            "(gateway.networking.k8s.io/v1): install the Gateway API CRDs, or remove "
            "spec.httpRoute; everything else runs without it",
        )
    return cond.true(
        cond.GATEWAY_API, Reason.GATEWAY_API_SERVED, f"HTTPRoute {inp.name} is written"
    )


def component_status(
    observed: Snapshot, component: Component, selector: str | None
) -> ComponentStatus | None:
    """What status.<component> reports, from the observed workload."""
    workload = observed.workload(component)
    if workload is None:
        return None
    return ComponentStatus(
        replicas=workload.spec_replicas,
        ready_replicas=workload.ready_replicas,
        updated_replicas=workload.updated_replicas,
        version=workload.version,
        selector=selector,
        summary=f"{workload.ready_replicas}/{workload.spec_replicas} "
        f"{workload.version or 'unknown'}",
    )


def _database_status(inp: Inputs) -> DatabaseStatus | None:
    probe = inp.database
    if probe is None:
        return inp.status.database
    return DatabaseStatus(
        reachable=probe.reachable,
        server_version=probe.server_version,
        migrations_applied=probe.migrations_applied,
        blocked_queries=probe.blocked_queries,
        running_statements=probe.running_statements,
    )


def _api_selector(name: str) -> str:
    """The api pods' label selector, as the scale subresource reports it."""
    labels = naming.selector_labels(name, Component.API)
    return ",".join(f"{key}={value}" for key, value in sorted(labels.items()))


def _status(inp: Inputs, p: _Progress) -> RetoolDeploymentStatus:
    healthy = (
        p.blocker is None
        and p.upgrade is None
        and p.current_version == inp.spec.version
        and not _unhealthy(
            inp.spec, inp.observed, steady_plan(inp.spec, inp.spec.version), strict=False
        )
    )
    components = {
        c.field: component_status(
            inp.observed, c, _api_selector(inp.name) if c is Component.API else None
        )
        for c in Component
    }
    return inp.status.model_copy(
        update={
            "observed_generation": inp.generation,
            "phase": _phase(inp, p, healthy),
            "current_version": p.current_version,
            "target_version": inp.spec.version,
            "upgrade": p.upgrade,
            "retry_token": p.retry_token,
            "history": list(p.history),
            "database": _database_status(inp),
            "conditions": cond.apply(
                inp.status.conditions,
                _conditions(inp, p, healthy),
                generation=inp.generation,
                now=inp.now,
            ),
            **components,
        }
    )


def _announce_blocker(inp: Inputs, p: _Progress) -> _Progress:
    """A Warning Event when the operator newly needs a person (once, not at every reconcile)."""
    if p.blocker is None:
        return p
    recorded = cond.find(inp.status.conditions, cond.STALLED)
    if recorded is not None and recorded.status == "True" and recorded.reason == p.blocker.reason:
        return p
    # A rollback or failure of this very decision has already said it.
    if any(e.reason in {p.blocker.reason, "UpgradeRolledBack"} for e in p.events):
        return p
    return p.emit("Warning", p.blocker.reason, p.blocker.message)


def decide(inp: Inputs) -> Decision:
    """The next status and the children to converge on, from everything observed."""
    recorded = inp.status
    p = _Progress(
        current_version=recorded.current_version,
        upgrade=recorded.upgrade,
        history=tuple(recorded.history),
        retry_token=recorded.retry_token,
    )
    if not inp.spec.paused:
        for _ in range(_MAX_TRANSITIONS):
            p, moved = _advance(inp, p)
            if not moved:
                break
    p = _announce_blocker(inp, p)
    status = _status(inp, p)
    if inp.spec.paused:
        return Decision(status=status, plan=None, events=p.events)
    active = p.upgrade is not None or p.current_version is None or bool(p.waiting)
    requeue = REQUEUE_BLOCKED_SECONDS if p.blocker else (REQUEUE_ACTIVE_SECONDS if active else None)
    return Decision(
        status=status,
        plan=_autoscaled_api(inp, p.plan),
        delete_pods=_stuck_jobs_runner_pods(inp, p.plan),
        events=p.events,
        requeue_after=requeue,
    )


def decide_invalid_spec(
    status: RetoolDeploymentStatus,
    error: pydantic.ValidationError,
    *,
    generation: int,
    now: datetime,
) -> Decision:
    """A spec the API server let through but the models refuse: say so, touch nothing."""
    problems = "; ".join(
        f"spec.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()
    )[:1000]
    updated = status.model_copy(
        update={
            "observed_generation": generation,
            "phase": Phase.DEGRADED,
            "conditions": cond.apply(
                status.conditions,
                [
                    cond.false(cond.READY, Reason.INVALID_SPEC, problems),
                    cond.false(cond.RECONCILING, Reason.INVALID_SPEC),
                    cond.true(cond.STALLED, Reason.INVALID_SPEC, problems),
                ],
                generation=generation,
                now=now,
            ),
        }
    )
    return Decision(status=updated, plan=None)
