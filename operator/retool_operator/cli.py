"""`retool-operator`: run the operator, print the CRD, print the version.

The commands and options are described in docs/design.md §8.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
from collections.abc import Sequence

import kopf
import uvloop

from retool_operator import __version__
from retool_operator.config import Config
from retool_operator.core.crd import render_crd_yaml


def _priority(text: str) -> int:
    """An int, or `random`: replicas of one Deployment need distinct priorities (kopf pauses
    every operator of the same priority)."""
    if text == "random":
        return secrets.randbelow(2**30) + 1
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="retool-operator", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the operator (kopf underneath)")
    scope = run.add_mutually_exclusive_group()
    scope.add_argument(
        "--namespace",
        "-n",
        action="append",
        default=[],
        help="watch this namespace (repeatable; glob patterns allowed)",
    )
    scope.add_argument(
        "--all-namespaces", "-A", action="store_true", help="watch every namespace (the default)"
    )
    run.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, then in-cluster)")
    run.add_argument(
        "--metrics-port",
        type=int,
        default=8000,
        help="Prometheus /metrics and readiness /readyz port (0: off)",
    )
    run.add_argument(
        "--health-port", type=int, default=8080, help="liveness endpoint /healthz port (0: off)"
    )
    run.add_argument(
        "--peering", help="kopf peering name: with it, only one replica acts at a time"
    )
    run.add_argument(
        "--priority",
        type=_priority,
        default=0,
        help="peering priority, higher wins; `random` gives each replica its own",
    )
    run.add_argument(
        "--peering-lifetime",
        type=int,
        default=60,
        help="seconds after which a silent peer counts as gone (and another replica takes over)",
    )
    run.add_argument(
        "--request-timeout",
        type=float,
        default=Config.read_timeout,
        help="seconds an API call may wait for an answer before it fails (and is retried)",
    )
    run.add_argument(
        "--watch-timeout",
        type=int,
        default=Config.watch_timeout,
        help="seconds after which a watch is restarted even when it is quiet",
    )
    run.add_argument("--log-format", choices=("text", "json"), default="text")
    run.add_argument("--verbose", "-v", action="store_true", help="debug logging")
    commands.add_parser("crds", help="print the CRD YAML generated from the models")
    commands.add_parser("version", help="print the operator version")
    return parser


def config_from(args: argparse.Namespace) -> Config:
    """The configuration the `run` arguments describe."""
    return Config(
        kubeconfig=args.kubeconfig,
        namespaces=tuple(args.namespace),
        metrics_port=args.metrics_port,
        peering=args.peering,
        peering_lifetime=args.peering_lifetime,
        instance=os.environ.get("HOSTNAME") or Config.instance,
        read_timeout=args.request_timeout,
        watch_timeout=args.watch_timeout,
    )


def _run(args: argparse.Namespace) -> int:
    config = config_from(args)
    if config.kubeconfig:
        # kopf's own login (its watches) reads the standard variable; our client takes `config`.
        os.environ["KUBECONFIG"] = config.kubeconfig
    # Imported only now: registering the handlers is a side effect that only `run` wants.
    from retool_operator import handlers  # noqa: F401, PLC0415

    kopf.configure(
        verbose=args.verbose,
        debug=args.verbose,
        log_format=kopf.LogFormat.JSON if args.log_format == "json" else kopf.LogFormat.FULL,
        log_refkey="object",
    )
    # uvloop: the watch streams' parsing and the many small writes run on a faster loop.
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        kopf.run(
            loop=runner.get_loop(),
            clusterwide=not args.namespace,
            namespaces=args.namespace,
            standalone=args.peering is None,
            peering_name=args.peering,
            priority=args.priority,
            memo=kopf.Memo(config=config),
            liveness_endpoint=f"http://0.0.0.0:{args.health_port}/healthz"
            if args.health_port
            else None,
        )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `retool-operator` console script."""
    args = build_parser().parse_args(argv)
    if args.command == "version":
        print(__version__)
        return 0
    if args.command == "crds":
        sys.stdout.write(render_crd_yaml())
        return 0
    return _run(args)


if __name__ == "__main__":
    sys.exit(main())
