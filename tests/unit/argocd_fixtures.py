"""The ModelDeployments the Argo CD health and action tests run against: built with the operator's
own status and rollout code, so the Lua is tested on what the operator really writes."""

from __future__ import annotations

import datetime as dt
from typing import Any

from modelpilot.api.common import ExperimentVerdict
from modelpilot.rollout import machine
from modelpilot.rollout.experiment import conclude
from modelpilot.rollout.stages import ComparisonRecord, ExperimentReport, OnConclusion, StageConfig
from modelpilot.rollout.state import experiment_to_status, from_status, to_status
from modelpilot.status import Observation, RolloutView, assess, merge_conditions

NOW = dt.datetime(2026, 11, 2, 12, 0, tzinfo=dt.UTC)
STABLE_REV, CANARY_REV = "aaaa1111", "bbbb2222"


def _deployment(revision: str, available: int = 2) -> dict[str, Any]:
    return {"metadata": {"generation": 1},
            "spec": {"replicas": 2, "template": {"metadata": {"annotations": {"modelpilot.io/revision": revision}}}},
            "status": {"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, "readyReplicas": available,
                       "availableReplicas": available}}


def _canary(state: str, **extra: Any) -> dict[str, Any]:
    canary = {"state": state, "version": "v2", "revision": CANARY_REV, "weight": 25, "step": 1, "failedChecks": 0,
              "providerErrors": 0, "startedAt": "2026-11-02T11:50:00Z", "readyAt": "2026-11-02T11:50:10Z",
              "lastProgressAt": "2026-11-02T11:55:00Z", "lastAnalysisAt": "2026-11-02T11:59:30Z",
              "reason": "StepAdvanced", "message": "analysis passed: weight 25% (step 2/3)",
              "analyses": [{"time": "2026-11-02T11:59:30Z", "metric": "error-rate", "value": 0.2, "threshold": "<= 1",
                            "verdict": "Pass"}]}
    canary.update(extra)
    return {k: v for k, v in canary.items() if v is not None}


def mdep(*, view: RolloutView | None = None, canary: dict[str, Any] | None = None, invalid: str | None = None,
         deployment: dict[str, Any] | None = None, previous_stable: dict[str, Any] | None = None,
         generation: int = 4, observed: int | None = 4, paused: bool | None = None,
         status: bool = True, rollout: dict[str, Any] | None = None) -> dict[str, Any]:
    """A ModelDeployment whose phase and conditions are what the operator computes for the inputs."""
    spec: dict[str, Any] = {"model": {"version": "v2" if canary else "v1", "uri": "s3://m/fraud", "format": "sklearn"},
                            "replicas": 2}
    if paused is not None:
        spec["paused"] = paused
    if rollout is not None:
        spec["rollout"] = rollout
    obj: dict[str, Any] = {"apiVersion": "modelpilot.io/v1alpha1", "kind": "ModelDeployment",
                           "metadata": {"name": "fraud", "namespace": "ml", "generation": generation,
                                        "uid": "0b7e", "annotations": {"team": "risk"}, "labels": {}},
                           "spec": spec}
    if not status:
        return obj
    stable = previous_stable if previous_stable is not None else {"version": "v1", "revision": STABLE_REV}
    obs = Observation(generation=generation, version="v1", revision=STABLE_REV,
                      stable_deployment=deployment if deployment is not None else _deployment(STABLE_REV),
                      invalid_spec=invalid, rollout=view)
    assessed = assess(obs, stable)
    obj["status"] = {"phase": assessed.phase, "stable": assessed.stable or {},
                     "conditions": merge_conditions([], assessed.conditions, generation, NOW),
                     "url": "http://fraud.ml.svc.cluster.local"}
    if observed is not None:
        obj["status"]["observedGeneration"] = observed
    if canary is not None:
        obj["status"]["canary"] = canary
    return obj


ROLLED_BACK_MSG = "canary v2 rolled back at weight 25%: error-rate=3.2 (limit <= 1)"

