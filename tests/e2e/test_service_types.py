"""Every Retool service type the operator runs, wired as Retool's Helm chart wires them, and
upgraded with all of them enabled (docs/design.md "Retool service types").

CHART is written from the chart's templates (tryretool/retool-helm 5ff4244, chart 6.11.21) for
the same settings: Workflows with an external Temporal over TLS, the standalone db connector and
multiplayer on. Service names follow the operator's `<name>-<component>`, where the chart has
`<fullname>-workflow-backend`, `-dbconnector`, `-multiplayer-ws`.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from kubernetes import client

from tests.support import retool
from tests.support.invariants import InvariantMonitor, watched_upgrade
from tests.support.pgserver import PostgresServer
from tests.support.waiting import wait_for

NAME = "st"
OLD = "3.196.1-stable"
NEW = "3.200.0-stable"
PATCH = "3.196.3-stable"
DEADLINE = 150.0
TLS_SECRET = "temporal-tls"
TEMPORAL_HOST = "acme.a1b2c.tmprl.cloud"

ALL: dict[str, Any] = {
    "workflowsBackend": {"podDisruptionBudget": {"maxUnavailable": 1}},
    "workflowsWorker": {"replicas": 2},
    "codeExecutor": {"mode": "Unprivileged"},
    "dbConnector": {"podDisruptionBudget": {"maxUnavailable": 1}},
    "multiplayer": {},
    "agentWorker": {},
    "agentEvalWorker": {},
    "temporal": {
        "host": TEMPORAL_HOST,
        "namespace": "acme.a1b2c",
        "tls": {"enabled": True, "secretName": TLS_SECRET},
    },
    # A slow migration keeps MigratingDatabase observable.
    "jobsRunner": {"pod": {"annotations": {"pod-ready.stage.kwok.x-k8s.io/delay": "4s"}}},
}
COMPONENTS = (
    "api",
    "jobs-runner",
    "workflows-backend",
    "workflows-worker",
    "code-executor",
    "db-connector",
    "multiplayer",
    "agent-worker",
    "agent-eval-worker",
)


def _url(component: str) -> str:
    return f"http://{NAME}-{component}"


TEMPORAL = {
    "WORKFLOW_TEMPORAL_CLUSTER_FRONTEND_HOST": TEMPORAL_HOST,
    "WORKFLOW_TEMPORAL_CLUSTER_FRONTEND_PORT": "7233",
    "WORKFLOW_TEMPORAL_CLUSTER_NAMESPACE": "acme.a1b2c",
    "WORKFLOW_TEMPORAL_TLS_ENABLED": "true",
    # From the Secret (the chart: the certificate literally, the key from its Secret).
    "WORKFLOW_TEMPORAL_TLS_CRT": f"secret {TLS_SECRET}/temporal-tls-crt",
    "WORKFLOW_TEMPORAL_TLS_KEY": f"secret {TLS_SECRET}/temporal-tls-key",
}
DB_CONNECTOR = {
    "DB_CONNECTOR_HOST": _url("db-connector"),
    "DB_CONNECTOR_PORT": "3002",
}
DB_SSH_CONNECTOR = {
    "DB_SSH_CONNECTOR_HOST": _url("db-connector"),
    "DB_SSH_CONNECTOR_PORT": "3002",
}
CALLS_WORKFLOWS = {
    "WORKFLOW_BACKEND_HOST": _url("workflows-backend"),
    "CODE_EXECUTOR_INGRESS_DOMAIN": _url("code-executor"),
}
# Every variable whose presence the table decides: absent from a component unless listed.
WIRING = (
    {*TEMPORAL, *DB_CONNECTOR, *DB_SSH_CONNECTOR, *CALLS_WORKFLOWS}
    | {"DISABLE_DATABASE_MIGRATIONS", "WORKFLOW_WORKER_HEALTHCHECK_PORT", "MULTIPLAYER_SERVER_PORT"}
    | {"WORKER_TEMPORAL_TASKQUEUE"}
    | {"POSTGRES_HOST", "LICENSE_KEY"}
)
BACKEND = {"POSTGRES_HOST": "pg", "LICENSE_KEY": "secret retool-secrets/license-key"}
NO_MIGRATIONS = {"DISABLE_DATABASE_MIGRATIONS": "true"}


@dataclass(frozen=True)
class Chart:
    """What the chart renders for one component."""

    service_type: str | None
    ports: tuple[int, ...]
    health: tuple[str, int]
    env: dict[str, str]
    # The component's own Service: (port, targetPort) pairs; None: not checked here.
    service: tuple[tuple[int, int], ...] | None = None
    extra: dict[str, str] = field(default_factory=dict)


CHART = {
    # deployment_backend.yaml: no in-process db connector with the standalone one on.
    "api": Chart(
        "MAIN_BACKEND",
        (3000,),
        ("/api/checkHealth", 3000),
        {**BACKEND, **TEMPORAL, **DB_CONNECTOR, **DB_SSH_CONNECTOR, **CALLS_WORKFLOWS},
    ),
    # deployment_jobs.yaml: Temporal, nothing else of the wiring; it migrates.
    "jobs-runner": Chart(
        "JOBS_RUNNER", (3003,), ("/api/checkJobsRunnerHealth", 3003), {**BACKEND, **TEMPORAL}
    ),
    # deployment_workflows.yaml
    "workflows-backend": Chart(
        "WORKFLOW_BACKEND",
        (3000,),
        ("/api/checkHealth", 3000),
        {
            **BACKEND,
            **NO_MIGRATIONS,
            **TEMPORAL,
            **DB_CONNECTOR,
            **DB_SSH_CONNECTOR,
            **CALLS_WORKFLOWS,
        },
        ((80, 3000),),
        {"DBCONNECTOR_POSTGRES_POOL_MAX_SIZE": "100", "DBCONNECTOR_QUERY_TIMEOUT_MS": "5400000"},
    ),
    # _workers.tpl: the query connector but not the SSH one; health on 3005, metrics on 9090.
    "workflows-worker": Chart(
        "WORKFLOW_TEMPORAL_WORKER",
        (3005, 9090),
        ("/api/checkHealth", 3005),
        {
            **BACKEND,
            **NO_MIGRATIONS,
            **TEMPORAL,
            **DB_CONNECTOR,
            **CALLS_WORKFLOWS,
            "WORKFLOW_WORKER_HEALTHCHECK_PORT": "3005",
        },
        ((3005, 3005), (9090, 9090)),
        {"NODE_OPTIONS": "--max_old_space_size=1024", "DBCONNECTOR_QUERY_TIMEOUT_MS": "5400000"},
    ),
    # _workers.tpl again: the agent kinds differ in SERVICE_TYPE, task queue and health port.
    **{
        component: Chart(
            service_type,
            (port, 9090),
            ("/api/checkHealth", port),
            {
                **BACKEND,
                **NO_MIGRATIONS,
                **TEMPORAL,
                **DB_CONNECTOR,
                **CALLS_WORKFLOWS,
                "WORKFLOW_WORKER_HEALTHCHECK_PORT": str(port),
                "WORKER_TEMPORAL_TASKQUEUE": queue,
            },
            ((port, port), (9090, 9090)),
        )
        for component, service_type, port, queue in (
            ("agent-worker", "WORKFLOW_TEMPORAL_WORKER", 3005, "agent"),
            ("agent-eval-worker", "AGENT_EVAL_TEMPORAL_WORKER", 3012, "agent-eval"),
        )
    },
    # deployment_code_executor.yaml: no SERVICE_TYPE, no database, no keys.
    "code-executor": Chart(
        None,
        (3004,),
        ("/api/checkHealth", 3004),
        {},
        ((80, 3004),),
        {"NODE_OPTIONS": "--max_old_space_size=1024"},
    ),
    # deployment_dbconnector.yaml: it calls the workflows backend.
    "db-connector": Chart(
        "DB_CONNECTOR,DB_SSH_CONNECTOR",
        (3002,),
        ("/api/checkHealth", 3002),
        {**BACKEND, **NO_MIGRATIONS, "WORKFLOW_BACKEND_HOST": _url("workflows-backend")},
        ((3002, 3002),),
        {"DBCONNECTOR_HTTP_AGENT_MAX_SOCKETS": "1000", "DBCONNECTOR_POSTGRES_POOL_MAX_SIZE": "100"},
    ),
    # deployment_multiplayer_ws.yaml; DISABLE_DATABASE_MIGRATIONS is the operator's own (the
    # chart sets none: docs/design.md "Retool service types").
    "multiplayer": Chart(
        "MULTIPLAYER_SERVICE",
        (3001,),
        ("/api/checkHealth", 3001),
        {**BACKEND, **NO_MIGRATIONS, "MULTIPLAYER_SERVER_PORT": "3001"},
        ((80, 3001),),
    ),
}


def _raw(read: Any, *args: Any) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(read(*args, _preload_content=False).data)
    return body


def _template(api: client.ApiClient, namespace: str, component: str) -> dict[str, Any]:
    apps = client.AppsV1Api(api)
    name = f"{NAME}-{component}"
    if component == "jobs-runner":
        workload = _raw(apps.read_namespaced_stateful_set, name, namespace)
    else:
        workload = _raw(apps.read_namespaced_deployment, name, namespace)
    template: dict[str, Any] = workload["spec"]["template"]
    return template


def _env(container: dict[str, Any]) -> dict[str, str]:
    """Env as NAME -> value, a Secret key as 'secret NAME/KEY'; POSTGRES_HOST as 'pg'."""
    env = {}
    for entry in container.get("env") or []:
        ref = (entry.get("valueFrom") or {}).get("secretKeyRef")
        if ref is not None:
            env[entry["name"]] = f"secret {ref['name']}/{ref['key']}"
        else:
            env[entry["name"]] = entry.get("value", "")
    if "POSTGRES_HOST" in env:
        env["POSTGRES_HOST"] = "pg"
    return env


def _install(
    api: client.ApiClient, namespace: str, db: PostgresServer, spec: dict[str, Any]
) -> None:
    client.CoreV1Api(api).create_namespaced_secret(
        namespace,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name=TLS_SECRET),
            string_data={"temporal-tls-crt": "Y2VydA==", "temporal-tls-key": "a2V5"},
        ),
    )
    retool.create(api, namespace, retool.manifest(NAME, OLD, db, spec))
    wait_for(lambda: retool.ready_on(api, namespace, NAME, OLD), DEADLINE, f"Ready on {OLD}")


@pytest.mark.usefixtures("operator")
def test_every_service_type_matches_the_chart(
    kube_api: client.ApiClient, namespace: str, retool_secrets: PostgresServer, kubeconfig: str
) -> None:
    _install(kube_api, namespace, retool_secrets, ALL)
    core = client.CoreV1Api(kube_api)
    for component, chart in CHART.items():
        template = _template(kube_api, namespace, component)
        container = template["spec"]["containers"][0]
        env = _env(container)
        assert env.get("SERVICE_TYPE") == chart.service_type, component
        assert [p["containerPort"] for p in container["ports"]] == list(chart.ports), component
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            action = container[probe]["httpGet"]
            assert (action["path"], action["port"]) == chart.health, (component, probe)
        wired = {name: value for name, value in env.items() if name in WIRING}
        assert wired == chart.env, component
        for name, value in chart.extra.items():
            assert env.get(name) == value, (component, name)
        if chart.service is not None:
            name = f"{NAME}-{component}"
            service = _raw(core.read_namespaced_service, name, namespace)["spec"]
            ports = [(p["port"], p["targetPort"]) for p in service["ports"]]
            assert ports == list(chart.service), component
            assert service["type"] == "ClusterIP"
            wait_for(
                functools.partial(retool.endpoint_ready, kube_api, namespace, name),
                DEADLINE,
                f"a ready endpoint behind {name}",
            )

    # The chart's unprivileged (useSeccompProfile) code executor, as the API server kept it.
    executor = _template(kube_api, namespace, "code-executor")["spec"]
    assert executor["hostUsers"] is False
    context = executor["containers"][0]["securityContext"]
    assert "privileged" not in context
    assert context["capabilities"] == {"add": ["NET_ADMIN"]}
    assert context["procMount"] == "Unmasked"
    assert context["seccompProfile"] == {
        "type": "Localhost",
        "localhostProfile": "profiles/nsjail-seccomp.json",
    }

    # One PodDisruptionBudget per component that asked for one.
    policy = client.PolicyV1Api(kube_api)
    budgets = _raw(policy.list_namespaced_pod_disruption_budget, namespace)["items"]
    assert sorted(b["metadata"]["name"] for b in budgets) == [
        f"{NAME}-db-connector",
        f"{NAME}-workflows-backend",
    ]

    # Status and -o wide: every component's ready/replicas and version.
    status = retool.get(kube_api, namespace, NAME)["status"]
    for component in COMPONENTS:
        key = "".join(w.capitalize() if i else w for i, w in enumerate(component.split("-")))
        replicas = 2 if component in ("api", "workflows-worker") else 1
        assert status[key]["summary"] == f"{replicas}/{replicas} {OLD}", component
    wide = retool.kubectl(kubeconfig, "get", "rtd", NAME, "-n", namespace, "-o", "wide").stdout
    header, row = wide.splitlines()
    assert header.split()[:7] == ["NAME", "VERSION", "CURRENT", "PHASE", "STEP", "PATH", "READY"]
    assert row.count(OLD) == 1 + 1 + len(COMPONENTS)  # VERSION, CURRENT, one per component
    default = retool.kubectl(kubeconfig, "get", "rtd", NAME, "-n", namespace).stdout
    assert default.splitlines()[0].split() == ["NAME", "VERSION", "PHASE", "READY", "AGE"]


def _components_on(api: client.ApiClient, namespace: str, version: str) -> set[str]:
    """The components whose workload's template runs VERSION."""
    return {
        component
        for component in COMPONENTS
        if _template(api, namespace, component)["spec"]["containers"][0]["image"].endswith(
            f":{version}"
        )
    }


