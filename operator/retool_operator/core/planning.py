"""What a bump of spec.version would do, read from the live object (`kubectl retool plan`).

Pure: the caller observes the RetoolDeployment, its children and the operator's last database
probe into `statemachine.Inputs`; `plan` asks the state machine itself (`decide`, and the checks
Preflight makes) what it would do with spec.version set to another version, and describes the
steps. Nothing is written anywhere.

A path is a sequence of hops, each one phased upgrade: the versions of `spec.upgrade.via` above
the running one, then spec.version (core/releases.py, docs/design.md §11). A path that jumps over
a stable release line is shown as the state machine would hold it (UpgradePathRequired).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from retool_operator.core import builders, statemachine
from retool_operator.core import conditions as cond
from retool_operator.core.models import (
    ALLOW_DOWNGRADE_ANNOTATION,
    ChangeKind,
    Component,
    Step,
    UpgradeStrategy,
)
from retool_operator.core.statemachine import Inputs, decide
from retool_operator.core.versions import classify, parse


@dataclasses.dataclass(frozen=True)
class PlannedStep:
    """One step of a hop and what it does there."""

    step: str
    does: str


@dataclasses.dataclass(frozen=True)
class Hop:
    """One phased upgrade from one version to the next."""

    from_version: str
    to: str
    kind: str
    strategy: str
    runs_migrations: bool
    downgrade: bool
    stops: dict[str, int]  # component -> replicas it has now (to be restored)
    steps: tuple[PlannedStep, ...]


@dataclasses.dataclass(frozen=True)
class Check:
    """One thing Preflight checks, as it would find it now."""

    name: str
    ok: bool
    reason: str
    detail: str


@dataclasses.dataclass(frozen=True)
class UpgradePlan:
    """What setting spec.version to `target` would do now."""

    name: str
    running: str | None
    target: str
    kind: str
    path: tuple[Hop, ...]
    path_note: str
    preflight: tuple[Check, ...]
    verdict: str

    def to_json(self) -> dict[str, Any]:
        """Plain JSON values (for `-o json`)."""
        return dataclasses.asdict(self)


def upgrade_path(inp: Inputs, running: str) -> tuple[tuple[str, str], ...]:
    """The hops from RUNNING to spec.version, each as (from, to), as the state machine runs them."""
    hops = statemachine.upgrade_path(inp, running).hops
    return tuple(zip((running, *hops[:-1]), hops, strict=True))


def _path_note(inp: Inputs, running: str | None) -> str:
    if running is None or running == inp.spec.version:
        return "no hop"
    path = statemachine.upgrade_path(inp, running)
    hops = len(path.hops)
    text = "one hop" if hops == 1 else f"{hops} hops through spec.upgrade.via"
    text += ", each a full phased upgrade with its own history entry"
    if path.missing:
        text += f"; it jumps over the stable line(s) {', '.join(path.missing)} (held in Preflight)"
    return text


def _components(names: Mapping[str, int]) -> str:
    return ", ".join(f"{name} ({count})" for name, count in names.items()) or "nothing"


def _describe(
    inp: Inputs, step: Step, hop: tuple[str, str], kind: ChangeKind, stops: Mapping[str, int]
) -> str:
    old, new = hop
    upgrade = inp.spec.upgrade
    others = [c.value for c in statemachine.enabled_components(inp.spec)]
    others.remove(Component.JOBS_RUNNER.value)
    if step is Step.PREFLIGHT:
        return (
            "check the database (reachable, PostgreSQL >= 13), the Secrets, and that this is "
            "no refused downgrade; nothing is touched before it passes; remember replica counts"
        )
    if step is Step.STOPPING_SERVICES:
        return f"scale to 0 on {old}: {_components(stops)}; wait until their pods are gone"
    if step is Step.MIGRATING_DATABASE:
        if kind is ChangeKind.PATCH:
            detail = (
                f"a patch: no migrations expected; {', '.join(others)} serve on {old} meanwhile"
            )
        elif upgrade.strategy is UpgradeStrategy.ROLLING_UPDATE:
            detail = f"RollingUpdate: {', '.join(others)} serve on {old} meanwhile"
        else:
            detail = "the database migrates while nothing else runs"
        return (
            f"move the jobs-runner to {new} (its old pod stops before the new one starts) and "
            f"wait until it is Ready, within migrationTimeout {upgrade.migration_timeout}; {detail}"
        )
    if step is Step.STARTING_SERVICES:
        rolling = " (the api rolls with maxUnavailable 0)" if not stops else ""
        return f"move {', '.join(others)} to {new} with their replica counts{rolling}"
    failure = "roll everything back to " + old if upgrade.auto_rollback else "stop for a person"
    return (
        f"wait until every component runs {new} and is Ready, within verifyTimeout "
        f"{upgrade.verify_timeout}; on a timeout or a crash-looping pod, {failure}"
    )


def _hop(inp: Inputs, hop: tuple[str, str]) -> Hop:
    change = classify(*hop)
    kind = change.kind or ChangeKind.PATCH
    strategy = inp.spec.upgrade.strategy
    saved = statemachine.current_replicas(inp.spec, inp.observed)
    stops = saved if statemachine.stops_services(kind, strategy) else {}
    steps = tuple(
        PlannedStep(step.value, _describe(inp, step, hop, kind, stops))
        for step in statemachine.upgrade_steps(kind, strategy)
    )
    return Hop(
        from_version=hop[0],
        to=hop[1],
        kind=kind.value,
        strategy=strategy.value,
        runs_migrations=change.runs_migrations,
        downgrade=change.downgrade,
        stops=dict(stops),
        steps=steps,
    )


def _verdict(inp: Inputs, bumped: Inputs, running: str | None) -> str:
    """What the operator would do now, as the state machine decides it."""
    target = bumped.spec.version
    recorded = inp.status.upgrade
    if recorded is not None:
        if recorded.to == target:
            return f"already under way: the upgrade to {target} is in step {recorded.step.value}"
        if recorded.step in statemachine.RETARGETABLE_STEPS:
            return (
                f"retarget: the upgrade {recorded.from_version} -> {recorded.to} has not started "
                f"migrating ({recorded.step.value}), so it would aim at {target} instead"
            )
        return (
            f"wait: the upgrade {recorded.from_version} -> {recorded.to} is past Preflight "
            f"({recorded.step.value}); it finishes (or rolls back), then {target} starts"
        )
    if running == target:
        return f"nothing to do: {target} is what runs"
    decision = decide(bumped)
    stalled = cond.find(decision.status.conditions, cond.STALLED)
    upgrade = decision.status.upgrade
    if upgrade is not None and upgrade.step is not Step.PREFLIGHT:
        return f"start: Preflight passes now; the upgrade would go on to {upgrade.step.value}"
    if stalled is not None and stalled.status == "True":
        where = "hold in Preflight" if upgrade is not None else "refuse"
        return f"{where} ({stalled.reason}): {stalled.message}"
    if running is None:
        return f"install {target}: the jobs-runner first, then the other components"
    reconciling = cond.find(decision.status.conditions, cond.RECONCILING)
    return "start, then wait in Preflight: " + (reconciling.message if reconciling else "")


def _passed(inp: Inputs, running: str | None) -> dict[str, str]:
    """What each passing check found (never a Secret's value: names and keys only)."""
    probe = inp.database
    database = f"reachable, PostgreSQL {probe.server_version}" if probe else ""
    ref = inp.spec.database.password_secret_ref
    secrets = (
        f"present: {ref.name} ({ref.key}), {inp.spec.secret_ref.name} "
        f"({builders.LICENSE_KEY_KEY}, {builders.ENCRYPTION_KEY_KEY})"
    )
    if running is None or running == inp.spec.version:
        downgrade = "no change of version"
    elif not classify(running, inp.spec.version).downgrade:
        downgrade = "not a downgrade"
    elif classify(running, inp.spec.version).refused_downgrade:
        downgrade = f"a downgrade, allowed by annotation {ALLOW_DOWNGRADE_ANNOTATION}"
    else:
        downgrade = "a patch downgrade: allowed"
    path = (
        " -> ".join(statemachine.upgrade_path(inp, running).hops)
        if running is not None and running != inp.spec.version
        else "no change of version"
    )
    return {
        "database": database,
        "secrets": secrets,
        "downgrade": downgrade,
        "upgrade path": f"every stable release line passed: {path}",
    }


def plan(inp: Inputs, version: str) -> UpgradePlan:
    """What setting spec.version to VERSION would do now (ValueError for an invalid tag)."""
    parse(version)
    running = inp.status.current_version
    spec = inp.spec.model_copy(update={"version": version, "paused": False})
    bumped = dataclasses.replace(inp, spec=spec, status=inp.status)
    findings = statemachine.preflight_findings(bumped)
    passed = _passed(bumped, running)
    checks = tuple(
        Check(
            name,
            found is None,
            found[0].value if found else "",
            found[1] if found else passed[name],
        )
        for name, found in findings.items()
    )
    path = tuple(_hop(bumped, hop) for hop in upgrade_path(bumped, running)) if running else ()
    change = classify(running, version).kind if running else None
    kind = change.value if change else ("Install" if running is None else "None")
    verdict = _verdict(inp, bumped, running)
    if inp.spec.paused:
        verdict = f"nothing while spec.paused is true; once resumed: {verdict}"
    return UpgradePlan(
        name=inp.name,
        running=running,
        target=version,
        kind=kind if running != version else "None",
        path=path if running != version else (),
        path_note=_path_note(bumped, running),
        preflight=checks,
        verdict=verdict,
    )
