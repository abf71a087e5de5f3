"""The RetoolDeployment API: pydantic models of the spec and status (docs/design.md §2).

These models are the single source of truth: the CRD schema in `crds/` is generated from them
(`retool_operator.core.crd`), and the operator parses every object it reads through them.
Field descriptions become `kubectl explain` text, so they are written for the person reading it.

Each constraint is declared once, beside its field: pydantic enforces it when the operator parses
an object, and the CRD generator turns the same declaration into the API server's admission check
(OpenAPI keywords, or a CEL rule in `x-kubernetes-validations` where a person needs a better
message than a regular expression). So what the API server admits, the operator can parse.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
    field_validator,
    model_validator,
)
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


Timestamp = Annotated[
    datetime,
    PlainSerializer(format_time, return_type=str),
    # Stored as an RFC 3339 string; the format lets the API server check it.
    WithJsonSchema({"type": "string", "format": "date-time"}, mode="serialization"),
]
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


# --- admission rules ----------------------------------------------------------------------------
# Messages name the field; the API server also prefixes each refusal with the full field path.

JsonDict = dict[str, Any]

# Numbers without leading zeros, so that two different tags never parse to the same version.
_VERSION_NUMBER = r"(0|[1-9][0-9]*)"
VERSION_PATTERN = (
    rf"^{_VERSION_NUMBER}\.{_VERSION_NUMBER}\.{_VERSION_NUMBER}(-[0-9A-Za-z][0-9A-Za-z.-]*)?$"
)
DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
# A key of a Secret's data.
DATA_KEY_PATTERN = r"^[-._a-zA-Z0-9]+$"
# An image repository, optionally behind a registry host[:port]; no tag or digest at the end.
IMAGE_PATTERN = r"^([^\s@/]+/)*[^\s@/:]+$"
# A host name or an IP address (IPv6 has colons): no spaces, and not a URL.
HOST_PATTERN = r"^[^\s/]+$"
# An unquoted PostgreSQL identifier of at most 63 bytes (NAMEDATALEN - 1).
TABLE_PATTERN = r"^[A-Za-z_][A-Za-z0-9_$]{0,62}$"
# Kubernetes admits printable ASCII except '=' in an env var name; a space here is a typo.
ENV_NAME_PATTERN = r"^[!-<>-~]+$"
PERCENT_PATTERN = r"^(100|[1-9]?[0-9])%$"
# A resource quantity such as 500m, 1Gi, 1.5 or 1e3 (Kubernetes' grammar, without a sign).
QUANTITY_PATTERN = r"^([0-9]+(\.[0-9]*)?|\.[0-9]+)([KMGTPE]i|[mkMGTPE]|[eE][-+]?[0-9]+)?$"

# Docker's limit on a tag and Kubernetes' on a name. CEL rules on strings and lists need such
# bounds: the API server estimates a rule's cost from them and refuses a CRD that costs too much.
MAX_TAG_LENGTH = 128
MAX_NAME_LENGTH = 253
MAX_IMAGE_LENGTH = 255
MAX_DURATION_LENGTH = 32
MAX_ENV_VARS = 128
MAX_PULL_SECRETS = 16
MAX_RESOURCES = 16
MAX_QUANTITY_LENGTH = 64


def cel_literal(text: str) -> str:
    """`text` as a CEL raw string literal, so a regular expression's backslashes stay as written."""
    if "'" in text or "\n" in text:
        raise ValueError(f"cannot write {text!r} as a CEL raw string literal")
    return f"r'{text}'"


def cel(*rules: tuple[str, str]) -> JsonDict:
    """json_schema_extra adding CEL admission rules, each a (rule, message) pair."""
    return {"x-kubernetes-validations": [{"rule": r, "message": m} for r, m in rules]}


