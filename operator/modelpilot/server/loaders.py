"""Model loaders: scikit-learn (joblib), XGBoost (native JSON/UBJ) and ONNX (onnxruntime).

Each loader returns a `Model`: its declared inputs and outputs (for metadata and request checks)
and a `predict(inputs, outputs)` over numpy arrays. Framework imports are lazy, so an image
without onnxruntime still serves sklearn models.
"""

from __future__ import annotations

import json
import logging
import math
import warnings
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from modelpilot.monitoring.contract import PROFILE_FILE
from modelpilot.server.protocol import DATATYPES, ProtocolError, TensorSpec

FORMATS = ("sklearn", "xgboost", "onnx")
EXTENSIONS: dict[str, tuple[str, ...]] = {
    "sklearn": (".joblib", ".pkl", ".pickle"),
    "xgboost": (".json", ".ubj"),
    "onnx": (".onnx",),
}
# Optional file beside the model that declares its inputs (names, datatypes, shapes); it is what
# gives an sklearn or XGBoost model named inputs, e.g. two feature groups in one request.
SIGNATURE_FILE = "model-signature.json"
# JSON files beside a model that are not an XGBoost model: the signature and the drift profile.
_NOT_MODELS = (SIGNATURE_FILE, PROFILE_FILE)
log = logging.getLogger("modelpilot.server")


class ModelLoadError(Exception):
    """The model cannot be served; the message says why (shown on /v2/health/ready)."""


class Model(ABC):
    """A loaded model, whatever its framework."""

    platform: str = ""

    def __init__(self, inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec], default_outputs: list[str]):
        self.inputs = list(inputs)
        self.outputs = list(outputs)
        self.default_outputs = default_outputs
        self._output_names = {o.name for o in self.outputs}

    def select_outputs(self, requested: list[str] | None) -> list[str]:
        if not requested:
            return self.default_outputs
        unknown = [name for name in requested if name not in self._output_names]
        if unknown:
            raise ProtocolError(
                f"unknown output {', '.join(repr(n) for n in unknown)}; the model has "
                f"{', '.join(sorted(self._output_names))}"
            )
        return requested

    @abstractmethod
    def predict(self, inputs: dict[str, np.ndarray], outputs: list[str]) -> dict[str, np.ndarray]:
        """Run the model; any exception is a model failure (HTTP 500)."""


def model_columns(model: Model) -> int | None:
    """The feature columns the model's declared inputs add up to; None when not fixed."""
    if not model.inputs or any(not s.shape or any(d < 0 for d in s.shape[1:]) for s in model.inputs):
        return None
    return sum(math.prod(s.shape[1:]) for s in model.inputs)


def model_inputs(model: Model, matrix: np.ndarray) -> dict[str, np.ndarray]:
    """Feature rows ([rows, columns]) as the model's inputs: split by the declared widths, in the
    declared datatypes (the only input takes every column; "input-0" when none is declared).
    ValueError names the input whose datatype the columns do not fit."""
    if not model.inputs:
        return {"input-0": matrix}
    inputs: dict[str, np.ndarray] = {}
    column = 0
    for spec in model.inputs:
        width = math.prod(spec.shape[1:]) if len(model.inputs) > 1 else matrix.shape[1]
        part = matrix[:, column : column + width]
        part = part.reshape(matrix.shape[0], *spec.shape[1:]) if len(spec.shape) > 1 else part[:, 0]
        try:
            inputs[spec.name] = part.astype(DATATYPES[spec.datatype], copy=False)
        except (TypeError, ValueError) as err:
            raise ValueError(f"input {spec.name!r} ({spec.datatype}): {err}") from None
        column += width
    return inputs


def _columns(inputs: dict[str, np.ndarray]) -> np.ndarray:
    """Several inputs -> one 2-D feature matrix: each input gives its columns, in order."""
    arrays = list(inputs.values())
    if len(arrays) == 1:
        return arrays[0]
    rows = {a.shape[0] if a.ndim else 1 for a in arrays}
    if len(rows) != 1:
        raise ProtocolError(f"inputs have different numbers of rows: {sorted(rows)}")
    n = rows.pop()
    return np.concatenate([a.reshape(n, -1) for a in arrays], axis=1)


