"""The canary e2e harness itself, against the real cluster and without the operator: plain
Deployments, Services and HTTPRoutes built by the operator's own builders and applied here."""

from __future__ import annotations

import copy
import os
import re
import signal
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from hack import dataplane
from modelpilot.api.models import API_VERSION, KIND, ModelDeploymentSpec, Track
from modelpilot.resources import BuildSettings, build_deployment, build_pod_template, desired_children
from modelpilot.resources.labels import LABEL_TRACK
from modelpilot.routing import build_httproute
from tests.e2e.harness import PodProcessBridge, PrometheusHub, fixtures, plan_pod, wait_serving
from tests.e2e.harness.fixtures import WorldFactory
from tests.e2e.harness.podstatus import condition
from tests.e2e.support import ClusterHandle, wait_for
from tests.support import testmodels

canary_world = fixtures.canary_world  # the harness's fixtures, used here as the suite would
worker_prometheus = fixtures.worker_prometheus

NAME = "iris"
OWNER = {"apiVersion": API_VERSION, "kind": KIND, "name": NAME, "uid": "not-applied"}
BIN = Path(__file__).resolve().parents[2] / ".venv" / "bin"
GATEWAY = ("gateway.networking.k8s.io", "v1", "httproutes")


# ------------------------------------------------------------------------------------ helpers


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """file:// URIs of real model files written by the runtime's test-model helper."""
    root = tmp_path_factory.mktemp("models")
    return {
        "good": f"file://{testmodels.write_iris(root / 'good')}",
        "corrupt": f"file://{testmodels.write_corrupt(root / 'corrupt')}",
        "missing": f"file://{root / 'missing' / 'model.joblib'}",
    }


def spec_of(uri: str, version: str, replicas: int = 1, gateway: str | None = None) -> ModelDeploymentSpec:
    """`gateway`: a hostname on the test bed's shared Gateway (gatewayAPI mode)."""
    raw: dict[str, Any] = {"model": {"version": version, "uri": uri, "format": "sklearn"}, "replicas": replicas,
                           "runtime": dataplane.bridged_runtime()}
    if gateway:
        raw["rollout"] = {"canary": {"trafficRouting": {"gatewayAPI": {
            "parentRefs": [dataplane.gateway_parent_ref()], "hostnames": [gateway]}}}}
    return ModelDeploymentSpec.model_validate(raw)


def host_of(namespace: str) -> str:
    return f"{NAME}.{namespace}.test"


def unowned(obj: dict[str, Any]) -> dict[str, Any]:
    """The builders' dict without the owner reference (no ModelDeployment exists here)."""
    obj = copy.deepcopy(obj)
    obj["metadata"].pop("ownerReferences", None)
    return obj


def apply_stable(api_client: client.ApiClient, namespace: str, spec: ModelDeploymentSpec) -> None:
    """What the operator creates for `spec`: Deployment `iris` and the three Services."""
    apps, core = client.AppsV1Api(api_client), client.CoreV1Api(api_client)
    for child in desired_children(spec, name=NAME, namespace=namespace, owner=OWNER):
        if child["kind"] == "Deployment":
            apps.create_namespaced_deployment(namespace, unowned(child))
        elif child["kind"] == "Service":
            core.create_namespaced_service(namespace, unowned(child))


def apply_canary(api_client: client.ApiClient, namespace: str, spec: ModelDeploymentSpec, replicas: int) -> None:
    body = build_deployment(spec, name=NAME, namespace=namespace, owner=OWNER, settings=BuildSettings(), track="canary",
                            replicas=replicas)
    client.AppsV1Api(api_client).create_namespaced_deployment(namespace, unowned(body))


def scale(api_client: client.ApiClient, namespace: str, deployment: str, replicas: int) -> None:
    client.AppsV1Api(api_client).patch_namespaced_deployment(deployment, namespace, {"spec": {"replicas": replicas}})


def metrics_text(address: str) -> str:
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as response:
        return str(response.read().decode())


