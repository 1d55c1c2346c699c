"""Data and concept drift of this server process (docs/runtime.md, Drift monitoring).

`DriftMonitor` counts, after each successful inference, the request's feature rows and its first
output's predictions in the bins of the reference profile (`modelpilot.monitoring`) over a sliding
window, and remembers identified requests' predictions for feedback. The scores are computed only
at scrape time (`DriftCollector`), so a request pays for counting, not for statistics.

Counting is batched: a small request's rows wait in a short list (at most PENDING_ELEMENTS values)
and are binned together when the list is full, when the window's time slot changes or at scrape,
which spreads numpy's per-call overhead over many requests. A large request is binned at once.

Without a profile, or with one whose feature count is not the model's, drift is off for the
process (PROFILE_LOADED 0, no score series) and the model still serves; feedback still works.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter

from modelpilot.monitoring import contract
from modelpilot.monitoring.binning import FeatureBinner, PredictionBinner
from modelpilot.monitoring.feedback import (
    DEFAULT_CAPACITY,
    DEFAULT_TTL_SECONDS,
    RESULTS,
    JoinResult,
    LabelWindow,
    PredictionStore,
)
from modelpilot.monitoring.profile import Profile, ProfileError, load_profile
from modelpilot.monitoring.window import SlidingCounts
from modelpilot.server.drift_metrics import DriftCollector
from modelpilot.server.loaders import Model, ModelLoadError, find_model_file, model_columns
from modelpilot.server.metrics import BASE_LABELS, MetricLabels
from modelpilot.server.predictions import prediction_rows

log = logging.getLogger("modelpilot.server")

PENDING_ELEMENTS = 16 * 1024  # feature values held back before they are binned together
Clock = Callable[[], float]


@dataclass(frozen=True)
class DriftSettings:
    """What the operator sets in the pod (contract.ENV_*), plus the feedback store's bounds."""

    enabled: bool = True
    window_seconds: float = float(contract.DEFAULT_WINDOW_SECONDS)
    max_features: int = contract.DEFAULT_MAX_FEATURES
    feedback_capacity: int = DEFAULT_CAPACITY  # predicted rows remembered for feedback
    feedback_ttl_seconds: float = DEFAULT_TTL_SECONDS  # how long a prediction waits for its feedback


def feature_matrix(inputs: Mapping[str, np.ndarray]) -> np.ndarray | None:
    """The decoded inputs as one [N, F] matrix, each input's columns in order (as the loaders
    concatenate them); None when they have no common row count."""
    arrays = list(inputs.values())
    if not arrays or any(a.ndim == 0 for a in arrays):
        return None
    rows = arrays[0].shape[0]
    if len(arrays) == 1:
        array = arrays[0]
        return array if array.ndim == 2 else array.reshape(rows, -1)
    if any(a.shape[0] != rows for a in arrays):
        return None
    return np.concatenate([a.reshape(rows, -1) for a in arrays], axis=1)


def find_profile(model_dir: Path, model_format: str | None = None) -> Path | None:
    """PROFILE_FILE beside the model file (which may sit in the directory's single folder), else
    in the model directory itself."""
    candidates = []
    with contextlib.suppress(ModelLoadError):
        candidates.append(find_model_file(model_dir, model_format)[0].parent / contract.PROFILE_FILE)
    if model_dir.is_dir():
        candidates.append(model_dir / contract.PROFILE_FILE)
    return next((path for path in candidates if path.is_file()), None)


class LiveCounts:
    """The windows of one profile: feature rows per bin, predictions per bin. Thread-safe."""

    def __init__(self, profile: Profile, window_seconds: float, clock: Clock) -> None:
        self.profile = profile
        self.features = FeatureBinner(profile)
        self.predictions = PredictionBinner(profile.prediction)
        self.feature_window = SlidingCounts((self.features.features, self.features.width), window_seconds,
                                            clock=clock)  # fmt: skip
        self.prediction_window = SlidingCounts((self.predictions.width,), window_seconds, clock=clock)
        self._pending_rows: list[np.ndarray] = []
        self._pending_predictions: list[np.ndarray] = []
        self._pending_elements = 0
        self._pending_slot = 0
        self._lock = threading.Lock()
        self._warned_width = False

    def observe(self, matrix: np.ndarray | None, predictions: np.ndarray | None) -> None:
        if matrix is not None and matrix.shape[1] != self.features.features:
            if not self._warned_width:
                self._warned_width = True
                log.warning("drift: requests have %d feature columns, the profile %d: their rows are not counted",
                            matrix.shape[1], self.features.features)  # fmt: skip
            matrix = None
        elements = max(0 if matrix is None else matrix.size, 0 if predictions is None else predictions.size)
        if elements >= PENDING_ELEMENTS:  # large: binned at once (the caller is off the event loop)
            if matrix is not None:
                self.feature_window.add(self.features.count(matrix))
            if predictions is not None:
                self.prediction_window.add(self.predictions.count_predictions(predictions))
            return
        slot = self.feature_window.current_slot()
        with self._lock:
            if slot != self._pending_slot:
                self._flush_locked()
                self._pending_slot = slot
            if matrix is not None:
                self._pending_rows.append(matrix)
            if predictions is not None:
                self._pending_predictions.append(predictions)
            self._pending_elements += elements
            if self._pending_elements >= PENDING_ELEMENTS:
                self._flush_locked()

    def flush(self) -> None:
        with self._lock:
            self._flush_locked()

    def _flush_locked(self) -> None:
        rows, predictions = self._pending_rows, self._pending_predictions
        self._pending_rows, self._pending_predictions, self._pending_elements = [], [], 0
        if rows:
            matrix = rows[0] if len(rows) == 1 else np.concatenate(rows)
            self.feature_window.add(self.features.count(matrix), self._pending_slot)
        if predictions:
            values = predictions[0] if len(predictions) == 1 else np.concatenate(predictions)
            self.prediction_window.add(self.predictions.count_predictions(values), self._pending_slot)


