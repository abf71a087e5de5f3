"""The status conditions, defined in one place (kstatus: Ready, Reconciling, Stalled).

kstatus readers (kubectl wait, Argo CD, Flux, Helm's watcher) need: `Ready` True only when the
installation runs spec.version and is healthy; `Reconciling` True while work is in progress;
`Stalled` True when it cannot progress without a person. `DatabaseReachable` tells the database
probe's result. `lastTransitionTime` changes only when a condition's status changes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from datetime import datetime
from enum import StrEnum

from retool_operator.core.models import Condition, ConditionStatus

READY = "Ready"
RECONCILING = "Reconciling"
STALLED = "Stalled"
DATABASE_REACHABLE = "DatabaseReachable"
# Only while spec.httpRoute is set: whether the cluster serves Gateway API's HTTPRoute.
GATEWAY_API = "GatewayAPIAvailable"
CONDITION_TYPES = (READY, RECONCILING, STALLED, DATABASE_REACHABLE, GATEWAY_API)
# Ours, but present only while the spec asks for what they report on: dropped when not wanted.
_OPTIONAL_TYPES = frozenset({GATEWAY_API})


class Reason(StrEnum):
    """Every reason the operator writes into a condition."""

    # Ready
    ALL_COMPONENTS_READY = "AllComponentsReady"
    COMPONENTS_NOT_READY = "ComponentsNotReady"
    INSTALLING = "Installing"
    UPGRADING = "Upgrading"
    ROLLING_BACK = "RollingBack"
    PAUSED = "Paused"
    # Stalled (a person must act)
    UPGRADE_FAILED = "UpgradeFailed"
    DOWNGRADE_REFUSED = "DowngradeRefused"
    UPGRADE_PATH_REQUIRED = "UpgradePathRequired"
    UPGRADE_PATH_INVALID = "UpgradePathInvalid"
    DATABASE_UNREACHABLE = "DatabaseUnreachable"
    DATABASE_UNSUPPORTED = "DatabaseVersionUnsupported"
    SECRET_MISSING = "SecretMissing"  # noqa: S105 (a reason, not a secret)
    INVALID_SPEC = "InvalidSpec"
    # Reconciling / Stalled when nothing is wrong
    PROGRESSING = "Progressing"
    RECONCILED = "Reconciled"
    NOT_STALLED = "NoBlocker"
    # DatabaseReachable
    CONNECTED = "Connected"
    NOT_PROBED = "NotProbed"
    # GatewayAPIAvailable
    GATEWAY_API_SERVED = "HTTPRouteServed"
    GATEWAY_API_MISSING = "GatewayAPIMissing"


@dataclasses.dataclass(frozen=True)
class ConditionState:
    """What a condition should say now; `apply` turns it into a stored Condition."""

    type: str
    status: ConditionStatus
    reason: str
    message: str = ""


def true(kind: str, reason: str, message: str = "") -> ConditionState:
    """A condition that holds."""
    return ConditionState(kind, ConditionStatus.TRUE, reason, message)


def false(kind: str, reason: str, message: str = "") -> ConditionState:
    """A condition that does not hold."""
    return ConditionState(kind, ConditionStatus.FALSE, reason, message)


def unknown(kind: str, reason: str, message: str = "") -> ConditionState:
    """A condition whose truth is not known yet."""
    return ConditionState(kind, ConditionStatus.UNKNOWN, reason, message)


def apply(
    recorded: Sequence[Condition],
    wanted: Iterable[ConditionState],
    *,
    generation: int | None,
    now: datetime,
) -> list[Condition]:
    """Merge WANTED into RECORDED: keep lastTransitionTime unless the status flips.

    Conditions of other types (written by someone else) are kept; the result is ordered with
    ours first, in CONDITION_TYPES order, so that an unchanged state gives an identical list.
    """
    previous = {c.type: c for c in recorded}
    merged: dict[str, Condition] = {}
    for state in wanted:
        before = previous.get(state.type)
        changed = before is None or before.status != state.status
        merged[state.type] = Condition(
            type=state.type,
            status=state.status,
            reason=state.reason,
            message=state.message,
            observed_generation=generation,
            last_transition_time=now if changed or before is None else before.last_transition_time,
        )
    ours = [merged[t] for t in CONDITION_TYPES if t in merged]
    others = [c for c in recorded if c.type not in merged and c.type not in _OPTIONAL_TYPES]
    return ours + others


def find(conditions: Sequence[Condition], kind: str) -> Condition | None:
    """The condition of that type, if present."""
    return next((c for c in conditions if c.type == kind), None)
