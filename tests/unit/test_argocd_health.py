"""The Argo CD health check (deploy/argocd/health.lua), run in a real Lua VM (lupa)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from lupa import LuaRuntime

HEALTH_LUA = Path(__file__).resolve().parents[2] / "deploy" / "argocd" / "health.lua"


def health(obj: dict[str, Any]) -> tuple[str, str]:
    """Run the check as Argo CD does: `obj` is a global of nested tables; it returns a table."""
    lua = LuaRuntime(unpack_returned_tuples=True)

    def table(value: Any) -> Any:
        if isinstance(value, dict):
            return lua.table_from({k: table(v) for k, v in value.items()})
        if isinstance(value, list):
            return lua.table_from([table(v) for v in value])
        return value

    lua.globals().obj = table(obj)
    result = lua.execute(HEALTH_LUA.read_text())
    return str(result["status"]), str(result["message"])


def rtd(
    *,
    generation: int = 3,
    observed: int | None = 3,
    paused: bool = False,
    conditions: dict[str, tuple[str, str]] | None = None,
    upgrade: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A RetoolDeployment with the given status."""
    status: dict[str, Any] = {
        "conditions": [
            {"type": kind, "status": value, "reason": reason, "message": f"{kind} says {reason}"}
            for kind, (value, reason) in (conditions or {}).items()
        ]
    }
    if observed is not None:
        status["observedGeneration"] = observed
    if upgrade is not None:
        status["upgrade"] = upgrade
    return {
        "metadata": {"name": "retool", "generation": generation},
        "spec": {"version": "3.196.1-stable", "paused": paused},
        "status": status,
    }


READY = {"Ready": ("True", "AllComponentsReady"), "Stalled": ("False", "NoBlocker")}


@pytest.mark.parametrize(
    ("obj", "expected", "fragment"),
    [
        pytest.param(rtd(conditions=READY), "Healthy", "Ready says", id="ready"),
        pytest.param(
            rtd(
                conditions={
                    "Ready": ("False", "Upgrading"),
                    "Reconciling": ("True", "MigratingDatabase"),
                },
                upgrade={"from": "3.148.0", "to": "3.196.1", "step": "MigratingDatabase"},
            ),
            "Progressing",
            "MigratingDatabase",
            id="upgrading",
        ),
        pytest.param(
            rtd(
                conditions={
                    "Ready": ("False", "UpgradeFailed"),
                    "Stalled": ("True", "UpgradeFailed"),
                }
            ),
            "Degraded",
            "UpgradeFailed",
            id="rolled-back",
        ),
        pytest.param(
            rtd(
                conditions={
                    "Ready": ("False", "DowngradeRefused"),
                    "Stalled": ("True", "DowngradeRefused"),
                }
            ),
            "Degraded",
            "DowngradeRefused",
            id="downgrade-refused",
        ),
        pytest.param(
            rtd(conditions={"Ready": ("False", "Installing")}),
            "Progressing",
            "Installing",
            id="installing",
        ),
        pytest.param(
            rtd(conditions=READY, observed=2), "Progressing", "latest spec", id="stale-generation"
        ),
        pytest.param(rtd(observed=None), "Progressing", "latest spec", id="no-status-yet"),
        pytest.param(rtd(conditions=READY, paused=True), "Suspended", "paused", id="paused"),
    ],
)
def test_health(obj: dict[str, Any], expected: str, fragment: str) -> None:
    """Each status maps to the Argo CD health a person would expect."""
    status, message = health(obj)
    assert status == expected
    assert fragment in message
