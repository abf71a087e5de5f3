"""The Go tools the tests run, built by `make tools` (hack/build-binaries.sh) and cached by version.

A missing tool fails the test that needs it (never a skip): `make unit` and `make e2e` build them.
"""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# The tool, and the variable of hack/versions.sh naming its directory.
_DIRS = {
    "helm": "HELM_BIN_DIR",
    "kube-score": "KUBE_SCORE_BIN_DIR",
    "kstatus": "KSTATUS_BIN_DIR",
    "argocd-lua": "ARGOCD_LUA_BIN_DIR",
    "kubectl": "K8S_BIN_DIR",
}


@functools.cache
def tool(name: str) -> Path:
    """The path of a built tool; fails the test when it has not been built."""
    variable = _DIRS[name]
    directory = subprocess.run(
        ["bash", "-c", f'source hack/versions.sh && printf %s "${variable}"'],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    path = Path(directory) / name
    if not path.is_file():
        pytest.fail(f"{path} is missing: run `make tools` (or `make binaries` for kubectl)")
    return path
