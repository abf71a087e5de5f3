"""A real API server admits RetoolDeployments by the CRD's schema and CEL rules.

Each invalid case breaks one rule and must be refused with a message that names the field;
valid ones must be admitted, with the defaults the models have filled in.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client

from retool_operator.core.models import GROUP, PLURAL, VERSION, RetoolDeploymentSpec
from tests.support.admission_cases import INVALID, VALID, Case, full_status, minimal_object

pytestmark = pytest.mark.e2e

NAME = "retool"


def _objects(api: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api)


def _create(api: client.ApiClient, namespace: str, body: dict[str, Any], *, dry_run: bool) -> Any:
    return _objects(api).create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, body, dry_run="All" if dry_run else None
    )


def _read(api: client.ApiClient, namespace: str) -> Any:
    return _objects(api).get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, NAME)


@pytest.mark.parametrize("case", INVALID, ids=lambda case: case.id)
def test_invalid_object_is_refused_naming_the_field(
    kube_api: client.ApiClient, namespace: str, case: Case
) -> None:
    with pytest.raises(client.ApiException) as refused:
        _create(kube_api, namespace, case.object(), dry_run=True)
    error = refused.value
    assert error.status == 422, error.body
    message = json.loads(error.body or "{}")["message"]
    # The API server writes each refusal as `<field path>: <what is wrong>`.
    assert f"{case.field}: " in message, message
    assert case.says in message, message


@pytest.mark.parametrize("case", VALID, ids=lambda case: case.id)
def test_valid_object_is_admitted(kube_api: client.ApiClient, namespace: str, case: Case) -> None:
    body = case.object()
    admitted = _create(kube_api, namespace, body, dry_run=True)
    # What the API server keeps (after pruning and defaulting) means what the user wrote.
    assert RetoolDeploymentSpec.model_validate(admitted["spec"]) == (
        RetoolDeploymentSpec.model_validate(body["spec"])
    )


def test_minimal_object_is_stored_with_its_defaults(
    kube_api: client.ApiClient, namespace: str
) -> None:
    _create(kube_api, namespace, minimal_object(NAME), dry_run=False)
    assert _read(kube_api, namespace)["spec"] == {
        "version": "3.196.1-stable",
        "image": "tryretool/backend",
        "codeExecutorImage": "tryretool/code-executor-service",
        "database": {
            "host": "postgres.example.com",
            "port": 5432,
            "name": "retool",
            "user": "retool",
            "passwordSecretRef": {"name": "retool-db", "key": "password"},
            "sslMode": "prefer",
            "migrationsTable": "SequelizeMeta",
        },
        "secretRef": {"name": "retool-secrets"},
        "api": {"replicas": 2},
        "jobsRunner": {"replicas": 1},
        "service": {"type": "ClusterIP", "port": 80},
        "serviceAccount": {"create": True, "automountToken": False},
        "upgrade": {
            "strategy": "Recreate",
            "migrationTimeout": "30m",
            "verifyTimeout": "10m",
            "autoRollback": True,
        },
        "paused": False,
    }


def test_status_the_operator_writes_is_kept_as_written(
    kube_api: client.ApiClient, namespace: str
) -> None:
    _create(kube_api, namespace, minimal_object(NAME), dry_run=False)
    status = {**full_status().to_api(), "kopf": {"progress": {"handler": {"retries": 1}}}}
    _objects(kube_api).patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, PLURAL, NAME, {"status": status}
    )
    assert _read(kube_api, namespace)["status"] == status


def test_scale_subresource_sets_the_api_replicas(
    kube_api: client.ApiClient, namespace: str
) -> None:
    _create(kube_api, namespace, minimal_object(NAME), dry_run=False)
    _objects(kube_api).patch_namespaced_custom_object_scale(
        GROUP, VERSION, namespace, PLURAL, NAME, {"spec": {"replicas": 5}}
    )
    spec = _read(kube_api, namespace)["spec"]
    assert spec["api"]["replicas"] == 5
    assert spec["jobsRunner"]["replicas"] == 1
