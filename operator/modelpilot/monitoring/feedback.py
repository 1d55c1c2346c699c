"""Concept drift from feedback: ground truth joined to the predictions the server made.

`PredictionStore` remembers each identified request's predictions (the first output, one per row)
for a while, in bounded memory: at most `capacity` rows across all requests (a request counts at
least one), the oldest evicted first, and nothing older than `ttl_seconds`. Feedback for a request
is taken once: the store then keeps only the fact that it was received (one row's worth). Scoring
compares text labels for classes (the truth's text against the prediction's, `labels`: truth 1
matches prediction 1 and "1") and takes the absolute error for values.

`LabelWindow` keeps the joined rows over a sliding window: accuracy = correct / rows for
classification, the mean absolute error for regression. Pure: numpy only, with an injected clock.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from modelpilot.monitoring.labels import label_text, label_texts
from modelpilot.monitoring.profile import CLASSIFICATION, REGRESSION, prediction_is_class
from modelpilot.monitoring.window import SlidingCounts

JOINED = "joined"
UNKNOWN = "unknown"
DUPLICATE = "duplicate"
INVALID = "invalid"
RESULTS = (JOINED, UNKNOWN, DUPLICATE, INVALID)
DEFAULT_CAPACITY = 100_000
DEFAULT_TTL_SECONDS = 3600.0


@dataclass(frozen=True)
class JoinResult:
    """What became of one feedback: `result` is one of RESULTS; for a join, the rows scored and
    either `correct` (classification) or the summed `absolute_error` (regression)."""

    result: str
    task: str = ""
    rows: int = 0
    correct: int = 0
    absolute_error: float = 0.0
    message: str = ""


class _Entry:
    __slots__ = ("expires", "predictions", "size")

    def __init__(self, expires: float, predictions: list[str | None] | np.ndarray | None, size: int) -> None:
        self.expires = expires
        self.predictions = predictions  # None once its feedback has been received
        self.size = size


class PredictionStore:
    """Predictions by request id, for joining feedback to them. Thread-safe."""

    def __init__(
        self,
        capacity: int = DEFAULT_CAPACITY,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.capacity = capacity
        self.ttl_seconds = ttl_seconds
        self.clock = clock
        # Insertion order = expiry order (a fixed TTL). An OrderedDict: finding the oldest of a plain
        # dict after many deletions at its front walks over their empty slots.
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._rows = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def rows(self) -> int:
        """Rows held (a request whose feedback was received counts one)."""
        return self._rows

    def remember(self, request_id: str, predictions: np.ndarray) -> bool:
        """Keep `predictions` (one per row) under `request_id`, replacing an earlier request with the
        same id; False when the request alone has more rows than the store's capacity."""
        size = max(int(predictions.size), 1)
        if size > self.capacity:
            return False
        values: list[str | None] | np.ndarray
        if prediction_is_class(predictions):
            values = label_texts(predictions.reshape(-1))
        else:
            values = predictions.astype(np.float64).reshape(-1)
        with self._lock:
            now = self.clock()
            self._drop(self._entries.pop(request_id, None))
            self._entries[request_id] = _Entry(now + self.ttl_seconds, values, size)
            self._rows += size
            self._expire(now)
        return True

    def join(self, request_id: str, truth: Any) -> JoinResult:
        """Score `truth` (one value, or a list of one per row) against the request's predictions."""
        with self._lock:
            self._expire(self.clock())
            entry = self._entries.get(request_id)
            if entry is None:
                return JoinResult(UNKNOWN, message=f"no prediction with id {request_id!r} (unknown or expired)")
            if entry.predictions is None:
                return JoinResult(DUPLICATE, message=f"feedback for id {request_id!r} was already received")
            result = score(entry.predictions, truth)
            if result.result == JOINED:
                self._rows -= entry.size - 1
                entry.predictions, entry.size = None, 1
            return result

    def _drop(self, entry: _Entry | None) -> None:
        if entry is not None:
            self._rows -= entry.size

    def _expire(self, now: float) -> None:
        """Drop expired entries, then the oldest while over capacity (both from the front)."""
        entries = self._entries
        while entries:
            oldest = next(iter(entries))
            if entries[oldest].expires > now and self._rows <= self.capacity:
                return
            self._drop(entries.popitem(last=False)[1])


def score(predictions: list[str | None] | np.ndarray, truth: Any) -> JoinResult:
    """One request's predictions against its truth: joined, or invalid with the reason."""
    values = truth if isinstance(truth, list) else [truth]
    rows = len(predictions)
    if len(values) != rows:
        return JoinResult(INVALID, message=f"truth has {len(values)} values; the request had {rows} rows")
    if isinstance(predictions, list):
        texts = [_truth_text(v) for v in values]
        if None in texts:
            return JoinResult(INVALID, message="every truth value must be a string, a number or a bool")
        correct = sum(1 for p, t in zip(predictions, texts, strict=True) if p == t)
        return JoinResult(JOINED, CLASSIFICATION, rows, correct=correct)
    numbers = np.asarray([_truth_number(v) for v in values], dtype=np.float64)
    if not np.isfinite(numbers).all():
        return JoinResult(INVALID, message="every truth value must be a finite number")
    errors = np.abs(predictions - numbers)
    scored = np.isfinite(errors)  # a prediction that is not a finite number is not scored
    return JoinResult(JOINED, REGRESSION, int(scored.sum()), absolute_error=float(errors[scored].sum()))


def _truth_text(value: Any) -> str | None:
    if not isinstance(value, str | int | float):  # bool is an int
        return None
    return label_text(value)


def _truth_number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return math.nan
    try:
        return float(value)
    except ValueError:
        return math.nan


@dataclass(frozen=True)
class LabelTotals:
    classification_rows: float
    correct: float
    regression_rows: float
    absolute_error: float

    @property
    def rows(self) -> float:
        return self.classification_rows + self.regression_rows

    @property
    def accuracy(self) -> float:
        return self.correct / self.classification_rows if self.classification_rows else math.nan

    @property
    def error(self) -> float:
        """The mean absolute error."""
        return self.absolute_error / self.regression_rows if self.regression_rows else math.nan


class LabelWindow:
    """Joined feedback over a sliding window (see SlidingCounts)."""

    def __init__(self, window_seconds: float, clock: Callable[[], float] = time.monotonic, slots: int = 12) -> None:
        # Cells: classification rows, correct rows, regression rows, summed absolute error.
        self._counts = SlidingCounts((4,), window_seconds, slots, clock, dtype=np.float64)

    def add(self, result: JoinResult) -> None:
        if result.result != JOINED or result.rows == 0:
            return
        if result.task == CLASSIFICATION:
            self._counts.add(np.asarray([result.rows, result.correct, 0.0, 0.0]))
        else:
            self._counts.add(np.asarray([0.0, 0.0, result.rows, result.absolute_error]))

    def totals(self) -> LabelTotals:
        return LabelTotals(*(float(v) for v in self._counts.total().tolist()))
