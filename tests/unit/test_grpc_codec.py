"""gRPC requests and responses <-> arrays (modelpilot.server.grpc_codec), and the gRPC status of
each HTTP status the shared infer steps answer with."""

from __future__ import annotations

from typing import Any

import grpc
import numpy as np
import pytest

from modelpilot.server.grpc_codec import decode_request, encode_response, parameter_values, payload_bytes
from modelpilot.server.grpc_service import grpc_status
from modelpilot.server.proto import grpc_predict_v2_pb2 as pb
from modelpilot.server.protocol import InferRequest, ProtocolError

LIMIT = 1 << 20


def request(*inputs: dict[str, Any], raw: list[bytes] | None = None, **fields: Any) -> pb.ModelInferRequest:
    """A ModelInferRequest; each input is {name, datatype, shape, and a contents field}."""
    message = pb.ModelInferRequest(model_name="m", raw_input_contents=raw or [], **fields)
    for spec in inputs:
        tensor = message.inputs.add(name=spec["name"], datatype=spec["datatype"], shape=spec["shape"])
        for key, values in spec.items():
            if key.endswith("_contents"):
                getattr(tensor.contents, key).extend(values)
    return message


def tensor(name: str, datatype: str, shape: list[int], **contents: list[Any]) -> dict[str, Any]:
    return {"name": name, "datatype": datatype, "shape": shape, **contents}


DECODED: list[tuple[str, pb.ModelInferRequest, dict[str, np.ndarray]]] = [
    ("fp64-typed", request(tensor("x", "FP64", [2, 2], fp64_contents=[1.5, 2, 3, 4])),
     {"x": np.array([[1.5, 2], [3, 4]])}),
    ("fp32-typed", request(tensor("x", "FP32", [3], fp32_contents=[0.5, -1, 2])),
     {"x": np.array([0.5, -1, 2], dtype=np.float32)}),
    ("int8-typed", request(tensor("x", "INT8", [2], int_contents=[-128, 127])),
     {"x": np.array([-128, 127], dtype=np.int8)}),
    ("uint16-typed", request(tensor("x", "UINT16", [2], uint_contents=[0, 65535])),
     {"x": np.array([0, 65535], dtype=np.uint16)}),
    ("uint64-typed", request(tensor("x", "UINT64", [1], uint64_contents=[2**64 - 1])),
     {"x": np.array([2**64 - 1], dtype=np.uint64)}),
    ("bool-typed", request(tensor("x", "BOOL", [1, 2], bool_contents=[True, False])),
     {"x": np.array([[True, False]])}),
    ("bytes-typed", request(tensor("x", "BYTES", [2], bytes_contents=[b"a", "é".encode()])),
     {"x": np.array(["a", "é"], dtype=object)}),
    ("fp32-raw", request(tensor("x", "FP32", [2]), raw=[np.array([1.0, 2.0], dtype="<f4").tobytes()]),
     {"x": np.array([1.0, 2.0], dtype=np.float32)}),
    ("fp16-raw", request(tensor("x", "FP16", [1]), raw=[np.array([0.5], dtype="<f2").tobytes()]),
     {"x": np.array([0.5], dtype=np.float16)}),
    ("bytes-raw", request(tensor("x", "BYTES", [2]), raw=[b"\x01\x00\x00\x00a\x00\x00\x00\x00"]),
     {"x": np.array(["a", ""], dtype=object)}),
    ("two-raw", request(tensor("a", "INT32", [1]), tensor("b", "INT64", [1]),
                        raw=[np.int32(7).tobytes(), np.int64(-1).tobytes()]),
     {"a": np.array([7], dtype=np.int32), "b": np.array([-1], dtype=np.int64)}),
]


@pytest.mark.parametrize(("case", "message", "expected"), DECODED, ids=[c[0] for c in DECODED])
def test_decode(case: str, message: pb.ModelInferRequest, expected: dict[str, np.ndarray]) -> None:
    decoded = decode_request(message, LIMIT)
    assert list(decoded.inputs) == list(expected)
    for name, array in expected.items():
        np.testing.assert_array_equal(decoded.inputs[name], array)
        assert decoded.inputs[name].dtype == array.dtype
        assert decoded.inputs[name].flags.writeable
    assert decoded.datatypes == {t.name: t.datatype for t in message.inputs}


