"""Real model files for tests and benchmarks: a good iris model and deliberately bad ones.

The estimator classes live in this importable module, so `joblib.load` in a separate server
process finds them (given the repository root on its PYTHONPATH, see `tests.support`): that is
what lets the e2e tests run the real runtime with a model that fails for part of the requests, one
that is slow, one that cannot load, or one that loads only when a test says so. Every `write_*`
function takes a directory and returns the model file it wrote.

    from tests.support import testmodels
    testmodels.write_iris(tmp / "good")
    testmodels.write_failing(tmp / "bad", error_ratio=0.5)   # half the predict() calls raise
    testmodels.write_slow(tmp / "slow", delay_seconds=0.3)
    testmodels.write_shifted(tmp / "drift", shift_ratio=0.4)  # 40 % of the rows get another class
    testmodels.write_corrupt(tmp / "broken")                  # the ready endpoint says why
    testmodels.write_profile(tmp / "good")                    # its drift profile.json (returns that file)
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from modelpilot.server.loaders import SIGNATURE_FILE

MODEL_FILE = "model.joblib"


def iris() -> tuple[np.ndarray, np.ndarray]:
    """The iris data set, which scikit-learn ships (no download)."""
    from sklearn.datasets import load_iris

    data = load_iris()
    return np.asarray(data.data, dtype=np.float64), np.asarray(data.target)


def iris_estimator() -> Any:
    from sklearn.linear_model import LogisticRegression

    x, y = iris()
    return LogisticRegression(max_iter=1000).fit(x, y)


class _Wrapper:
    """Delegates to a fitted estimator; n_features_in_ and classes_ keep the derived signature."""

    def __init__(self, base: Any) -> None:
        self.base = base
        self.n_features_in_ = base.n_features_in_
        self.classes_ = base.classes_

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.base.predict_proba(x))


class FailingModel(_Wrapper):
    """Raises on exactly `error_ratio` of its predict() calls, spread evenly (call n fails when
    floor((n + 1) * ratio) > floor(n * ratio)), whatever the inputs; `fail_negative` also fails
    any call whose first feature has a negative value (a payload-driven failure)."""

    def __init__(self, base: Any, error_ratio: float, fail_negative: bool = False) -> None:
        super().__init__(base)
        if not 0.0 <= error_ratio <= 1.0:
            raise ValueError("error_ratio must be within [0, 1]")
        self.error_ratio = error_ratio
        self.fail_negative = fail_negative
        self._init_counter()

    def _init_counter(self) -> None:
        self._calls = 0
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        del state["_calls"], state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._init_counter()

    def predict(self, x: np.ndarray) -> np.ndarray:
        with self._lock:
            n = self._calls
            self._calls += 1
        if int((n + 1) * self.error_ratio) > int(n * self.error_ratio):
            raise RuntimeError(f"injected failure (call {n}, error ratio {self.error_ratio})")
        if self.fail_negative and np.any(np.asarray(x)[..., 0] < 0):
            raise ValueError("injected failure: negative first feature")
        return np.asarray(self.base.predict(x))


class ShiftedModel(_Wrapper):
    """Predicts another class than the base model for exactly the rows whose stable hash (BLAKE2b
    of the row's float64 bytes) falls below `shift_ratio` (hash mod 1000 < shift_ratio * 1000):
    the same row always gets the same answer, in any process. A shifted row gets `to_class` when
    that differs from the base prediction, else (base + 1) % 3. Never raises for a valid input."""

    def __init__(self, base: Any, shift_ratio: float, to_class: int | None = None) -> None:
        super().__init__(base)
        self.threshold = round(min(max(shift_ratio, 0.0), 1.0) * 1000)
        self.to_class = to_class

    def shifted(self, x: np.ndarray) -> np.ndarray:
        """Which rows of the feature matrix `x` this model shifts (none of rows that are not numbers)."""
        try:
            rows = np.ascontiguousarray(np.asarray(x, dtype=np.float64).reshape(len(x), -1))
        except (TypeError, ValueError):
            return np.zeros(len(x), dtype=bool)
        keys = [int.from_bytes(hashlib.blake2b(row.tobytes(), digest_size=8).digest(), "big") for row in rows]
        return np.asarray(keys, dtype=np.uint64) % 1000 < self.threshold

    def predict(self, x: np.ndarray) -> np.ndarray:
        base = np.asarray(self.base.predict(x))
        other = (base + 1) % 3
        if self.to_class is not None:
            other = np.where(base != self.to_class, self.to_class, other)
        return np.where(self.shifted(x), other, base).astype(base.dtype)


class SlowModel(_Wrapper):
    """Sleeps `delay_seconds` in every predict() call, then answers correctly. With `started_file`
    it creates that file when a call begins, and with `release_file` it also waits until that
    file exists: a test then knows a request is in flight and decides when it ends."""

    def __init__(
        self, base: Any, delay_seconds: float, started_file: str | None = None, release_file: str | None = None
    ) -> None:
        super().__init__(base)
        self.delay_seconds = delay_seconds
        self.started_file = started_file
        self.release_file = release_file

    def predict(self, x: np.ndarray) -> np.ndarray:
        if self.started_file:
            Path(self.started_file).touch()
        time.sleep(self.delay_seconds)
        if self.release_file:
            _wait_for(Path(self.release_file), timeout=120.0)
        return np.asarray(self.base.predict(x))


class PausingModel(_Wrapper):
    """Answers its first `after_calls` predict() calls at once; every later call creates
    `<started_file>.<pid>` and waits until `release_file` exists. A batch shard is then caught
    mid-way (its first batches written), in a known process, for as long as a test wants."""

    def __init__(self, base: Any, after_calls: int, started_file: str, release_file: str) -> None:
        super().__init__(base)
        self.after_calls = after_calls
        self.started_file = started_file
        self.release_file = release_file
        self.calls = 0

    def predict(self, x: np.ndarray) -> np.ndarray:
        self.calls += 1
        if self.calls > self.after_calls:
            Path(f"{self.started_file}.{os.getpid()}").touch()
            _wait_for(Path(self.release_file), timeout=300.0)
        return np.asarray(self.base.predict(x))


def _wait_for(path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.01)


class GatedModel(_Wrapper):
    """Loading blocks until the file `gate` exists (or `timeout` passes, then loading fails): a
    test sees the server not ready for as long as it wants, with no timing assumptions."""

    def __init__(self, base: Any, gate: str, timeout: float = 120.0) -> None:
        super().__init__(base)
        self.gate = gate
        self.timeout = timeout

    def __setstate__(self, state: dict[str, Any]) -> None:
        _wait_for(Path(state["gate"]), state["timeout"])
        self.__dict__.update(state)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.base.predict(x))


class EchoModel:
    """Returns its input: declares no inputs, so it takes any datatype and shape (protocol tests)."""

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x)


def _dump(estimator: Any, directory: Path) -> Path:
    import joblib

    directory.mkdir(parents=True, exist_ok=True)
    path = directory / MODEL_FILE
    joblib.dump(estimator, path)
    return path


def write_iris(directory: Path, *, two_inputs: bool = False) -> Path:
    """A LogisticRegression on iris (classes 0, 1, 2). `two_inputs` adds a signature that splits
    the four features into inputs `sepal` and `petal` ([-1, 2] FP64 each)."""
    path = _dump(iris_estimator(), directory)
    if two_inputs:
        signature = {
            "inputs": [
                {"name": "sepal", "datatype": "FP64", "shape": [-1, 2]},
                {"name": "petal", "datatype": "FP64", "shape": [-1, 2]},
            ]
        }
        (directory / SIGNATURE_FILE).write_text(json.dumps(signature))
    return path


def write_failing(directory: Path, error_ratio: float = 0.5, *, fail_negative: bool = False) -> Path:
    return _dump(FailingModel(iris_estimator(), error_ratio, fail_negative), directory)


def write_shifted(directory: Path, shift_ratio: float, to_class: int | None = None) -> Path:
    """The iris model with a prediction shift: `shift_ratio` of the rows (chosen by a hash of each
    row, see ShiftedModel) get another class; a canary with a shifted prediction distribution."""
    return _dump(ShiftedModel(iris_estimator(), shift_ratio, to_class), directory)


def write_slow(
    directory: Path, delay_seconds: float = 0.5, *, started_file: Path | None = None, release_file: Path | None = None
) -> Path:
    return _dump(
        SlowModel(
            iris_estimator(),
            delay_seconds,
            str(started_file) if started_file else None,
            str(release_file) if release_file else None,
        ),
        directory,
    )


def write_pausing(directory: Path, *, after_calls: int, started_file: Path, release_file: Path) -> Path:
    return _dump(PausingModel(iris_estimator(), after_calls, str(started_file), str(release_file)), directory)


def write_gated(directory: Path, gate: Path, timeout: float = 120.0) -> Path:
    return _dump(GatedModel(iris_estimator(), str(gate), timeout), directory)


def write_echo(directory: Path) -> Path:
    return _dump(EchoModel(), directory)


def write_corrupt(directory: Path) -> Path:
    """A model.joblib that is not a pickle at all: loading fails with a clear reason."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / MODEL_FILE
    path.write_bytes(b"this is not a joblib file\x00\x01\x02")
    return path


def write_xgboost(directory: Path, *, ubj: bool = False) -> Path:
    """An XGBoost multi-class booster on iris, saved in the native JSON (or UBJ) format."""
    import xgboost

    x, y = iris()
    booster = xgboost.train(
        {"objective": "multi:softprob", "num_class": 3, "max_depth": 3, "nthread": 1},
        xgboost.DMatrix(x, label=y),
        num_boost_round=10,
    )
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / ("model.ubj" if ubj else "model.json")
    booster.save_model(str(path))
    return path


def write_onnx(directory: Path) -> Path:
    """The iris LogisticRegression converted with skl2onnx (in the server extra): input
    `float_input` [-1, 4] FP32, outputs `label` INT64 and `probabilities` FP32."""
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    onx = to_onnx(
        iris_estimator(),
        initial_types=[("float_input", FloatTensorType([None, 4]))],
        options={"zipmap": False},
        target_opset=17,
    )
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "model.onnx"
    path.write_bytes(onx.SerializeToString())
    return path


def write_onnx_two_inputs(directory: Path) -> Path:
    """A hand-built ONNX graph with two inputs: `a` [-1, 2] FP32 and `b` [-1, 2] FP32, output
    `sum` = a + b (built with the onnx helper API, in the server extra)."""
    from onnx import TensorProto, helper

    a = helper.make_tensor_value_info("a", TensorProto.FLOAT, ["N", 2])
    b = helper.make_tensor_value_info("b", TensorProto.FLOAT, ["N", 2])
    out = helper.make_tensor_value_info("sum", TensorProto.FLOAT, ["N", 2])
    graph = helper.make_graph([helper.make_node("Add", ["a", "b"], ["sum"])], "add", [a, b], [out])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "model.onnx"
    path.write_bytes(model.SerializeToString())
    return path


IRIS_FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")


def write_profile(model_dir: Path, *, target: bool = True) -> Path:
    """The drift profile of the iris data, built with the real `build_profile` from the good iris
    model's predictions (whatever model `model_dir` holds: a failing or shifted canary is compared
    with the reference the good model gives), written as `profile.json` beside the model file
    (`model_dir` may be that file). With `target`, it records that model's accuracy too."""
    from modelpilot.monitoring.contract import PROFILE_FILE
    from modelpilot.monitoring.profile import build_profile
    from modelpilot.monitoring.profile import write_profile as write_profile_file

    folder = model_dir if model_dir.is_dir() else model_dir.parent
    x, y = iris()
    predictions = np.asarray(iris_estimator().predict(x))
    columns = {name: x[:, i] for i, name in enumerate(IRIS_FEATURES)}
    profile = build_profile(columns, predictions, y if target else None)
    return write_profile_file(profile, folder / PROFILE_FILE)
