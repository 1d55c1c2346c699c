"""Judging drift readings (analysis.drift_judge), reading them pooled over pods (analysis.drift_read)
and the input-drift analysis metric, table-driven and with a fake metrics provider."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest

from modelpilot.analysis.distribution import input_drift
from modelpilot.analysis.drift_judge import judge_drift
from modelpilot.analysis.drift_read import QUERIES, Distribution, DriftReadings, read_drift
from modelpilot.analysis.queries import check_syntax
from modelpilot.api.models import Metric
from modelpilot.api.monitoring import DriftMonitoring

NOW = dt.datetime(2026, 12, 3, 8, 0, tzinfo=dt.UTC)
SETTINGS = DriftMonitoring.model_validate({"window": "20s", "minSamples": 100})


def readings(**changes: Any) -> DriftReadings:
    base: dict[str, Any] = {
        "profile": 1.0, "rows": 500.0,
        "features": {"sepal_length": Distribution(0.02, 0.6), "petal_length": Distribution(0.05, 0.3)},
        "prediction_rows": 500.0, "prediction": Distribution(0.01, 0.9),
    }
    base.update(changes)
    return DriftReadings(**base)


DATA_CASES = [
    ("no-metrics", DriftReadings(profile=None), None, "NoMetrics", ""),
    ("no-profile", readings(profile=0.0), None, "NoProfile", "modelpilot profile"),
    ("too-few-rows", readings(rows=99.0), None, "TooFewSamples", "99 rows in the window < minSamples 100"),
    ("in-distribution", readings(), False, "NoDrift", "largest feature PSI 0.05 (petal_length) < 0.2"),
    ("one-feature", readings(features={"sepal_length": Distribution(0.02), "petal_length": Distribution(1.7)}),
     True, "FeatureDrift", "feature petal_length PSI 1.7"),
    ("at-the-threshold", readings(features={"a": Distribution(0.2)}), True, "FeatureDrift", "feature a PSI 0.2"),
    ("worst-first", readings(features={"a": Distribution(0.3), "b": Distribution(0.9)}), True, "FeatureDrift",
     "feature b PSI 0.9; feature a PSI 0.3"),
    ("predictions-only", readings(prediction=Distribution(0.5)), True, "PredictionDrift", "predictions PSI 0.5"),
    ("past-max-features", readings(unexported=(30.0, 2.0, 0.8)), True, "FeatureDrift",
     "2 more features past maxFeatures (max PSI 0.8)"),
    ("unexported-below", readings(unexported=(30.0, 0.0, 0.1)), False, "NoDrift", ""),
    # A large PSI on a small window without a significant test is noise, not drift.
    ("not-significant", readings(features={"a": Distribution(0.35, 0.2)}), False, "NoDrift",
     "largest feature PSI 0.35 (a) is not significant (p-value 0.2 >= 0.01)"),
    ("significant", readings(features={"a": Distribution(0.35, 0.001)}), True, "FeatureDrift", "feature a PSI 0.35"),
    ("predictions-not-significant", readings(prediction=Distribution(0.5, 0.3)), False, "NoDrift", ""),
]


@pytest.mark.parametrize(("r", "status", "reason", "text"), [c[1:] for c in DATA_CASES],
                         ids=[c[0] for c in DATA_CASES])
def test_data_drift_condition(r: DriftReadings, status: bool | None, reason: str, text: str) -> None:
    report = judge_drift(SETTINGS, r, NOW)
    assert (report.data.type, report.data.status, report.data.reason) == ("DataDrift", status, reason)
    assert text in report.data.message


CONCEPT_CASES = [
    ("no-feedback", readings(), None, "NoFeedback", "feedback"),
    ("too-few-labels", readings(feedback_rows=50.0, accuracy=0.5, reference_accuracy=0.97), None,
     "TooFewSamples", "50 labelled rows"),
    ("no-reference", readings(feedback_rows=300.0, accuracy=0.7), None, "NoReference", "live accuracy 0.700"),
    ("as-expected", readings(feedback_rows=300.0, accuracy=0.95, reference_accuracy=0.97), False, "AsExpected",
     "drop 0.020"),
    ("accuracy-drop", readings(feedback_rows=300.0, accuracy=0.68, reference_accuracy=0.97), True,
     "AccuracyDrop", "live accuracy 0.680 over 300 labelled rows, reference 0.970 (drop 0.290"),
    ("error-increase", readings(feedback_rows=300.0, error=1.3, reference_error=1.0), True, "ErrorIncrease",
     "limit 1.2"),
    ("error-within", readings(feedback_rows=300.0, error=1.1, reference_error=1.0), False, "AsExpected", ""),
]


@pytest.mark.parametrize(("r", "status", "reason", "text"), [c[1:] for c in CONCEPT_CASES],
                         ids=[c[0] for c in CONCEPT_CASES])
def test_concept_drift_condition(r: DriftReadings, status: bool | None, reason: str, text: str) -> None:
    report = judge_drift(SETTINGS, r, NOW)
    assert (report.concept.type, report.concept.status, report.concept.reason) == ("ConceptDrift", status, reason)
    assert text in report.concept.message


def test_status_lists_top_offenders_worst_first_with_their_bins() -> None:
    features = {f"f{i}": Distribution(i / 10, 0.001, {"(-inf,1]": (0.5, 0.1), "(1,+inf)": (0.5, 0.9)})
                for i in range(8)}
    status = judge_drift(SETTINGS, readings(features=features, feedback_rows=200.0, accuracy=0.9,
                                            reference_accuracy=0.95), NOW).status
    assert [f["name"] for f in status["features"]] == ["f7", "f6", "f5", "f4", "f3"]  # type: ignore[index]
    top = status["features"][0]  # type: ignore[index]
    assert top["drifted"] and top["psi"] == 0.7 and top["bins"][1] == {"bin": "(1,+inf)", "reference": 0.5,
                                                                       "live": 0.9}
    assert status["accuracy"] == {"metric": "accuracy", "live": 0.9, "reference": 0.95, "samples": 200}
    assert status["lastEvaluated"] == "2026-12-03T08:00:00Z" and status["rows"] == 500


class FakeProvider:
    """Answers the drift queries by their name in QUERIES, as Prometheus would after pooling."""

    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    def _key(self, promql: str) -> str:
        for key, template in QUERIES.items():
            head = template.split("{")[0]
            if promql.startswith(head) and _same_shape(template, promql):
                return key
        raise AssertionError(f"unexpected query {promql}")

    def query(self, promql: str) -> float | None:
        key = self._key(promql)
        self.asked.append(key)
        return self.answers.get(key)

    def query_vector(self, promql: str, label: str) -> dict[str, float]:
        raise AssertionError("not used")

    def query_series(self, promql: str) -> list[tuple[dict[str, str], float]]:
        key = self._key(promql)
        self.asked.append(key)
        return self.answers.get(key, [])


def _same_shape(template: str, promql: str) -> bool:
    """The rendered query has the template's metric names in the same order."""
    names = re.findall(r"modelpilot_[a-z_]+", template)
    return re.findall(r"modelpilot_[a-z_]+", promql) == names


