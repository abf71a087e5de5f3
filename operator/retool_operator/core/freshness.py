"""How old a cached read of what is not watched (Secrets, the database probe) may be.

Secrets are read with `get` only (the operator may not list or watch them) and the database is
not a Kubernetes object, so both are re-read on a clock. The rule, by what the RetoolDeployment
is doing: an upgrade about to start (or in Preflight) checks what it relies on, so only a fresh
read will do; a read that found a problem (a Secret missing, the database unreachable) is
repeated every ACTIVE seconds so that the fix is noticed soon, and so is the probe while a
migration runs (its progress is reported); a read that found all well stays good for STEADY,
installs included (a fleet created at once would otherwise probe its databases every ACTIVE
seconds each).
"""

from __future__ import annotations

from retool_operator.core.models import RetoolDeploymentStatus, Step

PROBE_TTL_ACTIVE_SECONDS = 2.0
PROBE_TTL_STEADY_SECONDS = 60.0
SECRETS_TTL_ACTIVE_SECONDS = 2.0
SECRETS_TTL_STEADY_SECONDS = 30.0
# Whether the cluster serves a CRD's kind (the Gateway API's HTTPRoute): asked again this often,
# so installing the CRDs is noticed within a resync of the RetoolDeployments that want one.
DISCOVERY_TTL_SECONDS = 30.0


def freshness(
    status: RetoolDeploymentStatus,
    steady: float,
    active: float,
    *,
    spec_version: str,
    ok: bool,
    migrating: bool = False,
) -> float:
    """How many seconds a cached read may be old for this reconcile (0: read again now)."""
    preflight = status.upgrade is not None and status.upgrade.step is Step.PREFLIGHT
    installed = status.current_version is not None
    pending = status.upgrade is None and installed and status.current_version != spec_version
    if preflight or pending:
        return 0.0
    if not ok or migrating:
        return active
    return steady


def secrets_ttl(status: RetoolDeploymentStatus, *, spec_version: str, complete: bool) -> float:
    """How old a Secret read may be; COMPLETE when it found every Secret and key."""
    return freshness(
        status,
        SECRETS_TTL_STEADY_SECONDS,
        SECRETS_TTL_ACTIVE_SECONDS,
        spec_version=spec_version,
        ok=complete,
    )


def probe_ttl(status: RetoolDeploymentStatus, *, spec_version: str, reachable: bool) -> float:
    """How old a database probe may be; REACHABLE when it connected."""
    migrating = status.upgrade is not None and status.upgrade.step is Step.MIGRATING_DATABASE
    return freshness(
        status,
        PROBE_TTL_STEADY_SECONDS,
        PROBE_TTL_ACTIVE_SECONDS,
        spec_version=spec_version,
        ok=reachable,
        migrating=migrating,
    )
