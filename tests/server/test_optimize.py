"""`modelpilot optimize` end to end: real models converted with skl2onnx and onnxmltools, quantized
with onnxruntime, checked here independently with onnxruntime, loaded by the runtime's ONNX loader
and served; refusals and bad input give one line on stderr and a non-zero exit, never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import onnx
import onnxruntime
import pytest

from modelpilot.cli.main import main
from modelpilot.server.loaders import load_model, model_inputs
from tests.support import REPO_ROOT
from tests.support import optimize_models as om
from tests.support.testing import RuntimeProcess

TRAIN_ROWS = 2000
EXIT_REFUSED = 3
EXIT_USAGE = 2


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Models and validation files: an sklearn MLP, a fragile MLP, an XGBoost booster with named
    features (its validation file lists the columns in reverse order), an XGBoost regressor."""
    root = tmp_path_factory.mktemp("optimize")
    x, y = om.classification()
    train, valid = slice(0, TRAIN_ROWS), slice(TRAIN_ROWS, None)
    om.write_mlp(root / "mlp", x[train], y[train])
    om.write_table(root / "valid.csv", x[valid], y[valid])
    om.write_table(root / "valid-features.parquet", x[valid])
    om.write_fragile_mlp(root / "fragile", x[train], y[train])
    om.write_table(root / "fragile.csv", om.with_zero_column(x[valid]), y[valid])
    names = om.feature_names(x.shape[1], prefix="f_")
    om.write_xgboost(root / "xgb", x[train], y[train], names)
    reverse = list(reversed(range(x.shape[1])))
    om.write_table(root / "xgb-valid.parquet", x[valid][:, reverse], y[valid], [names[i] for i in reverse])
    x2, y2 = om.classification(rows=300, features=4, classes=2)
    om.write_xgboost(root / "xgb-two-class", x2, y2)  # multi:softprob with num_class 2
    xr, yr = om.regression()
    om.write_xgboost_regressor(root / "xgb-reg", xr[:1500], yr[:1500])
    om.write_table(root / "reg-valid.csv", xr[1500:], yr[1500:])
    return root


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["optimize", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _features(path: Path) -> tuple[np.ndarray, np.ndarray | None, list[str]]:
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pa_parquet

    table = pa_parquet.read_table(path) if path.suffix == ".parquet" else pa_csv.read_csv(path)
    names = [n for n in table.column_names if n != om.TARGET]
    x = np.column_stack([table.column(n).to_numpy() for n in names]).astype(np.float64)
    y = table.column(om.TARGET).to_numpy() if om.TARGET in table.column_names else None
    return x, y, names


def _onnx_labels(model: Path, x: np.ndarray) -> np.ndarray:
    session = onnxruntime.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    (name,) = [i.name for i in session.get_inputs()]
    return np.asarray(session.run(["label"], {name: x.astype(np.float32)})[0])


def _report(directory: Path) -> dict[str, Any]:
    return json.loads((directory / "report.json").read_text())


@pytest.fixture(scope="module")
def mlp_runs(root: Path) -> dict[str, tuple[int, Path]]:
    """The MLP optimized twice: float32 only, and int8 (no target: the drop is 1 - agreement)."""
    runs = {}
    for name, extra in (("float", []), ("int8", ["--quantize", "int8"])):
        out = root / f"out-mlp-{name}"
        code = main(["optimize", "--model", str(root / "mlp" / "model.joblib"), "--format", "sklearn", "--to", "onnx",
                     *extra, "--validation", str(root / "valid.csv"), "--target", om.TARGET,
                     "--max-accuracy-drop", "0.01", "--output", str(out)])  # fmt: skip
        runs[name] = (code, out)
    return runs


def test_sklearn_int8_agrees_and_is_smaller(root: Path, mlp_runs: dict[str, tuple[int, Path]]) -> None:
    for code, _ in mlp_runs.values():
        assert code == 0
    x, _, _ = _features(root / "valid.csv")
    original = joblib.load(root / "mlp" / "model.joblib").predict(x)
    sizes = {}
    for name, (_, out) in mlp_runs.items():
        labels = _onnx_labels(out / "model.onnx", x)
        assert np.mean(labels == original) >= 0.99, name  # checked here with onnxruntime, not from the report
        sizes[name] = (out / "model.onnx").stat().st_size
    original_size = (root / "mlp" / "model.joblib").stat().st_size
    assert sizes["int8"] < sizes["float"] < original_size
    int8 = onnx.load(str(mlp_runs["int8"][1] / "model.onnx"))
    assert any(t.data_type == onnx.TensorProto.INT8 for t in int8.graph.initializer)
    inputs = [(i.name, [d.dim_value or d.dim_param or None for d in i.type.tensor_type.shape.dim]) for i in
              int8.graph.input]  # fmt: skip
    assert len(inputs) == 1 and inputs[0][1][1] == x.shape[1]


def test_report_fields(root: Path, mlp_runs: dict[str, tuple[int, Path]]) -> None:
    out = mlp_runs["int8"][1]
    report = _report(out)
    assert report["status"] == "written" and report["refused"] == []
    assert report["format"] == {"in": "sklearn", "out": "onnx"}
    assert report["task"] == "classifier"
    assert report["quantization"]["requested"] == "int8" and report["quantization"]["applied"] is True
    assert report["quantization"]["quantized_tensors"] >= 3
    assert report["validation"]["rows"] == 1000 and report["validation"]["target"] == om.TARGET
    assert report["validation"]["drop_basis"] == "target"
    assert report["original"]["bytes"] == (root / "mlp" / "model.joblib").stat().st_size
    assert report["output"]["bytes"] == (out / "model.onnx").stat().st_size
    assert report["output"]["file"] == str(out / "model.onnx") and report["output"]["model"] == "int8"
    assert [c["model"] for c in report["candidates"]] == ["float32", "int8"]
    assert report["candidates"][0]["bytes"] == (mlp_runs["float"][1] / "model.onnx").stat().st_size
    assert report["latency_unit"] == "ms"
    for entry in (report["original"], report["output"], *report["candidates"]):
        for part in ("per_row", "per_batch"):
            figures = entry["latency"][part]
            assert 0 < figures["median"] <= figures["p99"] and figures["samples"] > 0
    x, y, _ = _features(root / "valid.csv")
    labels = _onnx_labels(out / "model.onnx", x)
    original = joblib.load(root / "mlp" / "model.joblib").predict(x)
    assert report["output"]["agreement"] == pytest.approx(np.mean(labels == original), abs=1e-4)
    assert report["output"]["accuracy"] == pytest.approx(np.mean(labels == y), abs=1e-4)
    assert report["original"]["accuracy"] == pytest.approx(np.mean(original == y), abs=1e-4)


def test_the_runtime_loads_and_serves_the_output(root: Path, mlp_runs: dict[str, tuple[int, Path]]) -> None:
    out = mlp_runs["int8"][1]
    x, _, _ = _features(root / "valid.csv")
    model = load_model(out / "model.onnx")  # the runtime's loader, format from the file name
    assert model.platform == "onnxruntime"
    assert [(s.name, s.datatype, s.shape) for s in model.inputs] == [("float_input", "FP32", (-1, x.shape[1]))]
    result = model.predict(model_inputs(model, x[:1]), model.default_outputs)
    assert set(result) == {"label", "probabilities"}
    assert result["label"].tolist() == _onnx_labels(out / "model.onnx", x[:1]).tolist()
    with RuntimeProcess.serve(out, name="edge") as server:
        server.wait_ready()
        request = {"inputs": [{"name": "float_input", "shape": [2, x.shape[1]], "datatype": "FP32",
                               "data": x[:2].ravel().tolist()}]}  # fmt: skip
        status, body = server.post_json("/v2/models/edge/infer", request)
        assert status == 200, body
        outputs = {o["name"]: o for o in body["outputs"]}
        assert outputs["label"]["data"] == _onnx_labels(out / "model.onnx", x[:2]).tolist()


def test_xgboost_converts_and_int8_says_it_does_not_apply(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import xgboost

    out = root / "out-xgb"
    code, printed, err = _run(capsys, "--model", str(root / "xgb"), "--format", "xgboost", "--quantize", "int8",
                              "--validation", str(root / "xgb-valid.parquet"), "--target", om.TARGET,
                              "--output", str(out))  # fmt: skip
    assert code == 0, err
    assert "no weight tensors that dynamic int8 quantization applies to" in err
    assert "xgboost -> onnx (int8, not applied)" in printed
    report = _report(out)
    assert report["quantization"]["applied"] is False and report["quantization"]["quantized_tensors"] == 0
    assert [c["model"] for c in report["candidates"]] == ["float32"]
    # The booster's feature names pick the columns in its order, whatever the file's order.
    x, _, names = _features(root / "xgb-valid.parquet")
    booster = xgboost.Booster()
    booster.load_model(str(root / "xgb" / "model.json"))
    ordered = x[:, [names.index(n) for n in booster.feature_names]]
    original = booster.inplace_predict(ordered.astype(np.float32)).argmax(axis=1)
    assert np.mean(_onnx_labels(out / "model.onnx", ordered) == original) >= 0.99
    # Smaller than the native JSON, but not thanks to int8: the tree ensemble has nothing to quantize.
    assert (out / "model.onnx").stat().st_size < (root / "xgb" / "model.json").stat().st_size
    assert report["output"]["model"] == "float32"


def test_xgboost_regressor_within_tolerance(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = root / "out-xgb-reg"
    code, _, err = _run(capsys, "--model", str(root / "xgb-reg" / "model.json"), "--format", "xgboost",
                        "--validation", str(root / "reg-valid.csv"), "--target", om.TARGET,
                        "--output", str(out))  # fmt: skip
    assert code == 0, err
    report = _report(out)
    assert report["task"] == "regressor" and report["validation"]["drop_basis"] == "agreement"
    assert report["validation"]["regression_rtol"] == 1e-3
    assert report["output"]["agreement"] >= 0.99
    assert "mean_absolute_error" in report["original"] and "mean_absolute_error" in report["output"]


@pytest.mark.parametrize(("case", "note"), [
    ("iris-lr", "no weight tensors that dynamic int8 quantization applies to"),  # LinearClassifier: no weights
    ("iris-tiny-mlp", "is not smaller than the float32 one"),  # 4 x 4 x 3 weights: the nodes cost more
])  # fmt: skip
def test_int8_that_does_not_pay_off_is_reported(tmp_path: Path, case: str, note: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    from sklearn.neural_network import MLPClassifier

    from tests.support import testmodels

    x, y = testmodels.iris()
    if case == "iris-lr":
        testmodels.write_iris(tmp_path / "model")
    else:
        (tmp_path / "model").mkdir()
        tiny = MLPClassifier(hidden_layer_sizes=(4,), max_iter=3000, random_state=0).fit(x, y)
        joblib.dump(tiny, tmp_path / "model" / "model.joblib")
    om.write_table(tmp_path / "iris.csv", x, y, testmodels.IRIS_FEATURES)
    out = tmp_path / "out"
    code, _, err = _run(capsys, "--model", str(tmp_path / "model"), "--format", "sklearn", "--quantize", "int8",
                        "--validation", str(tmp_path / "iris.csv"), "--target", om.TARGET,
                        "--max-accuracy-drop", "0.05", "--output", str(out))  # fmt: skip
    assert code == 0, err
    assert note in err
    report = _report(out)
    assert note in report["quantization"]["note"]
    sizes = {c["model"]: c["bytes"] for c in report["candidates"]}
    assert sizes.get("int8", sizes["float32"]) >= sizes["float32"]  # said, not hidden


def test_a_drop_over_the_limit_is_refused(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = root / "out-fragile"
    args = ["--model", str(root / "fragile"), "--format", "sklearn", "--validation", str(root / "fragile.csv"),
            "--target", om.TARGET, "--max-accuracy-drop", "0.01", "--output", str(out)]  # fmt: skip
    code, _, err = _run(capsys, *args, "--quantize", "int8")
    assert code == EXIT_REFUSED
    assert "int8 model: accuracy drop" in err and "is above --max-accuracy-drop 0.01; nothing written" in err
    assert "Traceback" not in err
    assert not (out / "model.onnx").exists()
    report = _report(out)
    assert report["status"] == "refused" and report["output"]["file"] is None
    assert report["output"]["accuracy_drop"] > 0.01 and len(report["refused"]) == 1
    # The float32 conversion of the same model is fine: the refusal is the quantization's.
    code, _, err = _run(capsys, *args, "--force")
    assert code == 0, err
    assert (out / "model.onnx").is_file()
    # Refused again over a written model: --force removes it rather than leave an unvalidated model.
    code, _, _ = _run(capsys, *args, "--quantize", "int8", "--force")
    assert code == EXIT_REFUSED and not (out / "model.onnx").exists()


def test_a_zero_limit_refuses_any_disagreement(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--max-accuracy-drop 0 without a target: written only when int8 agrees on every row."""
    out = root / "out-zero"
    code, _, err = _run(capsys, "--model", str(root / "mlp"), "--format", "sklearn", "--quantize", "int8",
                        "--validation", str(root / "valid-features.parquet"), "--max-accuracy-drop", "0",
                        "--output", str(out))  # fmt: skip
    report = _report(out)
    agreement = report["output"]["agreement"]
    if agreement < 1.0:
        assert code == EXIT_REFUSED and "is above --max-accuracy-drop 0; nothing written" in err
        assert not (out / "model.onnx").exists()
    else:
        assert code == 0 and (out / "model.onnx").is_file()
    assert report["validation"]["drop_basis"] == "agreement" and report["validation"]["target"] is None


def test_an_existing_output_needs_force(root: Path, mlp_runs: dict[str, tuple[int, Path]],
                                        capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    out = mlp_runs["float"][1]
    before = (out / "model.onnx").read_bytes()
    code, _, err = _run(capsys, "--model", str(root / "mlp"), "--format", "sklearn", "--validation",
                        str(root / "valid.csv"), "--target", om.TARGET, "--output", str(out))  # fmt: skip
    assert code == EXIT_USAGE and "already holds model.onnx and report.json; pass --force" in err
    assert (out / "model.onnx").read_bytes() == before


def _bad_inputs(root: Path) -> dict[str, tuple[list[str], str]]:
    mlp, valid = str(root / "mlp"), str(root / "valid.csv")
    return {
        "missing model": (["--model", str(root / "nope.joblib"), "--format", "sklearn", "--validation", valid],
                          "does not exist"),
        "unknown format": (["--model", mlp, "--format", "tensorflow", "--validation", valid],
                           "unknown format 'tensorflow'; optimize converts sklearn or xgboost models"),
        "onnx is not an input": (["--model", mlp, "--format", "onnx", "--validation", valid], "unknown format"),
        "wrong format for the file": (["--model", str(root / "mlp" / "model.joblib"), "--format", "xgboost",
                                       "--validation", valid], "cannot load xgboost model model.joblib"),
        "too many columns": (["--model", mlp, "--format", "sklearn", "--validation", str(root / "fragile.csv"),
                              "--target", om.TARGET], "the model takes 24 feature columns; the data has 25"),
        "too few columns": (["--model", str(root / "fragile"), "--format", "sklearn", "--validation", valid,
                             "--target", om.TARGET], "the model takes 25 feature columns; the data has 24"),
        "label not named": (["--model", mlp, "--format", "sklearn", "--validation", valid],
                            "the data has 25 (is one of them the label? pass --target)"),
        "named columns missing": (["--model", str(root / "xgb"), "--format", "xgboost", "--validation", valid,
                                   "--target", om.TARGET], "the data lacks the model's feature columns 'f_0'"),
        "2-class multi:softprob": (["--model", str(root / "xgb-two-class"), "--format", "xgboost", "--validation",
                                    valid], "2-class 'multi:softprob' boosters wrong; train it with binary:logistic"),
        "unknown target": (["--model", mlp, "--format", "sklearn", "--validation", valid, "--target", "y"],
                           "no target column 'y'"),
        "missing data": (["--model", mlp, "--format", "sklearn", "--validation", str(root / "none.csv")],
                         "does not exist"),
        "unknown data format": (["--model", mlp, "--format", "sklearn", "--validation", str(root / "mlp")],
                                "name it .csv or .parquet"),
        "unknown quantization": (["--model", mlp, "--format", "sklearn", "--quantize", "int4", "--validation", valid],
                                 "unknown quantization 'int4'"),
        "other output format": (["--model", mlp, "--format", "sklearn", "--to", "tflite", "--validation", valid],
                                "optimize writes onnx only"),
        "limit out of range": (["--model", mlp, "--format", "sklearn", "--validation", valid,
                                "--max-accuracy-drop", "2"], "is not between 0 and 1"),
    }  # fmt: skip


@pytest.mark.parametrize("case", list(_bad_inputs(Path("."))))
def test_bad_input_is_one_clear_line(root: Path, tmp_path: Path, case: str,
                                     capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    args, message = _bad_inputs(root)[case]
    out = tmp_path / "out"
    code, _, err = _run(capsys, *args, "--output", str(out))
    assert code == EXIT_USAGE, err
    assert message in err
    assert err.startswith("modelpilot optimize: ") and err.count("\n") == 1, err
    assert not out.exists()


def test_non_numeric_columns_are_refused(root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    x, y = om.classification(rows=20)
    data = tmp_path / "text.csv"
    om.write_table(data, x, y)
    text = data.read_text().splitlines()
    text[1] = "abc" + text[1][text[1].index(",") :]  # x0 of the first row is text: the column is strings
    data.write_text("\n".join(text) + "\n")
    code, _, err = _run(capsys, "--model", str(root / "mlp"), "--format", "sklearn", "--validation", str(data),
                        "--target", om.TARGET, "--output", str(tmp_path / "out"))  # fmt: skip
    assert code == EXIT_USAGE and "column 'x0' is not numeric" in err


def test_the_installed_command(root: Path, tmp_path: Path) -> None:
    """As a process: the entry point's exit code and stderr, no traceback."""
    command = [sys.executable, "-m", "modelpilot.cli.main", "optimize", "--model", str(root / "mlp"), "--format",
               "sklearn", "--validation", str(root / "fragile.csv"), "--output", str(tmp_path / "out")]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT, timeout=300)
    assert done.returncode == EXIT_USAGE
    assert done.stderr.startswith("modelpilot optimize: the model takes 24 feature columns")
    assert "Traceback" not in done.stderr
    help_text = subprocess.run([*command[:4], "--help"], capture_output=True, text=True, timeout=120).stdout
    assert "--max-accuracy-drop" in help_text and "--quantize" in help_text
