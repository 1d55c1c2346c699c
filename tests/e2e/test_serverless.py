"""Scale to zero through the real data plane: Envoy Gateway, kube-proxy, KEDA (operator, metrics
adapter, the HPA it creates in the real controller-manager), a real activator process and real
model-server processes. Every test here uses the test bed's one KEDA, and one of them removes its
ScaledObject CRD, so they run one after another (one xdist group)."""

from __future__ import annotations

import json
import math
import os
import statistics
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from hack import dataplane, keda
from tests.e2e import canary, mdep
from tests.e2e.harness.activator import ActivatorProcess
from tests.e2e.harness.payload import DEFAULT_INPUTS, iris_payload
from tests.e2e.harness.world import CanaryWorld
from tests.e2e.operator import OperatorProcess
from tests.e2e.support import ClusterHandle, wait_for

# Alone, after the rest (`make e2e`): the KEDA-missing test deletes KEDA's CRD and with it every
# ScaledObject of every namespace.
pytestmark = [pytest.mark.xdist_group("keda"), pytest.mark.alone]

NAME = canary.NAME
IDLE = "20s"
COOLDOWN = 5
SCALEDOBJECTS = ("keda.sh", "v1alpha1", "scaledobjects")


@pytest.fixture(autouse=True)
def _data_plane(local_cluster: ClusterHandle) -> None:
    if local_cluster.gateway is None:
        pytest.skip("the test bed has no gateway")


@dataclass
class Serverless:
    namespace: str
    host: str
    env: canary.Env
    activator: ActivatorProcess
    cluster: ClusterHandle

    def get(self) -> dict[str, Any]:
        return self.env.get()

    def canary(self) -> dict[str, Any]:
        return self.env.canary()

    def serverless(self) -> dict[str, Any]:
        return dict((self.get().get("status") or {}).get("serverless") or {})

    def replicas(self) -> tuple[int, int]:
        """(spec.replicas, pods that exist) of the stable Deployment."""
        deployment = self.env.deployment(NAME)
        pods = self.env.core.list_namespaced_pod(
            self.namespace, label_selector=f"app.kubernetes.io/name={NAME},modelpilot.io/track=stable").items
        live = [p for p in pods if p.metadata.deletion_timestamp is None]
        return int(deployment.spec.replicas or 0), len(live)

    def wait_zero(self, timeout: float = 120) -> float:
        started = time.monotonic()
        wait_for(lambda: self.replicas() == (0, 0) and self.serverless().get("scaledToZero") is True,
                 timeout=timeout, interval=0.5, what="the track at zero pods")
        # A deleted pod's process drains for a while and may still answer what reaches it.
        wait_for(lambda: self.env.world.bridge.processes_left() == 0, timeout=30, what="no model process left")
        return time.monotonic() - started

    def infer(self, timeout: float = 120) -> tuple[int, float, str]:
        """One request through the gateway: (status, seconds, body)."""
        import http.client

        started = time.monotonic()
        conn = http.client.HTTPConnection("127.0.0.1", dataplane.GATEWAY_PORT, timeout=timeout)
        try:
            conn.request("POST", f"/v2/models/{NAME}/infer", json.dumps(iris_payload(DEFAULT_INPUTS)),
                         {"Host": self.host, "Content-Type": "application/json"})
            response = conn.getresponse()
            body = response.read().decode(errors="replace")
            pod = response.getheader("x-modelpilot-pod") or "-"
            return response.status, time.monotonic() - started, f"{pod} {body}"
        finally:
            conn.close()

    def burst(self, count: int) -> list[tuple[int, float, str]]:
        with ThreadPoolExecutor(max_workers=count) as pool:
            return list(pool.map(lambda _: self.infer(), range(count)))


def scale_to_zero_spec(uri: str, host: str, **autoscaling: Any) -> dict[str, Any]:
    body = canary.spec(uri, "v1", replicas=1, gateway=host)
    body["spec"]["autoscaling"] = {"minReplicas": 0, "maxReplicas": 4, "metric": "requests", "target": 5,
                                   "scaleToZeroAfter": IDLE, **autoscaling}
    return body


