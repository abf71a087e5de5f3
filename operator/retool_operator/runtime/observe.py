"""What a reconcile reads beyond kopf's watches, cached: Secrets, the database probe, the parse.

Secrets and the database are not watched, so each is read again once older than the core's
freshness rule allows (`core.freshness`). The parsed spec and status are kept by uid and
resourceVersion (the models are frozen), so a reconcile triggered by a child's event re-parses
nothing. The database password is held only for the probe: never logged, never in a result.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from datetime import datetime
from typing import Any

import pydantic

from retool_operator.core import builders, freshness
from retool_operator.core.models import RetoolDeploymentSpec, RetoolDeploymentStatus
from retool_operator.core.observed import DatabaseProbe
from retool_operator.database.probe import PROBE_DEADLINE_SECONDS, Target
from retool_operator.runtime.offload import Offload
from retool_operator.runtime.ports import Body, Key, KubeApi, Prober

log = logging.getLogger("retool_operator")


def _asks_for(spec: RetoolDeploymentSpec, kind: str) -> bool:
    """Whether the spec wants a child of this optional kind."""
    return kind == "HTTPRoute" and spec.http_route is not None


STATUS_FIELDS = frozenset(
    field.alias or name for name, field in RetoolDeploymentStatus.model_fields.items()
)


@dataclasses.dataclass(frozen=True)
class Secrets:
    """Which referenced Secrets or keys are missing, and the database password."""

    missing: tuple[str, ...]
    database_password: str | None = dataclasses.field(repr=False)


@dataclasses.dataclass
class _Cache:
    parsed: tuple[tuple[str, str], RetoolDeploymentSpec, RetoolDeploymentStatus] | None = None
    secrets: tuple[float, tuple[object, ...], Secrets] | None = None
    probe: tuple[tuple[object, ...], DatabaseProbe] | None = None


def recorded_status(body: Body) -> RetoolDeploymentStatus:
    """The status the body records (fields of ours only); an empty one when unreadable."""
    raw = recorded_fields(body)
    try:
        return RetoolDeploymentStatus.model_validate(raw)
    except pydantic.ValidationError:
        log.warning("%s: unreadable status; starting from an empty one", body["metadata"]["name"])
        return RetoolDeploymentStatus()


def recorded_fields(body: Body) -> dict[str, Any]:
    """The body's status as written, limited to the fields this operator writes."""
    return {k: v for k, v in (body.get("status") or {}).items() if k in STATUS_FIELDS}


class Observer:
    """Reads Secrets and probes the database when the cached result is too old; parses bodies."""

    def __init__(self, cluster: KubeApi, probe: Prober, offload: Offload) -> None:
        self._cluster = cluster
        self._probe = probe
        self._offload = offload
        self._caches: dict[Key, _Cache] = {}
        # kind -> (when asked, served): discovery is cluster-wide, so one answer for all.
        self._served: dict[str, tuple[float, bool]] = {}

    def forget(self, key: Key) -> None:
        """The RetoolDeployment is gone: drop what was cached for it."""
        self._caches.pop(key, None)

    def parsed(self, key: Key, body: Body) -> tuple[RetoolDeploymentSpec, RetoolDeploymentStatus]:
        """The body's spec (raises pydantic.ValidationError) and recorded status, parsed once
        per resourceVersion."""
        cache = self._caches.setdefault(key, _Cache())
        metadata = body["metadata"]
        version = (str(metadata.get("uid")), str(metadata.get("resourceVersion")))
        if cache.parsed is not None and cache.parsed[0] == version:
            return cache.parsed[1], cache.parsed[2]
        spec = RetoolDeploymentSpec.model_validate(body.get("spec") or {})
        status = recorded_status(body)
        cache.parsed = (version, spec, status)
        return spec, status

    async def absent_kinds(self, spec: RetoolDeploymentSpec) -> frozenset[str]:
        """Kinds of child the spec asks for that the cluster does not serve (discovery, cached).

        Only kinds that a cluster may lack are asked about, and only when the spec wants one.
        """
        wanted = [
            (api_version, kind, plural)
            for api_version, kind, plural in builders.CHILD_KINDS
            if kind in builders.OPTIONAL_KINDS and _asks_for(spec, kind)
        ]
        absent = set()
        for api_version, kind, plural in wanted:
            known = self._served.get(kind)
            if known is None or time.monotonic() - known[0] >= freshness.DISCOVERY_TTL_SECONDS:
                served = await self._offload(self._cluster.serves, api_version, plural)
                known = self._served[kind] = (time.monotonic(), served)
            if not known[1]:
                absent.add(kind)
        return frozenset(absent)

    async def secrets(
        self, key: Key, spec: RetoolDeploymentSpec, status: RetoolDeploymentStatus
    ) -> Secrets:
        """The referenced Secrets, read again unless the last read is fresh enough."""
        cache = self._caches.setdefault(key, _Cache())
        refs = tuple(builders.required_secrets(spec))
        if cache.secrets is not None:
            read_at, known_refs, known = cache.secrets
            ttl = freshness.secrets_ttl(
                status, spec_version=spec.version, complete=not known.missing
            )
            if known_refs == refs and time.monotonic() - read_at < ttl:
                return known
        secrets = await self._offload(self._read_secrets, key[0], spec)
        cache.secrets = (time.monotonic(), refs, secrets)
        return secrets

    def _read_secrets(self, namespace: str, spec: RetoolDeploymentSpec) -> Secrets:
        """Which of the Secrets (and keys) the pods need are missing; the database password."""
        missing: list[str] = []
        read: dict[str, dict[str, str] | None] = {}

        def lookup(name: str, key: str | None) -> str | None:
            if name not in read:
                read[name] = self._cluster.read_secret(namespace, name)
            data = read[name]
            if data is None:
                entry = f"Secret {name}"
            elif key is None:
                return ""
            elif key not in data:
                entry = f"key {key} in Secret {name}"
            else:
                return data[key]
            if entry not in missing and f"Secret {name}" not in missing:
                missing.append(entry)
            return None

        (password_name, password_key), *others = builders.required_secrets(spec)
        password = lookup(password_name, password_key)
        for name, key in others:
            lookup(name, key)
        return Secrets(missing=tuple(missing), database_password=password)

    async def database(
        self,
        key: Key,
        spec: RetoolDeploymentSpec,
        status: RetoolDeploymentStatus,
        password: str | None,
        now: datetime,
    ) -> DatabaseProbe | None:
        """A database probe fresh enough for this reconcile; None when the password is unknown."""
        if password is None:
            return None
        cache = self._caches.setdefault(key, _Cache())
        target = Target.from_spec(spec.database, password)
        fingerprint = target.fingerprint()
        if cache.probe is not None:
            known, result = cache.probe
            ttl = freshness.probe_ttl(status, spec_version=spec.version, reachable=result.reachable)
            if known == fingerprint and (now - result.checked_at).total_seconds() < ttl:
                return result
        try:
            result = await asyncio.wait_for(
                self._offload(self._probe, target, now), PROBE_DEADLINE_SECONDS
            )
        except TimeoutError:
            # The thread ends by itself (libpq's deadlines); the reconcile goes on without it.
            result = DatabaseProbe(
                checked_at=now,
                reachable=False,
                error=f"no answer within {PROBE_DEADLINE_SECONDS:.0f}s",
            )
        cache.probe = (fingerprint, result)
        return result
