"""`kubectl retool`: status, history, pause/resume, retry and the upgrade plan of an installation.

Installed as the console script `kubectl-retool`, which kubectl runs as `kubectl retool ...`.
Reads with the caller's kubeconfig; writes only what a person would: `spec.paused` (pause,
resume) and the retry annotation (retry). `plan NAME VERSION` changes nothing: it asks the
operator's own state machine (core/planning.py) what a bump to VERSION would do now.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, TextIO, cast

from kubernetes import client, config

from retool_operator.cluster.kube import new_api_client
from retool_operator.core import builders, naming, planning, reading
from retool_operator.core import conditions as cond
from retool_operator.core.models import (
    GROUP,
    PLURAL,
    RETRY_ANNOTATION,
    VERSION,
    Component,
    DatabaseStatus,
    RetoolDeploymentSpec,
    RetoolDeploymentStatus,
)
from retool_operator.core.observed import DatabaseProbe
from retool_operator.core.statemachine import Inputs

Body = dict[str, Any]


class PluginError(Exception):
    """A message for the person at the terminal (exit status 1)."""


class Client:
    """The few reads and writes the plugin makes, with the caller's credentials."""

    def __init__(self, kubeconfig: str | None, namespace: str | None) -> None:
        api = new_api_client(kubeconfig)
        self.namespace = namespace or _context_namespace(kubeconfig)
        self.core = client.CoreV1Api(api)
        self.apps = client.AppsV1Api(api)
        self.custom = client.CustomObjectsApi(api)

    def get(self, name: str) -> Body:
        try:
            body: Any = self.custom.get_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, name
            )
        except client.ApiException as error:
            if error.status == 404:
                raise PluginError(f"RetoolDeployment {self.namespace}/{name} not found") from error
            raise
        return cast(Body, body)

    def patch(self, name: str, patch: Body) -> Body:
        body: Any = self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, name, patch
        )
        return cast(Body, body)

    def children(self, name: str) -> tuple[list[Body], list[Body]]:
        """The instance's workloads (with their kind) and pods, as plain JSON."""
        selector = f"{naming.LABEL_INSTANCE}={name},{naming.LABEL_MANAGED_BY}={naming.MANAGED_BY}"
        workloads = []
        for kind, lister in (
            ("Deployment", self.apps.list_namespaced_deployment),
            ("StatefulSet", self.apps.list_namespaced_stateful_set),
        ):
            items = _items(lister(self.namespace, label_selector=selector, _preload_content=False))
            workloads += [{**item, "kind": kind} for item in items]
        pods = _items(
            self.core.list_namespaced_pod(
                self.namespace, label_selector=selector, _preload_content=False
            )
        )
        return workloads, pods

    def secret_keys(self, name: str) -> set[str] | None:
        """The key names of a Secret (values are dropped unread), or None when it is missing."""
        try:
            response: Any = self.core.read_namespaced_secret(
                name, self.namespace, _preload_content=False
            )
        except client.ApiException as error:
            if error.status == 404:
                return None
            if error.status == 403:
                raise PluginError(
                    f"no permission to read Secret {name}: plan needs `get secrets` to check the "
                    "Secrets Preflight checks"
                ) from error
            raise
        return set((json.loads(response.data).get("data") or {}).keys())


def _items(response: Any) -> list[Body]:
    items: list[Body] = json.loads(response.data).get("items") or []
    return items


def _context_namespace(kubeconfig: str | None) -> str:
    """The current context's namespace, as kubectl uses it (default: `default`)."""
    try:
        _, active = config.list_kube_config_contexts(config_file=kubeconfig)  # type: ignore[no-untyped-call]
    except (config.ConfigException, OSError):
        return "default"
    return str((active or {}).get("context", {}).get("namespace") or "default")


# --- reading the live object -------------------------------------------------------------------


def _status(body: Body) -> RetoolDeploymentStatus:
    return RetoolDeploymentStatus.model_validate(body.get("status") or {})