# ------------------------------------------------------------------ stages and experiments

GATEWAY = {"gatewayAPI": {"parentRefs": [{"name": "gw"}]}}
STAGED_ROLLOUT = {"canary": {"steps": [], "trafficRouting": GATEWAY, "shadow": {"percent": 10, "duration": "5m"},
                             "match": [{"headers": [{"name": "x-beta", "value": "yes"}]}]}}
EXPERIMENT_ROLLOUT = {"strategy": "Experiment", "canary": {"trafficRouting": GATEWAY},
                      "experiment": {"split": 30, "duration": "10m", "metrics": [{"name": "ctr"}]}}
VERDICTS: tuple[ExperimentVerdict, ...] = ("Winner", "Loser", "NoDifference", "Inconclusive")
SHADOW_MSG = "shadow: 10% of requests mirrored, clients see stable only: analysis passed, 120s left"
SEGMENT_MSG = "segment: only matching requests on the canary: analysis passed, 30s left"
EXPERIMENT_MSG = "experiment: 30% of users on the canary: analysis passed, 240s left"


def _report(verdict: ExperimentVerdict, final: bool) -> ExperimentReport:
    if verdict == "Inconclusive":
        result = ComparisonRecord("ctr", "Inconclusive", samples_canary=300, samples_stable=700,
                                  detail="too few samples: 300 < 1000")
    else:
        result = ComparisonRecord("ctr", verdict, canary=0.041, stable=0.037, difference=0.004,
                                  ci_low=0.001, ci_high=0.007, p_value=0.004, samples_canary=12000,
                                  samples_stable=28000)
    return ExperimentReport(final=final, verdict=verdict, results=(result,))


def _staged(stage: str, message: str, weight: int = 0, **extra: Any) -> dict[str, Any]:
    canary = _canary("Progressing", stage=stage, stageStartedAt="2026-11-02T11:56:00Z", step=0, weight=weight,
                     reason="Analysing", message=message, **extra)
    return mdep(view=RolloutView("Progressing", "Canary", message), canary=canary,
                rollout=EXPERIMENT_ROLLOUT if stage == "experiment" else STAGED_ROLLOUT)


def _concluded(on_conclusion: OnConclusion, verdict: ExperimentVerdict) -> dict[str, Any]:
    """A final experiment report under onConclusion, decided by the operator's own code."""
    running = from_status(_canary("Progressing", stage="experiment", stageStartedAt="2026-11-02T11:50:10Z", step=0,
                                  weight=30, reason="Analysing", message=EXPERIMENT_MSG))
    assert running is not None
    config = machine.CanaryConfig(steps=(10, 25, 50), interval=30, initial_delay=30, failure_threshold=2,
                                  progress_deadline=600,
                                  stages=StageConfig(experiment_seconds=600, experiment_split=30,
                                                     on_conclusion=on_conclusion))
    decided = conclude(config, running, _report(verdict, final=True), NOW).canary
    assert decided is not None
    return mdep(view=RolloutView(decided.state, decided.reason, decided.message), canary=to_status(decided),
                rollout=EXPERIMENT_ROLLOUT)


def _experiment_rolled_back(reason: str, message: str) -> dict[str, Any]:
    canary = _canary("RolledBack", stage="experiment", weight=0, step=0, reason=reason, message=message,
                     experiment=experiment_to_status(_report("Loser", final=True)))
    return mdep(view=RolloutView("RolledBack", reason, message), canary=canary, rollout=EXPERIMENT_ROLLOUT)


