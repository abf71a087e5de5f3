"""Secrets are read, never logged, never copied into status, Events or metrics."""

from __future__ import annotations

import json
from pathlib import Path

from kubernetes import client

from tests.support import retool
from tests.support.operator_process import OperatorProcess
from tests.support.pgserver import PostgresServer
from tests.support.waiting import wait_for

NAME = "rt"
DEADLINE = 90.0


def test_no_secret_value_in_logs_events_status_or_metrics(
    kubeconfig: str,
    kube_api: client.ApiClient,
    namespace: str,
    retool_secrets: PostgresServer,
    tmp_path: Path,
) -> None:
    """Install, upgrade, a failed upgrade and a database outage, with debug logs in both formats."""
    outputs = []
    for log_format in ("json", "text"):
        operator = OperatorProcess(
            kubeconfig,
            namespace,
            tmp_path / f"operator-{log_format}.log",
            "--verbose",
            "--log-format",
            log_format,
        )
        operator.start()
        try:
            if log_format == "json":
                retool.create(
                    kube_api, namespace, retool.manifest(NAME, "3.196.1-stable", retool_secrets)
                )
                wait_for(
                    lambda: retool.ready_on(kube_api, namespace, NAME, "3.196.1-stable"),
                    DEADLINE,
                    "Ready",
                )
                retool.patch_spec(kube_api, namespace, NAME, {"version": "3.200.0-stable"})
                wait_for(
                    lambda: retool.ready_on(kube_api, namespace, NAME, "3.200.0-stable"),
                    DEADLINE,
                    "upgraded",
                )
            else:
                retool.patch_spec(kube_api, namespace, NAME, {"version": "3.210.0-neverready"})
                wait_for(
                    lambda: retool.stalled(kube_api, namespace, NAME), DEADLINE, "the rollback"
                )
                # A wrong password: the failure reason must not carry the Secret's value either.
                core = client.CoreV1Api(kube_api)
                core.patch_namespaced_secret(
                    "retool-db", namespace, {"stringData": {"password": "wrong-9c1d-secret-value"}}
                )
                retool.patch_spec(kube_api, namespace, NAME, {"version": "3.211.0-stable"})
                wait_for(
                    lambda: (
                        (
                            c := retool.condition(
                                retool.get(kube_api, namespace, NAME), "DatabaseReachable"
                            )
                        )
                        and c["status"] == "False"
                    ),
                    DEADLINE,
                    "DatabaseReachable=False with the wrong password",
                )
            outputs.append(operator.metrics())
        finally:
            operator.stop()
        outputs.append(operator.log_path.read_text())
    events = client.CoreV1Api(kube_api).list_namespaced_event(namespace).items
    outputs += [f"{e.reason} {e.message}" for e in events]
    outputs.append(json.dumps(retool.get(kube_api, namespace, NAME)))
    text = "\n".join(outputs)
    assert "DatabaseReachable" in text  # the material is really there
    for secret in (
        retool.LICENSE_KEY,
        retool.ENCRYPTION_KEY,
        retool_secrets.password,
        "wrong-9c1d-secret-value",
    ):
        assert secret not in text, "a Secret's value leaked"
