"""Pure builders of the children of a RetoolDeployment, as plain dicts for server-side apply.

Each builder renders one manifest from the owner, the spec and what the state machine decided for
the component: the `version` (image tag) it runs and its `replicas`. `desired_children` renders
the whole set for a plan.

The operator skips a write when the desired manifest is a subset of the live object, so every
manifest here is written to survive the API server's defaulting and normalisation unchanged:

- no empty strings, lists or maps (the server drops them, so they would never appear live);
- counts as ints, ports with an explicit `protocol` (it is part of the list's merge key);
- no field the server rewrites: quantities from the spec are passed through as the user wrote
  them (an int becomes its decimal string, which the server keeps), never computed here;
- server defaults are written only where they carry meaning (the jobs-runner's
  `podManagementPolicy: OrderedReady` and `updateStrategy` are the singleton guarantee).

A user-written quantity the server canonicalises (`cpu: "0.5"` is stored as `500m`) still differs
from its live form; comparing quantities by value is the comparison's job, not the builders'.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from retool_operator.core import naming
from retool_operator.core.models import (
    MAX_TIMEOUT_HOURS,
    CodeExecutorMode,
    Component,
    ComponentSpec,
    EnvVar,
    ProbeTimings,
    ReplicatedComponentSpec,
    RetoolDeploymentSpec,
    Settings,
    SslMode,
    parse_duration,
)
from retool_operator.core.naming import Owner
from retool_operator.core.settings import effective_settings, merge_maps
from retool_operator.core.versions import parse

Manifest = dict[str, Any]

# Ports and Services as Retool's Helm chart runs them (docs/design.md "Retool service types").
API_PORT = 3000
JOBS_RUNNER_HEALTH_PORT = 3003
CODE_EXECUTOR_PORT = 3004  # charts/retool/templates/deployment_code_executor.yaml
# charts/retool/templates/_workers.tpl: each worker kind's health port and Temporal task queue.
WORKFLOWS_WORKER_HEALTH_PORT = 3005
AGENT_EVAL_WORKER_HEALTH_PORT = 3012
_WORKER_TASK_QUEUES = {Component.AGENT_WORKER: "agent", Component.AGENT_EVAL_WORKER: "agent-eval"}
WORKER_METRICS_PORT = 9090  # charts/retool/templates/_workers.tpl (http-metrics)
DB_CONNECTOR_PORT = 3002  # charts/retool/templates/deployment_dbconnector.yaml
MULTIPLAYER_PORT = 3001  # charts/retool/templates/deployment_multiplayer_ws.yaml
MULTIPLAYER_PATH = "/api/multiplayer"  # charts/retool/values.yaml multiplayer.ingress.paths
# The chart's Services of the workflows backend, code executor and multiplayer listen on 80, so
# the URLs that point at them carry no port.
HTTP_SERVICE_PORT = 80
# charts/retool/templates/_workers.tpl and deployment_workflows.yaml: per-pod pool and timeout.
WORKFLOWS_POOL_MAX_SIZE = "100"
WORKFLOWS_QUERY_TIMEOUT_MS = "5400000"
NODE_OPTIONS = "--max_old_space_size=1024"

HEALTH_PATH = "/api/checkHealth"
JOBS_RUNNER_HEALTH_PATH = "/api/checkJobsRunnerHealth"

# Secret keys as Retool's Helm chart names them (docs/design.md §2).
LICENSE_KEY_KEY = "license-key"
ENCRYPTION_KEY_KEY = "encryption-key"
JWT_SECRET_KEY = "jwt-secret"  # noqa: S105 (the name of a key, not a secret)

_SSL_MODES_WITH_TLS = frozenset({SslMode.REQUIRE, SslMode.VERIFY_CA, SslMode.VERIFY_FULL})
_PROBE_PERIOD_SECONDS = 10
_PROBE_TIMEOUT_SECONDS = 10
_LIVENESS_PERIOD_SECONDS = 30

# Graceful shutdown, as Retool's Helm chart does it (charts/retool/templates/deployment_backend.yaml
# and deployment_code_executor.yaml): the api waits 30 s in preStop, so load balancers stop
# sending it requests before it gets SIGTERM, and both it and the code executor may take 391 s to
# stop, so running queries and code finish. Other components keep Kubernetes' defaults (no wait,
# 30 s): the jobs-runner in particular, whose old pod must be gone before the new one starts.
_PRE_STOP_SLEEP_SECONDS = {Component.API: 30}
_TERMINATION_GRACE_SECONDS = {
    Component.API: 391,
    Component.CODE_EXECUTOR: 391,
    Component.DB_CONNECTOR: 391,  # charts/retool/values.yaml dbconnector.terminationGracePeriod
}

# Every kind of child the operator writes, as (apiVersion, kind, plural): the one list that the
# watches, the API paths of the writes and the benchmark's request counts all derive from.
CHILD_KINDS: tuple[tuple[str, str, str], ...] = (
    ("apps/v1", "Deployment", "deployments"),
    ("apps/v1", "StatefulSet", "statefulsets"),
    ("v1", "Service", "services"),
    ("v1", "ServiceAccount", "serviceaccounts"),
    ("policy/v1", "PodDisruptionBudget", "poddisruptionbudgets"),
    ("autoscaling/v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers"),
    ("networking.k8s.io/v1", "Ingress", "ingresses"),
    ("gateway.networking.k8s.io/v1", "HTTPRoute", "httproutes"),
)
# Kinds a cluster may lack (a CRD of their own): the operator checks before it writes one.
OPTIONAL_KINDS = frozenset({"HTTPRoute"})

# Every component but the api and the jobs-runner, which always run.
OPTIONAL_COMPONENTS = tuple(c for c in Component if c not in (Component.API, Component.JOBS_RUNNER))


@dataclass(frozen=True)
class WorkloadPlan:
    """What the state machine decided for one component: its version and replica count.

    `replicas` None omits the field (for the api: the HPA owns it). The jobs-runner ignores
    `replicas`: it always runs exactly one.
    """

    version: str
    replicas: int | None


@dataclass(frozen=True)
class _Traits:
    """Per-component facts about Retool (docs/design.md "Retool service types").

    `service_port` is the port of the component's own Service (None: it has none here); the
    container port is `port`, plus `extra_ports` (name, port) that the Service exposes too.
    """

    port: int
    health_path: str
    args: tuple[str, ...]
    service_port: int | None = None
    extra_ports: tuple[tuple[str, int], ...] = ()


_BACKEND_ARGS = ("bash", "./docker_scripts/start_api.sh")
_TRAITS: dict[Component, _Traits] = {
    Component.API: _Traits(API_PORT, HEALTH_PATH, _BACKEND_ARGS),
    Component.JOBS_RUNNER: _Traits(JOBS_RUNNER_HEALTH_PORT, JOBS_RUNNER_HEALTH_PATH, _BACKEND_ARGS),
    Component.WORKFLOWS_BACKEND: _Traits(API_PORT, HEALTH_PATH, _BACKEND_ARGS, HTTP_SERVICE_PORT),
    **{
        worker: _Traits(port, HEALTH_PATH, _BACKEND_ARGS, port, (("metrics", WORKER_METRICS_PORT),))
        for worker, port in (
            (Component.WORKFLOWS_WORKER, WORKFLOWS_WORKER_HEALTH_PORT),
            (Component.AGENT_WORKER, WORKFLOWS_WORKER_HEALTH_PORT),
            (Component.AGENT_EVAL_WORKER, AGENT_EVAL_WORKER_HEALTH_PORT),
        )
    },
    # A separate image with its own entrypoint (the chart sets no command) and no database.
    Component.CODE_EXECUTOR: _Traits(CODE_EXECUTOR_PORT, HEALTH_PATH, (), HTTP_SERVICE_PORT),
    Component.DB_CONNECTOR: _Traits(
        DB_CONNECTOR_PORT, HEALTH_PATH, _BACKEND_ARGS, DB_CONNECTOR_PORT
    ),
    Component.MULTIPLAYER: _Traits(MULTIPLAYER_PORT, HEALTH_PATH, _BACKEND_ARGS, HTTP_SERVICE_PORT),
}

# Components that run the backend image but not the database connector in-process when the
# standalone db connector runs (charts/retool/templates/deployment_backend.yaml and
# deployment_workflows.yaml).
_IN_PROCESS_DB_CONNECTOR = "DB_CONNECTOR,DB_SSH_CONNECTOR"
_SERVICE_TYPES: dict[Component, str] = {
    Component.API: "MAIN_BACKEND",
    Component.JOBS_RUNNER: "JOBS_RUNNER",
    Component.WORKFLOWS_BACKEND: "WORKFLOW_BACKEND",
    Component.WORKFLOWS_WORKER: "WORKFLOW_TEMPORAL_WORKER",
    Component.DB_CONNECTOR: _IN_PROCESS_DB_CONNECTOR,
    Component.MULTIPLAYER: "MULTIPLAYER_SERVICE",
    Component.AGENT_WORKER: "WORKFLOW_TEMPORAL_WORKER",
    Component.AGENT_EVAL_WORKER: "AGENT_EVAL_TEMPORAL_WORKER",
}
# The Temporal workers (charts/retool/templates/_workers.tpl renders them all alike).
WORKERS = frozenset(
    {Component.WORKFLOWS_WORKER, Component.AGENT_WORKER, Component.AGENT_EVAL_WORKER}
)


def service_type(spec: RetoolDeploymentSpec, component: Component) -> str | None:
    """SERVICE_TYPE of a component; None for the code executor, which has none.

    The api and the workflows backend run the db connector themselves unless the standalone one
    runs. The jobs-runner always has its own pod, so the api never gets JOBS_RUNNER.
    """
    base = _SERVICE_TYPES.get(component)
    if base is None:
        return None
    in_process = component in (Component.API, Component.WORKFLOWS_BACKEND)
    if in_process and spec.db_connector is None:
        return f"{base},{_IN_PROCESS_DB_CONNECTOR}"
    return base


def has_service(component: Component) -> bool:
    """Whether a component has a Service of its own beyond the api's and the jobs-runner's."""
    return _TRAITS[component].service_port is not None


# --- spec access ------------------------------------------------------------------------------


def component_spec(spec: RetoolDeploymentSpec, component: Component) -> ComponentSpec:
    """The spec section of a component; ValueError when an optional component is not enabled."""
    section: ComponentSpec | None = getattr(spec, component.field)
    if section is None:
        raise ValueError(f"component {component.value} is not enabled in the spec")
    return section


def image(spec: RetoolDeploymentSpec, component: Component, version: str) -> str:
    """The image reference a component runs at `version`."""
    repository = spec.code_executor_image if component is Component.CODE_EXECUTOR else spec.image
    return f"{repository}:{version}"


# --- environment ------------------------------------------------------------------------------


def _value(name: str, value: str) -> dict[str, Any]:
    """A literal env entry."""
    return {"name": name, "value": value}


def _secret(name: str, secret: str, key: str, *, optional: bool = False) -> dict[str, Any]:
    """An env entry read from a Secret key; the operator never handles the value itself."""
    ref: dict[str, Any] = {"name": secret, "key": key}
    if optional:
        ref["optional"] = True
    return {"name": name, "valueFrom": {"secretKeyRef": ref}}


def _database_env(spec: RetoolDeploymentSpec) -> list[dict[str, Any]]:
    """POSTGRES_* variables of every backend container."""
    db = spec.database
    ssl = "true" if db.ssl_mode in _SSL_MODES_WITH_TLS else "false"
    return [
        _value("POSTGRES_HOST", db.host),
        _value("POSTGRES_PORT", str(db.port)),
        _value("POSTGRES_DB", db.name),
        _value("POSTGRES_USER", db.user),
        _secret("POSTGRES_PASSWORD", db.password_secret_ref.name, db.password_secret_ref.key),
        _value("POSTGRES_SSL_ENABLED", ssl),
    ]


def _secrets_env(spec: RetoolDeploymentSpec) -> list[dict[str, Any]]:
    """LICENSE_KEY, ENCRYPTION_KEY and the optional JWT_SECRET from spec.secretRef."""
    secret = spec.secret_ref.name
    return [
        _secret("LICENSE_KEY", secret, LICENSE_KEY_KEY),
        _secret("ENCRYPTION_KEY", secret, ENCRYPTION_KEY_KEY),
        _secret("JWT_SECRET", secret, JWT_SECRET_KEY, optional=True),
    ]


def required_secrets(spec: RetoolDeploymentSpec) -> list[tuple[str, str | None]]:
    """(Secret, key) pairs the pods cannot start without; key None: the Secret must exist.

    The database password and Retool's keys first, then every Secret the env and envFrom of an
    enabled component name without `optional: true`. The operator checks them before it writes
    a template that uses them, so a missing one holds the change whole instead of leaving pods
    that cannot start.
    """
    ref = spec.database.password_secret_ref
    needed: list[tuple[str, str | None]] = [
        (ref.name, ref.key),
        (spec.secret_ref.name, LICENSE_KEY_KEY),
        (spec.secret_ref.name, ENCRYPTION_KEY_KEY),
    ]
    tls = spec.temporal.tls if spec.temporal is not None else None
    if tls is not None and tls.enabled and tls.secret_name is not None:
        needed += [(tls.secret_name, tls.cert_key), (tls.secret_name, tls.key_key)]
    for component in Component:
        if getattr(spec, component.field) is None:
            continue
        settings = effective_settings(spec, component)
        for source in settings.env_from or []:
            secret = source.get("secretRef") or {}
            if secret.get("name") and not secret.get("optional"):
                needed.append((secret["name"], None))
        for var in settings.env:
            key_ref = (var.value_from or {}).get("secretKeyRef") or {}
            if key_ref.get("name") and key_ref.get("key") and not key_ref.get("optional"):
                needed.append((key_ref["name"], key_ref["key"]))
    return list(dict.fromkeys(needed))


def migration_cap_seconds(spec: RetoolDeploymentSpec) -> int:
    """How long a migration may run at all, in whole seconds: spec.upgrade.migrationDeadline,
    else the longest timeout a spec may set (a week).

    spec.upgrade.migrationTimeout counts from the last progress the operator saw in the
    database (docs/design.md §11), so neither Retool's own migration timeout nor the
    jobs-runner's startup probe may end a migration before the operator judges it stuck.
    """
    deadline = spec.upgrade.migration_deadline
    seconds = parse_duration(deadline) if deadline is not None else MAX_TIMEOUT_HOURS * 3600
    return max(1, math.ceil(seconds))


def service_url(instance: str, component: Component) -> str:
    """`http://<Service>[:port]` of a component, in the chart's format: no port when it is 80."""
    port = _TRAITS[component].service_port
    host = f"http://{naming.workload_name(instance, component)}"
    return host if port in (None, HTTP_SERVICE_PORT) else f"{host}:{port}"


