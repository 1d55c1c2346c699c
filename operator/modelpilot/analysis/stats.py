"""Pure statistics for shadow and experiment analysis (no Kubernetes, no I/O).

- `jensen_shannon`: how far apart two prediction histograms are (0 = same shape, 1 = disjoint).
- `proportion_test`: a two-proportion z-test (conversion rates of canary vs stable).
- `welch_test`: Welch's t-test from Prometheus-style sums, counts and sums of squares.
- `combine`: one verdict from several.

Inputs come from Prometheus queries, so they may be None, NaN, non-integer (increase() extrapolates)
or inconsistent; every such case yields an "Inconclusive" comparison with a reason in `detail`,
never an exception. Only a confidence outside (0, 1) raises: that is a programming error.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
from scipy.spatial.distance import jensenshannon
from scipy.stats import norm
from scipy.stats import t as student_t

from modelpilot.api.common import ExperimentVerdict


@dataclass(frozen=True)
class Comparison:
    """The outcome of comparing a canary track with the stable track on one metric."""

    canary: float | None  # rate or mean
    stable: float | None
    difference: float | None  # canary - stable
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    verdict: ExperimentVerdict
    samples_canary: float
    samples_stable: float
    detail: str


def _finite(value: object) -> float | None:
    """The value as a finite float, or None (None, NaN, infinities, non-numbers)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _check_confidence(confidence: float) -> float:
    level = _finite(confidence)
    if level is None or not 0.0 < level < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    return level


def jensen_shannon(a: Mapping[str, float], b: Mapping[str, float]) -> float | None:
    """Jensen-Shannon distance (base 2, in [0, 1]) between two count histograms keyed by bin.

    Keys missing on one side count as 0, and so do negative or non-finite counts. None when
    either histogram has a total of 0.
    """
    keys = sorted(set(a) | set(b))
    p = [max(_finite(a.get(key)) or 0.0, 0.0) for key in keys]
    q = [max(_finite(b.get(key)) or 0.0, 0.0) for key in keys]
    if sum(p) <= 0.0 or sum(q) <= 0.0:
        return None
    with np.errstate(invalid="ignore"):  # identical shapes can round to a divergence of -1e-17
        distance = float(jensenshannon(p, q, base=2))
    if math.isnan(distance):
        return 0.0
    return min(max(distance, 0.0), 1.0)


def combine(verdicts: Iterable[ExperimentVerdict]) -> ExperimentVerdict:
    """Loser if any Loser; else Inconclusive if any; else Winner if any; else NoDifference.

    No verdicts at all is Inconclusive.
    """
    seen = set(verdicts)
    if not seen:
        return "Inconclusive"
    for verdict in ("Loser", "Inconclusive", "Winner"):
        if verdict in seen:
            return verdict  # type: ignore[return-value]
    return "NoDifference"


def _inconclusive(detail: str, samples_canary: float | None, samples_stable: float | None,
                  canary: float | None = None, stable: float | None = None) -> Comparison:
    difference = canary - stable if canary is not None and stable is not None else None
    return Comparison(canary=canary, stable=stable, difference=difference, ci_low=None, ci_high=None,
                      p_value=None, verdict="Inconclusive", samples_canary=samples_canary or 0.0,
                      samples_stable=samples_stable or 0.0, detail=detail)


def _p_text(p_value: float) -> str:
    return "p<0.0001" if p_value < 0.0001 else f"p={p_value:.4f}"


def _confidence_text(confidence: float) -> str:
    return f"{confidence * 100:g}%"


def _verdict(difference: float, p_value: float, confidence: float, higher_is_better: bool) -> ExperimentVerdict:
    if p_value < 1.0 - confidence:
        better = difference > 0 if higher_is_better else difference < 0
        return "Winner" if better else "Loser"
    return "NoDifference"


def _finish(canary: float, stable: float, ci: tuple[float, float], p_value: float, samples: tuple[float, float],
            confidence: float, higher_is_better: bool, min_samples: float, summary: str) -> Comparison:
    """The comparison for a computed test, Inconclusive when a track has fewer than min_samples."""
    difference = canary - stable
    too_few = min(samples) < min_samples
    if too_few:
        verdict: ExperimentVerdict = "Inconclusive"
        summary = f"{summary}; too few samples (canary {samples[0]:g}, stable {samples[1]:g}, need {min_samples:g})"
    else:
        verdict = _verdict(difference, p_value, confidence, higher_is_better)
    return Comparison(canary=canary, stable=stable, difference=difference, ci_low=ci[0], ci_high=ci[1],
                      p_value=p_value, verdict=verdict, samples_canary=samples[0], samples_stable=samples[1],
                      detail=summary)


def _proportion_problem(successes: float, trials: float, track: str) -> str | None:
    if successes < 0 or trials < 0:
        return f"{track}: negative count ({successes:g} successes, {trials:g} trials)"
    if trials == 0:
        return f"{track}: no trials"
    if successes > trials:
        return f"{track}: {successes:g} successes > {trials:g} trials"
    return None


