"""Which status changes are progress detail (may wait a moment) and which are written at once."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from retool_operator.core import conditions as cond
from retool_operator.core.conditions import Reason
from retool_operator.core.models import (
    ComponentStatus,
    DatabaseStatus,
    Phase,
    RetoolDeploymentStatus,
)

NOW = datetime(2026, 11, 27, tzinfo=UTC)
VERSION = "3.196.1-stable"


def status(
    *,
    phase: Phase = Phase.INSTALLING,
    ready: cond.ConditionState | None = None,
    jobs_runner_ready: int = 0,
    migrations: int | None = None,
    generation: int = 1,
    current: str | None = None,
) -> RetoolDeploymentStatus:
    wanted = [ready or cond.false(cond.READY, Reason.INSTALLING, "waiting for the jobs-runner")]
    return RetoolDeploymentStatus(
        observed_generation=generation,
        phase=phase,
        current_version=current,
        target_version=VERSION,
        jobs_runner=ComponentStatus(replicas=1, ready_replicas=jobs_runner_ready),
        database=DatabaseStatus(reachable=True, migrations_applied=migrations),
        conditions=cond.apply([], wanted, generation=generation, now=NOW),
    )


BASE = status()


@pytest.mark.parametrize(
    ("new", "detail"),
    [
        (status(), True),
        (status(jobs_runner_ready=1), True),
        (status(migrations=12), True),
        (status(ready=cond.false(cond.READY, Reason.INSTALLING, "api does not exist yet")), True),
        # What kstatus readers act on goes out at once.
        (status(ready=cond.true(cond.READY, Reason.ALL_COMPONENTS_READY)), False),
        (status(ready=cond.false(cond.READY, Reason.COMPONENTS_NOT_READY)), False),
        (status(phase=Phase.READY), False),
        (status(generation=2), False),
        (status(current=VERSION), False),
    ],
)
def test_progress_only(new: RetoolDeploymentStatus, detail: bool) -> None:
    assert cond.progress_only(BASE, new) is detail
