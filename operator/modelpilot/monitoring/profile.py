"""The reference profile: what the training data and the model's predictions on it looked like.

Each feature, and the first output's predictions, is reduced to a binned distribution:

- numeric columns (integer, float, bool): quantile bins. The edges are the distinct inner quantiles
  at 1/bins .. (bins-1)/bins of the non-missing finite values; the intervals are left-open and
  right-closed, "(-inf,e1]", "(e1,e2]", ..., "(ek,+inf)" (a value equal to an edge belongs to the
  bin below it), then "missing" (NaN, None, text that is not a number);
- categorical columns (strings, objects): the `top_k` most frequent values (ties by name), then
  "other" (every other value) and "missing";
- predictions: class labels (integer, bool, string outputs; as text, see `labels`) top_k plus
  "other", or quantile bins as above for float outputs.

`reference` is the fraction of the rows in each bin (it sums to 1). With a target column the
profile also keeps the model's quality on that data: accuracy for class predictions, the mean
absolute error for float ones. Written as JSON (`PROFILE_SCHEMA`) by `modelpilot profile`, read by
the runtime from the model directory. Pure: numpy only.
"""

from __future__ import annotations

import itertools
import json
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from modelpilot.monitoring.contract import PROFILE_SCHEMA
from modelpilot.monitoring.labels import category_text, label_texts

NUMERIC = "numeric"
CATEGORICAL = "categorical"
CLASS = "class"
OTHER = "other"
MISSING = "missing"
CLASSIFICATION = "classification"
REGRESSION = "regression"
_NUMERIC_KINDS = "biuf"  # bool, integers, floats
_SUM_TOLERANCE = 1e-6


class ProfileError(ValueError):
    """A profile that cannot be built or read; the message says what is wrong."""


@dataclass(frozen=True)
class ColumnProfile:
    """One binned distribution: a feature (kind numeric or categorical) or the predictions (numeric
    or class). `edges` for numeric kinds, `categories` for the others; `reference` per bin."""

    name: str
    kind: str
    bins: tuple[str, ...]
    reference: tuple[float, ...]
    edges: tuple[float, ...] = ()
    categories: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "kind": self.kind} if self.name else {"kind": self.kind}
        if self.kind == NUMERIC:
            out["edges"] = list(self.edges)
        else:
            out["categories"] = list(self.categories)
        out["bins"] = list(self.bins)
        out["reference"] = list(self.reference)
        return out


@dataclass(frozen=True)
class Target:
    """The model's quality on the profiled data: accuracy (classification) or mean absolute error."""

    task: str
    value: float

    def to_json(self) -> dict[str, Any]:
        return {"task": self.task, ("accuracy" if self.task == CLASSIFICATION else "error"): self.value}


@dataclass(frozen=True)
class Profile:
    rows: int
    features: tuple[ColumnProfile, ...]
    prediction: ColumnProfile
    target: Target | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "schema": PROFILE_SCHEMA,
            "rows": self.rows,
            "features": [feature.to_json() for feature in self.features],
            "prediction": self.prediction.to_json(),
        }
        if self.target is not None:
            out["target"] = self.target.to_json()
        return out

    @classmethod
    def from_json(cls, raw: Any) -> Profile:
        """A profile from its JSON form; raises ProfileError naming the first problem."""
        if not isinstance(raw, dict):
            raise ProfileError("a profile must be a JSON object")
        if raw.get("schema") != PROFILE_SCHEMA:
            raise ProfileError(f"schema must be {PROFILE_SCHEMA!r}, got {raw.get('schema')!r}")
        rows = raw.get("rows")
        if type(rows) is not int or rows < 1:
            raise ProfileError(f"rows must be a positive integer, got {rows!r}")
        features = raw.get("features")
        if not isinstance(features, list) or not features:
            raise ProfileError("features must be a non-empty list")
        parsed = tuple(_column(f, f"features[{i}]", (NUMERIC, CATEGORICAL)) for i, f in enumerate(features))
        names = [f.name for f in parsed]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ProfileError(f"feature names must be unique; repeated: {', '.join(duplicates)}")
        prediction = _column(raw.get("prediction"), "prediction", (NUMERIC, CLASS))
        target = None if raw.get("target") is None else _target(raw["target"])
        return cls(rows=rows, features=parsed, prediction=prediction, target=target)


# --- building --------------------------------------------------------------------------------------
def edge_labels(edges: tuple[float, ...]) -> tuple[str, ...]:
    """The interval names of `edges` (then "missing"): "(-inf,e1]", ..., "(ek,+inf)". Numbers are
    written with :g, with more digits when that would give two edges the same name."""
    for spec in ("g", ".10g", ".17g"):
        texts = [f"{edge:{spec}}" for edge in edges]
        if len(set(texts)) == len(texts):
            break
    bounds = ["-inf", *texts]
    intervals = [f"({lo},{hi}]" for lo, hi in itertools.pairwise(bounds)]
    return (*intervals, f"({bounds[-1]},+inf)", MISSING)


