"""The built-in distribution metrics: `prediction-shift` (how far the canary's predictions drift
from stable's) and `input-drift` (how far the canary's inputs drift from the reference profile).

Each track's prediction histogram (modelpilot_predictions_total by `bin`, which the runtime
exports: class counts for classifiers, fixed buckets for regressors) is read over the same
window, and the two are compared with the Jensen-Shannon distance (base 2). Jensen-Shannon rather
than the population stability index: it is bounded (0 = same distribution, 1 = disjoint), so one
default limit fits every model, symmetric, and defined when a bin is empty on one side (a class
only the canary predicts), where PSI is infinite without an arbitrary smoothing constant.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable

from modelpilot.analysis.builtin import SELECTOR
from modelpilot.analysis.drift_judge import SIGNIFICANCE, drifts
from modelpilot.analysis.drift_read import DriftReadings
from modelpilot.analysis.evaluate import judge
from modelpilot.analysis.stats import jensen_shannon
from modelpilot.api.models import Metric
from modelpilot.rollout.machine import Measurement

HISTOGRAM = f"sum by (bin) (increase(modelpilot_predictions_total{{{SELECTOR}}}[{{{{window}}}}]))"
# The window reaches back to the canary's Ready (the whole shadow so far), at most this far: a
# distribution needs more samples than a rate, and the canary's own revision bounds it anyway.
MAX_WINDOW_SECONDS = 3600

Histogram = Callable[[str], dict[str, float]]  # track -> {bin: predictions in the window}


def prediction_shift(metric: Metric, histogram: Histogram, min_predictions: int, now: dt.datetime,
                     optional: bool = False) -> Measurement:
    """Judge `metric` (a max on the distance) from both tracks' histograms; Inconclusive when a
    track made fewer than `min_predictions` predictions in the window. `optional` (the shadow's own
    check, not one the metrics list names): a model whose predictions are never counted (no track
    has a single histogram series: a custom runtime, or an output that is not one value per row)
    is not judged on them; a track that has none while the other has some is still Inconclusive."""
    canary, stable = histogram("canary"), histogram("stable")
    threshold = f"<= {metric.max:g}" if metric.max is not None else ""
    if optional and not canary and not stable:
        return Measurement(now, metric.name, None, threshold, "Pass",
                           "not judged: neither track exports a prediction histogram")
    counts = {"canary": sum(canary.values()), "stable": sum(stable.values())}
    short = [f"{track} {n:.0f}" for track, n in counts.items() if n < max(1, min_predictions)]
    if short:
        why = f"too few predictions ({', '.join(short)} < {max(1, min_predictions)})"
        return Measurement(now, metric.name, None, threshold, "Inconclusive", why)
    distance = jensen_shannon(canary, stable)
    measured = judge(metric, distance, None, now)
    detail = f"Jensen-Shannon distance over {counts['canary']:.0f} canary / {counts['stable']:.0f} stable predictions"
    return Measurement(measured.time, measured.metric, measured.value, measured.threshold, measured.verdict,
                       f"{measured.detail}; {detail}" if measured.detail else detail)


def input_drift(metric: Metric, readings: DriftReadings, min_rows: int, now: dt.datetime) -> Measurement:
    """Judge `metric` (a max on the PSI) from the canary's pooled input drift against the reference
    profile: the largest feature PSI, where only a significant one (drift_judge.drifts: its
    chi-square p-value below 1 %) can fail. Inconclusive without a profile or with fewer than
    `min_rows` rows in the canary pods' windows."""
    threshold = f"<= {metric.max:g}" if metric.max is not None else ""
    if readings.profile is None or readings.profile < 1:
        why = "no drift metrics from the canary" if readings.profile is None else \
            "no reference profile beside the canary's model"
        return Measurement(now, metric.name, None, threshold, "Inconclusive", why)
    if readings.rows < max(1, min_rows):
        why = f"too few rows ({readings.rows:.0f} < {max(1, min_rows)}) in the canary's drift window"
        return Measurement(now, metric.name, None, threshold, "Inconclusive", why)
    scored = [(d.psi, name) for name, d in readings.features.items() if d.psi is not None and math.isfinite(d.psi)]
    if not scored:
        return Measurement(now, metric.name, None, threshold, "Inconclusive", "no feature scored")
    limit = metric.max if metric.max is not None else math.inf
    significant = [(d.psi, name) for name, d in readings.features.items() if drifts(d, limit)]
    worst, feature = max(significant or scored)
    if not significant and worst > limit:
        p_value = readings.features[feature].p_value
        return Measurement(now, metric.name, worst, threshold, "Pass",
                           f"feature {feature} over {readings.rows:.0f} canary rows is not significant (p-value "
                           f"{p_value:.3g} >= {SIGNIFICANCE:g})")
    measured = judge(metric, worst, None, now)
    detail = f"largest PSI: feature {feature} over {readings.rows:.0f} canary rows"
    return Measurement(measured.time, measured.metric, measured.value, measured.threshold, measured.verdict,
                       f"{measured.detail}; {detail}" if measured.detail else detail)
