"""Print a sample RetoolDeployment and the Secrets it references, for `make run`.

The Secret values are throwaway development values for a local PostgreSQL on loopback.
"""

from __future__ import annotations

import argparse
import sys

import yaml

from tests.support.pgserver import APP_PASSWORD

KWOK_READY_DELAY = "pod-ready.stage.kwok.x-k8s.io/delay"
MIGRATION_SECONDS = "8s"


def sample(host: str, port: int, version: str) -> list[dict[str, object]]:
    """The documents to apply: two Secrets and one RetoolDeployment named `retool`."""
    return [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "retool-db"},
            "stringData": {"password": APP_PASSWORD},
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "retool-secrets"},
            "stringData": {"license-key": "dev-license", "encryption-key": "dev-encryption-key"},
        },
        {
            "apiVersion": "retool-operator.dev/v1alpha1",
            "kind": "RetoolDeployment",
            "metadata": {"name": "retool"},
            "spec": {
                "version": version,
                "database": {
                    "host": host,
                    "port": port,
                    "passwordSecretRef": {"name": "retool-db", "key": "password"},
                    "sslMode": "disable",
                },
                "secretRef": {"name": "retool-secrets"},
                "api": {"replicas": 2},
                # On the local control plane kwok makes a pod Ready after this delay: the
                # jobs-runner "migrates" for a few seconds, so an upgrade shows each step.
                # Elsewhere the annotation means nothing.
                "jobsRunner": {"pod": {"annotations": {KWOK_READY_DELAY: MIGRATION_SECONDS}}},
            },
        },
    ]


def main() -> None:
    """Write the sample as a YAML stream to stdout."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5432)
    parser.add_argument("--version", default="3.196.1-stable")
    args = parser.parse_args()
    yaml.safe_dump_all(sample(args.host, args.port, args.version), sys.stdout, sort_keys=False)


if __name__ == "__main__":
    main()
