"""Compare an optimized model's predictions with the original's, and decide whether to refuse it.

Pure numpy: no model, no file, no Kubernetes. A classifier's rows agree when both models predict
the same class. A regressor's rows agree when |output - original| <= rtol * max(|original|, scale),
scale being the mean |original| over the rows (so values near zero are not held to a relative
tolerance of nothing). The accuracy drop is the original's accuracy minus the output's, both
against the target column, when one is given for a classifier; else (no target, or a regressor) it
is 1 - agreement.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

CLASSIFIER = "classifier"
REGRESSOR = "regressor"
TASKS = (CLASSIFIER, REGRESSOR)

# How a model's first output becomes one prediction per row.
LABEL = "label"  # already one class per row ([N] or [N, 1])
CLASS_INDEX = "class-index"  # class numbers as floats (XGBoost multi:softmax)
ARGMAX = "argmax"  # one probability per class ([N, K]): the likeliest class
THRESHOLD = "threshold"  # the positive class's probability ([N]): class 1 above 0.5
VALUE = "value"  # a regressor's value ([N] or [N, 1])
DECODINGS = (LABEL, CLASS_INDEX, ARGMAX, THRESHOLD, VALUE)

DEFAULT_RTOL = 1e-3
# Drops are differences of fractions: 0.3 - 0.29 is 0.010000000000000009, not above a 0.01 limit.
_SLACK = 1e-9

BASIS_TARGET = "target"
BASIS_AGREEMENT = "agreement"


@dataclass(frozen=True)
class Comparison:
    """One produced model against the original, on the same validation rows."""

    rows: int
    agreement: float
    drop: float
    basis: str  # BASIS_TARGET or BASIS_AGREEMENT: what `drop` is computed from
    accuracy_original: float | None = None  # classifier with a target column
    accuracy_output: float | None = None
    mae_original: float | None = None  # regressor with a target column
    mae_output: float | None = None


def decode(raw: np.ndarray, how: str) -> np.ndarray:
    """One prediction per row from a model's raw output."""
    values = np.asarray(raw)
    if values.ndim == 0:
        raise ValueError("the output is a scalar, not one value per row")
    if how == ARGMAX:
        if values.ndim != 2:
            raise ValueError(f"expected [rows, classes] probabilities, got shape {list(values.shape)}")
        return np.asarray(values.argmax(axis=1), dtype=np.int64)
    rows = values.shape[0]
    if values.size != rows:
        raise ValueError(f"expected one value per row, got shape {list(values.shape)}")
    flat = values.reshape(rows)
    if how == LABEL:
        return flat
    if how == CLASS_INDEX:
        return np.rint(flat.astype(np.float64)).astype(np.int64)
    if how == THRESHOLD:
        return (flat.astype(np.float64) > 0.5).astype(np.int64)
    if how == VALUE:
        return flat.astype(np.float64)
    raise ValueError(f"unknown decoding {how!r}; known: {', '.join(DECODINGS)}")


def same_labels(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise equality of two label vectors (ints, floats, strings or bytes)."""
    a, b = _comparable(np.asarray(a)), _comparable(np.asarray(b))
    if a.shape != b.shape:
        raise ValueError(f"{a.shape[0]} predictions against {b.shape[0]}")
    return np.asarray(a == b, dtype=bool)


def _comparable(values: np.ndarray) -> np.ndarray:
    if values.dtype.kind in "SO":
        return np.asarray([v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in values.tolist()],
                          dtype=object)  # fmt: skip
    return values


def close_values(original: np.ndarray, output: np.ndarray, rtol: float) -> np.ndarray:
    """Row-wise: is the output within the relative tolerance of the original (see module doc)."""
    original = np.asarray(original, dtype=np.float64)
    output = np.asarray(output, dtype=np.float64)
    if original.shape != output.shape:
        raise ValueError(f"{original.shape[0]} predictions against {output.shape[0]}")
    scale = float(np.mean(np.abs(original))) if original.size else 0.0
    bound = rtol * np.maximum(np.abs(original), scale)
    return np.asarray(np.abs(output - original) <= bound, dtype=bool)


def agreement(original: np.ndarray, output: np.ndarray, task: str, rtol: float = DEFAULT_RTOL) -> float:
    """Fraction of rows on which the two models agree (1.0 for no rows)."""
    same = same_labels(original, output) if task == CLASSIFIER else close_values(original, output, rtol)
    return float(same.mean()) if same.size else 1.0


def accuracy(predictions: np.ndarray, target: np.ndarray) -> float:
    same = same_labels(predictions, target)
    return float(same.mean()) if same.size else 1.0


def mean_absolute_error(predictions: np.ndarray, target: np.ndarray) -> float:
    diff = np.asarray(predictions, dtype=np.float64) - np.asarray(target, dtype=np.float64)
    return float(np.mean(np.abs(diff))) if diff.size else 0.0


def compare(
    original: np.ndarray,
    output: np.ndarray,
    task: str,
    target: np.ndarray | None = None,
    rtol: float = DEFAULT_RTOL,
) -> Comparison:
    """The output model's agreement with the original and its accuracy drop (see module doc)."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}")
    rows = int(np.asarray(original).shape[0])
    agreed = agreement(original, output, task, rtol)
    if target is None:
        return Comparison(rows, agreed, 1.0 - agreed, BASIS_AGREEMENT)
    if task == REGRESSOR:
        return Comparison(rows, agreed, 1.0 - agreed, BASIS_AGREEMENT,
                          mae_original=mean_absolute_error(original, target),
                          mae_output=mean_absolute_error(output, target))  # fmt: skip
    before, after = accuracy(original, target), accuracy(output, target)
    return Comparison(rows, agreed, before - after, BASIS_TARGET, accuracy_original=before, accuracy_output=after)


def breach(name: str, comparison: Comparison, limit: float) -> str | None:
    """The refusal message for one model, or None when its drop is within the limit."""
    if comparison.drop <= limit + _SLACK:
        return None
    how = "accuracy against the target" if comparison.basis == BASIS_TARGET else "1 - agreement"
    return (f"{name} model: accuracy drop {comparison.drop:.4g} ({how}, {comparison.rows} rows) is above "
            f"--max-accuracy-drop {limit:g}")  # fmt: skip


def refusals(comparisons: Mapping[str, Comparison], limit: float) -> list[str]:
    """Why the command refuses, one message per model over the limit; empty: nothing to refuse.
    Every produced model counts: the int8 model is made from the float one, so a float model that
    already drifts is refused even when its int8 version happens to land within the limit."""
    if limit < 0:
        raise ValueError("the limit must not be negative")
    return [message for name, c in comparisons.items() if (message := breach(name, c, limit)) is not None]