def _enabled(spec: RetoolDeploymentSpec, component: Component) -> bool:
    return getattr(spec, component.field) is not None


# Who calls whom, from the chart's templates (docs/design.md "Retool service types", wiring):
# the components whose pods get the variables that point at each callee's Service.
_WORKFLOWS_CALLERS = frozenset({Component.API, Component.WORKFLOWS_BACKEND}) | WORKERS
_TEMPORAL_USERS = frozenset({Component.JOBS_RUNNER, Component.WORKFLOWS_BACKEND}) | WORKERS


def _temporal_env(spec: RetoolDeploymentSpec, component: Component) -> list[dict[str, Any]]:
    """WORKFLOW_TEMPORAL_* (charts/retool/templates/_helpers.tpl retool.temporal.*): on the
    jobs-runner, workflows backend and workers, and on the api while workflows run."""
    temporal = spec.temporal
    workflows = _enabled(spec, Component.WORKFLOWS_BACKEND)
    if temporal is None or not (
        component in _TEMPORAL_USERS or (component is Component.API and workflows)
    ):
        return []
    env = [
        _value("WORKFLOW_TEMPORAL_CLUSTER_FRONTEND_HOST", temporal.host),
        _value("WORKFLOW_TEMPORAL_CLUSTER_FRONTEND_PORT", str(temporal.port)),
        _value("WORKFLOW_TEMPORAL_CLUSTER_NAMESPACE", temporal.namespace),
    ]
    tls = temporal.tls
    if tls.enabled and tls.secret_name is not None:
        # Both from the Secret: the chart takes the certificate as a literal value and silently
        # drops both when only the key's Secret is named; here they always come together.
        env += [
            _value("WORKFLOW_TEMPORAL_TLS_ENABLED", "true"),
            _secret("WORKFLOW_TEMPORAL_TLS_CRT", tls.secret_name, tls.cert_key),
            _secret("WORKFLOW_TEMPORAL_TLS_KEY", tls.secret_name, tls.key_key),
        ]
    return env


