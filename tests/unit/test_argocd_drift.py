"""The Argo CD health check (docs/argocd/health.lua) with drift: an active DataDrift or ConceptDrift
is appended to the message of whatever health the object has, and never changes the health.

The drift conditions come from the operator's own judging (analysis.drift_judge, control.drift)
and are merged into the fixtures of tests/unit/argocd_fixtures.py the way the operator writes them.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from modelpilot.analysis.drift_judge import judge_drift
from modelpilot.analysis.drift_read import Distribution, DriftReadings
from modelpilot.api.monitoring import DriftMonitoring
from modelpilot.cli import actions as cli_actions
from modelpilot.control.drift import DriftOutcome, DriftPart, drift_part
from modelpilot.status import merge_conditions
from tests.argocd_lua import discover, health
from tests.unit.argocd_fixtures import FIXTURES, NOW

SETTINGS = DriftMonitoring.model_validate({"window": "20s", "minSamples": 100})
PETAL = Distribution(2.31, 0.0, {"(-inf,1.5]": (0.25, 0.0), "(6.1,+inf)": (0.1, 0.92), "missing": (0.0, 0.0)})
CALM = Distribution(0.03, 0.6, {"(-inf,1.5]": (0.25, 0.24), "(6.1,+inf)": (0.1, 0.11)})
FEEDBACK = {"feedback_rows": 540.0, "reference_accuracy": 0.97}

READINGS: dict[str, DriftReadings] = {
    "data": DriftReadings(profile=1.0, rows=812.0, features={"petal_length": PETAL}),  # no feedback: Unknown
    "concept": DriftReadings(profile=1.0, rows=812.0, features={"petal_length": CALM}, accuracy=0.68, **FEEDBACK),
    "both": DriftReadings(profile=1.0, rows=812.0, features={"petal_length": PETAL}, accuracy=0.68, **FEEDBACK),
    "none": DriftReadings(profile=1.0, rows=812.0, features={"petal_length": CALM}, accuracy=0.96, **FEEDBACK),
    "no-profile": DriftReadings(profile=0.0, rows=812.0),
}
BASES = ("ready", "stale-generation", "first-rollout", "progressing-canary", "paused-by-spec",
         "paused-by-provider-errors", "promoting", "rolled-back", "invalid-spec", "spec-paused-no-canary",
         "shadow-stage", "experiment-report-winner", "experiment-rollback-loser", "experiment-promote-winner")


def evaluation(variant: str) -> DriftPart:
    """What the operator makes of one evaluation (`not-evaluated`: before the first one)."""
    if variant == "not-evaluated":
        return drift_part(SETTINGS, {}, None, NOW)
    report = judge_drift(SETTINGS, READINGS[variant], NOW)
    return drift_part(SETTINGS, {}, DriftOutcome(NOW, report=report), NOW)


def with_drift(base: str, variant: str) -> dict[str, Any]:
    obj = copy.deepcopy(FIXTURES[base])
    part = evaluation(variant)
    status = obj["status"]
    generation = status.get("observedGeneration") or 1
    status["conditions"] = [*status["conditions"], *merge_conditions([], part.conditions, generation, NOW)]
    if part.status is not None:
        status["drift"] = part.status
    return obj


def appended(variant: str) -> str:
    """The expected tail of the message: every True drift condition, DataDrift first."""
    return "".join(f"; drift: {c.type}: {c.message}" for c in evaluation(variant).conditions if c.status is True)


def test_the_variants_are_what_they_say() -> None:
    """Guard the guard: which conditions the operator's judging makes True for each variant."""
    active = {variant: [c.type for c in evaluation(variant).conditions if c.status is True]
              for variant in (*READINGS, "not-evaluated")}
    assert active == {"data": ["DataDrift"], "concept": ["ConceptDrift"], "both": ["DataDrift", "ConceptDrift"],
                      "none": [], "no-profile": [], "not-evaluated": []}


@pytest.mark.parametrize("variant", [*READINGS, "not-evaluated"])
@pytest.mark.parametrize("base", BASES)
def test_drift_is_appended_and_the_health_stays(base: str, variant: str) -> None:
    before = health(FIXTURES[base])
    after = health(with_drift(base, variant))
    assert after["status"] == before["status"], (before, after)
    assert after["message"] == before["message"] + appended(variant), after


@pytest.mark.parametrize(("base", "variant", "status", "message"), [
    ("ready", "data", "Healthy",
     "version v1 serving: 2/2 replicas available; drift: DataDrift: feature petal_length PSI 2.31 (thresholds: "
     "featurePSI 0.2, predictionPSI 0.2; 812 rows)"),
    ("ready", "concept", "Healthy",
     "version v1 serving: 2/2 replicas available; drift: ConceptDrift: live accuracy 0.680 over 540 labelled rows, "
     "reference 0.970 (drop 0.290, limit 0.05)"),
    ("rolled-back", "both", "Degraded",
     "RolledBack: canary v2 rolled back at weight 25%: error-rate=3.2 (limit <= 1); drift: DataDrift: feature "
     "petal_length PSI 2.31 (thresholds: featurePSI 0.2, predictionPSI 0.2; 812 rows); drift: ConceptDrift: live "
     "accuracy 0.680 over 540 labelled rows, reference 0.970 (drop 0.290, limit 0.05)"),
    ("ready", "none", "Healthy", "version v1 serving: 2/2 replicas available"),
    ("ready", "no-profile", "Healthy", "version v1 serving: 2/2 replicas available"),
])
def test_drift_message_exactly(base: str, variant: str, status: str, message: str) -> None:
    assert health(with_drift(base, variant)) == {"status": status, "message": message}


def test_a_drift_condition_without_a_message_names_its_reason() -> None:
    obj = copy.deepcopy(FIXTURES["ready"])
    obj["status"]["conditions"].append({"type": "DataDrift", "status": "True", "reason": "PredictionDrift"})
    assert health(obj)["message"] == "version v1 serving: 2/2 replicas available; drift: DataDrift: PredictionDrift"


def test_no_status_no_drift() -> None:
    assert health(FIXTURES["no-status-yet"])["message"] == "waiting for the operator to reconcile this ModelDeployment"


@pytest.mark.parametrize("base", ["ready", "progressing-canary", "paused-by-spec", "rolled-back"])
def test_drift_changes_no_action(base: str) -> None:
    obj = with_drift(base, "both")
    assert discover(obj) == discover(FIXTURES[base]) == cli_actions.available(obj)
