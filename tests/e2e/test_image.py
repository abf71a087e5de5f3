"""The Dockerfile's install steps, performed for real (no container engine runs here).

The build stage's COPY and RUN lines are read from the Dockerfile and carried out in a scratch
directory: a fresh virtualenv, `pip install .`, then the image's entry point is started against
the test cluster and its health and metrics endpoints must answer.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

from tests.support.pgserver import free_port
from tests.support.waiting import wait_for

REPO = Path(__file__).resolve().parents[2]
PREFIX = "/opt/retool-operator"


def _build_stage() -> tuple[list[list[str]], list[str]]:
    """COPY sources and the RUN commands, in order, of the Dockerfile's first (build) stage."""
    text = (REPO / "Dockerfile").read_text().replace("\\\n", " ")
    stage = text.split("\nFROM ", 2)[1] if text.startswith("#") else text
    stage = stage.split("\nFROM ")[0]
    copies = [line.split()[1:-1] for line in stage.splitlines() if line.startswith("COPY ")]
    runs = [line[len("RUN ") :] for line in stage.splitlines() if line.startswith("RUN ")]
    assert runs
    return copies, runs


def test_dockerfile_install_steps_give_a_working_entry_point(
    tmp_path: Path, kubeconfig: str, kube_api: object, namespace: str
) -> None:
    """Install as the image does, then run `retool-operator run` and scrape it."""
    copies, runs = _build_stage()
    context = tmp_path / "src"
    context.mkdir()
    for sources in copies:
        for source in sources:
            # Every COPY of the build stage keeps the path it has in the repository.
            target = context / source
            target.parent.mkdir(parents=True, exist_ok=True)
            if (REPO / source).is_dir():
                shutil.copytree(REPO / source, target, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy(REPO / source, target)
    prefix = tmp_path / "venv"
    for run in runs:
        command = run.replace(PREFIX, str(prefix))
        command = re.sub(r"^python ", f"{sys.executable} ", command)
        subprocess.run(
            ["bash", "-c", command], cwd=context, check=True, timeout=600, capture_output=True
        )
    entry = prefix / "bin" / "retool-operator"
    version = subprocess.run([str(entry), "version"], capture_output=True, text=True, check=True)
    assert version.stdout.strip() == "0.1.0"
    metrics, health = free_port(), free_port()
    env = {**os.environ, "KUBECONFIG": kubeconfig, "PYTHONDONTWRITEBYTECODE": "1"}
    process = subprocess.Popen(
        [
            str(entry),
            "run",
            "--namespace",
            namespace,
            "--metrics-port",
            str(metrics),
            "--health-port",
            str(health),
            "--log-format",
            "json",
        ],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(lambda: _answers(f"http://127.0.0.1:{health}/healthz"), 60, "/healthz")
        # Readiness is its own endpoint, on the port the metrics Service routes to.
        ready = wait_for(lambda: _answers(f"http://127.0.0.1:{metrics}/readyz"), 60, "/readyz")
        assert ready == "ok\n"
        assert "retool_operator_reconcile_total" in (
            _answers(f"http://127.0.0.1:{metrics}/metrics") or ""
        )
    finally:
        process.terminate()
        output = process.communicate(timeout=20)[0].decode()
    assert '"message"' in output, output[-2000:]  # JSON log lines


def _answers(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (loopback URL)
            return str(response.read().decode())
    except OSError:
        return None
