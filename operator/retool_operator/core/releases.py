"""Retool's stable release lines and the upgrade path through them (docs/design.md §11).

Retool's upgrade guide: a deployment more than one stable release behind upgrades through each
stable release in sequence (its example: 3.300 -> 3.334 -> 4.0 -> 4.34), verifying each. The
operator knows the stable lines (MAJOR.MINOR) below as data. A change of spec.version that jumps
over one of them without naming it in spec.upgrade.via holds in Preflight (UpgradePathRequired);
annotation retool-operator.dev/skip-upgrade-path: "true" overrides.

Sources, honestly: 3.300, 3.334, 4.0 and 4.34 are the lines of the upgrade guide's example; 4.0 is
also the subject of Retool's changelog "Permissions database migration in self-hosted Retool 4.0"
(it asks to upgrade to 4.0 before any later release). 3.52 and 3.75 are stable releases Retool
keeps versioned documentation for (docs.retool.com/3.52/, /3.75/). 3.148, 3.196 and 3.253 are the
stable lines this project's issue 14 and its tests name, not checked against Retool's list of
stable releases (no access to it from here): confirm them there.

To add a release: append its (MAJOR, MINOR) to STABLE_LINES in ascending order, with its source in
a comment; tests/unit/test_releases.py checks the order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from retool_operator.core.models import MAX_VIA_HOPS
from retool_operator.core.versions import RetoolVersion, parse

STABLE_LINES: tuple[tuple[int, int], ...] = (
    (3, 52),  # versioned docs: docs.retool.com/3.52/
    (3, 75),  # versioned docs: docs.retool.com/3.75/
    (3, 148),  # issue 14 (unconfirmed)
    (3, 196),  # issue 14 (unconfirmed)
    (3, 253),  # issue 14 (unconfirmed)
    (3, 300),  # Retool's upgrade guide example
    (3, 334),  # Retool's upgrade guide example
    (4, 0),  # upgrade guide example; changelog "Permissions database migration ... 4.0"
    (4, 34),  # Retool's upgrade guide example
)


@dataclass(frozen=True)
class UpgradePath:
    """The hops from the running version to spec.version, or why there is none.

    `hops` are the versions to run in turn, the last being the target. `missing` names the stable
    lines the path jumps over (each "MAJOR.MINOR"); `problem` a path that cannot be run at all.
    """

    hops: tuple[str, ...]
    missing: tuple[str, ...] = ()
    problem: str = ""

    @property
    def runnable(self) -> bool:
        """Whether the hops may start."""
        return not self.missing and not self.problem


def _line(series: tuple[int, int]) -> str:
    return f"{series[0]}.{series[1]}"


def skipped_lines(from_: RetoolVersion, to: RetoolVersion) -> list[tuple[int, int]]:
    """Stable lines strictly between two versions' series (the ones a direct hop jumps over)."""
    return [line for line in STABLE_LINES if from_.series < line < to.series]


def plan_path(
    current: str, target: str, via: Sequence[str], *, skip_check: bool = False
) -> UpgradePath:
    """The upgrade path from CURRENT to TARGET through VIA.

    VIA entries at or below the running version are hops already passed (a path in progress
    re-plans from the version actually running, and a `via` left in Git after the path finished
    is no obstacle); the rest must lie below TARGET, ascending (admission checks both; a spec
    that slipped past is reported here). A downgrade or a change within one series is one hop.
    """
    now, goal = parse(current), parse(target)
    if goal.release <= now.release:
        return UpgradePath(hops=(target,))
    ahead = [v for v in via if parse(v).release > now.release]
    numbers = [parse(v).release for v in ahead]
    if any(n >= goal.release for n in numbers):
        beyond = next(v for v in ahead if parse(v).release >= goal.release)
        problem = f"spec.upgrade.via names {beyond}, which is not below spec.version {target}"
        return UpgradePath(hops=(target,), problem=problem)
    if numbers != sorted(set(numbers)):
        problem = f"spec.upgrade.via {', '.join(via)} is not in ascending order"
        return UpgradePath(hops=(target,), problem=problem)
    hops = (*ahead, target)
    if len(hops) > MAX_VIA_HOPS + 1:
        problem = f"the path {current} -> {' -> '.join(hops)} has more than {MAX_VIA_HOPS + 1} hops"
        return UpgradePath(hops=hops, problem=problem)
    if skip_check:
        return UpgradePath(hops=hops)
    missing: list[str] = []
    start = now
    for hop in hops:
        end = parse(hop)
        missing.extend(_line(line) for line in skipped_lines(start, end))
        start = end
    return UpgradePath(hops=hops, missing=tuple(missing))


def missing_message(path: UpgradePath, current: str, target: str) -> str:
    """What UpgradePathRequired says: which stable lines to add to spec.upgrade.via."""
    lines = ", ".join(f"a {line}.x-stable tag" for line in path.missing)
    return (
        f"{current} -> {target} jumps over the stable release line(s) {', '.join(path.missing)}: "
        f"Retool upgrades through each stable release in turn; add {lines} to spec.upgrade.via "
        '(or set annotation retool-operator.dev/skip-upgrade-path: "true" to jump anyway)'
    )
