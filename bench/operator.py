"""The operator under test: a real `retool-operator run` process, measured from outside.

CPU time and resident memory come from /proc through psutil; a sampler thread records RSS a few
times a second, and the kernel's own high-water mark (VmHWM) gives the exact peak. The operator's
Prometheus endpoint gives its write counter and upgrade-step histogram.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil

from bench import kube
from tests.support.pgserver import free_port

REPO = kube.REPO
OPERATOR = REPO / ".venv" / "bin" / "retool-operator"
PY_SPY = REPO / ".venv" / "bin" / "py-spy"
MB = 1_000_000  # decimal megabytes, as the issue states its memory target


@dataclass(frozen=True)
class Usage:
    """The operator's CPU seconds (user + system) and memory at one instant."""

    monotonic: float
    cpu_seconds: float
    rss_bytes: int
    peak_rss_bytes: int  # VmHWM: the highest RSS since the process started


@dataclass(frozen=True)
class Window:
    """What the operator used between two instants."""

    seconds: float
    cpu_seconds: float
    rss_end_mb: float
    rss_max_sampled_mb: float
    peak_rss_mb: float

    @property
    def cpu_percent(self) -> float:
        """CPU as a percentage of one core."""
        return 100.0 * self.cpu_seconds / self.seconds if self.seconds > 0 else 0.0


class OperatorProcess:
    """Start, measure and stop one operator watching all namespaces."""

    def __init__(self, kubeconfig: Path, log_path: Path, *extra: str) -> None:
        self.kubeconfig = kubeconfig
        self.log_path = log_path
        self.extra = extra
        self.metrics_port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self._ps: psutil.Process | None = None
        self._samples: list[tuple[float, int]] = []
        self._sampling = threading.Event()
        self._sampler: threading.Thread | None = None

    @property
    def pid(self) -> int:
        """The operator's process id."""
        assert self.process is not None
        return self.process.pid

    def start(self, timeout: float = 60) -> None:
        """Start the operator; return once its metrics endpoint answers."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), "PYTHONUNBUFFERED": "1"}
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    str(OPERATOR),
                    "run",
                    "--all-namespaces",
                    "--metrics-port",
                    str(self.metrics_port),
                    "--health-port",
                    "0",
                    *self.extra,
                ],
                cwd=REPO,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self._ps = psutil.Process(self.process.pid)
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"the operator exited with {self.process.returncode}")
            try:
                self.metrics()
                break
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise
                time.sleep(0.2)
        self._sampling.set()
        self._sampler = threading.Thread(target=self._sample, daemon=True, name="rss-sampler")
        self._sampler.start()

    def _sample(self) -> None:
        while self._sampling.is_set() and self._ps is not None:
            try:
                self._samples.append((time.monotonic(), self._ps.memory_info().rss))
            except psutil.Error:
                return
            time.sleep(0.25)

    def usage(self) -> Usage:
        """CPU seconds and memory now."""
        assert self._ps is not None
        with self._ps.oneshot():
            times = self._ps.cpu_times()
            rss = int(self._ps.memory_info().rss)
        return Usage(time.monotonic(), times.user + times.system, rss, _peak_rss(self.pid))

    def window(self, since: Usage) -> Window:
        """What the operator used from SINCE until now."""
        now = self.usage()
        sampled = [rss for at, rss in self._samples if at >= since.monotonic]
        return Window(
            seconds=now.monotonic - since.monotonic,
            cpu_seconds=now.cpu_seconds - since.cpu_seconds,
            rss_end_mb=now.rss_bytes / MB,
            rss_max_sampled_mb=max([*sampled, now.rss_bytes]) / MB,
            peak_rss_mb=now.peak_rss_bytes / MB,
        )

    def metrics(self) -> str:
        """The operator's /metrics page."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            return str(response.read().decode())

    def samples(self) -> dict[str, list[tuple[dict[str, str], float]]]:
        """The operator's metrics, parsed."""
        return kube.parse_prometheus(self.metrics())

    def reconciles(self) -> float:
        """retool_operator_reconcile_total, all results."""
        found = self.samples().get("retool_operator_reconcile_total", [])
        return sum(value for _, value in found)

    def writes(self) -> dict[str, float]:
        """retool_operator_api_writes_total by `kind verb`."""
        found = self.samples().get("retool_operator_api_writes_total", [])
        return {f"{labels['kind']} {labels['verb']}": value for labels, value in found}

    @contextlib.contextmanager
    def profiled(self, path: Path | None) -> Iterator[None]:
        """Sample the operator with py-spy (GIL holders only, 100 Hz) while the block runs;
        write the folded stacks to PATH and a summary to PATH with `.top.txt`. None: no-op."""
        if path is None:
            yield
            return
        spy = subprocess.Popen(
            [
                str(PY_SPY),
                "record",
                "--pid",
                str(self.pid),
                "--format",
                "raw",
                "--gil",
                "--rate",
                "100",
                "--output",
                str(path),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            yield
        finally:
            spy.send_signal(signal.SIGINT)
            try:
                spy.wait(30)
            except subprocess.TimeoutExpired:
                spy.kill()
            if path.exists():
                path.with_suffix(".top.txt").write_text(summarise_profile(path))

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it lingers; stop sampling."""
        self._sampling.clear()
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

    def __enter__(self) -> OperatorProcess:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def _peak_rss(pid: int) -> int:
    """VmHWM of PID in bytes (0 where /proc does not say)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def delta(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    """AFTER minus BEFORE, key by key, zero changes dropped."""
    changed = {key: value - before.get(key, 0.0) for key, value in after.items()}
    return {key: value for key, value in sorted(changed.items()) if value}


def _frame_name(frame: str) -> str:
    """`function (file.py:line)` -> `function (file.py)`."""
    head, _, rest = frame.partition(" (")
    return f"{head} ({rest.rsplit(':', 1)[0]})" if rest else head


def summarise_profile(path: Path, top: int = 30) -> str:
    """The functions with the most samples in a py-spy raw (folded) profile: on the stack
    (inclusive) and at the top of it (self)."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [_frame_name(f) for f in stack.split(";")]
        for name in set(frames):
            inclusive[name] += count
        own[frames[-1]] += count
    total = max(total, 1)
    lines = [f"{total} samples (GIL held, 100 Hz)", "", "inclusive:"]
    lines += [f"{100 * n / total:6.1f}%  {name}" for name, n in inclusive.most_common(top)]
    lines += ["", "self:"]
    lines += [f"{100 * n / total:6.1f}%  {name}" for name, n in own.most_common(top)]
    return "\n".join(lines) + "\n"