def _wiring_env(
    spec: RetoolDeploymentSpec, instance: str, component: Component
) -> list[dict[str, Any]]:
    """Variables pointing a component at the Services of the others it calls."""
    env: list[dict[str, Any]] = []
    workflows_host = _value(
        "WORKFLOW_BACKEND_HOST", service_url(instance, Component.WORKFLOWS_BACKEND)
    )
    if _enabled(spec, Component.WORKFLOWS_BACKEND) and (
        component in _WORKFLOWS_CALLERS or component is Component.DB_CONNECTOR
    ):
        env.append(workflows_host)
    if _enabled(spec, Component.CODE_EXECUTOR) and component in _WORKFLOWS_CALLERS:
        url = service_url(instance, Component.CODE_EXECUTOR)
        env.append(_value("CODE_EXECUTOR_INGRESS_DOMAIN", url))
    if _enabled(spec, Component.DB_CONNECTOR) and component in _WORKFLOWS_CALLERS:
        host = f"http://{naming.workload_name(instance, Component.DB_CONNECTOR)}"
        port = str(DB_CONNECTOR_PORT)
        env += [_value("DB_CONNECTOR_HOST", host), _value("DB_CONNECTOR_PORT", port)]
        # The chart gives the workers the query connector only, not the SSH one (_workers.tpl).
        if component not in WORKERS:
            env += [_value("DB_SSH_CONNECTOR_HOST", host), _value("DB_SSH_CONNECTOR_PORT", port)]
    return env


