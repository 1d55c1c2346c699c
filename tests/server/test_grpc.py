"""Open Inference Protocol v2 over gRPC, against real `modelpilot serve --grpc-port` processes on
loopback, with stock clients only: tritonclient.grpc (raw tensors, as Triton's and KServe's users
send them) and Triton's own protobuf stubs for typed `contents` and malformed requests. Every
answer is compared with what REST answers on the same server."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from modelpilot.cli.main import build_parser
from modelpilot.server.serve import ConfigError, resolve_config
from tests.support.testing import RuntimeProcess, free_port, request_codes, sample_sums

grpcclient = pytest.importorskip("tritonclient.grpc")
from tritonclient.grpc import service_pb2 as triton_pb  # noqa: E402
from tritonclient.grpc import service_pb2_grpc as triton_grpc  # noqa: E402
from tritonclient.utils import InferenceServerException  # noqa: E402

ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]


@dataclass
class Served:
    """A runtime process serving REST on `process.port` and gRPC on `grpc_port`."""

    process: RuntimeProcess
    grpc_port: int
    name: str

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def client(self) -> Any:
        return grpcclient.InferenceServerClient(self.target)

    def stub(self) -> Any:
        return triton_grpc.GRPCInferenceServiceStub(grpc.insecure_channel(self.target))


def _serve(model: Path, name: str, *args: str) -> RuntimeProcess:
    return RuntimeProcess.serve(model, name=name, extra_args=list(args))


@pytest.fixture(scope="module")
def servers(models: dict[str, Path]) -> Iterator[dict[str, Served]]:
    """iris (sklearn, version v1), xgboost, onnx and echo, each with gRPC on."""
    wanted = {"iris": ("iris", "--model-version", "v1"), "xgboost": ("xgboost-json",), "onnx": ("onnx",),
              "echo": ("echo", "--format", "sklearn"), "failing": ("failing",)}
    served: dict[str, Served] = {}
    try:
        for name, (model, *args) in wanted.items():
            port = free_port()
            served[name] = Served(_serve(models[model], name, "--grpc-port", str(port), *args).start(), port, name)
        for server in served.values():
            server.process.wait_ready()
        yield served
    finally:
        for server in served.values():
            server.process.stop()


def _status(err: InferenceServerException) -> str:
    return str(err.status())


# ----------------------------------------------------------------------------- health and metadata


def test_health(servers: dict[str, Served]) -> None:
    client = servers["iris"].client()
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("iris")
    assert client.is_model_ready("iris", "v1")


def test_metadata_is_what_rest_says(servers: dict[str, Served]) -> None:
    iris = servers["iris"]
    client = iris.client()
    _, rest_server = iris.process.get("/v2")
    assert client.get_server_metadata(as_json=True) == rest_server
    _, rest_model = iris.process.get("/v2/models/iris")
    metadata = client.get_model_metadata("iris", as_json=True)
    assert (metadata["name"], metadata["versions"], metadata["platform"]) == ("iris", ["v1"], rest_model["platform"])
    for kind in ("inputs", "outputs"):
        got = [{**t, "shape": [int(d) for d in t["shape"]]} for t in metadata[kind]]  # int64 travels as text
        assert got == rest_model[kind]


@pytest.mark.parametrize("call", [
    lambda c: c.is_model_ready("nope"),
    lambda c: c.is_model_ready("iris", "v9"),
    lambda c: c.get_model_metadata("nope"),
    lambda c: c.get_model_metadata("iris", "v9"),
], ids=["ready-model", "ready-version", "metadata-model", "metadata-version"])
def test_unknown_model_or_version_is_not_found(servers: dict[str, Served], call: Any) -> None:
    with pytest.raises(InferenceServerException) as raised:
        call(servers["iris"].client())
    assert _status(raised.value) == "StatusCode.NOT_FOUND"
    assert "this server serves iris version v1" in raised.value.message()


# ------------------------------------------------------------------------------------- inference


def _rest_outputs(server: Served, tensor: dict[str, Any]) -> dict[str, np.ndarray]:
    status, body = server.process.post_json(f"/v2/models/{server.name}/infer", {"inputs": [tensor]})
    assert status == 200, body
    return {o["name"]: np.array(o["data"]).reshape(o["shape"]) for o in body["outputs"]}


def _model_input(server: Served) -> tuple[str, str]:
    _, metadata = server.process.get(f"/v2/models/{server.name}")
    return metadata["inputs"][0]["name"], metadata["inputs"][0]["datatype"]


@pytest.mark.parametrize("model", ["iris", "xgboost", "onnx"])
def test_tritonclient_infer_gives_the_rest_answer(servers: dict[str, Served], model: str) -> None:
    server = servers[model]
    name, datatype = _model_input(server)
    rows = np.array(ROWS, dtype=np.float32 if datatype == "FP32" else np.float64)
    expected = _rest_outputs(server, {"name": name, "datatype": datatype, "shape": [3, 4],
                                      "data": rows.ravel().tolist()})
    tensor = grpcclient.InferInput(name, [3, 4], datatype)
    tensor.set_data_from_numpy(rows)
    result = server.client().infer(model, [tensor], request_id="req-1")
    response = result.get_response()
    assert response.id == "req-1"
    assert [o.name for o in response.outputs] == list(expected)
    assert len(response.raw_output_contents) == len(expected)  # raw inputs in, raw outputs out
    for output, array in expected.items():
        np.testing.assert_allclose(result.as_numpy(output), array, rtol=1e-6)


def _typed_request(model: str, name: str, datatype: str, array: np.ndarray, field: str,
                   shape: list[int] | None = None) -> Any:
    request = triton_pb.ModelInferRequest(model_name=model)
    tensor = request.inputs.add(name=name, datatype=datatype, shape=list(array.shape) if shape is None else shape)
    getattr(tensor.contents, field).extend(array.ravel().tolist())
    return request


def _typed_outputs(response: Any) -> dict[str, np.ndarray]:
    out = {}
    for output in response.outputs:
        values = next(value for _, value in output.contents.ListFields())
        out[output.name] = np.array(list(values)).reshape(list(output.shape))
    return out


def test_typed_contents_give_typed_contents_and_the_rest_answer(servers: dict[str, Served]) -> None:
    iris = servers["iris"]
    expected = _rest_outputs(iris, {"name": "input-0", "datatype": "FP64", "shape": [3, 4],
                                    "data": [v for row in ROWS for v in row]})
    response = iris.stub().ModelInfer(_typed_request("iris", "input-0", "FP64", np.array(ROWS), "fp64_contents"))
    assert not response.raw_output_contents
    got = _typed_outputs(response)
    assert list(got) == list(expected)
    for output, array in expected.items():
        np.testing.assert_allclose(got[output], array, rtol=1e-12)


DATATYPES: list[tuple[str, np.ndarray, str | None]] = [
    ("BOOL", np.array([[True, False, True]]), "bool_contents"),
    ("INT8", np.array([-128, 127], dtype=np.int8), "int_contents"),
    ("INT16", np.array([-32768, 32767], dtype=np.int16), "int_contents"),
    ("INT32", np.array([[-(2**31)], [2**31 - 1]], dtype=np.int32), "int_contents"),
    ("INT64", np.array([-(2**63), 2**63 - 1], dtype=np.int64), "int64_contents"),
    ("UINT8", np.array([0, 255], dtype=np.uint8), "uint_contents"),
    ("UINT16", np.array([0, 65535], dtype=np.uint16), "uint_contents"),
    ("UINT32", np.array([0, 2**32 - 1], dtype=np.uint32), "uint_contents"),
    ("UINT64", np.array([0, 2**64 - 1], dtype=np.uint64), "uint64_contents"),
    ("FP16", np.array([0.5, -2.0, 65504.0], dtype=np.float16), None),
    ("FP32", np.array([[0.5, -1.25], [3.0, 1e6]], dtype=np.float32), "fp32_contents"),
    ("FP64", np.array([0.1, -2.5e-300, 1e300]), "fp64_contents"),
    ("BYTES", np.array([b"a", "héllo wörld".encode(), b"", "日本".encode()], dtype=object), "bytes_contents"),
]


@pytest.mark.parametrize(("datatype", "array", "field"), DATATYPES, ids=[d[0] for d in DATATYPES])
def test_every_datatype_round_trips_raw_and_typed(
    servers: dict[str, Served], datatype: str, array: np.ndarray, field: str | None
) -> None:
    echo = servers["echo"]
    tensor = grpcclient.InferInput("x", list(array.shape), datatype)
    tensor.set_data_from_numpy(array)
    answer = echo.client().infer("echo", [tensor]).as_numpy("predict")
    np.testing.assert_array_equal(answer, array)
    assert answer.dtype == array.dtype
    if field is None:  # FP16 has no typed field: raw only
        return
    response = echo.stub().ModelInfer(_typed_request("echo", "x", datatype, array, field))
    assert response.outputs[0].datatype == datatype
    assert list(response.outputs[0].shape) == list(array.shape)
    np.testing.assert_array_equal(np.array(list(getattr(response.outputs[0].contents, field))), array.ravel())


def test_large_request_beyond_grpc_default_message_size(servers: dict[str, Served]) -> None:
    """8 MB of FP32 (grpc's default limit is 4 MB; the runtime takes MODELPILOT_MAX_BODY_BYTES)."""
    array = np.arange(2 * 1024 * 1024, dtype=np.float32).reshape(1024, 2048)
    tensor = grpcclient.InferInput("x", list(array.shape), "FP32")
    tensor.set_data_from_numpy(array)
    np.testing.assert_array_equal(servers["echo"].client().infer("echo", [tensor]).as_numpy("predict"), array)


# ----------------------------------------------------------------------------- client mistakes


def _raw_request(model: str, datatype: str, shape: list[int], raw: list[bytes], name: str = "input-0") -> Any:
    request = triton_pb.ModelInferRequest(model_name=model, raw_input_contents=raw)
    request.inputs.add(name=name, datatype=datatype, shape=shape)
    return request


FP64_ROW = np.array([ROWS[0]]).tobytes()
BAD_REQUESTS: list[tuple[str, Any, str]] = [
    ("shape", _raw_request("iris", "FP64", [1, 3], [np.zeros((1, 3)).tobytes()]),
     "input 'input-0' has shape [1, 3]; the model expects [-1, 4]"),
    ("datatype", _raw_request("iris", "BYTES", [1], [b"\x01\x00\x00\x00a"]),
     "input 'input-0' has datatype BYTES; the model expects FP64"),
    ("unknown-datatype", _raw_request("iris", "FLOAT", [1, 4], [FP64_ROW]), "unknown datatype 'FLOAT'"),
    ("unknown-input", _raw_request("iris", "FP64", [1, 4], [FP64_ROW], name="x"), "unknown input 'x'"),
    ("raw-size", _raw_request("iris", "FP64", [2, 4], [FP64_ROW]), "needs 64 bytes, binary_data_size is 32"),
    ("raw-count", _raw_request("iris", "FP64", [1, 4], [FP64_ROW, FP64_ROW]), "raw_input_contents has 2 entries"),
    ("no-inputs", triton_pb.ModelInferRequest(model_name="iris"), "'inputs' must be a non-empty array"),
    ("wrong-field", _typed_request("iris", "input-0", "FP64", np.array(ROWS), "fp32_contents"),
     "datatype FP64 takes its values in contents.fp64_contents"),
    ("value-count", _typed_request("iris", "input-0", "FP64", np.array(ROWS[0] + [1.0]), "fp64_contents", [1, 4]),
     "shape [1, 4] needs 4 values, contents.fp64_contents has 5"),
    ("int8-range", _typed_request("echo", "x", "INT8", np.array([1, 300]), "int_contents"),
     "values outside the INT8 range"),
    ("fp16-typed", _typed_request("echo", "x", "FP16", np.array([1.0]), "fp32_contents"),
     "datatype FP16 has no typed contents"),
    ("bytes-utf8", _typed_request("echo", "x", "BYTES", np.array([b"\xff"], dtype=object), "bytes_contents"),
     "BYTES element 0 is not UTF-8"),
]


@pytest.mark.parametrize(("case", "request_message", "message"), BAD_REQUESTS, ids=[c[0] for c in BAD_REQUESTS])
def test_bad_request_is_invalid_argument_and_counted_as_400(
    servers: dict[str, Served], case: str, request_message: Any, message: str
) -> None:
    server = servers[request_message.model_name]
    before = request_codes(server.process).get("400", 0.0)
    with pytest.raises(grpc.RpcError) as raised:
        server.stub().ModelInfer(request_message)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in raised.value.details()
    assert request_codes(server.process).get("400", 0.0) == before + 1


@pytest.mark.parametrize(("model", "version"), [("nope", ""), ("iris", "v9")])
def test_infer_on_unknown_model_is_not_found_and_counted_as_404(
    servers: dict[str, Served], model: str, version: str
) -> None:
    iris = servers["iris"]
    before = request_codes(iris.process).get("404", 0.0)
    tensor = grpcclient.InferInput("input-0", [1, 4], "FP64")
    tensor.set_data_from_numpy(np.array([ROWS[0]]))
    with pytest.raises(InferenceServerException) as raised:
        iris.client().infer(model, [tensor], model_version=version)
    assert _status(raised.value) == "StatusCode.NOT_FOUND"
    assert request_codes(iris.process).get("404", 0.0) == before + 1


# --------------------------------------------------------------------------------------- metrics


def _samples(server: Served, name: str) -> float:
    return sample_sums(server.process.metrics_text(), name).get("", 0.0)


def test_metrics_move_for_grpc_inference_only(servers: dict[str, Served]) -> None:
    iris = servers["iris"]
    client = iris.client()
    codes = request_codes(iris.process)
    durations = _samples(iris, "modelpilot_request_duration_seconds_count")
    predictions = _samples(iris, "modelpilot_predictions_total")
    client.is_server_ready()
    client.get_model_metadata("iris")
    assert request_codes(iris.process) == codes  # health and metadata are not inference traffic
    tensor = grpcclient.InferInput("input-0", [3, 4], "FP64")
    tensor.set_data_from_numpy(np.array(ROWS))
    for _ in range(3):
        client.infer("iris", [tensor])
    assert request_codes(iris.process).get("200", 0.0) == codes.get("200", 0.0) + 3
    assert _samples(iris, "modelpilot_request_duration_seconds_count") == durations + 3
    # Predicted rows are counted after the answer leaves: wait for them.
    iris.process.wait_until(lambda: _samples(iris, "modelpilot_predictions_total") == predictions + 9, 30, "counted")


def test_model_failures_are_internal_and_counted_as_5xx(servers: dict[str, Served]) -> None:
    """The failing model raises on about half the rows: each failed call is INTERNAL and a 500."""
    failing = servers["failing"]
    before = request_codes(failing.process)
    name, datatype = _model_input(failing)
    statuses = []
    for value in np.linspace(4.0, 7.0, 20):
        tensor = grpcclient.InferInput(name, [1, 4], datatype)
        tensor.set_data_from_numpy(np.array([[value, 3.0, 4.0, 1.0]]))
        try:
            failing.client().infer("failing", [tensor])
            statuses.append("OK")
        except InferenceServerException as err:
            statuses.append(_status(err))
    after = request_codes(failing.process)
    assert set(statuses) <= {"OK", "StatusCode.INTERNAL"}
    assert after.get("500", 0.0) - before.get("500", 0.0) == statuses.count("StatusCode.INTERNAL") > 0
    assert after.get("200", 0.0) - before.get("200", 0.0) == statuses.count("OK")


# ---------------------------------------------------------------------------- process lifecycle


def test_sigterm_stops_readiness_then_exits_zero(models: dict[str, Path]) -> None:
    port = free_port()
    with _serve(models["iris"], "iris", "--grpc-port", str(port), "--drain-seconds", "60") as process:
        process.wait_ready()
        served = Served(process, port, "iris")
        client = served.client()
        assert client.is_server_ready()
        assert process.proc is not None
        process.proc.send_signal(15)
        process.wait_until(lambda: not client.is_server_ready(), 30, "not ready over gRPC while draining")
        assert client.is_server_live()
        assert process.terminate(30) == 0  # the second signal ends the drain


def test_taken_grpc_port_fails_the_start(models: dict[str, Path]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with _serve(models["iris"], "iris", "--grpc-port", str(port)) as process:
            assert process.proc is not None
            assert process.proc.wait(60) == 1
            assert f"cannot bind the gRPC port 127.0.0.1:{port}" in process.log()


def _config(flag: int | None, env: dict[str, str]) -> Any:
    """`modelpilot serve` parsed as the CLI parses it, then resolved."""
    argv = ["serve", "--model", "/models/iris", *(["--grpc-port", str(flag)] if flag is not None else [])]
    return resolve_config(build_parser().parse_args(argv), env)


@pytest.mark.parametrize(("flag", "env", "expected"), [
    (None, {}, 0),
    (9000, {}, 9000),
    (None, {"MODELPILOT_GRPC_PORT": "9001"}, 9001),
    (9000, {"MODELPILOT_GRPC_PORT": "9001"}, 9000),
    (0, {"MODELPILOT_GRPC_PORT": "9001"}, 0),
])
def test_grpc_port_from_flag_or_environment(flag: int | None, env: dict[str, str], expected: int) -> None:
    assert _config(flag, env).grpc_port == expected


@pytest.mark.parametrize(("flag", "env", "message"), [
    (8080, {}, "the gRPC port must differ from the HTTP port (8080)"),
    (70000, {}, "the gRPC port 70000 is out of range"),
    (None, {"MODELPILOT_GRPC_PORT": "grpc"}, "the gRPC port must be a number"),
])
def test_bad_grpc_port_is_a_config_error(flag: int | None, env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        _config(flag, env)
