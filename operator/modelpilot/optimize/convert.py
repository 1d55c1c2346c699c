"""sklearn (skl2onnx) and XGBoost (onnxmltools) models to ONNX.

The ONNX model has one input, `float_input` [-1, n_features] FP32, like the runtime's other ONNX
models; classifiers answer tensors `label` and `probabilities` (no ZipMap, which the runtime
cannot serve), regressors `variable` [-1, 1].
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from typing import Any

from modelpilot.optimize.errors import ConversionError, first_line
from modelpilot.optimize.source import Source
from modelpilot.optimize.validate import CLASSIFIER

INPUT_NAME = "float_input"
TARGET_OPSET = 17  # the default ONNX domain; onnxmltools caps it at what it supports


def to_onnx(source: Source) -> bytes:
    """The serialized ONNX model of `source`. Raises ConversionError naming the converter."""
    converter = "skl2onnx" if source.fmt == "sklearn" else "onnxmltools"
    try:
        with _quiet():
            if source.fmt == "sklearn":
                model = _sklearn(source.native, source.n_features, source.task == CLASSIFIER)
            else:
                model = _xgboost(source.native, source.n_features)
    except Exception as err:  # converters raise anything from NameError to RuntimeError
        raise ConversionError(f"{converter} cannot convert {_describe(source)}: {type(err).__name__}: "
                              f"{first_line(err)}") from err  # fmt: skip
    merge_opsets(model)
    return bytes(model.SerializeToString())


def _sklearn(estimator: Any, n_features: int, classifier: bool) -> Any:
    from skl2onnx import to_onnx as skl_to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    options = {"zipmap": False} if classifier else None
    return skl_to_onnx(estimator, initial_types=[(INPUT_NAME, FloatTensorType([None, n_features]))],
                       options=options, target_opset=TARGET_OPSET)  # fmt: skip


def _xgboost(booster: Any, n_features: int) -> Any:
    from onnxmltools import convert_xgboost
    from onnxmltools.convert.common.data_types import FloatTensorType
    from onnxmltools.convert.common.onnx_ex import get_maximum_opset_supported

    # The converter reads features from the tree dump, where named features appear by name; it
    # understands only f0..fN, so it gets a copy without names (the columns keep their order).
    anonymous = booster.copy()
    anonymous.feature_names = None
    anonymous.feature_types = None
    opset = min(TARGET_OPSET, get_maximum_opset_supported())
    return convert_xgboost(anonymous, initial_types=[(INPUT_NAME, FloatTensorType([None, n_features]))],
                           target_opset=opset)  # fmt: skip


def merge_opsets(model: Any) -> None:
    """One opset import per domain (the highest version): skl2onnx can list the default domain
    twice, which onnxruntime's quantizer refuses."""
    from onnx import helper

    versions: dict[str, int] = {}
    for opset in model.opset_import:
        domain = "" if opset.domain == "ai.onnx" else opset.domain
        versions[domain] = max(versions.get(domain, 0), int(opset.version))
    del model.opset_import[:]
    model.opset_import.extend(helper.make_opsetid(domain, version) for domain, version in versions.items())


def _describe(source: Source) -> str:
    native = source.native
    name = type(native).__name__
    steps = getattr(native, "steps", None)
    if steps:
        name += "(" + ", ".join(type(step).__name__ for _, step in steps) + ")"
    return f"{name} from {source.file.name}"


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Converters warn about what the report covers anyway (opsets, versions)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield
