"""The binary tensor data extension (Triton's, used by default by the Triton and KServe clients):
a JSON header of `Inference-Header-Content-Length` bytes followed by raw little-endian tensors."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from tests.support.testing import RuntimeProcess, iris_request, request_codes

httpclient = pytest.importorskip("tritonclient.http")
from tritonclient.utils import InferenceServerException  # noqa: E402

ECHO = "/v2/models/echo/infer"
HEADER = "Inference-Header-Content-Length"


def _client(server: RuntimeProcess) -> Any:
    return httpclient.InferenceServerClient(url=f"{server.host}:{server.port}", network_timeout=60.0)


def test_server_metadata_advertises_the_extension(echo_server: RuntimeProcess) -> None:
    metadata = _client(echo_server).get_server_metadata()
    assert "binary_tensor_data" in metadata["extensions"]


ARRAYS: list[tuple[str, np.ndarray]] = [
    ("FP32", np.array([[0.5, -1.25], [3.0, 1e6]], dtype=np.float32)),
    ("FP64", np.array([0.1, -2.5e-300, 1e300, 7.0])),
    ("FP16", np.array([0.5, -2.0, 65504.0], dtype=np.float16)),
    ("INT8", np.array([-128, 127], dtype=np.int8)),
    ("INT16", np.array([[-32768, 32767]], dtype=np.int16)),
    ("INT32", np.array([-2147483648, 2147483647, 0], dtype=np.int32)),
    ("INT64", np.array([[-(2**63)], [2**63 - 1]], dtype=np.int64)),
    ("UINT8", np.array([0, 255], dtype=np.uint8)),
    ("UINT16", np.array([0, 65535], dtype=np.uint16)),
    ("UINT32", np.array([0, 4294967295], dtype=np.uint32)),
    ("UINT64", np.array([0, 2**64 - 1], dtype=np.uint64)),
    ("BOOL", np.array([True, False, True])),
    ("BYTES", np.array([[b"a", "héllo wörld".encode()], [b"", "日本".encode()]], dtype=object)),
]


@pytest.mark.parametrize(("datatype", "array"), ARRAYS, ids=[a[0] for a in ARRAYS])
@pytest.mark.parametrize("binary_output", [True, False], ids=["binary-out", "json-out"])
def test_tritonclient_round_trip(
    echo_server: RuntimeProcess, datatype: str, array: np.ndarray, binary_output: bool
) -> None:
    tensor = httpclient.InferInput("x", list(array.shape), datatype)
    tensor.set_data_from_numpy(array, binary_data=True)
    wanted = httpclient.InferRequestedOutput("predict", binary_data=binary_output)
    result = _client(echo_server).infer("echo", [tensor], outputs=[wanted])
    output = result.get_output("predict")
    assert output["datatype"] == datatype
    assert output["shape"] == list(array.shape)
    assert ("binary_data_size" in output.get("parameters", {})) == binary_output
    answer = result.as_numpy("predict")
    if datatype == "BYTES" and not binary_output:
        answer = np.vectorize(lambda s: s.encode(), otypes=[object])(answer)  # JSON carries text
    np.testing.assert_array_equal(answer, array)
    assert answer.dtype == array.dtype


def test_tritonclient_against_a_real_model(iris_server: RuntimeProcess) -> None:
    rows = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]])
    status, expected = iris_server.post_json(
        "/v2/models/iris/infer",
        {**iris_request(rows.tolist()), "outputs": [{"name": "predict"}, {"name": "predict_proba"}]},
    )
    assert status == 200
    by_name = {o["name"]: o for o in expected["outputs"]}
    tensor = httpclient.InferInput("input-0", [3, 4], "FP64")
    tensor.set_data_from_numpy(rows, binary_data=True)
    client = _client(iris_server)
    outputs = [
        httpclient.InferRequestedOutput("predict", binary_data=True),
        httpclient.InferRequestedOutput("predict_proba", binary_data=False),
    ]
    result = client.infer("iris", [tensor], outputs=outputs, model_version="v1", request_id="r-7")
    assert result.get_response()["id"] == "r-7"
    assert result.as_numpy("predict").tolist() == by_name["predict"]["data"]
    assert "parameters" not in result.get_output("predict_proba")
    np.testing.assert_allclose(result.as_numpy("predict_proba").ravel(), by_name["predict_proba"]["data"])
    # No outputs named: the client asks for every default output in binary (binary_data_output).
    result = client.infer("iris", [tensor])
    assert result.get_output("predict")["parameters"]["binary_data_size"] == 3 * 8
    assert result.as_numpy("predict").tolist() == by_name["predict"]["data"]


def test_tritonclient_sees_the_error_object(iris_server: RuntimeProcess) -> None:
    tensor = httpclient.InferInput("input-0", [1, 4], "BYTES")
    tensor.set_data_from_numpy(np.array([[b"a", b"b", b"c", b"d"]], dtype=object), binary_data=True)
    with pytest.raises(InferenceServerException, match="input 'input-0' has datatype BYTES; the model expects FP64"):
        _client(iris_server).infer("iris", [tensor])


@pytest.fixture(scope="module")
def adder(models: dict[str, Path]) -> Iterator[RuntimeProcess]:
    with RuntimeProcess.serve(models["onnx-two"], name="add") as server:
        server.wait_ready()
        yield server


def _raw(server: RuntimeProcess, path: str, header: dict[str, Any], binary: bytes, **headers: str) -> Any:
    head = orjson.dumps(header)
    return server.exchange(
        "POST", path, head + binary, {"Content-Type": "application/octet-stream", HEADER: str(len(head)), **headers}
    )


def _split(headers: dict[str, str], raw: bytes) -> tuple[dict[str, Any], dict[str, bytes]]:
    """A binary response: the JSON header and each binary output's bytes."""
    size = int(headers[HEADER.lower()])
    body = orjson.loads(raw[:size])
    offset, blobs = size, {}
    for output in body["outputs"]:
        length = output.get("parameters", {}).get("binary_data_size")
        if length is not None:
            blobs[output["name"]] = raw[offset : offset + length]
            offset += length
    assert offset == len(raw)
    return body, blobs