def proportion_test(successes_canary: float | None, trials_canary: float | None, successes_stable: float | None,
                    trials_stable: float | None, confidence: float, higher_is_better: bool = True,
                    min_samples: float = 0) -> Comparison:
    """Two-sided two-proportion z-test of canary vs stable.

    Pooled standard error for the p-value, unpooled for the confidence interval of canary - stable.
    """
    confidence = _check_confidence(confidence)
    xc, nc, xs, ns = (_finite(v) for v in (successes_canary, trials_canary, successes_stable, trials_stable))
    if xc is None or nc is None or xs is None or ns is None:
        return _inconclusive("no data (missing or NaN counts)", nc, ns)
    problems = [p for p in (_proportion_problem(xc, nc, "canary"), _proportion_problem(xs, ns, "stable")) if p]
    if problems:
        return _inconclusive("; ".join(problems), nc, ns)
    rate_c, rate_s = xc / nc, xs / ns
    rates = f"canary {rate_c * 100:.1f}% vs stable {rate_s * 100:.1f}%"
    pooled = (xc + xs) / (nc + ns)
    se_pooled = math.sqrt(pooled * (1.0 - pooled) * (1.0 / nc + 1.0 / ns))
    if se_pooled == 0.0:
        return _inconclusive(f"{rates}: no variance", nc, ns, rate_c, rate_s)
    difference = rate_c - rate_s
    p_value = float(2.0 * norm.sf(abs(difference) / se_pooled))
    se = math.sqrt(rate_c * (1.0 - rate_c) / nc + rate_s * (1.0 - rate_s) / ns)
    half = float(norm.isf((1.0 - confidence) / 2.0)) * se
    ci = (difference - half, difference + half)
    digits = 1 if abs(difference) * 100 >= 1 else 2
    summary = (f"{rates}: {difference * 100:+.{digits}f} points [{_confidence_text(confidence)} CI "
               f"{ci[0] * 100:+.{digits}f}, {ci[1] * 100:+.{digits}f}], {_p_text(p_value)}")
    return _finish(rate_c, rate_s, ci, p_value, (nc, ns), confidence, higher_is_better, min_samples, summary)


def _moments(total: float, count: float, sumsq: float) -> tuple[float | None, float | None]:
    """(mean, sample variance) from sum, count and sum of squares; None where undefined."""
    mean = total / count if count > 0 else None
    if count < 2:
        return mean, None
    variance = (sumsq - total * total / count) / (count - 1.0)
    return mean, max(variance, 0.0)  # cancellation can make a zero variance slightly negative


def welch_test(sum_c: float | None, count_c: float | None, sumsq_c: float | None, sum_s: float | None,
               count_s: float | None, sumsq_s: float | None, confidence: float, higher_is_better: bool = True,
               min_samples: float = 0) -> Comparison:
    """Two-sided Welch's t-test of the canary mean vs the stable mean, from sums of values and squares.

    Sample variance (sumsq - sum^2/n) / (n - 1); Welch-Satterthwaite degrees of freedom; the confidence
    interval of canary - stable from the t distribution.
    """
    confidence = _check_confidence(confidence)
    values = [_finite(v) for v in (sum_c, count_c, sumsq_c, sum_s, count_s, sumsq_s)]
    numbers = [v for v in values if v is not None]
    if len(numbers) < len(values):
        return _inconclusive("no data (missing or NaN sums)", values[1], values[4])
    sc, nc, qc, ss, ns, qs = numbers
    if nc < 0 or ns < 0 or qc < 0 or qs < 0:
        return _inconclusive("negative count or sum of squares", nc, ns)
    (mean_c, var_c), (mean_s, var_s) = _moments(sc, nc, qc), _moments(ss, ns, qs)
    if var_c is None or var_s is None:
        return _inconclusive(f"fewer than 2 samples (canary {nc:g}, stable {ns:g})", nc, ns, mean_c, mean_s)
    assert mean_c is not None and mean_s is not None
    means = f"canary mean {mean_c:.4g} vs stable {mean_s:.4g}"
    err_c, err_s = var_c / nc, var_s / ns
    se2 = err_c + err_s
    if se2 <= 0.0:
        return _inconclusive(f"{means}: no variance", nc, ns, mean_c, mean_s)
    df = se2 * se2 / (err_c * err_c / (nc - 1.0) + err_s * err_s / (ns - 1.0))
    se = math.sqrt(se2)
    difference = mean_c - mean_s
    p_value = float(2.0 * student_t.sf(abs(difference) / se, df))
    half = float(student_t.isf((1.0 - confidence) / 2.0, df)) * se
    ci = (difference - half, difference + half)
    summary = (f"{means}: {difference:+.4g} [{_confidence_text(confidence)} CI {ci[0]:+.4g}, {ci[1]:+.4g}], "
               f"{_p_text(p_value)}")
    return _finish(mean_c, mean_s, ci, p_value, (nc, ns), confidence, higher_is_better, min_samples, summary)