def as_numbers(column: np.ndarray) -> np.ndarray:
    """A column as float64; values that are not numbers (None, unparsable text) become NaN."""
    if column.dtype.kind in _NUMERIC_KINDS:
        return column.astype(np.float64, copy=False)
    try:
        return column.astype(np.float64)
    except (TypeError, ValueError):
        flat = column.reshape(-1).tolist()
        return np.fromiter((_number(v) for v in flat), dtype=np.float64, count=len(flat)).reshape(column.shape)


def _number(value: Any) -> float:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _fractions(counts: np.ndarray) -> tuple[float, ...]:
    total = counts.sum()
    return tuple(float(c) / float(total) for c in counts.tolist())


def numeric_column(name: str, values: np.ndarray, bins: int, kind: str = NUMERIC) -> ColumnProfile:
    """Quantile bins of one numeric column (see the module docstring)."""
    numbers = as_numbers(values)
    finite = numbers[np.isfinite(numbers)]
    quantiles = np.arange(1, bins) / bins
    edges = tuple(float(e) for e in np.unique(np.quantile(finite, quantiles))) if finite.size and bins > 1 else ()
    # The bin of v is the number of edges below it (searchsorted left: an edge belongs to the bin below).
    index = np.searchsorted(np.asarray(edges, dtype=np.float64), numbers, side="left")
    index[np.isnan(numbers)] = len(edges) + 1
    counts = np.bincount(index, minlength=len(edges) + 2)
    return ColumnProfile(name, kind, edge_labels(edges), _fractions(counts), edges=edges)


def categorical_column(name: str, values: np.ndarray, top_k: int, kind: str = CATEGORICAL) -> ColumnProfile:
    """The top_k most frequent values (ties by name), "other", and "missing" unless kind is class."""
    flat = values.reshape(-1)
    texts = label_texts(flat) if kind == CLASS else [category_text(v) for v in flat.tolist()]
    frequency = Counter(texts)
    missing = frequency.pop(None, 0)
    # "other" and "missing" name bins: values spelled so are counted in "other", never a category.
    ranked = sorted(frequency.items(), key=lambda item: (item[0] in (OTHER, MISSING), -item[1], item[0]))
    special = sum(1 for text, _ in ranked if text in (OTHER, MISSING))
    top = ranked[: min(top_k, len(ranked) - special)]
    categories = tuple(str(text) for text, _ in top)
    other = sum(count for _, count in ranked[len(top) :])
    if kind == CLASS:
        counts = [*(count for _, count in top), other + missing]
        bins = (*categories, OTHER)
    else:
        counts = [*(count for _, count in top), other, missing]
        bins = (*categories, OTHER, MISSING)
    return ColumnProfile(name, kind, bins, _fractions(np.asarray(counts)), categories=categories)


def is_numeric(values: np.ndarray) -> bool:
    return values.dtype.kind in _NUMERIC_KINDS


def prediction_is_class(predictions: np.ndarray) -> bool:
    """Float outputs are values (numeric bins); integers, bools, strings and objects are classes."""
    return predictions.dtype.kind != "f"


def build_profile(
    columns: dict[str, np.ndarray],
    predictions: np.ndarray,
    target: np.ndarray | None = None,
    *,
    bins: int = 10,
    top_k: int = 20,
) -> Profile:
    """The profile of `columns` (feature name -> one value per row, in feature order) and the model's
    `predictions` on them (one per row), with its quality against `target` when given."""
    if bins < 1 or top_k < 1:
        raise ProfileError("bins and top_k must be at least 1")
    if not columns:
        raise ProfileError("a profile needs at least one feature column")
    predictions = np.asarray(predictions).reshape(-1)
    rows = predictions.size
    if rows == 0:
        raise ProfileError("a profile needs at least one row")
    for name, values in columns.items():
        if np.asarray(values).size != rows:
            raise ProfileError(f"column {name!r} has {np.asarray(values).size} values for {rows} predictions")
    features = tuple(
        numeric_column(name, np.asarray(v), bins) if is_numeric(np.asarray(v))
        else categorical_column(name, np.asarray(v, dtype=object), top_k)
        for name, v in columns.items()
    )  # fmt: skip
    if prediction_is_class(predictions):
        prediction = categorical_column("", predictions, top_k, kind=CLASS)
    else:
        prediction = numeric_column("", predictions, bins)
    quality = None if target is None else model_quality(predictions, np.asarray(target).reshape(-1))
    return Profile(rows=rows, features=features, prediction=prediction, target=quality)


def model_quality(predictions: np.ndarray, target: np.ndarray) -> Target:
    """Accuracy (class predictions: the share of rows whose label text equals the target's) or the
    mean absolute error (float predictions; rows with a missing target or prediction are left out)."""
    if target.size != predictions.size:
        raise ProfileError(f"the target has {target.size} values for {predictions.size} predictions")
    if prediction_is_class(predictions):
        matches = [p == t for p, t in zip(label_texts(predictions), label_texts(target), strict=True)]
        return Target(CLASSIFICATION, float(np.mean(matches)))
    errors = np.abs(as_numbers(predictions) - as_numbers(target))
    errors = errors[np.isfinite(errors)]
    if errors.size == 0:
        raise ProfileError("no row has both a numeric target and a numeric prediction")
    return Target(REGRESSION, float(errors.mean()))


