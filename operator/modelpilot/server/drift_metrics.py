"""The drift gauges (`modelpilot.monitoring.contract`), computed when Prometheus scrapes.

A custom collector: at each scrape the held-back rows are binned, the window totals read, and PSI
and the chi-square p-value computed per exported feature (the profile's first maxFeatures; the
rest are summarised) and for the predictions. Score series exist only while the window has rows;
the reference shares always do. Every series carries the process's constant labels.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from modelpilot.monitoring import contract as c
from modelpilot.monitoring.profile import CLASSIFICATION
from modelpilot.monitoring.scores import chi_square_p_value, psi, psi_rows
from modelpilot.server.metrics import BASE_LABELS

if TYPE_CHECKING:
    from modelpilot.server.drift import DriftMonitor, LiveCounts

REFERENCE = "reference"
LIVE = "live"


def _gauge(name: str, help_text: str, base: list[str], value: float) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, help_text, labels=BASE_LABELS)
    family.add_metric(base, value)
    return family


def reference_matrix(live: LiveCounts) -> np.ndarray:
    """The profile's reference shares as [F, B], like the counts (cells past a feature's bins 0)."""
    binner = live.features
    matrix = np.zeros((binner.features, binner.width))
    for i, feature in enumerate(live.profile.features):
        matrix[i, : len(feature.bins)] = feature.reference
    return matrix


class DriftCollector(Collector):
    def __init__(self, monitor: DriftMonitor) -> None:
        self.monitor = monitor
        self._reference: tuple[LiveCounts, np.ndarray] | None = None

    def collect(self) -> Iterator[Metric]:
        monitor = self.monitor
        base = list(monitor.labels.values())
        live = monitor.live
        yield _gauge(c.PROFILE_LOADED, "1 when a reference profile is loaded and drift is measured, else 0.", base,
                     0.0 if live is None else 1.0)  # fmt: skip
        if live is not None:
            live.flush()
            yield from self._features(live, base)
            yield from _predictions(live, base)
        yield from _feedback(monitor, base)

    def _reference_of(self, live: LiveCounts) -> np.ndarray:
        if self._reference is None or self._reference[0] is not live:
            self._reference = (live, reference_matrix(live))
        return self._reference[1]

    def _features(self, live: LiveCounts, base: list[str]) -> Iterator[Metric]:
        counts = live.feature_window.total()
        rows = float(counts[0].sum())
        yield _gauge(c.WINDOW_ROWS, "Input rows counted in the drift window.", base, rows)
        features = live.profile.features
        exported = features[: self.monitor.settings.max_features]
        ratio = GaugeMetricFamily(c.FEATURE_BIN_RATIO, "Share of rows per feature bin: the profile's and the window's.",
                                  labels=[*BASE_LABELS, c.FEATURE, c.BIN, c.DISTRIBUTION])  # fmt: skip
        for i, feature in enumerate(exported):
            _add_ratios(ratio, [*base, feature.name], feature.bins, feature.reference, counts[i], rows)
        yield ratio
        unexported = len(features) - len(exported)
        yield _gauge(c.UNEXPORTED_FEATURES, "Profile features past maxFeatures (summarised, not exported).", base,
                     float(unexported))  # fmt: skip
        if rows <= 0:
            return
        scores = psi_rows(self._reference_of(live), counts)
        psi_family = GaugeMetricFamily(c.FEATURE_PSI, "Population stability index of the window against the profile.",
                                       labels=[*BASE_LABELS, c.FEATURE])  # fmt: skip
        p_family = GaugeMetricFamily(c.FEATURE_P_VALUE, "Chi-square goodness-of-fit p-value against the profile.",
                                     labels=[*BASE_LABELS, c.FEATURE])  # fmt: skip
        for i, feature in enumerate(exported):
            bins = len(feature.bins)
            psi_family.add_metric([*base, feature.name], float(scores[i]))
            p_value = chi_square_p_value(np.asarray(feature.reference), counts[i, :bins])
            p_family.add_metric([*base, feature.name], p_value)
        yield psi_family
        yield p_family
        if unexported:
            rest = scores[len(exported) :]
            yield _gauge(c.UNEXPORTED_PSI_MAX, "Largest PSI among the unexported features.", base, float(rest.max()))
            yield _gauge(c.UNEXPORTED_OVER, f"Unexported features with a PSI of at least {c.SUMMARY_PSI}.", base,
                         float(np.count_nonzero(rest >= c.SUMMARY_PSI)))  # fmt: skip


def _add_ratios(
    family: GaugeMetricFamily, labels: list[str], bins: Sequence[str], reference: Sequence[float],
    counts: np.ndarray, rows: float,
) -> None:  # fmt: skip
    """One reference series per bin, and one live series per bin when the window has rows."""
    for k, name in enumerate(bins):
        family.add_metric([*labels, name, REFERENCE], float(reference[k]))
        if rows > 0:
            family.add_metric([*labels, name, LIVE], float(counts[k]) / rows)


def _predictions(live: LiveCounts, base: list[str]) -> Iterator[Metric]:
    counts = live.prediction_window.total()
    rows = float(counts.sum())
    column = live.profile.prediction
    yield _gauge(c.PREDICTION_ROWS, "Predicted rows counted in the drift window.", base, rows)
    ratio = GaugeMetricFamily(c.PREDICTION_BIN_RATIO, "Share of predictions per bin: the profile's and the window's.",
                              labels=[*BASE_LABELS, c.BIN, c.DISTRIBUTION])  # fmt: skip
    _add_ratios(ratio, base, column.bins, column.reference, counts, rows)
    yield ratio
    if rows > 0:
        reference = np.asarray(column.reference)
        yield _gauge(c.PREDICTION_PSI, "Population stability index of the predictions against the profile.", base,
                     psi(reference, counts))  # fmt: skip
        yield _gauge(c.PREDICTION_P_VALUE, "Chi-square goodness-of-fit p-value of the predictions.", base,
                     chi_square_p_value(reference, counts))  # fmt: skip


def _feedback(monitor: DriftMonitor, base: list[str]) -> Iterator[Metric]:
    totals = monitor.labelled.totals()
    yield _gauge(c.FEEDBACK_ROWS, "Labelled rows joined from feedback in the window.", base, totals.rows)
    if totals.classification_rows > 0:
        yield _gauge(c.FEEDBACK_ACCURACY, "Share of correct predictions among the labelled rows in the window.",
                     base, totals.accuracy)  # fmt: skip
    if totals.regression_rows > 0:
        yield _gauge(c.FEEDBACK_ERROR, "Mean absolute error of the labelled rows in the window.", base, totals.error)
    target = None if monitor.profile is None else monitor.profile.target
    if target is not None and target.task == CLASSIFICATION:
        yield _gauge(c.REFERENCE_ACCURACY, "The model's accuracy on the profiled data.", base, target.value)
    elif target is not None:
        yield _gauge(c.REFERENCE_ERROR, "The model's mean absolute error on the profiled data.", base, target.value)
