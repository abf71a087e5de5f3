"""docs/crd-reference.md is what the models generate, and covers every field."""

from __future__ import annotations

from pathlib import Path

from retool_operator.core.reference import render_reference

REFERENCE = Path(__file__).resolve().parents[2] / "docs" / "crd-reference.md"


def test_committed_reference_is_current() -> None:
    """A model change without `make docs` fails here."""
    assert REFERENCE.read_text() == render_reference(), (
        "docs/crd-reference.md is stale: run `make docs`"
    )


def test_reference_names_every_public_field() -> None:
    """A sample of the API's fields (docs/design.md), nested ones included, each with a row."""
    text = render_reference()
    for path in (
        "spec.version",
        "spec.database.passwordSecretRef.key",
        "spec.api.autoscaling.targetCPUUtilizationPercentage",
        "spec.jobsRunner.replicas",
        "spec.upgrade.migrationTimeout",
        "status.upgrade.savedReplicas",
        "status.history[].result",
        "status.conditions[].lastTransitionTime",
        "status.database.blockedQueries",
    ):
        assert f"| `{path}`" in text, path