@pytest.fixture
def serverless(local_cluster: ClusterHandle, crd: str, canary_world: Callable[..., CanaryWorld],
               custom: client.CustomObjectsApi, apps: client.AppsV1Api, core: client.CoreV1Api,
               api_client: client.ApiClient, solo_namespace: str, tmp_path: Path) -> Iterator[Serverless]:
    """A namespace with its world (paused load), an activator whose Service lives in a namespace of
    its own (so routes reach it through a ReferenceGrant, as with the chart), and an operator."""
    world = canary_world(solo_namespace, NAME, rate=20.0, load=False)
    activator_ns = f"{solo_namespace[:50]}-act"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(
        name=activator_ns, labels={"modelpilot.io/e2e": "true"})))
    activator = ActivatorProcess(activator_ns, tmp_path / "activator").start(
        core, client.DiscoveryV1Api(api_client), world.prometheus)
    operator = OperatorProcess(
        kubeconfig=local_cluster.kubeconfig, namespaces=[solo_namespace], log_path=tmp_path / "operator.log",
        resync_seconds=5, extra_env={**world.operator_env(), **activator.operator_env(),
                                     "MODELPILOT_SCRAPE_INTERVAL": str(canary.SCRAPE), "MODELPILOT_QUERY_TIMEOUT": "2",
                                     "MODELPILOT_KEDA_POLLING_SECONDS": "1",
                                     "MODELPILOT_KEDA_COOLDOWN_SECONDS": str(COOLDOWN),
                                     "MODELPILOT_SCALE_DOWN_STABILIZATION_SECONDS": "5"}).start()
    models = tmp_path / "models"
    models.mkdir()
    env = canary.Env(solo_namespace, world, operator, custom, apps, core, models)
    host = f"{NAME}.{solo_namespace}.test"
    try:
        yield Serverless(solo_namespace, host, env, activator, local_cluster)
    finally:
        print(env.debug())
        print("activator log tail:\n" + "\n".join(activator.logs().splitlines()[-30:]))
        operator.stop()
        activator.stop()
        core.delete_namespace(activator_ns, propagation_policy="Background")


def _start(s: Serverless, **autoscaling: Any) -> None:
    mdep.create(s.env.custom, s.namespace, scale_to_zero_spec(s.env.model("good"), s.host, **autoscaling))
    mdep.wait_condition(s.env.custom, s.namespace, NAME, "Ready", "True", timeout=90)


def test_idle_track_scales_to_zero_and_a_burst_is_held_then_served(serverless: Serverless) -> None:
    """Acceptance 1 and 2: no traffic -> zero pods (Service and route stay); then 50 concurrent
    requests through the gateway all get 200 while the track scales from zero."""
    s = serverless
    _start(s)
    ready_at = time.monotonic()
    waited = s.wait_zero()
    print(f"at zero {time.monotonic() - ready_at:.1f}s after Ready (scaleToZeroAfter {IDLE}, cooldown {COOLDOWN}s)")
    assert s.env.core.read_namespaced_service(NAME, s.namespace) is not None
    route = s.env.custom.get_namespaced_custom_object("gateway.networking.k8s.io", "v1", s.namespace,
                                                      "httproutes", NAME)
    assert route["spec"]["rules"][-1]["backendRefs"][0]["name"] == s.activator.service
    assert "ScaledToZero" in s.env.wait_reasons("ScaledToZero")
    print(f"waited {waited:.1f}s for zero")
    before = len(s.serverless().get("coldStarts") or [])  # holds while the first pod started count too

    answers = s.burst(50)
    codes = Counter(code for code, _, _ in answers)
    first = min(seconds for _, seconds, _ in answers)
    print(f"burst of 50 from zero: {dict(codes)}; fastest {first:.2f}s, slowest "
          f"{max(seconds for _, seconds, _ in answers):.2f}s")
    print(f"answered by: {Counter(body.split(' ', 1)[0] for _, _, body in answers)}")
    assert codes == {200: 50}, [body for code, _, body in answers if code != 200][:3]
    assert "Activated" in s.env.wait_reasons("Activated")
    _wait_cold_starts(s, before + 1)
    cold = s.serverless()["coldStarts"]
    print(f"cold starts recorded by the activator: {cold}")
    assert 0 < cold[-1] <= max(seconds for _, seconds, _ in answers)
    assert "modelpilot_activator_activations_total" in s.activator.metrics()


