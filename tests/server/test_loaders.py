"""XGBoost (native JSON/UBJ) and ONNX loaders, served over HTTP; model discovery and load errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from modelpilot.server.loaders import ModelLoadError, find_model_file, load_model
from tests.support import testmodels
from tests.support.testing import RuntimeProcess

ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]


def _request(name: str, datatype: str = "FP32") -> dict[str, object]:
    return {"inputs": [{"name": name, "shape": [3, 4], "datatype": datatype, "data": ROWS}]}


@pytest.mark.parametrize("kind", ["xgboost-json", "xgboost-ubj"])
def test_xgboost_served(models: dict[str, Path], kind: str) -> None:
    import xgboost

    file = next(models[kind].glob("model.*"))
    booster = xgboost.Booster()
    booster.load_model(str(file))
    expected = booster.inplace_predict(np.asarray(ROWS, dtype=np.float32))
    with RuntimeProcess.serve(models[kind], name="xgb", extra_args=["--format", "xgboost"]) as server:
        server.wait_ready()
        status, meta = server.get("/v2/models/xgb")
        assert meta["platform"] == "xgboost"
        assert meta["inputs"] == [{"name": "input-0", "datatype": "FP32", "shape": [-1, 4]}]
        assert meta["outputs"] == [{"name": "predict", "datatype": "FP32", "shape": [-1, 3]}]
        status, body = server.post_json("/v2/models/xgb/infer", _request("input-0", "FP64"))
        assert status == 200, body
        [output] = body["outputs"]
        assert output["shape"] == [3, 3]
        np.testing.assert_allclose(np.asarray(output["data"]).reshape(3, 3), expected, rtol=1e-6)
        assert list(np.asarray(output["data"]).reshape(3, 3).argmax(axis=1)) == [0, 2, 1]


def test_onnx_served(models: dict[str, Path]) -> None:
    with RuntimeProcess.serve(models["onnx"], name="iris-onnx") as server:  # format from the file name
        server.wait_ready()
        status, meta = server.get("/v2/models/iris-onnx")
        assert meta["platform"] == "onnxruntime"
        assert meta["inputs"] == [{"name": "float_input", "datatype": "FP32", "shape": [-1, 4]}]
        status, body = server.post_json("/v2/models/iris-onnx/infer", _request("float_input"))
        assert status == 200, body
        outputs = {o["name"]: o for o in body["outputs"]}
        assert outputs["label"] == {"name": "label", "datatype": "INT64", "shape": [3], "data": [0, 2, 1]}
        assert outputs["probabilities"]["shape"] == [3, 3]
        status, body = server.post_json(
            "/v2/models/iris-onnx/infer", {**_request("float_input"), "outputs": [{"name": "label"}]}
        )
        assert [o["name"] for o in body["outputs"]] == ["label"]
        status, body = server.post_json("/v2/models/iris-onnx/infer", _request("float_input", "INT64"))
        assert status == 400
        assert "datatype INT64 needs integers" in body["error"]


def test_onnx_two_inputs(models: dict[str, Path]) -> None:
    model = load_model(models["onnx-two"])
    assert [s.name for s in model.inputs] == ["a", "b"]
    with RuntimeProcess.serve(models["onnx-two"], name="add", extra_args=["--format", "onnx"]) as server:
        server.wait_ready()
        request = {
            "inputs": [
                {"name": "b", "shape": [2, 2], "datatype": "FP32", "data": [10, 20, 30, 40]},
                {"name": "a", "shape": [2, 2], "datatype": "FP32", "data": [1, 2, 3, 4]},
            ]
        }
        status, body = server.post_json("/v2/models/add/infer", request)
        assert status == 200, body
        assert body["outputs"] == [{"name": "sum", "datatype": "FP32", "shape": [2, 2], "data": [11, 22, 33, 44]}]


def test_model_discovery(tmp_path: Path, models: dict[str, Path]) -> None:
    # A file path, a directory, and a directory holding one folder (as archives unpack).
    iris = models["iris"] / testmodels.MODEL_FILE
    assert find_model_file(iris, None) == (iris, "sklearn")
    assert find_model_file(models["iris"], "sklearn") == (iris, "sklearn")
    assert find_model_file(models["onnx"], None)[1] == "onnx"
    nested = tmp_path / "outer"
    testmodels.write_iris(nested / "inner")
    assert find_model_file(nested, None)[0] == nested / "inner" / testmodels.MODEL_FILE


def test_load_errors(tmp_path: Path, models: dict[str, Path]) -> None:
    with pytest.raises(ModelLoadError, match="no onnx model file"):
        load_model(models["iris"], "onnx")
    with pytest.raises(ModelLoadError, match="unsupported format 'custom'"):
        load_model(models["iris"], "custom")
    two = tmp_path / "two"
    testmodels.write_iris(two)
    (two / "other.joblib").write_bytes((two / testmodels.MODEL_FILE).read_bytes())
    assert load_model(two).platform == "sklearn"  # model.<ext> wins
    (two / testmodels.MODEL_FILE).unlink()
    (two / "third.pkl").write_bytes(b"x")
    with pytest.raises(ModelLoadError, match="several model files"):
        load_model(two)
    bad_xgb = tmp_path / "bad-xgb"
    bad_xgb.mkdir()
    (bad_xgb / "model.json").write_text('{"not": "a booster"}')
    with pytest.raises(ModelLoadError, match=r"cannot load xgboost model model\.json"):
        load_model(bad_xgb)
    bad_onnx = tmp_path / "bad-onnx"
    bad_onnx.mkdir()
    (bad_onnx / "model.onnx").write_bytes(b"\x00garbage")
    with pytest.raises(ModelLoadError, match=r"cannot load onnx model model\.onnx"):
        load_model(bad_onnx)


def _iris_like(rows: int, seed: int = 3) -> np.ndarray:
    """Random rows within the iris features' ranges."""
    return np.random.default_rng(seed).uniform([4.3, 2.0, 1.0, 0.1], [7.9, 4.4, 6.9, 2.5], size=(rows, 4))


