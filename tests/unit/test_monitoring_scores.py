"""PSI against hand-worked values and its symmetry; the chi-square p-value against scipy directly."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from modelpilot.monitoring.scores import EPSILON, chi_square_p_value, psi, psi_rows

LN = math.log

# (id, reference fractions, live counts, PSI by hand)
PSI_CASES: list[tuple[str, list[float], list[int], float]] = [
    ("identical", [0.25, 0.25, 0.5], [25, 25, 50], 0.0),
    # live 0.3 / 0.7 against 0.5 / 0.5.
    ("two-bins", [0.5, 0.5], [30, 70], (0.3 - 0.5) * LN(0.3 / 0.5) + (0.7 - 0.5) * LN(0.7 / 0.5)),
    # An empty live bin is floored at epsilon: finite.
    ("empty-live-bin", [0.5, 0.5], [10, 0],
     (1.0 - 0.5) * LN(1.0 / 0.5) + (EPSILON - 0.5) * LN(EPSILON / 0.5)),
    # A bin the reference never saw (a "missing" bin), live 0.1 of the rows: the reference is floored.
    ("unseen-bin", [0.6, 0.4, 0.0], [54, 36, 10],
     (0.54 - 0.6) * LN(0.54 / 0.6) + (0.36 - 0.4) * LN(0.36 / 0.4) + (0.1 - EPSILON) * LN(0.1 / EPSILON)),
    # Bins empty on both sides add (eps - eps) x ln(1) = 0.
    ("padding", [0.5, 0.5, 0.0, 0.0], [30, 70, 0, 0], (0.3 - 0.5) * LN(0.6) + (0.7 - 0.5) * LN(1.4)),
]  # fmt: skip


@pytest.mark.parametrize(("reference", "counts", "expected"), [c[1:] for c in PSI_CASES], ids=[c[0] for c in PSI_CASES])
def test_psi_by_hand(reference: list[float], counts: list[int], expected: float) -> None:
    assert psi(np.asarray(reference), np.asarray(counts)) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(
    ("p", "q"),
    [
        ([0.5, 0.5], [0.3, 0.7]),
        ([0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1]),
        ([0.9, 0.1, 0.0], [0.2, 0.3, 0.5]),  # with an empty bin: the floor keeps it symmetric too
    ],
)
def test_psi_is_symmetric(p: list[float], q: list[float]) -> None:
    # (q - p) ln(q / p) = (p - q) ln(p / q): swapping reference and live gives the same score.
    rows = 1000
    forward = psi(np.asarray(p), np.asarray(q) * rows)
    backward = psi(np.asarray(q), np.asarray(p) * rows)
    assert forward == pytest.approx(backward)
    assert forward > 0


def test_psi_without_counts_is_nan() -> None:
    assert math.isnan(psi(np.asarray([0.5, 0.5]), np.asarray([0, 0])))


def test_psi_rows_scores_each_row_like_psi() -> None:
    reference = np.asarray([[0.5, 0.5, 0.0], [0.2, 0.3, 0.5]])
    counts = np.asarray([[30, 70, 0], [0, 0, 0]])
    scores = psi_rows(reference, counts)
    assert scores[0] == pytest.approx(psi(reference[0], counts[0]))
    assert math.isnan(scores[1])


# (id, reference, counts, what scipy.stats.chisquare is called with)
CHI_CASES: list[tuple[str, list[float], list[int], list[float], list[float]]] = [
    # expected = total x reference = 100 x (0.2, 0.3, 0.5)
    ("plain", [0.2, 0.3, 0.5], [30, 20, 50], [30, 20, 50], [20, 30, 50]),
    # A bin with neither reference nor counts is dropped.
    ("empty-bin-dropped", [0.5, 0.5, 0.0], [10, 12, 0], [10, 12], [11, 11]),
    # A bin only the live rows have keeps the floored share, then all is renormalised to the total (21).
    ("unseen-bin", [0.5, 0.5, 0.0], [10, 10, 1], [10, 10, 1],
     [21 * 0.5 / (1 + EPSILON), 21 * 0.5 / (1 + EPSILON), 21 * EPSILON / (1 + EPSILON)]),
]  # fmt: skip


@pytest.mark.parametrize(("reference", "counts", "observed", "expected"), [c[1:] for c in CHI_CASES],
                         ids=[c[0] for c in CHI_CASES])  # fmt: skip
def test_chi_square_against_scipy(
    reference: list[float], counts: list[int], observed: list[float], expected: list[float]
) -> None:
    want = stats.chisquare(observed, expected).pvalue
    assert chi_square_p_value(np.asarray(reference), np.asarray(counts)) == pytest.approx(want, rel=1e-12)


def test_chi_square_edge_cases() -> None:
    assert math.isnan(chi_square_p_value(np.asarray([0.5, 0.5]), np.asarray([0, 0])))
    # One bin left: the distributions cannot differ.
    assert chi_square_p_value(np.asarray([1.0, 0.0]), np.asarray([7, 0])) == 1.0


def test_a_few_rows_make_psi_large_but_not_the_p_value_small() -> None:
    # Five rows over ten equally likely bins can fill at most five: PSI is far above 0.2, yet
    # chi-square (statistic 5 with 9 degrees of freedom) sees nothing unusual.
    reference = np.full(10, 0.1)
    counts = np.asarray([1, 1, 1, 1, 1, 0, 0, 0, 0, 0])
    assert psi(reference, counts) > 3
    assert chi_square_p_value(reference, counts) == pytest.approx(stats.chi2.sf(5, 9))
    assert chi_square_p_value(reference, counts) > 0.5
    # The same shares over 5,000 rows: now the p-value says it too.
    assert chi_square_p_value(reference, counts * 1000) < 1e-12
