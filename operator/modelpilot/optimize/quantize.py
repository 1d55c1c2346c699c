"""int8 quantization of an ONNX model with onnxruntime's dynamic quantization.

`quantize_dynamic` stores the weights of MatMul, Gemm, Conv, ... as int8 (QInt8) and quantizes
activations at run time: what shrinks a small MLP or any model made of matrix products about four
times. Tree ensembles (XGBoost, random forests) and sklearn's linear ML-domain operators
(LinearClassifier, ...) carry their numbers as attributes, not weight tensors: nothing in them is
quantized. `quantize_int8` says so (`tensors` 0, no model) instead of passing off an unchanged
model as int8.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from modelpilot.optimize.errors import ConversionError, first_line

INT8 = "int8"
QUANTIZATIONS = (INT8,)
# onnxruntime's quantizer needs the default ONNX domain; converted tree models only use ai.onnx.ml.
_DEFAULT_DOMAIN_OPSET = 15
NOT_APPLICABLE = ("the model has no weight tensors that dynamic int8 quantization applies to (tree ensembles and "
                  "linear ML-domain operators keep their numbers as attributes); model.onnx is the float32 "
                  "model")  # fmt: skip


@dataclass(frozen=True)
class Quantized:
    """The int8 model (None when nothing could be quantized) and how many weight tensors are int8."""

    data: bytes | None
    tensors: int


def quantize_int8(model_bytes: bytes) -> Quantized:
    """Quantize a serialized ONNX model's weights to int8. Raises ConversionError."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = onnx.load_from_string(model_bytes)
    if not any(opset.domain in ("", "ai.onnx") for opset in model.opset_import):
        model.opset_import.append(onnx.helper.make_opsetid("", _DEFAULT_DOMAIN_OPSET))
    with tempfile.TemporaryDirectory(prefix="modelpilot-quantize-") as work:
        target = Path(work) / "model.int8.onnx"
        try:
            with _quiet_quantizer():
                quantize_dynamic(model, target, weight_type=QuantType.QInt8)
        except Exception as err:
            raise ConversionError(f"int8 quantization failed: {type(err).__name__}: {first_line(err)}") from err
        data = target.read_bytes()
    tensors = int8_tensors(data)
    return Quantized(data if tensors else None, tensors)


def int8_tensors(model_bytes: bytes) -> int:
    """Initializers stored as int8: the quantized weights."""
    import onnx

    model = onnx.load_from_string(model_bytes)
    return sum(1 for tensor in model.graph.initializer if tensor.data_type == onnx.TensorProto.INT8)


class _DropAdvice(logging.Filter):
    """onnxruntime's quantizer advises pre-processing on the root logger; for these small models
    (no convolutions, no transformer blocks) it changes nothing and would only clutter stderr."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing" not in record.getMessage()


@contextlib.contextmanager
def _quiet_quantizer() -> Iterator[None]:
    root = logging.getLogger()
    # logging.warning() configures a stderr handler on a bare root logger; a NullHandler prevents that.
    placeholder = logging.NullHandler() if not root.handlers else None
    if placeholder is not None:
        root.addHandler(placeholder)
    advice = _DropAdvice()
    root.addFilter(advice)
    try:
        yield
    finally:
        root.removeFilter(advice)
        if placeholder is not None:
            root.removeHandler(placeholder)