def pod_dict(spec: ModelDeploymentSpec, track: Track = "stable", namespace: str = "ns") -> dict[str, Any]:
    template = build_pod_template(spec, name=NAME, namespace=namespace, track=track, settings=BuildSettings())
    meta = {**template["metadata"], "name": f"{NAME}-abc-123", "namespace": namespace, "uid": "1234-5678"}
    return {"metadata": meta, "spec": copy.deepcopy(template["spec"]), "status": {"podIP": "10.244.1.7"}}


@pytest.fixture
def gateway_api(cluster: ClusterHandle) -> None:
    probe = cluster.kubectl("get", "crd", "httproutes.gateway.networking.k8s.io", check=False)
    if probe.returncode != 0:
        pytest.skip("the Gateway API CRDs are not installed in this cluster")


# ------------------------------------------------------------------------------------ the pod plan


def test_plan_runs_the_template_with_host_paths_on_the_pod_ip(tmp_path: Path) -> None:
    spec = spec_of("file:///models/iris/model.joblib", "v7")
    plan = plan_pod(pod_dict(spec, "canary"), root=tmp_path, bin_dir=BIN, base_env={"PATH": "/bin"})

    assert plan.problems == []
    model_dir = str(plan.volumes["model"])
    assert model_dir.startswith(str(tmp_path))
    [fetch] = plan.init
    assert fetch.argv == [str(BIN / "modelpilot"), "fetch", "file:///models/iris/model.joblib", model_dir]
    assert fetch.env["MODELPILOT_MODEL_DIR"] == model_dir
    assert plan.server is not None
    assert plan.server.argv == [str(BIN / "modelpilot"), "serve", "--model-dir", model_dir, "--port", "8000",
                                "--host", "10.244.1.7"]
    assert (plan.host, plan.port) == ("10.244.1.7", 8000)
    env = plan.server.env
    assert env["MODELPILOT_TRACK"] == "canary"
    assert env["MODELPILOT_MODEL_VERSION"] == "v7"
    assert env["MODELPILOT_MODEL_NAME"] == NAME
    assert env["MODELPILOT_PORT"] == "8000"
    assert env["MODELPILOT_POD_NAME"] == f"{NAME}-abc-123"  # the downward API, as the kubelet fills it
    assert env["TMPDIR"] == str(plan.volumes["tmp"])
    assert env["PATH"] == "/bin"
    assert plan.container_port == 8000
    assert plan.ready_path == "/v2/health/ready"


def test_plan_resolves_env_like_the_kubelet(tmp_path: Path) -> None:
    pod = pod_dict(spec_of("file:///m/model.joblib", "v1"))
    server = pod["spec"]["containers"][0]
    server["env"] += [
        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "TRACK", "valueFrom": {"fieldRef": {"fieldPath": f"metadata.labels['{LABEL_TRACK}']"}}},
        {"name": "SECRET", "valueFrom": {"secretKeyRef": {"name": "s3", "key": "AWS_ACCESS_KEY_ID"}}},
        {"name": "GREETING", "value": "$(POD) in $(NS) costs $$5, $(UNDEFINED)"},
    ]
    server["args"] += ["--name=$(POD)"]
    plan = plan_pod(pod, root=tmp_path, port=40000, bin_dir=BIN, base_env={})

    assert plan.server is not None
    env = plan.server.env
    assert env["POD"] == f"{NAME}-abc-123"
    assert env["NS"] == "ns"
    assert env["TRACK"] == "stable"
    assert "SECRET" not in env
    assert env["GREETING"] == f"{NAME}-abc-123 in ns costs $5, $(UNDEFINED)"
    assert f"--name={NAME}-abc-123" in plan.server.argv
    assert any("SECRET" in note for note in plan.notes)


@pytest.mark.parametrize("breakage, problem", [
    ("port", "listens on port 9090"),
    ("command", "no command"),
    ("binary", "not found in the image"),
    ("mount", "names no volume"),
])
def test_plan_reports_a_broken_template(tmp_path: Path, breakage: str, problem: str) -> None:
    pod = pod_dict(spec_of("file:///m/model.joblib", "v1"))
    server = pod["spec"]["containers"][0]
    if breakage == "port":
        server["args"][server["args"].index("--port") + 1] = "9090"
    elif breakage == "command":
        del server["command"]
    elif breakage == "binary":
        server["command"] = ["model-pilot"]
    elif breakage == "mount":
        server["volumeMounts"].append({"name": "nope", "mountPath": "/data"})
    plan = plan_pod(pod, root=tmp_path, port=40000, bin_dir=BIN, base_env={})
    assert any(problem in p for p in plan.problems), plan.problems


def test_plan_maps_a_claim_to_a_host_directory(tmp_path: Path) -> None:
    claim_dir = tmp_path / "claim"
    (claim_dir / "iris").mkdir(parents=True)
    pod = pod_dict(spec_of("pvc://models/iris", "v1"))
    plan = plan_pod(pod, root=tmp_path / "pod", port=40000, bin_dir=BIN, base_env={},
                    pvc_dirs={"models": claim_dir})
    assert plan.problems == []
    assert plan.init == []
    assert plan.server is not None
    assert plan.server.argv[plan.server.argv.index("--model-dir") + 1] == str(claim_dir / "iris")
    unmapped = plan_pod(pod, root=tmp_path / "pod2", port=40000, bin_dir=BIN, base_env={})
    assert any("claim 'models'" in p for p in unmapped.problems)


# ------------------------------------------------------------------------------------ processes


def test_processes_follow_the_pods(api_client: client.ApiClient, core: client.CoreV1Api, apps: client.AppsV1Api,
                                   solo_namespace: str, models: dict[str, str], tmp_path: Path) -> None:
    ns = solo_namespace
    apply_stable(api_client, ns, spec_of(models["good"], "2026-01-01", replicas=2))
    with PodProcessBridge(api_client, ns, workdir=tmp_path) as bridge:
        serving = wait_serving(bridge, {"stable": 2})
        addresses = {p.process.address for p in serving if p.process}
        assert len(addresses) == 2 and all(a.startswith("10.244.") for a in addresses), addresses
        for address in addresses:
            text = metrics_text(address)  # the process got the template's env: its metric labels say so
            revision = re.search(r'modelpilot_model_ready\{[^}]*revision="([0-9a-f]+)"', text)
            assert revision is not None, text  # the serving revision from the template's env
            assert f'modelpilot_model_ready{{model="iris",model_deployment="iris",revision="{revision[1]}",' \
                   'track="stable",version="2026-01-01"} 1.0' in text
        wait_for(lambda: apps.read_namespaced_deployment(NAME, ns).status.ready_replicas == 2,
                 what="readyReplicas 2")

        scale(api_client, ns, NAME, 1)
        wait_for(lambda: len(bridge.registry()) == 1, timeout=60, what="one process left")
        [left] = bridge.registry().values()
        gone = addresses - {left.address}
        wait_for(lambda: all(not _open(a) for a in gone), timeout=30, what="the removed pod's server exits")

        # A server that dies is not restarted by magic: its pod turns NotReady, like a failed probe.
        assert left.pid is not None
        os.kill(left.pid, signal.SIGKILL)
        wait_for(lambda: not bridge.registry()[left.pod].ready, timeout=30, what="dead server not ready")
        wait_for(lambda: condition(_pod(core, ns, left.pod), "Ready") == "False", timeout=30,
                 what="pod Ready=False after the server died")

        apps.delete_namespaced_deployment(NAME, ns)
        wait_for(lambda: not bridge.registry(), timeout=60, what="no process once the pods are gone")
        assert bridge.started_total == 2
        assert bridge.errors == []


def test_a_model_that_cannot_load_gives_a_pod_that_is_not_ready(
        api_client: client.ApiClient, core: client.CoreV1Api, apps: client.AppsV1Api, solo_namespace: str,
        models: dict[str, str], canary_world: WorldFactory) -> None:
    ns = solo_namespace
    apply_stable(api_client, ns, spec_of(models["good"], "v1"))
    apply_canary(api_client, ns, spec_of(models["corrupt"], "v2"), replicas=1)
    world = canary_world(ns, NAME, rate=30)
    world.wait_serving(stable=1)

    def canary_process() -> Any:
        return next((p for p in world.bridge.registry().values() if p.track == "canary" and p.live), None)

    broken = wait_for(canary_process, timeout=60, what="the canary server listening")
    wait_for(lambda: "loading the model" not in world.bridge.registry()[broken.pod].reason, timeout=60,
             what="the canary's load attempt to end")
    info = world.bridge.registry()[broken.pod]
    assert not info.ready and info.state == "running", info
    pod = _pod(core, ns, broken.pod)
    assert condition(pod, "Ready") == "False"
    wait_for(lambda: apps.read_namespaced_deployment(f"{NAME}-canary", ns).status.ready_replicas in (None, 0),
             what="canary readyReplicas 0")
    # Still scraped (a PodMonitor scrapes pods that are not Ready), but never sent traffic.
    wait_for(lambda: world.query(f'modelpilot_model_ready{{namespace="{ns}",pod="{broken.pod}"}} == 0'),
             timeout=30, what="Prometheus scraping the not-ready canary")
    wait_for(lambda: world.loadgen.totals().get("stable", {}).get("sent", 0) > 50, what="traffic to stable")
    assert world.loadgen.totals().get("canary") is None
    assert set(world.traffic_split(30)) == {"stable"}  # nothing is sent before a pod serves


def test_a_failed_fetch_never_starts_the_server(api_client: client.ApiClient, core: client.CoreV1Api,
                                                solo_namespace: str, models: dict[str, str],
                                                tmp_path: Path) -> None:
    ns = solo_namespace
    apply_stable(api_client, ns, spec_of(models["missing"], "v1"))
    with PodProcessBridge(api_client, ns, workdir=tmp_path) as bridge:
        failed = wait_for(lambda: next((p for p in bridge.registry().values() if p.state == "failed"), None),
                          timeout=60, what="the fetch init container to fail")
        assert "fetch-model" in failed.reason and not failed.ready and not failed.live
        assert "missing" in (failed.log_dir / "fetch-model.log").read_text()
        wait_for(lambda: condition(_pod(core, ns, failed.pod), "Ready") == "False", what="pod Ready=False")


# ------------------------------------------------------------------------------------ Prometheus


def test_prometheus_scrapes_every_server_with_namespace_and_pod(
        api_client: client.ApiClient, solo_namespace: str, models: dict[str, str],
        canary_world: WorldFactory) -> None:
    ns = solo_namespace
    apply_stable(api_client, ns, spec_of(models["good"], "v1", replicas=2))
    apply_canary(api_client, ns, spec_of(models["good"], "v2"), replicas=1)
    world = canary_world(ns, NAME, rate=40)
    pods = world.wait_serving(stable=2, canary=1)
    wait_for(lambda: world.loadgen.outcomes().get(200, 0) > 100, what="100 answered requests")

    series = wait_for(lambda: (s := world.query(f'modelpilot_requests_total{{namespace="{ns}"}}'))
                      and len(s) == 3 and s, timeout=30, what="a series per server")
    by_pod = {s["metric"]["pod"]: s["metric"] for s in series}
    assert set(by_pod) == {p.name for p in pods}
    for pod in pods:
        labels = by_pod[pod.name]
        assert set(labels) == {"__name__", "namespace", "pod", "job", "instance", "model_deployment", "model",
                               "version", "revision", "track", "code"}
        assert (labels["namespace"], labels["track"], labels["code"]) == (ns, pod.track, "200")
        assert labels["version"] == ("v1" if pod.track == "stable" else "v2")
        assert labels["instance"] == (pod.process.address if pod.process else None)

    # Every answered request is counted by a server and scraped: the totals agree exactly.
    world.loadgen.pause()
    wait_for(lambda: world.loadgen.in_flight == 0, what="no request in flight")
    for track in ("stable", "canary"):
        answered = world.loadgen.outcomes(track=track)[200]
        wait_for(lambda t=track, n=answered: world.requests_seen_by_prometheus(t, "200") == n, timeout=30,
                 what=f"Prometheus counting {answered} {track} requests")

    # A restarted Prometheus keeps its URL and its data (provider-error tests stop and start it).
    url, before = world.prometheus_url, world.requests_seen_by_prometheus()
    world.prometheus.stop()
    with pytest.raises(OSError):
        world.prometheus.query("up")
    world.prometheus.start()
    assert world.prometheus_url == url
    assert wait_for(lambda: world.requests_seen_by_prometheus() == before, timeout=30, what="data after restart")


def test_a_shared_prometheus_separates_worlds_by_namespace(
        api_client: client.ApiClient, core: client.CoreV1Api, solo_namespace: str, models: dict[str, str],
        canary_world: WorldFactory, worker_prometheus: PrometheusHub, request: pytest.FixtureRequest) -> None:
    other = f"{solo_namespace[:50]}-b"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=other)))
    request.addfinalizer(lambda: core.delete_namespace(other))
    for ns in (solo_namespace, other):
        apply_stable(api_client, ns, spec_of(models["good"], ns))
    worlds = [canary_world(ns, NAME, rate=10, prometheus=worker_prometheus) for ns in (solo_namespace, other)]
    for world in worlds:
        world.wait_serving(stable=1)
    for world in worlds:
        result = wait_for(lambda w=world: w.query(f'modelpilot_requests_total{{namespace="{w.namespace}"}}'),
                          timeout=30, what=f"series of {world.namespace}")
        assert {s["metric"]["version"] for s in result} == {world.namespace}
    assert not worlds[0].owns_prometheus and worlds[0].prometheus_url == worker_prometheus.url
    worlds[0].stop()  # a world never stops a Prometheus it does not own
    assert worker_prometheus.running


# ------------------------------------------------------------------------------------ traffic split


def test_replica_ratio_split_follows_ready_pods(api_client: client.ApiClient, solo_namespace: str,
                                               models: dict[str, str], canary_world: WorldFactory) -> None:
    """Through the Service's ClusterIP: kube-proxy spreads connections over the ready endpoints."""
    ns = solo_namespace
    apply_stable(api_client, ns, spec_of(models["good"], "v1", replicas=3))
    apply_canary(api_client, ns, spec_of(models["good"], "v2"), replicas=1)
    world = canary_world(ns, NAME, rate=60)
    world.wait_serving(stable=3, canary=1)
    assert world.loadgen.wait_resolved().kind == "service"
    split = world.wait_split({"stable": 0.75, "canary": 0.25}, tolerance=0.08, seconds=10)
    assert split["canary"] < 0.4

    scale(api_client, ns, f"{NAME}-canary", 3)
    world.wait_serving(stable=3, canary=3)
    world.wait_split({"stable": 0.5, "canary": 0.5}, tolerance=0.08, seconds=10)

    scale(api_client, ns, f"{NAME}-canary", 0)
    world.wait_serving(stable=3, canary=0)
    world.wait_split({"stable": 1.0}, tolerance=0.0, seconds=3)
    # "dropped" never left the load generator (its in-flight bound, on a loaded machine): not an
    # answer. A pod being removed may take a request or two on its way out; nothing else fails.
    errors = {k: v for k, v in world.loadgen.outcomes().items() if k not in (200, "dropped")}
    assert sum(errors.values()) <= 5, errors


def test_httproute_weights_split_and_follow_changes(api_client: client.ApiClient, custom: client.CustomObjectsApi,
                                                    solo_namespace: str, models: dict[str, str],
                                                    canary_world: WorldFactory, gateway_api: None) -> None:
    """Through the gateway: envoy applies the HTTPRoute's weights per request."""
    ns = solo_namespace
    stable_spec = spec_of(models["good"], "v1", replicas=2, gateway=host_of(ns))
    apply_stable(api_client, ns, stable_spec)  # Service `iris` selects stable only in this mode
    apply_canary(api_client, ns, spec_of(models["good"], "v2", gateway=host_of(ns)), replicas=1)
    gateway = stable_spec.rollout.canary.traffic_routing.gateway_api
    assert gateway is not None
    route = unowned(build_httproute(NAME, ns, OWNER, gateway, weight=20))
    custom.create_namespaced_custom_object(*GATEWAY[:2], ns, GATEWAY[2], route)

    world = canary_world(ns, NAME, rate=60)
    world.wait_serving(stable=2, canary=1)
    wait_for(lambda: world.loadgen.entry.kind == "gateway", what="requests through the gateway")
    assert world.loadgen.entry.host_header == host_of(ns)
    # 2 stable pods and 1 canary pod would give the canary a third by replicas; the route says 20%.
    world.wait_split({"stable": 0.8, "canary": 0.2}, tolerance=0.07, seconds=10)

    def set_weights(stable: int, canary: int) -> None:
        body = custom.get_namespaced_custom_object(*GATEWAY[:2], ns, GATEWAY[2], NAME)
        refs = body["spec"]["rules"][0]["backendRefs"]
        refs[0]["weight"], refs[1]["weight"] = stable, canary
        custom.replace_namespaced_custom_object(*GATEWAY[:2], ns, GATEWAY[2], NAME, body)

    set_weights(50, 50)
    world.wait_split({"stable": 0.5, "canary": 0.5}, tolerance=0.08, seconds=6)
    set_weights(0, 100)
    world.wait_split({"canary": 1.0}, tolerance=0.0, seconds=3)
    # The canary's Prometheus series carry what the split did.
    wait_for(lambda: world.requests_seen_by_prometheus("canary", "200") > 0, timeout=30, what="canary series")

    custom.delete_namespaced_custom_object(*GATEWAY[:2], ns, GATEWAY[2], NAME)
    wait_for(lambda: world.loadgen.entry.kind == "service", what="back to the Service without a route")
    world.wait_split({"stable": 1.0}, tolerance=0.0, seconds=3)


def test_a_backend_without_ready_pods_gets_the_gateways_503(api_client: client.ApiClient,
                                                            custom: client.CustomObjectsApi, solo_namespace: str,
                                                            models: dict[str, str], canary_world: WorldFactory,
                                                            gateway_api: None) -> None:
    ns = solo_namespace
    spec = spec_of(models["good"], "v1", gateway=host_of(ns))
    apply_stable(api_client, ns, spec)  # no canary Deployment at all
    gateway = spec.rollout.canary.traffic_routing.gateway_api
    assert gateway is not None
    custom.create_namespaced_custom_object(*GATEWAY[:2], ns, GATEWAY[2],
                                           unowned(build_httproute(NAME, ns, OWNER, gateway, weight=50)))
    world = canary_world(ns, NAME, rate=40)
    world.wait_serving(stable=1)
    wait_for(lambda: world.loadgen.entry.kind == "gateway", what="requests through the gateway")
    # Envoy answers the canary's half itself: no pod named in the response, so no track.
    wait_for(lambda: world.loadgen.outcomes(track="none").get(503, 0) > 20, what="the gateway's own 503s")
    wait_for(lambda: world.loadgen.outcomes(seconds=5, track="stable").get(200, 0) > 20, what="stable answering")
    assert set(world.loadgen.outcomes(seconds=5, track="none")) <= {503, "dropped"}  # dropped: never sent
    assert set(world.loadgen.outcomes(seconds=5, track="stable")) == {200}
    split = world.traffic_split(5)
    assert abs(split.get("none", 0) - 0.5) < 0.2, split


# ------------------------------------------------------------------------------------ small helpers


def _pod(core: client.CoreV1Api, namespace: str, name: str) -> dict[str, Any]:
    try:
        return dict(core.api_client.sanitize_for_serialization(core.read_namespaced_pod(name, namespace)))
    except ApiException as err:
        if err.status == 404:
            return {}
        raise


def _open(address: str) -> bool:
    import socket

    host, port = address.rsplit(":", 1)
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, int(port))) == 0


@pytest.fixture(autouse=True)
def _no_leaked_processes() -> Iterator[None]:
    """Every server a test started is gone when it ends (the harness stops what it starts)."""
    before = _servers()
    yield
    wait_for(lambda: not _servers() - before, timeout=30, what="every server this test started to exit")


def _servers() -> set[int]:
    """PIDs of this process's child `modelpilot serve`/`fetch` processes."""
    mine = str(os.getpid())
    found = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if stat[1] == mine and any(part.endswith(b"modelpilot") for part in cmdline[:2]):
            found.add(int(proc.name))
    return found
