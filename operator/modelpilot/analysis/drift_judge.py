"""Judging the stable track's drift readings: the DataDrift and ConceptDrift conditions and
`status.drift` (pure: readings and settings in, a report out).

DataDrift is True when a feature's PSI reaches `featurePSI`, a feature past maxFeatures does (the
runtime's summary), or the predictions' PSI reaches `predictionPSI`; Unknown without metrics,
without a profile, or with fewer than `minSamples` rows in the window. A PSI counts only when the
chi-square test also rejects "same distribution as the reference" at the 1 % level: PSI is biased
upwards on a small window (by about bins / rows), and the test is what accounts for the sample
size, so a few hundred in-distribution rows never look like drift. ConceptDrift compares
accuracy (or mean absolute error) from feedback with the profile's reference.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

from modelpilot.analysis.drift_read import Distribution, DriftReadings
from modelpilot.api.monitoring import DriftMonitoring
from modelpilot.status import CONCEPT_DRIFT, DATA_DRIFT, Condition, timestamp

TOP_OFFENDERS = 5
SIGNIFICANCE = 0.01  # a PSI over its threshold is drift only with a chi-square p-value below this


def drifts(dist: Distribution, threshold: float) -> bool:
    """PSI at or over the threshold, and significant (a missing p-value does not veto)."""
    psi, p_value = _finite(dist.psi), _finite(dist.p_value)
    return psi is not None and psi >= threshold and (p_value is None or p_value < SIGNIFICANCE)


@dataclass(frozen=True)
class DriftReport:
    """What one evaluation found: the two conditions and the status.drift it writes."""

    data: Condition
    concept: Condition
    status: dict[str, object]


def _g(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3g}"


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _distribution(name: str, dist: Distribution, threshold: float) -> dict[str, object]:
    psi = _finite(dist.psi)
    p_value = _finite(dist.p_value)
    bins = [{"bin": b, "reference": min(1.0, max(0.0, ref)),
             **({} if live is None else {"live": min(1.0, max(0.0, live))})}
            for b, (ref, live) in list(dist.bins.items())[:64]]
    return {"name": name[:253], "psi": psi, "pValue": None if p_value is None else min(1.0, max(0.0, p_value)),
            "drifted": drifts(dist, threshold), "bins": bins}


def _ranked(readings: DriftReadings) -> list[tuple[str, Distribution]]:
    """Features worst first (largest PSI; unmeasured last), ties by name."""
    return sorted(readings.features.items(), key=lambda kv: (-(_finite(kv[1].psi) or -1.0), kv[0]))


def data_condition(settings: DriftMonitoring, r: DriftReadings) -> Condition:
    limits = settings.thresholds
    if r.profile is None:
        return Condition(DATA_DRIFT, None, "NoMetrics",
                         "the stable pods export no drift metrics (not scraped yet, or a custom runtime)")
    if r.profile < 1:
        return Condition(DATA_DRIFT, None, "NoProfile",
                         "no reference profile beside the model: write one with `modelpilot profile` and put it "
                         "next to the model file")
    if r.rows < settings.min_samples:
        return Condition(DATA_DRIFT, None, "TooFewSamples",
                         f"{r.rows:.0f} rows in the window < minSamples {settings.min_samples}")
    ranked = _ranked(r)
    drifted = [(n, d.psi) for n, d in ranked if drifts(d, limits.feature_psi)]
    parts = [f"feature {n} PSI {_g(psi)}" for n, psi in drifted[:TOP_OFFENDERS]]
    if r.unexported is not None and r.unexported[1] > 0 and (r.unexported[2] or 0) >= limits.feature_psi:
        parts.append(f"{r.unexported[1]:.0f} more features past maxFeatures (max PSI {_g(r.unexported[2])})")
    prediction_psi = _finite(r.prediction.psi) if r.prediction is not None else None
    prediction_drifted = r.prediction is not None and drifts(r.prediction, limits.prediction_psi)
    if prediction_drifted:
        parts.append(f"predictions PSI {_g(prediction_psi)}")
    if parts:
        reason = "FeatureDrift" if len(parts) > int(prediction_drifted) else "PredictionDrift"
        return Condition(DATA_DRIFT, True, reason,
                         f"{'; '.join(parts)} (thresholds: featurePSI {limits.feature_psi:g}, predictionPSI "
                         f"{limits.prediction_psi:g}; {r.rows:.0f} rows)")
    worst = next(((n, d) for n, d in ranked if _finite(d.psi) is not None), None)
    if worst is None:
        largest = "no feature measured"
    elif (worst[1].psi or 0.0) >= limits.feature_psi:
        largest = (f"largest feature PSI {_g(worst[1].psi)} ({worst[0]}) is not significant (p-value "
                   f"{_g(worst[1].p_value)} >= {SIGNIFICANCE:g})")
    else:
        largest = f"largest feature PSI {_g(worst[1].psi)} ({worst[0]}) < {limits.feature_psi:g}"
    return Condition(DATA_DRIFT, False, "NoDrift",
                     f"{largest}; predictions PSI {_g(prediction_psi)}; {r.rows:.0f} rows")


def concept_condition(settings: DriftMonitoring, r: DriftReadings) -> Condition:
    limits = settings.thresholds
    if r.feedback_rows <= 0 or (r.accuracy is None and r.error is None):
        return Condition(CONCEPT_DRIFT, None, "NoFeedback",
                         "no feedback in the window (POST /v2/models/NAME/feedback with the request id and the "
                         "true label)")
    if r.feedback_rows < settings.min_samples:
        return Condition(CONCEPT_DRIFT, None, "TooFewSamples",
                         f"{r.feedback_rows:.0f} labelled rows in the window < minSamples {settings.min_samples}")
    if r.accuracy is not None:
        if r.reference_accuracy is None:
            return Condition(CONCEPT_DRIFT, None, "NoReference",
                             f"live accuracy {r.accuracy:.3f}; the profile has no reference accuracy (--target)")
        drop = r.reference_accuracy - r.accuracy
        text = (f"live accuracy {r.accuracy:.3f} over {r.feedback_rows:.0f} labelled rows, reference "
                f"{r.reference_accuracy:.3f} (drop {drop:.3f}, limit {limits.accuracy_drop:g})")
        return Condition(CONCEPT_DRIFT, drop >= limits.accuracy_drop,
                         "AccuracyDrop" if drop >= limits.accuracy_drop else "AsExpected", text)
    assert r.error is not None
    if r.reference_error is None:
        return Condition(CONCEPT_DRIFT, None, "NoReference",
                         f"live mean absolute error {r.error:.4g}; the profile has no reference error (--target)")
    limit = r.reference_error * (1 + limits.error_increase)
    text = (f"live mean absolute error {r.error:.4g} over {r.feedback_rows:.0f} labelled rows, reference "
            f"{r.reference_error:.4g} (limit {limit:.4g})")
    return Condition(CONCEPT_DRIFT, r.error > limit, "ErrorIncrease" if r.error > limit else "AsExpected", text)


def drift_status(settings: DriftMonitoring, r: DriftReadings, now: dt.datetime) -> dict[str, object]:
    limits = settings.thresholds
    status: dict[str, object] = {"lastEvaluated": timestamp(now), "window": settings.window,
                                 "rows": int(r.rows), "profile": bool(r.profile)}
    status["features"] = [_distribution(n, d, limits.feature_psi) for n, d in _ranked(r)[:TOP_OFFENDERS]]
    if r.unexported is not None:
        status["unexported"] = {"count": int(r.unexported[0]), "overThreshold": int(r.unexported[1]),
                                "maxPSI": _finite(r.unexported[2])}
    if r.prediction is not None:
        status["prediction"] = _distribution("prediction", r.prediction, limits.prediction_psi)
    if r.accuracy is not None or r.error is not None:
        classification = r.accuracy is not None
        status["accuracy"] = {"metric": "accuracy" if classification else "error",
                              "live": _finite(r.accuracy if classification else r.error),
                              "reference": _finite(r.reference_accuracy if classification else r.reference_error),
                              "samples": int(r.feedback_rows)}
    return status


def judge_drift(settings: DriftMonitoring, readings: DriftReadings, now: dt.datetime) -> DriftReport:
    return DriftReport(data_condition(settings, readings), concept_condition(settings, readings),
                       drift_status(settings, readings, now))


def unavailable(settings: DriftMonitoring, error: str, now: dt.datetime,
                previous: dict[str, object] | None) -> dict[str, object]:
    """status.drift after a failed read: the last figures kept, the time and the reason updated."""
    status = dict(previous or {"rows": 0, "profile": False})
    status.update(lastEvaluated=timestamp(now), window=settings.window, message=f"metrics provider: {error}"[:1024])
    return status