def _missing_secrets(kube: Client, spec: RetoolDeploymentSpec) -> list[str]:
    """What the operator's Secret check would report missing (names only, never values)."""
    ref = spec.database.password_secret_ref
    wanted = [
        (ref.name, ref.key),
        (spec.secret_ref.name, builders.LICENSE_KEY_KEY),
        (spec.secret_ref.name, builders.ENCRYPTION_KEY_KEY),
    ]
    keys: dict[str, set[str] | None] = {}
    missing: list[str] = []
    for name, key in wanted:
        if name not in keys:
            keys[name] = kube.secret_keys(name)
        found = keys[name]
        entry = f"Secret {name}" if found is None else f"key {key} in Secret {name}"
        if (found is None or key not in found) and entry not in missing:
            missing.append(entry)
    return missing


def _database(status: RetoolDeploymentStatus, now: datetime) -> DatabaseProbe | None:
    """The operator's last probe (status.database), as if made now: the plugin cannot reach it."""
    recorded: DatabaseStatus | None = status.database
    if recorded is None or recorded.reachable is None:
        return None
    condition = cond.find(status.conditions, cond.DATABASE_REACHABLE)
    number = None
    if recorded.server_version:
        major, _, minor = recorded.server_version.partition(".")
        if major.isdigit():
            number = int(major) * 10000 + (int(minor) if minor.isdigit() else 0)
    return DatabaseProbe(
        checked_at=now,
        reachable=recorded.reachable,
        server_version=recorded.server_version,
        server_version_num=number,
        migrations_applied=recorded.migrations_applied,
        blocked_queries=recorded.blocked_queries,
        error=None if recorded.reachable else (condition.message if condition else "unreachable"),
    )


def live_inputs(kube: Client, name: str, now: datetime) -> Inputs:
    """The state machine's inputs from the live object, its children and the last probe."""
    body = kube.get(name)
    spec = RetoolDeploymentSpec.model_validate(body.get("spec") or {})
    status = _status(body)
    workloads, pods = kube.children(name)
    observed = reading.snapshot(workloads, pods, _missing_secrets(kube, spec))
    metadata = body["metadata"]
    return Inputs(
        name=name,
        generation=int(metadata.get("generation") or 0),
        spec=spec,
        status=status,
        observed=observed,
        database=_database(status, now),
        now=now,
        annotations=metadata.get("annotations") or {},
    )


# --- output ------------------------------------------------------------------------------------


