"""modelpilot.optimize.validate: outputs to predictions, agreement, accuracy drop, refusal (pure)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from modelpilot.optimize import validate
from modelpilot.optimize.validate import (
    BASIS_AGREEMENT,
    BASIS_TARGET,
    CLASSIFIER,
    REGRESSOR,
    Comparison,
    compare,
    decode,
    refusals,
)

DECODE_CASES = [
    # (raw output, decoding, predictions)
    (np.array([0, 2, 1]), validate.LABEL, [0, 2, 1]),
    (np.array([[0], [2]]), validate.LABEL, [0, 2]),
    (np.array(["a", "b"]), validate.LABEL, ["a", "b"]),
    (np.array([[0.1, 0.7, 0.2], [0.5, 0.2, 0.3]]), validate.ARGMAX, [1, 0]),
    (np.array([0.2, 0.5, 0.51]), validate.THRESHOLD, [0, 0, 1]),
    (np.array([2.0, 0.0, 1.0000001]), validate.CLASS_INDEX, [2, 0, 1]),
    (np.array([[1.5], [-2.0]]), validate.VALUE, [1.5, -2.0]),
]


@pytest.mark.parametrize(("raw", "how", "expected"), DECODE_CASES)
def test_decode(raw: np.ndarray, how: str, expected: list[object]) -> None:
    assert decode(raw, how).tolist() == expected


@pytest.mark.parametrize(("raw", "how", "error"), [
    (np.array(3.0), validate.VALUE, "scalar"),
    (np.array([[0.1, 0.9], [0.3, 0.7]]), validate.LABEL, "one value per row"),
    (np.array([0.1, 0.9]), validate.ARGMAX, "probabilities"),
    (np.array([1]), "softmax", "unknown decoding"),
])  # fmt: skip
def test_decode_errors(raw: np.ndarray, how: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        decode(raw, how)


AGREEMENT_CASES = [
    # (original, output, task, rtol, agreement)
    ([0, 1, 2, 1], [0, 1, 2, 1], CLASSIFIER, 0.0, 1.0),
    ([0, 1, 2, 1], [0, 1, 1, 1], CLASSIFIER, 0.0, 0.75),
    (["a", "b"], np.array([b"a", b"c"], dtype=object), CLASSIFIER, 0.0, 0.5),  # bytes labels as text
    ([1, 0], [1.0, 0.0], CLASSIFIER, 0.0, 1.0),  # float class numbers
    ([100.0, 200.0], [100.05, 200.1], REGRESSOR, 1e-3, 1.0),
    ([100.0, 200.0], [100.5, 200.1], REGRESSOR, 1e-3, 0.5),
    # Near zero the scale is the mean |original| (0.5005): 0.0004 off 0.001 is within 1e-3 of it.
    ([0.001, 1.0], [0.0014, 1.0], REGRESSOR, 1e-3, 1.0),
    ([0.001, 1.0], [0.002, 1.0], REGRESSOR, 1e-3, 0.5),
    ([], [], CLASSIFIER, 0.0, 1.0),
]


@pytest.mark.parametrize(("original", "output", "task", "rtol", "expected"), AGREEMENT_CASES)
def test_agreement(original: list[object], output: list[object], task: str, rtol: float, expected: float) -> None:
    assert validate.agreement(np.asarray(original), np.asarray(output), task, rtol) == pytest.approx(expected)


def test_agreement_needs_as_many_rows() -> None:
    with pytest.raises(ValueError, match="3 predictions against 2"):
        validate.agreement(np.array([1, 2, 3]), np.array([1, 2]), CLASSIFIER)


COMPARE_CASES = [
    # (original, output, task, target, expected comparison)
    ([0, 1, 1, 0], [0, 1, 0, 0], CLASSIFIER, None, Comparison(4, 0.75, 0.25, BASIS_AGREEMENT)),
    # With a target the drop is the accuracy difference: two changed rows, one fixed, one broken.
    ([0, 1, 1, 0], [1, 1, 0, 0], CLASSIFIER, [1, 1, 1, 0],
     Comparison(4, 0.5, 0.0, BASIS_TARGET, accuracy_original=0.75, accuracy_output=0.75)),
    ([0, 1, 1, 0], [0, 1, 0, 0], CLASSIFIER, [0, 1, 1, 0],
     Comparison(4, 0.75, 0.25, BASIS_TARGET, accuracy_original=1.0, accuracy_output=0.75)),
    # Better than the original: a negative drop.
    ([0, 0], [0, 1], CLASSIFIER, [0, 1], Comparison(2, 0.5, -0.5, BASIS_TARGET, accuracy_original=0.5,
                                                     accuracy_output=1.0)),
    # Regressors: the drop is 1 - agreement; a target adds the mean absolute errors.
    ([10.0, 20.0], [10.0, 25.0], REGRESSOR, None, Comparison(2, 0.5, 0.5, BASIS_AGREEMENT)),
    ([10.0, 20.0], [10.0, 20.0], REGRESSOR, [11.0, 19.0],
     Comparison(2, 1.0, 0.0, BASIS_AGREEMENT, mae_original=1.0, mae_output=1.0)),
]  # fmt: skip


@pytest.mark.parametrize(("original", "output", "task", "target", "expected"), COMPARE_CASES)
def test_compare(original: list[object], output: list[object], task: str, target: list[object] | None,
                 expected: Comparison) -> None:  # fmt: skip
    truth = None if target is None else np.asarray(target)
    assert compare(np.asarray(original), np.asarray(output), task, truth) == expected


def test_compare_unknown_task() -> None:
    with pytest.raises(ValueError, match="unknown task"):
        compare(np.array([1]), np.array([1]), "ranker")


def _c(drop: float, basis: str = BASIS_AGREEMENT, rows: int = 1000) -> Comparison:
    return Comparison(rows, 1.0 - drop, drop, basis)


REFUSAL_CASES = [
    # (comparisons, limit, messages)
    ({"float32": _c(0.0), "int8": _c(0.002)}, 0.01, []),
    ({"int8": _c(0.01)}, 0.01, []),  # at the limit is within it
    ({"int8": _c(0.3 - 0.29)}, 0.01, []),  # 0.010000000000000009: float noise is not a breach
    ({"int8": _c(0.034)}, 0.01,
     ["int8 model: accuracy drop 0.034 (1 - agreement, 1000 rows) is above --max-accuracy-drop 0.01"]),
    ({"int8": _c(0.001, BASIS_TARGET, 500)}, 0.0,
     ["int8 model: accuracy drop 0.001 (accuracy against the target, 500 rows) is above --max-accuracy-drop 0"]),
    ({"int8": _c(-0.05)}, 0.0, []),  # more accurate than the original
    # A float model over the limit is refused even when its int8 version lands within it.
    ({"float32": _c(0.02), "int8": _c(0.0)}, 0.01,
     ["float32 model: accuracy drop 0.02 (1 - agreement, 1000 rows) is above --max-accuracy-drop 0.01"]),
    ({"float32": _c(0.2), "int8": _c(0.5)}, 0.1, [
        "float32 model: accuracy drop 0.2 (1 - agreement, 1000 rows) is above --max-accuracy-drop 0.1",
        "int8 model: accuracy drop 0.5 (1 - agreement, 1000 rows) is above --max-accuracy-drop 0.1"]),
]  # fmt: skip


@pytest.mark.parametrize(("comparisons", "limit", "messages"), REFUSAL_CASES)
def test_refusals(comparisons: dict[str, Comparison], limit: float, messages: list[str]) -> None:
    assert refusals(comparisons, limit) == messages


def test_a_negative_limit_is_an_error() -> None:
    with pytest.raises(ValueError, match="negative"):
        refusals({}, -0.1)


def test_pure_modules_import_no_cluster_or_framework_code() -> None:
    """validate, report and data (and the command module the CLI imports) need neither Kubernetes
    nor the converters: the operator image lacks the [server] extra."""
    code = ("import sys; import modelpilot.optimize.validate, modelpilot.optimize.report, "
            "modelpilot.optimize.data, modelpilot.optimize.command; "
            "print(sorted(m for m in ('kubernetes', 'kopf', 'onnx', 'onnxruntime', 'skl2onnx', 'onnxmltools', "
            "'sklearn', 'xgboost', 'pyarrow') if m in sys.modules))")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == "[]"
