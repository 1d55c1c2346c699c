"""The test bed's edge nodes: 20 small, tainted KWOK nodes; a DaemonSet gets one real, bridged
model server per node; a node cut off from the control plane keeps its pod serving locally while
the cluster loses sight of it (hack/edgenodes.py, tests/e2e/harness/edgenodes.py).

Disconnecting a node affects every pod on it, so these tests (and the operator's edge tests) run
in one xdist group, "edge".
"""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from kubernetes import client

from hack import dataplane, edgenodes
from hack.testbed import EDGE_FIRST_INDEX, EDGE_LABEL, EDGE_NODES, EDGE_SELECTOR, EDGE_TAINT, EDGE_TOLERATION
from modelpilot.api.models import ModelDeploymentSpec
from modelpilot.resources import BuildSettings, build_pod_template
from modelpilot.resources.labels import common_labels, selector_labels
from tests.e2e.conftest import ROOT, make_namespace
from tests.e2e.harness import CanaryWorld, LoadGenerator, PodView
from tests.e2e.harness.edgenodes import disconnected, ready, unreachable
from tests.e2e.harness.podstatus import condition
from tests.e2e.support import ClusterHandle, wait_for
from tests.support import testmodels

pytestmark = [pytest.mark.xdist_group("edge"), pytest.mark.alone]

NAME = "edge-iris"
SERVING_TIMEOUT = 300.0  # 20 model servers starting at once on a 2-core machine


def node_dicts(core: client.CoreV1Api, **kwargs: Any) -> list[dict[str, Any]]:
    return list(json.loads(core.list_node(_preload_content=False, **kwargs).data)["items"])


def pod_cidr(node: str) -> ipaddress.IPv4Network:
    return ipaddress.IPv4Network(f"10.244.{EDGE_FIRST_INDEX + EDGE_NODES.index(node)}.0/24")


def edge_daemonset(namespace: str, spec: ModelDeploymentSpec) -> dict[str, Any]:
    """The serving pod template the operator generates for `spec`, run by a DaemonSet on every edge node."""
    template = build_pod_template(spec, name=NAME, namespace=namespace, track="stable", settings=BuildSettings())
    template["spec"]["nodeSelector"] = dict(EDGE_SELECTOR)
    template["spec"]["tolerations"] = [dict(EDGE_TOLERATION)]
    return {"apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": NAME, "labels": common_labels(NAME)},
            "spec": {"selector": {"matchLabels": selector_labels(NAME, "stable")}, "template": template}}


# ------------------------------------------------------------------------------------ the nodes


def test_edge_nodes_are_small_labelled_and_tainted(local_cluster: ClusterHandle, core: client.CoreV1Api) -> None:
    nodes = {n["metadata"]["name"]: n for n in node_dicts(core, label_selector=EDGE_LABEL)}
    assert sorted(nodes) == list(EDGE_NODES)
    for i, name in enumerate(EDGE_NODES):
        node = nodes[name]
        labels = node["metadata"]["labels"]
        assert {EDGE_LABEL: "", "modelpilot.io/pool": "edge", "kubernetes.io/os": "linux",
                "kubernetes.io/hostname": name}.items() <= labels.items()
        assert labels["kubernetes.io/arch"] == ("arm64" if i % 2 else "amd64")
        assert EDGE_TAINT in node["spec"]["taints"]
        assert {"cpu": "2", "memory": "4Gi", "pods": "10"}.items() <= node["status"]["allocatable"].items()
        assert ipaddress.IPv4Network(node["spec"]["podCIDR"]) == pod_cidr(name)
    cidrs = [n["spec"]["podCIDR"] for n in node_dicts(core)]
    assert len(cidrs) == len(set(cidrs)), cidrs
    wait_for(lambda: all(ready(core, n) == "True" for n in EDGE_NODES), timeout=60, what="every edge node Ready")