def test_load_above_target_scales_out_and_back_in_then_to_zero(serverless: Serverless) -> None:
    """Acceptance 3: 20 requests/s against a target of 5 per pod scales out (KEDA's HPA on the
    external metric), back in when the load stops, and to zero again once idle."""
    s = serverless
    _start(s)
    s.env.world.loadgen.set_rate(20)
    s.env.world.loadgen.resume()
    wait_for(lambda: s.replicas()[0] >= 3, timeout=180, interval=1, what="scale-out to at least 3 pods")
    replicas = s.replicas()[0]
    s.env.world.wait_serving(timeout=120, stable=replicas)
    # Every serving pod takes requests through the gateway, then the rate per pod is measured.
    wait_for(lambda: len(s.env.world.loadgen.pods_answering(2)) >= replicas, timeout=60, what="every pod answering")
    started = time.monotonic()
    wait_for(lambda: time.monotonic() - started >= 10, timeout=15, what="a 10 s measurement window")
    per_pod = {pod: n / 10 for pod, n in s.env.world.loadgen.pods_answering(10).items()}
    print(f"requests per second per pod at {replicas} replicas (target 5): {per_pod}")
    assert len(per_pod) >= 3 and statistics.mean(per_pod.values()) <= 2 * 5, per_pod
    s.env.world.loadgen.pause()
    wait_for(lambda: s.replicas()[0] == 1, timeout=180, interval=1, what="scale-in to one pod")
    s.wait_zero(timeout=180)


def test_a_pod_waiting_for_a_gpu_node_is_never_idle(serverless: Serverless) -> None:
    """Acceptance 4: a GPU track whose pod cannot be scheduled for 60 s keeps its pod (the idle
    clock never starts), although scaleToZeroAfter is 10 s."""
    s = serverless
    body = scale_to_zero_spec(s.env.model("good"), s.host, scaleToZeroAfter="10s")
    body["spec"]["accelerator"] = {"vendor": "nvidia", "count": 1, "product": f"NVIDIA-NONE-{uuid.uuid4().hex[:6]}"}
    mdep.create(s.env.custom, s.namespace, body)
    mdep.wait_condition(s.env.custom, s.namespace, NAME, "Ready", "False", reason="InsufficientAccelerator",
                        timeout=60)
    scaled = wait_for(lambda: _scaledobject(s), timeout=30, what="the ScaledObject")
    assert scaled["spec"]["minReplicaCount"] == 1
    until = time.monotonic() + 60
    while time.monotonic() < until:
        assert s.replicas()[0] == 1, "the pending pod was scaled away"
        status = s.serverless()
        assert status.get("scaledToZero") is not True and "readySince" not in status, status
        assert (_scaledobject(s) or {}).get("spec", {}).get("minReplicaCount") == 1
        time.sleep(1)
    assert "ScaledToZero" not in s.env.reasons()


