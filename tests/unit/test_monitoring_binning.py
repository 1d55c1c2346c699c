"""Live rows into profile bins: FeatureBinner and PredictionBinner against counts worked out by hand."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from modelpilot.monitoring.binning import FeatureBinner, PredictionBinner
from modelpilot.monitoring.profile import ColumnProfile, Profile, build_profile, edge_labels

NAN = math.nan


def _numeric(name: str, edges: tuple[float, ...]) -> ColumnProfile:
    bins = edge_labels(edges)
    return ColumnProfile(name, "numeric", bins, (1.0, *[0.0] * (len(bins) - 1)), edges=edges)


def _categorical(name: str, categories: tuple[str, ...]) -> ColumnProfile:
    bins = (*categories, "other", "missing")
    return ColumnProfile(name, "categorical", bins, (1.0, *[0.0] * (len(bins) - 1)), categories=categories)


CLASSES = ColumnProfile("", "class", ("0", "1", "other"), (0.5, 0.5, 0.0), categories=("0", "1"))
# Feature 0: edges 1, 2, 3 -> bins (-inf,1] (1,2] (2,3] (3,+inf) missing (5); feature 1: a, b, other, missing (4).
MIXED = Profile(rows=1, features=(_numeric("size", (1.0, 2.0, 3.0)), _categorical("color", ("a", "b"))),
                prediction=CLASSES)  # fmt: skip


def test_mixed_features_by_hand() -> None:
    rows: list[list[Any]] = [
        [0.5, "a"],    # size (-inf,1]      color a
        [1, "b"],      # 1 is an edge: (-inf,1]; b
        [1.5, "z"],    # (1,2]              other
        [3, None],     # (2,3]              missing
        [7, "a"],      # (3,+inf)           a
        [NAN, ""],     # missing            missing (the empty string)
        ["2", "b"],    # text "2" parses: (1,2]; b
        ["x", "a"],    # text that is no number: missing; a
    ]  # fmt: skip
    counts = FeatureBinner(MIXED).count(np.asarray(rows, dtype=object))
    assert counts.shape == (2, 5)  # B = the larger bin count; the categorical row is padded with 0
    assert counts.tolist() == [
        [2, 2, 1, 1, 2],  # (-inf,1]: 0.5 1; (1,2]: 1.5 "2"; (2,3]: 3; (3,+inf): 7; missing: NaN "x"
        [3, 2, 1, 2, 0],  # a: rows 0 4 7; b: rows 1 6; other: z; missing: None ""
    ]


NUMERIC_ONLY = Profile(rows=1, features=(_numeric("a", (0.0,)), _numeric("b", (-1.0, 1.0))), prediction=CLASSES)


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int64, np.int8, np.bool_, object, str])
def test_numeric_fast_path_for_every_dtype(dtype: Any) -> None:
    # a: (-inf,0] (0,+inf) missing; b: (-inf,-1] (-1,1] (1,+inf) missing.
    matrix = np.asarray([[0, 0], [1, 1], [1, 5], [0, -3]]).astype(dtype)
    counts = FeatureBinner(NUMERIC_ONLY).count(matrix)
    if dtype is np.bool_:  # 5 and -3 are True: b is 0, 1, 1, 1
        assert counts.tolist() == [[2, 2, 0, 0], [0, 4, 0, 0]]
    else:
        assert counts.tolist() == [[2, 2, 0, 0], [1, 2, 1, 0]]


def test_nan_and_infinities() -> None:
    matrix = np.asarray([[NAN, math.inf], [-math.inf, NAN], [0.0, 1.0]])
    # a: NaN missing, -inf and 0 in (-inf,0]; b: +inf in (1,+inf), NaN missing, 1 in (-1,1].
    assert FeatureBinner(NUMERIC_ONLY).count(matrix).tolist() == [[2, 0, 1, 0], [0, 1, 1, 1]]


def test_binning_the_profiled_data_gives_the_reference() -> None:
    rng = np.random.default_rng(3)
    columns = {"n": rng.normal(size=500), "e": rng.exponential(size=500), "c": rng.choice(["x", "y", "z"], 500)}
    columns["n"][::7] = NAN
    profile = build_profile(columns, rng.integers(0, 3, 500))
    matrix = np.column_stack([columns["n"], columns["e"], columns["c"]]).astype(object)
    counts = FeatureBinner(profile).count(matrix)
    for i, feature in enumerate(profile.features):
        assert (counts[i, : len(feature.bins)] / 500).tolist() == pytest.approx(feature.reference)
        assert counts[i, len(feature.bins) :].sum() == 0


def test_a_matrix_of_another_width_is_refused() -> None:
    with pytest.raises(ValueError, match=r"expected a \[N, 2\] feature matrix, got shape \[3, 4\]"):
        FeatureBinner(NUMERIC_ONLY).count(np.zeros((3, 4)))


# (id, predictions, counts over "0", "1", "other")
CLASS_CASES: list[tuple[str, np.ndarray, list[int]]] = [
    ("ints", np.asarray([0, 1, 1, 7]), [1, 2, 1]),
    ("strings", np.asarray(["1", "0", "x"]), [1, 1, 1]),
    ("floats-are-labels-too", np.asarray([1.0, 0.0], dtype=object), [1, 1, 0]),
    ("bool-is-not-1", np.asarray([True, 1], dtype=object), [0, 1, 1]),  # "true" is another label than "1"
    ("missing-label", np.asarray([None, 0], dtype=object), [1, 0, 1]),
    ("many-rows", np.tile(np.asarray([0, 1, 1, 9]), 100), [100, 200, 100]),  # the np.unique path
]  # fmt: skip


@pytest.mark.parametrize(("values", "expected"), [c[1:] for c in CLASS_CASES], ids=[c[0] for c in CLASS_CASES])
def test_class_predictions(values: np.ndarray, expected: list[int]) -> None:
    binner = PredictionBinner(CLASSES)
    assert binner.count_predictions(values).tolist() == expected
    assert binner.count_predictions(values).tolist() == expected  # the second time from its cache


def test_numeric_predictions() -> None:
    column = _numeric("", (0.0, 10.0))  # (-inf,0] (0,10] (10,+inf) missing
    counts = PredictionBinner(column).count_predictions(np.asarray([-1.0, 0.0, 5.0, 10.0, 11.0, NAN]))
    assert counts.tolist() == [2, 2, 1, 1]