def test_ordinary_pods_stay_off_edge_nodes(local_cluster: ClusterHandle, core: client.CoreV1Api,
                                           apps: client.AppsV1Api, namespace: str) -> None:
    pod_spec = {"containers": [{"name": "main", "image": "registry.invalid/fake:1"}]}
    apps.create_namespaced_deployment(namespace, {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 30, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": pod_spec}}})
    # Asking for an edge node without tolerating its taint is not enough.
    core.create_namespaced_pod(namespace, {"metadata": {"name": "wants-edge"},
                                           "spec": {**pod_spec, "nodeSelector": dict(EDGE_SELECTOR)}})

    def placed() -> list[str] | None:
        pods = core.list_namespaced_pod(namespace, label_selector="app=web").items
        nodes = [p.spec.node_name for p in pods if p.spec.node_name and p.status.phase == "Running"]
        return nodes if len(nodes) == 30 else None

    assert not set(wait_for(placed, timeout=90, what="30 pods Running")) & set(EDGE_NODES)
    events = wait_for(lambda: core.list_namespaced_event(
        namespace, field_selector="reason=FailedScheduling,involvedObject.name=wants-edge").items,
        timeout=60, what="FailedScheduling of the pod without the toleration")
    assert any("untolerated taint" in e.message for e in events), [e.message for e in events]
    assert not core.read_namespaced_pod("wants-edge", namespace).spec.node_name


def test_node_down_and_up_commands(local_cluster: ClusterHandle, core: client.CoreV1Api) -> None:
    """`hack/testbed.py node-down|node-up NAME`, as a person would run them inside the test bed."""
    node = EDGE_NODES[-1]
    leases = client.CoordinationV1Api(core.api_client)

    def testbed(*args: str) -> subprocess.CompletedProcess[str]:
        workdir = str(local_cluster.kubeconfig.parent)  # the test bed's work dir holds its kubeconfig
        return subprocess.run([sys.executable, str(ROOT / "hack" / "testbed.py"), *args, "--workdir", workdir],
                              check=True, text=True, capture_output=True, cwd=ROOT)

    try:
        testbed("node-down", node)
        assert ready(core, node) == "Unknown"
        assert leases.read_namespaced_lease(node, edgenodes.LEASE_NAMESPACE).spec.holder_identity \
            == edgenodes.LEASE_HOLDER  # kwok's no more
        wait_for(lambda: unreachable(core, node), timeout=60, what="the node lifecycle controller's unreachable taint")
        assert ready(core, node) == "Unknown"  # kwok wrote nothing since
    finally:
        testbed("node-up", node)
    assert ready(core, node) == "True"
    assert leases.read_namespaced_lease(node, edgenodes.LEASE_NAMESPACE).spec.holder_identity != edgenodes.LEASE_HOLDER
    assert edgenodes.DISCONNECTED_ANNOTATION not in (core.read_node(node).metadata.annotations or {})
    wait_for(lambda: not unreachable(core, node), timeout=60, what="the unreachable taint removed")


# ------------------------------------------------------------------------------------ a DaemonSet


@dataclass
class Fleet:
    namespace: str
    world: CanaryWorld
    seconds_to_serve: float  # DaemonSet created -> every pod serving (API Ready, process ready)


@pytest.fixture(scope="module")
def fleet(local_cluster: ClusterHandle, api_client: client.ApiClient, core: client.CoreV1Api,
          worker_id_prefix: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """A DaemonSet of ONNX model servers on the 20 edge nodes, bridged, scraped and sent local traffic."""
    root = tmp_path_factory.mktemp("edge")
    model = testmodels.write_onnx(root / "model")
    spec = ModelDeploymentSpec.model_validate({"model": {"version": "v1", "uri": f"file://{model}", "format": "onnx"},
                                               "runtime": dataplane.bridged_runtime()})
    namespace = make_namespace(core, worker_id_prefix, "edge-fleet")
    world = CanaryWorld(api_client, namespace, NAME, workdir=root / "world", rate=40, local=True).start()
    try:
        started = time.monotonic()
        client.AppsV1Api(api_client).create_namespaced_daemon_set(namespace, edge_daemonset(namespace, spec))
        world.wait_serving(timeout=SERVING_TIMEOUT, stable=len(EDGE_NODES))
        yield Fleet(namespace, world, time.monotonic() - started)
    finally:
        print(world.describe())
        world.stop()
        core.delete_namespace(namespace, propagation_policy="Background")


def on_node(world: CanaryWorld, node: str) -> PodView:
    [view] = [v for v in world.bridge.pods() if v.node == node]
    return view


def target_pods(world: CanaryWorld) -> set[str]:
    """Pods in the bridge's file_sd file."""
    assert world.bridge.targets_file is not None
    return {group["labels"]["pod"] for group in json.loads(world.bridge.targets_file.read_text())}


def scraped_pods(world: CanaryWorld) -> set[str]:
    """Pods Prometheus scrapes successfully now."""
    return {t["labels"]["pod"] for t in world.prometheus.active_targets()
            if t["labels"].get("namespace") == world.namespace and t["health"] == "up"}


def answered_since(world: CanaryWorld | LoadGenerator, since: float) -> set[str]:
    loadgen = world.loadgen if isinstance(world, CanaryWorld) else world
    return {r.pod for r in loadgen.requests() if r.sent_at >= since and r.pod and r.outcome == 200}


def test_a_daemonset_gets_one_serving_process_per_edge_node(fleet: Fleet, apps: client.AppsV1Api) -> None:
    world = fleet.world
    print(f"20 edge pods serving {fleet.seconds_to_serve:.1f}s after the DaemonSet was created")
    pods = world.wait_serving(stable=len(EDGE_NODES))
    assert sorted(p.node or "" for p in pods) == list(EDGE_NODES)  # one per node
    for view in pods:
        assert view.process is not None and view.process.pid is not None
        assert ipaddress.IPv4Address(view.process.host) in pod_cidr(view.node or "")
        os.kill(view.process.pid, 0)  # a real process
    wait_for(lambda: apps.read_namespaced_daemon_set(NAME, fleet.namespace).status.number_ready == len(EDGE_NODES),
             timeout=60, what="the DaemonSet's numberReady 20")
    # Each device's local clients reach its own pod: every pod answers, none fails.
    since = time.monotonic()
    wait_for(lambda: answered_since(world, since) == {p.name for p in pods}, timeout=60,
             what="every pod answering local requests")
    assert world.loadgen.error_ratio(30, "stable") == 0.0
    assert world.loadgen.traffic_split(30) == {"stable": 1.0}
    wait_for(lambda: scraped_pods(world) == {p.name for p in pods}, timeout=60, what="Prometheus scraping all 20")


def test_a_disconnected_node_keeps_its_pod_serving_out_of_sight(fleet: Fleet, api_client: client.ApiClient,
                                                                core: client.CoreV1Api, apps: client.AppsV1Api) -> None:
    world, node = fleet.world, EDGE_NODES[3]
    world.wait_serving(stable=len(EDGE_NODES))
    wait_for(lambda: len(scraped_pods(world)) == len(EDGE_NODES), timeout=60, what="every target up")
    view = on_node(world, node)
    assert view.process is not None
    pid = view.process.pid

    with disconnected(core, node) as marked:
        assert f"{fleet.namespace}/{view.name}" in marked
        assert ready(core, node) == "Unknown"
        wait_for(lambda: unreachable(core, node), timeout=60, what="the node lifecycle controller's unreachable taint")
        wait_for(lambda: on_node(world, node).partitioned, timeout=30, what="the bridge seeing the partition")
        wait_for(lambda: view.name not in target_pods(world), timeout=30, what="its target leaving file_sd")
        wait_for(lambda: view.name not in scraped_pods(world), timeout=30, what="Prometheus dropping the target")
        # The pod stays: same object, not terminating, tolerating the unreachable taint for good.
        pod = core.read_namespaced_pod(view.name, fleet.namespace)
        assert pod.metadata.uid == view.uid and pod.metadata.deletion_timestamp is None
        assert any(t.key == edgenodes.UNREACHABLE_TAINT and t.effect == "NoExecute" and t.toleration_seconds is None
                   for t in pod.spec.tolerations)
        # Its process keeps serving the device's local clients; the bridge wrote no status for it.
        info = world.bridge.registry()[view.name]
        assert (info.pid, info.ready) == (pid, True)
        since = time.monotonic()
        wait_for(lambda: view.name in answered_since(world, since), timeout=30, what="the cut-off pod answering")
        raw = api_client.sanitize_for_serialization(core.read_namespaced_pod(view.name, fleet.namespace))
        assert condition(raw, "Ready") == "False"
        # Local clients of the other devices only, when asked for.
        with LoadGenerator(api_client, fleet.namespace, NAME, world.bridge, rate=40, local=True,
                           include_partitioned=False) as others:
            wait_for(lambda: len(others.local_targets) == len(EDGE_NODES) - 1, timeout=30, what="19 local targets")
            since = time.monotonic()
            wait_for(lambda: len(answered_since(others, since)) == len(EDGE_NODES) - 1, timeout=60,
                     what="the 19 connected pods answering")
            assert view.name not in answered_since(others, since)
        pods = core.list_namespaced_pod(fleet.namespace).items  # nothing evicted, nothing replaced
        assert len(pods) == len(EDGE_NODES)
        assert [p.metadata.name for p in pods if p.spec.node_name == node] == [view.name]

    assert ready(core, node) == "True"
    wait_for(lambda: not unreachable(core, node), timeout=60, what="the unreachable taint removed")
    wait_for(lambda: condition(api_client.sanitize_for_serialization(
        core.read_namespaced_pod(view.name, fleet.namespace)), "Ready") == "True", timeout=30,
        what="the bridge writing Ready again, like a reconnected kubelet")
    wait_for(lambda: view.name in scraped_pods(world), timeout=30, what="Prometheus scraping it again")
    back = on_node(world, node)
    assert back.uid == view.uid and back.process is not None and back.process.pid == pid and not back.partitioned
    assert world.bridge.errors == []
