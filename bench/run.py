"""Run the benchmarks: `python -m bench.run [--scenario NAME] [--fleet N] [--quick]`.

Scenarios: reaction, fleet, idle, upgrade, scale (default: all). The bench starts its own local
control plane (hack/cluster.sh, named `retool-bench`, kubeconfig .local/bench-kubeconfig) and its
own PostgreSQL (.local/bench-postgres), starts the operator as a process for each phase, prints a
table, writes the raw figures to bench/results/ and, with --docs, docs/benchmarks.md.

Phases, each on a fresh control plane and a freshly started operator:
  base       no fleet: idle cost at 0 (scale), reaction with 1 RetoolDeployment, the upgrades;
  fleet N    for each fleet size: the peer's fleet (own control plane, no operator), then the
             operator's fleet, its idle window and, at the largest size, the reaction run.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench import fleet, idle, reaction, report, stats, upgrade
from bench.cluster import (
    DEFAULT_KUBECONFIG,
    DEFAULT_NAME,
    BenchCluster,
    start_postgres,
    stop_postgres,
)
from bench.kube import server_version
from bench.operator import MeasuredOperator
from tests.support.pgserver import PostgresServer

log = logging.getLogger("bench")

SCENARIOS = ("reaction", "fleet", "idle", "upgrade", "scale")
STRATEGIES = ("Recreate", "RollingUpdate")


@dataclass(frozen=True)
class Config:
    """What one run measures, and how long."""

    mode: str
    scenarios: tuple[str, ...]
    fleet: int
    changes: int
    idle_seconds: float
    idle_short_seconds: float
    settle_seconds: float
    ready_delay: float

    @property
    def sizes(self) -> list[int]:
        """Fleet sizes measured: a tenth of the largest, and the largest."""
        return sorted({max(1, self.fleet // 10), self.fleet})

    def wants(self, *names: str) -> bool:
        """Whether any of NAMES is to be run."""
        return any(name in self.scenarios for name in names)


def config(args: argparse.Namespace) -> Config:
    """Full or quick defaults, overridden by the command line."""
    quick = bool(args.quick)
    scenarios = tuple(SCENARIOS if not args.scenario or "all" in args.scenario else args.scenario)
    return Config(
        mode="quick" if quick else "full",
        scenarios=scenarios,
        fleet=args.fleet or (20 if quick else 1000),
        changes=args.changes or (30 if quick else 200),
        idle_seconds=args.idle_seconds or (30.0 if quick else 300.0),
        idle_short_seconds=args.idle_short_seconds or (15.0 if quick else 60.0),
        settle_seconds=5.0 if quick else 15.0,
        ready_delay=5.0,
    )


class Run:
    """One bench run: the cluster, the database, the results as they come in."""

    def __init__(
        self, cfg: Config, cluster: BenchCluster, logs: Path, out: Path, *, profile: bool = False
    ) -> None:
        self.cfg = cfg
        self.profile = profile
        self.cluster = cluster
        self.logs = logs
        self.out = out
        self.started = time.monotonic()
        self.db: PostgresServer | None = None
        self.data: dict[str, Any] = {
            "mode": cfg.mode,
            "started": report.now().isoformat(timespec="seconds"),
            "finished": None,
            "config": asdict(cfg),
            "machine": {},
            "results": {},
            "phases": {},
            "wall_seconds": 0.0,
        }

    def _save(self) -> None:
        self.data["wall_seconds"] = time.monotonic() - self.started
        self.data["finished"] = report.now().isoformat(timespec="seconds")
        report.save(self.data, self.out)

    def _result(self, *path: str, value: Any) -> None:
        node = self.data["results"]
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = value
        self._save()

    def _operator(self, phase: str) -> MeasuredOperator:
        operator = MeasuredOperator(self.cluster.kubeconfig, self.logs / f"operator-{phase}.log")
        operator.start()
        log.info("operator started (pid %d) for phase %s", operator.pid, phase)
        return operator

    def _profile(self, section: str) -> Path | None:
        """Where py-spy's samples of SECTION go (None: not profiling)."""
        return self.logs / f"profile-{section}.txt" if self.profile else None

    def _fresh_cluster(self) -> None:
        self.cluster.recreate()

    def _phase(self, name: str, started: float) -> None:
        seconds = time.monotonic() - started
        # The machine is shared: a load average well above the core count means other work
        # (not the bench) competed for the CPUs during the phase.
        load = [round(x, 2) for x in os.getloadavg()]
        self.data["phases"][name] = {"seconds": seconds, "load_average_1_5_15": load}
        log.info("phase %s took %.0f s (load average %s)", name, seconds, load)

    def execute(self) -> dict[str, Any]:
        """Every phase the scenarios need; the results."""
        cfg = self.cfg
        self.db = start_postgres()
        self._fresh_cluster()
        self.data["machine"] = report.machine(server_version(self.cluster.api))
        self.data["machine"]["load_average_at_start"] = [round(x, 2) for x in os.getloadavg()]
        if cfg.wants("scale", "reaction", "upgrade"):
            self._base()
        sizes = cfg.sizes if cfg.wants("fleet", "scale") else [cfg.fleet]
        if cfg.wants("fleet", "scale", "idle", "reaction"):
            for size in sizes:
                self._fleet(size)
        self._save()
        return self.data

    def _base(self) -> None:
        cfg, db = self.cfg, self.db
        assert db is not None
        started = time.monotonic()
        operator = self._operator("base")
        try:
            if cfg.wants("scale"):
                log.info("idle with no RetoolDeployment, %.0f s", cfg.idle_short_seconds)
                with operator.profiled(self._profile("idle-0")):
                    figures = idle.run(
                        self.cluster, operator, 0, cfg.idle_short_seconds, cfg.settle_seconds
                    )
                self._result("scale", "0", value=figures)
            if cfg.wants("reaction"):
                log.info("reaction, 1 RetoolDeployment, %d changes", cfg.changes)
                with operator.profiled(self._profile("reaction-1")):
                    figures = reaction.run(self.cluster.api, db, cfg.changes, "bench-react-1")
                self._result("reaction", "1", value=figures)
            if cfg.wants("upgrade"):
                for strategy in STRATEGIES:
                    log.info("upgrade, %s, jobs-runner ready delay %gs", strategy, cfg.ready_delay)
                    with operator.profiled(self._profile(f"upgrade-{strategy}")):
                        figures = upgrade.run(
                            self.cluster.api, operator, db, strategy, cfg.ready_delay
                        )
                    self._result("upgrade", strategy, value=figures)
        finally:
            operator.stop()
        self._phase("base", started)

    def _fleet(self, size: int) -> None:
        cfg, db = self.cfg, self.db
        assert db is not None
        started = time.monotonic()
        largest = size == cfg.fleet
        if cfg.wants("fleet"):
            self._fresh_cluster()
            log.info("peer fleet of %d (no operator)", size)
            self._result("fleet", str(size), "peer", value=fleet.peer_fleet(self.cluster, db, size))
        self._fresh_cluster()
        operator = self._operator(f"fleet-{size}")
        try:
            log.info("operator fleet of %d", size)
            with operator.profiled(self._profile(f"fleet-{size}")):
                figures = fleet.operator_fleet(self.cluster, operator, db, size)
            self._result("fleet", str(size), "operator", value=figures)
            peer = self.data["results"].get("fleet", {}).get(str(size), {}).get("peer")
            if peer:
                ratio = stats.ratio(figures["all_ready_seconds"], peer["all_ready_seconds"])
                self._result("fleet", str(size), "ratio", value=ratio)
            long_idle = largest and cfg.wants("idle")
            if long_idle or cfg.wants("scale"):
                seconds = cfg.idle_seconds if long_idle else cfg.idle_short_seconds
                log.info("idle with %d RetoolDeployments, %.0f s", size, seconds)
                with operator.profiled(self._profile(f"idle-{size}")):
                    figures = idle.run(self.cluster, operator, size, seconds, cfg.settle_seconds)
                if long_idle:
                    self._result("idle", value=figures)
                if cfg.wants("scale"):
                    self._result("scale", str(size), value=figures)
            if largest and cfg.wants("reaction"):
                log.info("reaction with %d other RetoolDeployments, %d changes", size, cfg.changes)
                namespace = f"bench-react-{size}"
                with operator.profiled(self._profile(f"reaction-{size}")):
                    figures = reaction.run(self.cluster.api, db, cfg.changes, namespace)
                self._result("reaction", str(size), value=figures)
        finally:
            operator.stop()
        self._phase(f"fleet-{size}", started)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--scenario",
        action="append",
        choices=(*SCENARIOS, "all"),
        help="run only this scenario (repeatable; default: all)",
    )
    parser.add_argument("--fleet", type=int, help="largest fleet (default 1000; quick: 20)")
    parser.add_argument("--quick", action="store_true", help="small and short: a smoke run")
    parser.add_argument("--changes", type=int, help="replica changes per reaction run")
    parser.add_argument(
        "--idle-seconds", type=float, help="idle window at the largest fleet (300; quick: 30)"
    )
    parser.add_argument(
        "--idle-short-seconds",
        type=float,
        help="idle windows at 0 and at the smaller fleet (60; quick: 15)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="sample the operator with py-spy in each measured section (adds CPU load)",
    )
    parser.add_argument("--docs", action="store_true", help="write docs/benchmarks.md afterwards")
    parser.add_argument(
        "--render",
        nargs="?",
        const="latest",
        metavar="RESULTS",
        help="run nothing: print (and with --docs render) a results file (default: the newest)",
    )
    parser.add_argument(
        "--keep-cluster", action="store_true", help="leave the bench cluster running at the end"
    )
    parser.add_argument("--cluster-name", default=DEFAULT_NAME, help="kwokctl cluster name")
    parser.add_argument(
        "--kubeconfig", type=Path, default=DEFAULT_KUBECONFIG, help="where its kubeconfig goes"
    )
    parser.add_argument("--verbose", "-v", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point."""
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    if args.render:
        source = report.latest() if args.render == "latest" else Path(args.render)
        data = json.loads(source.read_text())
        print(report.text(data))
        if args.docs:
            print(f"wrote {report.write_docs(data, source)}")
        return 0
    cfg = config(args)
    started = report.now()
    out = report.results_path(cfg.mode, started)
    logs = out.with_suffix("")
    logs.mkdir(parents=True, exist_ok=True)
    cluster = BenchCluster(args.cluster_name, args.kubeconfig)
    log.info("bench %s: %s; results in %s", cfg.mode, ", ".join(cfg.scenarios), out)
    run = Run(cfg, cluster, logs, out, profile=args.profile)
    try:
        data = run.execute()
    finally:
        if not args.keep_cluster:
            cluster.down()
        stop_postgres()
    print(report.text(data))
    print(f"raw figures: {out}")
    if args.docs:
        print(f"wrote {report.write_docs(data, out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
