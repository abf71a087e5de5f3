"""The operator under test (`tests.support.operator_process`), measured from outside.

CPU time and resident memory come from /proc through psutil; a sampler thread records RSS a few
times a second, and the kernel's own high-water mark (VmHWM) gives the exact peak. The operator's
Prometheus endpoint gives its write counter and upgrade-step histogram.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil

from bench import kube
from tests.support.operator_process import OperatorProcess

REPO = kube.REPO
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


class MeasuredOperator(OperatorProcess):
    """One operator watching all namespaces, its CPU and memory sampled while it runs."""

    def __init__(self, kubeconfig: Path, log_path: Path, *extra: str) -> None:
        super().__init__(kubeconfig, None, log_path, *extra)
        self._ps: psutil.Process | None = None
        self._samples: list[tuple[float, int]] = []
        self._sampling = threading.Event()
        self._sampler: threading.Thread | None = None

    def start(self, timeout: float = 60) -> None:
        """Start the operator; return once its metrics endpoint answers; start sampling."""
        super().start(timeout)
        self._ps = psutil.Process(self.pid)
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
        """Stop sampling; SIGTERM, then SIGKILL if it lingers."""
        self._sampling.clear()
        super().stop()

    def __enter__(self) -> MeasuredOperator:
        self.start()
        return self


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