def test_hand_built_request_mixing_binary_and_json_inputs(adder: RuntimeProcess) -> None:
    a = np.array([[1.0, 2.0], [3.0, 4.0]], dtype="<f4")
    header = {
        "id": "mixed",
        "inputs": [
            {"name": "a", "datatype": "FP32", "shape": [2, 2], "parameters": {"binary_data_size": a.nbytes}},
            {"name": "b", "datatype": "FP32", "shape": [2, 2], "data": [10, 20, 30, 40]},
        ],
        "outputs": [{"name": "sum", "parameters": {"binary_data": True}}],
    }
    status, headers, raw = _raw(adder, "/v2/models/add/infer", header, a.tobytes())
    assert status == 200, raw
    assert headers["content-type"] == "application/octet-stream"
    body, blobs = _split(headers, raw)
    assert body["id"] == "mixed"
    assert body["outputs"] == [
        {"name": "sum", "datatype": "FP32", "shape": [2, 2], "parameters": {"binary_data_size": 16}}
    ]
    assert np.frombuffer(blobs["sum"], dtype="<f4").tolist() == [11.0, 22.0, 33.0, 44.0]
    # binary_data_output asks for every output in binary; a per-output false wins over it.
    header = {**header, "parameters": {"binary_data_output": True}, "outputs": [{"name": "sum"}]}
    status, headers, raw = _raw(adder, "/v2/models/add/infer", header, a.tobytes())
    assert np.frombuffer(_split(headers, raw)[1]["sum"], dtype="<f4").tolist() == [11.0, 22.0, 33.0, 44.0]
    header["outputs"] = [{"name": "sum", "parameters": {"binary_data": False}}]
    status, headers, raw = _raw(adder, "/v2/models/add/infer", header, a.tobytes())
    assert HEADER.lower() not in headers
    assert orjson.loads(raw)["outputs"][0]["data"] == [11.0, 22.0, 33.0, 44.0]


def _strings(*values: bytes) -> bytes:
    return b"".join(struct.pack("<I", len(v)) + v for v in values)


