"""Live rows -> counts per profile bin, fast enough to run on every inference request.

Numeric features are binned together, without a Python loop: one broadcast comparison of the
[N, F] values against a [F, E] edge matrix (padded with +inf, which no value exceeds) counts the
edges below each value, which is its bin (`profile`: an edge belongs to the bin below it); NaN goes
to "missing"; one `np.bincount` over (feature x bins + bin) gives the [F, B] counts. Categorical
features map their values through a dict (bounded by the profile's categories). Pure numpy.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from modelpilot.monitoring.labels import category_text, label_text
from modelpilot.monitoring.profile import CATEGORICAL, NUMERIC, ColumnProfile, Profile, as_numbers

_CACHE_LIMIT = 4096  # raw prediction values whose bin is remembered (bounded, whatever the model answers)
_UNIQUE_FROM = 64  # rows from which np.unique first is cheaper than a lookup per row


class FeatureBinner:
    """Counts rows of a [N, F] feature matrix (F = the profile's features, in order) per bin."""

    def __init__(self, profile: Profile) -> None:
        features = profile.features
        self.features = len(features)
        self.width = max(len(f.bins) for f in features)  # B: every feature's row has this many cells
        numeric = [i for i, f in enumerate(features) if f.kind == NUMERIC]
        self._numeric = np.asarray(numeric, dtype=np.intp)
        self._all_numeric = len(numeric) == self.features
        most_edges = max((len(features[i].edges) for i in numeric), default=0)
        edges = np.full((len(numeric), max(most_edges, 1)), np.inf)
        for row, i in enumerate(numeric):
            edges[row, : len(features[i].edges)] = features[i].edges
        self._edges = edges[np.newaxis]  # [1, Fn, E]
        self._missing = np.asarray([len(features[i].edges) + 1 for i in numeric], dtype=np.intp)
        self._numeric_offsets = self._numeric * self.width
        self._categorical = [
            (i, {c: k for k, c in enumerate(f.categories)}, len(f.categories), len(f.categories) + 1)
            for i, f in enumerate(features)
            if f.kind == CATEGORICAL
        ]

    def count(self, matrix: np.ndarray) -> np.ndarray:
        """[F, B] row counts (cells past a feature's bins stay 0). Raises ValueError for a matrix
        that does not have the profile's F columns."""
        if matrix.ndim != 2 or matrix.shape[1] != self.features:
            raise ValueError(f"expected a [N, {self.features}] feature matrix, got shape {list(matrix.shape)}")
        flat: list[np.ndarray] = []
        if self._numeric.size:
            flat.append(self._numeric_bins(matrix if self._all_numeric else matrix[:, self._numeric]))
        for i, index, other, missing in self._categorical:
            bins = _category_bins(matrix[:, i], index, other, missing)
            flat.append(bins + i * self.width)
        cells = flat[0].ravel() if len(flat) == 1 else np.concatenate([f.ravel() for f in flat])
        size = self.features * self.width
        return np.bincount(cells, minlength=size).reshape(self.features, self.width)

    def _numeric_bins(self, values: np.ndarray) -> np.ndarray:
        """[N, Fn] cell numbers (feature offset + bin) of the numeric columns."""
        if values.dtype != np.float64:
            values = as_numbers(values)
        below = np.count_nonzero(values[:, :, np.newaxis] > self._edges, axis=2)
        nan = np.isnan(values)
        if nan.any():
            below = np.where(nan, self._missing, below)
        return below + self._numeric_offsets


def _category_bins(column: np.ndarray, index: dict[str, int], other: int, missing: int) -> np.ndarray:
    """The bin of each value of one categorical column: its category, "other" or "missing"."""
    get = index.get
    out = []
    for value in column.tolist():
        if type(value) is not str or not value:
            value = category_text(value)
            if value is None:
                out.append(missing)
                continue
        out.append(get(value, other))
    return np.asarray(out, dtype=np.intp)


class PredictionBinner:
    """Counts one value per row (the first output) in the profile's prediction bins."""

    def __init__(self, prediction: ColumnProfile) -> None:
        self.column = prediction
        self.width = len(prediction.bins)
        self._numeric = prediction.kind == NUMERIC
        self._edges = np.asarray(prediction.edges, dtype=np.float64)
        self._index = {c: k for k, c in enumerate(prediction.categories)}
        self._other = len(prediction.categories)  # class bins end with "other" (also for missing labels)
        self._cache: dict[Any, int] = {}

    def count_predictions(self, values: np.ndarray) -> np.ndarray:
        """[B] row counts of a 1-D array of predictions."""
        if self._numeric:
            numbers = as_numbers(values)
            bins = np.searchsorted(self._edges, numbers, side="left")
            nan = np.isnan(numbers)
            if nan.any():
                bins[nan] = self._edges.size + 1
        else:
            bins = self._class_bins(values)
        return np.bincount(bins, minlength=self.width)

    def _class_bins(self, values: np.ndarray) -> np.ndarray:
        if values.size >= _UNIQUE_FROM and values.dtype.kind != "O":
            uniques, inverse = np.unique(values, return_inverse=True)
            return np.asarray([self._class_bin(v) for v in uniques.tolist()], dtype=np.intp)[inverse.reshape(-1)]
        return np.asarray([self._class_bin(v) for v in values.tolist()], dtype=np.intp)

    def _class_bin(self, value: Any) -> int:
        # Keyed by type too: True == 1 as dict keys, but they are the labels "true" and "1".
        key = (type(value), value)
        try:
            found = self._cache.get(key)
        except TypeError:  # an unhashable object
            found, key = None, None
        if found is not None:
            return found
        text = label_text(value)
        found = self._other if text is None else self._index.get(text, self._other)
        if key is not None and len(self._cache) < _CACHE_LIMIT:
            self._cache[key] = found
        return found
