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
    StringConstraints,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from retool_operator.core import kubernetes_types

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
SKIP_UPGRADE_PATH_ANNOTATION = f"{ANNOTATION_PREFIX}skip-upgrade-path"
# At most this many intermediate versions in spec.upgrade.via (a path of MAX_VIA_HOPS + 1 hops).
MAX_VIA_HOPS = 8

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
        # An optional field (`str | None`) has its pattern inside the non-null option.
        holder = next((o for o in schema.get("anyOf", []) if "pattern" in o), schema)
        rule = f"self.matches({cel_literal(holder.pop('pattern'))})"
        if and_rule:
            rule = f"{rule} && {and_rule}"
        schema.setdefault("x-kubernetes-validations", []).append({"rule": rule, "message": message})

    return replace_pattern


# The API server applies the defaults of nested fields only inside an object that exists; a
# `default: {}` on the object makes it exist, so e.g. spec.upgrade.migrationTimeout gets its 30m.
DEFAULT_EMPTY_OBJECT: JsonDict = {"default": {}}


class Component(StrEnum):
    """Children by role; the value is the `app.kubernetes.io/component` label and name suffix."""

    API = "api"
    JOBS_RUNNER = "jobs-runner"
    WORKFLOWS_BACKEND = "workflows-backend"
    WORKFLOWS_WORKER = "workflows-worker"
    CODE_EXECUTOR = "code-executor"
    DB_CONNECTOR = "db-connector"
    MULTIPLAYER = "multiplayer"
    AGENT_WORKER = "agent-worker"
    AGENT_EVAL_WORKER = "agent-eval-worker"

    @property
    def field(self) -> str:
        """snake_case attribute of the spec and status that describes this component."""
        return self.value.replace("-", "_")


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
            f"podDisruptionBudget.{field} must be a number of pods (0 or more) "
            "or a percentage such as 50%",
        )
    )