X2 = tensor("x", "FP64", [2], fp64_contents=[1, 2])
SHARED = request(tensor("x", "FP32", [1]), raw=[b"\x00" * 4])
SHARED.inputs[0].parameters["shared_memory_region"].string_param = "region"
INVALID: list[tuple[str, pb.ModelInferRequest, str, int]] = [
    ("no-inputs", request(), "'inputs' must be a non-empty array", 400),
    ("no-name", request(tensor("", "FP64", [1], fp64_contents=[1])), "inputs[0]: 'name' must be a non-empty", 400),
    ("datatype", request(tensor("x", "FLOAT", [1])), "input 'x': unknown datatype 'FLOAT'", 400),
    ("count", request(tensor("x", "FP64", [3], fp64_contents=[1, 2])),
     "input 'x': shape [3] needs 3 values, contents.fp64_contents has 2", 400),
    ("empty", request(tensor("x", "FP64", [0])), "input 'x' has no elements (shape [0])", 400),
    ("wrong-field", request(tensor("x", "FP64", [1], fp32_contents=[1])),
     "datatype FP64 takes its values in contents.fp64_contents, the request sets contents.fp32_contents", 400),
    ("fp16-typed", request(tensor("x", "FP16", [1], fp32_contents=[1])), "datatype FP16 has no typed contents", 400),
    ("int16-range", request(tensor("x", "INT16", [1], int_contents=[40000])), "outside the INT16 range", 400),
    ("uint8-range", request(tensor("x", "UINT8", [1], uint_contents=[256])), "outside the UINT8 range", 400),
    ("utf8", request(tensor("x", "BYTES", [1], bytes_contents=[b"\xff"])), "BYTES element 0 is not UTF-8", 400),
    ("twice", request(X2, X2), "input 'x' is given twice", 400),
    ("raw-count", request(tensor("x", "FP32", [1]), tensor("y", "FP32", [1]), raw=[b"\x00" * 4]),
     "raw_input_contents has 1 entries for 2 inputs", 400),
    ("raw-and-typed", request(X2, raw=[b"\x00" * 16]), "input 'x' has both contents and raw_input_contents", 400),
    ("raw-size", request(tensor("x", "FP32", [2]), raw=[b"\x00" * 4]), "needs 8 bytes, binary_data_size is 4", 400),
    ("shared-memory", SHARED, "input 'x': shared memory (shared_memory_region) is not supported", 400),
    ("binary-flag-type", request(X2, parameters={"binary_data_output": pb.InferParameter(int64_param=1)}),
     "the request: parameter binary_data_output must be a bool_param", 400),
    ("too-large", request(tensor("x", "FP64", [LIMIT // 8 + 1]), raw=[b"\x00" * (LIMIT + 8)]),
     f"more than {LIMIT} bytes decoded", 413),
]


@pytest.mark.parametrize(("case", "message", "error", "status"), INVALID, ids=[c[0] for c in INVALID])
def test_decode_refuses(case: str, message: pb.ModelInferRequest, error: str, status: int) -> None:
    with pytest.raises(ProtocolError) as raised:
        decode_request(message, LIMIT)
    assert error in raised.value.message
    assert raised.value.status == status


def _flag(value: bool) -> pb.InferParameter:
    return pb.InferParameter(bool_param=value)


@pytest.mark.parametrize(("message", "raw_default", "raw_outputs"), [
    (request(X2), False, {}),
    (request(tensor("x", "FP32", [1]), raw=[b"\x00" * 4]), True, {}),
    (request(X2, parameters={"binary_data_output": _flag(True)}), True, {}),
    (request(tensor("x", "FP32", [1]), raw=[b"\x00" * 4], parameters={"binary_data_output": _flag(False)}), False, {}),
    (request(X2, outputs=[pb.ModelInferRequest.InferRequestedOutputTensor(name="y", parameters={
        "binary_data": _flag(True)})]), False, {"y": True}),
], ids=["typed", "raw", "asked", "raw-but-typed-asked", "one-output"])
def test_raw_outputs_follow_the_request(
    message: pb.ModelInferRequest, raw_default: bool, raw_outputs: dict[str, bool]
) -> None:
    decoded = decode_request(message, LIMIT)
    assert (decoded.binary_default, decoded.binary_outputs) == (raw_default, raw_outputs)


def _decoded(raw: bool, request_id: str | None = None) -> InferRequest:
    return InferRequest(inputs={}, datatypes={}, id=request_id, binary_default=raw)


def test_encode_typed_contents() -> None:
    result = {"label": np.array([0, 2]), "p": np.array([[0.25, 0.75]], dtype=np.float32),
              "name": np.array(["a", b"b"], dtype=object), "ok": np.array([True])}
    response = encode_response("m", "v1", result, _decoded(raw=False, request_id="r1"))
    assert (response.model_name, response.model_version, response.id) == ("m", "v1", "r1")
    assert not response.raw_output_contents
    got = {o.name: (o.datatype, list(o.shape), o.contents) for o in response.outputs}
    assert got["label"][:2] == ("INT64", [2]) and list(got["label"][2].int64_contents) == [0, 2]
    assert got["p"][:2] == ("FP32", [1, 2]) and list(got["p"][2].fp32_contents) == [0.25, 0.75]
    assert got["name"][:2] == ("BYTES", [2]) and list(got["name"][2].bytes_contents) == [b"a", b"b"]
    assert got["ok"][:2] == ("BOOL", [1]) and list(got["ok"][2].bool_contents) == [True]


@pytest.mark.parametrize(("result", "raw"), [
    ({"y": np.array([1.5, 2.5])}, True),
    ({"y": np.array([1.5]), "h": np.array([0.5], dtype=np.float16)}, False),  # FP16 has no typed field
], ids=["asked", "fp16-forces-raw"])
def test_encode_raw_contents(result: dict[str, np.ndarray], raw: bool) -> None:
    response = encode_response("m", "", result, _decoded(raw=raw))
    assert [o.name for o in response.outputs] == list(result)
    assert all(not o.HasField("contents") for o in response.outputs)
    assert list(response.raw_output_contents) == [a.astype(a.dtype.newbyteorder("<")).tobytes()
                                                  for a in result.values()]


def test_encode_refuses_an_output_of_no_datatype() -> None:
    with pytest.raises(ValueError, match="no V2 datatype"):
        encode_response("m", "", {"z": np.array([1j])}, _decoded(raw=False))


@pytest.mark.parametrize(("message", "size"), [
    (request(X2), 16),
    (request(tensor("x", "FP32", [2]), tensor("y", "INT8", [3]), raw=[b"\x00" * 8, b"\x00" * 3]), 11),
    (request(tensor("x", "BYTES", [2], bytes_contents=[b"ab", b"c"]), X2), 19),
], ids=["typed", "raw", "bytes"])
def test_payload_bytes(message: pb.ModelInferRequest, size: int) -> None:
    assert payload_bytes(message) == size


def test_parameter_values() -> None:
    parameters = {"b": pb.InferParameter(bool_param=True), "i": pb.InferParameter(int64_param=-3),
                  "s": pb.InferParameter(string_param="x"), "d": pb.InferParameter(double_param=0.5),
                  "u": pb.InferParameter(uint64_param=2**64 - 1), "unset": pb.InferParameter()}
    assert parameter_values(parameters) == {"b": True, "i": -3, "s": "x", "d": 0.5, "u": 2**64 - 1, "unset": None}


@pytest.mark.parametrize(("http", "code"), [
    (400, grpc.StatusCode.INVALID_ARGUMENT), (404, grpc.StatusCode.NOT_FOUND),
    (413, grpc.StatusCode.RESOURCE_EXHAUSTED), (415, grpc.StatusCode.INVALID_ARGUMENT),
    (500, grpc.StatusCode.INTERNAL), (503, grpc.StatusCode.UNAVAILABLE), (502, grpc.StatusCode.INTERNAL),
])
def test_grpc_status_of_each_http_status(http: int, code: grpc.StatusCode) -> None:
    assert grpc_status(http) == code
