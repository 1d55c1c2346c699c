"""analysis.stats: JS distance, two-proportion z-test, Welch's t-test, verdicts (table-driven).

Expected values come from independent computations: textbook formulas by hand, the chi-square test
of the 2x2 table (its statistic is the pooled z squared) and scipy's own Welch t-test on raw samples.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from scipy import stats as sps

from modelpilot.analysis.stats import (
    Comparison,
    ExperimentVerdict,
    combine,
    jensen_shannon,
    proportion_test,
    welch_test,
)

NAN = float("nan")


def _js_by_hand(p: list[float], q: list[float]) -> float:
    """sqrt of the base-2 Jensen-Shannon divergence, from the definition."""
    p = [x / sum(p) for x in p]
    q = [x / sum(q) for x in q]
    m = [(x + y) / 2 for x, y in zip(p, q, strict=True)]

    def kl(a: list[float]) -> float:
        return sum(x * math.log2(x / y) for x, y in zip(a, m, strict=True) if x > 0)

    return math.sqrt((kl(p) + kl(q)) / 2)


JS_CASES: list[tuple[str, dict[str, float], dict[str, float], float | None]] = [
    ("identical", {"0": 10, "1": 30}, {"0": 10, "1": 30}, 0.0),
    ("same-shape-different-totals", {"0": 10, "1": 30}, {"0": 1, "1": 3}, 0.0),
    # scipy's divergence rounds to a tiny negative here (sqrt -> NaN): still 0, without a warning.
    ("same-shape-rounding", {"a": 0.1, "b": 0.2, "c": 0.7}, {"a": 0.1 * 3, "b": 0.2 * 3, "c": 0.7 * 3}, 0.0),
    ("disjoint", {"0": 5}, {"1": 7}, 1.0),
    ("disjoint-with-zero-bins", {"0": 5, "1": 0}, {"0": 0, "1": 7}, 1.0),
    ("known-pair", {"a": 1, "b": 0}, {"a": 1, "b": 1}, _js_by_hand([1, 0], [0.5, 0.5])),
    ("missing-key-is-zero", {"a": 1}, {"a": 1, "b": 1}, _js_by_hand([1, 0], [0.5, 0.5])),
    ("three-bins", {"x": 2, "y": 3, "z": 5}, {"x": 4, "y": 4, "z": 2}, _js_by_hand([2, 3, 5], [4, 4, 2])),
    ("nan-and-negative-count-as-zero", {"a": NAN, "b": 2, "c": -1}, {"b": 9}, 0.0),
    ("empty-left", {}, {"a": 1}, None),
    ("empty-right", {"a": 1}, {}, None),
    ("zero-total", {"a": 0, "b": 0}, {"a": 1}, None),
    ("both-empty", {}, {}, None),
]


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize(("a", "b", "expected"), [c[1:] for c in JS_CASES], ids=[c[0] for c in JS_CASES])
def test_jensen_shannon(a: dict[str, float], b: dict[str, float], expected: float | None) -> None:
    got, reverse = jensen_shannon(a, b), jensen_shannon(b, a)
    if expected is None:
        assert got is None and reverse is None
        return
    assert got == pytest.approx(expected, abs=1e-9)
    assert reverse == pytest.approx(got, abs=1e-12)
    assert got is not None and 0.0 <= got <= 1.0


def test_known_pair_by_hand() -> None:
    # P=(1,0), Q=(1/2,1/2), M=(3/4,1/4): KL(P|M)=log2(4/3), KL(Q|M)=(log2(2/3)+1)/2.
    divergence = (math.log2(4 / 3) + (math.log2(2 / 3) + 1) / 2) / 2
    assert jensen_shannon({"a": 1}, {"a": 1, "b": 1}) == pytest.approx(math.sqrt(divergence), abs=1e-12)
    assert math.sqrt(divergence) == pytest.approx(0.557923, abs=1e-6)


# (name, successes_c, trials_c, successes_s, trials_s, confidence, higher_is_better, min_samples, verdict)
PROPORTION_CASES: list[tuple[str, float, float, float, float, float, bool, float, ExperimentVerdict]] = [
    ("1000-trials-not-significant", 120, 1000, 100, 1000, 0.95, True, 0, "NoDifference"),
    ("10000-trials-winner", 1200, 10000, 1000, 10000, 0.95, True, 0, "Winner"),
    ("10000-trials-loser", 1000, 10000, 1200, 10000, 0.95, True, 0, "Loser"),
    ("lower-is-better-flips-winner", 1200, 10000, 1000, 10000, 0.95, False, 0, "Loser"),
    ("lower-is-better-flips-loser", 1000, 10000, 1200, 10000, 0.95, False, 0, "Winner"),
    ("equal-rates", 500, 5000, 1000, 10000, 0.95, True, 0, "NoDifference"),
    ("significant-at-90-not-99", 1150, 10000, 1060, 10000, 0.90, True, 0, "Winner"),
    ("significant-at-90-not-99-strict", 1150, 10000, 1060, 10000, 0.99, True, 0, "NoDifference"),
    ("unequal-trials", 300, 2000, 900, 8000, 0.95, True, 0, "Winner"),
    ("fractional-counts-from-increase", 1200.4, 10000.7, 999.6, 9999.2, 0.95, True, 0, "Winner"),
    ("below-min-samples", 1200, 10000, 1000, 10000, 0.95, True, 20000, "Inconclusive"),
    ("at-min-samples", 1200, 10000, 1000, 10000, 0.95, True, 10000, "Winner"),
    ("one-track-perfect-other-zero", 100, 100, 0, 100, 0.95, True, 0, "Winner"),
]


def _proportion_expected(xc: float, nc: float, xs: float, ns: float, confidence: float) -> tuple[float, float, float]:
    """(p-value, CI low, CI high), independently: chi-square of the 2x2 table and the Wald interval."""
    table = np.array([[xc, nc - xc], [xs, ns - xs]])
    p_value = float(sps.chi2_contingency(table, correction=False)[1])
    pc, ps = xc / nc, xs / ns
    half = sps.norm.ppf(0.5 + confidence / 2) * math.sqrt(pc * (1 - pc) / nc + ps * (1 - ps) / ns)
    return p_value, pc - ps - half, pc - ps + half


@pytest.mark.parametrize(("xc", "nc", "xs", "ns", "confidence", "higher_is_better", "min_samples", "verdict"),
                         [c[1:] for c in PROPORTION_CASES], ids=[c[0] for c in PROPORTION_CASES])
def test_proportion_test(xc: float, nc: float, xs: float, ns: float, confidence: float, higher_is_better: bool,
                         min_samples: float, verdict: ExperimentVerdict) -> None:
    result = proportion_test(xc, nc, xs, ns, confidence, higher_is_better=higher_is_better, min_samples=min_samples)
    p_value, low, high = _proportion_expected(xc, nc, xs, ns, confidence)
    assert result.verdict == verdict, result.detail
    assert result.canary == pytest.approx(xc / nc)
    assert result.stable == pytest.approx(xs / ns)
    assert result.difference == pytest.approx(xc / nc - xs / ns)
    assert result.p_value == pytest.approx(p_value, rel=1e-6, abs=1e-12)
    assert result.ci_low == pytest.approx(low, abs=1e-12)
    assert result.ci_high == pytest.approx(high, abs=1e-12)
    assert (result.samples_canary, result.samples_stable) == (nc, ns)
    assert result.detail


def test_proportion_textbook_values() -> None:
    # 120/1000 vs 100/1000: pooled p=0.11, z = 0.02 / sqrt(0.11*0.89*0.002) = 1.4294, p = 0.1529;
    # Wald CI 0.02 -+ 1.96 * sqrt(0.12*0.88/1000 + 0.1*0.9/1000) = [-0.0074, +0.0474].
    small = proportion_test(120, 1000, 100, 1000, 0.95)
    assert small.p_value == pytest.approx(0.1529, abs=1e-4)
    assert (small.ci_low, small.ci_high) == (pytest.approx(-0.0074, abs=1e-4), pytest.approx(0.0474, abs=1e-4))
    # 1200/10000 vs 1000/10000: z = 4.5198, p = 6.19e-6; CI [+0.0113, +0.0287].
    large = proportion_test(1200, 10000, 1000, 10000, 0.95)
    assert large.p_value == pytest.approx(6.19e-6, rel=1e-3)
    assert (large.ci_low, large.ci_high) == (pytest.approx(0.0113, abs=1e-4), pytest.approx(0.0287, abs=1e-4))
    assert large.detail == "canary 12.0% vs stable 10.0%: +2.0 points [95% CI +1.1, +2.9], p<0.0001"
    assert small.detail == "canary 12.0% vs stable 10.0%: +2.0 points [95% CI -0.7, +4.7], p=0.1529"


# (name, successes_c, trials_c, successes_s, trials_s, min_samples, fragment of detail)
PROPORTION_DEGENERATE: list[tuple[str, float | None, float | None, float | None, float | None, float, str]] = [
    ("zero-trials-canary", 0, 0, 100, 1000, 0, "canary: no trials"),
    ("zero-trials-both", 0, 0, 0, 0, 0, "no trials"),
    ("successes-above-trials", 50, 40, 100, 1000, 0, "canary: 50 successes > 40 trials"),
    ("successes-above-trials-stable", 5, 40, 101, 100, 0, "stable: 101 successes > 100 trials"),
    ("negative-count", -1, 40, 10, 100, 0, "negative"),
    ("none-input", None, 1000, 100, 1000, 0, "no data"),
    ("nan-input", 100, NAN, 100, 1000, 0, "no data"),
    ("infinite-input", 100, 1000, 100, float("inf"), 0, "no data"),
    ("no-variance-all-zero", 0, 1000, 0, 1000, 0, "no variance"),
    ("no-variance-all-one", 1000, 1000, 500, 500, 0, "no variance"),
    ("too-few-samples", 12, 100, 10, 100, 1000, "too few samples"),
]


@pytest.mark.parametrize(("xc", "nc", "xs", "ns", "min_samples", "fragment"),
                         [c[1:] for c in PROPORTION_DEGENERATE], ids=[c[0] for c in PROPORTION_DEGENERATE])
def test_proportion_degenerate(xc: float | None, nc: float | None, xs: float | None, ns: float | None,
                               min_samples: float, fragment: str) -> None:
    result = proportion_test(xc, nc, xs, ns, 0.95, min_samples=min_samples)
    assert result.verdict == "Inconclusive"
    assert fragment in result.detail
    assert isinstance(result.samples_canary, float) and isinstance(result.samples_stable, float)


def _sums(values: np.ndarray) -> tuple[float, float, float]:
    return float(values.sum()), float(values.size), float((values * values).sum())


def _sample(seed: int, mean: float, sd: float, n: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(mean, sd, n)


# (name, canary sample, stable sample, confidence, higher_is_better, verdict)
WELCH_CASES: list[tuple[str, np.ndarray, np.ndarray, float, bool, ExperimentVerdict]] = [
    ("latency-faster-canary", _sample(1, 100, 10, 200), _sample(2, 110, 15, 300), 0.95, False, "Winner"),
    ("latency-slower-canary", _sample(3, 120, 10, 200), _sample(4, 110, 15, 300), 0.95, False, "Loser"),
    ("score-higher-canary", _sample(5, 0.8, 0.1, 500), _sample(6, 0.7, 0.1, 500), 0.95, True, "Winner"),
    ("score-lower-canary", _sample(7, 0.6, 0.1, 500), _sample(8, 0.7, 0.1, 500), 0.99, True, "Loser"),
    ("same-sample", _sample(9, 5, 2, 100), _sample(9, 5, 2, 100), 0.95, True, "NoDifference"),
    ("small-unequal", _sample(10, 1.0, 0.5, 5), _sample(11, 1.2, 3.0, 40), 0.95, True, "NoDifference"),
    ("two-each", np.array([1.0, 2.0]), np.array([10.0, 12.0]), 0.95, True, "Loser"),
    ("one-side-constant", np.array([3.0] * 10), _sample(12, 2.0, 0.5, 50), 0.95, True, "Winner"),
]


@pytest.mark.filterwarnings("ignore:Precision loss:RuntimeWarning")  # scipy's own moments of a constant sample
@pytest.mark.parametrize(("canary", "stable", "confidence", "higher_is_better", "verdict"),
                         [c[1:] for c in WELCH_CASES], ids=[c[0] for c in WELCH_CASES])
def test_welch_test(canary: np.ndarray, stable: np.ndarray, confidence: float, higher_is_better: bool,
                    verdict: ExperimentVerdict) -> None:
    result = welch_test(*_sums(canary), *_sums(stable), confidence, higher_is_better=higher_is_better)
    assert result.verdict == verdict, result.detail
    # Independent: scipy's Welch test on the raw samples, and from their summary statistics.
    raw = sps.ttest_ind(canary, stable, equal_var=False)
    ci = raw.confidence_interval(confidence_level=confidence)
    summary = sps.ttest_ind_from_stats(canary.mean(), canary.std(ddof=1), canary.size,
                                       stable.mean(), stable.std(ddof=1), stable.size, equal_var=False)
    assert result.p_value == pytest.approx(float(raw.pvalue), rel=1e-6, abs=1e-12)
    assert result.p_value == pytest.approx(float(summary.pvalue), rel=1e-6, abs=1e-12)
    assert result.ci_low == pytest.approx(float(ci.low), rel=1e-6, abs=1e-9)
    assert result.ci_high == pytest.approx(float(ci.high), rel=1e-6, abs=1e-9)
    assert result.canary == pytest.approx(canary.mean())
    assert result.stable == pytest.approx(stable.mean())
    assert result.difference == pytest.approx(canary.mean() - stable.mean(), abs=1e-9)
    assert (result.samples_canary, result.samples_stable) == (canary.size, stable.size)


def test_welch_textbook_values() -> None:
    # canary 1,2,3,4 (mean 2.5, var 5/3), stable 2,4,6,8 (mean 5, var 20/3), n=4 each:
    # se^2 = (5/3 + 20/3)/4 = 25/12, t = -2.5/1.4434 = -1.7321, df = (25/12)^2 / ((5/12)^2/3 + (5/3)^2/3) = 4.4118.
    result = welch_test(10, 4, 30, 20, 4, 120, 0.95)
    se = math.sqrt(25 / 12)
    df = (25 / 12) ** 2 / ((5 / 12) ** 2 / 3 + (5 / 3) ** 2 / 3)
    assert df == pytest.approx(4.4118, abs=1e-4)
    assert result.p_value == pytest.approx(2 * sps.t.sf(2.5 / se, df), rel=1e-12)
    assert result.ci_low == pytest.approx(-2.5 - sps.t.ppf(0.975, df) * se, rel=1e-12)
    assert result.verdict == "NoDifference"
    assert result.detail.startswith("canary mean 2.5 vs stable 5: -2.5 [95% CI ")


# (name, sum_c, count_c, sumsq_c, sum_s, count_s, sumsq_s, min_samples, fragment of detail)
WELCH_DEGENERATE: list[tuple[str, float | None, float | None, float | None, float | None, float | None,
                             float | None, float, str]] = [
    ("no-samples", 0, 0, 0, 10, 4, 30, 0, "fewer than 2 samples"),
    ("one-sample", 3, 1, 9, 10, 4, 30, 0, "fewer than 2 samples"),
    ("zero-variance-both", 30, 10, 90, 20, 10, 40, 0, "no variance"),
    ("none-input", None, 4, 30, 10, 4, 30, 0, "no data"),
    ("nan-input", 10, 4, NAN, 10, 4, 30, 0, "no data"),
    ("negative-count", 10, -4, 30, 10, 4, 30, 0, "negative"),
    ("too-few-samples", 10, 4, 30, 20, 4, 120, 5, "too few samples"),
]


@pytest.mark.parametrize(("sc", "nc", "qc", "ss", "ns", "qs", "min_samples", "fragment"),
                         [c[1:] for c in WELCH_DEGENERATE], ids=[c[0] for c in WELCH_DEGENERATE])
def test_welch_degenerate(sc: float | None, nc: float | None, qc: float | None, ss: float | None,
                          ns: float | None, qs: float | None, min_samples: float, fragment: str) -> None:
    result = welch_test(sc, nc, qc, ss, ns, qs, 0.95, min_samples=min_samples)
    assert result.verdict == "Inconclusive"
    assert fragment in result.detail
    assert isinstance(result.samples_canary, float) and isinstance(result.samples_stable, float)


@pytest.mark.parametrize("confidence", [0.0, 1.0, 1.5, -0.1, NAN, 95])
def test_confidence_out_of_range_raises(confidence: float) -> None:
    with pytest.raises(ValueError, match="confidence"):
        proportion_test(120, 1000, 100, 1000, confidence)
    with pytest.raises(ValueError, match="confidence"):
        welch_test(10, 4, 30, 20, 4, 120, confidence)


COMBINE_CASES: list[tuple[str, list[ExperimentVerdict], ExperimentVerdict]] = [
    ("empty", [], "Inconclusive"),
    ("single-winner", ["Winner"], "Winner"),
    ("loser-beats-all", ["Winner", "Inconclusive", "Loser", "NoDifference"], "Loser"),
    ("inconclusive-beats-winner", ["Winner", "Inconclusive", "NoDifference"], "Inconclusive"),
    ("winner-beats-nodifference", ["NoDifference", "Winner", "NoDifference"], "Winner"),
    ("all-nodifference", ["NoDifference", "NoDifference"], "NoDifference"),
]


@pytest.mark.parametrize(("verdicts", "expected"), [c[1:] for c in COMBINE_CASES], ids=[c[0] for c in COMBINE_CASES])
def test_combine(verdicts: list[ExperimentVerdict], expected: ExperimentVerdict) -> None:
    assert combine(verdicts) == expected
    assert combine(iter(verdicts)) == expected


def test_comparison_is_frozen() -> None:
    result = proportion_test(120, 1000, 100, 1000, 0.95)
    assert isinstance(result, Comparison)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.verdict = "Winner"  # type: ignore[misc]
