"""Shared test wiring: the cluster backend, fresh namespaces, a real PostgreSQL server.

Unit tests (tests/unit) use none of these fixtures and need no cluster. End-to-end tests run
against a real kube-apiserver chosen with `--cluster`:
  kwok      the local control plane (hack/cluster.sh), started if it is not running (default)
  existing  whatever the current KUBECONFIG points at
  kind      a kind cluster via pytest-kind (needs a Docker engine; skipped where there is none)
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import uuid
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any, cast

import hypothesis
import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
CRD_FILE = REPO / "crds" / "retooldeployments.yaml"
LOCAL_KUBECONFIG = REPO / ".local" / "kubeconfig"


# Property tests build pydantic models and manifests per example; on a loaded 2-core machine an
# example can take well over hypothesis's 200 ms default deadline. Timing is `make bench`'s job.
hypothesis.settings.register_profile("retool-operator", deadline=None)
hypothesis.settings.load_profile("retool-operator")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--cluster",
        choices=("kwok", "existing", "kind"),
        default=os.environ.get("RETOOL_TEST_CLUSTER", "kwok"),
        help="Kubernetes backend for end-to-end tests (default: kwok, the local control plane)",
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e/" in str(item.path):
            item.add_marker(pytest.mark.e2e)


@contextlib.contextmanager
def _file_lock(name: str) -> Iterator[None]:
    """Serialise set-up across pytest-xdist workers (one cluster, one CRD install)."""
    path = REPO / ".local" / f"{name}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _kwok_kubeconfig() -> str:
    with _file_lock("cluster"):
        subprocess.run(["bash", str(REPO / "hack" / "cluster.sh"), "up"], check=True)
    return str(LOCAL_KUBECONFIG)


def _kind_kubeconfig(request: pytest.FixtureRequest) -> str:
    if (
        shutil.which("docker") is None
        or subprocess.run(["docker", "info"], capture_output=True, check=False).returncode
    ):
        pytest.skip("--cluster=kind needs a running Docker engine: `docker info` failed")
    kind = pytest.importorskip(
        "pytest_kind", reason="--cluster=kind needs `pip install pytest-kind`"
    )
    cluster = kind.KindCluster("retool-operator-tests")
    cluster.create()
    request.addfinalizer(cluster.delete)
    return str(cluster.kubeconfig_path)


@pytest.fixture(scope="session")
def kubeconfig(request: pytest.FixtureRequest) -> str:
    """Path of a kubeconfig for the chosen backend, with a cluster that answers."""
    backend = request.config.getoption("--cluster")
    if backend == "kwok":
        return _kwok_kubeconfig()
    if backend == "kind":
        return _kind_kubeconfig(request)
    path = os.environ.get("KUBECONFIG", str(Path.home() / ".kube" / "config"))
    if not Path(path).exists():
        pytest.fail(f"--cluster=existing: no kubeconfig at {path}")
    return path


@pytest.fixture(scope="session")
def cluster_api(kubeconfig: str) -> Iterator[object]:
    """A kubernetes ApiClient for the test cluster."""
    from kubernetes import config

    api = config.new_client_from_config(config_file=kubeconfig)  # type: ignore[no-untyped-call]
    yield api
    api.close()


@pytest.fixture(scope="session")
def kube_api(cluster_api: object) -> object:
    """The test cluster's ApiClient, with the RetoolDeployment CRD installed and Established."""
    from kubernetes import client, utils, watch

    api = cluster_api
    with _file_lock("crd"):
        crd = yaml.safe_load(CRD_FILE.read_text())
        ext = client.ApiextensionsV1Api(api)
        ext_body = {**crd, "metadata": {**crd["metadata"]}}
        try:
            ext.patch_custom_resource_definition(
                crd["metadata"]["name"],
                ext_body,
                field_manager="retool-operator-tests",
                force=True,
                _content_type="application/apply-patch+yaml",
            )
        except client.ApiException as error:
            if error.status != 404:
                raise
            utils.create_from_dict(api, crd)  # type: ignore[no-untyped-call]
        stream = watch.Watch()  # type: ignore[no-untyped-call]
        for event in stream.stream(  # type: ignore[no-untyped-call]
            ext.list_custom_resource_definition,
            field_selector=f"metadata.name={crd['metadata']['name']}",
            timeout_seconds=60,
        ):
            conditions = event["object"].status.conditions or []
            if any(c.type == "Established" and c.status == "True" for c in conditions):
                stream.stop()  # type: ignore[no-untyped-call]
                break
        else:
            pytest.fail("the RetoolDeployment CRD did not become Established within 60s")
    return api


@pytest.fixture
def namespace(cluster_api: object, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace for one test, deleted afterwards (without waiting)."""
    from kubernetes import client

    core = client.CoreV1Api(cluster_api)
    slug = "".join(c if c.isalnum() else "-" for c in request.node.name.lower())[:40].strip("-")
    name = f"t-{slug}-{uuid.uuid4().hex[:6]}"
    core.create_namespace(
        client.V1Namespace(
            metadata=client.V1ObjectMeta(name=name, labels={"retool-operator.dev/test": "true"})
        )
    )
    yield name
    _release_retool_deployments(cluster_api, name)
    with contextlib.suppress(client.ApiException):
        core.delete_namespace(name, propagation_policy="Background")


def _release_retool_deployments(api: object, namespace: str) -> None:
    """Drop the finalizers of RetoolDeployments left in NAMESPACE.

    The test's operator has stopped by now, so nothing would ever remove them: the namespace
    would stay Terminating and the control plane would retry its deletion for the rest of the
    session (as the runbook says to do by hand once the operator is gone for good).
    """
    from kubernetes import client

    from tests.support.retool import GROUP, PLURAL, VERSION

    custom = client.CustomObjectsApi(api)
    with contextlib.suppress(client.ApiException):  # no CRD in this cluster, or already gone
        listing = cast(
            dict[str, Any], custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)
        )
        for item in listing["items"]:
            if item["metadata"].get("finalizers"):
                custom.patch_namespaced_custom_object(
                    GROUP,
                    VERSION,
                    namespace,
                    PLURAL,
                    item["metadata"]["name"],
                    {"metadata": {"finalizers": None}},
                    _content_type="application/merge-patch+json",
                )


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A real PostgreSQL server on a free loopback port, stopped at the end of the session."""
    from tests.support import pgserver

    data_dir = tmp_path_factory.mktemp("postgres") / "data"
    server = pgserver.start(data_dir)
    yield server
    pgserver.stop(data_dir)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Remember each phase's outcome on the item, so fixtures can tell a failed test."""
    report = yield
    setattr(item, f"rep_{call.when}", report)
    return report


@pytest.fixture
def operator(
    kubeconfig: str,
    kube_api: object,
    namespace: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> Iterator[object]:
    """The operator, as a real process watching this test's namespace; its log on failure."""
    from tests.support.operator_process import OperatorProcess

    process = OperatorProcess(kubeconfig, namespace, tmp_path / "operator.log")
    process.start()
    yield process
    process.stop()
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        print(f"\n----- operator log ({namespace}) -----\n{process.log_tail(150)}")


@pytest.fixture
def retool_secrets(kube_api: object, namespace: str, postgres: object) -> object:
    """The database and Retool Secrets in the test namespace; the database server."""
    from tests.support.retool import create_secrets

    create_secrets(kube_api, namespace, postgres)  # type: ignore[arg-type]
    return postgres
