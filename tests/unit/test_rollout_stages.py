"""The rollout's stages, tick by tick with an injected clock: shadow, segment, experiment, then the
weight steps (same driver as test_rollout_machine: each tick's state goes through status)."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest

from modelpilot.rollout.machine import AnalysisResult, CanaryConfig
from modelpilot.rollout.stages import (
    ComparisonRecord,
    ExperimentReport,
    StageConfig,
    capacity_percent,
    conclusion,
    first_stage,
    next_stage,
)
from tests.unit.test_rollout_machine import CONFIG, FAIL, INCONCLUSIVE, PASS, T0, Tick, run

SHADOW = replace(CONFIG, stages=StageConfig(shadow_seconds=30, mirror_percent=20))
SEGMENT = replace(CONFIG, stages=StageConfig(match=True, match_seconds=15))
SEGMENT_ONLY = replace(SEGMENT, steps=())
BOTH = replace(CONFIG, stages=StageConfig(shadow_seconds=20, mirror_percent=50, match=True, match_seconds=10))


def experiment(on_conclusion: str = "Report", seconds: float = 30) -> CanaryConfig:
    return replace(CONFIG, stages=StageConfig(experiment_seconds=seconds, experiment_split=30,
                                              on_conclusion=on_conclusion))  # type: ignore[arg-type]


def report(verdict: str, final: bool) -> ExperimentReport:
    record = ComparisonRecord(metric="conversion", verdict=verdict, canary=0.12, stable=0.10,  # type: ignore[arg-type]
                              difference=0.02, ci_low=0.011, ci_high=0.029, p_value=0.0004,
                              samples_canary=10000, samples_stable=10000, detail="12.0% vs 10.0%")
    return ExperimentReport(final=final, verdict=verdict, results=(record,))  # type: ignore[arg-type]


def with_report(verdict: str, final: bool, base: AnalysisResult = PASS) -> AnalysisResult:
    return replace(base, experiment=report(verdict, final))


STAGE_SCENARIOS: dict[str, tuple[CanaryConfig, list[Tick]]] = {
    "shadow-passes-after-its-duration-then-steps": (SHADOW, [
        (0, {}, {"step": -1, "weight": 0}),
        (1, {}, {"stage": "shadow", "weight": 0, "events": ["CanaryReady"], "message": "20% of requests mirrored"}),
        (11, {"analysis": PASS}, {"stage": "shadow", "weight": 0, "events": []}),  # 10s of 30s
        (21, {"analysis": PASS}, {"stage": "shadow", "message": "left"}),
        (31, {"analysis": PASS}, {"stage": "steps", "step": 0, "weight": 10, "events": ["StageAdvanced"]}),
        (41, {"analysis": PASS}, {"stage": "steps", "step": 1, "weight": 25, "events": ["StepAdvanced"]}),
    ]),
    "shadow-fails-rolled-back-before-any-user-saw-it": (SHADOW, [
        (0, {}, {}), (1, {}, {"stage": "shadow"}),
        (11, {"analysis": FAIL}, {"stage": "shadow", "failed_checks": 1, "events": ["AnalysisFailed"]}),
        (21, {"analysis": FAIL}, {"state": "RolledBack", "weight": 0, "stage": "shadow", "events": ["RolledBack"]}),
    ]),
    "a-long-stage-is-not-cut-by-the-progress-deadline": (replace(SHADOW, stages=StageConfig(
            shadow_seconds=200, mirror_percent=10)), [
        (0, {}, {}), (1, {}, {"stage": "shadow"}),
        *[(1 + 10 * i, {"analysis": PASS}, {"state": "Progressing", "stage": "shadow"}) for i in range(1, 20)],
        (201, {"analysis": PASS}, {"stage": "steps", "weight": 10}),
    ]),
    "inconclusive-shadow-does-not-advance": (SHADOW, [
        (0, {}, {}), (1, {}, {}),
        (31, {"analysis": INCONCLUSIVE}, {"stage": "shadow", "events": ["AnalysisInconclusive"]}),
        (41, {"analysis": PASS}, {"stage": "steps"}),
    ]),
    "segment-then-weight-steps": (SEGMENT, [
        (0, {}, {}), (1, {}, {"stage": "segment", "weight": 0, "message": "only matching requests"}),
        (11, {"analysis": PASS}, {"stage": "segment"}),  # matchDuration 15s not over
        (21, {"analysis": PASS}, {"stage": "steps", "weight": 10, "events": ["StageAdvanced"]}),
    ]),
    "segment-without-steps-waits-for-promote": (SEGMENT_ONLY, [
        (0, {}, {}), (1, {}, {"stage": "segment"}),
        (21, {"analysis": PASS}, {"stage": "segment", "message": "until a promote action", "events": []}),
        (31, {"analysis": PASS}, {"stage": "segment", "state": "Progressing"}),
        (100, {"action": "promote"}, {"state": "Promoting", "promote": True, "consume": True}),
    ]),
    "segment-failure-rolls-back": (SEGMENT_ONLY, [
        (0, {}, {}), (1, {}, {}), (11, {"analysis": FAIL}, {}),
        (21, {"analysis": FAIL}, {"state": "RolledBack", "outcome": "rolled-back"}),
    ]),
    "shadow-then-segment-then-steps": (BOTH, [
        (0, {}, {}), (1, {}, {"stage": "shadow"}),
        (21, {"analysis": PASS}, {"stage": "segment", "weight": 0}),
        (31, {"analysis": PASS}, {"stage": "steps", "weight": 10}),
    ]),
    "experiment-report-holds-the-split": (experiment("Report"), [
        (0, {}, {}), (1, {}, {"stage": "experiment", "weight": 30, "message": "30% of users"}),
        (11, {"analysis": with_report("Winner", final=False)}, {"stage": "experiment", "weight": 30, "events": []}),
        (31, {"analysis": with_report("Winner", final=True)},
         {"state": "Progressing", "weight": 30, "reason": "ExperimentConcluded", "events": ["ExperimentConcluded"],
          "message": "Winner"}),
        # Guardrails keep running; the verdict stays, nothing concludes twice.
        (41, {"analysis": with_report("Loser", final=True)},
         {"reason": "ExperimentConcluded", "events": [], "message": "Winner"}),
        (51, {"analysis": FAIL}, {"failed_checks": 1}),
        (61, {"analysis": FAIL}, {"state": "RolledBack"}),
    ]),
    "experiment-promote-a-winner": (experiment("Promote"), [
        (0, {}, {}), (1, {}, {}),
        (31, {"analysis": with_report("Winner", final=True)},
         {"state": "Promoting", "promote": True, "reason": "ExperimentWon",
          "events": ["ExperimentConcluded", "Promoting"]}),
    ]),
    "experiment-promote-rolls-back-a-loser": (experiment("Promote"), [
        (0, {}, {}), (1, {}, {}),
        (31, {"analysis": with_report("Loser", final=True)},
         {"state": "RolledBack", "weight": 0, "reason": "ExperimentConcluded", "outcome": "rolled-back"}),
    ]),
    "experiment-promote-holds-no-difference": (experiment("Promote"), [
        (0, {}, {}), (1, {}, {}),
        (31, {"analysis": with_report("NoDifference", final=True)},
         {"state": "Progressing", "promote": False, "reason": "ExperimentConcluded", "message": "NoDifference"}),
    ]),
    "experiment-rollback-always": (experiment("Rollback"), [
        (0, {}, {}), (1, {}, {}),
        (31, {"analysis": with_report("Winner", final=True)}, {"state": "RolledBack", "outcome": "rolled-back"}),
    ]),
    "experiment-guardrail-failure-wins-over-the-report": (experiment("Promote"), [
        (0, {}, {}), (1, {}, {}), (11, {"analysis": FAIL}, {"failed_checks": 1}),
        (31, {"analysis": with_report("Winner", final=True, base=FAIL)}, {"state": "RolledBack", "promote": False}),
    ]),
    "experiment-longer-than-the-deadline": (experiment("Report", seconds=300), [
        (0, {}, {}), (1, {}, {}),
        *[(1 + 10 * i, {"analysis": with_report("Inconclusive", final=False)}, {"state": "Progressing"})
          for i in range(1, 30)],
        (301, {"analysis": with_report("NoDifference", final=True)}, {"reason": "ExperimentConcluded"}),
    ]),
}


@pytest.mark.parametrize("name", STAGE_SCENARIOS)
def test_stage_scenario(name: str) -> None:
    config, ticks = STAGE_SCENARIOS[name]
    run(ticks, config=config)


def test_experiment_report_survives_status_round_trip() -> None:
    decisions = run([(0, {}, {}), (1, {}, {}), (31, {"analysis": with_report("Winner", final=True)}, {})],
                    config=experiment("Report"))
    canary = decisions[-1].canary
    assert canary is not None and canary.experiment == report("Winner", final=True)
    assert canary.stage_started_at == T0 + dt.timedelta(seconds=1)


@pytest.mark.parametrize(("stages", "steps", "first", "after_first"), [
    (StageConfig(), (10, 50), ("steps", 10), None),
    (StageConfig(shadow_seconds=10, mirror_percent=5), (10,), ("shadow", 0), ("steps", 10)),
    (StageConfig(match=True), (20,), ("segment", 0), ("steps", 20)),
    (StageConfig(match=True), (), ("segment", 0), None),
    (StageConfig(experiment_seconds=60, experiment_split=40), (10,), ("experiment", 40), None),
    (StageConfig(shadow_seconds=10, experiment_seconds=60, experiment_split=40), (10,), ("shadow", 0),
     ("experiment", 40)),
])
def test_stage_order(stages: StageConfig, steps: tuple[int, ...], first: tuple[str, int],
                     after_first: tuple[str, int] | None) -> None:
    assert first_stage(stages, steps) == first
    if first[0] != "steps":
        assert next_stage(stages, first[0], steps) == after_first  # type: ignore[arg-type]


@pytest.mark.parametrize(("stage", "weight", "expected"), [
    ("shadow", 0, 25), ("segment", 0, 10), ("experiment", 30, 30), ("steps", 50, 50),
])
def test_capacity_follows_the_stage(stage: str, weight: int, expected: int) -> None:
    stages = StageConfig(shadow_seconds=10, mirror_percent=25, experiment_split=30)
    assert capacity_percent(stages, stage, weight, 10) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(("on_conclusion", "verdict", "expected"), [
    ("Promote", "Winner", "promote"), ("Promote", "Loser", "rollback"), ("Promote", "NoDifference", "hold"),
    ("Promote", "Inconclusive", "hold"), ("Rollback", "Winner", "rollback"), ("Report", "Winner", "hold"),
    ("Report", "Loser", "hold"),
])
def test_conclusion_table(on_conclusion: str, verdict: str, expected: str) -> None:
    stages = StageConfig(experiment_seconds=10, on_conclusion=on_conclusion)  # type: ignore[arg-type]
    assert conclusion(stages, report(verdict, final=True)) == expected
