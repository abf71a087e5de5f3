"""The Argo CD health check (deploy/argocd/health.lua), run as Argo CD runs an argocd-cm check.

hack/tools/argocd-lua runs it in gopher-lua (the Lua 5.1 VM Argo CD embeds, at the version Argo CD
uses) with exactly the libraries Argo CD opens for health scripts from argocd-cm: base, table,
package and a reduced os (time, date); no string, no math. A check that uses anything else
passes nowhere here, as it would fail in Argo CD.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support.tools import tool

HEALTH_LUA = Path(__file__).resolve().parents[2] / "deploy" / "argocd" / "health.lua"


def run_lua(script: Path, obj: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    """Run SCRIPT with `obj` set, as Argo CD does; the runner prints {status, message}."""
    return subprocess.run(
        [str(tool("argocd-lua")), str(script)],
        input=json.dumps(obj),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def health(obj: dict[str, Any]) -> tuple[str, str]:
    """The health Argo CD would show for OBJ."""
    result = run_lua(HEALTH_LUA, obj)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    return str(out["status"]), str(out["message"])


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
        pytest.param(
            rtd(observed=0, generation=1), "Progressing", "latest spec", id="status-default"
        ),
        pytest.param(
            rtd(conditions=READY, paused=True), "Healthy", "Ready says", id="paused-ready"
        ),
        pytest.param(
            rtd(
                conditions={"Ready": ("False", "Paused"), "Reconciling": ("True", "Paused")},
                paused=True,
            ),
            "Suspended",
            "paused",
            id="paused-pending",
        ),
    ],
)
def test_health(obj: dict[str, Any], expected: str, fragment: str) -> None:
    """Each status maps to the Argo CD health a person would expect."""
    status, message = health(obj)
    assert status == expected
    assert fragment in message


@pytest.mark.parametrize(
    "call",
    ['string.format("%s", "x")', 'string.upper("x")', "math.max(1, 2)", 'os.getenv("HOME")'],
)
def test_a_call_outside_argo_cds_libraries_fails(tmp_path: Path, call: str) -> None:
    """string, math and most of os are not there: a check using them errors, as in Argo CD."""
    script = tmp_path / "check.lua"
    script.write_text(f'return {{status = "Healthy", message = {call}}}\n')
    result = run_lua(script, rtd())
    assert result.returncode == 1
    assert "attempt to" in result.stderr  # index or call a nil value


def test_the_libraries_argo_cd_opens_work(tmp_path: Path) -> None:
    """base, table and the safe os (as a module) are there: the runner is not simply broken."""
    script = tmp_path / "check.lua"
    script.write_text(
        'local os = require("os")\n'
        'local t = {"a", "b"}\n'
        "table.insert(t, tostring(os.time() > 0))\n"
        'return {status = "Healthy", message = table.concat(t, ",") .. type(pairs)}\n'
    )
    result = run_lua(script, rtd())
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"status": "Healthy", "message": "a,b,truefunction"}