class PodDisruptionBudgetSpec(ApiModel):
    """A PodDisruptionBudget for a component's pods."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            (
                "!(has(self.minAvailable) && has(self.maxUnavailable))",
                "podDisruptionBudget may set minAvailable or maxUnavailable, not both",
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


# --- pod and container settings: once for all components, and per component -------------------
# Kubernetes' own field names, so a block can be copied from a PodSpec. How a component's value
# combines with the shared one is `core/settings.py`'s job (docs/design.md, "Settings").

MAX_NAMED_ITEMS = 32
MAX_CONTAINERS = 16
MAX_LABELS = 64
MAX_LABEL_KEY_LENGTH = 317  # a 253-character prefix, '/', a 63-character name
MAX_LABEL_VALUE_LENGTH = 63
MAX_GRACE_SECONDS = 86400
MAX_PROBE_SECONDS = 3600
DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
# A host name as an Ingress or HTTPRoute takes it: DNS labels, optionally `*.` in front.
HOSTNAME_PATTERN = r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
CIDR_PATTERN = r"^[0-9a-fA-F:.]+/[0-9]{1,3}$"
# The labels the operator sets on every pod; selectors and tools rely on their values.
OPERATOR_LABELS = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/component",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/version",
)
# The Retool container of each component is named after the component.
RETOOL_CONTAINER_NAMES = tuple(component.value for component in Component)


def _unique(field: str, key: str = "name") -> JsonDict:
    """CEL rule: the items of a list are unique by `key`."""
    return cel(
        (
            f"self.all(x, self.exists_one(y, y.{key} == x.{key}))",
            f"{field} must not repeat a {key}: each {key} may appear only once",
        )
    )


def _not_retool_container(field: str) -> JsonDict:
    """CEL rules: unique names, none of them the name of a Retool container."""
    names = ", ".join(f"'{name}'" for name in RETOOL_CONTAINER_NAMES)
    rules = _unique(field)
    rules["x-kubernetes-validations"].append(
        {
            "rule": f"self.all(c, !(c.name in [{names}]))",
            "message": f"{field} must not be named like a Retool container "
            f"({', '.join(RETOOL_CONTAINER_NAMES)})",
        }
    )
    return rules


def _check_unique(items: list[JsonDict] | None, key: str, field: str) -> None:
    """The pydantic side of `_unique`."""
    values = [item.get(key) for item in items or []]
    if repeated := sorted({str(v) for v in values if values.count(v) > 1}):
        raise ValueError(f"{field} must not repeat a {key}; repeated: {', '.join(repeated)}")


def _labels_map(description: str, *, operator_labels_allowed: bool = True) -> Any:
    """A map of labels (or annotations), bounded for the cost of CEL rules over it."""
    rules: list[tuple[str, str]] = []
    if not operator_labels_allowed:
        keys = ", ".join(f"'{k}'" for k in OPERATOR_LABELS)
        rules.append(
            (
                f"self.all(k, !(k in [{keys}]))",
                "pod.labels must not set the operator's own labels (app.kubernetes.io/name, "
                "instance, component, managed-by, version): selectors depend on them",
            )
        )

    def bound(schema: JsonDict) -> None:
        schema["maxProperties"] = MAX_LABELS
        if rules:
            schema.update(cel(*rules))

    return Field(default_factory=dict, description=description, json_schema_extra=bound)


class PullPolicy(StrEnum):
    ALWAYS = "Always"
    IF_NOT_PRESENT = "IfNotPresent"
    NEVER = "Never"


class ProbeTimings(ApiModel):
    """Timing of one probe; the action (the component's health endpoint) is the operator's."""

    initial_delay_seconds: int | None = Field(
        default=None, ge=0, le=MAX_PROBE_SECONDS, description="Seconds before the first probe."
    )
    period_seconds: int | None = Field(
        default=None, ge=1, le=MAX_PROBE_SECONDS, description="Seconds between probes."
    )
    timeout_seconds: int | None = Field(
        default=None, ge=1, le=MAX_PROBE_SECONDS, description="Seconds a probe may take."
    )
    success_threshold: int | None = Field(
        default=None,
        ge=1,
        le=100,
        description="Successes in a row that count as healthy (1 for liveness and startup).",
    )
    failure_threshold: int | None = Field(
        default=None, ge=1, le=100000, description="Failures in a row that count as unhealthy."
    )


def _one_success(probe: str) -> tuple[str, str]:
    return (
        f"!has(self.{probe}) || !has(self.{probe}.successThreshold) || "
        f"self.{probe}.successThreshold == 1",
        f"probes.{probe}.successThreshold must be 1: Kubernetes allows no other value for a "
        f"{probe} probe",
    )


class Probes(ApiModel):
    """Timings of the Retool container's probes."""

    model_config = ConfigDict(
        json_schema_extra=cel(_one_success("liveness"), _one_success("startup"))
    )

    startup: ProbeTimings | None = Field(
        default=None,
        description="Startup probe: holds the others off while the container starts (the "
        "jobs-runner's covers spec.upgrade.migrationDeadline, else a week).",
    )
    readiness: ProbeTimings | None = Field(
        default=None, description="Readiness probe: when the pod receives traffic."
    )
    liveness: ProbeTimings | None = Field(
        default=None, description="Liveness probe: when the container is restarted."
    )

    @model_validator(mode="after")
    def _one_success_only(self) -> Probes:
        for name in ("liveness", "startup"):
            probe: ProbeTimings | None = getattr(self, name)
            if probe is not None and probe.success_threshold not in (None, 1):
                raise ValueError(f"probes.{name}.successThreshold must be 1")
        return self


def _mount_paths_unique() -> JsonDict:
    return _unique("volumeMounts", key="mountPath")


class ContainerSettings(ApiModel):
    """Settings of the Retool container (not of sidecars, which carry their own)."""

    security_context: kubernetes_types.SecurityContext | None = Field(
        default=None,
        description="The Retool container's securityContext, over the operator's defaults "
        "(no privilege escalation, all capabilities dropped).",
    )
    volume_mounts: list[kubernetes_types.VolumeMount] = Field(
        default_factory=list,
        max_length=MAX_NAMED_ITEMS,
        description="Volumes mounted into the Retool container; each names a volume of pod.volumes "
        "(a component's mounts may also name a shared volume).",
        json_schema_extra=_mount_paths_unique(),
    )
    image_pull_policy: PullPolicy | None = Field(
        default=None,
        description="Always, IfNotPresent or Never; unset, Kubernetes' default for the tag.",
    )
    probes: Probes | None = Field(default=None, description="Probe timings.")
    pre_stop_sleep_seconds: int | None = Field(
        default=None,
        ge=0,
        le=MAX_GRACE_SECONDS,
        description="Seconds the container waits in preStop before it gets SIGTERM, so that load "
        "balancers stop sending it traffic first; 0 for none. Default 30 on the api, as "
        "Retool's Helm chart.",
    )

    @field_validator("volume_mounts")
    @classmethod
    def _unique_mount_paths(cls, mounts: list[JsonDict]) -> list[JsonDict]:
        _check_unique(mounts, "mountPath", "volumeMounts")
        return mounts


class PodSettings(ApiModel):
    """Settings of the pods, as in a PodSpec and its metadata."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            (
                "!has(self.sidecars) || !has(self.initContainers) || "
                "self.sidecars.all(s, !self.initContainers.exists(i, i.name == s.name))",
                "pod.sidecars and pod.initContainers must not share a name",
            )
        )
    )

    labels: dict[str, str] = _labels_map("Labels added to the pods.", operator_labels_allowed=False)
    annotations: dict[str, str] = _labels_map("Annotations added to the pods.")
    node_selector: dict[str, str] = _labels_map("Node labels the pods must run on.")
    tolerations: list[kubernetes_types.Toleration] | None = Field(
        default=None, max_length=MAX_NAMED_ITEMS, description="Taints the pods tolerate."
    )
    affinity: kubernetes_types.Affinity | None = Field(
        default=None, description="Node affinity and pod (anti-)affinity of the pods."
    )
    topology_spread_constraints: list[kubernetes_types.TopologySpreadConstraint] | None = Field(
        default=None,
        max_length=MAX_CONTAINERS,
        description="How the pods spread across zones or nodes.",
    )
    priority_class_name: str | None = Field(
        default=None,
        pattern=DNS_SUBDOMAIN_PATTERN,
        max_length=MAX_NAME_LENGTH,
        description="PriorityClass of the pods.",
        json_schema_extra=cel_pattern(
            "pod.priorityClassName must be the name of a PriorityClass: lowercase letters, "
            "digits, '-' and '.'"
        ),
    )
    security_context: kubernetes_types.PodSecurityContext | None = Field(
        default=None,
        description="The pods' securityContext, over the operator's default (seccomp "
        "RuntimeDefault).",
    )
    termination_grace_period_seconds: int | None = Field(
        default=None,
        ge=0,
        le=MAX_GRACE_SECONDS,
        description="Seconds a pod may take to stop. Default 391 on the api and the code "
        "executor, as Retool's Helm chart, so that running queries finish.",
    )
    host_aliases: list[kubernetes_types.HostAlias] | None = Field(
        default=None, max_length=MAX_NAMED_ITEMS, description="Entries added to /etc/hosts."
    )
    volumes: list[kubernetes_types.Volume] = Field(
        default_factory=list,
        max_length=MAX_NAMED_ITEMS,
        description="Volumes of the pods (a database CA, config files, ...).",
        json_schema_extra=_unique("pod.volumes"),
    )
    init_containers: list[kubernetes_types.Container] = Field(
        default_factory=list,
        max_length=MAX_CONTAINERS,
        description="Containers that run to completion before Retool starts.",
        json_schema_extra=_not_retool_container("pod.initContainers"),
    )
    sidecars: list[kubernetes_types.Container] = Field(
        default_factory=list,
        max_length=MAX_CONTAINERS,
        description="Extra containers beside Retool's (a Cloud SQL proxy, ...).",
        json_schema_extra=_not_retool_container("pod.sidecars"),
    )

    @model_validator(mode="after")
    def _names(self) -> PodSettings:
        _check_unique(self.volumes, "name", "pod.volumes")
        for field, containers in (
            ("pod.initContainers", self.init_containers),
            ("pod.sidecars", self.sidecars),
        ):
            _check_unique(containers, "name", field)
            names = {str(c.get("name")) for c in containers}
            if clash := sorted(names & set(RETOOL_CONTAINER_NAMES)):
                raise ValueError(f"{field} must not be named like a Retool container: {clash}")
        _check_unique(self.init_containers + self.sidecars, "name", "pod containers")
        if taken := sorted(set(OPERATOR_LABELS) & set(self.labels)):
            raise ValueError(f"pod.labels must not set the operator's own labels: {taken}")
        return self


def _env_field(description: str) -> Any:
    return Field(
        default_factory=list,
        max_length=MAX_ENV_VARS,
        description=description,
        json_schema_extra=cel(
            (
                "self.all(e, self.exists_one(f, f.name == e.name))",
                "env names must be unique: each variable may appear only once",
            )
        ),
    )


class Settings(ApiModel):
    """Settings that exist once for all components (spec) and once per component."""

    env: list[EnvVar] = _env_field(
        "Extra environment variables; a variable the operator sets is replaced by one of the "
        "same name."
    )
    env_from: list[kubernetes_types.EnvFromSource] | None = Field(
        default=None,
        max_length=MAX_NAMED_ITEMS,
        description="Secrets and ConfigMaps whose keys become environment variables.",
    )
    pod: PodSettings = Field(
        default_factory=PodSettings,
        description="Pod settings: labels, scheduling, security, volumes, extra containers.",
    )
    container: ContainerSettings = Field(
        default_factory=ContainerSettings, description="Settings of the Retool container."
    )

    @field_validator("env")
    @classmethod
    def _unique_env_names(cls, env: list[EnvVar]) -> list[EnvVar]:
        names = [e.name for e in env]
        if repeated := sorted({n for n in names if names.count(n) > 1}):
            raise ValueError(f"env names must be unique; repeated: {', '.join(repeated)}")
        return env


class ComponentSpec(Settings):
    """Fields of every Retool component: its resources and its own settings."""

    resources: ResourceRequirements = Field(
        default_factory=ResourceRequirements, description="Container compute resources."
    )


class ReplicatedComponentSpec(ComponentSpec):
    """A component that may run several replicas, and so may have a PodDisruptionBudget."""

    pod_disruption_budget: PodDisruptionBudgetSpec | None = Field(
        default=None, description="When set, a PodDisruptionBudget protects the pods."
    )


class ApiSpec(ReplicatedComponentSpec):
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


class OptionalComponentSpec(ReplicatedComponentSpec):
    """An optional Deployment: every component but the api and the jobs-runner."""

    replicas: int = Field(default=1, ge=0, le=1000, description="Replicas of this component.")


class CodeExecutorMode(StrEnum):
    PRIVILEGED = "Privileged"
    UNPRIVILEGED = "Unprivileged"


DEFAULT_NSJAIL_SECCOMP_PROFILE = "profiles/nsjail-seccomp.json"


class CodeExecutorSpec(OptionalComponentSpec):
    """The code executor: privileged (the chart's default) or the chart's unprivileged mode."""

    mode: CodeExecutorMode = Field(
        default=CodeExecutorMode.PRIVILEGED,
        description="Privileged runs the nsjail sandbox in a privileged container (the chart's "
        "default). Unprivileged is the chart's useSeccompProfile mode: no privileged container, "
        "NET_ADMIN, an unmasked /proc, a user namespace (hostUsers: false) and a Localhost "
        "seccomp profile the nodes must already have (Kubernetes 1.33 or later).",
    )
    seccomp_profile: str = Field(
        default=DEFAULT_NSJAIL_SECCOMP_PROFILE,
        pattern=r"^[^\s]+$",
        max_length=MAX_NAME_LENGTH,
        description="Unprivileged mode: the Localhost seccomp profile, relative to the kubelet's "
        "seccomp directory (/var/lib/kubelet/seccomp), e.g. profiles/nsjail-seccomp.json.",
        json_schema_extra=cel_pattern(
            "spec.codeExecutor.seccompProfile must be a path without spaces, e.g. "
            "profiles/nsjail-seccomp.json"
        ),
    )


DEFAULT_TEMPORAL_PORT = 7233
DEFAULT_TEMPORAL_NAMESPACE = "workflows"
# The key names of the chart's own Secret entries (charts/retool/templates/secret.yaml).
DEFAULT_TEMPORAL_TLS_KEY_KEY = "temporal-tls-key"
DEFAULT_TEMPORAL_TLS_CERT_KEY = "temporal-tls-crt"
TEMPORAL_TLS_CERTIFICATES_MESSAGE = (
    "spec.temporal.tls.secretName is required when spec.temporal.tls.enabled is true: it names "
    "the Secret with the client certificate and key"
)


def _secret_key(field: str, default: str, description: str) -> Any:
    return Field(
        default=default,
        pattern=DATA_KEY_PATTERN,
        max_length=MAX_NAME_LENGTH,
        description=description,
        json_schema_extra=cel_pattern(
            f"spec.temporal.tls.{field} must be a Secret key: not empty, letters, digits, '-', "
            f"'_' and '.', e.g. {default}"
        ),
    )


class TemporalTlsSpec(ApiModel):
    """TLS to Temporal, as the chart's temporal.sslEnabled, sslCert and sslKey."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            # has(): the API server checks the rule against the `{}` default as well.
            (
                "!(has(self.enabled) && self.enabled) || has(self.secretName)",
                TEMPORAL_TLS_CERTIFICATES_MESSAGE,
            )
        )
    )

    enabled: bool = Field(default=False, description="Connect to Temporal over TLS.")
    secret_name: str | None = Field(
        default=None,
        pattern=DNS_SUBDOMAIN_PATTERN,
        max_length=MAX_NAME_LENGTH,
        description="Secret holding the client certificate and key, each base64-encoded PEM as "
        "the chart's sslCert and sslKey (Temporal Cloud's mTLS).",
        json_schema_extra=cel_pattern(
            "spec.temporal.tls.secretName must be the name of a Secret in this namespace, e.g. "
            "temporal-tls"
        ),
    )
    cert_key: str = _secret_key(
        "certKey",
        DEFAULT_TEMPORAL_TLS_CERT_KEY,
        "Key of the certificate (WORKFLOW_TEMPORAL_TLS_CRT).",
    )
    key_key: str = _secret_key(
        "keyKey",
        DEFAULT_TEMPORAL_TLS_KEY_KEY,
        "Key of the private key (WORKFLOW_TEMPORAL_TLS_KEY).",
    )

    @model_validator(mode="after")
    def _secret_when_enabled(self) -> TemporalTlsSpec:
        if self.enabled and self.secret_name is None:
            raise ValueError(TEMPORAL_TLS_CERTIFICATES_MESSAGE)
        return self


