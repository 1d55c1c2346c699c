"""The test bed itself: real API server, scheduler, controller-manager, Gateway API, Prometheus, helm."""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from hack import keda, netns, testbed
from tests.e2e.support import ClusterHandle, wait_for

A100 = "NVIDIA-A100-SXM4-80GB"


def deployment(name: str, replicas: int = 2, gpus: int = 0, tolerate: bool = True,
               product: str | None = None) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "main", "image": "registry.invalid/fake:1"}
    pod_spec: dict[str, Any] = {"containers": [container]}
    if gpus:
        container["resources"] = {"limits": {"nvidia.com/gpu": str(gpus)}}
        if tolerate:
            pod_spec["tolerations"] = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    if product:
        pod_spec["nodeSelector"] = {"nvidia.com/gpu.product": product}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": pod_spec},
        },
    }


def pods_of(core: client.CoreV1Api, namespace: str, app: str) -> list[client.V1Pod]:
    return list(core.list_namespaced_pod(namespace, label_selector=f"app={app}").items)


def ready(pod: client.V1Pod) -> bool:
    return pod.status.phase == "Running" and any(
        c.type == "Ready" and c.status == "True" for c in (pod.status.conditions or []))


def node_labels(core: client.CoreV1Api, node: str) -> dict[str, str]:
    return dict(core.read_node(node).metadata.labels or {})


def scheduling_failures(core: client.CoreV1Api, namespace: str) -> list[str]:
    events = core.list_namespaced_event(namespace, field_selector="reason=FailedScheduling").items
    return [e.message for e in events]


# ---------------------------------------------------------------------------------------------

def test_server_version_is_pinned(local_cluster: ClusterHandle) -> None:
    out = json.loads(local_cluster.kubectl("version", "-o", "json").stdout)
    pinned = testbed.versions()["KUBE_VERSION"]
    assert out["serverVersion"]["gitVersion"] == pinned
    assert out["clientVersion"]["gitVersion"] == pinned


def test_gpu_deployment_runs_on_a100_nodes(local_cluster: ClusterHandle, core: client.CoreV1Api,
                                           apps: client.AppsV1Api, namespace: str) -> None:
    apps.create_namespaced_deployment(namespace, deployment("gpu", replicas=3, gpus=1, product=A100))

    def all_ready() -> list[client.V1Pod] | None:
        pods = pods_of(core, namespace, "gpu")
        return pods if len(pods) == 3 and all(ready(p) for p in pods) else None

    pods = wait_for(all_ready, timeout=90, what="3 GPU pods Running and Ready")
    for pod in pods:
        assert node_labels(core, pod.spec.node_name).get("nvidia.com/gpu.product") == A100
        assert pod.status.pod_ip


def test_gpu_pod_without_toleration_stays_pending(local_cluster: ClusterHandle, core: client.CoreV1Api,
                                                  apps: client.AppsV1Api, namespace: str) -> None:
    apps.create_namespaced_deployment(namespace, deployment("notol", replicas=1, gpus=1, tolerate=False,
                                                           product=A100))
    messages = wait_for(lambda: scheduling_failures(core, namespace), timeout=60,
                        what="a FailedScheduling event")
    assert any("untolerated taint" in m for m in messages), messages
    pods = pods_of(core, namespace, "notol")
    assert pods and all(p.status.phase == "Pending" and not p.spec.node_name for p in pods)


def test_five_gpus_on_one_pod_stays_pending(local_cluster: ClusterHandle, core: client.CoreV1Api,
                                            apps: client.AppsV1Api, namespace: str) -> None:
    apps.create_namespaced_deployment(namespace, deployment("five", replicas=1, gpus=5))
    messages = wait_for(lambda: scheduling_failures(core, namespace), timeout=60,
                        what="a FailedScheduling event")
    assert any("Insufficient nvidia.com/gpu" in m for m in messages), messages
    assert all(p.status.phase == "Pending" for p in pods_of(core, namespace, "five"))


def test_cpu_deployment_lands_on_cpu_nodes(local_cluster: ClusterHandle, core: client.CoreV1Api,
                                           apps: client.AppsV1Api, namespace: str) -> None:
    apps.create_namespaced_deployment(namespace, deployment("cpu", replicas=4))

    def all_ready() -> list[client.V1Pod] | None:
        pods = pods_of(core, namespace, "cpu")
        return pods if len(pods) == 4 and all(ready(p) for p in pods) else None

    for pod in wait_for(all_ready, timeout=90, what="4 CPU pods Ready"):
        assert testbed.CPU_LABELS.items() <= node_labels(core, pod.spec.node_name).items()


