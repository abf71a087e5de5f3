"""The RetoolDeployment API: pydantic models of the spec and status (DESIGN.md section 3).

These models are the single source of truth: the CRD schema in `crds/` is generated from them
(`retool_operator.core.crd`), and the operator parses every object it reads through them.
Field descriptions become `kubectl explain` text, so they are written for the person reading it.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer
from pydantic.alias_generators import to_camel

GROUP = "retool-operator.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "RetoolDeployment"
PLURAL = "retooldeployments"
SINGULAR = "retooldeployment"
SHORT_NAMES = ("rtd",)
CATEGORIES = ("retool",)
ANNOTATION_PREFIX = f"{GROUP}/"
RETRY_ANNOTATION = f"{ANNOTATION_PREFIX}retry-upgrade"
ALLOW_DOWNGRADE_ANNOTATION = f"{ANNOTATION_PREFIX}allow-downgrade"

DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """Seconds in a Go-style duration such as `90s`, `30m` or `1h30m`."""
    if not re.fullmatch(DURATION_PATTERN, text):
        raise ValueError(f"{text!r} is not a duration such as 90s, 30m or 1h30m")
    return sum(float(n) * _DURATION_UNITS[unit] for n, unit in _DURATION_PART.findall(text))


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with a `Z`, to the second, as Kubernetes writes times."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


Timestamp = Annotated[datetime, PlainSerializer(format_time, return_type=str)]
Quantity = int | str


class ApiModel(BaseModel):
    """camelCase on the wire, snake_case in Python; immutable so pure code can share values."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        frozen=True,
        extra="ignore",
        use_attribute_docstrings=False,
    )

    def to_api(self) -> dict[str, Any]:
        """The JSON form Kubernetes stores: camelCase keys, no unset optional fields."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


# --- spec -------------------------------------------------------------------------------------


class SecretKeyRef(ApiModel):
    name: str = Field(min_length=1, description="Name of a Secret in the RetoolDeployment's namespace.")
    key: str = Field(default="password", min_length=1, description="Key within that Secret.")


class SecretRef(ApiModel):
    name: str = Field(min_length=1, description="Name of a Secret in the RetoolDeployment's namespace.")


class LocalObjectReference(ApiModel):
    name: str = Field(min_length=1, description="Name of the referenced object.")


class ResourceRequirements(ApiModel):
    requests: dict[str, Quantity] = Field(
        default_factory=dict, description="Minimum compute resources, e.g. cpu: 500m, memory: 1Gi."
    )
    limits: dict[str, Quantity] = Field(
        default_factory=dict, description="Maximum compute resources, e.g. memory: 4Gi."
    )


class EnvVar(ApiModel):
    name: str = Field(min_length=1, description="Environment variable name.")
    value: str | None = Field(default=None, description="Literal value.")
    value_from: dict[str, Any] | None = Field(
        default=None,
        description="Source of the value, as in a container's env[].valueFrom "
        "(secretKeyRef, configMapKeyRef, fieldRef, resourceFieldRef).",
    )


class SslMode(StrEnum):
    DISABLE = "disable"
    ALLOW = "allow"
    PREFER = "prefer"
    REQUIRE = "require"
    VERIFY_CA = "verify-ca"
    VERIFY_FULL = "verify-full"


class DatabaseSpec(ApiModel):
    host: str = Field(min_length=1, description="Host name or address of the external PostgreSQL server.")
    port: int = Field(default=5432, ge=1, le=65535, description="PostgreSQL port.")
    name: str = Field(default="retool", min_length=1, description="Database name.")
    user: str = Field(default="retool", min_length=1, description="Database user.")
    password_secret_ref: SecretKeyRef = Field(
        description="Secret key that holds the database user's password."
    )
    ssl_mode: SslMode = Field(
        default=SslMode.PREFER,
        description="libpq sslmode; Retool gets POSTGRES_SSL_ENABLED=true for require and stricter.",
    )
    migrations_table: str = Field(
        default="SequelizeMeta",
        min_length=1,
        description="Table in which Retool records applied migrations; read only as a progress hint.",
    )


class AutoscalingSpec(ApiModel):
    min_replicas: int = Field(default=2, ge=1, le=1000, description="Lowest api replica count.")
    max_replicas: int = Field(ge=1, le=1000, description="Highest api replica count.")
    target_cpu_utilization_percentage: int = Field(
        default=70, ge=1, le=100, description="Average CPU utilisation the HPA aims for."
    )


class PodDisruptionBudgetSpec(ApiModel):
    min_available: Quantity | None = Field(
        default=None, description="Pods that must stay available (number or percentage)."
    )
    max_unavailable: Quantity | None = Field(
        default=None,
        description="Pods that may be unavailable (number or percentage); default 1 when neither is set.",
    )


class ComponentSpec(ApiModel):
    """Fields shared by every Retool component."""

    resources: ResourceRequirements = Field(
        default_factory=ResourceRequirements, description="Container compute resources."
    )
    pod_annotations: dict[str, str] = Field(
        default_factory=dict, description="Annotations added to the component's pods."
    )
    env: list[EnvVar] = Field(
        default_factory=list, description="Extra environment variables for the container."
    )


class ApiSpec(ComponentSpec):
    replicas: int = Field(
        default=2,
        ge=0,
        le=1000,
        description="api replicas; ignored while autoscaling is set (the HPA owns the count).",
    )
    autoscaling: AutoscalingSpec | None = Field(
        default=None, description="When set, an HPA scales the api between min and max replicas."
    )
    pod_disruption_budget: PodDisruptionBudgetSpec | None = Field(
        default=None, description="When set, a PodDisruptionBudget protects the api pods."
    )


class JobsRunnerSpec(ComponentSpec):
    replicas: int = Field(
        default=1,
        description="Always 1: the jobs-runner runs migrations and singleton jobs, so it must be "
        "a singleton.",
    )


class OptionalComponentSpec(ComponentSpec):
    replicas: int = Field(default=1, ge=0, le=1000, description="Replicas of this component.")


class ServiceType(StrEnum):
    CLUSTER_IP = "ClusterIP"
    NODE_PORT = "NodePort"
    LOAD_BALANCER = "LoadBalancer"


class ServiceSpec(ApiModel):
    type: ServiceType = Field(default=ServiceType.CLUSTER_IP, description="Service type of the api.")
    port: int = Field(default=80, ge=1, le=65535, description="Service port (targets 3000).")
    annotations: dict[str, str] = Field(
        default_factory=dict, description="Annotations on the api Service (e.g. load balancer settings)."
    )


class UpgradeStrategy(StrEnum):
    RECREATE = "Recreate"
    ROLLING_UPDATE = "RollingUpdate"


class UpgradeSpec(ApiModel):
    strategy: UpgradeStrategy = Field(
        default=UpgradeStrategy.RECREATE,
        description="Recreate stops every other component while migrations run (Retool's "
        "documented procedure); RollingUpdate keeps the old api serving and rolls it afterwards.",
    )
    migration_timeout: str = Field(
        default="30m",
        pattern=DURATION_PATTERN,
        description="How long the new jobs-runner may take to migrate and become Ready (e.g. 30m).",
    )
    verify_timeout: str = Field(
        default="10m",
        pattern=DURATION_PATTERN,
        description="How long every component may take to run the new version and be Ready.",
    )
    auto_rollback: bool = Field(
        default=True, description="On failure, put every component back on the previous version."
    )


VERSION_PATTERN = r"^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z][0-9A-Za-z.-]*)?$"


class RetoolDeploymentSpec(ApiModel):
    version: str = Field(
        pattern=VERSION_PATTERN,
        description="Retool release to run, as the image tag: MAJOR.MINOR.PATCH[-suffix], "
        "e.g. 3.196.1-stable. Changing it starts a phased upgrade.",
    )
    image: str = Field(
        default="tryretool/backend",
        min_length=1,
        description="Image repository of the Retool backend; the tag is spec.version.",
    )
    code_executor_image: str = Field(
        default="tryretool/code-executor-service",
        min_length=1,
        description="Image repository of the code executor; the tag is spec.version.",
    )
    image_pull_secrets: list[LocalObjectReference] = Field(
        default_factory=list, description="Secrets for pulling the images."
    )
    database: DatabaseSpec = Field(description="The external PostgreSQL database.")
    secret_ref: SecretRef = Field(
        description="Secret with keys license-key and encryption-key (required) and jwt-secret."
    )
    api: ApiSpec = Field(default_factory=ApiSpec, description="The api (MAIN_BACKEND) Deployment.")
    jobs_runner: JobsRunnerSpec = Field(
        default_factory=JobsRunnerSpec, description="The jobs-runner StatefulSet (one replica)."
    )
    workflows_backend: OptionalComponentSpec | None = Field(
        default=None, description="When set, runs a workflows-backend Deployment."
    )
    workflows_worker: OptionalComponentSpec | None = Field(
        default=None, description="When set, runs a workflows-worker Deployment."
    )
    code_executor: OptionalComponentSpec | None = Field(
        default=None, description="When set, runs a code-executor Deployment."
    )
    service: ServiceSpec = Field(default_factory=ServiceSpec, description="The api Service.")
    upgrade: UpgradeSpec = Field(default_factory=UpgradeSpec, description="How version changes roll out.")
    paused: bool = Field(default=False, description="When true, the operator changes no child.")


# --- status -----------------------------------------------------------------------------------


class Phase(StrEnum):
    INSTALLING = "Installing"
    READY = "Ready"
    UPGRADING = "Upgrading"
    ROLLING_BACK = "RollingBack"
    DEGRADED = "Degraded"
    PAUSED = "Paused"


class ChangeKind(StrEnum):
    MAJOR = "Major"
    MINOR = "Minor"
    PATCH = "Patch"


class Step(StrEnum):
    PREFLIGHT = "Preflight"
    STOPPING_SERVICES = "StoppingServices"
    MIGRATING_DATABASE = "MigratingDatabase"
    STARTING_SERVICES = "StartingServices"
    VERIFYING = "Verifying"
    ROLLING_BACK = "RollingBack"


class UpgradeResult(StrEnum):
    SUCCEEDED = "Succeeded"
    ROLLED_BACK = "RolledBack"
    FAILED = "Failed"


class ConditionStatus(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(ApiModel):
    type: str = Field(description="Condition type: Ready, Reconciling, Stalled or DatabaseReachable.")
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: str = Field(description="One CamelCase word for the cause.")
    message: str = Field(default="", description="What a person needs to know.")
    observed_generation: int | None = Field(
        default=None, description="metadata.generation the condition was computed from."
    )
    last_transition_time: Timestamp | None = Field(
        default=None, description="When status last changed."
    )


class UpgradeStatus(ApiModel):
    from_version: str = Field(alias="from", description="Version the upgrade started from.")
    to: str = Field(description="Version the upgrade goes to.")
    kind: ChangeKind = Field(description="Major, Minor or Patch.")
    strategy: UpgradeStrategy = Field(description="Strategy in force for this upgrade.")
    step: Step = Field(description="Current step.")
    started_at: Timestamp = Field(description="When the upgrade started.")
    step_started_at: Timestamp = Field(description="When the current step started.")
    attempt: int = Field(default=1, ge=1, description="Attempt number for this target version.")
    saved_replicas: dict[str, int] = Field(
        default_factory=dict, description="Replica counts per component before it was stopped."
    )
    message: str = Field(default="", description="Progress or failure detail.")


class ComponentStatus(ApiModel):
    replicas: int = Field(default=0, description="Desired replicas.")
    selector: str | None = Field(
        default=None, description="Label selector of the component's pods (for the scale subresource)."
    )
    ready_replicas: int = Field(default=0, description="Ready replicas.")
    updated_replicas: int = Field(default=0, description="Replicas on the current template.")
    version: str | None = Field(default=None, description="Version of the component's template.")


class HistoryEntry(ApiModel):
    from_version: str = Field(alias="from", description="Version before the upgrade.")
    to: str = Field(description="Target version.")
    started_at: Timestamp = Field(description="When the upgrade started.")
    finished_at: Timestamp = Field(description="When it ended.")
    result: UpgradeResult = Field(description="Succeeded, RolledBack or Failed.")
    message: str = Field(default="", description="Why it ended that way.")


class DatabaseStatus(ApiModel):
    reachable: bool | None = Field(default=None, description="Whether the last probe connected.")
    server_version: str | None = Field(default=None, description="PostgreSQL server version.")
    migrations_applied: int | None = Field(
        default=None, description="Rows in the migrations table, when it exists."
    )
    blocked_queries: int | None = Field(
        default=None, description="Sessions waiting on a lock (a stuck migration shows here)."
    )


HISTORY_LIMIT = 10


class RetoolDeploymentStatus(ApiModel):
    observed_generation: int | None = Field(
        default=None, description="metadata.generation this status was computed from."
    )
    phase: Phase | None = Field(default=None, description="Installing, Ready, Upgrading, ...")
    current_version: str | None = Field(
        default=None, description="Version every component last ran successfully."
    )
    target_version: str | None = Field(default=None, description="spec.version being worked toward.")
    upgrade: UpgradeStatus | None = Field(default=None, description="The upgrade in progress, if any.")
    retry_token: str | None = Field(
        default=None,
        description="Value of the retry-upgrade annotation last acted on.",
    )
    api: ComponentStatus | None = Field(default=None, description="The api Deployment.")
    jobs_runner: ComponentStatus | None = Field(default=None, description="The jobs-runner.")
    workflows_backend: ComponentStatus | None = Field(default=None, description="workflows-backend.")
    workflows_worker: ComponentStatus | None = Field(default=None, description="workflows-worker.")
    code_executor: ComponentStatus | None = Field(default=None, description="code-executor.")
    history: list[HistoryEntry] = Field(
        default_factory=list, max_length=HISTORY_LIMIT, description="The last 10 upgrades."
    )
    database: DatabaseStatus | None = Field(default=None, description="Last database probe.")
    conditions: list[Condition] = Field(default_factory=list, description="kstatus conditions.")


class Component(StrEnum):
    """Children by role; the value is the `app.kubernetes.io/component` label and name suffix."""

    API = "api"
    JOBS_RUNNER = "jobs-runner"
    WORKFLOWS_BACKEND = "workflows-backend"
    WORKFLOWS_WORKER = "workflows-worker"
    CODE_EXECUTOR = "code-executor"

    @property
    def field(self) -> str:
        """snake_case attribute of the spec and status that describes this component."""
        return self.value.replace("-", "_")


ConditionType = Literal["Ready", "Reconciling", "Stalled", "DatabaseReachable"]