@pytest.mark.parametrize("strategy", ["Recreate", "RollingUpdate"])
@pytest.mark.usefixtures("operator")
def test_minor_upgrade_with_every_component(
    kube_api: client.ApiClient, namespace: str, retool_secrets: PostgresServer, strategy: str
) -> None:
    _install(
        kube_api, namespace, retool_secrets, retool.merge(ALL, {"upgrade": {"strategy": strategy}})
    )
    monitor, body = watched_upgrade(
        kube_api, namespace, NAME, NEW, recreate=strategy == "Recreate", deadline=DEADLINE
    )
    assert monitor.violations == [], monitor.first_seen
    assert "MigratingDatabase" in monitor.steps
    # Every component's pods were seen, and all of them run the new version now.
    assert set(COMPONENTS) <= monitor.components_seen, monitor.components_seen
    assert _components_on(kube_api, namespace, NEW) == set(COMPONENTS)
    assert body["status"]["history"][-1]["result"] == "Succeeded"


@pytest.mark.usefixtures("operator")
def test_patch_with_every_component_stops_nothing_and_a_broken_release_returns_all(
    kube_api: client.ApiClient, namespace: str, retool_secrets: PostgresServer
) -> None:
    _install(
        kube_api,
        namespace,
        retool_secrets,
        retool.merge(ALL, {"upgrade": {"migrationTimeout": "8s"}}),
    )
    deployments = [f"{NAME}-{c}" for c in COMPONENTS if c != "jobs-runner"]
    with InvariantMonitor(
        kube_api, namespace, NAME, new_versions={PATCH}, recreate=False, keep_endpoints=True
    ) as monitor:
        retool.patch_spec(kube_api, namespace, NAME, {"version": PATCH})
        wait_for(
            lambda: retool.ready_on(kube_api, namespace, NAME, PATCH), DEADLINE, f"Ready on {PATCH}"
        )
    assert monitor.violations == [], monitor.first_seen
    assert "StoppingServices" not in monitor.steps
    for name in deployments:  # none was ever scaled to 0
        assert 0 not in monitor.replicas_seen.get(name, []), (name, monitor.replicas_seen)

    monitor, body = watched_upgrade(
        kube_api,
        namespace,
        NAME,
        "3.200.0-neverready",
        recreate=True,
        deadline=DEADLINE,
        failing=True,
    )
    assert monitor.violations == [], monitor.first_seen
    assert body["status"]["history"][-1]["result"] == "RolledBack"
    assert _components_on(kube_api, namespace, PATCH) == set(COMPONENTS)
    status = body["status"]
    for component in COMPONENTS:
        key = "".join(w.capitalize() if i else w for i, w in enumerate(component.split("-")))
        assert status[key]["readyReplicas"] == status[key]["replicas"] > 0, component