def _component_env(spec: RetoolDeploymentSpec, component: Component) -> list[dict[str, Any]]:
    """Variables specific to one component (charts/retool/templates/deployment_*.yaml)."""
    if component is Component.JOBS_RUNNER:
        seconds = str(migration_cap_seconds(spec))
        return [_value("DATABASE_MIGRATIONS_TIMEOUT_SECONDS", seconds)]
    if component is Component.API:
        return []
    # Only the jobs-runner migrates (docs/design.md §4). The chart sets this on all of them but
    # multiplayer; multiplayer gets it too: its new pods start after the jobs-runner migrated.
    env = [_value("DISABLE_DATABASE_MIGRATIONS", "true")]
    if component in WORKERS:
        env += [
            _value("WORKFLOW_WORKER_HEALTHCHECK_PORT", str(_TRAITS[component].port)),
            _value("NODE_OPTIONS", NODE_OPTIONS),
        ]
        if component in _WORKER_TASK_QUEUES:
            env.append(_value("WORKER_TEMPORAL_TASKQUEUE", _WORKER_TASK_QUEUES[component]))
    if component is Component.DB_CONNECTOR:
        env += [
            _value("NODE_OPTIONS", NODE_OPTIONS),
            _value("DBCONNECTOR_HTTP_AGENT_MAX_SOCKETS", "1000"),
        ]
    if component is Component.MULTIPLAYER:
        env.append(_value("MULTIPLAYER_SERVER_PORT", str(MULTIPLAYER_PORT)))
    if component in WORKERS | {Component.WORKFLOWS_BACKEND, Component.DB_CONNECTOR}:
        env.append(_value("DBCONNECTOR_POSTGRES_POOL_MAX_SIZE", WORKFLOWS_POOL_MAX_SIZE))
    if component in WORKERS | {Component.WORKFLOWS_BACKEND}:
        env.append(_value("DBCONNECTOR_QUERY_TIMEOUT_MS", WORKFLOWS_QUERY_TIMEOUT_MS))
    return env


def operator_env(
    spec: RetoolDeploymentSpec, component: Component, instance: str
) -> list[dict[str, Any]]:
    """The variables the operator sets for a component of INSTANCE, before the user's `env`."""
    env = [_value("NODE_ENV", "production")]
    kind = service_type(spec, component)
    if kind is None:
        # The code executor runs users' code: it gets neither the database nor the keys.
        return [*env, _value("NODE_OPTIONS", NODE_OPTIONS)]
    env.append(_value("SERVICE_TYPE", kind))
    return (
        env
        + _database_env(spec)
        + _secrets_env(spec)
        + _component_env(spec, component)
        + _temporal_env(spec, component)
        + _wiring_env(spec, instance, component)
    )


def _user_env_entry(var: EnvVar) -> dict[str, Any]:
    """A user env entry as the server stores it (an empty `value` is omitted there)."""
    entry: dict[str, Any] = {"name": var.name}
    if var.value:
        entry["value"] = var.value
    if var.value_from:
        entry["valueFrom"] = var.to_api()["valueFrom"]
    return entry


def merge_env(operator: list[dict[str, Any]], user: list[EnvVar]) -> list[dict[str, Any]]:
    """The operator's variables, then the user's; a user variable replaces a same-named one.

    The user wins so any Retool setting can be tuned without an operator release (including
    SERVICE_TYPE, at the user's risk). Names stay unique, as server-side apply requires of a
    list keyed by name: an overridden operator entry is dropped, and a name the user lists twice
    keeps its last value at its first position.
    """
    overrides: dict[str, dict[str, Any]] = {}
    for var in user:
        overrides[var.name] = _user_env_entry(var)
    kept = [entry for entry in operator if entry["name"] not in overrides]
    return kept + list(overrides.values())


# --- pod template -----------------------------------------------------------------------------


def _probe_periods(seconds: float) -> int:
    """How many probe periods cover `seconds` (at least one)."""
    return max(1, math.ceil(seconds / _PROBE_PERIOD_SECONDS))