def cel_pattern(message: str, *, and_rule: str = "") -> Callable[[JsonDict], None]:
    """json_schema_extra that turns the field's `pattern` into a CEL `matches` rule.

    The API server's own refusal of a pattern shows only the regular expression; the CEL rule
    says `message` instead. `and_rule` is a further condition, checked once the pattern matches.
    """

    def replace_pattern(schema: JsonDict) -> None:
        rule = f"self.matches({cel_literal(schema.pop('pattern'))})"
        if and_rule:
            rule = f"{rule} && {and_rule}"
        schema.setdefault("x-kubernetes-validations", []).append({"rule": rule, "message": message})

    return replace_pattern


# The API server applies the defaults of nested fields only inside an object that exists; a
# `default: {}` on the object makes it exist, so e.g. spec.upgrade.migrationTimeout gets its 30m.
DEFAULT_EMPTY_OBJECT: JsonDict = {"default": {}}


# --- spec -------------------------------------------------------------------------------------


def _secret_name(description: str) -> Any:
    """A field naming a Secret: a DNS subdomain name, as Kubernetes names Secrets."""
    return Field(
        pattern=DNS_SUBDOMAIN_PATTERN,
        max_length=MAX_NAME_LENGTH,
        description=description,
        json_schema_extra=cel_pattern(
            "name must be the name of a Secret in this namespace: not empty, lowercase letters, "
            "digits, '-' and '.', starting and ending with a letter or digit, e.g. retool-secrets"
        ),
    )


class SecretKeyRef(ApiModel):
    """A key of a Secret in the RetoolDeployment's namespace."""

    name: str = _secret_name("Name of a Secret in the RetoolDeployment's namespace.")
    key: str = Field(
        default="password",
        pattern=DATA_KEY_PATTERN,
        max_length=MAX_NAME_LENGTH,
        description="Key within that Secret.",
        json_schema_extra=cel_pattern(
            "key must be a Secret key: not empty, letters, digits, '-', '_' and '.', e.g. password"
        ),
    )


class SecretRef(ApiModel):
    """A Secret in the RetoolDeployment's namespace."""

    name: str = _secret_name("Name of a Secret in the RetoolDeployment's namespace.")


class LocalObjectReference(ApiModel):
    """A Secret in the RetoolDeployment's namespace, by name."""

    name: str = _secret_name("Name of the referenced Secret.")


def _quantities(field: str) -> Callable[[JsonDict], None]:
    """CEL rule: every value of a resources map is a quantity (of bounded length, for the cost)."""
    rule = cel(
        (
            "self.all(k, type(self[k]) == int ? self[k] >= 0 : "
            f"self[k].matches({cel_literal(QUANTITY_PATTERN)}))",
            f"resources.{field} values must be quantities such as 500m, 2, 512Mi or 1Gi",
        )
    )

    def add_rule(schema: JsonDict) -> None:
        schema["additionalProperties"]["maxLength"] = MAX_QUANTITY_LENGTH
        schema.update(rule)

    return add_rule


def _check_quantities(values: dict[str, Quantity]) -> dict[str, Quantity]:
    """The pydantic side of `_quantities`."""
    for name, value in values.items():
        if (isinstance(value, int) and value < 0) or (
            isinstance(value, str)
            and (len(value) > MAX_QUANTITY_LENGTH or not re.fullmatch(QUANTITY_PATTERN, value))
        ):
            raise ValueError(f"{name}: {value!r} is not a quantity such as 500m, 2, 512Mi or 1Gi")
    return values


class ResourceRequirements(ApiModel):
    """Compute resources of a container, as in a Pod."""

    requests: dict[str, Quantity] = Field(
        default_factory=dict,
        max_length=MAX_RESOURCES,
        description="Minimum compute resources, e.g. cpu: 500m, memory: 1Gi.",
        json_schema_extra=_quantities("requests"),
    )
    limits: dict[str, Quantity] = Field(
        default_factory=dict,
        max_length=MAX_RESOURCES,
        description="Maximum compute resources, e.g. memory: 4Gi.",
        json_schema_extra=_quantities("limits"),
    )

    @field_validator("requests", "limits")
    @classmethod
    def _only_quantities(cls, values: dict[str, Quantity]) -> dict[str, Quantity]:
        return _check_quantities(values)


