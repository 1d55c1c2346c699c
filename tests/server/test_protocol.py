"""Open Inference Protocol v2 against the running server: metadata, inference, datatypes, errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest

from tests.support import testmodels
from tests.support.testing import RuntimeProcess, iris_request

ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]


def _expected(models: dict[str, Path], rows: list[list[float]]) -> list[int]:
    estimator = joblib.load(models["iris"] / testmodels.MODEL_FILE)
    return [int(v) for v in estimator.predict(np.asarray(rows))]


def test_server_metadata(iris_server: RuntimeProcess) -> None:
    status, body = iris_server.get("/v2")
    assert status == 200
    assert body["name"] == "modelpilot"


def test_model_metadata(iris_server: RuntimeProcess) -> None:
    for path in ("/v2/models/iris", "/v2/models/iris/versions/v1"):
        status, body = iris_server.get(path)
        assert status == 200, body
        assert body["name"] == "iris"
        assert body["versions"] == ["v1"]
        assert body["platform"] == "sklearn"
        assert body["inputs"] == [{"name": "input-0", "datatype": "FP64", "shape": [-1, 4]}]
        outputs = {o["name"]: o for o in body["outputs"]}
        assert outputs["predict"] == {"name": "predict", "datatype": "INT64", "shape": [-1]}
        assert "predict_proba" in outputs


def test_model_ready_endpoint(iris_server: RuntimeProcess) -> None:
    assert iris_server.get("/v2/models/iris/ready") == (200, {"ready": True})
    assert iris_server.get("/v2/health/live") == (200, {"live": True})


def test_infer_matches_the_model(iris_server: RuntimeProcess, models: dict[str, Path]) -> None:
    request = {**iris_request(ROWS), "id": "req-1"}
    status, body = iris_server.post_json("/v2/models/iris/infer", request)
    assert status == 200, body
    assert body["model_name"] == "iris"
    assert body["model_version"] == "v1"
    assert body["id"] == "req-1"
    [output] = body["outputs"]
    assert output == {"name": "predict", "datatype": "INT64", "shape": [3], "data": _expected(models, ROWS)}


def test_versioned_infer_and_requested_outputs(iris_server: RuntimeProcess) -> None:
    request = {**iris_request(ROWS), "outputs": [{"name": "predict"}, {"name": "predict_proba"}]}
    status, body = iris_server.post_json("/v2/models/iris/versions/v1/infer", request)
    assert status == 200, body
    outputs = {o["name"]: o for o in body["outputs"]}
    assert list(outputs) == ["predict", "predict_proba"]
    proba = outputs["predict_proba"]
    assert proba["datatype"] == "FP64"
    assert proba["shape"] == [3, 3]
    matrix = np.asarray(proba["data"]).reshape(3, 3)
    np.testing.assert_allclose(matrix.sum(axis=1), 1.0)
    assert list(matrix.argmax(axis=1)) == outputs["predict"]["data"]


def test_two_input_request(models: dict[str, Path]) -> None:
    # The signature file splits the four iris features into `sepal` and `petal`.
    with RuntimeProcess.serve(models["iris-two"], name="iris") as server:
        server.wait_ready()
        status, meta = server.get("/v2/models/iris")
        assert [i["name"] for i in meta["inputs"]] == ["sepal", "petal"]
        request = {
            "inputs": [
                {"name": "petal", "shape": [3, 2], "datatype": "FP64", "data": [r[2:] for r in ROWS]},
                {"name": "sepal", "shape": [3, 2], "datatype": "FP32", "data": [r[:2] for r in ROWS]},
            ]
        }
        status, body = server.post_json("/v2/models/iris/infer", request)
        assert status == 200, body
        assert body["outputs"][0]["data"] == _expected(models, ROWS)
        status, body = server.post_json("/v2/models/iris/infer", {"inputs": request["inputs"][:1]})
        assert status == 400
        assert body["error"] == "missing input 'sepal'; the model takes sepal, petal"


DATATYPE_CASES: list[tuple[str, list[Any], list[int]]] = [
    ("FP32", [0.5, -1.25, 3.0, 1e6], [2, 2]),
    ("FP64", [0.1, -2.5e-300, 1e300, 7.0], [4]),
    ("FP16", [0.5, -2.0], [2]),
    ("INT8", [-128, 127], [2]),
    ("INT16", [-32768, 32767], [1, 2]),
    ("INT32", [-2147483648, 2147483647, 0], [3]),
    ("INT64", [-9223372036854775808, 9223372036854775807], [2, 1]),
    ("UINT8", [0, 255], [2]),
    ("UINT16", [0, 65535], [2]),
    ("UINT32", [0, 4294967295], [2]),
    ("UINT64", [0, 18446744073709551615], [2]),
    ("BOOL", [True, False, True], [3]),
    ("BYTES", ["a", "héllo wörld", "", "日本"], [2, 2]),
]


@pytest.mark.parametrize(("datatype", "data", "shape"), DATATYPE_CASES, ids=[c[0] for c in DATATYPE_CASES])
def test_every_datatype_round_trips(
    echo_server: RuntimeProcess, datatype: str, data: list[Any], shape: list[int]
) -> None:
    request = {"inputs": [{"name": "x", "shape": shape, "datatype": datatype, "data": data}]}
    status, body = echo_server.post_json("/v2/models/echo/infer", request)
    assert status == 200, body
    [output] = body["outputs"]
    assert output["datatype"] == datatype
    assert output["shape"] == shape
    assert output["data"] == data


def test_nested_data_is_accepted(echo_server: RuntimeProcess) -> None:
    request = {"inputs": [{"name": "x", "shape": [2, 2], "datatype": "INT32", "data": [[1, 2], [3, 4]]}]}
    status, body = echo_server.post_json("/v2/models/echo/infer", request)
    assert status == 200
    assert body["outputs"][0]["data"] == [1, 2, 3, 4]


def _tensor(**overrides: Any) -> dict[str, Any]:
    return {"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": [1, 2, 3, 4], **overrides}]}


BAD_REQUESTS: list[tuple[str, Any, str]] = [
    ("malformed-json", b'{"inputs": [', "malformed JSON"),
    ("not-an-object", [1, 2], "the request body must be a JSON object"),
    ("no-inputs", {"inputs": []}, "'inputs' must be a non-empty array"),
    ("unknown-datatype", _tensor(datatype="FLOAT"), "input 'input-0': unknown datatype 'FLOAT'"),
    ("count-mismatch", _tensor(data=[1, 2, 3]), "input 'input-0': shape [1, 4] needs 4 values, 'data' has 3"),
    ("ragged", _tensor(data=[[1, 2], [3]]), "input 'input-0': 'data' is not a regular array"),
    ("strings-as-numbers", _tensor(data=["1", "2", "3", "4"]), "input 'input-0': datatype FP64 needs numbers"),
    ("float-as-int", _tensor(datatype="INT32", data=[1.5, 2, 3, 4]), "datatype INT32 needs integers"),
    ("int-range", _tensor(datatype="INT32", data=[2**31, 2, 3, 4]), "values outside the INT32 range"),
    ("negative-uint", _tensor(datatype="UINT8", data=[-1, 2, 3, 4]), "values outside the UINT8 range"),
    ("numbers-as-bool", _tensor(datatype="BOOL", data=[1, 0, 1, 0]), "datatype BOOL needs true/false"),
    ("wrong-datatype", _tensor(datatype="BYTES", data=["a", "b", "c", "d"]),
     "input 'input-0' has datatype BYTES; the model expects FP64"),
    ("wrong-shape", _tensor(shape=[2, 2]), "input 'input-0' has shape [2, 2]; the model expects [-1, 4]"),
    ("unknown-input", _tensor(name="features"), "unknown input 'features'; the model takes input-0"),
    ("unknown-output", {**_tensor(), "outputs": [{"name": "embedding"}]}, "unknown output 'embedding'"),
    ("duplicate-input", {"inputs": _tensor()["inputs"] * 2}, "input 'input-0' is given twice"),
    ("bad-shape", _tensor(shape="1x4"), "'shape' must be a list of integers"),
]


@pytest.mark.parametrize(("payload", "message"), [c[1:] for c in BAD_REQUESTS], ids=[c[0] for c in BAD_REQUESTS])
def test_bad_requests_are_400_with_a_message(iris_server: RuntimeProcess, payload: Any, message: str) -> None:
    status, body = iris_server.post_json("/v2/models/iris/infer", payload)
    assert status == 400, body
    assert message in body["error"]


def test_unknown_model_and_version_are_404(iris_server: RuntimeProcess) -> None:
    status, body = iris_server.post_json("/v2/models/nope/infer", iris_request())
    assert (status, body) == (404, {"error": "unknown model 'nope'; this server serves iris version v1"})
    status, body = iris_server.post_json("/v2/models/iris/versions/v9/infer", iris_request())
    assert status == 404
    assert body["error"] == "unknown version 'v9' of model 'iris'; this server serves iris version v1"
    assert iris_server.get("/v2/models/nope")[0] == 404
    assert iris_server.get("/nowhere") == (404, {"error": "no such endpoint: /nowhere"})
    assert iris_server.get("/v2/models/iris/explain") == (404, {"error": "no such endpoint: /v2/models/iris/explain"})


def test_wrong_method_is_405(iris_server: RuntimeProcess) -> None:
    status, body = iris_server.get("/v2/models/iris/infer")
    assert status == 405
    assert "POST" in body["error"]


def test_model_exception_is_500(models: dict[str, Path]) -> None:
    # error_ratio 0.5: calls 0, 2, 4 succeed, calls 1, 3, 5 raise inside predict().
    with RuntimeProcess.serve(models["failing"], name="flaky") as server:
        server.wait_ready()
        codes = []
        for _ in range(4):
            status, body = server.post_json("/v2/models/flaky/infer", iris_request())
            codes.append(status)
            if status == 500:
                assert body["error"].startswith("model predict failed: RuntimeError: injected failure")
        assert codes == [200, 500, 200, 500]