# --- reading ---------------------------------------------------------------------------------------
def _column(raw: Any, where: str, kinds: tuple[str, ...]) -> ColumnProfile:
    if not isinstance(raw, dict):
        raise ProfileError(f"{where} must be an object")
    name = raw.get("name", "")
    if not isinstance(name, str) or (where != "prediction" and not name):
        raise ProfileError(f"{where}: name must be a non-empty string")
    kind = raw.get("kind")
    if kind not in kinds:
        raise ProfileError(f"{where}: kind must be one of {', '.join(kinds)}, got {kind!r}")
    bins = _strings(raw.get("bins"), f"{where}.bins")
    if kind == NUMERIC:
        edges = _numbers(raw.get("edges"), f"{where}.edges")
        if any(not math.isfinite(e) for e in edges) or any(a >= b for a, b in itertools.pairwise(edges)):
            raise ProfileError(f"{where}.edges must be finite and strictly increasing")
        expected_bins, categories = len(edges) + 2, ()
    else:
        edges, categories = (), _strings(raw.get("categories"), f"{where}.categories")
        if len(set(categories)) != len(categories) or {OTHER, MISSING} & set(categories):
            raise ProfileError(f"{where}.categories must be unique and must not be {OTHER!r} or {MISSING!r}")
        tail = (OTHER,) if kind == CLASS else (OTHER, MISSING)
        if bins[len(categories):] != tail or bins[: len(categories)] != categories:
            raise ProfileError(f"{where}.bins must be the categories then {', '.join(tail)}")
        expected_bins = len(categories) + len(tail)
    if len(bins) != expected_bins or len(set(bins)) != len(bins):
        raise ProfileError(f"{where}.bins must be {expected_bins} distinct names, got {len(bins)}")
    if kind == NUMERIC and bins[-1] != MISSING:
        raise ProfileError(f"{where}.bins must end with {MISSING!r}")
    reference = _numbers(raw.get("reference"), f"{where}.reference")
    if len(reference) != len(bins) or any(not 0 <= r <= 1 for r in reference):
        raise ProfileError(f"{where}.reference must hold one fraction in [0, 1] per bin")
    if abs(sum(reference) - 1.0) > _SUM_TOLERANCE:
        raise ProfileError(f"{where}.reference must sum to 1, got {sum(reference):.6g}")
    return ColumnProfile(name, kind, bins, reference, edges=edges, categories=categories)


def _strings(raw: Any, where: str) -> tuple[str, ...]:
    if not isinstance(raw, list) or not all(isinstance(v, str) for v in raw):
        raise ProfileError(f"{where} must be a list of strings")
    return tuple(raw)


def _numbers(raw: Any, where: str) -> tuple[float, ...]:
    if not isinstance(raw, list) or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in raw):
        raise ProfileError(f"{where} must be a list of numbers")
    return tuple(float(v) for v in raw)


def _target(raw: Any) -> Target:
    if not isinstance(raw, dict) or raw.get("task") not in (CLASSIFICATION, REGRESSION):
        raise ProfileError(f"target must be an object with task {CLASSIFICATION!r} or {REGRESSION!r}")
    key = "accuracy" if raw["task"] == CLASSIFICATION else "error"
    value = raw.get(key)
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value) or value < 0:
        raise ProfileError(f"target.{key} must be a non-negative number, got {value!r}")
    if key == "accuracy" and value > 1:
        raise ProfileError(f"target.accuracy must be at most 1, got {value!r}")
    return Target(raw["task"], float(value))


# --- files -----------------------------------------------------------------------------------------
def load_profile(path: Path) -> Profile:
    """Read and check a profile file; raises ProfileError (also for unreadable or non-JSON files)."""
    try:
        raw = json.loads(Path(path).read_text())
    except OSError as err:
        raise ProfileError(f"cannot read {path}: {err.strerror or err}") from None
    except ValueError as err:
        raise ProfileError(f"{path} is not JSON: {err}") from None
    try:
        return Profile.from_json(raw)
    except ProfileError as err:
        raise ProfileError(f"{path}: {err}") from None


def write_profile(profile: Profile, path: Path) -> Path:
    """Write `profile` as JSON to `path` (one line per feature, for people reading diffs)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = profile.to_json()
    features = ",\n  ".join(json.dumps(feature) for feature in raw.pop("features"))
    head = json.dumps({k: raw[k] for k in ("schema", "rows")})[:-1]
    tail = ",\n ".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in raw.items() if k not in ("schema", "rows"))
    path.write_text(f'{head},\n "features": [\n  {features}\n ],\n {tail}\n}}\n')
    return path
