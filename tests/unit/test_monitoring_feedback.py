"""PredictionStore and LabelWindow: joins, duplicates, capacity and expiry with an injected clock."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from modelpilot.monitoring.feedback import (
    DUPLICATE,
    INVALID,
    JOINED,
    UNKNOWN,
    JoinResult,
    LabelWindow,
    PredictionStore,
)


class FakeClock:
    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# (id, predictions, truth, result, rows, correct, absolute error)
JOIN_CASES: list[tuple[str, np.ndarray, Any, str, int, int, float]] = [
    ("one-class", np.asarray([2]), 2, JOINED, 1, 1, 0.0),
    ("list-of-one", np.asarray([2]), [1], JOINED, 1, 0, 0.0),
    # Compared as text: truth 1 and "1" both match the prediction 1; 1.0 too.
    ("text-labels", np.asarray([1, 1, 1, 0]), [1, "1", 1.0, "0"], JOINED, 4, 4, 0.0),
    ("string-classes", np.asarray(["setosa", "virginica"], dtype=object), ["setosa", "setosa"], JOINED, 2, 1, 0.0),
    ("bool-classes", np.asarray([True, False]), [True, "false"], JOINED, 2, 2, 0.0),
    # |1.5 - 1| + |2 - 4| = 2.5
    ("regression", np.asarray([1.5, 2.0]), [1, "4"], JOINED, 2, 0, 2.5),
    # A prediction that is not a number is not scored.
    ("regression-nan-prediction", np.asarray([math.nan, 3.0]), [1.0, 2.0], JOINED, 1, 0, 1.0),
    ("too-few-values", np.asarray([0, 1]), [0], INVALID, 0, 0, 0.0),
    ("scalar-for-two-rows", np.asarray([0, 1]), 0, INVALID, 0, 0, 0.0),
    ("object-truth", np.asarray([0]), [{"a": 1}], INVALID, 0, 0, 0.0),
    ("nested-truth", np.asarray([0]), [[0]], INVALID, 0, 0, 0.0),
    ("text-for-a-value", np.asarray([1.0]), ["high"], INVALID, 0, 0, 0.0),
    ("bool-for-a-value", np.asarray([1.0]), [True], INVALID, 0, 0, 0.0),
    ("infinite-value", np.asarray([1.0]), [math.inf], INVALID, 0, 0, 0.0),
]  # fmt: skip


@pytest.mark.parametrize(("predictions", "truth", "result", "rows", "correct", "error"), [c[1:] for c in JOIN_CASES],
                         ids=[c[0] for c in JOIN_CASES])  # fmt: skip
def test_join(predictions: np.ndarray, truth: Any, result: str, rows: int, correct: int, error: float) -> None:
    store = PredictionStore(clock=FakeClock())
    store.remember("r", predictions)
    joined = store.join("r", truth)
    assert (joined.result, joined.rows, joined.correct) == (result, rows, correct)
    assert joined.absolute_error == pytest.approx(error)
    assert bool(joined.message) == (result != JOINED)


def test_feedback_is_taken_once_and_invalid_feedback_can_be_retried() -> None:
    store = PredictionStore(clock=FakeClock())
    assert store.join("nobody", 1).result == UNKNOWN
    store.remember("r", np.asarray([0, 1]))
    assert store.join("r", [0]).result == INVALID  # not consumed: the client may correct it
    assert store.join("r", [0, 1]).result == JOINED
    duplicate = store.join("r", [0, 1])
    assert duplicate.result == DUPLICATE
    assert "already received" in duplicate.message
    assert store.rows == 1  # a consumed id keeps one row's worth
    store.remember("r", np.asarray([5]))  # a new request with the same id: its own feedback
    assert store.join("r", 5).correct == 1


def test_expired_predictions_are_unknown() -> None:
    clock = FakeClock()
    store = PredictionStore(ttl_seconds=60, clock=clock)
    store.remember("old", np.asarray([1]))
    clock.now = 30
    store.remember("new", np.asarray([1]))
    clock.now = 60
    assert store.join("old", 1).result == UNKNOWN
    assert store.join("new", 1).result == JOINED
    clock.now = 90
    assert store.join("new", 1).result == UNKNOWN  # expired, and so is the memory of its feedback
    assert len(store) == 0 and store.rows == 0


def test_capacity_counts_rows_and_evicts_the_oldest() -> None:
    store = PredictionStore(capacity=10, clock=FakeClock())
    for i in range(4):
        store.remember(f"r{i}", np.arange(3))  # 3 rows each: the fourth pushes r0 out
    assert store.rows == 9
    assert store.join("r0", [0, 1, 2]).result == UNKNOWN
    assert store.join("r1", [0, 1, 2]).result == JOINED
    assert not store.remember("huge", np.arange(11))  # more rows than the whole store
    assert store.join("huge", list(range(11))).result == UNKNOWN


def test_memory_does_not_grow_with_traffic() -> None:
    store = PredictionStore(capacity=1_000, clock=FakeClock())
    for i in range(100_000):
        store.remember(str(i), np.asarray([i % 3]))
    assert len(store) == 1_000 and store.rows == 1_000
    assert store.join("99999", 0).result == JOINED
    assert store.join("98999", 2).result == UNKNOWN  # the 1,001st newest: evicted


def test_label_window_accuracy_error_and_expiry() -> None:
    clock = FakeClock()
    window = LabelWindow(60, clock)
    assert window.totals().rows == 0 and math.isnan(window.totals().accuracy) and math.isnan(window.totals().error)
    window.add(JoinResult(JOINED, "classification", rows=10, correct=7))
    window.add(JoinResult(UNKNOWN))  # not a join: nothing to count
    clock.now = 30
    window.add(JoinResult(JOINED, "classification", rows=10, correct=10))
    window.add(JoinResult(JOINED, "regression", rows=4, absolute_error=2.0))
    totals = window.totals()
    assert (totals.rows, totals.accuracy, totals.error) == (24, 17 / 20, 0.5)
    clock.now = 65  # the first 10 rows left the window
    assert window.totals().accuracy == 1.0