class EnvVar(ApiModel):
    """An environment variable of the container, as in a Pod."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            (
                "!(has(self.value) && has(self.valueFrom))",
                "env[] sets both value and valueFrom: set one of them",
            )
        )
    )

    name: str = Field(
        pattern=ENV_NAME_PATTERN,
        max_length=MAX_NAME_LENGTH,
        description="Environment variable name.",
        json_schema_extra=cel_pattern(
            "env[].name must be a variable name such as LOG_LEVEL: not empty, printable ASCII "
            "without spaces or '='"
        ),
    )
    value: str | None = Field(default=None, description="Literal value.")
    value_from: dict[str, Any] | None = Field(
        default=None,
        description="Source of the value, as in a container's env[].valueFrom "
        "(secretKeyRef, configMapKeyRef, fieldRef, resourceFieldRef).",
    )

    @model_validator(mode="after")
    def _one_source(self) -> EnvVar:
        if self.value is not None and self.value_from is not None:
            raise ValueError(f"env {self.name} sets both value and valueFrom: set one of them")
        return self


class SslMode(StrEnum):
    DISABLE = "disable"
    ALLOW = "allow"
    PREFER = "prefer"
    REQUIRE = "require"
    VERIFY_CA = "verify-ca"
    VERIFY_FULL = "verify-full"


class DatabaseSpec(ApiModel):
    """The external PostgreSQL database in which Retool keeps its data."""

    host: str = Field(
        pattern=HOST_PATTERN,
        max_length=MAX_NAME_LENGTH,
        description="Host name or address of the external PostgreSQL server.",
        json_schema_extra=cel_pattern(
            "spec.database.host must be the host name or IP address of the PostgreSQL server, "
            "e.g. postgres.example.com: not empty, no spaces, not a URL"
        ),
    )
    port: int = Field(default=5432, ge=1, le=65535, description="PostgreSQL port.")
    name: str = Field(default="retool", min_length=1, description="Database name.")
    user: str = Field(default="retool", min_length=1, description="Database user.")
    password_secret_ref: SecretKeyRef = Field(
        description="Secret key that holds the database user's password."
    )
    ssl_mode: SslMode = Field(
        default=SslMode.PREFER,
        description="libpq sslmode; Retool gets POSTGRES_SSL_ENABLED=true for require and "
        "stricter.",
    )
    migrations_table: str = Field(
        default="SequelizeMeta",
        # The operator reads this table, so its name is kept to a plain SQL identifier.
        pattern=TABLE_PATTERN,
        max_length=63,
        description="Table in which Retool records applied migrations; read only as a progress "
        "hint.",
        json_schema_extra=cel_pattern(
            "spec.database.migrationsTable must be a table name such as SequelizeMeta: a letter "
            "or '_', then letters, digits, '_' or '$', at most 63 characters"
        ),
    )


class AutoscalingSpec(ApiModel):
    """A HorizontalPodAutoscaler for the api."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            (
                "self.minReplicas <= self.maxReplicas",
                "spec.api.autoscaling.minReplicas must not be greater than maxReplicas",
            )
        )
    )

    min_replicas: int = Field(default=2, ge=1, le=1000, description="Lowest api replica count.")
    max_replicas: int = Field(ge=1, le=1000, description="Highest api replica count.")
    target_cpu_utilization_percentage: int = Field(
        default=70,
        ge=1,
        le=100,
        # The API spells it with CPU in capitals; camelCase would give targetCpu...
        alias="targetCPUUtilizationPercentage",
        description="Average CPU utilisation the HPA aims for.",
    )

    @model_validator(mode="after")
    def _min_not_above_max(self) -> AutoscalingSpec:
        if self.min_replicas > self.max_replicas:
            raise ValueError("minReplicas must not be greater than maxReplicas")
        return self


