"""Drift scores of live counts against a reference distribution over the same bins.

Two measures, read together:

- **PSI**, the population stability index: sum over bins of (live - reference) x ln(live /
  reference), both as fractions. The industry's standard drift score, with conventional thresholds:
  below 0.1 no significant change, 0.1 to 0.2 (or 0.25) a moderate shift, above 0.2 to 0.25 a
  significant one. Both fractions are floored at `epsilon`, so a bin that is empty on one side
  gives a large but finite term.
- **The chi-square goodness-of-fit p-value** of the live counts against the reference. Unlike PSI
  it accounts for the sample size: over a small window PSI is noisy and biased upwards (a handful
  of rows cannot fill ten bins in their reference proportions), while the p-value stays high, so a
  few requests never look like drift; over a large window even a small real shift gets a small
  p-value, and PSI says whether it is large enough to matter.

Both are nan when there are no live counts. Pure: numpy and scipy.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

EPSILON = 1e-4


def psi(reference: np.ndarray, counts: np.ndarray, epsilon: float = EPSILON) -> float:
    """The population stability index of `counts` (rows per bin) against `reference` (fractions)."""
    total = float(np.sum(counts))
    if total <= 0:
        return math.nan
    return float(psi_rows(np.asarray(reference)[np.newaxis], np.asarray(counts)[np.newaxis], epsilon)[0])


def psi_rows(reference: np.ndarray, counts: np.ndarray, epsilon: float = EPSILON) -> np.ndarray:
    """psi() of each row of [F, B] matrices at once (nan for a row without counts). Cells that are 0
    on both sides (padding) add nothing: both are floored to epsilon, and ln(1) = 0."""
    counts = np.asarray(counts, dtype=np.float64)
    totals = counts.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        live = np.maximum(counts / totals, epsilon)
    expected = np.maximum(np.asarray(reference, dtype=np.float64), epsilon)
    scores = np.sum((live - expected) * np.log(live / expected), axis=1)
    scores[totals[:, 0] <= 0] = np.nan
    return scores


def chi_square_p_value(reference: np.ndarray, counts: np.ndarray, epsilon: float = EPSILON) -> float:
    """The p-value of scipy.stats.chisquare: the observed `counts` against expected = total x
    reference.

    Bins are prepared so the test is defined: a bin with neither reference nor counts (padding, an
    empty "missing" bin) carries no information and is dropped; a bin the reference never saw but
    the live rows did keeps a small expected share (the reference floored at `epsilon`, then all
    renormalised to sum to 1), so a few unseen values weigh in strongly without making the
    statistic infinite. With a single bin left the distributions cannot differ: 1.0.
    """
    observed = np.asarray(counts, dtype=np.float64)
    expected_share = np.asarray(reference, dtype=np.float64)
    total = float(observed.sum())
    if total <= 0:
        return math.nan
    keep = (expected_share > 0) | (observed > 0)
    observed, expected_share = observed[keep], expected_share[keep]
    if observed.size < 2:
        return 1.0
    expected_share = np.maximum(expected_share, epsilon)
    expected = total * expected_share / expected_share.sum()
    return float(stats.chisquare(observed, expected).pvalue)