class DriftMonitor:
    """Drift counting and feedback for one server process; its gauges go to `registry`."""

    def __init__(
        self, labels: MetricLabels, settings: DriftSettings, registry: CollectorRegistry, clock: Clock = time.monotonic
    ) -> None:
        self.labels = labels
        self.settings = settings
        self.clock = clock
        self.live: LiveCounts | None = None
        self.store = PredictionStore(settings.feedback_capacity, settings.feedback_ttl_seconds, clock)
        self.labelled = LabelWindow(settings.window_seconds, clock)
        self._feedback_total = Counter(
            contract.FEEDBACK_TOTAL, "Feedback requests, by outcome.", (*BASE_LABELS, contract.RESULT),
            registry=registry,
        )  # fmt: skip
        self._results = {result: self._feedback_total.labels(*labels.values(), result) for result in RESULTS}
        registry.register(DriftCollector(self))

    @property
    def profile(self) -> Profile | None:
        return None if self.live is None else self.live.profile

    def attach(self, model: Model, profile: Profile | None) -> bool:
        """Use `profile` for `model`'s requests; False (drift off) without one or when its feature
        count is not the model's."""
        self.live = None
        if profile is None:
            return False
        columns = model_columns(model)
        if columns is not None and columns != len(profile.features):
            log.warning("drift monitoring is off: the profile has %d features, the model takes %d input columns",
                        len(profile.features), columns)  # fmt: skip
            return False
        self.live = LiveCounts(profile, self.settings.window_seconds, self.clock)
        return True

    def load(self, model: Model, model_dir: Path, model_format: str | None = None) -> bool:
        """Find and read the profile of the model in `model_dir`, then attach() it; a missing or
        invalid profile turns drift off (with a log line), never the model."""
        path = find_profile(model_dir, model_format)
        if path is None:
            log.info("drift monitoring is off: no %s beside the model", contract.PROFILE_FILE)
            return self.attach(model, None)
        try:
            profile = load_profile(path)
        except ProfileError as err:
            log.warning("drift monitoring is off: %s", err)
            return self.attach(model, None)
        attached = self.attach(model, profile)
        if attached:
            log.info("drift monitoring on: %d features from %s, window %gs", len(profile.features), path,
                     self.settings.window_seconds)  # fmt: skip
        return attached

    def remember(self, output: Any, request_id: str | None) -> None:
        """Keep the first output's predictions for feedback on `request_id`; never raises."""
        if not request_id:
            return
        try:
            predictions = prediction_rows(output)
            if predictions is not None and predictions.size:
                self.store.remember(request_id, predictions)
        except Exception as err:  # monitoring must never fail a request that succeeded
            log.debug("prediction not remembered: %s: %s", type(err).__name__, err)

    def observe(self, inputs: Mapping[str, np.ndarray], output: Any) -> None:
        """Count one successful inference (its inputs and first output); never raises."""
        try:
            predictions = prediction_rows(output)
            if predictions is not None and predictions.size == 0:
                predictions = None
            live = self.live
            if live is not None:
                live.observe(feature_matrix(inputs), predictions)
        except Exception as err:  # monitoring must never fail a request that succeeded
            log.debug("drift not counted: %s: %s", type(err).__name__, err)

    def feedback(self, request_id: str, truth: Any) -> JoinResult:
        """Join feedback to the request's predictions; counted in FEEDBACK_TOTAL and the window."""
        result = self.store.join(request_id, truth)
        self.labelled.add(result)
        self.count_feedback(result.result)
        return result

    def count_feedback(self, result: str) -> None:
        self._results[result].inc()

    def flush(self) -> None:
        live = self.live
        if live is not None:
            live.flush()
