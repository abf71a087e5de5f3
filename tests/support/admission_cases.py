"""RetoolDeployments that admission must refuse or admit, shared by unit and end-to-end tests.

tests/e2e/test_admission.py sends each to a real API server; tests/unit/test_crd.py checks that
the pydantic models agree with it and that every CEL rule of the CRD has a case here.
Each invalid case breaks one rule of an otherwise valid object: the API server skips the CEL
rules of an object that already fails its OpenAPI schema, so two faults could hide one another.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from retool_operator.core import models
from retool_operator.core.models import API_VERSION, KIND, RetoolDeploymentStatus
from tests.support.production import production_spec

DELETE = object()
"""In a change, removes the key instead of setting it."""


def minimal_object(name: str = "retool") -> dict[str, Any]:
    """The smallest valid RetoolDeployment: only the required fields."""
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": name},
        "spec": {
            "version": "3.196.1-stable",
            "database": {
                "host": "postgres.example.com",
                "passwordSecretRef": {"name": "retool-db"},
            },
            "secretRef": {"name": "retool-secrets"},
        },
    }


def merged(base: dict[str, Any], change: dict[str, Any]) -> dict[str, Any]:
    """`base` with `change` merged in: maps recursively, anything else replaced, DELETE removes."""
    result = copy.deepcopy(base)
    for key, value in change.items():
        if value is DELETE:
            result.pop(key, None)
        elif isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merged(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


@dataclass(frozen=True)
class Case:
    """One object to submit: the minimal object with `change` merged in."""

    id: str
    change: dict[str, Any]
    # For a refusal: the field path the API server's message must name, and a fragment of the
    # message that shows which rule refused it.
    field: str = ""
    says: str = ""
    # False where the rule is about something no model describes (metadata.name), or is
    # Kubernetes' own schema of an embedded pod type, which the models take as given.
    model_refuses: bool = True

    def object(self, name: str = "retool") -> dict[str, Any]:
        """The object to submit."""
        return merged(minimal_object(name), self.change)


TEMPORAL = {"host": "temporal-frontend.temporal"}


def _spec(**change: Any) -> dict[str, Any]:
    return {"spec": change}


def _env(*names: str) -> list[dict[str, str]]:
    return [{"name": n, "value": "x"} for n in names]


def _volume(name: str) -> dict[str, Any]:
    return {"name": name, "emptyDir": {}}


def _container(name: str) -> dict[str, Any]:
    return {"name": name, "image": "busybox:1.37"}


COMPONENT_FIELDS = (
    "api",
    "jobsRunner",
    "workflowsBackend",
    "workflowsWorker",
    "codeExecutor",
    "dbConnector",
    "multiplayer",
    "agentWorker",
    "agentEvalWorker",
)


_NAME_41 = "r" * 41

INVALID = [
    # --- CEL rules (x-kubernetes-validations), each with its own message -----------------------
    Case("version-without-patch", _spec(version="3.196"), "spec.version", "MAJOR.MINOR.PATCH"),
    Case("version-latest", _spec(version="latest"), "spec.version", "MAJOR.MINOR.PATCH"),
    Case(
        "image-with-tag",
        _spec(image="tryretool/backend:3.196.1"),
        "spec.image",
        "without tag or digest",
    ),
    Case("image-empty", _spec(image=""), "spec.image", "without tag or digest"),
    Case(
        "code-executor-image-with-digest",
        _spec(codeExecutorImage="tryretool/code-executor-service@sha256:0123abcd"),
        "spec.codeExecutorImage",
        "without tag or digest",
    ),
    Case(
        "jobs-runner-two-replicas",
        _spec(jobsRunner={"replicas": 2}),
        "spec.jobsRunner.replicas",
        "must be 1",
    ),
    Case(
        "jobs-runner-zero-replicas",
        _spec(jobsRunner={"replicas": 0}),
        "spec.jobsRunner.replicas",
        "must be a singleton",
    ),
    Case(
        "autoscaling-min-above-max",
        _spec(api={"autoscaling": {"minReplicas": 5, "maxReplicas": 3}}),
        "spec.api.autoscaling",
        "minReplicas must not be greater than maxReplicas",
    ),
    Case(
        "migration-timeout-not-a-duration",
        _spec(upgrade={"migrationTimeout": "soon"}),
        "spec.upgrade.migrationTimeout",
        "duration longer than zero",
    ),
    Case(
        "migration-timeout-negative",
        _spec(upgrade={"migrationTimeout": "-5m"}),
        "spec.upgrade.migrationTimeout",
        "duration longer than zero",
    ),
    Case(
        "migration-timeout-in-days",
        _spec(upgrade={"migrationTimeout": "1d"}),
        "spec.upgrade.migrationTimeout",
        "such as 90s, 30m or 1h30m",
    ),
    Case(
        "migration-timeout-over-a-week",
        _spec(upgrade={"migrationTimeout": "169h"}),
        "spec.upgrade.migrationTimeout",
        "at most 168h",
    ),
    Case(
        "migration-deadline-zero",
        _spec(upgrade={"migrationDeadline": "0s"}),
        "spec.upgrade.migrationDeadline",
        "duration longer than zero",
    ),
    Case(
        "via-not-ascending",
        _spec(version="3.300.0-stable", upgrade={"via": ["3.253.3-stable", "3.196.1-stable"]}),
        "spec.upgrade.via",
        "in strictly ascending order",
    ),
    Case(
        "via-twice-the-same-release",
        _spec(version="3.300.0-stable", upgrade={"via": ["3.196.1-stable", "3.196.1-edge"]}),
        "spec.upgrade.via",
        "in strictly ascending order",
    ),
    Case(
        "via-not-a-version",
        _spec(version="3.300.0-stable", upgrade={"via": ["latest"]}),
        "spec.upgrade.via",
        "in strictly ascending order",
    ),
    Case(
        "via-beyond-the-target",
        _spec(version="3.196.1-stable", upgrade={"via": ["3.253.3-stable"]}),
        "spec.upgrade.via",
        "only versions below spec.version",
    ),
    Case(
        "via-the-target-itself",
        _spec(version="3.196.1-stable", upgrade={"via": ["3.196.1-stable"]}),
        "spec.upgrade.via",
        "only versions below spec.version",
    ),
    Case(
        "via-too-many-hops",
        _spec(
            version="3.300.0-stable",
            upgrade={"via": [f"3.{minor}.0-stable" for minor in range(200, 209)]},
        ),
        "spec.upgrade.via",
        "must have at most 8 items",
    ),
    Case(
        "verify-timeout-zero",
        _spec(upgrade={"verifyTimeout": "0s"}),
        "spec.upgrade.verifyTimeout",
        "duration longer than zero",
    ),
    Case(
        "database-host-empty",
        _spec(database={"host": ""}),
        "spec.database.host",
        "host name or IP address",
    ),
    Case(
        "database-host-url",
        _spec(database={"host": "postgres://db.example.com:5432"}),
        "spec.database.host",
        "not a URL",
    ),
    Case(
        "migrations-table-not-an-identifier",
        _spec(database={"migrationsTable": "meta; drop table users"}),
        "spec.database.migrationsTable",
        "must be a table name",
    ),
    Case(
        "password-secret-name-empty",
        _spec(database={"passwordSecretRef": {"name": ""}}),
        "spec.database.passwordSecretRef.name",
        "must be the name of a Secret",
    ),
    Case(
        "password-secret-key-with-space",
        _spec(database={"passwordSecretRef": {"key": "db password"}}),
        "spec.database.passwordSecretRef.key",
        "must be a Secret key",
    ),
    Case(
        "secret-ref-name-not-a-dns-name",
        _spec(secretRef={"name": "Retool_Secrets"}),
        "spec.secretRef.name",
        "must be the name of a Secret",
    ),
    Case(
        "image-pull-secret-name-empty",
        _spec(imagePullSecrets=[{"name": ""}]),
        "spec.imagePullSecrets[0].name",
        "must be the name of a Secret",
    ),
    Case(
        "pdb-min-available-and-max-unavailable",
        _spec(api={"podDisruptionBudget": {"minAvailable": 1, "maxUnavailable": 1}}),
        "spec.api.podDisruptionBudget",
        "minAvailable or maxUnavailable, not both",
    ),
    Case(
        "pdb-min-available-not-a-percentage",
        _spec(api={"podDisruptionBudget": {"minAvailable": "lots"}}),
        "spec.api.podDisruptionBudget.minAvailable",
        "or a percentage such as 50%",
    ),
    Case(
        "pdb-max-unavailable-negative",
        _spec(api={"podDisruptionBudget": {"maxUnavailable": -1}}),
        "spec.api.podDisruptionBudget.maxUnavailable",
        "a number of pods (0 or more)",
    ),
    Case(
        "env-names-repeated",
        _spec(api={"env": _env("LOG_LEVEL", "TZ", "LOG_LEVEL")}),
        "spec.api.env",
        "env names must be unique",
    ),
    Case(
        "env-name-empty",
        _spec(jobsRunner={"env": _env("")}),
        "spec.jobsRunner.env[0].name",
        "env[].name must be a variable name",
    ),
    Case(
        "env-name-with-equals",
        _spec(api={"env": _env("A=B")}),
        "spec.api.env[0].name",
        "without spaces or '='",
    ),
    Case(
        "env-value-and-value-from",
        _spec(
            workflowsBackend={
                "env": [{"name": "A", "value": "x", "valueFrom": {"fieldRef": {"fieldPath": "x"}}}]
            },
            temporal=TEMPORAL,
        ),
        "spec.workflowsBackend.env[0]",
        "sets both value and valueFrom",
    ),
    Case(
        "resource-limit-not-a-quantity",
        _spec(api={"resources": {"limits": {"memory": "4 GB"}}}),
        "spec.api.resources.limits",
        "resources.limits values must be quantities",
    ),
    Case(
        "resource-request-negative",
        _spec(codeExecutor={"resources": {"requests": {"cpu": -1}}}),
        "spec.codeExecutor.resources.requests",
        "resources.requests values must be quantities",
    ),
    Case(
        "name-too-long",
        {"metadata": {"name": _NAME_41}},
        "metadata",
        "metadata.name must be at most 40 characters",
        model_refuses=False,
    ),
    Case(
        "name-with-a-dot",
        {"metadata": {"name": "retool.prod"}},
        "metadata",
        "starting with a letter",
        model_refuses=False,
    ),
    # --- OpenAPI keywords (required, enum, minimum/maximum, maxItems): the API server's messages
    # --- name the field and the bound, which is clear enough ----------------------------------
    Case("version-missing", _spec(version=DELETE), "spec.version", "Required value"),
    Case("secret-ref-missing", _spec(secretRef=DELETE), "spec.secretRef", "Required value"),
    Case(
        "autoscaling-without-max",
        _spec(api={"autoscaling": {"minReplicas": 2}}),
        "spec.api.autoscaling.maxReplicas",
        "Required value",
    ),
    Case(
        "api-replicas-negative",
        _spec(api={"replicas": -1}),
        "spec.api.replicas",
        "greater than or equal to 0",
    ),
    Case(
        "api-replicas-above-1000",
        _spec(api={"replicas": 1001}),
        "spec.api.replicas",
        "less than or equal to 1000",
    ),
    Case(
        "temporal-port-above-65535",
        _spec(temporal={**TEMPORAL, "port": 70000}),
        "spec.temporal.port",
        "less than or equal to 65535",
    ),
    Case("temporal-port-zero", _spec(temporal={**TEMPORAL, "port": 0}), "spec.temporal.port", "1"),
    Case(
        "code-executor-mode-unknown",
        _spec(codeExecutor={"mode": "Rootless"}),
        "spec.codeExecutor.mode",
        "Unsupported value",
    ),
    Case(
        "workflows-worker-replicas-above-1000",
        _spec(workflowsWorker={"replicas": 5000}, temporal=TEMPORAL),
        "spec.workflowsWorker.replicas",
        "less than or equal to 1000",
    ),
    Case(
        "database-port-zero",
        _spec(database={"port": 0}),
        "spec.database.port",
        "greater than or equal to 1",
    ),
    Case(
        "database-port-above-65535",
        _spec(database={"port": 65536}),
        "spec.database.port",
        "less than or equal to 65535",
    ),
    Case(
        "service-port-above-65535",
        _spec(service={"port": 70000}),
        "spec.service.port",
        "less than or equal to 65535",
    ),
    Case(
        "service-type-unknown",
        _spec(service={"type": "Ingress"}),
        "spec.service.type",
        "Unsupported value",
    ),
    Case(
        "ssl-mode-unknown",
        _spec(database={"sslMode": "sometimes"}),
        "spec.database.sslMode",
        "Unsupported value",
    ),
    Case(
        "upgrade-strategy-unknown",
        _spec(upgrade={"strategy": "BlueGreen"}),
        "spec.upgrade.strategy",
        "Unsupported value",
    ),
    Case(
        "too-many-env-vars",
        _spec(api={"env": _env(*(f"VAR_{i}" for i in range(129)))}),
        "spec.api.env",
        "must have at most 128 items",
    ),
    # --- pod, container, identity and traffic settings --------------------------------------
    Case(
        "volume-names-repeated",
        _spec(pod={"volumes": [_volume("ca"), _volume("ca")]}),
        "spec.pod.volumes",
        "must not repeat a name",
    ),
    Case(
        "component-volume-names-repeated",
        _spec(api={"pod": {"volumes": [_volume("a"), _volume("b"), _volume("a")]}}),
        "spec.api.pod.volumes",
        "must not repeat a name",
    ),
    Case(
        "init-container-names-repeated",
        _spec(pod={"initContainers": [_container("wait"), _container("wait")]}),
        "spec.pod.initContainers",
        "must not repeat a name",
    ),
    Case(
        "sidecar-names-repeated",
        _spec(jobsRunner={"pod": {"sidecars": [_container("proxy"), _container("proxy")]}}),
        "spec.jobsRunner.pod.sidecars",
        "must not repeat a name",
    ),
    Case(
        "sidecar-named-like-the-retool-container",
        _spec(pod={"sidecars": [_container("api")]}),
        "spec.pod.sidecars",
        "must not be named like a Retool container",
    ),
    Case(
        "init-container-named-like-the-retool-container",
        _spec(codeExecutor={"pod": {"initContainers": [_container("jobs-runner")]}}),
        "spec.codeExecutor.pod.initContainers",
        "must not be named like a Retool container",
    ),
    Case(
        "sidecar-and-init-container-share-a-name",
        _spec(pod={"sidecars": [_container("proxy")], "initContainers": [_container("proxy")]}),
        "spec.pod",
        "must not share a name",
    ),
    Case(
        "shared-volume-mount-names-no-volume",
        _spec(container={"volumeMounts": [{"name": "ca", "mountPath": "/ca"}]}),
        "spec.container.volumeMounts",
        "must name a volume of spec.pod.volumes",
    ),
    *(
        Case(
            f"{field}-volume-mount-names-no-volume",
            _spec(**{field: {"container": {"volumeMounts": [{"name": "ca", "mountPath": "/ca"}]}}}),
            f"spec.{field}.container.volumeMounts",
            f"spec.{field}.container.volumeMounts[].name must name a volume",
        )
        for field in COMPONENT_FIELDS
    ),
    Case(
        "workflows-without-temporal",
        _spec(workflowsWorker={}),
        "spec.temporal",
        "spec.temporal.host is required when spec.workflowsBackend, spec.workflowsWorker",
    ),
    Case(
        "agents-without-workflows",
        _spec(agentEvalWorker={}, temporal=TEMPORAL),
        "spec.workflowsBackend",
        "spec.workflowsBackend is required when spec.agentWorker or spec.agentEvalWorker",
    ),
    Case(
        "agents-without-temporal",
        _spec(agentWorker={}, workflowsBackend={}),
        "spec.temporal",
        "spec.temporal.host is required when",
    ),
    Case(
        "temporal-tls-without-its-secret",
        _spec(temporal={**TEMPORAL, "tls": {"enabled": True}}),
        "spec.temporal.tls",
        "spec.temporal.tls.secretName is required when spec.temporal.tls.enabled",
    ),
    Case(
        "temporal-host-with-scheme",
        _spec(temporal={"host": "https://temporal.example.com"}),
        "spec.temporal.host",
        "spec.temporal.host must be a host name without scheme",
    ),
    Case(
        "temporal-namespace-with-space",
        _spec(temporal={**TEMPORAL, "namespace": "my workflows"}),
        "spec.temporal.namespace",
        "spec.temporal.namespace must be a Temporal namespace",
    ),
    Case(
        "temporal-tls-secret-name-invalid",
        _spec(temporal={**TEMPORAL, "tls": {"enabled": True, "secretName": "Temporal_TLS"}}),
        "spec.temporal.tls.secretName",
        "spec.temporal.tls.secretName must be the name of a Secret",
    ),
    *(
        Case(
            f"temporal-tls-{key.lower()}-invalid",
            _spec(temporal={**TEMPORAL, "tls": {"enabled": True, "secretName": "t", key: "a b"}}),
            f"spec.temporal.tls.{key}",
            f"spec.temporal.tls.{key} must be a Secret key",
        )
        for key in ("certKey", "keyKey")
    ),
    Case(
        "code-executor-seccomp-profile-with-space",
        _spec(codeExecutor={"mode": "Unprivileged", "seccompProfile": "my profile.json"}),
        "spec.codeExecutor.seccompProfile",
        "spec.codeExecutor.seccompProfile must be a path without spaces",
    ),
    Case(
        "volume-mount-paths-repeated",
        _spec(
            pod={"volumes": [_volume("a"), _volume("b")]},
            container={
                "volumeMounts": [{"name": "a", "mountPath": "/x"}, {"name": "b", "mountPath": "/x"}]
            },
        ),
        "spec.container.volumeMounts",
        "must not repeat a mountPath",
    ),
    Case(
        "volume-mount-without-path",
        _spec(pod={"volumes": [_volume("a")]}, container={"volumeMounts": [{"name": "a"}]}),
        "spec.container.volumeMounts[0].mountPath",
        "Required value",
        model_refuses=False,
    ),
    Case(
        "volume-name-too-long",
        _spec(pod={"volumes": [_volume("v" * 64)]}),
        "spec.pod.volumes[0].name",
        "may not be more than 63 bytes",
        model_refuses=False,
    ),
    Case(
        "toleration-seconds-not-a-number",
        _spec(pod={"tolerations": [{"key": "k", "tolerationSeconds": "long"}]}),
        "spec.pod.tolerations[0].tolerationSeconds",
        "must be of type integer",
        model_refuses=False,
    ),
    Case(
        "topology-spread-without-topology-key",
        _spec(
            pod={
                "topologySpreadConstraints": [{"maxSkew": 1, "whenUnsatisfiable": "DoNotSchedule"}]
            }
        ),
        "spec.pod.topologySpreadConstraints[0].topologyKey",
        "Required value",
        model_refuses=False,
    ),
    Case(
        "pod-label-overrides-an-operator-label",
        _spec(pod={"labels": {"app.kubernetes.io/component": "api"}}),
        "spec.pod.labels",
        "must not set the operator's own labels",
    ),
    Case(
        "priority-class-name-not-a-name",
        _spec(api={"pod": {"priorityClassName": "High Priority"}}),
        "spec.api.pod.priorityClassName",
        "must be the name of a PriorityClass",
    ),
    Case(
        "negative-grace-period",
        _spec(pod={"terminationGracePeriodSeconds": -1}),
        "spec.pod.terminationGracePeriodSeconds",
        "greater than or equal to 0",
    ),
    Case(
        "negative-pre-stop-sleep",
        _spec(api={"container": {"preStopSleepSeconds": -5}}),
        "spec.api.container.preStopSleepSeconds",
        "greater than or equal to 0",
    ),
    Case(
        "probe-period-zero",
        _spec(container={"probes": {"readiness": {"periodSeconds": 0}}}),
        "spec.container.probes.readiness.periodSeconds",
        "greater than or equal to 1",
    ),
    Case(
        "probe-timeout-zero",
        _spec(jobsRunner={"container": {"probes": {"startup": {"timeoutSeconds": 0}}}}),
        "spec.jobsRunner.container.probes.startup.timeoutSeconds",
        "greater than or equal to 1",
    ),
    Case(
        "liveness-success-threshold-above-one",
        _spec(container={"probes": {"liveness": {"successThreshold": 2}}}),
        "spec.container.probes",
        "probes.liveness.successThreshold must be 1",
    ),
    Case(
        "startup-success-threshold-above-one",
        _spec(api={"container": {"probes": {"startup": {"successThreshold": 3}}}}),
        "spec.api.container.probes",
        "probes.startup.successThreshold must be 1",
    ),
    Case(
        "image-pull-policy-unknown",
        _spec(container={"imagePullPolicy": "Sometimes"}),
        "spec.container.imagePullPolicy",
        "Unsupported value",
    ),
    Case(
        "env-from-prefix-not-a-string",
        _spec(envFrom=[{"prefix": 3, "secretRef": {"name": "s"}}]),
        "spec.envFrom[0].prefix",
        "must be of type string",
        model_refuses=False,
    ),
    Case(
        "shared-env-names-repeated",
        _spec(env=_env("TZ", "TZ")),
        "spec.env",
        "env names must be unique",
    ),
    Case(
        "service-account-name-not-a-name",
        _spec(serviceAccount={"name": "Retool_SA"}),
        "spec.serviceAccount.name",
        "must be a ServiceAccount name",
    ),
    Case(
        "service-account-not-created-and-not-named",
        _spec(serviceAccount={"create": False}),
        "spec.serviceAccount",
        "name is required when create is false",
    ),
    Case(
        "node-port-on-a-cluster-ip-service",
        _spec(service={"nodePort": 30080}),
        "spec.service",
        "nodePort needs type NodePort or LoadBalancer",
    ),
    Case(
        "node-port-out-of-range",
        _spec(service={"type": "NodePort", "nodePort": 70000}),
        "spec.service.nodePort",
        "less than or equal to 65535",
    ),
    Case(
        "external-traffic-policy-on-a-cluster-ip-service",
        _spec(service={"externalTrafficPolicy": "Local"}),
        "spec.service",
        "externalTrafficPolicy needs type NodePort or LoadBalancer",
    ),
    Case(
        "external-traffic-policy-unknown",
        _spec(service={"type": "NodePort", "externalTrafficPolicy": "Nearest"}),
        "spec.service.externalTrafficPolicy",
        "Unsupported value",
    ),
    Case(
        "load-balancer-class-on-a-node-port-service",
        _spec(service={"type": "NodePort", "loadBalancerClass": "example.com/lb"}),
        "spec.service",
        "loadBalancerClass needs type LoadBalancer",
    ),
    Case(
        "load-balancer-source-ranges-on-a-cluster-ip-service",
        _spec(service={"loadBalancerSourceRanges": ["10.0.0.0/8"]}),
        "spec.service",
        "loadBalancerSourceRanges needs type LoadBalancer",
    ),
    Case(
        "load-balancer-source-range-not-a-cidr",
        _spec(service={"type": "LoadBalancer", "loadBalancerSourceRanges": ["office"]}),
        "spec.service.loadBalancerSourceRanges",
        "must be CIDRs",
    ),
    Case(
        "ingress-tls-host-not-served",
        _spec(ingress={"hosts": ["a.example.com"], "tls": [{"hosts": ["b.example.com"]}]}),
        "spec.ingress",
        "tls[].hosts must each be one of spec.ingress.hosts",
    ),
    Case(
        "ingress-host-not-a-dns-name",
        _spec(ingress={"hosts": ["https://retool.example.com"]}),
        "spec.ingress.hosts",
        "spec.ingress.hosts must be DNS names",
    ),
    Case(
        "ingress-tls-host-not-a-dns-name",
        _spec(ingress={"hosts": ["a.example.com"], "tls": [{"hosts": ["A B"]}]}),
        "spec.ingress.tls[0].hosts",
        "spec.ingress.tls[].hosts must be DNS names",
    ),
    Case(
        "ingress-tls-secret-not-a-name",
        _spec(ingress={"tls": [{"secretName": "TLS Cert"}]}),
        "spec.ingress.tls[0].secretName",
        "must be the name of a Secret",
    ),
    Case(
        "ingress-class-not-a-name",
        _spec(ingress={"className": "Nginx!"}),
        "spec.ingress.className",
        "must be the name of an IngressClass",
    ),
    Case(
        "ingress-path-relative",
        _spec(ingress={"path": "api"}),
        "spec.ingress.path",
        "must start with '/'",
    ),
    Case(
        "ingress-path-type-unknown",
        _spec(ingress={"pathType": "Regex"}),
        "spec.ingress.pathType",
        "Unsupported value",
    ),
    Case(
        "http-route-without-parent-refs",
        _spec(httpRoute={"parentRefs": []}),
        "spec.httpRoute.parentRefs",
        "should have at least 1 items",
    ),
    Case(
        "http-route-hostname-not-a-dns-name",
        _spec(httpRoute={"parentRefs": [{"name": "gw"}], "hostnames": ["retool.example.com."]}),
        "spec.httpRoute.hostnames",
        "spec.httpRoute.hostnames must be DNS names",
    ),
    Case(
        "workflows-pdb-min-and-max",
        _spec(
            workflowsBackend={"podDisruptionBudget": {"minAvailable": 1, "maxUnavailable": 1}},
            temporal=TEMPORAL,
        ),
        "spec.workflowsBackend.podDisruptionBudget",
        "minAvailable or maxUnavailable, not both",
    ),
]

VALID = [
    Case("minimal", {}),
    Case("old-plain-version", _spec(version="2.115.2")),
    Case("image-behind-registry-port", _spec(image="registry.example.com:5000/retool/backend")),
    Case("database-host-ipv6", _spec(database={"host": "fd00::5", "port": 6432})),
    Case("durations", _spec(upgrade={"migrationTimeout": "1h30m", "verifyTimeout": "1.5m"})),
    Case(
        "upgrade-path",
        _spec(
            version="4.34.0-stable",
            upgrade={
                "via": ["3.334.0-stable", "4.0.0-stable"],
                "migrationTimeout": "1h",
                "migrationDeadline": "20h",
            },
        ),
    ),
    Case(
        "autoscaling-min-equals-max",
        _spec(api={"autoscaling": {"minReplicas": 3, "maxReplicas": 3}}),
    ),
    Case("pdb-percentage", _spec(api={"podDisruptionBudget": {"minAvailable": "50%"}})),
    Case("pdb-count", _spec(api={"podDisruptionBudget": {"maxUnavailable": 0}})),
    Case(
        "env-value-from",
        _spec(
            api={
                "env": [
                    {"name": "LOG_LEVEL", "value": "debug"},
                    {
                        "name": "COOKIE_INSECURE",
                        "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}},
                    },
                ]
            }
        ),
    ),
    Case(
        "quantities",
        _spec(
            jobsRunner={
                "resources": {
                    "requests": {"cpu": "500m", "memory": "1Gi", "ephemeral-storage": 2},
                    "limits": {"cpu": 2, "memory": "1.5Gi", "nvidia.com/gpu": "1e0"},
                }
            }
        ),
    ),
    Case(
        "optional-components",
        _spec(
            workflowsBackend={},
            workflowsWorker={"replicas": 0},
            codeExecutor={"replicas": 2},
            temporal=TEMPORAL,
        ),
    ),
    Case("name-of-40-characters", {"metadata": {"name": "r" * 40}}),
    Case(
        "every-service-type",
        _spec(
            workflowsBackend={},
            workflowsWorker={},
            codeExecutor={"mode": "Unprivileged"},
            dbConnector={"replicas": 2, "podDisruptionBudget": {"maxUnavailable": 1}},
            multiplayer={},
            agentWorker={"replicas": 2},
            agentEvalWorker={},
            temporal={**TEMPORAL, "port": 7233, "tls": {"enabled": True, "secretName": "tls"}},
        ),
    ),
    Case("production", {"spec": production_spec()}),
    Case(
        "component-mount-of-a-shared-volume",
        _spec(
            pod={"volumes": [_volume("ca")]},
            jobsRunner={"container": {"volumeMounts": [{"name": "ca", "mountPath": "/ca"}]}},
        ),
    ),
    Case(
        "existing-service-account",
        _spec(serviceAccount={"create": False, "name": "retool.workload-identity"}),
    ),
    Case("node-port", _spec(service={"type": "NodePort", "nodePort": 30080})),
    Case("ingress-for-every-host", _spec(ingress={})),
    Case(
        "cleared-shared-list",
        _spec(pod={"tolerations": [{"operator": "Exists"}]}, api={"pod": {"tolerations": []}}),
    ),
]


MOMENT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def full_status() -> RetoolDeploymentStatus:
    """A status with every field set, as the operator could write it."""
    component = models.ComponentStatus(
        replicas=2, selector="a=b", ready_replicas=2, updated_replicas=2, version="3.196.1"
    )
    return RetoolDeploymentStatus(
        observed_generation=3,
        phase=models.Phase.UPGRADING,
        current_version="3.190.0",
        target_version="3.196.1",
        upgrade=models.UpgradeStatus(
            from_version="3.190.0",
            to="3.196.1",
            kind=models.ChangeKind.MINOR,
            strategy=models.UpgradeStrategy.RECREATE,
            step=models.Step.MIGRATING_DATABASE,
            started_at=MOMENT,
            step_started_at=MOMENT,
            attempt=2,
            saved_replicas={"api": 3},
            message="migrating",
        ),
        retry_token="1",
        api=component,
        jobs_runner=component,
        workflows_backend=component,
        workflows_worker=component,
        code_executor=component,
        db_connector=component,
        multiplayer=component,
        agent_worker=component,
        agent_eval_worker=component,
        history=[
            models.HistoryEntry(
                from_version="3.180.0",
                to="3.190.0",
                started_at=MOMENT,
                finished_at=MOMENT,
                result=models.UpgradeResult.SUCCEEDED,
                message="done",
            )
        ],
        database=models.DatabaseStatus(
            reachable=True, server_version="15.4", migrations_applied=10, blocked_queries=0
        ),
        conditions=[
            models.Condition(
                type="Ready",
                status=models.ConditionStatus.FALSE,
                reason="Upgrading",
                message="m",
                observed_generation=3,
                last_transition_time=MOMENT,
            )
        ],
    )
