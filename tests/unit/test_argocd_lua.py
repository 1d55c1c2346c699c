"""The Argo CD health check and actions of docs/argocd/, run in an embedded Lua 5.1 (lupa) sandboxed
like Argo CD's, against ModelDeployments whose conditions come from the operator's own status code.

Actions are checked end to end without a cluster: the patch Argo CD would send (the merge patch
between the object and what the Lua returns) is applied, and the operator's rollout state machine
must consume it and move the canary; discovery must offer exactly the actions that do something,
and agree with `kubectl modelpilot` (modelpilot.cli.actions).
"""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest
import yaml

from modelpilot.cli import actions as cli_actions
from modelpilot.resources import ANNOTATION_ACTION
from modelpilot.rollout import machine
from modelpilot.rollout.state import from_status
from tests import argocd_lua
from tests.argocd_lua import ACTIONS, act, discover, health, merge_patch
from tests.unit.argocd_fixtures import (
    CANARY_REV,
    EXPERIMENT_MSG,
    FIXTURES,
    NOW,
    ROLLED_BACK_MSG,
    SEGMENT_MSG,
    SHADOW_MSG,
    STABLE_REV,
    VERDICTS,
)


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
    # Nothing held yet: Healthy, so a sync wave waiting on it can finish.
    ("spec-paused-no-canary", "Healthy", "spec.paused: version v1 serving: 2/2 replicas available; a new version "
                                         "will wait at its first step"),
    ("spec-paused-not-serving-yet", "Suspended", "spec.paused: Pending: rolling out version v1"),
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
