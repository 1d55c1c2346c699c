"""Hostile and careless clients: every mistake is a 4xx error object, counted with its code; the
request size limits; probes stay answered while heavy requests are decoded; 405 says what is allowed."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from modelpilot.server.app import InferenceApp
from modelpilot.server.inference import ModelState
from modelpilot.server.loaders import Model
from modelpilot.server.metrics import MetricLabels, RequestMetrics
from modelpilot.server.protocol import TensorSpec
from tests.support.testing import RuntimeProcess, codes_in, iris_request, request_codes

ECHO = "/v2/models/echo/infer"
IRIS = "/v2/models/iris/infer"


def _counted(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {code: after[code] - before.get(code, 0.0) for code in after if after[code] != before.get(code, 0.0)}


def _post(server: RuntimeProcess, path: str, payload: Any) -> tuple[int, dict[str, str], Any]:
    body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    status, headers, raw = server.exchange("POST", path, body, {"Content-Type": "application/json"})
    return status, headers, orjson.loads(raw) if headers.get("content-type") == "application/json" else raw


def _echo(datatype: Any, shape: Any, data: Any) -> dict[str, Any]:
    return {"inputs": [{"name": "x", "datatype": datatype, "shape": shape, "data": data}]}


# --- 1. requests that used to crash the handler (plain-text 500, not counted) ----------------------
CRASHERS: list[tuple[str, dict[str, Any], str]] = [
    ("datatype-list", _echo(["FP32"], [1], [1.0]), "unknown datatype ['FP32']"),
    ("datatype-object", _echo({"type": "FP32"}, [1], [1.0]), "unknown datatype {'type': 'FP32'}"),
    ("shape-overflow", _echo("FP32", [2**62, 2**62], [1.0]), "shape [4611686018427387904, 4611686018427387904]"),
    ("shape-overflow-empty", _echo("FP32", [2**62, 2**62, 0], []), "has no elements"),
    ("shape-too-many-dimensions", _echo("FP32", [1] * 100, [1.0]), "at most 32 dimensions"),
    # numpy would make a fixed-width string array 1e6 characters wide for 300 001 values: 1.2 TB.
    ("numbers-with-a-long-string", _echo("FP32", [300_001], [1.0, "x" * 1_000_000] + [0.0] * 299_999),
     "datatype FP32 needs numbers"),
    ("ragged-bytes", _echo("BYTES", [2, 2], [["a", "b"], ["c"]]), "not a regular array"),
    ("bytes-with-numbers", _echo("BYTES", [2], ["a", 1]), "datatype BYTES needs strings"),
]


@pytest.mark.parametrize(("payload", "message"), [c[1:] for c in CRASHERS], ids=[c[0] for c in CRASHERS])
def test_malformed_tensors_are_400_error_objects_and_counted(
    echo_server: RuntimeProcess, payload: dict[str, Any], message: str
) -> None:
    before = request_codes(echo_server)
    status, headers, body = _post(echo_server, ECHO, payload)
    assert status == 400, body
    assert headers["content-type"] == "application/json"
    assert set(body) == {"error"}
    assert message in body["error"]
    assert _counted(before, request_codes(echo_server)) == {"400": 1.0}


def test_bytes_tensor_with_one_long_string_is_decoded_without_exploding(echo_server: RuntimeProcess) -> None:
    # Fixed-width numpy strings made this 8 TB (2e6 characters x 1e6 values x 4 bytes): a 500.
    # Variable-length strings cost what the request holds, so the echo model answers it.
    data = ["x" * 2_000_000] + [""] * 1_000_000
    before = request_codes(echo_server)
    status, _, body = _post(echo_server, ECHO, _echo("BYTES", [len(data)], data))
    assert status == 200, str(body)[:300]
    [output] = body["outputs"]
    assert output["shape"] == [len(data)]
    assert output["data"][0] == data[0] and set(output["data"][1:]) == {""}
    assert _counted(before, request_codes(echo_server)) == {"200": 1.0}


# --- 2. client mistakes that surfaced as model failures (500s against a canary) --------------------
def _iris_tensor(datatype: str, shape: list[int], data: list[Any], name: str = "input-0") -> dict[str, Any]:
    return {"inputs": [{"name": name, "datatype": datatype, "shape": shape, "data": data}]}


CLIENT_FAULTS: list[tuple[str, str, dict[str, Any], str]] = [
    ("empty-batch", "iris", _iris_tensor("FP64", [0, 4], []), "input 'input-0' has no elements (shape [0, 4])"),
    ("fp32-overflow", "iris", _iris_tensor("FP32", [1, 4], [1e39, 1, 1, 1]), "outside the FP32 range"),
    ("fp16-overflow", "iris", _iris_tensor("FP16", [1, 4], [1e5, 1, 1, 1]), "outside the FP16 range"),
    ("fp64-into-fp32-overflow", "onnx", _iris_tensor("FP64", [1, 4], [1e39, 1, 1, 1], "float_input"),
     "outside the FP32 range"),
]


@pytest.fixture(scope="module")
def onnx_server(models: dict[str, Path]) -> Iterator[RuntimeProcess]:
    with RuntimeProcess.serve(models["onnx"], name="onnx") as server:
        server.wait_ready()
        yield server


@pytest.mark.parametrize(
    ("model", "payload", "message"), [c[1:] for c in CLIENT_FAULTS], ids=[c[0] for c in CLIENT_FAULTS]
)
def test_client_faults_are_400_not_model_failures(
    iris_server: RuntimeProcess, onnx_server: RuntimeProcess, model: str, payload: dict[str, Any], message: str
) -> None:
    server = iris_server if model == "iris" else onnx_server
    before = request_codes(server)
    status, _, body = _post(server, f"/v2/models/{model}/infer", payload)
    assert status == 400, body
    assert message in body["error"]
    assert _counted(before, request_codes(server)) == {"400": 1.0}


# --- 3. limits and a responsive event loop -------------------------------------------------------------
@pytest.fixture(scope="module")
def limited_echo(models: dict[str, Path]) -> Iterator[RuntimeProcess]:
    env = {"MODELPILOT_MAX_BODY_BYTES": "65536", "MODELPILOT_MAX_DECODED_BYTES": "200000"}
    with RuntimeProcess.serve(models["echo"], name="echo", extra_args=["--format", "sklearn"], env=env) as server:
        server.wait_ready()
        yield server


LIMITED: list[tuple[str, dict[str, Any], str]] = [
    ("body", _echo("FP64", [30_000], [0.5] * 30_000),
     "request body larger than 65536 bytes (MODELPILOT_MAX_BODY_BYTES)"),
    # 60 KB of JSON, 240 KB as FP64.
    ("decoded-numbers", _echo("FP64", [30_000], [0] * 30_000),
     "the request's tensors take more than 200000 bytes decoded (MODELPILOT_MAX_DECODED_BYTES)"),
    # 60 KB of JSON, 20 000 string objects.
    ("decoded-strings", _echo("BYTES", [20_000], [""] * 20_000),
     "the request's tensors take more than 200000 bytes decoded (MODELPILOT_MAX_DECODED_BYTES)"),
]


@pytest.mark.parametrize(("payload", "message"), [c[1:] for c in LIMITED], ids=[c[0] for c in LIMITED])
def test_size_limits_are_413_and_counted(limited_echo: RuntimeProcess, payload: dict[str, Any], message: str) -> None:
    before = request_codes(limited_echo)
    status, _, body = _post(limited_echo, ECHO, payload)
    assert status == 413, body
    assert body == {"error": message}
    assert _counted(before, request_codes(limited_echo)) == {"413": 1.0}
    # Under the limits the same server answers.
    assert _post(limited_echo, ECHO, _echo("FP64", [3], [0.5, 1, 2]))[0] == 200


def _heavy_bodies() -> list[bytes]:
    # The reported worst case, about 200 KB: 3000 characters x 64 000 values, 768 MB as fixed-width
    # numpy strings (4-5 s on the event loop). And 20 MB numeric requests that take a while to parse.
    strings = orjson.dumps(_echo("BYTES", [64_001], ["s" * 3000] + [""] * 64_000))
    numbers = orjson.dumps(_echo("FP64", [2_000_000], [i * 0.25 for i in range(2_000_000)]))
    return [strings] * 3 + [numbers] * 4


def _longest_single_call(bodies: list[bytes]) -> float:
    """How long this machine, as loaded as it is now, takes to parse the largest body: the longest
    single C call the decoding thread makes, which holds the GIL (and so the loop) throughout."""
    started = time.monotonic()
    orjson.loads(max(bodies, key=len))
    return time.monotonic() - started


def test_probes_answer_while_heavy_requests_are_decoded(echo_server: RuntimeProcess) -> None:
    bodies = _heavy_bodies()
    # Decoded on the loop, a probe waits for whole requests (seconds); off the loop, for at most a
    # few single calls. The bound scales with how busy the machine is (other processes share it).
    bound = max(1.0, 8 * _longest_single_call(bodies))
    statuses: list[int] = []
    heavy_done: list[float] = []

    def heavy(body: bytes) -> None:
        status, _, _ = echo_server.exchange("POST", ECHO, body, {"Content-Type": "application/json"}, timeout=300)
        statuses.append(status)
        heavy_done.append(time.monotonic())

    threads = [threading.Thread(target=heavy, args=(body,)) for body in bodies]
    for thread in threads:
        thread.start()
    time.sleep(0.2)  # the heavy requests are being sent and decoded
    probes: list[tuple[float, float]] = []  # (answered at, latency)
    while any(t.is_alive() for t in threads):
        sent = time.monotonic()
        assert echo_server.get("/v2/health/live", timeout=300) == (200, {"live": True})
        probes.append((time.monotonic(), time.monotonic() - sent))
        time.sleep(0.05)
    for thread in threads:
        thread.join()
    assert statuses == [200] * len(bodies)
    during = [latency for answered, latency in probes if answered < max(heavy_done)]
    assert len(during) >= 3, f"the probes did not overlap the heavy requests: {probes}"
    assert max(during) < bound, f"/v2/health/live took {max(during):.2f}s (bound {bound:.2f}s) while heavy " \
        "requests were decoded"


# --- 5. 405 names the allowed methods ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("GET", "/v2/models/iris/infer", "POST"),
        ("PUT", "/v2/models/iris/versions/v1/infer", "POST"),
        ("POST", "/v2/health/live", "GET, HEAD"),
        ("DELETE", "/v2/models/iris", "GET, HEAD"),
        ("POST", "/metrics", "GET, HEAD"),
    ],
)
def test_405_carries_allow(iris_server: RuntimeProcess, method: str, path: str, allow: str) -> None:
    status, headers, raw = iris_server.exchange(method, path, b"{}" if method != "GET" else None)
    assert status == 405
    assert headers["allow"] == allow
    assert "error" in orjson.loads(raw)


def test_unknown_path_is_404_whatever_the_method(iris_server: RuntimeProcess) -> None:
    status, _, raw = iris_server.exchange("POST", "/nowhere", b"{}")
    assert (status, orjson.loads(raw)) == (404, {"error": "no such endpoint: /nowhere"})


def test_compressed_body_is_415(iris_server: RuntimeProcess) -> None:
    before = request_codes(iris_server)
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    status, _, raw = iris_server.exchange("POST", IRIS, orjson.dumps(iris_request()), headers)
    assert status == 415
    assert "Content-Encoding gzip is not supported" in orjson.loads(raw)["error"]
    assert _counted(before, request_codes(iris_server)) == {"415": 1.0}


# --- the safety net: a bug of ours is still a JSON error object, and counted --------------------------
class _Broken(Model):
    """predict() returns something that is not a mapping of outputs."""

    platform = "test"

    def __init__(self) -> None:
        super().__init__([], [TensorSpec("y", "FP64", (-1,))], ["y"])

    def predict(self, inputs: dict[str, np.ndarray], outputs: list[str]) -> dict[str, np.ndarray]:
        return None  # type: ignore[return-value]


def test_an_unexpected_error_is_a_counted_json_500() -> None:
    metrics = RequestMetrics(MetricLabels(model_deployment="m", model="m", version="", track=""))
    app = InferenceApp(ModelState(name="m", version="", model=_Broken()), metrics)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": orjson.dumps(_echo("FP64", [1], [1.0])), "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/v2/models/m/infer", "headers": []}
    asyncio.run(app(scope, receive, send))
    assert sent[0]["status"] == 500
    assert (b"content-type", b"application/json") in sent[0]["headers"]
    body = orjson.loads(b"".join(m.get("body", b"") for m in sent[1:]))
    assert body["error"].startswith("internal error: AttributeError")
    assert codes_in(metrics.exposition().decode()) == {"500": 1.0}
