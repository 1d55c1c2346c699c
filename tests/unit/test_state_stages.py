"""status.canary for the rollout stages: stage, stageStartedAt and the experiment's comparisons
round-trip through to_status/from_status, and what to_status writes is valid status (camelCase)."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import replace
from typing import Any

import pytest

from modelpilot.api.models import ModelDeploymentStatus
from modelpilot.rollout.machine import CanaryState, Measurement
from modelpilot.rollout.stages import ComparisonRecord, ExperimentReport
from modelpilot.rollout.state import experiment_from_status, from_status, to_status

T0 = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC)
BASE = CanaryState(state="Progressing", version="v2", revision="c0ffee0001", started_at=T0, last_progress_at=T0,
                   step=0, ready_at=T0 + dt.timedelta(seconds=5))

WINNER = ComparisonRecord(metric="conversion", verdict="Winner", canary=0.12, stable=0.1, difference=0.02,
                          ci_low=0.011332, ci_high=0.028668, p_value=6e-06, samples_canary=10000.0,
                          samples_stable=10000.0, detail="canary 12.0% vs stable 10.0%: +2.0 points")
MEAN = ComparisonRecord(metric="basket", verdict="NoDifference", canary=5.5, stable=5.4, difference=0.1,
                        ci_low=-0.2, ci_high=0.4, p_value=0.5, samples_canary=1000.0, samples_stable=990.5)
PROVIDER_ERROR = ComparisonRecord(metric="revenue", verdict="Inconclusive", detail="provider error: down")
TOO_FEW = ComparisonRecord(metric="clicks", verdict="Inconclusive", canary=0.5, stable=0.25, difference=0.25,
                           samples_canary=3.0, samples_stable=4.0, detail="too few samples")

STAGE_CASES = [
    ("not-ready", replace(BASE, step=-1, ready_at=None)),
    ("shadow", replace(BASE, stage="shadow", stage_started_at=T0 + dt.timedelta(seconds=5))),
    ("segment-paused", replace(BASE, state="Paused", paused_by="inconclusive", stage="segment",
                               stage_started_at=T0 + dt.timedelta(minutes=1))),
    ("steps", replace(BASE, stage="steps", step=1, weight=50, stage_started_at=T0 + dt.timedelta(hours=1))),
    ("experiment-interim", replace(BASE, stage="experiment", weight=30, stage_started_at=T0,
                                   experiment=ExperimentReport(False, "Inconclusive", (TOO_FEW,)))),
    ("experiment-final-winner", replace(BASE, stage="experiment", weight=30, stage_started_at=T0,
                                        reason="ExperimentConcluded", message="concluded",
                                        experiment=ExperimentReport(True, "Winner", (WINNER, MEAN)))),
    ("experiment-with-a-provider-error", replace(
        BASE, stage="experiment", weight=30, stage_started_at=T0,
        last_analysis_at=T0 + dt.timedelta(minutes=10),
        analyses=(Measurement(T0, "error-rate", 0.5, "<= 1", "Pass"),),
        experiment=ExperimentReport(False, "Inconclusive", (WINNER, PROVIDER_ERROR)))),
    ("experiment-no-results", replace(BASE, stage="experiment", experiment=ExperimentReport(False, "Inconclusive"))),
    ("rolled-back-in-shadow", replace(BASE, state="RolledBack", stage="shadow", stage_started_at=T0, failed_checks=2)),
]


@pytest.mark.parametrize(("case", "state"), STAGE_CASES, ids=[c[0] for c in STAGE_CASES])
def test_stage_fields_round_trip(case: str, state: CanaryState) -> None:
    assert from_status(to_status(state)) == state


def _keys(value: Any) -> Any:
    """Only the structure: the keys of every dict, recursively."""
    if isinstance(value, dict):
        return {k: _keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_keys(v) for v in value]
    return None


@pytest.mark.parametrize(("case", "state"), STAGE_CASES, ids=[c[0] for c in STAGE_CASES])
def test_to_status_is_valid_status_in_camel_case(case: str, state: CanaryState) -> None:
    written = to_status(state)
    parsed = ModelDeploymentStatus.model_validate({"canary": written}).canary
    assert parsed is not None
    # Every key written is a field of the status model (unknown keys would be silently dropped).
    dumped = parsed.model_dump(mode="json", by_alias=True, exclude_none=True)
    assert _keys(dumped) == _keys(written)
    assert parsed.stage == (state.stage or None)
    assert parsed.stage_started_at == state.stage_started_at
    if state.experiment is None:
        assert "experiment" not in written and parsed.experiment is None
        return
    assert parsed.experiment is not None
    assert (parsed.experiment.final, parsed.experiment.verdict) == (state.experiment.final, state.experiment.verdict)
    for record, status in zip(state.experiment.results, parsed.experiment.results, strict=True):
        fields = ("metric", "verdict", "canary", "stable", "difference", "ci_low", "ci_high", "p_value",
                  "samples_canary", "samples_stable")
        assert [getattr(status, f) for f in fields] == [getattr(record, f) for f in fields]
        assert (status.detail or "") == record.detail


def test_status_keys_are_camel_case() -> None:
    state = dict(STAGE_CASES)["experiment-final-winner"]
    written = to_status(state)
    assert {"stage", "stageStartedAt", "experiment"} <= set(written)
    assert written["stage"] == "experiment" and written["stageStartedAt"] == "2026-11-25T12:00:00Z"
    result = written["experiment"]["results"][0]
    assert set(result) == {"metric", "verdict", "canary", "stable", "difference", "ciLow", "ciHigh", "pValue",
                           "samplesCanary", "samplesStable", "detail"}


# record, the status record written for it
UNFINITE_CASES = [
    ("nan-dropped", ComparisonRecord("m", "Inconclusive", canary=math.nan, stable=0.1, detail="x"),
     {"metric": "m", "verdict": "Inconclusive", "stable": 0.1, "samplesCanary": 0.0, "samplesStable": 0.0,
      "detail": "x"}),
    ("inf-dropped", ComparisonRecord("m", "Loser", difference=-math.inf, ci_low=-math.inf, ci_high=math.inf),
     {"metric": "m", "verdict": "Loser", "samplesCanary": 0.0, "samplesStable": 0.0}),
    ("p-value-clamped", ComparisonRecord("m", "NoDifference", p_value=1.0000004),
     {"metric": "m", "verdict": "NoDifference", "pValue": 1.0, "samplesCanary": 0.0, "samplesStable": 0.0}),
    ("rounded", ComparisonRecord("m", "Winner", canary=0.1234567891),
     {"metric": "m", "verdict": "Winner", "canary": 0.123457, "samplesCanary": 0.0, "samplesStable": 0.0}),
    ("long-detail-cut", ComparisonRecord("m", "Inconclusive", detail="d" * 600),
     {"metric": "m", "verdict": "Inconclusive", "samplesCanary": 0.0, "samplesStable": 0.0, "detail": "d" * 512}),
]


@pytest.mark.parametrize(("case", "record", "written"), UNFINITE_CASES, ids=[c[0] for c in UNFINITE_CASES])
def test_comparisons_are_written_finite_and_valid(case: str, record: ComparisonRecord,
                                                  written: dict[str, Any]) -> None:
    state = replace(BASE, stage="experiment", experiment=ExperimentReport(False, "Inconclusive", (record,)))
    status = to_status(state)
    assert status["experiment"]["results"] == [written]
    ModelDeploymentStatus.model_validate({"canary": status})  # valid (pValue <= 1, detail <= 512)


@pytest.mark.parametrize(("status", "stage", "experiment"), [
    ({}, "", None),  # written by a release without stages
    ({"stage": "segment", "stageStartedAt": "2026-11-25T12:00:00Z"}, "segment", None),
    ({"experiment": {"final": True}}, "", None),  # no verdict: unreadable, dropped
    ({"experiment": {"verdict": "Loser", "results": [{"metric": "m"}, "junk", {"metric": "n", "verdict": "Loser"}]}},
     "", ExperimentReport(False, "Loser", (ComparisonRecord("n", "Loser"),))),
])
def test_older_or_partial_status_reads(status: dict[str, Any], stage: str,
                                       experiment: ExperimentReport | None) -> None:
    state = from_status({"state": "Progressing", "revision": "c0ffee0001", "startedAt": "2026-11-25T12:00:00Z",
                         **status})
    assert state is not None
    assert (state.stage, state.experiment) == (stage, experiment)
    assert state.stage_started_at == (T0 if "stageStartedAt" in status else None)
    assert experiment_from_status(status.get("experiment")) == experiment
