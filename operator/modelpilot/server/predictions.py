"""Bins of `modelpilot_predictions_total` (docs/runtime.md, Metrics): what a model predicted, per row.

The operator compares the canary's and the stable track's distributions over these bins, so the
bins are the same in every process: a class label's text for classifiers (integer, bool and string
outputs), fixed decade-wide intervals for regressors (float outputs). Counting is vectorised
(`np.unique`, `np.searchsorted`): the Python work per request is bounded by the number of bins, not
by the batch size. Pure numpy; no HTTP, no Prometheus.
"""

from __future__ import annotations

import itertools
import math
import threading

import numpy as np

MAX_CLASS_BINS = 32  # distinct class labels a process keeps; later new ones go to OTHER
OTHER = "other"
NAN = "nan"
PREDICTION_EDGES = (-math.inf, -1e3, -1e2, -1e1, -1.0, -0.1, 0.0, 0.1, 1.0, 1e1, 1e2, 1e3, math.inf)
_INNER_EDGES = np.asarray(PREDICTION_EDGES[1:-1], dtype=np.float64)
_CLASS_KINDS = "biuUSO"  # bool, integers, strings, bytes, objects (strings as sklearn returns them)


def _edge_text(edge: float) -> str:
    return "+inf" if edge == math.inf else f"{edge:g}"


# "[lo,hi)" for each pair of consecutive edges: "[-inf,-1000)", ..., "[0,0.1)", ..., "[1000,+inf)".
FLOAT_BINS = tuple(f"[{_edge_text(lo)},{_edge_text(hi)})" for lo, hi in itertools.pairwise(PREDICTION_EDGES))


def prediction_rows(output: object) -> np.ndarray | None:
    """One value per predicted row ([N] or [N, 1, ...] outputs), or None when the output has no
    single value per row (a scalar, [N, K] probabilities, not an array): those are not counted."""
    if not isinstance(output, np.ndarray) or output.ndim == 0:
        return None
    if output.ndim > 1 and math.prod(output.shape[1:]) != 1:
        return None
    return output.reshape(-1)


def float_bins(values: np.ndarray) -> dict[str, int]:
    """Rows per FLOAT_BINS interval ([lo, hi); -inf and +inf fall in the outer bins), NaN in NAN."""
    values = values.astype(np.float64, copy=False)
    nan = np.isnan(values)
    if nan.any():
        values = values[~nan]
    index = np.searchsorted(_INNER_EDGES, values, side="right")
    counts = np.bincount(index, minlength=len(FLOAT_BINS))
    out = {FLOAT_BINS[i]: int(c) for i, c in enumerate(counts.tolist()) if c}
    nans = int(nan.sum())
    if nans:
        out[NAN] = nans
    return out


def _text(value: object) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def class_labels(values: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(distinct labels as text in order of first appearance, rows per label), or None when the
    values cannot be compared (an object array of mixed types)."""
    try:
        uniques, first, counts = np.unique(values, return_index=True, return_counts=True)
    except TypeError:
        return None
    order = np.argsort(first, kind="stable")
    uniques, counts = uniques[order], counts[order]
    kind = values.dtype.kind
    if kind == "b":
        texts = np.where(uniques, "true", "false")  # as the response's JSON spells them
    elif kind in "iu":
        texts = uniques.astype(str)
    elif kind == "U":
        texts = uniques
    else:  # bytes and objects: as the response encodes them (UTF-8 text, str() otherwise)
        texts = np.asarray([_text(v) for v in uniques.tolist()], dtype=str)
    return texts, counts


class ClassBins:
    """The first `limit` distinct labels this process sees keep their own bin; later new ones go to
    OTHER, so a model with unbounded labels cannot grow the metric without bound."""

    def __init__(self, limit: int = MAX_CLASS_BINS) -> None:
        self.limit = limit
        self._known: set[str] = set()
        self._lock = threading.Lock()

    def assign(self, texts: np.ndarray, counts: np.ndarray) -> dict[str, int]:
        with self._lock:
            known = np.isin(texts, list(self._known)) if self._known else np.zeros(len(texts), dtype=bool)
            room = self.limit - len(self._known)
            if room > 0:
                admitted = np.flatnonzero(~known)[:room]
                self._known.update(texts[admitted].tolist())
                known[admitted] = True
        out: dict[str, int] = {}
        for text, count in zip(texts[known].tolist(), counts[known].tolist(), strict=True):
            out[text] = out.get(text, 0) + int(count)
        other = int(counts[~known].sum())
        if other:
            out[OTHER] = out.get(OTHER, 0) + other
        return out


class PredictionBinner:
    """Rows per bin of one output tensor; keeps the class labels seen so far (see ClassBins)."""

    def __init__(self, max_class_bins: int = MAX_CLASS_BINS) -> None:
        self.classes = ClassBins(max_class_bins)

    def count(self, output: object) -> dict[str, int]:
        """{bin: rows}; empty for an output that is not one value per row or has another datatype."""
        rows = prediction_rows(output)
        if rows is None or rows.size == 0:
            return {}
        kind = rows.dtype.kind
        if kind == "f":
            return float_bins(rows)
        if kind not in _CLASS_KINDS:
            return {}
        labels = class_labels(rows)
        return {} if labels is None else self.classes.assign(*labels)