def read_signature(directory: Path) -> list[TensorSpec] | None:
    path = directory / SIGNATURE_FILE
    if not path.is_file():
        return None
    try:
        raw = json.loads(path.read_text())
        specs = [
            TensorSpec(name=str(i["name"]), datatype=str(i["datatype"]), shape=tuple(int(d) for d in i["shape"]))
            for i in raw["inputs"]
        ]
    except (ValueError, KeyError, TypeError) as err:
        raise ModelLoadError(f"{SIGNATURE_FILE} is invalid: {err!r}") from None
    for spec in specs:
        if spec.datatype not in DATATYPES:
            raise ModelLoadError(f"{SIGNATURE_FILE}: input '{spec.name}' has unknown datatype {spec.datatype!r}")
    return specs


class SklearnModel(Model):
    platform = "sklearn"
    METHODS = ("predict", "predict_proba", "predict_log_proba", "decision_function", "transform")

    def __init__(self, estimator: Any, signature: list[TensorSpec] | None) -> None:
        methods = [m for m in self.METHODS if callable(getattr(estimator, m, None))]
        if not methods:
            raise ModelLoadError(f"{type(estimator).__name__} has none of {', '.join(self.METHODS)}")
        n_features = getattr(estimator, "n_features_in_", None)
        if signature is not None:
            inputs = signature
        elif isinstance(n_features, int | np.integer):
            inputs = [TensorSpec("input-0", "FP64", (-1, int(n_features)))]
        else:
            inputs = []  # undeclared: the estimator gets whatever the request holds
        outputs = [TensorSpec(m, _sklearn_output_type(estimator, m), (-1,) if m == "predict" else (-1, -1))
                   for m in methods]
        super().__init__(inputs, outputs, [methods[0]])
        self.estimator = estimator

    def predict(self, inputs: dict[str, np.ndarray], outputs: list[str]) -> dict[str, np.ndarray]:
        features = _columns(inputs)
        return {name: np.asarray(getattr(self.estimator, name)(features)) for name in outputs}


def _sklearn_output_type(estimator: Any, method: str) -> str:
    if method != "predict":
        return "FP64"
    classes = getattr(estimator, "classes_", None)
    if classes is None:
        return "FP64"
    kind = np.asarray(classes).dtype.kind
    return "BYTES" if kind in "USO" else ("INT64" if kind in "iu" else "FP64")


class XGBoostModel(Model):
    platform = "xgboost"

    def __init__(self, booster: Any, signature: list[TensorSpec] | None) -> None:
        inputs = signature or [TensorSpec("input-0", "FP32", (-1, int(booster.num_features())))]
        # multi:softprob and friends answer one column per class.
        config = json.loads(booster.save_config())
        classes = int(config["learner"]["learner_model_param"].get("num_class", "0"))
        shape = (-1, classes) if classes > 1 else (-1,)
        super().__init__(inputs, [TensorSpec("predict", "FP32", shape)], ["predict"])
        self.booster = booster

    def predict(self, inputs: dict[str, np.ndarray], outputs: list[str]) -> dict[str, np.ndarray]:
        # inplace_predict skips building a DMatrix: the fast path for small online batches.
        return {"predict": np.asarray(self.booster.inplace_predict(_columns(inputs)))}


_ONNX_TYPES = {
    "tensor(bool)": "BOOL",
    "tensor(uint8)": "UINT8",
    "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64",
    "tensor(int8)": "INT8",
    "tensor(int16)": "INT16",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
    "tensor(float16)": "FP16",
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
    "tensor(string)": "BYTES",
}


def _onnx_spec(node: Any) -> TensorSpec | None:
    datatype = _ONNX_TYPES.get(node.type)
    if datatype is None:
        return None  # sequences and maps (e.g. skl2onnx's ZipMap) are not V2 tensors
    shape = tuple(d if isinstance(d, int) and d >= 0 else -1 for d in (node.shape or []))
    return TensorSpec(node.name, datatype, shape)


class OnnxModel(Model):
    platform = "onnxruntime"

    def __init__(self, session: Any) -> None:
        inputs = [_onnx_spec(i) for i in session.get_inputs()]
        if any(spec is None for spec in inputs):
            raise ModelLoadError("the ONNX model has a non-tensor input, which V2 cannot express")
        outputs = [spec for spec in (_onnx_spec(o) for o in session.get_outputs()) if spec is not None]
        if not outputs:
            raise ModelLoadError("the ONNX model has no tensor output")
        super().__init__([s for s in inputs if s is not None], outputs, [o.name for o in outputs])
        self.session = session

    def predict(self, inputs: dict[str, np.ndarray], outputs: list[str]) -> dict[str, np.ndarray]:
        feed = {name: (a.astype(object) if a.dtype.kind == "U" else a) for name, a in inputs.items()}
        results = self.session.run(outputs, feed)
        return {name: np.asarray(value) for name, value in zip(outputs, results, strict=True)}


