"""Open Inference Protocol v2 over gRPC in a cluster: a ModelDeployment with `protocol: both` gets
pods that run `modelpilot serve --grpc-port` (real processes on the pod IPs, started by the bridge
from the generated pod template) and Services with a `grpc` port; a stock client (tritonclient.grpc)
through the Service's ClusterIP (kube-proxy) gets the answer REST gives, and Prometheus sees the
gRPC calls in the same request counter the canary analysis reads."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from kubernetes import client

from hack import dataplane
from tests.e2e import mdep
from tests.e2e.canary import NAME, Env, open_env, spec
from tests.e2e.harness.world import CanaryWorld
from tests.e2e.support import ClusterHandle, wait_for

grpcclient = pytest.importorskip("tritonclient.grpc")
from tritonclient.utils import InferenceServerException  # noqa: E402

# 8081 (the runtime's default) is taken on every address by the test bed's gateway.
GRPC_POD_PORT = dataplane.POD_PORT + 1
GRPC_SERVICE_PORT = 8081
ROWS = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]])


@pytest.fixture
def quiet_env(local_cluster: ClusterHandle, crd: str, canary_world: Callable[..., CanaryWorld],
              custom: client.CustomObjectsApi, apps: client.AppsV1Api, core: client.CoreV1Api, solo_namespace: str,
              tmp_path: Path) -> Iterator[Env]:
    """The canary scenario's Env without a load generator: every request the pods count is this test's."""
    world = canary_world(solo_namespace, NAME, load=False)
    yield from open_env(local_cluster, world, custom, apps, core, solo_namespace, tmp_path)


def _cmdline(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")


def _grpc_infer(target: str) -> Any:
    tensor = grpcclient.InferInput("input-0", list(ROWS.shape), "FP64")
    tensor.set_data_from_numpy(ROWS)
    wanted = [grpcclient.InferRequestedOutput("predict"), grpcclient.InferRequestedOutput("predict_proba")]
    return grpcclient.InferenceServerClient(target).infer(NAME, [tensor], outputs=wanted)


def test_grpc_through_the_service_gives_the_rest_answer(quiet_env: Env) -> None:
    env = quiet_env
    body = spec(env.model("good"), "v1", replicas=1)
    body["spec"]["runtime"].update(protocol="both", grpcPort=GRPC_POD_PORT)
    mdep.create(env.custom, env.namespace, body)
    mdep.wait_condition(env.custom, env.namespace, NAME, "Ready", "True", timeout=90)
    [pod] = env.world.wait_serving(stable=1)
    assert pod.process is not None and pod.process.pid is not None

    # The template's flag reached the process, which serves gRPC on the pod IP.
    argv = _cmdline(pod.process.pid)
    assert argv[argv.index("--grpc-port") + 1] == str(GRPC_POD_PORT), argv
    on_pod = grpcclient.InferenceServerClient(f"{pod.process.host}:{GRPC_POD_PORT}")
    assert on_pod.is_server_live() and on_pod.is_model_ready(NAME, "v1")

    service = env.core.read_namespaced_service(NAME, env.namespace)
    grpc_port = next(p for p in service.spec.ports if p.name == "grpc")
    assert (grpc_port.port, grpc_port.target_port, grpc_port.app_protocol) == (
        GRPC_SERVICE_PORT, "grpc", "kubernetes.io/h2c")
    cluster_ip = service.spec.cluster_ip

    rest = requests.post(f"http://{cluster_ip}/v2/models/{NAME}/infer", timeout=30, json={
        "inputs": [{"name": "input-0", "datatype": "FP64", "shape": list(ROWS.shape), "data": ROWS.ravel().tolist()}],
        "outputs": [{"name": "predict"}, {"name": "predict_proba"}]})
    assert rest.status_code == 200, rest.text
    expected = {o["name"]: np.array(o["data"]).reshape(o["shape"]) for o in rest.json()["outputs"]}
    calls = 5
    for _ in range(calls):
        result = _grpc_infer(f"{cluster_ip}:{GRPC_SERVICE_PORT}")
        for output, array in expected.items():
            np.testing.assert_allclose(result.as_numpy(output), array, rtol=1e-12)
    with pytest.raises(InferenceServerException) as raised:
        bad = grpcclient.InferInput("input-0", [1, 3], "FP64")
        bad.set_data_from_numpy(ROWS[:1, :3].copy())
        grpcclient.InferenceServerClient(f"{cluster_ip}:{GRPC_SERVICE_PORT}").infer(NAME, [bad])
    assert str(raised.value.status()) == "StatusCode.INVALID_ARGUMENT"

    # Prometheus (scraping the pod's REST port) has the gRPC calls in the analysis's counter.
    world = env.world
    wait_for(lambda: world.requests_seen_by_prometheus(track="stable", code="200") == calls + 1
             and world.requests_seen_by_prometheus(track="stable", code="400") == 1, timeout=60,
             what=f"{calls + 1} answers of 200 and one of 400 in Prometheus")
