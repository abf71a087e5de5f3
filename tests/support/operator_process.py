"""The operator as the end-to-end tests and the benchmarks run it: a real `retool-operator run`
process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.support import prometheus
from tests.support.pgserver import free_port
from tests.support.waiting import wait_for

REPO = Path(__file__).resolve().parents[2]
API_WRITES = "retool_operator_api_writes_total"


class OperatorProcess:
    """Start, stop, SIGKILL and restart one operator watching one namespace (None: all)."""

    def __init__(
        self, kubeconfig: str | Path, namespace: str | None, log_path: Path, *extra: str
    ) -> None:
        self.kubeconfig = str(kubeconfig)
        self.namespace = namespace
        self.log_path = log_path
        self.extra = extra
        self.metrics_port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def pid(self) -> int:
        """The operator's process id."""
        assert self.process is not None
        return self.process.pid

    def start(self, timeout: float = 90) -> None:
        """Start the operator and wait until its metrics endpoint answers."""
        assert self.process is None or self.process.poll() is not None, "already running"
        self.starts += 1
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        scope = ["--namespace", self.namespace] if self.namespace else ["--all-namespaces"]
        log = self.log_path.open("ab")
        log.write(f"\n===== start #{self.starts} =====\n".encode())
        log.flush()
        env = {**os.environ, "KUBECONFIG": self.kubeconfig, "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "retool_operator",
                "run",
                *scope,
                "--metrics-port",
                str(self.metrics_port),
                "--health-port",
                "0",
                *(["--verbose"] if os.environ.get("RETOOL_TEST_OPERATOR_VERBOSE") else []),
                *self.extra,
            ],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        wait_for(self._answers, timeout, "the operator's metrics endpoint")

    def _answers(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(
                f"the operator exited with {self.process.returncode}:\n{self.log_tail()}"
            )
        try:
            url = f"http://127.0.0.1:{self.metrics_port}/metrics"
            with urllib.request.urlopen(url, timeout=1):
                return True
        except OSError:
            return False

    def metrics(self) -> str:
        """The operator's /metrics page."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            return str(response.read().decode())

    def samples(self) -> prometheus.Samples:
        """The operator's metrics, parsed: [(labels, value)] by sample name."""
        return prometheus.samples(self.metrics())

    def metric(self, metric_name: str, /, **labels: str) -> float | None:
        """The value of the first sample METRIC_NAME{LABELS...} (more labels allowed), if any."""
        return prometheus.first(self.metrics(), metric_name, **labels)

    def metric_sum(self, name: str) -> float:
        """The sum of every sample of one metric (0 when absent)."""
        return prometheus.total(self.metrics(), name)

    def settled_writes(self, timeout: float = 30) -> float:
        """The operator's API write count once it has stopped moving for a second."""

        def unchanged() -> tuple[float] | None:
            writes = self.metric_sum(API_WRITES)
            # An observation window: the last writes of a rollout may still be landing.
            time.sleep(1.0)
            return (writes,) if self.metric_sum(API_WRITES) == writes else None

        (settled,) = wait_for(unchanged, timeout, "the operator's writes to settle")
        return settled

    def kill(self) -> None:
        """SIGKILL: no clean-up, as when a node dies."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        """SIGTERM and wait; SIGKILL if it lingers."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.kill()

    def restart(self) -> None:
        """SIGKILL, then start again."""
        self.kill()
        self.start()

    def log_tail(self, lines: int = 60) -> str:
        """The end of the operator's log (for failure messages)."""
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def __enter__(self) -> OperatorProcess:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()
