"""The operator's writes and the few reads its watches do not cover, on the Kubernetes API.

Children are written with server-side apply under one field manager (`retool-operator`), with
`force` so a hand edit of a field the operator owns is taken back. The RetoolDeployment's status
is written with one JSON merge patch that carries `metadata.resourceVersion`, so a decision made
on a stale view fails with 409 instead of overwriting newer state.

Every call has a deadline (connect, read), set in one place (`_bounded`): a half-open
connection fails the call instead of holding a reconcile thread, and that object's lock, for
ever. `describe` reduces a failure to the HTTP status the core classifies (`core.faults`).
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import json
import logging
import os
import re
import socket
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import urllib3
from kubernetes import client, config

from retool_operator.core import models, naming
from retool_operator.core.builders import CHILD_KINDS
from retool_operator.core.statemachine import EventRecord

log = logging.getLogger(__name__)

APPLY = "application/apply-patch+yaml"
MERGE = "application/merge-patch+json"


@dataclasses.dataclass(frozen=True)
class _ChildCalls:
    """How to patch and delete one kind of child: `patch(name, namespace, body, **options)`."""

    patch: Callable[..., Any]
    delete: Callable[..., Any]


def _child_calls(api: client.ApiClient, api_version: str, kind: str, plural: str) -> _ChildCalls:
    """The generated client's typed calls for a kind (`apps/v1` StatefulSet ->
    AppsV1Api.patch_namespaced_stateful_set), or the custom-objects calls for a kind the client
    does not know (a CRD's, such as Gateway API's HTTPRoute)."""
    group, _, version = api_version.rpartition("/")
    prefix = (group or "core").split(".")[0].capitalize()
    typed = getattr(client, f"{prefix}{version.capitalize()}Api", None)
    suffix = "namespaced_" + re.sub(r"(?<!^)(?=[A-Z])", "_", kind).lower()
    if typed is not None and hasattr(typed, f"patch_{suffix}"):
        instance = typed(api)
        return _ChildCalls(
            getattr(instance, f"patch_{suffix}"), getattr(instance, f"delete_{suffix}")
        )
    custom = client.CustomObjectsApi(api)
    return _ChildCalls(
        patch=lambda name, namespace, body, **options: custom.patch_namespaced_custom_object(
            group, version, namespace, plural, name, body, **options
        ),
        delete=lambda name, namespace, **options: custom.delete_namespaced_custom_object(
            group, version, namespace, plural, name, **options
        ),
    )


class ConflictError(Exception):
    """The object changed since it was read (HTTP 409)."""


@dataclasses.dataclass(frozen=True)
class Failure:
    """A failed call as the core classifies it: HTTP status (None: no answer) and message."""

    status: int | None
    message: str


def describe(error: BaseException) -> Failure | None:
    """The failure ERROR stands for, or None when it is not a failed API call (a bug)."""
    if isinstance(error, ConflictError):
        return Failure(409, str(error))
    if isinstance(error, client.ApiException):
        message = str(error.reason or "")
        with contextlib.suppress(ValueError, TypeError, AttributeError):
            message = str(json.loads(error.body or "{}").get("message") or message)
        return Failure(int(error.status or 0) or None, message)
    if isinstance(error, urllib3.exceptions.HTTPError | OSError | TimeoutError | socket.timeout):
        return Failure(None, f"{type(error).__name__}: no answer from the API server")
    return None


def _bounded(
    api: client.ApiClient, timeout: tuple[float, float], contact: Callable[[], None]
) -> None:
    """Give every call of API a (connect, read) deadline unless it sets its own, and call
    CONTACT after each answer the API server gives (any status: it was reached)."""
    call_api = api.call_api

    def call(*args: Any, **kwargs: Any) -> Any:
        kwargs["_request_timeout"] = kwargs.get("_request_timeout") or timeout
        response = call_api(*args, **kwargs)
        contact()
        return response

    api.call_api = call  # type: ignore[method-assign]


def new_api_client(kubeconfig: str | None = None) -> client.ApiClient:
    """A client for KUBECONFIG, else $KUBECONFIG or ~/.kube/config, else the in-cluster account."""
    path = kubeconfig or os.environ.get("KUBECONFIG") or str(Path.home() / ".kube" / "config")
    if Path(path).exists():
        api: client.ApiClient = config.new_client_from_config(config_file=path)  # type: ignore[no-untyped-call]
        return api
    config.load_incluster_config()  # type: ignore[no-untyped-call]
    return client.ApiClient()


class Cluster:
    """Thin, synchronous calls; run them off the event loop."""

    def __init__(
        self,
        api: client.ApiClient,
        *,
        instance: str = naming.FIELD_MANAGER,
        timeout: tuple[float, float] = (5.0, 30.0),
    ) -> None:
        # urllib3 would retry a refused connection three times, each with the full deadline.
        api.rest_client.pool_manager.connection_pool_kw["retries"] = False
        self.api = api
        self.last_contact = time.monotonic()  # when the API server last answered us
        _bounded(api, timeout, self._contacted)
        self.core = client.CoreV1Api(api)
        self.apps = client.AppsV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self._children = {
            kind: _child_calls(api, api_version, kind, plural)
            for api_version, kind, plural in CHILD_KINDS
        }
        self.instance = instance  # reportingInstance of our Events

    def _contacted(self) -> None:
        self.last_contact = time.monotonic()

    def close(self) -> None:
        """Close the client's connection pool."""
        self.api.close()  # type: ignore[no-untyped-call]

    def apply(self, manifest: Mapping[str, Any]) -> str:
        """Server-side apply one child (create or update) as the operator's field manager.

        Returns the resourceVersion the API server gave the result.
        """
        metadata = manifest["metadata"]
        response = self._children[manifest["kind"]].patch(
            metadata["name"],
            metadata["namespace"],
            manifest,
            field_manager=naming.FIELD_MANAGER,
            force=True,
            _content_type=APPLY,
            _preload_content=False,
        )
        return str(json.loads(_drained(response))["metadata"]["resourceVersion"])

    def serves(self, api_version: str, plural: str) -> bool:
        """Whether the API server serves `plural` in `api_version` (its discovery document)."""
        group, _, version = api_version.rpartition("/")
        try:
            response = self.custom.get_api_resources(group, version, _preload_content=False)
        except client.ApiException as error:
            if error.status == 404:
                return False
            raise
        resources = json.loads(_drained(response)).get("resources") or []
        return any(r.get("name") == plural for r in resources)

    def delete(self, kind: str, namespace: str, name: str) -> None:
        """Delete one child; already gone is fine."""
        with _ignore_not_found():
            _drained(self._children[kind].delete(name, namespace, _preload_content=False))

    def scale_deployment(self, namespace: str, name: str, replicas: int) -> str:
        """Set a Deployment's replicas through its scale subresource; its resourceVersion.

        Leaves the rest of the Deployment, and the field ownership of an HPA, alone.
        """
        response: Any = self.apps.patch_namespaced_deployment_scale(
            name,
            namespace,
            {"spec": {"replicas": replicas}},
            field_manager=naming.FIELD_MANAGER,
            _content_type=MERGE,
            _preload_content=False,
        )
        return str(json.loads(_drained(response))["metadata"]["resourceVersion"])

    def delete_pod(self, namespace: str, name: str) -> None:
        """Delete one pod; already gone is fine."""
        with _ignore_not_found():
            _drained(self.core.delete_namespaced_pod(name, namespace, _preload_content=False))

    def read_secret(self, namespace: str, name: str) -> dict[str, str] | None:
        """A Secret's decoded data, or None when it does not exist. Never log the result."""
        try:
            # Raw JSON: the client's model deserialisation costs more than the request.
            response: Any = self.core.read_namespaced_secret(
                name, namespace, _preload_content=False
            )
        except client.ApiException as error:
            if error.status == 404:
                return None
            raise
        data: dict[str, str] = json.loads(_drained(response)).get("data") or {}
        return {
            key: base64.b64decode(value).decode("utf-8", "replace") for key, value in data.items()
        }

    def read_retool_deployment(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The RetoolDeployment as the API server has it now, or None when it is gone."""
        try:
            body = self.custom.get_namespaced_custom_object(
                models.GROUP, models.VERSION, namespace, models.PLURAL, name
            )
        except client.ApiException as error:
            if error.status == 404:
                return None
            raise
        return cast(dict[str, Any], body)

    def patch_status(
        self, namespace: str, name: str, resource_version: str, status_patch: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Merge-patch the status if the object is still at RESOURCE_VERSION; the new object."""
        body = {"metadata": {"resourceVersion": resource_version}, "status": status_patch}
        try:
            result = self.custom.patch_namespaced_custom_object_status(
                models.GROUP,
                models.VERSION,
                namespace,
                models.PLURAL,
                name,
                body,
                field_manager=naming.FIELD_MANAGER,
                _content_type=MERGE,
            )
        except client.ApiException as error:
            if error.status == 409:
                raise ConflictError(name) from error
            raise
        return cast(dict[str, Any], result)

    def ensure_peering(self, name: str, namespaces: list[str]) -> None:
        """Create kopf's peering object(s) when missing: cluster-wide, or one per namespace."""
        kinds = (
            [("clusterkopfpeerings", None)]
            if not namespaces
            else [("kopfpeerings", namespace) for namespace in namespaces]
        )
        for plural, namespace in kinds:
            kind = "ClusterKopfPeering" if namespace is None else "KopfPeering"
            body = {"apiVersion": "kopf.dev/v1", "kind": kind, "metadata": {"name": name}}
            try:
                if namespace is None:
                    self.custom.create_cluster_custom_object("kopf.dev", "v1", plural, body)
                else:
                    self.custom.create_namespaced_custom_object(
                        "kopf.dev", "v1", namespace, plural, body
                    )
            except client.ApiException as error:
                if error.status != 409:  # already there
                    raise

    def post_event(self, owner: Mapping[str, Any], event: EventRecord, now: datetime) -> None:
        """Record an Event on the RetoolDeployment (best effort: a lost Event is only logged)."""
        metadata = owner["metadata"]
        stamp = now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        body: Any = {
            "metadata": {
                "generateName": f"{metadata['name']}.",
                "namespace": metadata["namespace"],
            },
            "involvedObject": {
                "apiVersion": models.API_VERSION,
                "kind": models.KIND,
                "name": metadata["name"],
                "namespace": metadata["namespace"],
                "uid": metadata.get("uid"),
                "resourceVersion": metadata.get("resourceVersion"),
            },
            "type": event.type,
            "reason": event.reason,
            "message": event.message[:1024],
            "source": {"component": naming.FIELD_MANAGER},
            "reportingComponent": naming.FIELD_MANAGER,
            "reportingInstance": self.instance,
            "firstTimestamp": models.format_time(now),
            "lastTimestamp": models.format_time(now),
            "eventTime": stamp,
            "action": event.reason,
            "count": 1,
        }
        try:
            _drained(
                self.core.create_namespaced_event(
                    metadata["namespace"], body, _preload_content=False
                )
            )
        except (client.ApiException, urllib3.exceptions.HTTPError, OSError) as error:
            failure = describe(error)
            log.warning(
                "could not post Event %s on %s: HTTP %s",
                event.reason,
                metadata["name"],
                failure.status if failure else None,
            )


def _drained(response: Any) -> bytes:
    """The body of an unparsed response, read to its end.

    Reading it is what hands the connection back to the pool: a response left unread keeps its
    connection, and the next request pays a new TLS handshake (measured: 11 ms instead of 4).
    """
    return bytes(response.data)


@contextlib.contextmanager
def _ignore_not_found() -> Iterator[None]:
    try:
        yield
    except client.ApiException as error:
        if error.status != 404:
            raise
