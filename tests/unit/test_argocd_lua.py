"""The Argo CD health check and actions of docs/argocd/, run in an embedded Lua 5.1 (lupa) sandboxed
like Argo CD's, against ModelDeployments whose conditions come from the operator's own status code.

Actions are checked end to end without a cluster: the patch Argo CD would send (the merge patch
between the object and what the Lua returns) is applied, and the operator's rollout state machine
must consume it and move the canary; discovery must offer exactly the actions that do something,
and agree with `kubectl modelpilot` (modelpilot.cli.actions).
"""

from __future__ import annotations

import copy
import datetime as dt
import re
from typing import Any

import pytest
import yaml

from modelpilot.api.common import ExperimentVerdict
from modelpilot.cli import actions as cli_actions
from modelpilot.resources import ANNOTATION_ACTION
from modelpilot.rollout import machine
from modelpilot.rollout.experiment import conclude
from modelpilot.rollout.stages import ComparisonRecord, ExperimentReport, OnConclusion, StageConfig
from modelpilot.rollout.state import experiment_to_status, from_status, to_status
from modelpilot.status import Observation, RolloutView, assess, merge_conditions
from tests import argocd_lua
from tests.argocd_lua import ACTIONS, act, discover, health, merge_patch

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
    **STAGE_FIXTURES,
    "experiment-rolled-back-then-invalid-spec": {
        **STAGE_FIXTURES["experiment-rollback-winner"],
        "status": {**mdep(invalid="spec.rollout.experiment.split: must be between 1 and 99")["status"],
                   "canary": STAGE_FIXTURES["experiment-rollback-winner"]["status"]["canary"]}},
}


@pytest.mark.parametrize(("fixture", "status", "message"), [
    ("ready", "Healthy", "version v1 serving: 2/2 replicas available"),
    ("no-status-yet", "Progressing", "waiting for the operator"),
    ("status-without-conditions", "Progressing", "waiting for the operator"),
    ("stale-generation", "Progressing", "waiting for the operator: generation 5 not observed yet (status is of 4)"),
    ("first-rollout", "Progressing", "Pending: rolling out version v1: 0/2 replicas available"),
    ("progressing-canary", "Progressing", "canary v2 at 25%: analysis passed: weight 25% (step 2/3)"),
    ("canary-waiting-for-ready", "Progressing", "canary v2 at 0%: canary v2 started"),
    ("paused-by-spec", "Suspended", "canary v2 paused by spec.paused at weight 25% (resume, promote or abort)"),
    ("paused-by-provider-errors", "Suspended", "canary v2 paused after 4 consecutive metric provider errors"),
    ("paused-inconclusive-and-spec", "Suspended", "canary v2 paused on an inconclusive analysis"),
    ("promoting", "Progressing", "promoting v2: canary v2 passed the last step: promoting"),
    ("rolled-back", "Degraded", "RolledBack: " + ROLLED_BACK_MSG),
    ("rolled-back-and-spec-paused", "Degraded", "Aborted: canary v2 aborted"),
    ("invalid-spec", "Degraded", "InvalidSpec: spec.rollout.canary.analysis.metrics[2].query: PromQL does not parse"),
    ("spec-paused-no-canary", "Suspended", "spec.paused: version v1 serving: 2/2 replicas available; a new version "
                                           "will wait at its first step"),
])
def test_health(fixture: str, status: str, message: str) -> None:
    result = health(FIXTURES[fixture])
    assert result["status"] == status, result
    assert message in result["message"], result


@pytest.mark.parametrize(("fixture", "status", "message"), [
    ("shadow-stage", "Progressing", "canary v2 in stage shadow (10% mirrored): " + SHADOW_MSG),
    ("segment-stage", "Progressing", "canary v2 in stage segment (matching requests only): " + SEGMENT_MSG),
    ("experiment-running", "Progressing", "canary v2 in stage experiment (30% split): " + EXPERIMENT_MSG),
    *[(f"experiment-report-{v.lower()}", "Suspended",
       f"experiment v2 concluded: {v}; the 30% split stays until a promote or abort action") for v in VERDICTS],
    ("experiment-promote-nodifference", "Suspended", "experiment v2 concluded: NoDifference; the 30% split stays"),
    ("experiment-promote-winner", "Progressing", "promoting v2: experiment v2 concluded: Winner"),
    ("experiment-promote-loser", "Healthy", "experiment concluded: Loser, rolled back to stable"),
    *[(f"experiment-rollback-{v.lower()}", "Healthy", f"experiment concluded: {v}, rolled back to stable")
      for v in VERDICTS],
    ("experiment-guardrail-rolled-back", "Degraded", "RolledBack: canary v2 rolled back at weight 30%"),
    ("experiment-aborted-after-verdict", "Degraded", "Aborted: canary v2 aborted by a manual action"),
    ("experiment-rolled-back-then-invalid-spec", "Degraded", "InvalidSpec: spec.rollout.experiment.split"),
])
def test_health_of_stages_and_experiments(fixture: str, status: str, message: str) -> None:
    result = health(FIXTURES[fixture])
    assert result["status"] == status, result
    assert message in result["message"], result