class TemporalSpec(ApiModel):
    """The Temporal cluster Retool Workflows runs on (the chart's `temporal` block)."""

    host: str = Field(
        min_length=1,
        max_length=MAX_NAME_LENGTH,
        pattern=HOST_PATTERN,
        description="Temporal frontend host, e.g. temporal-frontend.temporal or "
        "<namespace>.<account>.tmprl.cloud.",
        json_schema_extra=cel_pattern(
            "spec.temporal.host must be a host name without scheme, path or spaces, e.g. "
            "temporal-frontend.temporal"
        ),
    )
    port: int = Field(
        default=DEFAULT_TEMPORAL_PORT, ge=1, le=65535, description="Temporal frontend port."
    )
    namespace: str = Field(
        default=DEFAULT_TEMPORAL_NAMESPACE,
        min_length=1,
        max_length=MAX_NAME_LENGTH,
        pattern=HOST_PATTERN,
        description="Temporal namespace Retool's workflows run in.",
        json_schema_extra=cel_pattern(
            "spec.temporal.namespace must be a Temporal namespace without spaces or '/', e.g. "
            "workflows"
        ),
    )
    tls: TemporalTlsSpec = Field(
        default_factory=TemporalTlsSpec,
        description="TLS to Temporal.",
        json_schema_extra=DEFAULT_EMPTY_OBJECT,
    )


