"""Talking to the bench cluster: a client, the CRD, namespaces, watches and the API server's
metrics. Watches run in threads and stamp every event the moment its line arrives."""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config
from kubernetes.watch.watch import iter_resp_lines

from retool_operator.core.builders import CHILD_KINDS
from tests.support import prometheus
from tests.support.retool import kubectl

log = logging.getLogger("bench")

REPO = Path(__file__).resolve().parent.parent
CRD_FILE = REPO / "crds" / "retooldeployments.yaml"
CRD_NAME = "retooldeployments.retool-operator.dev"
Body = dict[str, Any]


def api_client(kubeconfig: str, pool: int = 32) -> client.ApiClient:
    """A client whose connection pool serves several threads and watches at once."""
    configuration = client.Configuration()
    config.load_kube_config(  # type: ignore[no-untyped-call]
        config_file=kubeconfig, client_configuration=configuration
    )
    configuration.connection_pool_maxsize = pool
    return client.ApiClient(configuration)


def raw(response: Any) -> Body:
    """The JSON body of a call made with `_preload_content=False`."""
    data: Body = json.loads(response.data)
    return data


def install_crd(api: client.ApiClient) -> None:
    """Server-side apply crds/retooldeployments.yaml and wait until it is Established."""
    crd = yaml.safe_load(CRD_FILE.read_text())
    ext = client.ApiextensionsV1Api(api)
    ext.patch_custom_resource_definition(
        CRD_NAME,
        crd,
        field_manager="retool-bench",
        force=True,
        _content_type="application/apply-patch+yaml",
        _preload_content=False,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        body = raw(ext.read_custom_resource_definition(CRD_NAME, _preload_content=False))
        conditions = (body.get("status") or {}).get("conditions") or []
        if any(c["type"] == "Established" and c["status"] == "True" for c in conditions):
            return
        time.sleep(0.2)
    raise RuntimeError("the RetoolDeployment CRD did not become Established within 60s")


def create_namespace(api: client.ApiClient, name: str) -> None:
    """Create a namespace (already there is fine)."""
    try:
        body: Any = {"metadata": {"name": name, "labels": {"retool-operator.dev/bench": "true"}}}
        client.CoreV1Api(api).create_namespace(body, _preload_content=False)
    except client.ApiException as error:
        if error.status != 409:
            raise


def server_version(api: client.ApiClient) -> str:
    """The API server's gitVersion."""
    return str(client.VersionApi(api).get_code().git_version)


def parallel(fn: Callable[[int], object], count: int, workers: int = 8) -> None:
    """Call FN(0..COUNT-1) from WORKERS threads; re-raise the first error."""
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="create") as pool:
        for future in [pool.submit(fn, i) for i in range(count)]:
            future.result()


# --- watches ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WatchEvent:
    """One watch event, stamped on arrival: monotonic (for latencies) and wall-clock seconds
    (to compare with timestamps the operator wrote, on the same machine)."""

    type: str  # SYNC (from the initial list), ADDED, MODIFIED, DELETED
    object: Body
    monotonic: float
    wall: float