STAGE_FIXTURES: dict[str, dict[str, Any]] = {
    "shadow-stage": _staged("shadow", SHADOW_MSG),
    "segment-stage": _staged("segment", SEGMENT_MSG),
    "experiment-running": _staged("experiment", EXPERIMENT_MSG, weight=30,
                                  experiment=experiment_to_status(_report("Winner", final=False))),
    **{f"experiment-report-{v.lower()}": _concluded("Report", v) for v in VERDICTS},
    "experiment-promote-nodifference": _concluded("Promote", "NoDifference"),
    "experiment-promote-winner": _concluded("Promote", "Winner"),
    "experiment-promote-loser": _concluded("Promote", "Loser"),
    **{f"experiment-rollback-{v.lower()}": _concluded("Rollback", v) for v in VERDICTS},
    "experiment-guardrail-rolled-back": _experiment_rolled_back(
        "RolledBack", "canary v2 rolled back at weight 30%: error-rate=3.2 (limit <= 1)"),
    "experiment-aborted-after-verdict": _experiment_rolled_back("Aborted", "canary v2 aborted by a manual action"),
}
FIXTURES: dict[str, dict[str, Any]] = {
    "ready": mdep(),
    "no-status-yet": mdep(status=False),
    "stale-generation": mdep(generation=5, observed=4),
    "status-without-conditions": {**mdep(status=False), "status": {"observedGeneration": 4}},
    "first-rollout": mdep(deployment=_deployment(STABLE_REV, available=0), previous_stable={}),
    "progressing-canary": mdep(view=RolloutView("Progressing", "Canary", "analysis passed: weight 25% (step 2/3)"),
                               canary=_canary("Progressing")),
    "canary-waiting-for-ready": mdep(view=RolloutView("Progressing", "Canary", "canary v2 started"),
                                     canary=_canary("Progressing", step=-1, weight=0, readyAt=None,
                                                    message="canary v2 started", analyses=[])),
    "paused-by-spec": mdep(view=RolloutView("Paused", "Paused", "canary v2 paused by spec.paused at weight 25%"),
                           canary=_canary("Paused", pausedBy="spec", reason="Paused",
                                          message="canary v2 paused by spec.paused at weight 25%"), paused=True),
    "paused-by-provider-errors": mdep(
        view=RolloutView("Paused", "Paused", "canary v2 paused after 4 consecutive metric provider errors"),
        canary=_canary("Paused", pausedBy="provider-error", providerErrors=4, reason="Paused",
                       message="canary v2 paused after 4 consecutive metric provider errors")),
    "paused-inconclusive-and-spec": mdep(
        view=RolloutView("Paused", "Paused", "canary v2 paused on an inconclusive analysis"),
        canary=_canary("Paused", pausedBy="inconclusive", message="canary v2 paused on an inconclusive analysis"),
        paused=True),
    "promoting": mdep(view=RolloutView("Promoting", "Promoting", "canary v2 passed the last step: promoting"),
                      canary=_canary("Promoting", message="canary v2 passed the last step: promoting")),
    "rolled-back": mdep(view=RolloutView("RolledBack", "RolledBack", ROLLED_BACK_MSG),
                        canary=_canary("RolledBack", weight=0, failedChecks=2, reason="RolledBack",
                                       message=ROLLED_BACK_MSG)),
    "rolled-back-and-spec-paused": mdep(view=RolloutView("RolledBack", "Aborted", "canary v2 aborted"),
                                        canary=_canary("RolledBack", weight=0, reason="Aborted",
                                                       message="canary v2 aborted"), paused=True),
    "invalid-spec": mdep(invalid="spec.rollout.canary.analysis.metrics[2].query: PromQL does not parse: "
                                 "unexpected end of input"),
    "insufficient-accelerator": mdep(deployment={**_deployment(STABLE_REV, available=0),
                                                 "status": {"observedGeneration": 1}}, previous_stable={}),
    "spec-paused-no-canary": mdep(paused=True),
    "spec-paused-not-serving-yet": mdep(deployment=_deployment(STABLE_REV, available=0), previous_stable={},
                                        paused=True),
    **STAGE_FIXTURES,
    "experiment-rolled-back-then-invalid-spec": {
        **STAGE_FIXTURES["experiment-rollback-winner"],
        "status": {**mdep(invalid="spec.rollout.experiment.split: must be between 1 and 99")["status"],
                   "canary": STAGE_FIXTURES["experiment-rollback-winner"]["status"]["canary"]}},
}