def test_health_of_a_concluded_experiment_still_waits_after_a_guardrail_analysis() -> None:
    """Guardrails keep running on a held split: a later reason still leaves it waiting for a human."""
    obj = copy.deepcopy(FIXTURES["experiment-report-winner"])
    obj["status"]["canary"].update(reason="Inconclusive", message="analysis inconclusive: error-rate: no data")
    result = health(obj)
    assert result["status"] == "Suspended", result
    assert result["message"].endswith("(last: analysis inconclusive: error-rate: no data)"), result


def test_concluded_experiment_spec_paused_is_suspended() -> None:
    obj = copy.deepcopy(FIXTURES["experiment-rollback-loser"])
    obj["spec"]["paused"] = True
    assert health(obj)["status"] == "Suspended"


def test_health_of_an_unschedulable_gpu_rollout_is_progressing_with_the_reason() -> None:
    obj = copy.deepcopy(FIXTURES["ready"])
    obj["status"]["conditions"][0].update(status="False", reason="InsufficientAccelerator",
                                          message="2 pod(s) cannot be scheduled: no node offers 1x nvidia.com/gpu")
    result = health(obj)
    assert result == {"status": "Progressing",
                      "message": "InsufficientAccelerator: 2 pod(s) cannot be scheduled: no node offers "
                                 "1x nvidia.com/gpu"}


def test_fixtures_are_what_the_operator_writes() -> None:
    """Guard the guard: the conditions above come from modelpilot.status, not from this file."""
    assert FIXTURES["rolled-back"]["status"]["phase"] == "Degraded"
    kinds = {c["type"]: (c["status"], c["reason"]) for c in FIXTURES["paused-by-spec"]["status"]["conditions"]}
    assert kinds == {"Ready": ("False", "Paused"), "Progressing": ("False", "Paused"),
                     "Degraded": ("False", "AsExpected")}
    assert {c["type"]: c["reason"] for c in FIXTURES["invalid-spec"]["status"]["conditions"]}["Degraded"] == \
        "InvalidSpec"
    # A rollback by onConclusion is Degraded in the operator's conditions; the Lua tells it apart.
    planned = FIXTURES["experiment-rollback-winner"]["status"]
    assert planned["phase"] == "Degraded" and planned["canary"]["reason"] == "ExperimentConcluded"
    assert {c["type"]: (c["status"], c["reason"]) for c in planned["conditions"]}["Degraded"] == \
        ("True", "ExperimentConcluded")
    held = FIXTURES["experiment-report-loser"]["status"]["canary"]
    assert (held["state"], held["reason"], held["experiment"]["final"]) == ("Progressing", "ExperimentConcluded", True)
    assert FIXTURES["experiment-promote-winner"]["status"]["canary"]["reason"] == "ExperimentWon"


# --------------------------------------------------------------------------------------- actions


ENABLED = {
    "ready": {"pause"},
    "no-status-yet": {"pause"},
    "progressing-canary": {"promote", "abort", "retry", "pause"},
    "canary-waiting-for-ready": {"promote", "abort", "retry", "pause"},
    "paused-by-spec": {"promote", "abort", "retry", "resume"},
    "paused-by-provider-errors": {"promote", "abort", "retry", "resume"},
    "paused-inconclusive-and-spec": {"promote", "abort", "retry", "resume"},
    "promoting": set(),
    "rolled-back": {"retry", "pause"},
    "rolled-back-and-spec-paused": {"retry", "resume"},
    "invalid-spec": {"pause"},
    "spec-paused-no-canary": {"resume"},
    "shadow-stage": {"promote", "abort", "retry", "pause"},
    "segment-stage": {"promote", "abort", "retry", "pause"},
    "experiment-running": {"promote", "abort", "retry", "pause"},
    # A verdict waiting for a human: promote or abort it (or pause, or run it again).
    **{f"experiment-report-{v.lower()}": {"promote", "abort", "retry", "pause"} for v in VERDICTS},
    "experiment-promote-nodifference": {"promote", "abort", "retry", "pause"},
    "experiment-promote-winner": set(),
    "experiment-promote-loser": {"retry", "pause"},
    "experiment-rollback-winner": {"retry", "pause"},
    "experiment-guardrail-rolled-back": {"retry", "pause"},
}


@pytest.mark.parametrize("fixture", sorted(ENABLED))
def test_discovery_offers_only_actions_that_do_something(fixture: str) -> None:
    found = discover(FIXTURES[fixture])
    assert set(found) == set(ACTIONS)
    assert {name for name, enabled in found.items() if enabled} == ENABLED[fixture]


@pytest.mark.parametrize("fixture", sorted(FIXTURES))
def test_discovery_agrees_with_the_kubectl_plugin(fixture: str) -> None:
    assert discover(FIXTURES[fixture]) == cli_actions.available(FIXTURES[fixture])