def _startup_seconds(spec: RetoolDeploymentSpec, component: Component) -> float:
    """How long a container may take to start: migrations for the jobs-runner, else verify."""
    if component is Component.JOBS_RUNNER:
        return migration_cap_seconds(spec)
    return parse_duration(spec.upgrade.verify_timeout)


def _probes(spec: RetoolDeploymentSpec, component: Component, settings: Settings) -> dict[str, Any]:
    """Startup, readiness and liveness probes on the component's health endpoint.

    The startup probe holds liveness off while the container starts: a jobs-runner migrating the
    database answers no health check, and a liveness restart would abort the migration. The
    user's timings (container.probes) replace the defaults one by one; the action stays ours.
    """
    traits = _TRAITS[component]
    defaults: dict[str, dict[str, int]] = {
        "startup": {
            "periodSeconds": _PROBE_PERIOD_SECONDS,
            "timeoutSeconds": _PROBE_TIMEOUT_SECONDS,
            "failureThreshold": _probe_periods(_startup_seconds(spec, component)),
        },
        "readiness": {
            "periodSeconds": _PROBE_PERIOD_SECONDS,
            "timeoutSeconds": _PROBE_TIMEOUT_SECONDS,
        },
        "liveness": {
            "periodSeconds": _LIVENESS_PERIOD_SECONDS,
            "timeoutSeconds": _PROBE_TIMEOUT_SECONDS,
        },
    }
    probes = settings.container.probes
    rendered: dict[str, Any] = {}
    for name, timings in defaults.items():
        # A fresh httpGet per probe (shared dicts would become YAML anchors).
        probe: dict[str, Any] = {"httpGet": {"path": traits.health_path, "port": traits.port}}
        own: ProbeTimings | None = getattr(probes, name) if probes is not None else None
        probe.update(timings)
        if own is not None:
            probe.update(own.to_api())
        rendered[f"{name}Probe"] = probe
    return rendered


def _resources(section: ComponentSpec) -> dict[str, Any]:
    """Requests and limits as given, ints as strings (the form the server returns)."""
    resources: dict[str, Any] = {}
    for field, quantities in (
        ("requests", section.resources.requests),
        ("limits", section.resources.limits),
    ):
        if quantities:
            resources[field] = {name: str(value) for name, value in quantities.items()}
    return resources


def _unprivileged_code_executor(spec: RetoolDeploymentSpec, component: Component) -> bool:
    executor = spec.code_executor
    return (
        component is Component.CODE_EXECUTOR
        and executor is not None
        and executor.mode is CodeExecutorMode.UNPRIVILEGED
    )


def _container_security_context(
    spec: RetoolDeploymentSpec, component: Component, settings: Settings
) -> dict[str, Any]:
    """Least privilege, except the code executor, whose nsjail sandbox needs privileges.

    The user's container.securityContext goes over this default, key by key.
    """
    if _unprivileged_code_executor(spec, component):
        # The chart's useSeccompProfile mode (charts/retool/templates/deployment_code_executor
        # .yaml): nsjail sets up its own namespaces inside a user namespace instead of a
        # privileged container. AppArmor: the field (GA since 1.30) where the chart still writes
        # the beta annotation; the mode needs 1.33 anyway.
        profile = spec.code_executor.seccomp_profile if spec.code_executor else ""
        default: dict[str, Any] = {
            "capabilities": {"add": ["NET_ADMIN"]},
            "procMount": "Unmasked",
            "seccompProfile": {"type": "Localhost", "localhostProfile": profile},
            "appArmorProfile": {"type": "Unconfined"},
        }
    elif component is Component.CODE_EXECUTOR:
        # Retool's own manifests run it privileged; without that, users' code runs unsandboxed.
        default = {"privileged": True}
    else:
        default = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
    return copy.deepcopy(merge_maps(default, settings.container.security_context) or {})


def _container_ports(component: Component) -> list[dict[str, Any]]:
    traits = _TRAITS[component]
    return [
        {"name": name, "containerPort": port, "protocol": "TCP"}
        for name, port in (("http", traits.port), *traits.extra_ports)
    ]


def _container(
    owner: Owner,
    spec: RetoolDeploymentSpec,
    component: Component,
    version: str,
    settings: Settings,
) -> dict[str, Any]:
    """The one Retool container of a component's pods."""
    section = component_spec(spec, component)
    traits = _TRAITS[component]
    container: dict[str, Any] = {"name": component.value, "image": image(spec, component, version)}
    if traits.args:
        container["args"] = list(traits.args)
    container["ports"] = _container_ports(component)
    container["env"] = merge_env(operator_env(spec, component, owner.name), settings.env)
    if settings.env_from:
        container["envFrom"] = copy.deepcopy(settings.env_from)
    if settings.container.image_pull_policy is not None:
        container["imagePullPolicy"] = settings.container.image_pull_policy.value
    resources = _resources(section)
    if resources:
        container["resources"] = resources
    container.update(_probes(spec, component, settings))
    sleep = settings.container.pre_stop_sleep_seconds
    if sleep is None:
        sleep = _PRE_STOP_SLEEP_SECONDS.get(component, 0)
    if sleep > 0:
        container["lifecycle"] = {"preStop": {"exec": {"command": ["sleep", str(sleep)]}}}
    container["securityContext"] = _container_security_context(spec, component, settings)
    if settings.container.volume_mounts:
        container["volumeMounts"] = copy.deepcopy(settings.container.volume_mounts)
    return container


def service_account_name(owner: Owner, spec: RetoolDeploymentSpec) -> str:
    """The ServiceAccount every Retool pod runs as: the one named, else the owner's name."""
    return spec.service_account.name or owner.name