def test_read_pools_pods_by_their_rows() -> None:
    # Two pods: 100 rows with PSI 0.1 and 300 rows with PSI 0.5 -> Prometheus returns the weighted sum 160.
    provider = FakeProvider({
        "profile": 1.0, "rows": 400.0,
        "psi": [({"feature": "x"}, 0.1 * 100 + 0.5 * 300)],
        "p_value": [({"feature": "x"}, 0.001)],
        "bins": [({"feature": "x", "bin": "(-inf,1]", "distribution": "reference"}, 0.25 * 400),
                 ({"feature": "x", "bin": "(-inf,1]", "distribution": "live"}, 0.5 * 100 + 0.1 * 300)],
        "prediction_rows": 400.0, "prediction_psi": 0.02 * 400, "prediction_p_value": 0.7,
        "feedback_rows": 200.0, "accuracy": 0.9 * 200, "reference_accuracy": 0.97,
    })
    r = read_drift(provider, namespace="ml", name="fraud", track="stable", revision="abc123")
    assert r.features["x"].psi == pytest.approx(0.4)
    assert r.features["x"].p_value == 0.001
    assert r.features["x"].bins["(-inf,1]"] == (0.25, pytest.approx(0.2))
    assert r.prediction is not None and r.prediction.psi == pytest.approx(0.02)
    assert r.accuracy == pytest.approx(0.9) and r.reference_accuracy == 0.97 and r.error is None


def test_no_drift_series_means_no_further_queries() -> None:
    provider = FakeProvider({})
    assert read_drift(provider, namespace="ml", name="fraud", track="stable", revision="abc") == \
        DriftReadings(profile=None)
    assert provider.asked == ["profile"]


@pytest.mark.parametrize("key", sorted(QUERIES))
def test_every_drift_query_is_valid_promql(key: str) -> None:
    check_syntax(QUERIES[key])


INPUT_DRIFT = Metric(name="input-drift", max=0.2)
INPUT_CASES = [
    ("no-metrics", DriftReadings(profile=None), "Inconclusive", None, "no drift metrics"),
    ("no-profile", readings(profile=0.0), "Inconclusive", None, "no reference profile"),
    ("few-rows", readings(rows=5.0), "Inconclusive", None, "too few rows (5 < 10)"),
    ("pass", readings(), "Pass", 0.05, "largest PSI: feature petal_length over 500 canary rows"),
    ("fail", readings(features={"a": Distribution(0.9), "b": Distribution(0.1)}), "Fail", 0.9, "feature a"),
    ("large-but-not-significant", readings(features={"a": Distribution(0.3, 0.4)}), "Pass", 0.3,
     "feature a over 500 canary rows is not significant (p-value 0.4 >= 0.01)"),
    ("significant-one-fails", readings(features={"a": Distribution(0.5, 0.4), "b": Distribution(0.3, 0.0)}), "Fail",
     0.3, "feature b"),
]


@pytest.mark.parametrize(("r", "verdict", "value", "text"), [c[1:] for c in INPUT_CASES],
                         ids=[c[0] for c in INPUT_CASES])
def test_input_drift_metric(r: DriftReadings, verdict: str, value: float | None, text: str) -> None:
    measured = input_drift(INPUT_DRIFT, r, 10, NOW)
    assert (measured.verdict, measured.value) == (verdict, value)
    assert text in measured.detail and measured.threshold == "<= 0.2"
