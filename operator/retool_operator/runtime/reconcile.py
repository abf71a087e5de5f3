"""One reconcile of one RetoolDeployment: observe -> decide -> status -> Events and metrics ->
children.

A change of step is recorded before the children change (write-ahead: a restarted operator
finds the step it was carrying out), and once the status that announces it is written, the
step's Events and metrics go out before any child write that could fail. Otherwise the
children come first (a replica change reaches its Deployment without waiting for a status
write), then the status, then the Events. A reconcile that finds nothing to change sends no
write. A status write that meets a newer object (409) re-reads it and decides again.

A failure is classified in one place (`_failed`, by `core.faults`): a conflict is retried at
once on a fresh read; a transient failure backs off with jitter; a refused child write puts a
`Stalled` condition naming the object and the server's message on the status, then backs off.
Each object has its own queue and back-off, so one that fails delays no other.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pydantic

from retool_operator import metrics
from retool_operator.cluster.kube import ConflictError, describe
from retool_operator.core import faults, reading
from retool_operator.core.models import API_VERSION, KIND, RetoolDeploymentStatus
from retool_operator.core.statemachine import (
    Decision,
    EventRecord,
    Inputs,
    decide,
    decide_invalid_spec,
)
from retool_operator.runtime.apply import ChildWriteError, Writer
from retool_operator.runtime.observe import Observer, recorded_fields, recorded_status
from retool_operator.runtime.offload import Offload
from retool_operator.runtime.ports import Body, Key, KubeApi, Prober
from retool_operator.runtime.queue import KeyQueue

log = logging.getLogger("retool_operator")

# With nothing to wait for, look again this often anyway (Secrets and the database are not
# watched, so this is how their changes are noticed).
RESYNC_SECONDS = 300.0
RETRY_AFTER_CONFLICTS_SECONDS = 1.0
CONFLICT_RETRIES = 3


@dataclasses.dataclass(frozen=True)
class View:
    """What the watches hold: the RetoolDeployment and its children and pods, by key."""

    retool_deployment: Callable[[Key], Body | None]
    children: Callable[[Key], list[Body]]
    pods: Callable[[Key], list[Body]]


class Reconciler:
    """Runs coalesced reconciles; holds the little state that is not in etcd."""

    def __init__(self, cluster: KubeApi, probe: Prober, offload: Offload) -> None:
        self.queue = KeyQueue()
        self.observer = Observer(cluster, probe, offload)
        self.writer = Writer(cluster, offload)
        self._offload = offload
        self._failures: dict[Key, int] = {}  # failed reconciles in a row, for the back-off
        self._refusals: dict[Key, faults.Refusal] = {}  # the child write last refused

    def forget(self, key: Key) -> None:
        """The RetoolDeployment is gone: drop what was kept for it."""
        self._failures.pop(key, None)
        self._refusals.pop(key, None)
        self.queue.forget(key)
        self.observer.forget(key)
        self.writer.forget(key)
        metrics.forget(*key)

    async def wait_until_due(self, key: Key) -> None:
        """Return once a time-based look at KEY is due (a wait ran out, or the resync)."""
        await self.queue.wait_until_due(key)

    async def trigger(self, key: Key, view: View) -> None:
        """Reconcile KEY soon; returns once a reconcile that began after this call has run."""
        await self.queue.run(key, lambda: self._timed(key, view))

    async def _timed(self, key: Key, view: View) -> None:
        started = time.monotonic()
        result = "ok"
        try:
            await self._reconcile(key, view)
            self._failures.pop(key, None)
        except Exception as error:
            result = "error"
            self._failed(key, error)
        finally:
            metrics.observe_reconcile(result, time.monotonic() - started)
            if key not in self.queue:
                # Deleted while this reconcile ran: drop what it cached again.
                self.observer.forget(key)
                self.writer.forget(key)

    def _failed(self, key: Key, error: Exception) -> None:
        """Log ERROR by its class and schedule the retry its back-off calls for."""
        if self._offload.closed:
            return  # the operator is stopping: a reconcile cut short is not a failure
        attempt = self._failures[key] = self._failures.get(key, 0) + 1
        wait = faults.backoff(attempt, random.random())
        cause = error.__cause__ if isinstance(error, ChildWriteError) else error
        failure = describe(cause) if isinstance(cause, Exception) else None
        self.queue.schedule(key, wait)
        if failure is None:
            log.exception("reconcile of %s/%s failed; retrying in %.1fs", *key, wait)
            return
        what = f" ({error})" if isinstance(error, ChildWriteError) else ""
        log.warning(
            "reconcile of %s/%s: %s failure%s: HTTP %s: %s; retrying in %.1fs",
            *key,
            faults.classify(failure.status).value,
            what,
            failure.status,
            failure.message,
            wait,
        )

    async def _reconcile(self, key: Key, view: View) -> None:
        for _ in range(CONFLICT_RETRIES):
            body = self.writer.freshest(key, view.retool_deployment(key))
            if body is None or body.get("metadata", {}).get("deletionTimestamp"):
                return
            try:
                await self._reconcile_body(key, view, body)
                return
            except ConflictError:
                await self.writer.reread(key)
        log.warning("%s/%s: status kept changing under us; will retry", *key)
        self.queue.schedule(key, RETRY_AFTER_CONFLICTS_SECONDS)

    async def _reconcile_body(self, key: Key, view: View, body: Body) -> None:
        name = key[1]
        metadata = body["metadata"]
        generation = int(metadata.get("generation") or 0)
        try:
            spec, status = self.observer.parsed(key, body)
        except pydantic.ValidationError as error:
            invalid = decide_invalid_spec(
                recorded_status(body), error, generation=generation, now=datetime.now(UTC)
            )
            await self._write_status(key, body, invalid)
            return
        secrets = await self.observer.secrets(key, spec, status)
        live = view.children(key)
        absent = await self.observer.absent_kinds(spec)
        observed = reading.snapshot(live, view.pods(key), secrets.missing, absent)
        database = await self.observer.database(
            key, spec, status, secrets.database_password, datetime.now(UTC)
        )
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
        refusal = self._refusals.get(key)
        if refusal is not None:
            decision = faults.with_refusal(decision, refusal, generation=generation, now=now)
        intent = (decision.status.upgrade, decision.status.current_version) != (
            status.upgrade,
            status.current_version,
        )
        if intent:
            await self._record(key, body, status, decision, now)
        if decision.plan is not None:
            try:
                await self.writer.converge(
                    key, body, spec, decision, live, absent_kinds=absent, fenced=intent
                )
            except ChildWriteError as failed:
                refused = _refusal(failed)
                if refused is None:
                    raise
                await self._refused(key, body, status, decision, refusal=refused, now=now)
                raise
            if refusal is not None:
                # The write went through (a person fixed it): the next decision is unstalled.
                del self._refusals[key]
                self.queue.schedule(key, 0)
        if not intent:
            await self._record(key, body, status, decision, now)
        wait = decision.requeue_after if decision.requeue_after is not None else RESYNC_SECONDS
        self.queue.schedule(key, wait)

    async def _record(
        self,
        key: Key,
        body: Body,
        previous: RetoolDeploymentStatus,
        decision: Decision,
        now: datetime,
    ) -> None:
        """Write the decision's status; once it is written, post its Events and metrics."""
        await self._write_status(key, body, decision)
        fields = _log_fields(*key, previous, decision)
        await self.writer.post_events(body, decision.events, now, fields)
        metrics.observe_decision(*key, previous, decision, now)

    async def _refused(
        self,
        key: Key,
        body: Body,
        previous: RetoolDeploymentStatus,
        decision: Decision,
        *,
        refusal: faults.Refusal,
        now: datetime,
    ) -> None:
        """Show REFUSAL on the status (Stalled) and, when it is new, in a Warning Event."""
        new = self._refusals.get(key) != refusal
        self._refusals[key] = refusal
        generation = int(body["metadata"].get("generation") or 0)
        stalled = faults.with_refusal(decision, refusal, generation=generation, now=now)
        latest = self.writer.freshest(key, body) or body
        events = (EventRecord("Warning", faults.WRITE_REFUSED, refusal.describe()),) if new else ()
        # The step's own Events went out with the write that recorded it (or go with this one).
        if latest is body:
            stalled = dataclasses.replace(stalled, events=(*stalled.events, *events))
            await self._record(key, body, previous, stalled, now)
        else:
            await self._write_status(key, latest, stalled)
            await self.writer.post_events(latest, events, now, _log_fields(*key, previous, stalled))

    async def _write_status(self, key: Key, body: Body, decision: Decision) -> None:
        patch = reading.merge_patch(recorded_fields(body), decision.status.to_api())
        await self.writer.write_status(key, body, patch)


def _refusal(failed: ChildWriteError) -> faults.Refusal | None:
    """The refusal FAILED stands for, or None when it is of another class."""
    cause = failed.__cause__
    failure = describe(cause) if isinstance(cause, Exception) else None
    if failure is None or failure.status is None:
        return None
    if faults.classify(failure.status) is not faults.ErrorClass.REFUSED:
        return None
    return faults.Refusal(failed.kind, failed.name, failure.status, failure.message)


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