def _pod_security_context(component: Component, settings: Settings) -> dict[str, Any] | None:
    """seccomp RuntimeDefault (not for the privileged code executor), under the user's keys."""
    default = (
        None
        if component is Component.CODE_EXECUTOR
        else {"seccompProfile": {"type": "RuntimeDefault"}}
    )
    return copy.deepcopy(merge_maps(default, settings.pod.security_context)) or None


def _pod_template(
    owner: Owner, spec: RetoolDeploymentSpec, component: Component, version: str
) -> dict[str, Any]:
    """The pod template: labels with the version, the effective pod settings, the containers."""
    settings = effective_settings(spec, component)
    pod_settings = settings.pod
    # The operator's labels last: selectors depend on them (admission refuses them anyway).
    labels = {**pod_settings.labels, **naming.labels(owner.name, component, version)}
    metadata: dict[str, Any] = {"labels": labels}
    if pod_settings.annotations:
        metadata["annotations"] = dict(pod_settings.annotations)
    pod: dict[str, Any] = {
        "serviceAccountName": service_account_name(owner, spec),
        # Retool never talks to the Kubernetes API: no token unless the user asks for one.
        "automountServiceAccountToken": spec.service_account.automount_token,
        # Service links would add stray *_SERVICE_HOST/*_PORT variables that could shadow
        # Retool settings.
        "enableServiceLinks": False,
    }
    if pod_settings.init_containers:
        pod["initContainers"] = copy.deepcopy(pod_settings.init_containers)
    pod["containers"] = [
        _container(owner, spec, component, version, settings),
        *copy.deepcopy(pod_settings.sidecars),
    ]
    security_context = _pod_security_context(component, settings)
    if security_context:
        pod["securityContext"] = security_context
    if _unprivileged_code_executor(spec, component):
        # The user namespace procMount: Unmasked requires (charts/retool: hostUsers: false).
        pod["hostUsers"] = False
    grace = pod_settings.termination_grace_period_seconds
    if grace is None:
        grace = _TERMINATION_GRACE_SECONDS.get(component)
    if grace is not None:
        pod["terminationGracePeriodSeconds"] = grace
    for field, value in (
        ("nodeSelector", pod_settings.node_selector),
        ("tolerations", pod_settings.tolerations),
        ("affinity", pod_settings.affinity),
        ("topologySpreadConstraints", pod_settings.topology_spread_constraints),
        ("priorityClassName", pod_settings.priority_class_name),
        ("hostAliases", pod_settings.host_aliases),
        ("volumes", pod_settings.volumes),
    ):
        if value:
            # Copies: one shared setting appears in several templates, and must not become
            # one object (a YAML anchor) in the rendered manifests.
            pod[field] = copy.deepcopy(value)
    if spec.image_pull_secrets:
        pod["imagePullSecrets"] = [{"name": ref.name} for ref in spec.image_pull_secrets]
    return {"metadata": metadata, "spec": pod}


# --- manifests --------------------------------------------------------------------------------


def _metadata(
    owner: Owner,
    name: str,
    component: Component,
    version: str,
    *,
    annotations: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Name, namespace, the user's labels and the five (which win), the owner reference."""
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": owner.namespace,
        "labels": {**(labels or {}), **naming.labels(owner.name, component, version)},
    }
    if annotations:
        metadata["annotations"] = dict(annotations)
    metadata["ownerReferences"] = [owner.owner_reference()]
    return metadata


def _check(version: str, replicas: int | None) -> None:
    """Refuse a version that is no Retool tag and a negative replica count."""
    parse(version)
    if replicas is not None and replicas < 0:
        raise ValueError(f"replicas must not be negative, got {replicas}")


def _deployment(
    owner: Owner,
    spec: RetoolDeploymentSpec,
    component: Component,
    version: str,
    replicas: int | None,
    *,
    strategy: dict[str, Any] | None = None,
) -> Manifest:
    """A Deployment of one component; `replicas` None leaves the field out."""
    _check(version, replicas)
    body: dict[str, Any] = {}
    if replicas is not None:
        body["replicas"] = replicas
    body["selector"] = {"matchLabels": naming.selector_labels(owner.name, component)}
    if strategy is not None:
        body["strategy"] = strategy
    body["template"] = _pod_template(owner, spec, component, version)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(
            owner, naming.workload_name(owner.name, component), component, version
        ),
        "spec": body,
    }


def build_api_deployment(
    owner: Owner, spec: RetoolDeploymentSpec, version: str, replicas: int | None
) -> Manifest:
    """The api Deployment; it rolls with `maxUnavailable: 0` so capacity never drops."""
    strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "25%"}}
    return _deployment(owner, spec, Component.API, version, replicas, strategy=strategy)


def build_jobs_runner_statefulset(
    owner: Owner, spec: RetoolDeploymentSpec, version: str
) -> Manifest:
    """The jobs-runner StatefulSet: one replica whatever the spec says, replaced stop-then-start.

    A StatefulSet with OrderedReady deletes the old pod before it creates the new one, so two
    jobs-runners (two migrators) never run at once, which a Deployment's rolling update allows.
    """
    _check(version, None)
    component = Component.JOBS_RUNNER
    name = naming.workload_name(owner.name, component)
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": _metadata(owner, name, component, version),
        "spec": {
            "replicas": 1,
            "serviceName": naming.jobs_runner_service_name(owner.name),
            "podManagementPolicy": "OrderedReady",
            "updateStrategy": {"type": "RollingUpdate"},
            "selector": {"matchLabels": naming.selector_labels(owner.name, component)},
            "template": _pod_template(owner, spec, component, version),
        },
    }


