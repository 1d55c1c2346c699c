"""Analysis for the rollout stages: prediction-shift (Jensen-Shannon between the tracks' prediction
histograms), the experiment's comparisons, both inside run_analysis against a fake provider, and
reading a vector result by label."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import pytest

from modelpilot.analysis.distribution import prediction_shift
from modelpilot.analysis.experiment import compare_metric, experiment_report
from modelpilot.analysis.provider import ProviderError, QueryRejected, by_label
from modelpilot.analysis.run import ExperimentRun, run_analysis
from modelpilot.api.models import Analysis, Experiment, Metric

NOW = dt.datetime(2026, 11, 25, tzinfo=dt.UTC)
REVISIONS = {"canary": "c0ffee0001", "stable": "5ab1e00001"}
SHIFT = Metric.model_validate({"name": "prediction-shift", "max": 0.1})

Answer = float | Exception | None
Vector = dict[str, float] | Exception


class FakeProvider:
    """Answers by substring of the query (first key found wins); records every query."""

    def __init__(self, scalars: dict[str, Answer] | None = None, vectors: dict[str, Vector] | None = None) -> None:
        self.scalars = scalars or {}
        self.vectors = vectors or {}
        self.queries: list[str] = []
        self.vector_queries: list[tuple[str, str]] = []

    def query(self, promql: str) -> float | None:
        self.queries.append(promql)
        return _answer(self.scalars, promql, None)

    def query_vector(self, promql: str, label: str) -> dict[str, float]:
        self.vector_queries.append((promql, label))
        return _answer(self.vectors, promql, {})


def _answer(answers: dict[str, Any], promql: str, default: Any) -> Any:
    for key, answer in answers.items():
        if key in promql:
            if isinstance(answer, Exception):
                raise answer
            return answer
    return default


# -- prediction_shift ----------------------------------------------------------------------------
SAME = {"fraud": 100.0, "ok": 900.0}
# id, canary histogram, stable histogram, min predictions, verdict, value (None: just > max), detail
SHIFT_CASES = [
    ("identical", SAME, SAME, 100, "Pass", 0.0, "over 1000 canary / 1000 stable predictions"),
    ("same-shape-other-volume", {"fraud": 10.0, "ok": 90.0}, SAME, 100, "Pass", 0.0, "100 canary"),
    ("class-shift-40-points", {"fraud": 500.0, "ok": 500.0}, SAME, 100, "Fail", None, "> 0.1"),
    ("a-class-only-the-canary-predicts", {"fraud": 400.0, "ok": 600.0, "new": 400.0}, SAME, 100, "Fail", None, ""),
    ("disjoint", {"a": 100.0}, {"b": 100.0}, 100, "Fail", 1.0, ""),
    ("small-shift-passes", {"fraud": 110.0, "ok": 890.0}, SAME, 100, "Pass", None, ""),
    ("too-few-canary", {"fraud": 5.0, "ok": 10.0}, SAME, 100, "Inconclusive", "none",
     "too few predictions (canary 15 < 100)"),
    ("too-few-both", {}, {"ok": 3.0}, 20, "Inconclusive", "none", "too few predictions (canary 0, stable 3 < 20)"),
    ("min-zero-still-needs-one", {}, {}, 0, "Inconclusive", "none", "(canary 0, stable 0 < 1)"),
]


@pytest.mark.parametrize(("case", "canary", "stable", "minimum", "verdict", "value", "detail"), SHIFT_CASES,
                         ids=[c[0] for c in SHIFT_CASES])
def test_prediction_shift(case: str, canary: dict[str, float], stable: dict[str, float], minimum: int,
                          verdict: str, value: Any, detail: str) -> None:
    histograms = {"canary": canary, "stable": stable}
    measured = prediction_shift(SHIFT, histograms.__getitem__, minimum, NOW)
    assert (measured.metric, measured.verdict, measured.threshold, measured.time) == \
        ("prediction-shift", verdict, "<= 0.1", NOW)
    if value == "none":
        assert measured.value is None
    elif value is None:
        assert measured.value is not None and 0 < measured.value < 1
        assert (measured.value > 0.1) == (verdict == "Fail")
    else:
        assert measured.value == pytest.approx(value, abs=1e-9)
    assert detail in measured.detail


@pytest.mark.parametrize(("canary", "stable", "verdict", "detail"), [
    ({}, {}, "Pass", "not judged: neither track exports a prediction histogram"),
    ({}, SAME, "Inconclusive", "too few predictions (canary 0 < 100)"),  # the canary stopped counting
    ({"fraud": 0.0}, {"ok": 0.0}, "Inconclusive", "too few predictions"),  # series, just no traffic yet
    ({"fraud": 500.0, "ok": 500.0}, SAME, "Fail", "> 0.1"),
])
def test_the_shadows_own_prediction_shift_skips_models_without_histograms(
        canary: dict[str, float], stable: dict[str, float], verdict: str, detail: str) -> None:
    histograms = {"canary": canary, "stable": stable}
    measured = prediction_shift(SHIFT, histograms.__getitem__, 100, NOW, optional=True)
    assert measured.verdict == verdict and detail in measured.detail, measured
    # Named in the metrics list, it is never skipped.
    assert prediction_shift(SHIFT, histograms.__getitem__, 100, NOW).verdict == ("Inconclusive" if not canary
                                                                                   or not stable else verdict)


# -- experiment comparisons ------------------------------------------------------------------------
CONVERSIONS = {"name": "conversion", "successes": 'sum(increase(conv{track="{{track}}"}[{{window}}]))',
               "trials": 'sum(increase(trials{track="{{track}}"}[{{window}}]))'}
BASKET = {"name": "basket", "type": "Mean", "sum": 'sum(basket_sum{track="{{track}}"})',
          "count": 'sum(basket_count{track="{{track}}"})', "sumOfSquares": 'sum(basket_sq{track="{{track}}"})'}


def experiment_spec(*metrics: dict[str, Any], **fields: Any) -> Experiment:
    return Experiment.model_validate({"metrics": list(metrics) or [CONVERSIONS], "minSamples": 1000, **fields})


def conversions(canary: tuple[Answer, Answer], stable: tuple[Answer, Answer]) -> dict[str, Answer]:
    return {'conv{track="canary"}': canary[0], 'trials{track="canary"}': canary[1],
            'conv{track="stable"}': stable[0], 'trials{track="stable"}': stable[1]}


def mean(track: str, n: float, mu: float, var: float) -> dict[str, Answer]:
    """sum, count and sum of squares of n values with mean mu and sample variance var."""
    return {f'basket_sum{{track="{track}"}}': n * mu, f'basket_count{{track="{track}"}}': n,
            f'basket_sq{{track="{track}"}}': var * (n - 1) + n * mu * mu}


def by_substring(answers: dict[str, Answer]) -> Any:
    def query(template: str, track: str) -> float | None:
        return _answer(answers, template.replace("{{track}}", track), None)
    return query


# id, metric, answers, verdict, detail fragment
COMPARE_CASES = [
    ("proportion-winner", CONVERSIONS, conversions((1200, 10000), (1000, 10000)), "Winner", "+2.0 points"),
    ("proportion-loser", CONVERSIONS, conversions((1000, 10000), (1200, 10000)), "Loser", "-2.0 points"),
    ("proportion-equal", CONVERSIONS, conversions((1000, 10000), (1000, 10000)), "NoDifference", "p=1.0000"),
    ("proportion-lower-is-better", {**CONVERSIONS, "higherIsBetter": False},
     conversions((1200, 10000), (1000, 10000)), "Loser", ""),
    ("proportion-too-few", CONVERSIONS, conversions((60, 500), (50, 500)), "Inconclusive", "too few samples"),
    ("proportion-no-data", CONVERSIONS, conversions((None, 10000), (1000, 10000)), "Inconclusive", "no data"),
    ("proportion-nan", CONVERSIONS, conversions((math.nan, 10000), (1000, 10000)), "Inconclusive", "no data"),
    ("provider-error", CONVERSIONS, conversions((1200, ProviderError("timed out")), (1000, 10000)),
     "Inconclusive", "provider error: timed out"),
    ("rejected-query", CONVERSIONS, conversions((QueryRejected("bad_data"), 10000), (1000, 10000)),
     "Inconclusive", "provider error: bad_data"),
    ("mean-welch-winner", BASKET, {**mean("canary", 2000, 5.5, 4.0), **mean("stable", 2000, 5.0, 4.0)},
     "Winner", "canary mean 5.5 vs stable 5"),
    ("mean-welch-no-difference", BASKET, {**mean("canary", 2000, 5.0, 4.0), **mean("stable", 2000, 5.0, 9.0)},
     "NoDifference", ""),
    ("mean-lower-is-better", {**BASKET, "higherIsBetter": False},
     {**mean("canary", 2000, 5.5, 4.0), **mean("stable", 2000, 5.0, 4.0)}, "Loser", ""),
]


@pytest.mark.parametrize(("case", "raw", "answers", "verdict", "detail"), COMPARE_CASES,
                         ids=[c[0] for c in COMPARE_CASES])
def test_compare_metric(case: str, raw: dict[str, Any], answers: dict[str, Answer], verdict: str,
                        detail: str) -> None:
    spec = experiment_spec(raw)
    record = compare_metric(spec.metrics[0], spec, by_substring(answers))
    assert (record.metric, record.verdict) == (raw["name"], verdict)
    assert detail in record.detail
    if verdict in ("Winner", "Loser"):
        assert record.ci_low is not None and record.ci_high is not None and record.p_value is not None
        assert record.ci_low * record.ci_high > 0  # the interval excludes 0
        assert record.p_value < 0.05
    if verdict == "NoDifference":
        assert record.ci_low is not None and record.ci_high is not None and record.ci_low <= 0 <= record.ci_high


def test_proportion_record_carries_the_numbers() -> None:
    spec = experiment_spec()
    record = compare_metric(spec.metrics[0], spec, by_substring(conversions((1200, 10000), (1000, 10000))))
    assert (record.canary, record.stable) == (0.12, 0.1)
    assert record.difference == pytest.approx(0.02)
    assert (record.samples_canary, record.samples_stable) == (10000, 10000)
    assert record.ci_low == pytest.approx(0.0113, abs=1e-4) and record.ci_high == pytest.approx(0.0287, abs=1e-4)


def test_confidence_is_the_experiments() -> None:
    """A difference significant at 95 % but not at 99.9 %."""
    answers = by_substring(conversions((1090, 10000), (1000, 10000)))
    assert compare_metric(experiment_spec().metrics[0], experiment_spec(), answers).verdict == "Winner"
    strict = experiment_spec(confidence=0.999)
    assert compare_metric(strict.metrics[0], strict, answers).verdict == "NoDifference"


@pytest.mark.parametrize(("final", "answers", "verdicts", "verdict"), [
    (True, {**conversions((1200, 10000), (1000, 10000)), **mean("canary", 2000, 5.0, 4.0),
            **mean("stable", 2000, 5.0, 4.0)}, ["Winner", "NoDifference"], "Winner"),
    (False, {**conversions((1200, 10000), (1000, 10000)), **mean("canary", 2000, 4.5, 4.0),
             **mean("stable", 2000, 5.0, 4.0)}, ["Winner", "Loser"], "Loser"),
    (True, {**conversions((1200, 10000), (1000, 10000)), 'basket_sum{track="stable"}': ProviderError("down")},
     ["Winner", "Inconclusive"], "Inconclusive"),
    (False, {**conversions((1000, 10000), (1000, 10000)), **mean("canary", 2000, 5.0, 4.0),
             **mean("stable", 2000, 5.0, 4.0)}, ["NoDifference", "NoDifference"], "NoDifference"),
])
def test_experiment_report(final: bool, answers: dict[str, Answer], verdicts: list[str], verdict: str) -> None:
    report = experiment_report(experiment_spec(CONVERSIONS, BASKET), by_substring(answers), final)
    assert report.final is final
    assert [r.metric for r in report.results] == ["conversion", "basket"]
    assert [r.verdict for r in report.results] == verdicts
    assert report.verdict == verdict


# -- run_analysis with a shift window and an experiment ---------------------------------------------
def shift_analysis(**kw: Any) -> Analysis:
    return Analysis.model_validate({"minRequests": 100, "metrics": [{"name": "prediction-shift", "max": 0.1}],
                                    **kw})


def histograms(canary: dict[str, float], stable: dict[str, float]) -> dict[str, Vector]:
    return {'track="canary"': canary, 'track="stable"': stable}


@pytest.mark.parametrize(("canary", "stable", "verdict"), [
    (SAME, SAME, "Pass"), ({"fraud": 500.0, "ok": 500.0}, SAME, "Fail"), ({"ok": 50.0}, SAME, "Inconclusive"),
])
def test_run_analysis_prediction_shift(canary: dict[str, float], stable: dict[str, float], verdict: str) -> None:
    provider = FakeProvider({"modelpilot_requests_total": 500.0}, histograms(canary, stable))
    result = run_analysis(shift_analysis(), namespace="ml", name="fraud", window=30, provider=provider, now=NOW,
                          revisions=REVISIONS, shift_window=600)
    assert result.verdict == verdict
    (measured,) = result.measurements
    assert measured.metric == "prediction-shift" and measured.verdict == verdict
    if verdict == "Pass":
        assert measured.value == 0.0
    # One histogram per track, by bin, over the shift window and each track's own revision.
    assert [label for _, label in provider.vector_queries] == ["bin", "bin"]
    canary_query, stable_query = (q for q, _ in provider.vector_queries)
    assert canary_query.startswith("sum by (bin) (increase(modelpilot_predictions_total{")
    for query, track in ((canary_query, "canary"), (stable_query, "stable")):
        assert f'namespace="ml", model_deployment="fraud", track="{track}", revision="{REVISIONS[track]}"' in query
        assert "[600s]" in query and "[30s]" not in query
    assert all("[30s]" in q for q in provider.queries)  # the request guard keeps the analysis window


def test_run_analysis_shift_window_defaults_to_the_window() -> None:
    provider = FakeProvider({"modelpilot_requests_total": 500.0}, histograms(SAME, SAME))
    run_analysis(shift_analysis(), namespace="ml", name="fraud", window=45, provider=provider, now=NOW,
                 revisions=REVISIONS)
    assert all("[45s]" in q for q, _ in provider.vector_queries)


def test_run_analysis_histogram_provider_error_is_an_error() -> None:
    provider = FakeProvider({"modelpilot_requests_total": 500.0}, {"predictions": ProviderError("unreachable")})
    result = run_analysis(shift_analysis(), namespace="ml", name="fraud", window=30, provider=provider, now=NOW,
                          revisions=REVISIONS, shift_window=600)
    assert result.verdict == "Error" and "unreachable" in result.measurements[0].detail


@pytest.mark.parametrize("final", [False, True])
def test_run_analysis_with_an_experiment(final: bool) -> None:
    answers = {"modelpilot_requests_total": 500.0, **conversions((1200, 10000), (1000, 10000)),
               'basket_count{track="canary"}': ProviderError("prometheus timed out")}
    provider = FakeProvider(answers, histograms(SAME, SAME))
    run = ExperimentRun(experiment=experiment_spec(CONVERSIONS, BASKET), window=3600, final=final)
    result = run_analysis(shift_analysis(), namespace="ml", name="fraud", window=30, provider=provider, now=NOW,
                          revisions=REVISIONS, shift_window=600, experiment=run)
    assert result.verdict == "Pass"  # the guardrails; the experiment is judged on its own report
    report = result.experiment
    assert report is not None and report.final is final
    winner, failed = report.results
    assert (winner.metric, winner.verdict) == ("conversion", "Winner")
    assert winner.ci_low is not None and winner.ci_low > 0
    assert (failed.metric, failed.verdict) == ("basket", "Inconclusive")
    assert "provider error" in failed.detail and "timed out" in failed.detail
    assert report.verdict == "Inconclusive"
    experiment_queries = [q for q in provider.queries if "conv{" in q or "trials{" in q]
    assert len(experiment_queries) == 4 and all("[3600s]" in q for q in experiment_queries)


def test_run_analysis_without_enough_requests_skips_the_experiment() -> None:
    provider = FakeProvider({"modelpilot_requests_total": 5.0})
    run = ExperimentRun(experiment=experiment_spec(), window=3600, final=True)
    result = run_analysis(shift_analysis(), namespace="ml", name="fraud", window=30, provider=provider, now=NOW,
                          revisions=REVISIONS, experiment=run)
    assert result.verdict == "Inconclusive" and result.experiment is None
    assert len(provider.queries) == 1 and not provider.vector_queries


# -- by_label ----------------------------------------------------------------------------------------
def series(value: str, **labels: str) -> dict[str, Any]:
    return {"metric": labels, "value": [1700000000.0, value]}


@pytest.mark.parametrize(("result", "expected"), [
    ([], {}),
    ([series("3", bin="fraud"), series("7.5", bin="ok")], {"fraud": 3.0, "ok": 7.5}),
    ([series("1", bin="0", track="canary")], {"0": 1.0}),
    ([series("+Inf", bin="x")], {"x": math.inf}),
])
def test_by_label(result: Any, expected: dict[str, float]) -> None:
    assert by_label(result, "bin") == expected


@pytest.mark.parametrize(("result", "message"), [
    ([1700000000.0, "2"], "expected an instant vector by bin"),  # a scalar
    ({"oops": 1}, "expected an instant vector by bin"),
    ("2", "expected an instant vector by bin"),
    ([series("1", bin="a"), series("2", track="canary")], "without the label 'bin'"),
    ([{"metric": {"bin": "a"}, "values": [[1, "1"]]}], "without a value"),  # a range vector
    ([series("abc", bin="a")], "non-numeric"),
])
def test_by_label_refuses(result: Any, message: str) -> None:
    with pytest.raises(ProviderError, match=message):
        by_label(result, "bin")
