"""Tables from a results dict: plain text for the terminal, Markdown for docs/benchmarks.md, and a
description of the machine the figures came from."""

from __future__ import annotations

import importlib.metadata
import json
import math
import os
import platform
import re
import shutil
import subprocess
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from bench.kube import REPO

RESULTS_DIR = REPO / "bench" / "results"
DOCS_FILE = REPO / "docs" / "benchmarks.md"
DOCS_RESULTS = REPO / "docs" / "benchmarks"  # the raw figures behind docs/benchmarks.md
Row = tuple[str, str, str, str, str, str]  # measure, operator, peer, ratio, target, met


# --- the machine ----------------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _pinned_versions() -> dict[str, str]:
    """Versions of the local control plane, as hack/versions.sh pins them."""
    text = (REPO / "hack" / "versions.sh").read_text()
    found = re.findall(r'^(\w+_VERSION)="\$\{\w+:-([^}]+)\}"', text, flags=re.MULTILINE)
    return {str(key): os.environ.get(key) or str(value) for key, value in found}


def _git(*args: str) -> str:
    result = subprocess.run(
        ["git", *args], cwd=REPO, capture_output=True, text=True, check=False, timeout=30
    )
    return result.stdout.strip()


def machine(kubernetes_version: str) -> dict[str, Any]:
    """Cores, memory, versions: what the figures depend on."""
    pinned = _pinned_versions()
    dirty = bool(_git("status", "--porcelain", "--untracked-files=no"))
    return {
        "cores": os.cpu_count(),
        "cpu": _cpu_model(),
        "memory_gb": round(psutil.virtual_memory().total / 1e9, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "kopf": importlib.metadata.version("kopf"),
        "kubernetes_client": importlib.metadata.version("kubernetes"),
        "operator": importlib.metadata.version("retool-operator"),
        "kubernetes": kubernetes_version,
        "etcd": pinned.get("ETCD_VERSION", "?"),
        "kwok": pinned.get("KWOK_VERSION", "?"),
        "commit": _git("rev-parse", "--short", "HEAD") + (" (modified)" if dirty else ""),
    }


# --- formatting ----------------------------------------------------------------------------------


def _num(value: float | None, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:,.{digits}f}"


def _ms(value: float | None) -> str:
    return "-" if value is None else _num(value * 1000.0, 1)


def _ratio(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.2f}x"


def _met(ok: bool | None) -> str:
    return "-" if ok is None else ("yes" if ok else "NO")


def _check(value: float | None, test: Callable[[float], bool]) -> bool | None:
    if value is None or math.isnan(value):
        return None
    return test(value)


def _within(value: float | None, limit: float | None) -> bool | None:
    if limit is None:
        return None
    return _check(value, lambda v: v <= limit)


def _reaction_rows(results: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    targets = {"p50": 1.5, "p99": 2.0}
    for count, figures in sorted(results.get("reaction", {}).items(), key=lambda kv: int(kv[0])):
        label = f"{int(count):,} RTD" + ("" if int(count) == 1 else "s")
        for q in ("p50", "p90", "p99"):
            ratio = figures["ratio"][q]
            limit = targets.get(q)
            rows.append(
                (
                    f"reaction {q} (ms), {label}",
                    _ms(figures["operator"][q]),
                    _ms(figures["peer"][q]),
                    _ratio(ratio),
                    f"<= {limit}x peer" if limit else "",
                    _met(_within(ratio, limit)) if limit else "",
                )
            )
        from_request = figures.get("from_request")
        if from_request:
            operator_p50 = from_request["operator"]["p50"]
            peer_p50 = from_request["peer"]["p50"]
            rows.append(
                (
                    f"  same from PATCH sent, p50 (ms), {label}",
                    _ms(operator_p50),
                    _ms(peer_p50),
                    _ratio(operator_p50 / peer_p50 if peer_p50 else math.nan),
                    "",
                    "",
                )
            )
    return rows


def _fleet_rows(results: dict[str, Any], largest: int) -> list[Row]:
    rows: list[Row] = []
    for count, figures in sorted(results.get("fleet", {}).items(), key=lambda kv: int(kv[0])):
        operator = figures.get("operator") or {}
        peer = figures.get("peer") or {}
        ratio = figures.get("ratio")
        at_target = int(count) == largest
        rows.append(
            (
                f"fleet {int(count):,}: all Ready (s)",
                _num(operator.get("all_ready_seconds")),
                _num(peer.get("all_ready_seconds")),
                _ratio(ratio),
                "<= 2x peer" if at_target else "",
                _met(_check(ratio, lambda r: r <= 2.0)) if at_target else "",
            )
        )
        rows.append(
            (
                f"fleet {int(count):,}: operator CPU (s) / peak RSS (MB)",
                f"{_num(operator.get('operator_cpu_seconds'))} / "
                f"{_num(operator.get('operator_peak_rss_mb'))}",
                "",
                "",
                "",
                "",
            )
        )
    return rows


def _idle_rows(results: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    idle = results.get("idle")
    if not idle:
        return rows
    label = f"idle, {int(idle['count']):,} RTDs, {idle['seconds']:.0f} s"
    writes = idle["operator_writes_per_minute"]
    server = idle["apiserver_operator_resource_writes_per_minute"]
    cpu = idle["operator_cpu_percent"]
    rss = idle["operator_rss_mb"]
    rows += [
        (
            f"{label}: operator writes/min (own metric)",
            _num(writes, 2),
            "",
            "",
            "0",
            _met(writes == 0),
        ),
        (
            f"{label}: API-server writes/min to the operator's kinds",
            _num(server, 2),
            "",
            "",
            "0",
            _met(server == 0),
        ),
        (f"{label}: operator CPU (% of a core)", _num(cpu, 2), "", "", "< 2%", _met(cpu < 2.0)),
        (f"{label}: operator RSS (MB)", _num(rss), "", "", "<= 150 MB", _met(rss <= 150.0)),
    ]
    return rows


def _upgrade_rows(results: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    for strategy, figures in results.get("upgrade", {}).items():
        overhead = figures["max_step_overhead_seconds"]
        rows.append(
            (
                f"upgrade {strategy}: max step time beyond known delays (s)",
                _num(overhead, 2),
                "",
                "",
                "<= 1 s",
                _met(overhead <= 1.0),
            )
        )
        rows.append(
            (
                f"upgrade {strategy}: max operator reaction in a step (s)",
                _num(figures["max_step_reaction_seconds"], 3),
                "",
                "",
                "",
                "",
            )
        )
        rows.append(
            (
                f"upgrade {strategy}: whole upgrade (s) / of which known delays (s)",
                f"{_num(figures['upgrade_seconds'], 2)} / {_num(figures['known_delay_seconds'])}",
                "",
                "",
                "",
                "",
            )
        )
        dark = figures["seconds_without_ready_endpoint"]
        rolling = strategy == "RollingUpdate"
        rows.append(
            (
                f"upgrade {strategy}: seconds without a ready api endpoint",
                _num(dark, 2),
                "",
                "",
                "0 s" if rolling else "(stops the api)",
                _met(dark == 0) if rolling else "",
            )
        )
    return rows


def _scale_rows(results: dict[str, Any], largest: int) -> list[Row]:
    rows: list[Row] = []
    for count, figures in sorted(results.get("scale", {}).items(), key=lambda kv: int(kv[0])):
        at_target = int(count) == largest
        rss = figures["operator_rss_mb"]
        cpu = figures["operator_cpu_percent"]
        rows.append(
            (
                f"scale {int(count):,} RTDs: RSS (MB) / idle CPU (%), {figures['seconds']:.0f} s",
                f"{_num(rss)} / {_num(cpu, 2)}",
                "",
                "",
                "<= 150 MB / < 2%" if at_target else "",
                _met(rss <= 150.0 and cpu < 2.0) if at_target else "",
            )
        )
    return rows


def rows(data: dict[str, Any]) -> list[Row]:
    """The summary table of one run."""
    results = data["results"]
    largest = int(data["config"]["fleet"])
    return [
        *_reaction_rows(results),
        *_fleet_rows(results, largest),
        *_idle_rows(results),
        *_upgrade_rows(results),
        *_scale_rows(results, largest),
    ]


HEADER: Row = ("measure", "operator", "peer", "ratio", "target", "met")


def text_table(table: Sequence[Row]) -> str:
    """Fixed-width columns for the terminal."""
    widths = [max(len(row[i]) for row in [HEADER, *table]) for i in range(len(HEADER))]
    lines = []
    for index, row in enumerate([HEADER, *table]):
        cells = [
            cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row)
        ]
        lines.append("  ".join(cells).rstrip())
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(header: Sequence[str], table: Sequence[Sequence[str]]) -> str:
    """A GitHub Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in table]
    return "\n".join(lines)


def step_rows(data: dict[str, Any]) -> list[tuple[str, ...]]:
    """One row per upgrade step: strategy, step and its figures."""
    found: list[tuple[str, ...]] = []
    for strategy, figures in data["results"].get("upgrade", {}).items():
        for step in figures["steps"]:
            found.append(
                (
                    strategy,
                    step["step"],
                    _num(step["seconds"], 3),
                    _num(step["metric_seconds"], 3),
                    _num(step["known_delay"]),
                    _num(step["overhead"], 3),
                    _num(step["reaction"], 3),
                    _num(step["act"], 3),
                )
            )
    return found


STEP_HEADER = (
    "strategy",
    "step",
    "seconds (Events)",
    "seconds (metric)",
    "known delay",
    "beyond delay",
    "operator reaction",
    "decision to first child change",
)


def text(data: dict[str, Any]) -> str:
    """Everything a terminal shows after a run."""
    parts = [text_table(rows(data))]
    steps = step_rows(data)
    if steps:
        widths = [max(len(r[i]) for r in [STEP_HEADER, *steps]) for i in range(len(STEP_HEADER))]
        lines = ["", "upgrade steps (seconds):"]
        for row in [STEP_HEADER, *steps]:
            lines.append("  ".join(c.rjust(widths[i]) for i, c in enumerate(row)).rstrip())
        parts.append("\n".join(lines))
    parts.append("\n" + phases_line(data))
    parts.append(f"wall-clock time of the run: {data['wall_seconds']:.0f} s")
    return "\n".join(parts)


def phases_line(data: dict[str, Any]) -> str:
    """How long each phase took and the machine's load average after it."""
    parts = []
    for name, phase in data.get("phases", {}).items():
        load = phase["load_average_1_5_15"]
        parts.append(f"{name} {phase['seconds']:.0f} s (load {load[0]:.1f})")
    cores = data.get("machine", {}).get("cores")
    return f"phases: {', '.join(parts)}; 1-min load average after each, on {cores} cores"


# --- files ---------------------------------------------------------------------------------------


def results_path(mode: str, started: datetime) -> Path:
    """Where a run's raw figures go."""
    return RESULTS_DIR / f"{started.strftime('%Y%m%dT%H%M%SZ')}-{mode}.json"


def save(data: dict[str, Any], path: Path) -> None:
    """Write the raw figures (again, as the run goes on)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, sort_keys=False, default=str) + "\n")


def latest() -> Path:
    """The newest results file."""
    files = sorted(RESULTS_DIR.glob("*.json"))
    if not files:
        raise FileNotFoundError(f"no results in {RESULTS_DIR}: run `python -m bench.run` first")
    return files[-1]


DOC_INTRO = """\
# Benchmarks

Generated by `python -m bench.run --docs` from `bench/results/{source}` (kept as \
`docs/benchmarks/{source}`) ({mode} run, {finished}); see `bench/README.md` for what each \
figure measures and how, and `docs/performance.md` for what the profiles showed and what \
limits remain. Do not edit by hand: run the bench again.

Every figure comes from one machine shared by the operator, the whole control plane (etcd,
kube-apiserver, kube-controller-manager, kube-scheduler, kwok) and the bench itself. The peer is
Kubernetes' own controllers doing the same job without the operator, on the same machine in the
same run. Pods are kwok's: they are scheduled and become Ready without containers.
"""


def markdown(data: dict[str, Any], source: Path) -> str:
    """docs/benchmarks.md for one run."""
    info = data["machine"]
    machine_rows = [
        ("cores", str(info["cores"])),
        ("CPU", info["cpu"]),
        ("memory", f"{info['memory_gb']} GB"),
        ("OS", info["os"]),
        ("Kubernetes", f"{info['kubernetes']} (etcd {info['etcd']}, kwok {info['kwok']})"),
        ("Python", info["python"]),
        ("kopf / kubernetes client", f"{info['kopf']} / {info['kubernetes_client']}"),
        ("retool-operator", f"{info['operator']} at {info['commit']}"),
    ]
    config = data["config"]
    parts = [
        DOC_INTRO.format(source=source.name, mode=data["mode"], finished=data["finished"]),
        "## Machine\n",
        markdown_table(("", ""), machine_rows),
        "\n## Results\n",
        (
            f"Largest fleet {int(config['fleet']):,} RetoolDeployments; {config['changes']} "
            f"replica changes per reaction run; idle window {config['idle_seconds']:.0f} s "
            f"({config['idle_short_seconds']:.0f} s at the smaller sizes); jobs-runner readiness "
            f"delay {config['ready_delay']:g} s in the upgrades; "
            f"wall-clock time of the run {data['wall_seconds'] / 60:.1f} min; "
            f"{phases_line(data)}.\n"
        ),
        markdown_table(HEADER, rows(data)),
    ]
    steps = step_rows(data)
    if steps:
        parts += ["\n### Upgrade steps (seconds)\n", markdown_table(STEP_HEADER, steps)]
    return "\n".join(parts) + "\n"


def write_docs(data: dict[str, Any], source: Path) -> Path:
    """Render docs/benchmarks.md and keep its raw figures beside it (docs/benchmarks/)."""
    DOCS_RESULTS.mkdir(parents=True, exist_ok=True)
    kept = DOCS_RESULTS / source.name
    if source.resolve() != kept.resolve():
        shutil.copyfile(source, kept)
    DOCS_FILE.write_text(markdown(data, source))
    return DOCS_FILE


def now() -> datetime:
    """The current UTC time."""
    return datetime.now(UTC)