def build_optional_deployment(
    component: Component,
    owner: Owner,
    spec: RetoolDeploymentSpec,
    version: str,
    replicas: int | None,
) -> Manifest:
    """The Deployment of an optional component (OPTIONAL_COMPONENTS)."""
    if component not in OPTIONAL_COMPONENTS:
        raise ValueError(f"{component.value} is not an optional component")
    return _deployment(owner, spec, component, version, replicas)


def build_api_service(owner: Owner, spec: RetoolDeploymentSpec, version: str) -> Manifest:
    """The api Service: spec.service.port to container port 3000 of the api pods."""
    component = Component.API
    service = spec.service
    name = naming.service_name(owner.name)
    port: dict[str, Any] = {
        "name": "http",
        "port": service.port,
        "targetPort": API_PORT,
        "protocol": "TCP",
    }
    if service.node_port is not None:
        port["nodePort"] = service.node_port
    body: dict[str, Any] = {
        "type": service.type.value,
        "selector": naming.selector_labels(owner.name, component),
        "ports": [port],
    }
    if service.load_balancer_class:
        body["loadBalancerClass"] = service.load_balancer_class
    if service.load_balancer_source_ranges:
        body["loadBalancerSourceRanges"] = list(service.load_balancer_source_ranges)
    if service.external_traffic_policy is not None:
        body["externalTrafficPolicy"] = service.external_traffic_policy.value
    metadata = _metadata(
        owner, name, component, version, annotations=service.annotations, labels=service.labels
    )
    return {"apiVersion": "v1", "kind": "Service", "metadata": metadata, "spec": body}


def build_component_service(owner: Owner, component: Component, version: str) -> Manifest:
    """The ClusterIP Service `<name>-<component>` the other components call it through.

    Ports as the chart's (charts/retool/templates/deployment_workflows.yaml, _workers.tpl,
    deployment_code_executor.yaml, deployment_dbconnector.yaml, deployment_multiplayer_ws.yaml):
    80 to the container port where the callers' URLs carry no port, else the port itself.
    """
    traits = _TRAITS[component]
    if traits.service_port is None:
        raise ValueError(f"{component.value} has no Service of its own")
    ports = [
        {"name": "http", "port": traits.service_port, "targetPort": traits.port, "protocol": "TCP"}
    ]
    ports += [
        {"name": name, "port": port, "targetPort": port, "protocol": "TCP"}
        for name, port in traits.extra_ports
    ]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(
            owner, naming.workload_name(owner.name, component), component, version
        ),
        "spec": {
            "type": "ClusterIP",
            "selector": naming.selector_labels(owner.name, component),
            "ports": ports,
        },
    }


def build_jobs_runner_service(owner: Owner, version: str) -> Manifest:
    """The headless Service that the jobs-runner StatefulSet's `serviceName` names.

    A StatefulSet's pods get their stable DNS names from it; nothing routes traffic through it.
    """
    component = Component.JOBS_RUNNER
    name = naming.jobs_runner_service_name(owner.name)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(owner, name, component, version),
        "spec": {
            "clusterIP": "None",
            "selector": naming.selector_labels(owner.name, component),
            "ports": [
                {
                    "name": "health",
                    "port": JOBS_RUNNER_HEALTH_PORT,
                    "targetPort": JOBS_RUNNER_HEALTH_PORT,
                    "protocol": "TCP",
                }
            ],
        },
    }


def build_service_account(
    owner: Owner, spec: RetoolDeploymentSpec, component: Component, version: str
) -> Manifest:
    """The ServiceAccount the pods run as, when spec.serviceAccount.create (the default).

    All components share it; it carries the labels of `component`.
    """
    account = spec.service_account
    metadata = _metadata(
        owner,
        service_account_name(owner, spec),
        component,
        version,
        annotations=account.annotations,
        labels=account.labels,
    )
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": metadata,
        "automountServiceAccountToken": account.automount_token,
    }


def build_ingress(owner: Owner, spec: RetoolDeploymentSpec, version: str) -> Manifest:
    """The Ingress `<name>` to the api Service; ValueError when spec.ingress is not set.

    One rule per host (one rule for every host when none is given), each sending the path to the
    api Service's port, as Retool's Helm chart does (charts/retool/templates/ingress.yaml).
    """
    ingress = spec.ingress
    if ingress is None:
        raise ValueError("spec.ingress is not set")
    backend = {
        "service": {
            "name": naming.service_name(owner.name),
            "port": {"number": spec.service.port},
        }
    }

    paths = [{"path": ingress.path, "pathType": ingress.path_type.value, "backend": backend}]
    if spec.multiplayer is not None:
        # Before the main path, as the chart's multiplayer.ingress.paths are.
        multiplayer = {
            "service": {
                "name": naming.workload_name(owner.name, Component.MULTIPLAYER),
                "port": {"number": HTTP_SERVICE_PORT},
            }
        }
        paths.insert(0, {"path": MULTIPLAYER_PATH, "pathType": "Prefix", "backend": multiplayer})

    def rule(host: str | None) -> dict[str, Any]:
        entry: dict[str, Any] = {"host": host} if host else {}
        entry["http"] = {"paths": copy.deepcopy(paths)}
        return entry

    body: dict[str, Any] = {}
    if ingress.class_name:
        body["ingressClassName"] = ingress.class_name
    body["rules"] = [rule(host) for host in ingress.hosts] or [rule(None)]
    tls = []
    for entry in ingress.tls:
        item: dict[str, Any] = {}
        if entry.hosts:
            item["hosts"] = list(entry.hosts)
        if entry.secret_name:
            item["secretName"] = entry.secret_name
        tls.append(item)
    if tls:
        body["tls"] = tls
    name = naming.route_name(owner.name)
    metadata = _metadata(
        owner, name, Component.API, version, annotations=ingress.annotations, labels=ingress.labels
    )
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": metadata,
        "spec": body,
    }


