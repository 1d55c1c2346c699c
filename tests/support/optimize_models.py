"""Models and validation files for `modelpilot optimize` tests (tests/server/test_optimize.py).

Small, deterministic, trained in a second or two, written as the runtime loads them:

    x, y = optimize_models.classification()
    optimize_models.write_mlp(tmp / "mlp", x, y)             # sklearn Pipeline(StandardScaler, MLPClassifier)
    optimize_models.write_fragile_mlp(tmp / "fragile", x, y)  # int8 quantization wrecks it (see there)
    optimize_models.write_xgboost(tmp / "xgb", x, y)          # multi:softprob booster with feature names
    optimize_models.write_table(tmp / "val.csv", x, y)        # x0..xN and "label"; .csv or .parquet
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

TARGET = "label"


def feature_names(count: int, prefix: str = "x") -> list[str]:
    return [f"{prefix}{i}" for i in range(count)]


def classification(rows: int = 3000, features: int = 24, classes: int = 3,
                   seed: int = 0) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Well separated classes, so few rows sit on a decision boundary a float32 or int8 rounding
    could tip over."""
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=rows, n_features=features, n_informative=features // 2, n_redundant=2,
                               n_classes=classes, class_sep=2.0, random_state=seed)  # fmt: skip
    return np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.int64)


def regression(rows: int = 2000, features: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import make_regression

    x, y = make_regression(n_samples=rows, n_features=features, noise=5.0, random_state=seed)
    return np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)


def _dump(estimator: Any, directory: Path) -> Path:
    import joblib

    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "model.joblib"
    joblib.dump(estimator, path)
    return path


def mlp(x: np.ndarray, y: np.ndarray, hidden: Sequence[int] = (64, 32)) -> Any:
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    classifier = MLPClassifier(hidden_layer_sizes=tuple(hidden), max_iter=400, random_state=0)
    return make_pipeline(StandardScaler(), classifier).fit(x, y)


def write_mlp(directory: Path, x: np.ndarray, y: np.ndarray) -> Path:
    """A scaled MLP classifier: matrix products, so int8 dynamic quantization shrinks it."""
    return _dump(mlp(x, y), directory)


def fragile_mlp(x: np.ndarray, y: np.ndarray) -> Any:
    """An MLP over the features of `x` plus one more column that is always 0 in real data, whose
    first-layer weights are set 10,000 times larger than any other weight. The float model never
    sees them (they multiply 0), but int8 quantization scales a whole weight tensor by its largest
    value: every other first-layer weight rounds to 0 and the int8 model predicts one class."""
    from sklearn.neural_network import MLPClassifier

    padded = np.column_stack([x, np.zeros(len(x))])
    model = MLPClassifier(hidden_layer_sizes=(32,), max_iter=400, random_state=0).fit(padded, y)
    first = model.coefs_[0]
    first[-1, :] = 10_000.0 * float(np.abs(first).max())
    return model


def write_fragile_mlp(directory: Path, x: np.ndarray, y: np.ndarray) -> Path:
    """See fragile_mlp: validate it with `with_zero_column(x)`."""
    return _dump(fragile_mlp(x, y), directory)


def with_zero_column(x: np.ndarray) -> np.ndarray:
    return np.column_stack([x, np.zeros(len(x))])


def write_xgboost(directory: Path, x: np.ndarray, y: np.ndarray, names: Sequence[str] | None = None,
                  *, ubj: bool = False) -> Path:  # fmt: skip
    """A multi:softprob booster (30 rounds, depth 4) saved in the native JSON (or UBJ) format;
    with `names`, the booster knows its feature names (as when trained on a DataFrame)."""
    import xgboost

    classes = int(y.max()) + 1
    booster = xgboost.train(
        {"objective": "multi:softprob", "num_class": classes, "max_depth": 4, "nthread": 1, "seed": 0},
        xgboost.DMatrix(x, label=y, feature_names=list(names) if names else None),
        num_boost_round=30,
    )
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / ("model.ubj" if ubj else "model.json")
    booster.save_model(str(path))
    return path


def write_xgboost_regressor(directory: Path, x: np.ndarray, y: np.ndarray) -> Path:
    import xgboost

    booster = xgboost.train({"objective": "reg:squarederror", "max_depth": 4, "nthread": 1, "seed": 0},
                            xgboost.DMatrix(x, label=y), num_boost_round=30)  # fmt: skip
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "model.json"
    booster.save_model(str(path))
    return path


def write_table(path: Path, x: np.ndarray, y: np.ndarray | None = None, names: Sequence[str] | None = None,
                target: str = TARGET) -> Path:  # fmt: skip
    """Features (named `names`, default x0..xN) and the label column as CSV or Parquet (by suffix)."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pa_parquet

    names = list(names) if names is not None else feature_names(x.shape[1])
    columns: dict[str, Any] = {name: x[:, i] for i, name in enumerate(names)}
    if y is not None:
        columns[target] = y
    table = pa.table(columns)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        pa_parquet.write_table(table, path)
    else:
        pa_csv.write_csv(table, path)
    return path