def _table(rows: Sequence[Sequence[object]], out: TextIO) -> None:
    cells = [["" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    for row in cells:
        line = "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        out.write(line + "\n")


def _ago(when: datetime | None, now: datetime) -> str:
    if when is None:
        return "-"
    seconds = int((now - when).total_seconds())
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h"


def _waiting(status: RetoolDeploymentStatus) -> str:
    """What the operator waits for now, from the conditions it wrote."""
    stalled = cond.find(status.conditions, cond.STALLED)
    if stalled is not None and stalled.status == "True":
        return f"a person ({stalled.reason}): {stalled.message}"
    reconciling = cond.find(status.conditions, cond.RECONCILING)
    if reconciling is not None and reconciling.status == "True":
        return reconciling.message or reconciling.reason
    return "nothing" if status.conditions else "the operator (it has not written a status yet)"


def _components(status: RetoolDeploymentStatus) -> list[dict[str, Any]]:
    rows = []
    for component in (Component.JOBS_RUNNER, Component.API, *builders.OPTIONAL_COMPONENTS):
        observed = getattr(status, component.field)
        if observed is not None:
            rows.append({"component": component.value, **observed.to_api()})
    return rows


def status_report(body: Body, now: datetime) -> dict[str, Any]:
    """`status` as JSON: what the table shows."""
    status = _status(body)
    upgrade = status.upgrade
    return {
        "name": body["metadata"]["name"],
        "namespace": body["metadata"].get("namespace"),
        "specVersion": (body.get("spec") or {}).get("version"),
        "paused": bool((body.get("spec") or {}).get("paused")),
        "phase": status.phase.value if status.phase else None,
        "currentVersion": status.current_version,
        "upgrade": None
        if upgrade is None
        else {
            **upgrade.to_api(),
            "hop": "1/1",
            "stepAge": _ago(upgrade.step_started_at, now),
        },
        "waitingFor": _waiting(status),
        "components": _components(status),
        "conditions": [c.to_api() for c in status.conditions],
        "database": status.database.to_api() if status.database else None,
        "lastHistory": status.history[-1].to_api() if status.history else None,
    }


def _print_status(body: Body, now: datetime, out: TextIO) -> None:
    report = status_report(body, now)
    status = _status(body)
    version = f"spec {report['specVersion']}, running {report['currentVersion'] or '-'}"
    if report["paused"]:
        version += " (paused)"
    head: list[list[object]] = [
        ["Name:", f"{report['namespace']}/{report['name']}"],
        ["Version:", version],
        ["Phase:", report["phase"] or "-"],
    ]
    u = status.upgrade
    if u is not None:
        head.append(
            [
                "Upgrade:",
                f"{u.kind.value} {u.from_version} -> {u.to} ({u.strategy.value}), hop {u.path}, "
                f"attempt {u.attempt}",
            ]
        )
        if u.path_left:
            head.append(["Path left:", f"{' -> '.join(u.path_left)} (target {u.target})"])
        head.append(["Step:", f"{u.step.value} (for {_ago(u.step_started_at, now)})"])
        if u.migration is not None:
            seen = u.migration.progress or "none yet"
            head.append(
                [
                    "Migration:",
                    f"last progress {_ago(u.migration.last_progress_at, now)} ago: {seen}",
                ]
            )
    head.append(["Waiting for:", report["waitingFor"]])
    db = status.database
    if db is not None:
        text = "reachable" if db.reachable else "unreachable"
        if db.server_version:
            text += f", PostgreSQL {db.server_version}"
        if db.migrations_applied is not None:
            text += f", {db.migrations_applied} migrations recorded"
        if db.blocked_queries:
            text += f", {db.blocked_queries} blocked queries"
        if db.running_statements:
            text += f", {db.running_statements} statements running"
        head.append(["Database:", text])
    if status.history:
        last = status.history[-1]
        head.append(
            [
                "Last upgrade:",
                f"{last.from_version} -> {last.to} {last.result.value} "
                f"{_ago(last.finished_at, now)} ago"
                + (f": {last.message}" if last.message else ""),
            ]
        )
    _table(head, out)
    out.write("\n")
    rows: list[list[object]] = [["COMPONENT", "REPLICAS", "READY", "UPDATED", "VERSION"]]
    for c in report["components"]:
        rows.append(
            [
                c["component"],
                c.get("replicas", 0),
                c.get("readyReplicas", 0),
                c.get("updatedReplicas", 0),
                c.get("version", "-"),
            ]
        )
    _table(rows, out)
    out.write("\n")
    rows = [["CONDITION", "STATUS", "REASON", "AGE", "MESSAGE"]]
    for condition in status.conditions:
        rows.append(
            [
                condition.type,
                condition.status.value,
                condition.reason,
                _ago(condition.last_transition_time, now),
                condition.message,
            ]
        )
    _table(rows, out)


def _print_history(body: Body, out: TextIO) -> None:
    rows: list[list[object]] = [["FROM", "TO", "RESULT", "STARTED", "FINISHED", "MESSAGE"]]
    for entry in _status(body).history:
        rows.append(
            [
                entry.from_version,
                entry.to,
                entry.result.value,
                entry.started_at.isoformat(timespec="seconds"),
                entry.finished_at.isoformat(timespec="seconds"),
                entry.message,
            ]
        )
    _table(rows, out)


def _print_plan(result: planning.UpgradePlan, out: TextIO) -> None:
    head: list[list[object]] = [
        ["Name:", result.name],
        ["Change:", f"{result.running or '(not installed)'} -> {result.target}: {result.kind}"],
    ]
    if result.path:
        hops = " -> ".join([result.path[0].from_version, *(h.to for h in result.path)])
        head.append(["Path:", f"{hops} ({result.path_note})"])
    head.append(["Verdict:", result.verdict])
    _table(head, out)
    for number, hop in enumerate(result.path, 1):
        out.write(
            f"\nHop {number}/{len(result.path)}: {hop.from_version} -> {hop.to} "
            f"({hop.kind}, {hop.strategy}"
            + (", migrations" if hop.runs_migrations else ", no migrations")
            + (", downgrade" if hop.downgrade else "")
            + ")\n"
        )
        stops = ", ".join(f"{k} ({v})" for k, v in hop.stops.items()) or "none"
        out.write(f"Stops: {stops}\n")
        rows: list[list[object]] = [["STEP", "WHAT IT DOES"]]
        rows += [[s.step, s.does] for s in hop.steps]
        _table(rows, out)
    out.write("\n")
    rows = [["PREFLIGHT CHECK", "NOW", "DETAIL"]]
    rows += [[c.name, "ok" if c.ok else c.reason, c.detail] for c in result.preflight]
    _table(rows, out)


# --- commands ----------------------------------------------------------------------------------


def _retry_token(now: datetime) -> str:
    return now.strftime("%Y%m%dT%H%M%S.%fZ")


def run(args: argparse.Namespace, out: TextIO) -> int:
    """Carry out one command; 0 on success."""
    kube = Client(args.kubeconfig, args.namespace)
    now = datetime.now(UTC)
    as_json = getattr(args, "output", "table") == "json"
    if args.command == "plan":
        try:
            result = planning.plan(live_inputs(kube, args.name, now), args.version)
        except ValueError as error:
            raise PluginError(str(error)) from error
        if as_json:
            json.dump(result.to_json(), out, indent=2)
            out.write("\n")
        else:
            _print_plan(result, out)
        return 0
    body = kube.get(args.name)
    if args.command == "status":
        if as_json:
            json.dump(status_report(body, now), out, indent=2, default=str)
            out.write("\n")
        else:
            _print_status(body, now, out)
        return 0
    if args.command == "history":
        if as_json:
            json.dump([h.to_api() for h in _status(body).history], out, indent=2, default=str)
            out.write("\n")
        else:
            _print_history(body, out)
        return 0
    if args.command in ("pause", "resume"):
        paused = args.command == "pause"
        kube.patch(args.name, {"spec": {"paused": paused}})
        word = "paused: the operator changes no child" if paused else "resumed"
        out.write(f"retooldeployment {kube.namespace}/{args.name} {word}\n")
        return 0
    # retry
    stalled = cond.find(_status(body).conditions, cond.STALLED)
    if stalled is None or stalled.status != "True" or stalled.reason != cond.Reason.UPGRADE_FAILED:
        raise PluginError(
            f"nothing to retry: {args.name} has no failed upgrade (Stalled is not UpgradeFailed)"
        )
    token = _retry_token(now)
    kube.patch(args.name, {"metadata": {"annotations": {RETRY_ANNOTATION: token}}})
    out.write(
        f"retooldeployment {kube.namespace}/{args.name}: {RETRY_ANNOTATION}={token}; "
        "the operator starts the upgrade again\n"
    )
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kubectl retool", description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG)")
    parser.add_argument("-n", "--namespace", help="namespace (default: the context's)")
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, text: str, *, output: bool = False) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=text, description=text)
        sub.add_argument("name", help="the RetoolDeployment")
        if output:
            sub.add_argument("-o", "--output", choices=("table", "json"), default="table")
        return sub

    command(
        "status", "components, step and hop, conditions, database, what it waits for", output=True
    )
    command("history", "the last upgrades and how they ended", output=True)
    command("pause", "set spec.paused: the operator changes no child until resumed")
    command("resume", "clear spec.paused")
    command("retry", f"retry a failed upgrade (sets annotation {RETRY_ANNOTATION})")
    plan = command(
        "plan", "what a bump of spec.version to VERSION would do (changes nothing)", output=True
    )
    plan.add_argument("version", help="the version to plan for, e.g. 3.200.0-stable")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `kubectl-retool` console script."""
    args = _parser().parse_args(argv)
    try:
        return run(args, sys.stdout)
    except PluginError as error:
        sys.stderr.write(f"error: {error}\n")
        return 1


if __name__ == "__main__":
    sys.exit(main())
