"""One reconcile of one RetoolDeployment: observe, decide (pure), write status, apply children.

Reconciles of one object never overlap and coalesce: any number of triggers that arrive while
one runs lead to exactly one more run, which reads the freshest state. The status is written
before the children (write-ahead), guarded by resourceVersion, so a restarted operator always
finds the step it was carrying out; a reconcile that finds nothing to change sends no write.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar

import pydantic

from retool_operator import metrics
from retool_operator.cluster.kube import Cluster, ConflictError
from retool_operator.core import builders, naming, reading
from retool_operator.core import conditions as cond
from retool_operator.core.builders import WorkloadPlan
from retool_operator.core.conditions import Reason
from retool_operator.core.models import (
    API_VERSION,
    KIND,
    Component,
    Phase,
    RetoolDeploymentSpec,
    RetoolDeploymentStatus,
    Step,
)
from retool_operator.core.observed import DatabaseProbe
from retool_operator.core.statemachine import Decision, Inputs, decide
from retool_operator.database.probe import Target, probe

log = logging.getLogger("retool_operator")

Key = tuple[str, str]  # (namespace, name)
Body = dict[str, Any]
T = TypeVar("T")

# How long a database probe stays fresh: short after a failure or during a migration, longer
# otherwise (see `_freshness`).
PROBE_TTL_ACTIVE_SECONDS = 2.0
PROBE_TTL_STEADY_SECONDS = 60.0
# Secrets are not watched (read-only RBAC: get, not list/watch): re-read this often when all
# were there, every 2 s while one is missing (see `_freshness`).
SECRETS_TTL_STEADY_SECONDS = 30.0
SECRETS_TTL_ACTIVE_SECONDS = 2.0
# With nothing to wait for, look again this often anyway (Secrets and the database are not
# watched, so this is how their changes are noticed).
RESYNC_SECONDS = 300.0
_STATUS_FIELDS = frozenset(
    field.alias or name for name, field in RetoolDeploymentStatus.model_fields.items()
)
_CONFLICT_RETRIES = 3


@dataclasses.dataclass(frozen=True)
class View:
    """What the watches hold: the RetoolDeployment and its children and pods, by key."""

    retool_deployment: Callable[[Key], Body | None]
    children: Callable[[Key], list[Body]]
    pods: Callable[[Key], list[Body]]


@dataclasses.dataclass
class _KeyState:
    lock: asyncio.Lock = dataclasses.field(default_factory=asyncio.Lock)
    requested: int = 0
    started: int = 0
    # When (monotonic) a time-based look is due; set after every reconcile, which also sets
    # `rescheduled` so that a waiter (the RetoolDeployment's daemon) takes the new time.
    due: float = math.inf
    rescheduled: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    latest: Body | None = None  # our own last status write, newer than the watch may be
    # What we last applied to each child, and the resourceVersion it got: until the watch shows
    # that version, the same manifest is not sent again (the watch is behind, not the object).
    applied: dict[tuple[str, str], tuple[int, dict[str, Any]]] = dataclasses.field(
        default_factory=dict
    )
    probe: tuple[tuple[object, ...], DatabaseProbe] | None = None
    # The last body's parsed spec and status, by uid and resourceVersion (the models are frozen):
    # a reconcile triggered by a child's event re-parses nothing.
    parsed: tuple[tuple[str, str], RetoolDeploymentSpec, RetoolDeploymentStatus] | None = None
    secrets: tuple[float, tuple[object, ...], _Secrets] | None = None


@dataclasses.dataclass(frozen=True)
class _Secrets:
    missing: tuple[str, ...]
    database_password: str | None = dataclasses.field(repr=False)


def _resource_version(body: Body | None) -> int:
    try:
        return int((body or {}).get("metadata", {}).get("resourceVersion", 0))
    except (TypeError, ValueError):
        return 0


class Reconciler:
    """Serialises, coalesces and runs reconciles; holds the little state that is not in etcd."""

    def __init__(self, cluster: Cluster, *, workers: int = 8) -> None:
        self.cluster = cluster
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="reconcile")
        self._keys: dict[Key, _KeyState] = {}

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, partial(fn, *args))

    def forget(self, key: Key) -> None:
        """The RetoolDeployment is gone: drop what was kept for it."""
        self._keys.pop(key, None)
        metrics.forget(*key)

    def _schedule(self, state: _KeyState, seconds: float) -> None:
        state.due = time.monotonic() + seconds
        state.rescheduled.set()

    async def wait_until_due(self, key: Key) -> None:
        """Return once a time-based look at KEY is due (a wait ran out, or the periodic resync).

        Costs nothing while waiting: one timer in the event loop, moved whenever a reconcile
        sets a new due time (instead of every object polling on an interval).
        """
        state = self._keys.setdefault(key, _KeyState())
        while (delay := state.due - time.monotonic()) > 0:
            state.rescheduled.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    state.rescheduled.wait(), None if math.isinf(delay) else delay
                )

    async def trigger(self, key: Key, view: View) -> None:
        """Reconcile KEY soon; returns once a reconcile that began after this call has run."""
        state = self._keys.setdefault(key, _KeyState())
        state.requested += 1
        ticket = state.requested
        async with state.lock:
            if state.started >= ticket:
                return  # a reconcile that started after our request has covered it
            state.started = state.requested
            state.due = math.inf  # until this reconcile says when to look again
            started = time.monotonic()
            result = "ok"
            try:
                await self._reconcile(key, state, view)
            except Exception:
                result = "error"
                self._schedule(state, 5.0)
                log.exception("reconcile of %s/%s failed; retrying in 5s", *key)
            finally:
                metrics.observe_reconcile(result, time.monotonic() - started)

    def _freshest(self, key: Key, state: _KeyState, watched: Body | None) -> Body | None:
        if watched is None:
            return None
        if state.latest is not None and _resource_version(state.latest) > _resource_version(
            watched
        ):
            return state.latest
        state.latest = None
        return watched

    async def _reconcile(self, key: Key, state: _KeyState, view: View) -> None:
        for _ in range(_CONFLICT_RETRIES):
            body = self._freshest(key, state, view.retool_deployment(key))
            if body is None or body.get("metadata", {}).get("deletionTimestamp"):
                return
            try:
                await self._reconcile_body(key, state, view, body)
                return
            except ConflictError:
                state.latest = await self._run(self.cluster.read_retool_deployment, *key)
        log.warning("%s/%s: status kept changing under us; will retry", *key)
        self._schedule(state, 1.0)

    async def _reconcile_body(self, key: Key, state: _KeyState, view: View, body: Body) -> None:
        namespace, name = key
        metadata = body["metadata"]
        generation = int(metadata.get("generation") or 0)
        try:
            spec, status = _parsed(state, body)
        except pydantic.ValidationError as error:
            await self._write_invalid_spec(key, state, body, generation, error)
            return
        secrets = await self._secrets(state, namespace, spec, status)
        children = view.children(key)
        observed = reading.snapshot(children, view.pods(key), secrets.missing)
        database = await self._probe(state, spec, status, secrets.database_password)
        now = datetime.now(UTC)
        decision = decide(
            Inputs(
                name=name,
                generation=generation,
                spec=spec,
                status=status,
                observed=observed,
                database=database,
                now=now,
                annotations=metadata.get("annotations") or {},
            )
        )
        # A change of step is recorded before the children change (write-ahead: a restarted
        # operator finds the step it was carrying out). Otherwise the children come first: a
        # replica change reaches its Deployment without waiting for a status write.
        intent = (decision.status.upgrade, decision.status.current_version) != (
            status.upgrade,
            status.current_version,
        )
        if intent:
            await self._write_status(key, state, body, decision)
        if decision.plan is not None:
            await self._run(self._converge, state, body, spec, decision, children)
        if not intent:
            await self._write_status(key, state, body, decision)
        fields = _log_fields(namespace, name, status, decision)
        for event in decision.events:
            log.info("%s/%s: %s: %s", namespace, name, event.reason, event.message, extra=fields)
            metrics.API_WRITES.labels("Event", "create").inc()
            await self._run(self.cluster.post_event, body, event, now)
        metrics.observe_decision(namespace, name, status, decision, now)
        wait = decision.requeue_after if decision.requeue_after is not None else RESYNC_SECONDS
        self._schedule(state, wait)

    async def _write_status(
        self, key: Key, state: _KeyState, body: Body, decision: Decision
    ) -> None:
        recorded = {k: v for k, v in (body.get("status") or {}).items() if k in _STATUS_FIELDS}
        patch = reading.merge_patch(recorded, decision.status.to_api())
        if not patch:
            return
        resource_version = body["metadata"]["resourceVersion"]
        log.debug("%s/%s: status patch %s", *key, patch)
        metrics.API_WRITES.labels(KIND, "patch-status").inc()
        state.latest = await self._run(self.cluster.patch_status, *key, resource_version, patch)

    async def _write_invalid_spec(
        self,
        key: Key,
        state: _KeyState,
        body: Body,
        generation: int,
        error: pydantic.ValidationError,
    ) -> None:
        """A spec the API server let through but the models refuse: say so, touch nothing."""
        problems = "; ".join(
            f"spec.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()
        )
        status = _recorded_status(body)
        stalled = cond.true(cond.STALLED, Reason.INVALID_SPEC, problems[:1000])
        updated = status.model_copy(
            update={
                "observed_generation": generation,
                "phase": Phase.DEGRADED,
                "conditions": cond.apply(
                    status.conditions,
                    [
                        cond.false(cond.READY, Reason.INVALID_SPEC, problems[:1000]),
                        cond.false(cond.RECONCILING, Reason.INVALID_SPEC),
                        stalled,
                    ],
                    generation=generation,
                    now=datetime.now(UTC),
                ),
            }
        )
        await self._write_status(key, state, body, Decision(status=updated, plan=None))

    async def _secrets(
        self,
        state: _KeyState,
        namespace: str,
        spec: RetoolDeploymentSpec,
        status: RetoolDeploymentStatus,
    ) -> _Secrets:
        """The referenced Secrets, read again unless steady and read recently (not watched)."""
        refs = (spec.secret_ref, spec.database.password_secret_ref)
        if state.secrets is not None:
            read_at, known_refs, known = state.secrets
            ttl = _freshness(
                status,
                SECRETS_TTL_STEADY_SECONDS,
                SECRETS_TTL_ACTIVE_SECONDS,
                spec_version=spec.version,
                ok=not known.missing,
            )
            if known_refs == refs and time.monotonic() - read_at < ttl:
                return known
        secrets = await self._run(self._read_secrets, namespace, spec)
        state.secrets = (time.monotonic(), refs, secrets)
        return secrets

    def _read_secrets(self, namespace: str, spec: RetoolDeploymentSpec) -> _Secrets:
        """Which referenced Secrets or keys are missing, and the database password."""
        missing: list[str] = []
        cache: dict[str, dict[str, str] | None] = {}

        def lookup(name: str, key: str) -> str | None:
            if name not in cache:
                cache[name] = self.cluster.read_secret(namespace, name)
            data = cache[name]
            if data is None:
                entry = f"Secret {name}"
            elif key not in data:
                entry = f"key {key} in Secret {name}"
            else:
                return data[key]
            if entry not in missing and f"Secret {name}" not in missing:
                missing.append(entry)
            return None

        ref = spec.database.password_secret_ref
        password = lookup(ref.name, ref.key)
        for key in (builders.LICENSE_KEY_KEY, builders.ENCRYPTION_KEY_KEY):
            lookup(spec.secret_ref.name, key)
        return _Secrets(missing=tuple(missing), database_password=password)

    async def _probe(
        self,
        state: _KeyState,
        spec: RetoolDeploymentSpec,
        status: RetoolDeploymentStatus,
        password: str | None,
    ) -> DatabaseProbe | None:
        """A database probe no older than its TTL; None when the password cannot be read."""
        if password is None:
            return None
        target = Target.from_spec(spec.database, password)
        fingerprint = target.fingerprint()
        now = datetime.now(UTC)
        if state.probe is not None:
            known, result = state.probe
            ttl = _freshness(
                status,
                PROBE_TTL_STEADY_SECONDS,
                PROBE_TTL_ACTIVE_SECONDS,
                spec_version=spec.version,
                ok=result.reachable,
                migrating=status.upgrade is not None
                and status.upgrade.step is Step.MIGRATING_DATABASE,
            )
            if known == fingerprint and (now - result.checked_at).total_seconds() < ttl:
                return result
        result = await self._run(probe, target, now)
        state.probe = (fingerprint, result)
        return result

    def _converge(
        self,
        state: _KeyState,
        body: Body,
        spec: RetoolDeploymentSpec,
        decision: Decision,
        children: list[Body],
    ) -> None:
        """Apply each planned child that live does not already match; remove unwanted ones."""
        assert decision.plan is not None
        metadata = body["metadata"]
        namespace, name = metadata["namespace"], metadata["name"]
        owner = naming.Owner(
            api_version=API_VERSION, kind=KIND, name=name, namespace=namespace, uid=metadata["uid"]
        )
        live = {(c["kind"], c["metadata"]["name"]): c for c in children}
        plan = dict(decision.plan)
        scale_api: int | None = None
        api = plan.get(Component.API)
        if api is not None and spec.api.autoscaling is not None and api.replicas is not None:
            # The HPA owns an autoscaled api's replicas: change them through the scale
            # subresource so the applied manifest never claims the field.
            scale_api = api.replicas
            plan[Component.API] = WorkloadPlan(api.version, None)
        for manifest in builders.desired_children(owner, spec, plan):
            child = (manifest["kind"], manifest["metadata"]["name"])
            current = live.get(child)
            if _awaiting_watch(state, child, current, manifest):
                continue
            replicas = None if current is None else reading.replicas_change(manifest, current)
            if replicas is not None:
                log.info("%s/%s: scaling Deployment %s to %d", namespace, name, child[1], replicas)
                version = self.cluster.scale_deployment(namespace, child[1], replicas)
                metrics.API_WRITES.labels("Deployment", "scale").inc()
            elif current is None or not reading.is_subset(manifest, current):
                log.info("%s/%s: applying %s %s", namespace, name, *child)
                version = self.cluster.apply(manifest)
                metrics.API_WRITES.labels(manifest["kind"], "apply").inc()
            else:
                continue
            state.applied[child] = (int(version), manifest)
        if scale_api is not None:
            api_name = naming.workload_name(name, Component.API)
            current = live.get(("Deployment", api_name))
            if current is None or (current.get("spec") or {}).get("replicas") != scale_api:
                self.cluster.scale_deployment(namespace, api_name, scale_api)
                metrics.API_WRITES.labels("Deployment", "scale").inc()
        for kind, unwanted in _unwanted(name, spec, live, metadata["uid"]):
            self.cluster.delete(kind, namespace, unwanted)
            metrics.API_WRITES.labels(kind, "delete").inc()
        for pod in decision.delete_pods:
            log.info(
                "%s/%s: deleting pod %s that the StatefulSet will not replace", namespace, name, pod
            )
            self.cluster.delete_pod(namespace, pod)
            metrics.API_WRITES.labels("Pod", "delete").inc()


def _awaiting_watch(
    state: _KeyState, child: tuple[str, str], live: Body | None, manifest: Body
) -> bool:
    """Whether MANIFEST was already written and the watch has not yet shown that write.

    Reconciles triggered by other events in between would otherwise send the same write again.
    A child that is not (or no longer) watched is written again: it may have been deleted.
    """
    known = state.applied.get(child)
    if known is None:
        return False
    version, written = known
    if live is None or _resource_version(live) >= version:
        del state.applied[child]
        return False
    return written == manifest


def _log_fields(
    namespace: str, name: str, previous: RetoolDeploymentStatus, decision: Decision
) -> dict[str, Any]:
    """Structured fields of a step-change log line (JSON logs): the object, versions, step."""
    upgrade = decision.status.upgrade or previous.upgrade
    return {
        "k8s_ref": {"apiVersion": API_VERSION, "kind": KIND, "namespace": namespace, "name": name},
        "from_version": upgrade.from_version if upgrade else decision.status.current_version,
        "to_version": upgrade.to if upgrade else decision.status.target_version,
        "step": decision.status.upgrade.step.value if decision.status.upgrade else None,
        "phase": decision.status.phase.value if decision.status.phase else None,
    }


def _freshness(
    status: RetoolDeploymentStatus,
    steady: float,
    active: float,
    *,
    spec_version: str,
    ok: bool,
    migrating: bool = False,
) -> float:
    """How old a cached read (Secrets, database probe) may be for this reconcile.

    An upgrade about to start (or in Preflight) checks what it relies on: only fresh reads. A
    read that found a problem (a Secret missing, the database unreachable) is repeated ACTIVE-ly
    so that the fix is noticed soon, and so is the probe while a migration runs (its progress is
    reported). A read that found all well stays good for STEADY, installs included: a fleet
    created at once would otherwise probe its databases every ACTIVE seconds each.
    """
    preflight = status.upgrade is not None and status.upgrade.step is Step.PREFLIGHT
    installed = status.current_version is not None
    pending = status.upgrade is None and installed and status.current_version != spec_version
    if preflight or pending:
        return 0.0
    if not ok or migrating:
        return active
    return steady


def _parsed(state: _KeyState, body: Body) -> tuple[RetoolDeploymentSpec, RetoolDeploymentStatus]:
    """The body's spec (raises ValidationError) and recorded status, parsed once per version."""
    metadata = body["metadata"]
    version = (str(metadata.get("uid")), str(metadata.get("resourceVersion")))
    if state.parsed is not None and state.parsed[0] == version:
        return state.parsed[1], state.parsed[2]
    spec = RetoolDeploymentSpec.model_validate(body.get("spec") or {})
    status = _recorded_status(body)
    state.parsed = (version, spec, status)
    return spec, status


