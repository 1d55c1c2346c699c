"""The plan in the rollout stages: what the router is told to send to the canary (traffic_for) in
each stage, and how many canary pods plan() asks for there (shadow, segment, experiment, steps)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from modelpilot.api.models import parse_spec
from modelpilot.control.children import traffic_for
from modelpilot.control.observe import Observed
from modelpilot.rollout.machine import CanaryState, Decision
from modelpilot.rollout.model import State
from modelpilot.rollout.stages import Stage
from modelpilot.routing import Traffic
from tests.unit import plan_world
from tests.unit.plan_world import T0, modeldeployment, settle, tick
from tests.unit.spec_cases import GATEWAY, canary, experiment
from tests.unit.test_plan import with_spec

SEGMENT = [{"headers": [{"name": "x-cohort", "value": "beta"}]}]
STEPS = canary(steps=[10, 50], trafficRouting=GATEWAY)
SHADOW = canary(shadow={"percent": 50}, steps=[10, 50], trafficRouting=GATEWAY)
MATCHED = canary(match=SEGMENT, steps=[20, 50], trafficRouting=GATEWAY)
SHADOW_MATCHED = canary(shadow={"percent": 20}, match=SEGMENT, trafficRouting=GATEWAY)
EXPERIMENT = experiment(split=30, sticky={"cookie": "user"})
EXPERIMENT_SHADOW = experiment({"trafficRouting": GATEWAY, "shadow": {"percent": 10}}, split=30)


def decision(state: State = "Progressing", stage: Stage = "steps", weight: int = 0, step: int = 0) -> Decision:
    return Decision(CanaryState(state=state, version="v2", revision="c0ffee", started_at=T0, last_progress_at=T0,
                                step=step, weight=weight, stage=stage, stage_started_at=T0 if stage else None))


# id, spec, decision, traffic
TRAFFIC_CASES = [
    ("no-canary", STEPS, Decision(None), Traffic()),
    ("not-ready-yet", SHADOW, decision(stage="", step=-1), Traffic()),
    ("not-ready-matched", MATCHED, decision(stage="", step=-1), Traffic()),
    ("steps", STEPS, decision(weight=10), Traffic(weight=10)),
    ("steps-last", STEPS, decision(weight=50, step=1), Traffic(weight=50)),
    ("shadow-mirrors-its-percent", SHADOW, decision(stage="shadow"), Traffic(mirror_percent=50)),
    ("shadow-paused-keeps-mirroring", SHADOW, decision("Paused", stage="shadow"), Traffic(mirror_percent=50)),
    ("after-shadow-no-mirror", SHADOW, decision(weight=10), Traffic(weight=10)),
    # The shadow was removed from the spec mid-stage: nothing mirrored, nothing sent.
    ("shadow-stage-spec-without-shadow", STEPS, decision(stage="shadow"), Traffic()),
    ("segment", MATCHED, decision(stage="segment"), Traffic(segment=True)),
    ("segment-paused", MATCHED, decision("Paused", stage="segment"), Traffic(segment=True)),
    ("segment-stays-through-steps", MATCHED, decision(weight=20), Traffic(weight=20, segment=True)),
    ("segment-while-promoting", MATCHED, decision("Promoting", weight=50, step=1), Traffic(weight=50, segment=True)),
    ("shadow-before-segment", SHADOW_MATCHED, decision(stage="shadow"), Traffic(mirror_percent=20)),
    ("segment-after-shadow", SHADOW_MATCHED, decision(stage="segment"), Traffic(segment=True)),
    ("rolled-back", MATCHED, decision("RolledBack", stage="segment"), Traffic()),
    ("rolled-back-in-shadow", SHADOW, decision("RolledBack", stage="shadow"), Traffic()),
    ("promoted", STEPS, decision("Promoted", weight=50, step=1), Traffic()),
    ("experiment-split", EXPERIMENT, decision(stage="experiment", weight=30), Traffic(weight=30)),
    ("experiment-held-paused", EXPERIMENT, decision("Paused", stage="experiment", weight=30), Traffic(weight=30)),
    ("experiment-shadow", EXPERIMENT_SHADOW, decision(stage="shadow"), Traffic(mirror_percent=10)),
    ("experiment-after-shadow", EXPERIMENT_SHADOW, decision(stage="experiment", weight=30), Traffic(weight=30)),
]


@pytest.mark.parametrize(("case", "body", "the_decision", "traffic"), TRAFFIC_CASES,
                         ids=[c[0] for c in TRAFFIC_CASES])
def test_traffic_for(case: str, body: dict[str, Any], the_decision: Decision, traffic: Traffic) -> None:
    assert traffic_for(parse_spec(body), the_decision) == traffic


# -- canary pods through plan() ---------------------------------------------------------------------
def at(n: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=n)


def stage_spec(replicas: int, canary_fields: dict[str, Any], **rollout: Any) -> dict[str, Any]:
    body = plan_world.spec(replicas=replicas)
    body["rollout"] = {"canary": {**body["rollout"]["canary"], "trafficRouting": GATEWAY, **canary_fields},
                       **rollout}
    return body


def start(body: dict[str, Any]) -> tuple[Observed, Observed]:
    """v1 settled, then v2: (the observed world once the canary was created, once it became Ready)."""
    settled = settle(Observed(md=modeldeployment(body)))
    v2 = dict(body, model={**body["model"], "version": "v2"})
    _, created = tick(with_spec(settled, v2), at(0))
    ready_plan, ready = tick(created, at(1))
    assert [e.reason for e in ready_plan.events] == ["CanaryReady"]
    return created, ready


def canary_pods(observed: Observed) -> int:
    return int(observed.children[("apps/v1", "Deployment", "fraud-canary")]["spec"]["replicas"])


def route_rules(observed: Observed) -> list[dict[str, Any]]:
    return observed.children[("gateway.networking.k8s.io/v1", "HTTPRoute", "fraud")]["spec"]["rules"]


EXPERIMENT_ROLLOUT = {"strategy": "Experiment",
                      "experiment": {"split": 30, "metrics": [{"name": "conversion", "successes": "up",
                                                               "trials": "up"}]}}
# id, stable replicas, canary fields, rollout fields, stage once Ready, canary pods, canary weight
PODS_CASES = [
    ("shadow-50-of-4", 4, {"shadow": {"percent": 50}}, {}, "shadow", 2, 0),
    ("shadow-100-of-4", 4, {"shadow": {"percent": 100}}, {}, "shadow", 4, 0),
    ("shadow-10-of-4", 4, {"shadow": {"percent": 10}}, {}, "shadow", 1, 0),
    ("shadow-25-of-10", 10, {"shadow": {"percent": 25}}, {}, "shadow", 3, 0),
    ("segment-sized-for-the-first-step", 10, {"match": SEGMENT}, {}, "segment", 2, 0),
    ("segment-only-sized-for-10", 10, {"match": SEGMENT, "steps": []}, {}, "segment", 1, 0),
    ("experiment-split-30-of-10", 10, {}, EXPERIMENT_ROLLOUT, "experiment", 3, 30),
    ("steps-20-of-10", 10, {}, {}, "steps", 2, 20),
]


@pytest.mark.parametrize(("case", "replicas", "canary_fields", "rollout", "stage", "pods", "weight"), PODS_CASES,
                         ids=[c[0] for c in PODS_CASES])
def test_canary_pods_in_the_first_stage(case: str, replicas: int, canary_fields: dict[str, Any],
                                        rollout: dict[str, Any], stage: str, pods: int, weight: int) -> None:
    created, ready = start(stage_spec(replicas, canary_fields, **rollout))
    # Sized for the first stage already before Ready (no resize when it starts).
    assert canary_pods(created) == canary_pods(ready) == pods
    status = ready.md["status"]["canary"]
    assert (status["stage"], status["weight"]) == (stage, weight)
    assert ready.children[("apps/v1", "Deployment", "fraud")]["spec"]["replicas"] == replicas  # stable untouched
    split = route_rules(ready)[-1]["backendRefs"]
    assert [b["weight"] for b in split] == [100 - weight, weight]


def test_shadow_route_mirrors_and_sends_no_user_to_the_canary() -> None:
    _, ready = start(stage_spec(4, {"shadow": {"percent": 50}}))
    (rule,) = route_rules(ready)
    assert [b["weight"] for b in rule["backendRefs"]] == [100, 0]
    assert [(f["type"], f["requestMirror"]["percent"]) for f in rule["filters"]] == [("RequestMirror", 50)]


def test_segment_route_has_the_match_rule_first() -> None:
    _, ready = start(stage_spec(4, {"match": SEGMENT}))
    segment, split = route_rules(ready)
    assert segment["matches"][0]["headers"] == [{"type": "Exact", "name": "x-cohort", "value": "beta"}]
    assert [b["weight"] for b in segment["backendRefs"]] == [0, 100]
    assert [b["weight"] for b in split["backendRefs"]] == [100, 0]


def test_an_experiment_runs_beside_stable_with_its_sticky_policy() -> None:
    """strategy Experiment is a canary-like rollout, never a rolling update of stable."""
    sticky = {**EXPERIMENT_ROLLOUT, "experiment": {**EXPERIMENT_ROLLOUT["experiment"], "sticky": {"cookie": "user"}}}
    _, ready = start(stage_spec(10, {}, **sticky))
    stable = ready.children[("apps/v1", "Deployment", "fraud")]
    assert stable["spec"]["template"]["metadata"]["labels"]["modelpilot.io/version"] == "v1"
    policy = ready.children[("gateway.envoyproxy.io/v1alpha1", "BackendTrafficPolicy", "fraud")]
    assert policy["spec"]["loadBalancer"]["consistentHash"] == {"type": "Cookie", "cookie": {"name": "user"}}


# ------------------------------------------------------------------------------------ experiment queries


@pytest.mark.parametrize(("successes", "confine", "problem"), [
    ('sum(increase(conv{namespace="{{namespace}}", track="{{track}}"}[{{window}}]))', True, None),
    ('sum(x{a="{{foo}}"})', False, "experiment.metrics[0].successes (c): unknown placeholder {{foo}}"),
    ("sum(up", False, "experiment.metrics[0].successes (c): invalid PromQL"),
    ('sum(conv{namespace="other"})', True, "experiment.metrics[0].successes (c): selector conv must be confined"),
])
def test_experiment_queries_are_checked_like_analysis_queries(successes: str, confine: bool,
                                                              problem: str | None) -> None:
    from modelpilot.api.models import SpecError
    from modelpilot.control.plan import check_queries
    from tests.unit.spec_cases import experiment

    trials = 'sum(increase(trials{namespace="{{namespace}}"}[{{window}}]))'
    spec = parse_spec(experiment(metrics=[{"name": "c", "successes": successes, "trials": trials}]))
    if problem is None:
        check_queries(spec, confine)
        return
    with pytest.raises(SpecError) as err:
        check_queries(spec, confine)
    assert problem in str(err.value)


@pytest.mark.parametrize(("stage", "named", "added"), [
    ("shadow", False, True), ("shadow", True, False), ("steps", False, False), ("segment", False, False),
])
def test_the_shadow_adds_prediction_shift_unless_named(stage: str, named: bool, added: bool) -> None:
    from modelpilot.control.plan import stage_analysis
    from tests.unit.spec_cases import GATEWAY, canary

    metrics = [{"name": "error-rate", "max": 1}, *([{"name": "prediction-shift", "max": 0.3}] if named else [])]
    spec = parse_spec(canary(shadow={"percent": 10, "maxPredictionShift": 0.2}, trafficRouting=GATEWAY,
                             analysis={"metrics": metrics}))
    state = CanaryState(state="Progressing", version="v2", revision="r2", started_at=T0, last_progress_at=T0,
                        step=0, stage=stage)  # type: ignore[arg-type]
    analysis = stage_analysis(spec, state)
    assert (analysis is not spec.rollout.canary.analysis) == added
    shifts = [m.max for m in analysis.metrics if m.name == "prediction-shift"]
    assert shifts == ([0.2] if added else [0.3] if named else [])