def _pods_or_percent(field: str) -> JsonDict:
    """CEL rule: a PodDisruptionBudget bound is a number of pods or a percentage."""
    return cel(
        (
            f"type(self) == int ? self >= 0 : self.matches({cel_literal(PERCENT_PATTERN)})",
            f"spec.api.podDisruptionBudget.{field} must be a number of pods (0 or more) "
            "or a percentage such as 50%",
        )
    )


class PodDisruptionBudgetSpec(ApiModel):
    """A PodDisruptionBudget for the api."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            (
                "!(has(self.minAvailable) && has(self.maxUnavailable))",
                "spec.api.podDisruptionBudget may set minAvailable or maxUnavailable, not both",
            )
        )
    )

    min_available: Quantity | None = Field(
        default=None,
        description="Pods that must stay available (number or percentage).",
        json_schema_extra=_pods_or_percent("minAvailable"),
    )
    max_unavailable: Quantity | None = Field(
        default=None,
        description="Pods that may be unavailable (number or percentage); default 1 when "
        "neither is set.",
        json_schema_extra=_pods_or_percent("maxUnavailable"),
    )

    @field_validator("min_available", "max_unavailable")
    @classmethod
    def _pods_or_percent(cls, value: Quantity | None) -> Quantity | None:
        if isinstance(value, int) and value < 0:
            raise ValueError("must be a number of pods (0 or more) or a percentage such as 50%")
        if isinstance(value, str) and not re.fullmatch(PERCENT_PATTERN, value):
            raise ValueError("must be a number of pods (0 or more) or a percentage such as 50%")
        return value

    @model_validator(mode="after")
    def _at_most_one(self) -> PodDisruptionBudgetSpec:
        if self.min_available is not None and self.max_unavailable is not None:
            raise ValueError("set minAvailable or maxUnavailable, not both")
        return self


class ComponentSpec(ApiModel):
    """Fields shared by every Retool component."""

    resources: ResourceRequirements = Field(
        default_factory=ResourceRequirements, description="Container compute resources."
    )
    pod_annotations: dict[str, str] = Field(
        default_factory=dict, description="Annotations added to the component's pods."
    )
    env: list[EnvVar] = Field(
        default_factory=list,
        max_length=MAX_ENV_VARS,
        description="Extra environment variables for the container.",
        json_schema_extra=cel(
            (
                "self.all(e, self.exists_one(f, f.name == e.name))",
                "env names must be unique: each variable may appear only once",
            )
        ),
    )

    @field_validator("env")
    @classmethod
    def _unique_env_names(cls, env: list[EnvVar]) -> list[EnvVar]:
        names = [e.name for e in env]
        if repeated := sorted({n for n in names if names.count(n) > 1}):
            raise ValueError(f"env names must be unique; repeated: {', '.join(repeated)}")
        return env


class ApiSpec(ComponentSpec):
    """The api (MAIN_BACKEND) Deployment."""

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


JOBS_RUNNER_REPLICAS_MESSAGE = (
    "spec.jobsRunner.replicas must be 1: the jobs-runner runs database migrations and "
    "singleton jobs, so it must be a singleton"
)


class JobsRunnerSpec(ComponentSpec):
    """The jobs-runner StatefulSet (always one replica)."""

    replicas: int = Field(
        default=1,
        description="Always 1: the jobs-runner runs migrations and singleton jobs, so it must be "
        "a singleton.",
        json_schema_extra=cel(("self == 1", JOBS_RUNNER_REPLICAS_MESSAGE)),
    )

    @field_validator("replicas")
    @classmethod
    def _singleton(cls, replicas: int) -> int:
        if replicas != 1:
            raise ValueError(JOBS_RUNNER_REPLICAS_MESSAGE)
        return replicas


class OptionalComponentSpec(ComponentSpec):
    """An optional Deployment: workflows-backend, workflows-worker or code-executor."""

    replicas: int = Field(default=1, ge=0, le=1000, description="Replicas of this component.")


class ServiceType(StrEnum):
    CLUSTER_IP = "ClusterIP"
    NODE_PORT = "NodePort"
    LOAD_BALANCER = "LoadBalancer"


class ServiceSpec(ApiModel):
    """The api Service."""

    type: ServiceType = Field(
        default=ServiceType.CLUSTER_IP, description="Service type of the api."
    )
    port: int = Field(default=80, ge=1, le=65535, description="Service port (targets 3000).")
    annotations: dict[str, str] = Field(
        default_factory=dict,
        description="Annotations on the api Service (e.g. load balancer settings).",
    )


class UpgradeStrategy(StrEnum):
    RECREATE = "Recreate"
    ROLLING_UPDATE = "RollingUpdate"


# A week: longer than any migration should take, and far from where durations overflow.
MAX_TIMEOUT_HOURS = 168


def _timeout(field: str) -> Callable[[JsonDict], None]:
    """CEL rule: a Go-style duration (DURATION_PATTERN), longer than zero and at most a week."""
    return cel_pattern(
        f"spec.upgrade.{field} must be a duration longer than zero and at most "
        f"{MAX_TIMEOUT_HOURS}h, such as 90s, 30m or 1h30m",
        and_rule=f"duration(self) > duration('0s') && duration(self) <= "
        f"duration('{MAX_TIMEOUT_HOURS}h')",
    )


class UpgradeSpec(ApiModel):
    """How a change of spec.version rolls out."""

    strategy: UpgradeStrategy = Field(
        default=UpgradeStrategy.RECREATE,
        description="Recreate stops every other component while migrations run (Retool's "
        "documented procedure); RollingUpdate keeps the old api serving and rolls it afterwards.",
    )
    migration_timeout: str = Field(
        default="30m",
        pattern=DURATION_PATTERN,
        max_length=MAX_DURATION_LENGTH,
        description="How long the new jobs-runner may take to migrate and become Ready (e.g. 30m).",
        json_schema_extra=_timeout("migrationTimeout"),
    )
    verify_timeout: str = Field(
        default="10m",
        pattern=DURATION_PATTERN,
        max_length=MAX_DURATION_LENGTH,
        description="How long every component may take to run the new version and be Ready.",
        json_schema_extra=_timeout("verifyTimeout"),
    )
    auto_rollback: bool = Field(
        default=True, description="On failure, put every component back on the previous version."
    )

    @field_validator("migration_timeout", "verify_timeout")
    @classmethod
    def _zero_to_a_week(cls, text: str) -> str:
        if not 0 < parse_duration(text) <= MAX_TIMEOUT_HOURS * 3600:
            raise ValueError(f"{text!r} is not longer than zero and at most {MAX_TIMEOUT_HOURS}h")
        return text


def _image(default: str, field: str, description: str) -> Any:
    """A field naming an image repository, whose tag is always spec.version."""
    return Field(
        default=default,
        pattern=IMAGE_PATTERN,
        max_length=MAX_IMAGE_LENGTH,
        description=description,
        json_schema_extra=cel_pattern(
            f"spec.{field} must be an image repository without tag or digest, e.g. {default} "
            "or registry.example.com/retool/backend: the tag is always spec.version"
        ),
    )


class RetoolDeploymentSpec(ApiModel):
    """Desired state of a self-hosted Retool: its version, database, Secrets and components."""

    version: str = Field(
        pattern=VERSION_PATTERN,
        max_length=MAX_TAG_LENGTH,
        description="Retool release to run, as the image tag: MAJOR.MINOR.PATCH[-suffix], "
        "e.g. 3.196.1-stable. Changing it starts a phased upgrade.",
        json_schema_extra=cel_pattern(
            "spec.version must look like MAJOR.MINOR.PATCH[-suffix], e.g. 3.196.1-stable: "
            "it is the tag of the tryretool/backend image"
        ),
    )
    image: str = _image(
        "tryretool/backend",
        "image",
        "Image repository of the Retool backend; the tag is spec.version.",
    )
    code_executor_image: str = _image(
        "tryretool/code-executor-service",
        "codeExecutorImage",
        "Image repository of the code executor; the tag is spec.version.",
    )
    image_pull_secrets: list[LocalObjectReference] = Field(
        default_factory=list,
        max_length=MAX_PULL_SECRETS,
        description="Secrets for pulling the images.",
    )
    database: DatabaseSpec = Field(description="The external PostgreSQL database.")
    secret_ref: SecretRef = Field(
        description="Secret with keys license-key and encryption-key (required) and jwt-secret."
    )
    api: ApiSpec = Field(
        default_factory=ApiSpec,
        description="The api (MAIN_BACKEND) Deployment.",
        json_schema_extra=DEFAULT_EMPTY_OBJECT,
    )
    jobs_runner: JobsRunnerSpec = Field(
        default_factory=JobsRunnerSpec,
        description="The jobs-runner StatefulSet (one replica).",
        json_schema_extra=DEFAULT_EMPTY_OBJECT,
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
    service: ServiceSpec = Field(
        default_factory=ServiceSpec,
        description="The api Service.",
        json_schema_extra=DEFAULT_EMPTY_OBJECT,
    )
    upgrade: UpgradeSpec = Field(
        default_factory=UpgradeSpec,
        description="How version changes roll out.",
        json_schema_extra=DEFAULT_EMPTY_OBJECT,
    )
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
    """A kstatus condition."""

    type: str = Field(
        description="Condition type: Ready, Reconciling, Stalled or DatabaseReachable."
    )
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
    """The upgrade in progress."""

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
    """What the operator last observed of one component."""

    replicas: int = Field(default=0, description="Desired replicas.")
    selector: str | None = Field(
        default=None,
        description="Label selector of the component's pods (for the scale subresource).",
    )
    ready_replicas: int = Field(default=0, description="Ready replicas.")
    updated_replicas: int = Field(default=0, description="Replicas on the current template.")
    version: str | None = Field(default=None, description="Version of the component's template.")


class HistoryEntry(ApiModel):
    """One finished upgrade."""

    from_version: str = Field(alias="from", description="Version before the upgrade.")
    to: str = Field(description="Target version.")
    started_at: Timestamp = Field(description="When the upgrade started.")
    finished_at: Timestamp = Field(description="When it ended.")
    result: UpgradeResult = Field(description="Succeeded, RolledBack or Failed.")
    message: str = Field(default="", description="Why it ended that way.")


class DatabaseStatus(ApiModel):
    """The last database probe."""

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
    """Observed state of a self-hosted Retool, written by the operator alone."""

    observed_generation: int | None = Field(
        default=None, description="metadata.generation this status was computed from."
    )
    phase: Phase | None = Field(
        default=None,
        description="Installing, Ready, Upgrading, RollingBack, Degraded or Paused.",
    )
    current_version: str | None = Field(
        default=None, description="Version every component last ran successfully."
    )
    target_version: str | None = Field(
        default=None, description="spec.version being worked toward."
    )
    upgrade: UpgradeStatus | None = Field(
        default=None, description="The upgrade in progress, if any."
    )
    retry_token: str | None = Field(
        default=None,
        description="Value of the retry-upgrade annotation last acted on.",
    )
    api: ComponentStatus | None = Field(default=None, description="The api Deployment.")
    jobs_runner: ComponentStatus | None = Field(
        default=None, description="The jobs-runner StatefulSet."
    )
    workflows_backend: ComponentStatus | None = Field(
        default=None, description="The workflows-backend Deployment, when spec asks for one."
    )
    workflows_worker: ComponentStatus | None = Field(
        default=None, description="The workflows-worker Deployment, when spec asks for one."
    )
    code_executor: ComponentStatus | None = Field(
        default=None, description="The code-executor Deployment, when spec asks for one."
    )
    history: list[HistoryEntry] = Field(
        default_factory=list, max_length=HISTORY_LIMIT, description="The last 10 upgrades."
    )
    database: DatabaseStatus | None = Field(default=None, description="Last database probe.")
    conditions: list[Condition] = Field(
        default_factory=list,
        description="kstatus conditions, one per type.",
        # As in metav1.Condition lists: unique by type, and server-side apply merges by type.
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )


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