def find_model_file(path: Path, model_format: str | None) -> tuple[Path, str]:
    """The model file in `path` (a file, or a directory with exactly one candidate, looked for one
    level down when the directory holds a single folder, as archives often do) and its format."""
    if path.is_file():
        return path, model_format or _format_from_name(path)
    if not path.is_dir():
        raise ModelLoadError(f"model path {path} does not exist")
    wanted = EXTENSIONS[model_format] if model_format else tuple(e for es in EXTENSIONS.values() for e in es)
    entries = [p for p in sorted(path.iterdir()) if not p.name.startswith(".")]
    candidates = [p for p in entries if p.is_file() and p.suffix in wanted and p.name not in _NOT_MODELS]
    if not candidates:
        folders = [p for p in entries if p.is_dir()]
        if len(folders) == 1 and not [p for p in entries if p.is_file()]:
            return find_model_file(folders[0], model_format)
        kinds = f"{model_format} " if model_format else ""
        raise ModelLoadError(f"no {kinds}model file ({', '.join(wanted)}) in {path}")
    if len(candidates) > 1:
        preferred = [p for p in candidates if p.stem == "model"]
        if len(preferred) != 1:
            names = ", ".join(p.name for p in candidates)
            raise ModelLoadError(f"several model files in {path} ({names}); keep one or name it model.<ext>")
        candidates = preferred
    return candidates[0], model_format or _format_from_name(candidates[0])


def _format_from_name(path: Path) -> str:
    for fmt, extensions in EXTENSIONS.items():
        if path.suffix in extensions:
            return fmt
    raise ModelLoadError(f"cannot tell the format of {path.name}; pass --format ({', '.join(FORMATS)})")


def load_model(path: Path, model_format: str | None = None) -> Model:
    """Load the model at `path` (file or directory). Raises ModelLoadError with a reason."""
    if model_format is not None and model_format not in FORMATS:
        raise ModelLoadError(f"unsupported format {model_format!r}; this runtime serves {', '.join(FORMATS)}")
    file, fmt = find_model_file(path, model_format)
    signature = read_signature(file.parent)
    try:
        if fmt == "sklearn":
            return _load_sklearn(file, signature)
        if fmt == "xgboost":
            return _load_xgboost(file, signature)
        return _load_onnx(file)
    except ModelLoadError:
        raise
    except Exception as err:  # any framework error is a load failure with its message
        raise ModelLoadError(f"cannot load {fmt} model {file.name}: {type(err).__name__}: {err}") from err


def _load_sklearn(file: Path, signature: list[TensorSpec] | None) -> Model:
    import joblib

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            estimator = joblib.load(file)
        except (ImportError, AttributeError) as err:
            raise ModelLoadError(
                f"cannot load sklearn model {file.name}: it refers to code this runtime lacks ({err})"
            ) from err
        except Exception as err:
            raise ModelLoadError(
                f"cannot load sklearn model {file.name}: not a readable joblib/pickle file "
                f"({type(err).__name__}: {err})"
            ) from err
    for warning in caught:
        # e.g. InconsistentVersionWarning: pickled by another scikit-learn version.
        log.warning("loading %s: %s", file.name, warning.message)
    # Estimators fitted on a DataFrame warn on every array input; the names live in the signature.
    warnings.filterwarnings("ignore", message="X does not have valid feature names")
    return SklearnModel(estimator, signature)


def _load_xgboost(file: Path, signature: list[TensorSpec] | None) -> Model:
    import xgboost

    booster = xgboost.Booster()
    booster.load_model(str(file))
    return XGBoostModel(booster, signature)


def _load_onnx(file: Path) -> Model:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    # Spinning intra-op threads burn the cores the HTTP loop needs between small requests.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = onnxruntime.InferenceSession(str(file), sess_options=options, providers=["CPUExecutionProvider"])
    return OnnxModel(session)
