"""A Warning Event says once that the operator needs a person, with the Stalled reason."""

from __future__ import annotations

from collections.abc import Sequence

from retool_operator.core.conditions import Reason
from retool_operator.core.models import ALLOW_DOWNGRADE_ANNOTATION
from retool_operator.core.statemachine import EventRecord
from tests.unit.simulator import Cluster, installed, new_run


def _warnings(run_events: Sequence[EventRecord]) -> list[tuple[str, str]]:
    return [(e.type, e.reason) for e in run_events]


def test_refused_downgrade_is_announced_once() -> None:
    """DowngradeRefused: one Warning Event naming the override annotation, then silence."""
    run = installed("3.196.1-stable")
    run.set_version("3.148.0-stable")
    run.settle(5)
    refused = [e for e in run.events if e.reason == Reason.DOWNGRADE_REFUSED]
    assert len(refused) == 1
    assert refused[0].type == "Warning"
    assert ALLOW_DOWNGRADE_ANNOTATION in refused[0].message


def test_unreachable_database_at_preflight_is_announced_once() -> None:
    """DatabaseUnreachable at Preflight: one Warning, however many reconciles wait."""
    run = installed("3.148.0-stable")
    run.cluster.database_reachable = False
    run.set_version("3.196.1-stable")
    run.settle(6)
    assert _warnings(run.events).count(("Warning", Reason.DATABASE_UNREACHABLE)) == 1


def test_missing_secret_at_install_is_announced_once() -> None:
    """SecretMissing before anything exists: one Warning naming the Secret."""
    run = new_run("3.148.0-stable", cluster=Cluster(missing_secrets=("Secret retool-secrets",)))
    run.settle(4)
    missing = [e for e in run.events if e.reason == Reason.SECRET_MISSING]
    assert len(missing) == 1
    assert "Secret retool-secrets" in missing[0].message


def test_a_new_blocker_after_another_is_announced_too() -> None:
    """Refused downgrade, then a database outage once allowed: each reason said once."""
    run = installed("3.196.1-stable")
    run.set_version("3.148.0-stable")
    run.settle(3)
    run.cluster.database_reachable = False
    run.annotate(ALLOW_DOWNGRADE_ANNOTATION, "true")
    run.settle(3)
    reasons = [reason for kind, reason in _warnings(run.events) if kind == "Warning"]
    assert reasons.count(Reason.DOWNGRADE_REFUSED) == 1
    assert reasons.count(Reason.DATABASE_UNREACHABLE) == 1