@pytest.mark.parametrize(("ratio", "low", "high"), [(0.0, 0.0, 0.0), (0.4, 0.36, 0.44), (1.0, 1.0, 1.0)])
def test_shifted_model_changes_that_share_of_rows(
    tmp_path: Path, models: dict[str, Path], ratio: float, low: float, high: float
) -> None:
    x = _iris_like(2000)
    base = load_model(models["iris"]).predict({"input-0": x}, ["predict"])["predict"]
    shifted_model = load_model(testmodels.write_shifted(tmp_path / "shifted", shift_ratio=ratio))
    shifted = shifted_model.predict({"input-0": x}, ["predict"])["predict"]
    assert shifted.dtype == base.dtype
    assert low <= float(np.mean(shifted != base)) <= high
    changed = shifted != base
    assert np.array_equal(shifted[changed], (base[changed] + 1) % 3)
    # The same rows, in any order or batch, get the same answers.
    order = np.random.default_rng(4).permutation(len(x))
    again = shifted_model.predict({"input-0": x[order]}, ["predict"])["predict"]
    assert np.array_equal(again, shifted[order])


def test_shifted_model_to_a_given_class(tmp_path: Path, models: dict[str, Path]) -> None:
    x = _iris_like(1000)
    base = load_model(models["iris"]).predict({"input-0": x}, ["predict"])["predict"]
    model = load_model(testmodels.write_shifted(tmp_path / "to-2", shift_ratio=0.4, to_class=2))
    shifted = model.predict({"input-0": x}, ["predict"])["predict"]
    changed = shifted != base
    assert 0.35 <= float(np.mean(changed)) <= 0.45
    # Rows shifted off class 2 cannot go to 2: they take (2 + 1) % 3 = 0.
    assert np.array_equal(shifted[changed], np.where(base[changed] == 2, 0, 2))