@pytest.mark.parametrize(("action", "fixture", "patch"), [
    ("promote", "progressing-canary", {"metadata": {"annotations": {ANNOTATION_ACTION: "promote"}}}),
    ("abort", "paused-by-spec", {"metadata": {"annotations": {ANNOTATION_ACTION: "abort"}}}),
    ("retry", "rolled-back", {"metadata": {"annotations": {ANNOTATION_ACTION: "retry"}}}),
    ("pause", "progressing-canary", {"spec": {"paused": True}}),
    ("pause", "ready", {"spec": {"paused": True}}),
    ("resume", "paused-by-spec", {"spec": {"paused": False}}),
    ("resume", "spec-paused-no-canary", {"spec": {"paused": False}}),
    ("resume", "paused-by-provider-errors",
     {"spec": {"paused": False}, "metadata": {"annotations": {ANNOTATION_ACTION: "resume"}}}),
    ("resume", "paused-inconclusive-and-spec",
     {"spec": {"paused": False}, "metadata": {"annotations": {ANNOTATION_ACTION: "resume"}}}),
])
def test_action_patch_is_exact(action: str, fixture: str, patch: dict[str, Any]) -> None:
    obj = FIXTURES[fixture]
    assert merge_patch(obj, act(action, obj)) == patch
    assert cli_actions.patch(obj, action) == patch  # the plugin sends the same


def test_action_sets_annotations_on_an_object_without_any() -> None:
    obj = copy.deepcopy(FIXTURES["progressing-canary"])
    del obj["metadata"]["annotations"]
    assert merge_patch(obj, act("abort", obj)) == {"metadata": {"annotations": {ANNOTATION_ACTION: "abort"}}}


def _apply(obj: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _apply(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


@pytest.mark.parametrize(("fixture", "action"), [(f, a) for f in sorted(ENABLED) for a in sorted(ENABLED[f])])
def test_every_offered_action_moves_the_operator(fixture: str, action: str) -> None:
    """Apply the patch Argo CD sends, then run one tick of the operator's state machine on it."""
    obj = FIXTURES[fixture]
    patched = _apply(obj, merge_patch(obj, act(action, obj)))
    requested = (patched["metadata"].get("annotations") or {}).get(ANNOTATION_ACTION)
    if requested is not None:
        assert requested in machine.ACTIONS
    canary = from_status((obj.get("status") or {}).get("canary"))
    if canary is None:  # no rollout: only spec.paused changes, for the next canary
        assert action in ("pause", "resume") and requested is None
        return
    config = machine.CanaryConfig(steps=(10, 25, 50), interval=30, initial_delay=30, failure_threshold=2,
                                  progress_deadline=600)
    obs = machine.Observation(desired_revision=CANARY_REV, desired_version="v2", stable_revision=STABLE_REV,
                              canary_ready=True, paused=patched["spec"].get("paused") is True, action=requested)
    decision = machine.decide(config, canary, obs, NOW)
    reasons = [e.reason for e in decision.events]
    assert "ActionIgnored" not in reasons and "UnknownAction" not in reasons, reasons
    if requested is not None:
        assert decision.consume_action
    after = decision.canary.state if decision.canary else None
    # pause and resume only flip spec.paused on a rolled-back canary: it waits for a retry either way.
    expected = {"promote": "Promoting", "abort": "RolledBack", "retry": "Progressing",
                "resume": "RolledBack" if canary.state == "RolledBack" else "Progressing",
                "pause": "RolledBack" if canary.state == "RolledBack" else "Paused"}[action]
    assert after == expected, (decision, reasons)


# --------------------------------------------------------------------------------------- the snippet


def test_argocd_cm_is_generated_from_the_lua_files() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("argocd_generate", argocd_lua.ARGOCD / "generate.py")
    assert spec and spec.loader
    generate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generate)
    assert (argocd_lua.ARGOCD / "argocd-cm.yaml").read_text() == generate.render(), \
        "docs/argocd/argocd-cm.yaml is stale: run python docs/argocd/generate.py"


def test_argocd_cm_embeds_every_script_under_argo_cds_keys() -> None:
    data = argocd_lua.argocd_cm_data()
    assert set(data) == {"resource.customizations.health.modelpilot.io_ModelDeployment",
                         "resource.customizations.actions.modelpilot.io_ModelDeployment"}
    assert data["resource.customizations.health.modelpilot.io_ModelDeployment"] == argocd_lua.script("health")
    embedded = yaml.safe_load(data["resource.customizations.actions.modelpilot.io_ModelDeployment"])
    assert embedded["discovery.lua"] == argocd_lua.script("discovery")
    assert [d["name"] for d in embedded["definitions"]] == list(ACTIONS)
    for definition in embedded["definitions"]:
        assert definition["action.lua"] == argocd_lua.script(definition["name"])


def test_sandbox_is_as_strict_as_argo_cd() -> None:
    """Argo CD opens no string or math library: a script using them must fail here too."""
    with pytest.raises(Exception, match=r"string|nil"):
        argocd_lua.run('local s = "abc"\nreturn {n = s:upper()}', {})
    with pytest.raises(Exception, match=r"math|nil"):
        argocd_lua.run("return {n = math.floor(1.5)}", {})
    for name in ("health", "discovery", *ACTIONS):
        source = argocd_lua.script(name)
        assert not re.search(r"\b(string|math|os|io)\.[a-z]", source), name
