"""The local control plane behaves as the other end-to-end tests assume (docs/design.md §7)."""

from __future__ import annotations

import time

from kubernetes import client

from tests.support.waiting import wait_for

DEADLINE = 60.0


def _deployment(name: str, replicas: int) -> dict[str, object]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "web", "image": "example/web:1.0.0"}]},
            },
        },
    }


def _pod(name: str, image: str, annotations: dict[str, str] | None = None) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "annotations": annotations or {}},
        "spec": {"containers": [{"name": "main", "image": image}]},
    }


def _is_ready(pod: client.V1Pod) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


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
    nodes = {n.metadata.name: n for n in core.list_node().items}
    for pod in pods:
        node = nodes[pod.spec.node_name]
        assert node.metadata.annotations.get("kwok.x-k8s.io/node") == "fake"


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
        lambda: (p := core.read_namespaced_pod("broken", namespace)).status.pod_ip and p,
        DEADLINE,
        "the broken pod to be started by kwok",
    )
    assert broken.status.phase == "Running"
    assert not _is_ready(broken)
    assert broken.status.container_statuses[0].state.waiting.reason == "CrashLoopBackOff"


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
        lambda: (p := core.read_namespaced_pod("hung", namespace)).status.pod_ip and p,
        DEADLINE,
        "the hung pod to be started by kwok",
    )
    assert hung.status.phase == "Running"
    assert not _is_ready(hung)
    status = hung.status.container_statuses[0]
    assert status.restart_count == 0
    assert status.state.running is not None


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
            return error.status == 404
        return False

    wait_for(gone, DEADLINE, "the deleted pod to go")
    assert time.monotonic() - started >= 2.5