def test_controller_manager_scales_and_garbage_collects(cluster: ClusterHandle, core: client.CoreV1Api,
                                                        apps: client.AppsV1Api, namespace: str) -> None:
    apps.create_namespaced_deployment(namespace, deployment("web", replicas=2))

    def replica_sets() -> list[client.V1ReplicaSet]:
        return list(apps.list_namespaced_replica_set(namespace, label_selector="app=web").items)

    rs = wait_for(replica_sets, timeout=30, what="a ReplicaSet for the Deployment")
    assert rs[0].metadata.owner_references[0].kind == "Deployment"

    def pod_count(n: int) -> bool:
        pods = [p for p in pods_of(core, namespace, "web") if p.metadata.deletion_timestamp is None]
        return len(pods) == n and all(ready(p) for p in pods)

    wait_for(lambda: pod_count(2), timeout=60, what="2 ready pods")
    apps.patch_namespaced_deployment_scale("web", namespace, {"spec": {"replicas": 5}})
    wait_for(lambda: pod_count(5), timeout=60, what="scale up to 5")
    apps.patch_namespaced_deployment_scale("web", namespace, {"spec": {"replicas": 1}})
    wait_for(lambda: pod_count(1), timeout=60, what="scale down to 1")

    hpa = {
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                 "minReplicas": 1, "maxReplicas": 4,
                 "metrics": [{"type": "Resource", "resource": {
                     "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}]},
    }
    client.AutoscalingV2Api(apps.api_client).create_namespaced_horizontal_pod_autoscaler(namespace, hpa)
    read = client.AutoscalingV2Api(apps.api_client).read_namespaced_horizontal_pod_autoscaler("web", namespace)
    assert read.spec.max_replicas == 4

    apps.delete_namespaced_deployment("web", namespace, propagation_policy="Background")
    wait_for(lambda: not replica_sets() and not pods_of(core, namespace, "web"), timeout=60,
             what="ReplicaSets and Pods garbage-collected")


def test_httproute_round_trip(cluster: ClusterHandle, custom: client.CustomObjectsApi, namespace: str) -> None:
    route = {
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": "fraud"},
        "spec": {
            "parentRefs": [{"name": "gw"}],
            "hostnames": ["fraud.example.com"],
            "rules": [{"backendRefs": [{"name": "fraud-stable", "port": 80, "weight": 90},
                                       {"name": "fraud-canary", "port": 80, "weight": 10}]}],
        },
    }
    custom.create_namespaced_custom_object("gateway.networking.k8s.io", "v1", namespace, "httproutes", route)
    read = custom.get_namespaced_custom_object("gateway.networking.k8s.io", "v1", namespace, "httproutes", "fraud")
    weights = [b["weight"] for b in read["spec"]["rules"][0]["backendRefs"]]
    assert weights == [90, 10]
    assert read["spec"]["hostnames"] == ["fraud.example.com"]


class _GaugeServer(http.server.ThreadingHTTPServer):
    """Serves one gauge in the Prometheus text format; a test may change `value` meanwhile."""

    def __init__(self, series: str, value: float) -> None:
        super().__init__(("127.0.0.1", 0), _GaugeHandler)
        self.series, self.value = series, value


class _GaugeHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        assert isinstance(self.server, _GaugeServer)
        name = self.server.series.split("{", 1)[0]
        body = f"# TYPE {name} gauge\n{self.server.series} {self.server.value}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def _serving(server: _GaugeServer) -> Iterator[_GaugeServer]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()


@pytest.fixture
def metrics_target() -> Iterator[int]:
    with _serving(_GaugeServer('testbed_answer{kind="probe"}', 42)) as server:
        yield server.server_address[1]


def test_prometheus_helper_scrapes_and_answers(metrics_target: int, tmp_path: Path) -> None:
    config = testbed.scrape_config([(f"127.0.0.1:{metrics_target}", {"namespace": "ml", "pod": "probe-0"})])
    with testbed.prometheus(config, tmp_path) as prom:
        result = wait_for(lambda: prom.query('testbed_answer{namespace="ml", pod="probe-0"}'),
                          timeout=30, what="the scraped sample")
    assert float(result[0]["value"][1]) == 42.0
    assert result[0]["metric"]["kind"] == "probe"


def test_helm_version(cluster: ClusterHandle) -> None:
    assert cluster.helm_binary
    out = subprocess.run([cluster.helm_binary, "version", "--short"], check=True, capture_output=True,
                         text=True).stdout
    if cluster.local:
        assert out.strip().startswith(testbed.versions()["HELM_VERSION"])
    else:
        assert out.startswith("v3.")


def local_cluster_netns() -> str:
    return os.environ.get(netns.ENV_MARK) or netns.name_for(testbed.DEFAULT_WORKDIR)


def test_cluster_down_leaves_nothing(local_cluster: ClusterHandle, tmp_path: Path) -> None:
    """A second, throw-away cluster: up, then down; no process and no port may survive."""
    # In this test bed's network namespace, without a data plane of its own (a second kube-proxy
    # would rewrite the first one's rules).
    second = testbed.Cluster(workdir=tmp_path / "second", name="modelpilot-down-test",
                             netns_name=local_cluster_netns(), dataplane=False)
    second.up()
    try:
        second.up()  # calling it twice is harmless: the running cluster is reused
        pids, ports = second.processes(), second.ports()
        assert len(pids) >= 5, pids  # etcd, apiserver, controller-manager, scheduler, kwok
        listening = [p for p in ports if testbed.port_is_open(p)]
        assert len(listening) >= 3, (ports, listening)  # at least etcd and the API server
        nodes = yaml.safe_load(second.kubectl("get", "nodes", "-o", "yaml").stdout)["items"]
        assert len(nodes) == len(testbed.testbed_nodes())
    finally:
        second.down()
    assert not [p for p in pids if testbed._alive(p)]
    assert not [p for p in listening if testbed.port_is_open(p)]
    assert not (tmp_path / "second").exists()


@pytest.fixture
def demand_server() -> Iterator[_GaugeServer]:
    """The gauge `keda_probe_demand`, with the value the test sets in `value`."""
    with _serving(_GaugeServer("keda_probe_demand", 0.0)) as server:
        yield server


def test_keda_scales_a_deployment_from_zero_and_back(local_cluster: ClusterHandle, core: client.CoreV1Api,
                                                     apps: client.AppsV1Api, custom: client.CustomObjectsApi,
                                                     namespace: str, demand_server: _GaugeServer,
                                                     tmp_path: Path) -> None:
    """KEDA's operator takes a Deployment 0 -> 1 when a Prometheus query rises and back to 0 when it
    falls; in between the HPA it owns scales 1 -> 3 through the external metrics API (aggregator)."""
    service = json.loads(local_cluster.kubectl("get", "apiservice", keda.API_SERVICE, "-o", "json").stdout)
    assert {"type": "Available", "status": "True"}.items() <= next(
        c for c in service["status"]["conditions"] if c["type"] == "Available").items()
    target = f"127.0.0.1:{demand_server.server_address[1]}"
    with testbed.prometheus(testbed.scrape_config([(target, {})]), tmp_path) as prom:
        wait_for(lambda: prom.query("keda_probe_demand"), timeout=30, what="the scraped demand")
        apps.create_namespaced_deployment(namespace, deployment("web", replicas=0))
        custom.create_namespaced_custom_object("keda.sh", "v1alpha1", namespace, "scaledobjects", {
            "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": {"name": "web"},
            "spec": {"scaleTargetRef": {"name": "web"}, "minReplicaCount": 0, "maxReplicaCount": 3,
                     "pollingInterval": 1, "cooldownPeriod": 5,
                     "triggers": [{"type": "prometheus", "metadata": {
                         "serverAddress": prom.url, "query": "max(keda_probe_demand)",
                         "threshold": "1", "activationThreshold": "0.5"}}]}})

        def scaled_object_ready() -> bool:
            so = custom.get_namespaced_custom_object("keda.sh", "v1alpha1", namespace, "scaledobjects", "web")
            conditions = so.get("status", {}).get("conditions", [])
            return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

        wait_for(scaled_object_ready, timeout=60, what="the ScaledObject Ready")
        hpas = wait_for(lambda: client.AutoscalingV2Api(apps.api_client).list_namespaced_horizontal_pod_autoscaler(
            namespace).items, timeout=30, what="KEDA's HPA")
        metric_name = hpas[0].spec.metrics[0].external.metric.name
        assert apps.read_namespaced_deployment("web", namespace).spec.replicas == 0

        def running(n: int) -> bool:
            pods = [p for p in pods_of(core, namespace, "web") if p.metadata.deletion_timestamp is None]
            return apps.read_namespaced_deployment("web", namespace).spec.replicas == n and len(pods) == n \
                and all(ready(p) for p in pods)

        demand_server.value = 1.0
        wait_for(lambda: running(1), timeout=60, what="0 -> 1 replica (KEDA's activation)")
        demand_server.value = 3.0
        wait_for(lambda: running(3), timeout=90, what="1 -> 3 replicas (the HPA on the external metric)")
        path = (f"/apis/external.metrics.k8s.io/v1beta1/namespaces/{namespace}/{metric_name}"
                "?labelSelector=scaledobject.keda.sh%2Fname%3Dweb")
        metric = json.loads(local_cluster.kubectl("get", "--raw", path).stdout)
        assert float(metric["items"][0]["value"]) == 3.0
        demand_server.value = 0.0
        wait_for(lambda: running(0), timeout=60, what="back to 0 replicas after the cooldown")
