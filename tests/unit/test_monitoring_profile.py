"""The reference profile: quantile edges, categories, predictions and target quality against values
worked out by hand, and the JSON form (round trip and validation)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modelpilot.monitoring.contract import PROFILE_SCHEMA
from modelpilot.monitoring.profile import (
    ColumnProfile,
    Profile,
    ProfileError,
    Target,
    build_profile,
    edge_labels,
    load_profile,
    write_profile,
)

NAN = math.nan
INF = math.inf

# (id, values, bins, edges, bin names, reference)
NUMERIC_CASES: list[tuple[str, list[Any], int, tuple[float, ...], tuple[str, ...], list[float]]] = [
    # np.quantile (linear): position (n - 1) x q = 9 x 0.25 = 2.25 -> 3 + 0.25 = 3.25; 4.5 -> 5.5; 6.75 -> 7.75.
    # (-inf,3.25]: 1 2 3; (3.25,5.5]: 4 5; (5.5,7.75]: 6 7; (7.75,+inf): 8 9 10.
    ("one-to-ten", list(range(1, 11)), 4, (3.25, 5.5, 7.75),
     ("(-inf,3.25]", "(3.25,5.5]", "(5.5,7.75]", "(7.75,+inf)", "missing"), [0.3, 0.2, 0.2, 0.3, 0.0]),
    # The median of 1 1 2 2 is 1.5; a value equal to an edge belongs to the bin below it.
    ("edge-belongs-below", [1.0, 1.0, 2.0, 2.0], 2, (1.5,), ("(-inf,1.5]", "(1.5,+inf)", "missing"),
     [0.5, 0.5, 0.0]),
    ("value-on-edge", [1.0, 2.0, 3.0], 2, (2.0,), ("(-inf,2]", "(2,+inf)", "missing"), [2 / 3, 1 / 3, 0.0]),
    # Eight zeros of ten: the 0.25, 0.5 and 0.75 quantiles are all 0, one distinct edge is left.
    ("duplicate-quantiles", [0] * 8 + [1, 2], 4, (0.0,), ("(-inf,0]", "(0,+inf)", "missing"), [0.8, 0.2, 0.0]),
    # NaN is missing; the edges come from the finite values 1 and 3 (median 2).
    ("missing", [1.0, NAN, 3.0, NAN], 2, (2.0,), ("(-inf,2]", "(2,+inf)", "missing"), [0.25, 0.25, 0.5]),
    ("all-missing", [NAN, NAN], 10, (), ("(-inf,+inf)", "missing"), [0.0, 1.0]),
    # Infinities stay out of the quantiles (median of 1 2 3 is 2) but land in the outer bins.
    ("infinities", [-INF, 1.0, 2.0, 3.0, INF], 2, (2.0,), ("(-inf,2]", "(2,+inf)", "missing"), [0.6, 0.4, 0.0]),
    # Bools are numbers: the median of 1 0 0 0 is 0.
    ("bool", [True, False, False, False], 2, (0.0,), ("(-inf,0]", "(0,+inf)", "missing"), [0.75, 0.25, 0.0]),
    ("one-bin", [5.0, 6.0], 1, (), ("(-inf,+inf)", "missing"), [1.0, 0.0]),
]  # fmt: skip


@pytest.mark.parametrize(("values", "bins", "edges", "names", "reference"), [c[1:] for c in NUMERIC_CASES],
                         ids=[c[0] for c in NUMERIC_CASES])  # fmt: skip
def test_numeric_feature(
    values: list[Any], bins: int, edges: tuple[float, ...], names: tuple[str, ...], reference: list[float]
) -> None:
    profile = build_profile({"x": np.asarray(values)}, np.zeros(len(values), dtype=np.int64), bins=bins)
    (feature,) = profile.features
    assert (feature.name, feature.kind) == ("x", "numeric")
    assert feature.edges == pytest.approx(edges)
    assert feature.bins == names
    assert feature.reference == pytest.approx(reference)


# (id, values, top_k, categories, reference over categories + other + missing)
CATEGORICAL_CASES: list[tuple[str, list[Any], int, tuple[str, ...], list[float]]] = [
    # a 2, b 2, c 1, d 1, missing 2 (None and the empty string): the tie a/b goes by name.
    ("top-2", ["b", "a", "b", "c", "a", "d", None, ""], 2, ("a", "b"), [2 / 8, 2 / 8, 2 / 8, 2 / 8]),
    ("all-kept", ["x", "y", "x"], 20, ("x", "y"), [2 / 3, 1 / 3, 0.0, 0.0]),
    # Values spelled like the special bins are never categories: they count in "other".
    ("special-names", ["other", "other", "missing", "a"], 5, ("a",), [0.25, 0.75, 0.0]),
    # Bytes and numbers in an object column: their text (1.0 is "1", like 1).
    ("mixed-objects", [b"caf\xc3\xa9", 1, 1.0, True, NAN], 5, ("1", "café", "true"), [0.4, 0.2, 0.2, 0.0, 0.2]),
]  # fmt: skip


@pytest.mark.parametrize(("values", "top_k", "categories", "reference"), [c[1:] for c in CATEGORICAL_CASES],
                         ids=[c[0] for c in CATEGORICAL_CASES])  # fmt: skip
def test_categorical_feature(
    values: list[Any], top_k: int, categories: tuple[str, ...], reference: list[float]
) -> None:
    column = np.asarray(values, dtype=object)
    profile = build_profile({"color": column}, np.zeros(len(values)), top_k=top_k)
    (feature,) = profile.features
    assert feature.kind == "categorical"
    assert feature.categories == categories
    assert feature.bins == (*categories, "other", "missing")
    assert feature.reference == pytest.approx(reference)


def test_string_column_is_categorical() -> None:
    profile = build_profile({"s": np.asarray(["a", "b", "a"])}, np.zeros(3))
    assert profile.features[0].kind == "categorical"


# (id, predictions, kind, bins, reference)
PREDICTION_CASES: list[tuple[str, np.ndarray, str, tuple[str, ...], list[float]]] = [
    ("int-classes", np.asarray([0, 1, 1, 2]), "class", ("1", "0", "2", "other"), [0.5, 0.25, 0.25, 0.0]),
    ("bool-classes", np.asarray([True, True, False]), "class", ("true", "false", "other"), [2 / 3, 1 / 3, 0.0]),
    ("string-classes", np.asarray(["setosa", "virginica"], dtype=object), "class",
     ("setosa", "virginica", "other"), [0.5, 0.5, 0.0]),
    # Float predictions get quantile bins: the median of 0.5 1.5 2.5 3.5 is 2.
    ("values", np.asarray([0.5, 1.5, 2.5, 3.5]), "numeric", ("(-inf,2]", "(2,+inf)", "missing"), [0.5, 0.5, 0.0]),
]  # fmt: skip


@pytest.mark.parametrize(("predictions", "kind", "bins", "reference"), [c[1:] for c in PREDICTION_CASES],
                         ids=[c[0] for c in PREDICTION_CASES])  # fmt: skip
def test_prediction_distribution(
    predictions: np.ndarray, kind: str, bins: tuple[str, ...], reference: list[float]
) -> None:
    profile = build_profile({"x": np.arange(predictions.size, dtype=np.float64)}, predictions, bins=2)
    assert profile.prediction.kind == kind
    assert profile.prediction.bins == bins
    assert profile.prediction.reference == pytest.approx(reference)


def test_class_predictions_past_top_k_go_to_other() -> None:
    # 25 distinct labels, top_k 20: labels 0..19 (counts tie at 1, by name: "0", "1", "10", ...) are kept.
    profile = build_profile({"x": np.zeros(25)}, np.arange(25), top_k=20)
    assert len(profile.prediction.categories) == 20
    assert profile.prediction.reference[-1] == pytest.approx(5 / 25)


# (id, predictions, target, expected Target)
TARGET_CASES: list[tuple[str, np.ndarray, np.ndarray, Target]] = [
    # 3 of 4 labels equal.
    ("accuracy", np.asarray([0, 1, 1, 2]), np.asarray([0, 1, 2, 2]), Target("classification", 0.75)),
    # Compared as text: "1" and 1.0 are the label 1.
    ("accuracy-as-text", np.asarray([1, 1]), np.asarray(["1", 1.0], dtype=object), Target("classification", 1.0)),
    # |1 - 1.5| + |2 - 2| + |4 - 3| = 1.5 over 3 rows.
    ("mean-absolute-error", np.asarray([1.0, 2.0, 4.0]), np.asarray([1.5, 2.0, 3.0]), Target("regression", 0.5)),
    # A missing target is left out: |1 - 2| over 1 row.
    ("error-skips-missing", np.asarray([1.0, 5.0]), np.asarray([2.0, NAN]), Target("regression", 1.0)),
]  # fmt: skip


@pytest.mark.parametrize(("predictions", "target", "expected"), [c[1:] for c in TARGET_CASES],
                         ids=[c[0] for c in TARGET_CASES])  # fmt: skip
def test_target_quality(predictions: np.ndarray, target: np.ndarray, expected: Target) -> None:
    profile = build_profile({"x": np.zeros(predictions.size)}, predictions, target)
    assert profile.target is not None
    assert profile.target.task == expected.task
    assert profile.target.value == pytest.approx(expected.value)


@pytest.mark.parametrize(
    ("columns", "predictions", "message"),
    [
        ({}, np.zeros(2), "at least one feature"),
        ({"x": np.zeros(3)}, np.zeros(2), "'x' has 3 values for 2 predictions"),
        ({"x": np.zeros(0)}, np.zeros(0), "at least one row"),
    ],
)
def test_build_errors(columns: dict[str, np.ndarray], predictions: np.ndarray, message: str) -> None:
    with pytest.raises(ProfileError, match=message):
        build_profile(columns, predictions)


def test_edge_names_get_more_digits_only_when_they_would_collide() -> None:
    assert edge_labels((0.5, 10.0)) == ("(-inf,0.5]", "(0.5,10]", "(10,+inf)", "missing")
    # :g keeps 6 digits: 1.0000001 and 1.0000002 would both be "1".
    assert edge_labels((1.0000001, 1.0000002))[:2] == ("(-inf,1.0000001]", "(1.0000001,1.0000002]")


# --- JSON ------------------------------------------------------------------------------------------
def _example() -> Profile:
    columns = {"length": np.asarray([1.0, 2.0, 3.0, 4.0]),
               "color": np.asarray(["red", "red", "blue", None], dtype=object)}  # fmt: skip
    return build_profile(columns, np.asarray([0, 1, 1, 1]), np.asarray([0, 1, 0, 1]), bins=2)


def test_json_format() -> None:
    assert _example().to_json() == {
        "schema": PROFILE_SCHEMA,
        "rows": 4,
        "features": [
            # The median of 1 2 3 4 is 2.5.
            {"name": "length", "kind": "numeric", "edges": [2.5], "bins": ["(-inf,2.5]", "(2.5,+inf)", "missing"],
             "reference": [0.5, 0.5, 0.0]},
            {"name": "color", "kind": "categorical", "categories": ["red", "blue"],
             "bins": ["red", "blue", "other", "missing"], "reference": [0.5, 0.25, 0.0, 0.25]},
        ],
        "prediction": {"kind": "class", "categories": ["1", "0"], "bins": ["1", "0", "other"],
                       "reference": [0.75, 0.25, 0.0]},
        "target": {"task": "classification", "accuracy": 0.75},
    }  # fmt: skip


def test_file_round_trip(tmp_path: Path) -> None:
    profile = _example()
    path = write_profile(profile, tmp_path / "sub" / "profile.json")
    assert load_profile(path) == profile
    assert json.loads(path.read_text()) == profile.to_json()


def _broken(change: Any) -> dict[str, Any]:
    raw = _example().to_json()
    change(raw)
    return raw


INVALID: list[tuple[str, Any, str]] = [
    ("not-an-object", [], "must be a JSON object"),
    ("schema", _broken(lambda r: r.update(schema="v0")), "schema must be 'modelpilot.io/profile/v1'"),
    ("rows", _broken(lambda r: r.update(rows=0)), "rows must be a positive integer"),
    ("no-features", _broken(lambda r: r.update(features=[])), "features must be a non-empty list"),
    ("duplicate-name", _broken(lambda r: r["features"][1].update(name="length")), "repeated: length"),
    ("kind", _broken(lambda r: r["features"][0].update(kind="text")), r"features\[0\]: kind must be one of"),
    ("edges-order", _broken(lambda r: r["features"][0].update(edges=[3.0, 1.0])), "strictly increasing"),
    ("bins-count", _broken(lambda r: r["features"][0].update(bins=["a", "missing"])), "must be 3 distinct names"),
    ("reference-sum", _broken(lambda r: r["features"][0].update(reference=[0.5, 0.4, 0.0])), "must sum to 1"),
    ("reference-length", _broken(lambda r: r["features"][0].update(reference=[1.0])), "one fraction in"),
    ("category-named-other", _broken(lambda r: r["features"][1].update(categories=["other", "blue"])),
     "must not be 'other'"),
    ("category-bins", _broken(lambda r: r["features"][1].update(bins=["blue", "red", "other", "missing"])),
     "bins must be the categories"),
    ("prediction-kind", _broken(lambda r: r["prediction"].update(kind="categorical")), "prediction: kind"),
    ("accuracy", _broken(lambda r: r.update(target={"task": "classification", "accuracy": 1.5})), "at most 1"),
    ("task", _broken(lambda r: r.update(target={"task": "ranking"})), "target must be an object with task"),
    ("error", _broken(lambda r: r.update(target={"task": "regression", "error": -1})), "non-negative"),
]  # fmt: skip


@pytest.mark.parametrize(("raw", "message"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID])
def test_invalid_json(raw: Any, message: str) -> None:
    with pytest.raises(ProfileError, match=message):
        Profile.from_json(raw)


def test_load_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match=r"cannot read .*missing\.json"):
        load_profile(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ProfileError, match=r"bad\.json is not JSON"):
        load_profile(tmp_path / "bad.json")
    (tmp_path / "old.json").write_text('{"schema": "v0"}')
    with pytest.raises(ProfileError, match=r"old\.json: schema must be"):
        load_profile(tmp_path / "old.json")


def test_column_profile_json_omits_empty_name() -> None:
    column = ColumnProfile("", "class", ("a", "other"), (1.0, 0.0), categories=("a",))
    assert column.to_json() == {"kind": "class", "categories": ["a"], "bins": ["a", "other"], "reference": [1.0, 0.0]}