class ServiceType(StrEnum):
    CLUSTER_IP = "ClusterIP"
    NODE_PORT = "NodePort"
    LOAD_BALANCER = "LoadBalancer"


# A string in a list that a CEL rule reads: bounded, for the API server's cost estimate.
HostName = Annotated[str, StringConstraints(max_length=MAX_NAME_LENGTH)]
Cidr = Annotated[str, StringConstraints(max_length=64)]


class ExternalTrafficPolicy(StrEnum):
    CLUSTER = "Cluster"
    LOCAL = "Local"


class ServiceSpec(ApiModel):
    """The api Service."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            (
                "!has(self.nodePort) || self.type != 'ClusterIP'",
                "spec.service.nodePort needs type NodePort or LoadBalancer",
            ),
            (
                "!has(self.externalTrafficPolicy) || self.type != 'ClusterIP'",
                "spec.service.externalTrafficPolicy needs type NodePort or LoadBalancer",
            ),
            (
                "!has(self.loadBalancerClass) || self.type == 'LoadBalancer'",
                "spec.service.loadBalancerClass needs type LoadBalancer",
            ),
            (
                "!has(self.loadBalancerSourceRanges) || self.type == 'LoadBalancer'",
                "spec.service.loadBalancerSourceRanges needs type LoadBalancer",
            ),
        )
    )

    type: ServiceType = Field(
        default=ServiceType.CLUSTER_IP, description="Service type of the api."
    )
    port: int = Field(default=80, ge=1, le=65535, description="Service port (targets 3000).")
    annotations: dict[str, str] = _labels_map(
        "Annotations on the api Service (e.g. load balancer settings)."
    )
    labels: dict[str, str] = _labels_map("Labels added to the api Service.")
    load_balancer_class: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_NAME_LENGTH,
        description="Load balancer implementation (type LoadBalancer only).",
    )
    load_balancer_source_ranges: list[Cidr] | None = Field(
        default=None,
        max_length=MAX_NAMED_ITEMS,
        description="Client CIDRs the load balancer admits (type LoadBalancer only).",
        json_schema_extra=cel(
            (
                f"self.all(r, r.matches({cel_literal(CIDR_PATTERN)}))",
                "spec.service.loadBalancerSourceRanges must be CIDRs such as 10.0.0.0/8",
            )
        ),
    )
    external_traffic_policy: ExternalTrafficPolicy | None = Field(
        default=None,
        description="Cluster or Local (NodePort and LoadBalancer only; Local keeps client IPs).",
    )
    node_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="Node port of a NodePort or LoadBalancer Service; unset, one is chosen.",
    )

    @field_validator("load_balancer_source_ranges")
    @classmethod
    def _cidrs(cls, ranges: list[str] | None) -> list[str] | None:
        for cidr in ranges or []:
            if len(cidr) > 64 or not re.fullmatch(CIDR_PATTERN, cidr):
                raise ValueError(f"{cidr!r} is not a CIDR such as 10.0.0.0/8")
        return ranges

    @model_validator(mode="after")
    def _type_fits(self) -> ServiceSpec:
        cluster_ip = self.type is ServiceType.CLUSTER_IP
        if cluster_ip and (self.node_port is not None or self.external_traffic_policy):
            raise ValueError(
                "nodePort and externalTrafficPolicy need type NodePort or LoadBalancer"
            )
        if self.type is not ServiceType.LOAD_BALANCER and (
            self.load_balancer_class or self.load_balancer_source_ranges is not None
        ):
            raise ValueError(
                "loadBalancerClass and loadBalancerSourceRanges need type LoadBalancer"
            )
        return self


class ServiceAccountSpec(ApiModel):
    """The ServiceAccount every Retool pod runs as."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            (
                "!has(self.create) || self.create || has(self.name)",
                "spec.serviceAccount.name is required when create is false: name the existing "
                "ServiceAccount the pods run as",
            )
        )
    )

    create: bool = Field(
        default=True,
        description="Create the ServiceAccount (owned by the RetoolDeployment); false names an "
        "existing one.",
    )
    name: str | None = Field(
        default=None,
        pattern=DNS_SUBDOMAIN_PATTERN,
        max_length=MAX_NAME_LENGTH,
        description="Its name; default the RetoolDeployment's name.",
        json_schema_extra=cel_pattern(
            "spec.serviceAccount.name must be a ServiceAccount name: lowercase letters, digits, "
            "'-' and '.', starting and ending with a letter or digit"
        ),
    )
    annotations: dict[str, str] = _labels_map(
        "Annotations on the created ServiceAccount (cloud workload identity, e.g. "
        "eks.amazonaws.com/role-arn)."
    )
    labels: dict[str, str] = _labels_map("Labels added to the created ServiceAccount.")
    automount_token: bool = Field(
        default=False,
        description="Mount the ServiceAccount's API token into the pods; Retool itself does not "
        "need it.",
    )

    @model_validator(mode="after")
    def _named_unless_created(self) -> ServiceAccountSpec:
        if not self.create and self.name is None:
            raise ValueError("serviceAccount.name is required when create is false")
        return self


