"""How old a cached Secret read or database probe may be, by what the RetoolDeployment is doing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from retool_operator.core.freshness import freshness
from retool_operator.core.models import (
    ChangeKind,
    Phase,
    RetoolDeploymentStatus,
    Step,
    UpgradeStatus,
    UpgradeStrategy,
)

OLD, NEW = "3.196.1-stable", "3.200.0-stable"
STEADY, ACTIVE = 60.0, 2.0
NOW = datetime(2026, 11, 27, tzinfo=UTC)


def upgrading(step: Step) -> RetoolDeploymentStatus:
    upgrade = UpgradeStatus(
        from_version=OLD,
        to=NEW,
        kind=ChangeKind.MINOR,
        strategy=UpgradeStrategy.RECREATE,
        step=step,
        started_at=NOW,
        step_started_at=NOW,
    )
    return RetoolDeploymentStatus(
        phase=Phase.UPGRADING, current_version=OLD, target_version=NEW, upgrade=upgrade
    )


INSTALLING = RetoolDeploymentStatus(phase=Phase.INSTALLING)
READY_OLD = RetoolDeploymentStatus(phase=Phase.READY, current_version=OLD, target_version=OLD)


@pytest.mark.parametrize(
    ("status", "version", "ok", "migrating", "ttl"),
    [
        # Nothing recorded yet, all well: an install's reconciles share one read.
        (RetoolDeploymentStatus(), OLD, True, False, STEADY),
        (INSTALLING, OLD, True, False, STEADY),
        # Something was wrong: look again soon, so that the fix is noticed.
        (INSTALLING, OLD, False, False, ACTIVE),
        (READY_OLD, OLD, False, False, ACTIVE),
        (READY_OLD, OLD, True, False, STEADY),
        # An upgrade about to start, or in Preflight: only a fresh read will do.
        (READY_OLD, NEW, True, False, 0.0),
        (upgrading(Step.PREFLIGHT), NEW, True, False, 0.0),
        (upgrading(Step.PREFLIGHT), NEW, False, False, 0.0),
        # A migration reports its progress from the probe.
        (upgrading(Step.MIGRATING_DATABASE), NEW, True, True, ACTIVE),
        (upgrading(Step.STOPPING_SERVICES), NEW, True, False, STEADY),
        (upgrading(Step.VERIFYING), NEW, True, False, STEADY),
    ],
)
def test_freshness(
    status: RetoolDeploymentStatus, version: str, ok: bool, migrating: bool, ttl: float
) -> None:
    got = freshness(status, STEADY, ACTIVE, spec_version=version, ok=ok, migrating=migrating)
    assert got == ttl
