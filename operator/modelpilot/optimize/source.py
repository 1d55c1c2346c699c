"""The model to optimize, loaded with the runtime's own loader (modelpilot.server.loaders), so its
predictions are the ones `modelpilot serve` makes. Also: what kind of model it is (classifier or
regressor, how its first output becomes one prediction per row), how many feature columns it
takes (the loader's declared input: `n_features_in_`, the booster's feature count, or
model-signature.json) and their names when the model knows them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from modelpilot.optimize.errors import UsageError
from modelpilot.optimize.validate import ARGMAX, CLASS_INDEX, CLASSIFIER, LABEL, REGRESSOR, THRESHOLD, VALUE
from modelpilot.server.loaders import SIGNATURE_FILE, Model, find_model_file, load_model, model_columns
from modelpilot.server.protocol import DATATYPES

FORMATS = ("sklearn", "xgboost")
# XGBoost objectives by how their prediction becomes a class or a value; others are refused.
_XGB_CLASSIFIERS = {"multi:softprob": ARGMAX, "multi:softmax": CLASS_INDEX, "binary:logistic": THRESHOLD}
_XGB_REGRESSION_PREFIXES = ("reg:", "count:")
# Objectives the ONNX converter gets wrong (its predictions do not match the booster's): refused
# up front with a way out rather than after validation with a large accuracy drop.
_XGB_MISCONVERTED = {"reg:logistic": "train it with binary:logistic"}


@dataclass(frozen=True)
class Source:
    """The original model, as the runtime loaded it."""

    file: Path
    fmt: str
    model: Model
    task: str  # validate.CLASSIFIER or validate.REGRESSOR
    decoding: str  # how the model's first default output becomes one prediction per row
    n_features: int
    feature_names: tuple[str, ...] | None

    @property
    def native(self) -> Any:
        """The framework object: the sklearn estimator or the XGBoost Booster."""
        return self.model.estimator if self.fmt == "sklearn" else self.model.booster  # type: ignore[attr-defined]

    @property
    def output(self) -> str:
        return self.model.default_outputs[0]


def load_source(path: Path, fmt: str) -> Source:
    """Load `path` (a file, or a directory as `modelpilot serve` takes it) as `fmt`. Raises
    UsageError, or the loader's ModelLoadError, with a one-line reason."""
    if fmt not in FORMATS:
        raise UsageError(f"unknown format {fmt!r}; optimize converts {' or '.join(FORMATS)} models")
    if not path.exists():
        raise UsageError(f"model {path} does not exist")
    file, _ = find_model_file(path, fmt)
    model = load_model(file, fmt)
    n_features = _width(model)
    if fmt == "sklearn":
        task, decoding, names = _sklearn_kind(model.estimator)  # type: ignore[attr-defined]
    else:
        task, decoding, names = _xgboost_kind(model.booster)  # type: ignore[attr-defined]
    if names is not None and len(names) != n_features:
        names = None  # a signature file regrouped the columns; the names no longer line up
    return Source(file, fmt, model, task, decoding, n_features, names)


def _width(model: Model) -> int:
    """The model's feature columns: one numeric input of a fixed width is what converts to the
    ONNX input [-1, n_features] float32."""
    if not model.inputs:
        raise UsageError("cannot tell how many features the model takes (no n_features_in_); declare its input "
                         f"in {SIGNATURE_FILE} beside the model")  # fmt: skip
    if len(model.inputs) > 1:
        names = ", ".join(spec.name for spec in model.inputs)
        raise UsageError(f"the model takes {len(model.inputs)} inputs ({names}, from {SIGNATURE_FILE}); optimize "
                         "converts models with one input of feature columns")  # fmt: skip
    spec = model.inputs[0]
    if np.dtype(DATATYPES[spec.datatype]).kind not in "biuf":
        raise UsageError(f"the model's input {spec.name!r} is {spec.datatype}; optimize converts models over "
                         "numeric features")  # fmt: skip
    width = model_columns(model)
    if width is None or width < 1:
        raise UsageError(f"the model's input {spec.name!r} has no fixed width (shape {list(spec.shape)})")
    return width


def _sklearn_kind(estimator: Any) -> tuple[str, str, tuple[str, ...] | None]:
    from sklearn.base import is_classifier

    if not callable(getattr(estimator, "predict", None)):
        raise UsageError(f"{type(estimator).__name__} has no predict(); optimize converts classifiers and "
                         "regressors")  # fmt: skip
    raw = getattr(estimator, "feature_names_in_", None)
    names = tuple(str(n) for n in raw) if raw is not None else None
    if is_classifier(estimator):
        return CLASSIFIER, LABEL, names
    return REGRESSOR, VALUE, names


def _xgboost_kind(booster: Any) -> tuple[str, str, tuple[str, ...] | None]:
    types = booster.feature_types or []
    if any(t == "c" for t in types):
        raise UsageError("the booster has categorical features, which the ONNX converter does not support")
    learner = json.loads(booster.save_config())["learner"]
    objective = str(learner["objective"]["name"])
    names = tuple(booster.feature_names) if booster.feature_names else None
    classes = int(learner["learner_model_param"].get("num_class", "0"))
    if objective in _XGB_MISCONVERTED:
        raise UsageError(f"the ONNX converter gets XGBoost objective {objective!r} wrong; "
                         f"{_XGB_MISCONVERTED[objective]}")  # fmt: skip
    if objective.startswith("multi:") and classes == 2:
        raise UsageError(f"the ONNX converter gets 2-class {objective!r} boosters wrong; train it with "
                         "binary:logistic")  # fmt: skip
    if objective in _XGB_CLASSIFIERS:
        return CLASSIFIER, _XGB_CLASSIFIERS[objective], names
    if objective.startswith(_XGB_REGRESSION_PREFIXES):
        return REGRESSOR, VALUE, names
    supported = ", ".join([*_XGB_CLASSIFIERS, *(p + "*" for p in _XGB_REGRESSION_PREFIXES)])
    raise UsageError(f"XGBoost objective {objective!r} is not supported (supported: {supported})")