class PathType(StrEnum):
    EXACT = "Exact"
    PREFIX = "Prefix"
    IMPLEMENTATION_SPECIFIC = "ImplementationSpecific"


def _hostnames(field: str, description: str, max_items: int) -> Any:
    return Field(
        default_factory=list,
        max_length=max_items,
        description=description,
        json_schema_extra=cel(
            (
                f"self.all(h, h.matches({cel_literal(HOSTNAME_PATTERN)}))",
                f"{field} must be DNS names such as retool.example.com (or *.example.com)",
            )
        ),
    )


def _check_hostnames(hosts: list[str]) -> list[str]:
    for host in hosts:
        if len(host) > MAX_NAME_LENGTH or not re.fullmatch(HOSTNAME_PATTERN, host):
            raise ValueError(f"{host!r} is not a DNS name such as retool.example.com")
    return hosts


class IngressTls(ApiModel):
    """TLS for some of the Ingress's hosts."""

    hosts: list[HostName] = _hostnames(
        "spec.ingress.tls[].hosts",
        "Host names the certificate covers; each one of spec.ingress.hosts.",
        16,
    )
    secret_name: str | None = Field(
        default=None,
        pattern=DNS_SUBDOMAIN_PATTERN,
        max_length=MAX_NAME_LENGTH,
        description="Secret with the certificate (tls.crt, tls.key); unset, the controller's "
        "default.",
        json_schema_extra=cel_pattern(
            "spec.ingress.tls[].secretName must be the name of a Secret in this namespace"
        ),
    )

    _hosts = field_validator("hosts")(_check_hostnames)


