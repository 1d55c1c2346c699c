"""`modelpilot profile`: CSV and Parquet through pyarrow and fsspec, the output beside the model, and
the one-line errors (exit code 2)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import fsspec
import joblib
import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pa_parquet
import pytest

from modelpilot.cli.main import main
from modelpilot.monitoring.contract import PROFILE_FILE
from modelpilot.monitoring.profile import load_profile
from modelpilot.server.loaders import SIGNATURE_FILE
from tests.support import REPO_ROOT, testmodels

COLUMNS = [*testmodels.IRIS_FEATURES, "species"]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """iris.csv and iris.parquet (four features, then the species), and the iris model in model/."""
    root = tmp_path_factory.mktemp("profile-cli")
    x, y = testmodels.iris()
    table = pa.table({name: x[:, i] for i, name in enumerate(testmodels.IRIS_FEATURES)} | {"species": y})
    pa_csv.write_csv(table, root / "iris.csv")
    pa_parquet.write_table(table, root / "iris.parquet")
    testmodels.write_iris(root / "model")
    return root


def _expected(tmp_path: Path, target: bool = True) -> dict[str, object]:
    """The profile testmodels.write_profile builds from the same data in memory."""
    testmodels.write_iris(tmp_path / "reference")
    return json.loads(testmodels.write_profile(tmp_path / "reference", target=target).read_text())


@pytest.mark.parametrize("name", ["iris.csv", "iris.parquet"])
def test_profile_from_a_file(data: Path, tmp_path: Path, name: str, capsys: pytest.CaptureFixture[str]) -> None:
    output = tmp_path / "out" / PROFILE_FILE
    code = main(["profile", "--data", str(data / name), "--model", str(data / "model"), "--target", "species",
                 "--output", str(output)])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    assert json.loads(output.read_text()) == _expected(tmp_path)
    printed = capsys.readouterr().out
    assert "150 rows, 4 features (4 numeric, 0 categorical), predictions: classes (3 kept)" in printed
    assert "accuracy on the data: 0.9733" in printed


def test_default_output_is_beside_the_model(data: Path, tmp_path: Path) -> None:
    testmodels.write_iris(tmp_path / "dir")
    assert main(["profile", "--data", str(data / "iris.csv"), "--model", str(tmp_path / "dir"),
                 "--features", ",".join(testmodels.IRIS_FEATURES)]) == 0  # fmt: skip
    assert load_profile(tmp_path / "dir" / PROFILE_FILE).target is None  # no --target: no quality
    testmodels.write_iris(tmp_path / "file")
    model_file = tmp_path / "file" / testmodels.MODEL_FILE
    assert main(["profile", "--data", str(data / "iris.parquet"), "--model", str(model_file), "--target",
                 "species"]) == 0  # fmt: skip
    assert (tmp_path / "file" / PROFILE_FILE).is_file()


def test_a_url_and_compression_through_fsspec(data: Path, tmp_path: Path) -> None:
    with fsspec.open("memory://bucket/train/iris.csv.gz", "wb", compression="gzip") as stream:
        stream.write((data / "iris.csv").read_bytes())
    output = tmp_path / PROFILE_FILE
    assert main(["profile", "--data", "memory://bucket/train/iris.csv.gz", "--model", str(data / "model"),
                 "--target", "species", "--output", str(output)]) == 0  # fmt: skip
    assert json.loads(output.read_text()) == _expected(tmp_path)


def test_text_columns_are_categorical(tmp_path: Path) -> None:
    # A pipeline that one-hot encodes a text column; its signature declares BYTES inputs.
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    x, y = testmodels.iris()
    colors = np.asarray(["red", "green", "blue", "red"], dtype=object)[np.arange(150) % 4]
    features = np.column_stack([x, colors]).astype(object)
    encode = ColumnTransformer([("numbers", "passthrough", [0, 1, 2, 3]),
                                ("color", OneHotEncoder(handle_unknown="ignore"), [4])])  # fmt: skip
    model = make_pipeline(encode, LogisticRegression(max_iter=1000)).fit(features, y)
    (tmp_path / "model").mkdir()
    joblib.dump(model, tmp_path / "model" / testmodels.MODEL_FILE)
    signature = {"inputs": [{"name": "input-0", "datatype": "BYTES", "shape": [-1, 5]}]}
    (tmp_path / "model" / SIGNATURE_FILE).write_text(json.dumps(signature))
    table = pa.table({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "d": x[:, 3], "color": colors, "species": y})
    pa_parquet.write_table(table, tmp_path / "colored.parquet")
    assert main(["profile", "--data", str(tmp_path / "colored.parquet"), "--model", str(tmp_path / "model"),
                 "--target", "species", "--bins", "4"]) == 0  # fmt: skip
    profile = load_profile(tmp_path / "model" / PROFILE_FILE)
    assert [f.kind for f in profile.features] == ["numeric"] * 4 + ["categorical"]
    assert [len(f.bins) for f in profile.features[:4]] == [5, 5, 5, 5]  # 3 inner quartiles, the tail, missing
    color = profile.features[4]
    # Rows 0..149 by i % 4: red for 0 and 3 (38 + 37 rows), green for 1 (38), blue for 2 (37).
    assert color.bins == ("red", "green", "blue", "other", "missing")
    assert color.reference == pytest.approx((75 / 150, 38 / 150, 37 / 150, 0.0, 0.0))
    assert profile.target is not None and profile.target.value > 0.9


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--data", "{data}/missing.csv"], "data file {data}/missing.csv does not exist"),
        (["--data", "{data}/iris.json"], "cannot tell the format of {data}/iris.json"),
        (["--target", "label"], "no column 'label' in the data"),
        (["--features", "sepal_length,colour"], "no column 'colour' in the data"),
        (["--features", "sepal_length,sepal_width"], "the model takes 4 feature columns; the data gives 2"),
        (["--model", "{data}/nowhere"], "model {data}/nowhere does not exist"),
        (["--bins", "0"], "--bins and --top-k must be at least 1"),
    ],
    ids=["missing-file", "unknown-format", "unknown-target", "unknown-feature", "feature-count", "no-model", "bins"],
)
def test_errors_are_one_line_with_exit_code_2(
    data: Path, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    args = {"--data": str(data / "iris.csv"), "--model": str(data / "model"), "--target": "species"}
    for flag, value in zip(argv[::2], argv[1::2], strict=True):
        args[flag] = value.format(data=data)
    assert main(["profile", *[part for pair in args.items() for part in pair]]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"modelpilot profile: {message.format(data=data)}")
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not (data / "model" / PROFILE_FILE).exists()


def test_the_console_script(data: Path, tmp_path: Path) -> None:
    output = tmp_path / PROFILE_FILE
    done = subprocess.run(
        [sys.executable, "-m", "modelpilot.cli.main", "profile", "--data", str(data / "iris.csv"), "--model",
         str(data / "model"), "--output", str(output)],
        capture_output=True, text=True, timeout=120, cwd=REPO_ROOT,
    )  # fmt: skip
    # Without --target every column is a feature: five for a model that takes four.
    assert done.returncode == 2
    assert done.stderr == "modelpilot profile: the model takes 4 feature columns; the data gives 5\n"
