"""A production RetoolDeployment modelled on Retool's Helm chart's example values.

It sets every pod, container, identity and traffic setting once for all components and
overrides some per component, so tests can check that each value lands where it belongs
(tests/e2e/test_production.py against live objects, tests/unit/test_builders.py in a golden file).
The chart's values it mirrors: charts/retool/values.yaml (affinity, nodeSelector, probes,
securityContext, serviceAccount, ingress, preStopHook, terminationGracePeriodSeconds).
"""

from __future__ import annotations

from typing import Any

PRIORITY_CLASS = "retool-production"
CONFIG_SECRET = "retool-config"
CA_SECRET = "retool-db-ca"


def production_spec(version: str = "3.196.1-stable") -> dict[str, Any]:
    """The spec; a RetoolDeployment's Secrets still have to be named and created by the caller."""
    return {
        "version": version,
        "env": [
            {"name": "COOKIE_INSECURE", "value": "false"},
            {"name": "LOG_LEVEL", "value": "info"},
        ],
        "envFrom": [{"secretRef": {"name": CONFIG_SECRET}}],
        "pod": {
            "labels": {"team": "platform", "cost-center": "retool"},
            "annotations": {"prometheus.io/scrape": "true", "shared": "yes"},
            "nodeSelector": {"kubernetes.io/arch": "amd64"},
            "tolerations": [
                {"key": "dedicated", "operator": "Equal", "value": "retool", "effect": "NoSchedule"}
            ],
            "affinity": {
                "podAntiAffinity": {
                    "preferredDuringSchedulingIgnoredDuringExecution": [
                        {
                            "weight": 100,
                            "podAffinityTerm": {
                                "labelSelector": {
                                    "matchExpressions": [
                                        {
                                            "key": "app.kubernetes.io/name",
                                            "operator": "In",
                                            "values": ["retool"],
                                        }
                                    ]
                                },
                                "topologyKey": "kubernetes.io/hostname",
                            },
                        }
                    ]
                }
            },
            "topologySpreadConstraints": [
                {
                    "maxSkew": 1,
                    "topologyKey": "topology.kubernetes.io/zone",
                    "whenUnsatisfiable": "ScheduleAnyway",
                    "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "retool"}},
                }
            ],
            "priorityClassName": PRIORITY_CLASS,
            "securityContext": {"runAsUser": 1000, "fsGroup": 2000},
            "hostAliases": [{"ip": "10.1.2.3", "hostnames": ["postgres.internal"]}],
            "volumes": [
                {"name": "db-ca", "secret": {"secretName": CA_SECRET}},
                {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}},
            ],
            "initContainers": [
                {
                    "name": "wait-for-db",
                    "image": "busybox:1.37",
                    "command": ["sh", "-c", "until nc -z postgres.internal 5432; do sleep 2; done"],
                }
            ],
            "sidecars": [
                {
                    "name": "cloud-sql-proxy",
                    "image": "gcr.io/cloud-sql-connectors/cloud-sql-proxy:2.14.0",
                    "args": ["--port=5432", "project:region:instance"],
                    "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
                }
            ],
        },
        "container": {
            "securityContext": {"runAsNonRoot": True},
            "volumeMounts": [
                {"name": "db-ca", "mountPath": "/etc/retool/db-ca", "readOnly": True},
                {"name": "tmp", "mountPath": "/tmp"},
            ],
            "imagePullPolicy": "IfNotPresent",
            "probes": {
                "readiness": {"periodSeconds": 5, "failureThreshold": 6},
                "liveness": {"initialDelaySeconds": 30, "failureThreshold": 3},
            },
        },
        "serviceAccount": {
            "annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/retool"},
            "labels": {"team": "platform"},
        },
        "service": {
            "type": "LoadBalancer",
            "port": 443,
            "annotations": {"service.beta.kubernetes.io/aws-load-balancer-scheme": "internal"},
            "labels": {"exposed": "internal"},
            "loadBalancerClass": "service.k8s.aws/nlb",
            "loadBalancerSourceRanges": ["10.0.0.0/8"],
            "externalTrafficPolicy": "Local",
        },
        "ingress": {
            "className": "nginx",
            "annotations": {"cert-manager.io/cluster-issuer": "letsencrypt"},
            "labels": {"exposed": "public"},
            "hosts": ["retool.example.com", "retool.internal.example.com"],
            "tls": [{"hosts": ["retool.example.com"], "secretName": "retool-tls"}],
            "pathType": "Prefix",
        },
        "httpRoute": {
            "parentRefs": [{"name": "public", "namespace": "gateways", "sectionName": "https"}],
            "hostnames": ["retool.example.com"],
            "annotations": {"team": "platform"},
        },
        "api": {
            "replicas": 3,
            "podDisruptionBudget": {"minAvailable": 2},
            "resources": {"requests": {"cpu": "2", "memory": "4Gi"}, "limits": {"memory": "8Gi"}},
            "env": [{"name": "LOG_LEVEL", "value": "debug"}],
            "pod": {
                "annotations": {"shared": "overridden", "api-only": "yes"},
                "terminationGracePeriodSeconds": 600,
                "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "4Gi"}}],
            },
            "container": {
                "preStopSleepSeconds": 45,
                "probes": {"readiness": {"periodSeconds": 3}},
            },
        },
        "jobsRunner": {
            "resources": {"requests": {"cpu": "1", "memory": "2Gi"}},
            "pod": {
                "nodeSelector": {"retool.example.com/pool": "jobs"},
                "tolerations": [],
                "sidecars": [
                    {
                        "name": "cloud-sql-proxy",
                        "image": "gcr.io/cloud-sql-connectors/cloud-sql-proxy:2.14.0",
                        "args": ["--port=5432", "project:region:jobs-instance"],
                    }
                ],
            },
        },
        "workflowsBackend": {"replicas": 2, "podDisruptionBudget": {"maxUnavailable": 1}},
        "workflowsWorker": {"replicas": 2, "podDisruptionBudget": {"maxUnavailable": "50%"}},
        "codeExecutor": {"replicas": 2, "podDisruptionBudget": {"minAvailable": 1}},
        "temporal": {"host": "temporal-frontend.temporal"},
    }