class Watch:
    """List, then watch, one collection in a daemon thread, handing each event to ON_EVENT.

    LIST_CALL is a generated list method of the kubernetes client (e.g.
    `AppsV1Api(api).list_namespaced_deployment`) and ARGS/KWARGS its arguments (selectors).
    `start` returns once the initial list has been delivered.
    """

    def __init__(
        self,
        list_call: Callable[..., Any],
        *args: Any,
        on_event: Callable[[WatchEvent], None],
        **kwargs: Any,
    ) -> None:
        self._call = list_call
        self._args = args
        self._kwargs = kwargs
        self._on_event = on_event
        self._stopped = threading.Event()
        self._synced = threading.Event()
        self._response: Any = None
        self._thread = threading.Thread(target=self._run, daemon=True, name="watch")

    def start(self, timeout: float = 30) -> Watch:
        """Start the thread; wait until the initial list has been delivered."""
        self._thread.start()
        if not self._synced.wait(timeout):
            raise RuntimeError(f"watch via {self._call.__name__} did not sync in {timeout}s")
        return self

    def stop(self) -> None:
        """Stop watching (the thread ends at its next line or when its connection drops)."""
        self._stopped.set()
        response = self._response
        if response is not None:
            with contextlib.suppress(Exception):
                response.shutdown()
            with contextlib.suppress(Exception):
                response.close()

    def __enter__(self) -> Watch:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _list(self) -> str:
        body = raw(self._call(*self._args, _preload_content=False, **self._kwargs))
        monotonic, wall = time.monotonic(), time.time()
        for item in body.get("items") or []:
            self._on_event(WatchEvent("SYNC", item, monotonic, wall))
        self._synced.set()
        return str(body["metadata"]["resourceVersion"])

    def _run(self) -> None:
        version: str | None = None
        while not self._stopped.is_set():
            try:
                if version is None:
                    version = self._list()
                self._response = self._call(
                    *self._args,
                    watch=True,
                    resource_version=version,
                    allow_watch_bookmarks=True,
                    timeout_seconds=120,
                    _preload_content=False,
                    **self._kwargs,
                )
                for line in iter_resp_lines(self._response):  # type: ignore[no-untyped-call]
                    monotonic, wall = time.monotonic(), time.time()
                    if self._stopped.is_set():
                        return
                    if not line:
                        continue
                    event = json.loads(line)
                    obj = event["object"]
                    if event["type"] == "ERROR":
                        version = None  # 410 Gone and the like: list again
                        break
                    version = obj["metadata"]["resourceVersion"]
                    if event["type"] != "BOOKMARK":
                        self._on_event(WatchEvent(event["type"], obj, monotonic, wall))
            except Exception:
                if self._stopped.is_set():
                    return
                log.debug("watch via %s failed; resuming", self._call.__name__, exc_info=True)
                time.sleep(0.5)


# --- the API server's request counters -----------------------------------------------------------

WRITE_VERBS = frozenset({"POST", "PUT", "PATCH", "APPLY", "DELETE", "DELETECOLLECTION"})
# What the operator writes: its own resource, its children, Events, and pods (a rollback only).
OPERATOR_RESOURCES = frozenset(
    {"retooldeployments", "events", "pods", *(plural for _, _, plural in CHILD_KINDS)}
)
RequestKey = tuple[str, str, str]  # (resource[/subresource], verb, code)


@dataclass
class RequestCounts:
    """apiserver_request_total, summed by (resource[/subresource], verb, code)."""

    counts: dict[RequestKey, float] = field(default_factory=dict)

    def minus(self, before: RequestCounts) -> RequestCounts:
        """The increase since BEFORE (zero increases dropped)."""
        delta = {
            key: value - before.counts.get(key, 0.0)
            for key, value in self.counts.items()
            if value - before.counts.get(key, 0.0) > 0
        }
        return RequestCounts(delta)

    def writes(self) -> dict[str, float]:
        """Write requests by `resource[/subresource] VERB`."""
        found: dict[str, float] = defaultdict(float)
        for (resource, verb, _code), value in self.counts.items():
            if verb in WRITE_VERBS:
                found[f"{resource} {verb}"] += value
        return dict(sorted(found.items()))

    def reads(self) -> dict[str, float]:
        """GET and LIST requests by `resource[/subresource] VERB` (WATCH left out)."""
        found: dict[str, float] = defaultdict(float)
        for (resource, verb, _code), value in self.counts.items():
            if verb in {"GET", "LIST"}:
                found[f"{resource or '(non-resource)'} {verb}"] += value
        return dict(sorted(found.items()))

    def operator_resource_writes(self) -> dict[str, float]:
        """Writes to the resources the operator writes (other clients' writes to those included:
        the caller says what they can be)."""
        return {
            key: value
            for key, value in self.writes().items()
            if key.split(" ")[0].split("/")[0] in OPERATOR_RESOURCES
        }


def apiserver_requests(kubeconfig: str) -> RequestCounts:
    """Scrape the API server's /metrics (kubectl get --raw) for apiserver_request_total."""
    text = kubectl(kubeconfig, "get", "--raw", "/metrics").stdout
    counts: dict[RequestKey, float] = defaultdict(float)
    for labels, value in prometheus.samples(text).get("apiserver_request_total", []):
        resource = labels.get("resource", "")
        if labels.get("subresource"):
            resource += "/" + labels["subresource"]
        counts[(resource, labels.get("verb", ""), labels.get("code", ""))] += value
    return RequestCounts(dict(counts))


@contextlib.contextmanager
def timed() -> Iterator[Callable[[], float]]:
    """`with timed() as elapsed:` ... `elapsed()` seconds since the block began."""
    start = time.monotonic()
    yield lambda: time.monotonic() - start
