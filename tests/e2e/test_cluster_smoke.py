"""The local control plane behaves as the other end-to-end tests assume (docs/design.md §7)."""

from __future__ import annotations

import time

from kubernetes import client

from tests.support.typed import present
from tests.support.waiting import wait_for

DEADLINE = 60.0


def _deployment(name: str, replicas: int) -> client.V1Deployment:
    labels = {"app": name}
    return client.V1Deployment(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1DeploymentSpec(
            replicas=replicas,
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(
                    containers=[client.V1Container(name="web", image="example/web:1.0.0")]
                ),
            ),
        ),
    )


def _pod(name: str, image: str, annotations: dict[str, str] | None = None) -> client.V1Pod:
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name, annotations=annotations or {}),
        spec=client.V1PodSpec(containers=[client.V1Container(name="main", image=image)]),
    )


def _is_ready(pod: client.V1Pod) -> bool:
    conditions = present(pod.status).conditions or []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)


def _container_status(pod: client.V1Pod) -> client.V1ContainerStatus:
    """The status of POD's one container."""
    return present(present(pod.status).container_statuses)[0]


def _started(pod: client.V1Pod) -> client.V1Pod | None:
    """POD once kwok has started it (it has an IP), else None."""
    return pod if present(pod.status).pod_ip else None


def test_deployment_pods_become_ready_on_kwok_nodes(
    cluster_api: client.ApiClient, namespace: str
) -> None:
    """A 3-replica Deployment gets 3 Ready pods, each scheduled onto a kwok node."""
    client.AppsV1Api(cluster_api).create_namespaced_deployment(namespace, _deployment("web", 3))
    core = client.CoreV1Api(cluster_api)

    def ready_pods() -> list[client.V1Pod] | None:
        pods = core.list_namespaced_pod(namespace, label_selector="app=web").items
        ready = [p for p in pods if _is_ready(p)]
        return ready if len(ready) == 3 else None

    pods = wait_for(ready_pods, DEADLINE, "3 Ready pods of Deployment web")
    nodes = {present(n.metadata).name: n for n in core.list_node().items}
    for pod in pods:
        node = nodes[present(pod.spec).node_name]
        annotations = present(node.metadata).annotations or {}
        assert annotations.get("kwok.x-k8s.io/node") == "fake"


def test_neverready_image_never_becomes_ready(
    cluster_api: client.ApiClient, namespace: str
) -> None:
    """A pod whose tag ends in -neverready runs but stays not Ready, unlike its healthy twin."""
    core = client.CoreV1Api(cluster_api)
    core.create_namespaced_pod(namespace, _pod("broken", "tryretool/backend:3.200.0-neverready"))
    core.create_namespaced_pod(namespace, _pod("healthy", "tryretool/backend:3.200.0-stable"))
    wait_for(
        lambda: _is_ready(core.read_namespaced_pod("healthy", namespace)) or None,
        DEADLINE,
        "the healthy pod to become Ready",
    )
    # kwok handles both pods alike, so once the broken one has its status it will not change.
    broken = wait_for(
        lambda: _started(core.read_namespaced_pod("broken", namespace)),
        DEADLINE,
        "the broken pod to be started by kwok",
    )
    assert present(broken.status).phase == "Running"
    assert not _is_ready(broken)
    waiting = present(_container_status(broken).state).waiting
    assert present(waiting).reason == "CrashLoopBackOff"


def test_ready_delay_annotation_is_honoured(cluster_api: client.ApiClient, namespace: str) -> None:
    """The kwok ready-delay annotation holds a pod not Ready that long (a slow migration)."""
    core = client.CoreV1Api(cluster_api)
    annotations = {"pod-ready.stage.kwok.x-k8s.io/delay": "4s"}
    started = time.monotonic()
    core.create_namespaced_pod(namespace, _pod("slow", "tryretool/backend:3.200.0", annotations))
    wait_for(
        lambda: _is_ready(core.read_namespaced_pod("slow", namespace)) or None,
        DEADLINE,
        "the delayed pod to become Ready",
    )
    assert time.monotonic() - started >= 3.5


def test_hung_image_runs_without_restarting_and_never_becomes_ready(
    cluster_api: client.ApiClient, namespace: str
) -> None:
    """A pod tagged -hung runs, never restarts and stays not Ready (a stuck migration)."""
    core = client.CoreV1Api(cluster_api)
    core.create_namespaced_pod(namespace, _pod("hung", "tryretool/backend:3.200.0-hung"))
    hung = wait_for(
        lambda: _started(core.read_namespaced_pod("hung", namespace)),
        DEADLINE,
        "the hung pod to be started by kwok",
    )
    assert present(hung.status).phase == "Running"
    assert not _is_ready(hung)
    status = _container_status(hung)
    assert status.restart_count == 0
    assert present(status.state).running is not None


def test_delete_delay_annotation_keeps_a_pod_terminating(
    cluster_api: client.ApiClient, namespace: str
) -> None:
    """pod-delete.stage.kwok.x-k8s.io/delay keeps a deleted pod terminating for that long."""
    core = client.CoreV1Api(cluster_api)
    annotations = {"pod-delete.stage.kwok.x-k8s.io/delay": "3s"}
    core.create_namespaced_pod(namespace, _pod("lingering", "example/web:1.0.0", annotations))
    wait_for(
        lambda: _is_ready(core.read_namespaced_pod("lingering", namespace)) or None,
        DEADLINE,
        "the pod to become Ready",
    )
    started = time.monotonic()
    core.delete_namespaced_pod("lingering", namespace)

    def gone() -> bool:
        try:
            core.read_namespaced_pod("lingering", namespace)
        except client.ApiException as error:
            return bool(error.status == 404)
        return False

    wait_for(gone, DEADLINE, "the deleted pod to go")
    assert time.monotonic() - started >= 2.5