class IngressSpec(ApiModel):
    """An Ingress `<name>` to the api Service."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            (
                "!has(self.tls) || self.tls.all(t, !has(t.hosts) || "
                "t.hosts.all(h, has(self.hosts) && h in self.hosts))",
                "spec.ingress.tls[].hosts must each be one of spec.ingress.hosts",
            )
        )
    )

    class_name: str | None = Field(
        default=None,
        pattern=DNS_SUBDOMAIN_PATTERN,
        max_length=MAX_NAME_LENGTH,
        description="IngressClass; unset, the cluster's default class.",
        json_schema_extra=cel_pattern("spec.ingress.className must be the name of an IngressClass"),
    )
    annotations: dict[str, str] = _labels_map("Annotations on the Ingress.")
    labels: dict[str, str] = _labels_map("Labels added to the Ingress.")
    hosts: list[HostName] = _hostnames(
        "spec.ingress.hosts", "Host names the Ingress serves; none: every host.", 16
    )
    tls: list[IngressTls] = Field(
        default_factory=list, max_length=8, description="TLS certificates by host."
    )
    path: str = Field(
        default="/",
        pattern=r"^/",
        max_length=1024,
        description="Path routed to the api.",
        json_schema_extra=cel_pattern("spec.ingress.path must start with '/'"),
    )
    path_type: PathType = Field(
        default=PathType.IMPLEMENTATION_SPECIFIC,
        description="Exact, Prefix or ImplementationSpecific (Retool's Helm chart's default).",
    )

    _hosts = field_validator("hosts")(_check_hostnames)

    @model_validator(mode="after")
    def _tls_hosts_served(self) -> IngressSpec:
        if stray := sorted({h for t in self.tls for h in t.hosts} - set(self.hosts)):
            raise ValueError(f"spec.ingress.tls[].hosts must each be one of hosts: {stray}")
        return self


class ParentReference(ApiModel):
    """A Gateway (or listener) the HTTPRoute attaches to, as in Gateway API."""

    group: str | None = Field(
        default=None, max_length=MAX_NAME_LENGTH, description="API group; default Gateway API's."
    )
    kind: str | None = Field(default=None, max_length=63, description="Kind; default Gateway.")
    namespace: str | None = Field(
        default=None,
        pattern=DNS_LABEL_PATTERN,
        max_length=63,
        description="Namespace of the Gateway; default the RetoolDeployment's.",
    )
    name: str = Field(min_length=1, max_length=MAX_NAME_LENGTH, description="Name of the Gateway.")
    section_name: str | None = Field(
        default=None, max_length=MAX_NAME_LENGTH, description="Listener of the Gateway."
    )
    port: int | None = Field(default=None, ge=1, le=65535, description="Port of the Gateway.")


class HttpRouteSpec(ApiModel):
    """A Gateway API HTTPRoute `<name>` to the api Service."""

    parent_refs: list[ParentReference] = Field(
        min_length=1, max_length=32, description="Gateways the route attaches to."
    )
    hostnames: list[HostName] = _hostnames(
        "spec.httpRoute.hostnames", "Host names the route matches; none: every host.", 16
    )
    annotations: dict[str, str] = _labels_map("Annotations on the HTTPRoute.")
    labels: dict[str, str] = _labels_map("Labels added to the HTTPRoute.")

    _hosts = field_validator("hostnames")(_check_hostnames)


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


def cel_release_key(tag: str) -> str:
    """CEL: a tag's MAJOR.MINOR.PATCH as one integer, ordered as the releases are."""
    parts = f"{tag}.split('.')"
    return (
        f"(int({parts}[0]) * 1000000000000 + int({parts}[1]) * 1000000 + "
        f"int({parts}[2].split('-')[0]))"
    )


def release_key(tag: str) -> tuple[int, int, int]:
    """A tag's (MAJOR, MINOR, PATCH), as cel_release_key orders them."""
    major, minor, rest = tag.split(".", 2)
    return (int(major), int(minor), int(rest.split("-", 1)[0]))


_VIA_ASCENDING = (
    f"self.all(a, self.exists_one(b, {cel_release_key('b')} == {cel_release_key('a')})) && "
    f"self.map(v, {cel_release_key('v')}).isSorted()"
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
        description="How long the migration may go without progress (a new row in the "
        "migrations table, a statement running in the database) before it is judged failed.",
        json_schema_extra=_timeout("migrationTimeout"),
    )
    verify_timeout: str = Field(
        default="10m",
        pattern=DURATION_PATTERN,
        max_length=MAX_DURATION_LENGTH,
        description="How long every component may take to run the new version and be Ready.",
        json_schema_extra=_timeout("verifyTimeout"),
    )
    migration_deadline: str | None = Field(
        default=None,
        pattern=DURATION_PATTERN,
        max_length=MAX_DURATION_LENGTH,
        description="Optional cap on the whole MigratingDatabase step, progress or not (e.g. "
        "20h); migrationTimeout counts from the last progress seen.",
        json_schema_extra=_timeout("migrationDeadline"),
    )
    auto_rollback: bool = Field(
        default=True, description="On failure, put every component back on the previous version."
    )
    # The tags' shape is checked by the list's CEL rule (and _ascending), not by an items
    # pattern: the API server skips CEL rules once a pattern fails, and says less.
    via: list[Annotated[str, Field(max_length=MAX_TAG_LENGTH)]] = Field(
        default_factory=list,
        max_length=MAX_VIA_HOPS,
        description="Intermediate versions to upgrade through, in ascending order, on the way "
        "to spec.version (each a full phased upgrade). Retool upgrades through each stable "
        "release it jumps over; versions at or below the running one are hops already passed.",
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.all(v, v.matches("
                    + cel_literal(VERSION_PATTERN)
                    + ")) && ("
                    + _VIA_ASCENDING
                    + ")",
                    "message": "spec.upgrade.via must list version tags (MAJOR.MINOR.PATCH"
                    "[-suffix]) in strictly ascending order",
                }
            ]
        },
    )

    @field_validator("migration_timeout", "verify_timeout", "migration_deadline")
    @classmethod
    def _zero_to_a_week(cls, text: str | None) -> str | None:
        if text is not None and not 0 < parse_duration(text) <= MAX_TIMEOUT_HOURS * 3600:
            raise ValueError(f"{text!r} is not longer than zero and at most {MAX_TIMEOUT_HOURS}h")
        return text

    @field_validator("via")
    @classmethod
    def _ascending(cls, via: list[str]) -> list[str]:
        malformed = [v for v in via if not re.fullmatch(VERSION_PATTERN, v)]
        if malformed:
            raise ValueError(f"spec.upgrade.via: {malformed[0]!r} is not a version tag")
        keys = [release_key(v) for v in via]
        if keys != sorted(set(keys)):
            raise ValueError(f"spec.upgrade.via {via} is not in strictly ascending order")
        return via


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