def build_http_route(owner: Owner, spec: RetoolDeploymentSpec, version: str) -> Manifest:
    """The Gateway API HTTPRoute `<name>` to the api Service; ValueError when not asked for.

    All paths go to the api Service's port (charts/retool/templates/httproute.yaml does the same).
    """
    route = spec.http_route
    if route is None:
        raise ValueError("spec.httpRoute is not set")
    body: dict[str, Any] = {"parentRefs": [ref.to_api() for ref in route.parent_refs]}
    if route.hostnames:
        body["hostnames"] = list(route.hostnames)
    body["rules"] = [
        {
            "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
            "backendRefs": [{"name": naming.service_name(owner.name), "port": spec.service.port}],
        }
    ]
    if spec.multiplayer is not None:
        # The longest matching prefix wins in Gateway API, so the order does not matter here.
        name = naming.workload_name(owner.name, Component.MULTIPLAYER)
        body["rules"].append(
            {
                "matches": [{"path": {"type": "PathPrefix", "value": MULTIPLAYER_PATH}}],
                "backendRefs": [{"name": name, "port": HTTP_SERVICE_PORT}],
            }
        )
    name = naming.route_name(owner.name)
    metadata = _metadata(
        owner, name, Component.API, version, annotations=route.annotations, labels=route.labels
    )
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": metadata,
        "spec": body,
    }


def build_pod_disruption_budget(
    owner: Owner, spec: RetoolDeploymentSpec, version: str, component: Component = Component.API
) -> Manifest:
    """A component's PodDisruptionBudget; ValueError when its podDisruptionBudget is not set.

    The bound the spec sets (the model admits at most one); with neither, maxUnavailable is 1.
    """
    section = component_spec(spec, component)
    pdb = section.pod_disruption_budget if isinstance(section, ReplicatedComponentSpec) else None
    if pdb is None:
        raise ValueError(f"spec.{component.field} has no podDisruptionBudget")
    body: dict[str, Any] = {
        "selector": {"matchLabels": naming.selector_labels(owner.name, component)}
    }
    if pdb.min_available is not None:
        body["minAvailable"] = pdb.min_available
    else:
        body["maxUnavailable"] = 1 if pdb.max_unavailable is None else pdb.max_unavailable
    name = naming.pod_disruption_budget_name(owner.name, component)
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _metadata(owner, name, component, version),
        "spec": body,
    }


def build_horizontal_pod_autoscaler(
    owner: Owner, spec: RetoolDeploymentSpec, version: str
) -> Manifest:
    """The api HPA on CPU utilisation; ValueError when spec.api.autoscaling is not set."""
    autoscaling = spec.api.autoscaling
    if autoscaling is None:
        raise ValueError("spec.api.autoscaling is not set")
    component = Component.API
    name = naming.horizontal_pod_autoscaler_name(owner.name)
    target = {
        "type": "Utilization",
        "averageUtilization": autoscaling.target_cpu_utilization_percentage,
    }
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _metadata(owner, name, component, version),
        "spec": {
            "scaleTargetRef": {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": naming.workload_name(owner.name, component),
            },
            "minReplicas": autoscaling.min_replicas,
            "maxReplicas": autoscaling.max_replicas,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": target}}],
        },
    }


def build_workload(
    owner: Owner,
    spec: RetoolDeploymentSpec,
    component: Component,
    version: str,
    replicas: int | None,
) -> Manifest:
    """The Deployment or StatefulSet of any component (the jobs-runner ignores `replicas`)."""
    if component is Component.API:
        return build_api_deployment(owner, spec, version, replicas)
    if component is Component.JOBS_RUNNER:
        return build_jobs_runner_statefulset(owner, spec, version)
    return build_optional_deployment(component, owner, spec, version, replicas)


def desired_children(
    owner: Owner, spec: RetoolDeploymentSpec, plan: Mapping[Component, WorkloadPlan]
) -> list[Manifest]:
    """Every child the plan calls for: the ServiceAccount, the workloads with their Services and
    PodDisruptionBudgets, then the api's HPA, Ingress and HTTPRoute.

    Workloads come in `Component` order whatever the plan's order, so the result is deterministic.
    The ServiceAccount comes first: a pod that names a missing one cannot be created.
    """
    children: list[Manifest] = []
    if plan and spec.service_account.create:
        # Labelled as the jobs-runner, which every plan has from the first step of an install:
        # so its labels do not change as the other components join.
        labelled = next(c for c in (Component.JOBS_RUNNER, *Component) if c in plan)
        children.append(build_service_account(owner, spec, labelled, plan[labelled].version))
    for component in Component:
        if component not in plan:
            continue
        version = plan[component].version
        children.append(build_workload(owner, spec, component, version, plan[component].replicas))
        if component is Component.JOBS_RUNNER:
            children.append(build_jobs_runner_service(owner, version))
        if has_service(component):
            children.append(build_component_service(owner, component, version))
        section = component_spec(spec, component)
        if isinstance(section, ReplicatedComponentSpec) and section.pod_disruption_budget:
            children.append(build_pod_disruption_budget(owner, spec, version, component))
    api = plan.get(Component.API)
    if api is not None:
        children.append(build_api_service(owner, spec, api.version))
        if spec.api.autoscaling is not None:
            children.append(build_horizontal_pod_autoscaler(owner, spec, api.version))
        if spec.ingress is not None:
            children.append(build_ingress(owner, spec, api.version))
        if spec.http_route is not None:
            children.append(build_http_route(owner, spec, api.version))
    return children