def test_hand_built_bytes_and_bool(echo_server: RuntimeProcess) -> None:
    words = _strings(b"alpha", b"", "日本".encode())
    header = {
        "inputs": [{"name": "x", "datatype": "BYTES", "shape": [3], "parameters": {"binary_data_size": len(words)}}],
        "parameters": {"binary_data_output": True},
    }
    status, headers, raw = _raw(echo_server, ECHO, header, words)
    assert status == 200, raw
    body, blobs = _split(headers, raw)
    assert body["outputs"][0]["datatype"] == "BYTES"
    assert blobs["predict"] == words
    flags = bytes([1, 0, 1])
    header["inputs"] = [{"name": "x", "datatype": "BOOL", "shape": [3], "parameters": {"binary_data_size": 3}}]
    header["parameters"] = {}
    status, headers, raw = _raw(echo_server, ECHO, header, flags)
    assert orjson.loads(raw)["outputs"][0]["data"] == [True, False, True]


def _input(datatype: str, shape: list[int], size: Any, **extra: Any) -> dict[str, Any]:
    return {"inputs": [{"name": "x", "datatype": datatype, "shape": shape,
                        "parameters": {"binary_data_size": size}, **extra}]}


BAD_BINARY: list[tuple[str, dict[str, Any], bytes, dict[str, str], str]] = [
    ("size-vs-shape", _input("FP32", [2], 4), b"\0" * 4, {}, "shape [2] of FP32 needs 8 bytes, binary_data_size is 4"),
    ("trailing-bytes", _input("FP32", [2], 8), b"\0" * 12, {}, "4 bytes after the last binary input"),
    ("short-section", _input("FP32", [4], 16), b"\0" * 8, {}, "binary data ends after 8 of the 16 bytes"),
    ("size-not-int", _input("FP32", [2], "8"), b"\0" * 8, {}, "binary_data_size must be a non-negative integer"),
    ("data-and-binary", _input("FP32", [2], 8, data=[1, 2]), b"\0" * 8, {}, "both 'data' and binary_data_size"),
    ("shape-overflow", _input("FP32", [2**62, 2**62], 8), b"\0" * 8, {}, f"needs {4 * 2**124} bytes"),
    ("bool-not-0-or-1", _input("BOOL", [2], 2), b"\x01\x02", {}, "BOOL bytes must be 0 or 1"),
    ("bytes-not-utf8", _input("BYTES", [1], 6), _strings(b"\xff\xfe"), {}, "element 0 is not UTF-8"),
    ("bytes-truncated", _input("BYTES", [2], 9), _strings(b"abcde"), {}, "element 1 has no length prefix"),
    ("bytes-count", _input("BYTES", [1], 17), _strings(b"abcde", b"fghi"), {}, "8 bytes after element 0"),
    ("header-not-a-number", _input("FP32", [2], 8), b"\0" * 8, {HEADER: "12abc"},
     "Inference-Header-Content-Length must be a non-negative integer"),
    ("header-beyond-body", _input("FP32", [2], 8), b"\0" * 8, {HEADER: "100000"},
     "Inference-Header-Content-Length 100000 is larger than the body"),
    ("shared-memory", {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1],
                                   "parameters": {"shared_memory_region": "r"}}]}, b"", {}, "shared memory"),
]


@pytest.mark.parametrize(
    ("header", "binary", "extra", "message"), [c[1:] for c in BAD_BINARY], ids=[c[0] for c in BAD_BINARY]
)
def test_bad_binary_requests_are_400_and_counted(
    echo_server: RuntimeProcess, header: dict[str, Any], binary: bytes, extra: dict[str, str], message: str
) -> None:
    before = request_codes(echo_server)
    status, headers, raw = _raw(echo_server, ECHO, header, binary, **extra)
    assert status == 400, raw
    assert headers["content-type"] == "application/json"
    assert message in orjson.loads(raw)["error"]
    after = request_codes(echo_server)
    assert after["400"] - before.get("400", 0) == 1
    assert after.get("200") == before.get("200")


def test_binary_size_without_the_header_is_400(echo_server: RuntimeProcess) -> None:
    status, _, raw = echo_server.exchange(
        "POST", ECHO, orjson.dumps(_input("FP32", [2], 8)) + b"\0" * 8, {"Content-Type": "application/json"}
    )
    assert status == 400
    assert "malformed JSON" in orjson.loads(raw)["error"]
    status, _, raw = echo_server.exchange("POST", ECHO, orjson.dumps(_input("FP32", [2], 8)))
    assert status == 400
    assert "binary_data_size needs the Inference-Header-Content-Length header" in orjson.loads(raw)["error"]