def _recorded_status(body: Body) -> RetoolDeploymentStatus:
    raw = {k: v for k, v in (body.get("status") or {}).items() if k in _STATUS_FIELDS}
    try:
        return RetoolDeploymentStatus.model_validate(raw)
    except pydantic.ValidationError:
        log.warning("%s: unreadable status; starting from an empty one", body["metadata"]["name"])
        return RetoolDeploymentStatus()


def _unwanted(
    name: str, spec: RetoolDeploymentSpec, live: Mapping[tuple[str, str], Body], uid: str
) -> Iterable[tuple[str, str]]:
    """Children the spec no longer asks for: disabled components, a dropped PDB or HPA."""
    candidates = [
        ("Deployment", naming.workload_name(name, c))
        for c in builders.OPTIONAL_COMPONENTS
        if getattr(spec, c.field) is None
    ]
    if spec.api.pod_disruption_budget is None:
        candidates.append(("PodDisruptionBudget", naming.pod_disruption_budget_name(name)))
    if spec.api.autoscaling is None:
        candidates.append(("HorizontalPodAutoscaler", naming.horizontal_pod_autoscaler_name(name)))
    for key in candidates:
        child = live.get(key)
        owners = (child or {}).get("metadata", {}).get("ownerReferences") or []
        if child is not None and any(o.get("uid") == uid for o in owners):
            yield key