def _has(path: str) -> str:
    """CEL: every step of a dotted path under `self` is set."""
    parts = path.split(".")
    return " && ".join(f"has(self.{'.'.join(parts[: i + 1])})" for i in range(len(parts)))


def _volume_in(scope: str) -> str:
    """CEL: mount `m` names a volume of `scope`'s pod ('' is the shared one)."""
    pod = f"{scope}.pod" if scope else "pod"
    return f"({_has(pod + '.volumes')} && self.{pod}.volumes.exists(v, v.name == m.name))"


def _mounts_name_volumes() -> JsonDict:
    """CEL rules: every volumeMount names a volume its pods have (shared or the component's)."""
    rules = [
        {
            "rule": f"!({_has('container.volumeMounts')}) || "
            f"self.container.volumeMounts.all(m, {_volume_in('')})",
            "message": "spec.container.volumeMounts[].name must name a volume of spec.pod.volumes",
            "fieldPath": ".container.volumeMounts",
        }
    ]
    for component in Component:
        field = to_camel(component.field)
        rules.append(
            {
                "rule": f"!({_has(field + '.container.volumeMounts')}) || "
                f"self.{field}.container.volumeMounts.all(m, {_volume_in(field)} || "
                f"{_volume_in('')})",
                "message": f"spec.{field}.container.volumeMounts[].name must name a volume of "
                f"spec.{field}.pod.volumes or spec.pod.volumes",
                "fieldPath": f".{field}.container.volumeMounts",
            }
        )
    rules.append(
        {
            "rule": f"!({_has('upgrade.via')}) || self.upgrade.via.all(v, "
            f"{cel_release_key('v')} < {cel_release_key('self.version')})",
            "message": "spec.upgrade.via must name only versions below spec.version: they are "
            "the intermediate hops on the way to it",
            "fieldPath": ".upgrade.via",
        }
    )
    return {"x-kubernetes-validations": rules}


TEMPORAL_REQUIRED_MESSAGE = (
    "spec.temporal.host is required when spec.workflowsBackend, spec.workflowsWorker, "
    "spec.agentWorker or spec.agentEvalWorker is set: Retool Workflows and Agents run on Temporal"
)
AGENTS_NEED_WORKFLOWS_MESSAGE = (
    "spec.workflowsBackend is required when spec.agentWorker or spec.agentEvalWorker is set: "
    "the agent workers run on Retool Workflows (the chart's agents.enabled turns it on)"
)
_ON_TEMPORAL = ("workflowsBackend", "workflowsWorker", "agentWorker", "agentEvalWorker")
_AGENTS = ("agentWorker", "agentEvalWorker")


def _any_of(fields: tuple[str, ...]) -> str:
    return " || ".join(f"has(self.{f})" for f in fields)


def _spec_rules() -> JsonDict:
    """The spec's cross-field rules: volume mounts name volumes; workflows have a Temporal."""
    rules = _mounts_name_volumes()
    rules["x-kubernetes-validations"].append(
        {
            "rule": f"!({_any_of(_ON_TEMPORAL)}) || has(self.temporal)",
            "message": TEMPORAL_REQUIRED_MESSAGE,
            "fieldPath": ".temporal",
        }
    )
    rules["x-kubernetes-validations"].append(
        {
            "rule": f"!({_any_of(_AGENTS)}) || has(self.workflowsBackend)",
            "message": AGENTS_NEED_WORKFLOWS_MESSAGE,
            "fieldPath": ".workflowsBackend",
        }
    )
    return rules


