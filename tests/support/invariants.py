"""Watches that check the upgrade invariants at every event, while an end-to-end test runs.

- never more than one jobs-runner pod (terminating ones count);
- no pod of the new version for the api or another service before a jobs-runner pod of the new
  version has been Ready;
- Recreate: no pod of any other component while a new-version jobs-runner pod exists and has
  not been Ready yet;
- RollingUpdate: the api Service keeps at least one ready endpoint;
- the operator never writes the RetoolDeployment's spec.
Steps seen in `status.upgrade.step` are recorded in order, and so are the replica counts of
every Deployment of the instance and the components whose pods were seen.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from kubernetes import client, watch

from tests.support import retool
from tests.support.retool import GROUP, PLURAL, VERSION
from tests.support.waiting import wait_for

COMPONENT = "app.kubernetes.io/component"
INSTANCE = "app.kubernetes.io/instance"


@dataclasses.dataclass
class _PodState:
    component: str
    version: str | None
    ready: bool


class InvariantMonitor:
    """Start with `with InvariantMonitor(...) as monitor:`; read `violations` and `steps`."""

    def __init__(
        self,
        api: client.ApiClient,
        namespace: str,
        instance: str,
        *,
        new_versions: set[str],
        recreate: bool,
        keep_endpoints: bool = False,
    ) -> None:
        self.api = api
        self.namespace = namespace
        self.instance = instance
        self.new_versions = set(new_versions)
        self.recreate = recreate
        self.keep_endpoints = keep_endpoints
        self.violations: list[str] = []
        # Seconds after the monitor started that each violation was first seen.
        self.first_seen: dict[str, float] = {}
        self._seen: set[str] = set()
        self._started = time.monotonic()
        self.steps: list[str] = []
        # Per Deployment name, its spec.replicas as they changed.
        self.replicas_seen: dict[str, list[int]] = {}
        self.components_seen: set[str] = set()
        # Per Deployment name, its pod template's first image as it changed (a flap shows twice).
        self.images_seen: dict[str, list[str]] = {}
        self.min_ready_endpoints: int | None = None
        self._pods: dict[str, _PodState] = {}
        self._ready_jobs_runner_versions: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        # One per watch: set once its initial listing has been taken in.
        self._listed: dict[str, threading.Event] = {}

    def __enter__(self) -> InvariantMonitor:
        watches: list[Callable[[], None]] = [self._watch_pods, self._watch_retool_deployment]
        watches.append(self._watch_deployments)
        if self.keep_endpoints:
            watches.append(self._watch_endpoints)
        for target in watches:
            self._listed[target.__name__] = threading.Event()
            thread = threading.Thread(target=self._forever, args=(target,), daemon=True)
            thread.start()
            self._threads.append(thread)
        # The test acts only once every watch holds the state it starts from.
        wait_for(
            lambda: all(listed.is_set() for listed in self._listed.values()),
            30,
            "the invariant watches' initial listings",
        )
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)

    def _violation(self, text: str) -> None:
        with self._lock:
            self._add(text)

    def _add(self, text: str) -> None:
        """Record a violation once (the caller holds the lock), with when it was first seen."""
        if text not in self._seen:
            self._seen.add(text)
            self.violations.append(text)
            self.first_seen[text] = time.monotonic() - self._started

    def _forever(self, target: Callable[[], None]) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(Exception):
                target()

    def _stream(
        self, watcher: str, list_fn: Callable[..., Any], **kwargs: Any
    ) -> Iterator[dict[str, Any]]:
        """The current objects (as ADDED), then every change from that listing on."""
        listing = list_fn(**kwargs)
        if isinstance(listing, dict):  # custom objects come as plain JSON
            items, version = listing["items"], listing["metadata"]["resourceVersion"]
        else:
            items, version = listing.items, listing.metadata.resource_version
        for item in items:
            yield {"type": "ADDED", "object": item}
        self._listed[watcher].set()
        stream = watch.Watch()  # type: ignore[no-untyped-call]
        for event in stream.stream(list_fn, resource_version=version, timeout_seconds=5, **kwargs):  # type: ignore[no-untyped-call]
            if self._stop.is_set():
                stream.stop()  # type: ignore[no-untyped-call]
                return
            yield event

    # --- pods --------------------------------------------------------------------------------

    def _watch_pods(self) -> None:
        core = client.CoreV1Api(self.api)
        selector = f"{INSTANCE}={self.instance}"
        for event in self._stream(
            "_watch_pods",
            core.list_namespaced_pod,
            namespace=self.namespace,
            label_selector=selector,
        ):
            pod = event["object"]
            with self._lock:
                if event["type"] == "DELETED":
                    self._pods.pop(pod.metadata.name, None)
                else:
                    self.components_seen.add((pod.metadata.labels or {}).get(COMPONENT, ""))
                    self._pods[pod.metadata.name] = _PodState(
                        component=(pod.metadata.labels or {}).get(COMPONENT, ""),
                        version=pod.spec.containers[0].image.rpartition(":")[2],
                        ready=any(
                            c.type == "Ready" and c.status == "True"
                            for c in (pod.status.conditions or [])
                        ),
                    )
                self._check_pods()

    def _check_pods(self) -> None:
        jobs_runners = {n: p for n, p in self._pods.items() if p.component == "jobs-runner"}
        if len(jobs_runners) > 1:
            self.violations.append(
                f"{len(jobs_runners)} jobs-runner pods at once: {sorted(jobs_runners)}"
            )
        for pod in jobs_runners.values():
            if pod.ready and pod.version:
                self._ready_jobs_runner_versions.add(pod.version)
        others = {n: p for n, p in self._pods.items() if p.component != "jobs-runner"}
        for name, pod in others.items():
            if (
                pod.version in self.new_versions
                and pod.version not in self._ready_jobs_runner_versions
            ):
                self.violations.append(
                    f"{name} runs {pod.version} before a jobs-runner on it was Ready"
                )
        migrating = [
            p
            for p in jobs_runners.values()
            if p.version in self.new_versions and p.version not in self._ready_jobs_runner_versions
        ]
        # Recreate stops every component but the jobs-runner before it migrates.
        running = sorted(others)
        if self.recreate and migrating and running:
            self._add(f"pods {running} run while the new jobs-runner migrates")

    # --- the api Deployment's replicas ---------------------------------------------------------

    @property
    def api_replicas_seen(self) -> list[int]:
        return self.replicas_seen.get(f"{self.instance}-api", [])

    @property
    def api_images_seen(self) -> list[str]:
        return self.images_seen.get(f"{self.instance}-api", [])

    def _watch_deployments(self) -> None:
        apps = client.AppsV1Api(self.api)
        for event in self._stream(
            "_watch_deployments",
            apps.list_namespaced_deployment,
            namespace=self.namespace,
            label_selector=f"{INSTANCE}={self.instance}",
        ):
            deployment = event["object"]
            replicas = deployment.spec.replicas
            image = deployment.spec.template.spec.containers[0].image
            with self._lock:
                seen = self.replicas_seen.setdefault(deployment.metadata.name, [])
                if not seen or seen[-1] != replicas:
                    seen.append(replicas)
                images = self.images_seen.setdefault(deployment.metadata.name, [])
                if not images or images[-1] != image:
                    images.append(image)

    # --- the api Service's endpoints ---------------------------------------------------------

    def _watch_endpoints(self) -> None:
        discovery = client.DiscoveryV1Api(self.api)
        selector = f"kubernetes.io/service-name={self.instance}-api"
        for event in self._stream(
            "_watch_endpoints",
            discovery.list_namespaced_endpoint_slice,
            namespace=self.namespace,
            label_selector=selector,
        ):
            endpoints = event["object"].endpoints or []
            ready = sum(1 for e in endpoints if e.conditions and e.conditions.ready)
            if event["type"] == "DELETED":
                ready = 0
            with self._lock:
                if self.min_ready_endpoints is None or ready < self.min_ready_endpoints:
                    self.min_ready_endpoints = ready
                if ready == 0:
                    self._add("the api Service had no ready endpoint")

    # --- the RetoolDeployment ----------------------------------------------------------------

    def _watch_retool_deployment(self) -> None:
        custom = client.CustomObjectsApi(self.api)
        for event in self._stream(
            "_watch_retool_deployment",
            custom.list_namespaced_custom_object,
            group=GROUP,
            version=VERSION,
            namespace=self.namespace,
            plural=PLURAL,
            field_selector=f"metadata.name={self.instance}",
        ):
            body = event["object"]
            step = ((body.get("status") or {}).get("upgrade") or {}).get("step")
            with self._lock:
                if step and (not self.steps or self.steps[-1] != step):
                    self.steps.append(step)
            for entry in body.get("metadata", {}).get("managedFields") or []:
                writes_spec = "f:spec" in (entry.get("fieldsV1") or {})
                if (
                    entry.get("manager") == "retool-operator"
                    and writes_spec
                    and entry.get("subresource") != "status"
                ):
                    self._violation("the operator wrote the RetoolDeployment's spec")


def watched_upgrade(
    api: client.ApiClient,
    namespace: str,
    instance: str,
    version: str,
    *,
    recreate: bool,
    deadline: float,
    failing: bool = False,
) -> tuple[InvariantMonitor, dict[str, Any]]:
    """Set spec.version to VERSION under a monitor (the api Service watched under RollingUpdate)
    and wait until the RetoolDeployment is Ready on it, or, FAILING, Stalled with UpgradeFailed;
    the monitor and that RetoolDeployment."""
    with InvariantMonitor(
        api,
        namespace,
        instance,
        new_versions={version},
        recreate=recreate,
        keep_endpoints=not recreate,
    ) as monitor:
        retool.patch_spec(api, namespace, instance, {"version": version})
        if failing:
            body: dict[str, Any] = wait_for(
                lambda: retool.stalled(api, namespace, instance, "UpgradeFailed"),
                deadline,
                "Stalled=True UpgradeFailed",
            )
        else:
            body = wait_for(
                lambda: retool.ready_on(api, namespace, instance, version),
                deadline,
                f"Ready on {version}",
            )
    return monitor, body