def test_without_keda_crds_keda_missing_then_recovers(serverless: Serverless) -> None:
    """Acceptance 5: KEDA's ScaledObject CRD deleted under a running operator: the object says
    KEDAMissing, the operator keeps running and the Deployment keeps its pod; once the CRD is back,
    the ScaledObject (deleted with the CRD) is created again."""
    s = serverless
    _start(s)
    wait_for(lambda: _scaledobject(s), timeout=30, what="the ScaledObject")
    keda.uninstall_crds(s.cluster)
    try:
        mdep.wait_condition(s.env.custom, s.namespace, NAME, "Ready", "False", reason="KEDAMissing", timeout=90)
        assert "KEDAMissing" in s.env.wait_reasons("KEDAMissing")
        assert s.replicas()[0] == 1
    finally:
        keda.install_crds(s.cluster)
    wait_for(lambda: _scaledobject(s), timeout=90, what="the ScaledObject after KEDA is installed again")
    mdep.wait_condition(s.env.custom, s.namespace, NAME, "Ready", "True", timeout=120)
    assert s.env.operator.process is not None and s.env.operator.process.poll() is None, \
        s.env.operator.logs()[-3000:]


def test_a_canary_keeps_both_tracks_up_then_scale_to_zero_resumes(serverless: Serverless) -> None:
    """A new version while at zero wakes the stable track; while the canary is in flight both
    tracks keep a pod (the ScaledObject's minReplicaCount is 1); after promotion the track goes to
    zero again."""
    s = serverless
    _start(s)
    s.wait_zero()
    s.env.set_version("v2", s.env.model("good2"))
    s.env.wait_canary(lambda c: c.get("state") == "Progressing", "the canary started")
    wait_for(lambda: s.replicas()[0] >= 1 and s.env.deployment(f"{NAME}-canary").spec.replicas >= 1,
             timeout=90, what="a stable and a canary pod")
    assert (_scaledobject(s) or {})["spec"]["minReplicaCount"] == 1
    until = time.monotonic() + 25  # longer than scaleToZeroAfter: the idle clock does not run
    while time.monotonic() < until and s.canary().get("state") == "Progressing":
        assert s.replicas()[0] >= 1, "the stable track went to zero during the canary"
        time.sleep(1)
    s.env.annotate("promote")
    s.env.wait_stable("v2")
    s.wait_zero(timeout=150)
    assert (_scaledobject(s) or {})["spec"]["minReplicaCount"] == 0


def test_cold_starts_over_repeated_activations(serverless: Serverless) -> None:
    """The cold start of the first request after idle, over MODELPILOT_BENCH_ACTIVATIONS activations
    (2 here; `make bench-serverless` runs 10 and prints the table): every first request gets 200,
    and status.serverless keeps one cold start per activation with their median."""
    s = serverless
    count = int(os.environ.get("MODELPILOT_BENCH_ACTIVATIONS", "2"))
    _start(s, scaleToZeroAfter="10s")
    firsts: list[float] = []
    for _ in range(count):
        s.wait_zero(timeout=120)
        code, seconds, body = s.infer()
        assert code == 200, body
        firsts.append(seconds)
        _wait_cold_starts(s, len(firsts))
    status = s.serverless()
    recorded = status["coldStarts"]
    assert len(recorded) == count and status["p50ColdStartSeconds"] == round(statistics.median(recorded), 3)
    ordered = sorted(firsts)
    p99 = ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)]
    print("\n| activations | first request p50 | first request p99 | activator's cold start p50 | max |")
    print("|---:|---:|---:|---:|---:|")
    print(f"| {count} | {statistics.median(firsts):.2f} s | {p99:.2f} s | {statistics.median(recorded):.2f} s "
          f"| {max(firsts):.2f} s |")


def _wait_cold_starts(s: Serverless, count: int) -> None:
    wait_for(lambda: len(s.serverless().get("coldStarts") or []) >= count, timeout=60,
             what=f"cold start {count} in status")


def _scaledobject(s: Serverless) -> dict[str, Any] | None:
    try:
        return dict(s.env.custom.get_namespaced_custom_object(SCALEDOBJECTS[0], SCALEDOBJECTS[1], s.namespace,
                                                              SCALEDOBJECTS[2], NAME))
    except client.ApiException as err:
        if err.status == 404:
            return None
        raise