class RetoolDeploymentSpec(Settings):
    """Desired state of a self-hosted Retool: its version, database, Secrets and components.

    The settings it shares with the components (env, envFrom, pod, container) apply to every
    component; a component's own value wins (core/settings.py).
    """

    model_config = ConfigDict(json_schema_extra=_spec_rules())

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
        default=None,
        description="When set, runs a workflows-backend Deployment and Service; needs "
        "spec.temporal.",
    )
    workflows_worker: OptionalComponentSpec | None = Field(
        default=None,
        description="When set, runs a workflows-worker Deployment and Service; needs "
        "spec.temporal.",
    )
    code_executor: CodeExecutorSpec | None = Field(
        default=None, description="When set, runs a code-executor Deployment and Service."
    )
    db_connector: OptionalComponentSpec | None = Field(
        default=None,
        description="When set, runs the standalone db connector (DB_CONNECTOR,DB_SSH_CONNECTOR) "
        "and the api and workflows backend stop running it in-process.",
    )
    multiplayer: OptionalComponentSpec | None = Field(
        default=None,
        description="When set, runs the multiplayer service (MULTIPLAYER_SERVICE), routed at "
        "/api/multiplayer by the Ingress and HTTPRoute. Retool calls it experimental.",
    )
    agent_worker: OptionalComponentSpec | None = Field(
        default=None,
        description="When set, runs the Retool Agents worker (Temporal task queue agent); "
        "needs spec.workflowsBackend and spec.temporal.",
    )
    agent_eval_worker: OptionalComponentSpec | None = Field(
        default=None,
        description="When set, runs the Retool Agents evaluation worker (task queue "
        "agent-eval); needs spec.workflowsBackend and spec.temporal.",
    )
    temporal: TemporalSpec | None = Field(
        default=None,
        description="The Temporal cluster of Retool Workflows; required by the workflows "
        "backend and worker.",
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
    service_account: ServiceAccountSpec = Field(
        default_factory=ServiceAccountSpec,
        description="The ServiceAccount every Retool pod runs as.",
        json_schema_extra=DEFAULT_EMPTY_OBJECT,
    )
    ingress: IngressSpec | None = Field(
        default=None, description="When set, an Ingress <name> routes to the api Service."
    )
    http_route: HttpRouteSpec | None = Field(
        default=None,
        description="When set, a Gateway API HTTPRoute <name> routes to the api Service.",
    )
    paused: bool = Field(default=False, description="When true, the operator changes no child.")

    @model_validator(mode="after")
    def _mounts_name_volumes(self) -> RetoolDeploymentSpec:
        shared = {v.get("name") for v in self.pod.volumes}
        for m in self.container.volume_mounts:
            if m.get("name") not in shared:
                raise ValueError(f"spec.container.volumeMounts: no volume {m.get('name')!r}")
        for component in Component:
            section: ComponentSpec | None = getattr(self, component.field)
            if section is None:
                continue
            own = shared | {v.get("name") for v in section.pod.volumes}
            for m in section.container.volume_mounts:
                if m.get("name") not in own:
                    raise ValueError(
                        f"spec.{to_camel(component.field)}.container.volumeMounts: "
                        f"no volume {m.get('name')!r}"
                    )
        return self

    @model_validator(mode="after")
    def _workflows_have_temporal(self) -> RetoolDeploymentSpec:
        agents = self.agent_worker is not None or self.agent_eval_worker is not None
        workflows = self.workflows_backend is not None or self.workflows_worker is not None
        if (workflows or agents) and self.temporal is None:
            raise ValueError(TEMPORAL_REQUIRED_MESSAGE)
        if agents and self.workflows_backend is None:
            raise ValueError(AGENTS_NEED_WORKFLOWS_MESSAGE)
        return self

    @model_validator(mode="after")
    def _via_below_version(self) -> RetoolDeploymentSpec:
        beyond = [v for v in self.upgrade.via if release_key(v) >= release_key(self.version)]
        if beyond:
            raise ValueError(f"spec.upgrade.via: {beyond[0]} is not below spec.version")
        return self


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


class MigrationProgress(ApiModel):
    """What the database showed of a running migration (docs/design.md §11)."""

    migrations_seen: int | None = Field(
        default=None, description="Rows in the migrations table at the last progress seen."
    )
    running_statements: int = Field(
        default=0, description="Statements of other sessions running at the last probe."
    )
    last_progress_at: Timestamp = Field(
        description="When progress was last seen (the step's start until then)."
    )
    progress: str = Field(default="", description="What the last progress was.")
    stall_reported: bool = Field(
        default=False, description="Whether the stall Event for this quiet spell was sent."
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
    target: str | None = Field(
        default=None, description="The overall target (spec.version) this hop is on the way to."
    )
    hop: int = Field(default=1, ge=1, description="Which hop of the upgrade path this is.")
    hops: int = Field(default=1, ge=1, description="How many hops the path has in all.")
    path: str = Field(default="1/1", description="hop/hops, as `kubectl get -o wide` shows it.")
    path_left: list[str] = Field(
        default_factory=list, description="The versions still to pass after this hop, in order."
    )
    migration: MigrationProgress | None = Field(
        default=None, description="Progress of the migration, while MigratingDatabase."
    )


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
    summary: str | None = Field(
        default=None,
        description="READY/REPLICAS VERSION, e.g. '2/2 3.196.1-stable', for kubectl get -o wide.",
    )


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
    running_statements: int | None = Field(
        default=None, description="Statements of other sessions running (a migration at work)."
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
    db_connector: ComponentStatus | None = Field(
        default=None, description="The db-connector Deployment, when spec asks for one."
    )
    multiplayer: ComponentStatus | None = Field(
        default=None, description="The multiplayer Deployment, when spec asks for one."
    )
    agent_worker: ComponentStatus | None = Field(
        default=None, description="The agent-worker Deployment, when spec asks for one."
    )
    agent_eval_worker: ComponentStatus | None = Field(
        default=None, description="The agent-eval-worker Deployment, when spec asks for one."
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


ConditionType = Literal["Ready", "Reconciling", "Stalled", "DatabaseReachable"]