def _gone(api: client.ApiClient, namespace: str, component: str) -> bool:
    return not _children(api, namespace, component)


def _children(api: client.ApiClient, namespace: str, component: str) -> list[str]:
    name = f"{NAME}-{component}"
    found = []
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    policy = client.PolicyV1Api(api)
    for kind, read in (
        ("Deployment", apps.read_namespaced_deployment),
        ("Service", core.read_namespaced_service),
        ("PodDisruptionBudget", policy.read_namespaced_pod_disruption_budget),
    ):
        try:
            read(name, namespace)
            found.append(kind)
        except client.ApiException as error:
            if error.status != 404:
                raise
    return found


@pytest.mark.usefixtures("operator")
def test_disabling_removes_and_enabling_mid_upgrade_waits(
    kube_api: client.ApiClient, namespace: str, retool_secrets: PostgresServer
) -> None:
    _install(kube_api, namespace, retool_secrets, ALL)
    retool.patch_spec(kube_api, namespace, NAME, {"dbConnector": None, "multiplayer": None})
    for component in ("db-connector", "multiplayer"):
        wait_for(
            functools.partial(_gone, kube_api, namespace, component),
            DEADLINE,
            f"the children of {component} to go",
        )
    # Without the standalone db connector, the api runs it in-process again (the chart's rule).
    api_env = _env(_template(kube_api, namespace, "api")["spec"]["containers"][0])
    wait_for(
        lambda: (
            _env(_template(kube_api, namespace, "api")["spec"]["containers"][0]).get("SERVICE_TYPE")
            == "MAIN_BACKEND,DB_CONNECTOR,DB_SSH_CONNECTOR"
        ),
        DEADLINE,
        f"the api to run the db connector again (has {api_env.get('SERVICE_TYPE')})",
    )
    wait_for(lambda: retool.ready_on(kube_api, namespace, NAME, OLD), DEADLINE, f"Ready on {OLD}")

    retool.patch_spec(kube_api, namespace, NAME, {"version": NEW})
    wait_for(
        lambda: (
            ((retool.get(kube_api, namespace, NAME).get("status") or {}).get("upgrade") or {}).get(
                "step"
            )
            == "MigratingDatabase"
        ),
        DEADLINE,
        "the upgrade to migrate",
    )
    retool.patch_spec(kube_api, namespace, NAME, {"multiplayer": {}})
    seen_during: list[str] = []

    def finished() -> bool:
        upgrading = "upgrade" in (retool.get(kube_api, namespace, NAME).get("status") or {})
        children = _children(kube_api, namespace, "multiplayer")
        if upgrading and children:
            seen_during.extend(children)
        return not upgrading

    wait_for(finished, DEADLINE, "the upgrade to end")
    assert seen_during == [], "multiplayer children were written during the upgrade"
    wait_for(
        lambda: _children(kube_api, namespace, "multiplayer") == ["Deployment", "Service"],
        DEADLINE,
        "multiplayer to join after the upgrade",
    )
    wait_for(lambda: retool.ready_on(kube_api, namespace, NAME, NEW), DEADLINE, f"Ready on {NEW}")
    assert _template(kube_api, namespace, "multiplayer")["spec"]["containers"][0]["image"] == (
        f"tryretool/backend:{NEW}"
    )


@pytest.mark.usefixtures("operator")
def test_temporal_tls_secret_missing_holds_everything(
    kube_api: client.ApiClient, namespace: str, retool_secrets: PostgresServer
) -> None:
    spec = retool.merge(ALL, {"temporal": {"tls": {"secretName": "absent"}}})
    retool.create(kube_api, namespace, retool.manifest(NAME, OLD, retool_secrets, spec))
    body = wait_for(
        lambda: retool.stalled(kube_api, namespace, NAME, "SecretMissing"),
        DEADLINE,
        "Stalled=True SecretMissing",
    )
    assert "absent" in (retool.condition(body, "Stalled") or {}).get("message", "")
    apps = client.AppsV1Api(kube_api)
    assert apps.list_namespaced_deployment(namespace).items == []
    assert apps.list_namespaced_stateful_set(namespace).items == []
