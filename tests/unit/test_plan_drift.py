"""plan() with drift monitoring, tick by tick with an injected clock: when drift is read, what the
DataDrift / ConceptDrift conditions, status.drift and Events become, carry-over between
evaluations, onDrift Pause holding a canary, and what reaches the pods."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from modelpilot.analysis.drift_judge import judge_drift
from modelpilot.analysis.drift_read import Distribution, DriftReadings
from modelpilot.api.models import parse_spec
from modelpilot.control.drift import DriftOutcome, every_seconds
from modelpilot.control.observe import Observed
from modelpilot.control.plan import Plan, plan
from modelpilot.resources import BuildSettings, build_deployment
from tests.unit.plan_world import T0, execute, modeldeployment, settle, spec, tick
from tests.unit.test_plan import with_spec

DRIFT = {"drift": {"window": "20s", "minSamples": 100}}


def at(n: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=n)


def conditions(observed: Observed) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in observed.md["status"]["conditions"]}


def outcome(body: dict[str, Any], when: dt.datetime, psi: float = 0.02, accuracy: float | None = None) -> DriftOutcome:
    settings = parse_spec(body).monitoring.drift
    p_value = 1e-9 if psi >= 0.2 else 0.5  # 400 rows: a large PSI is significant
    readings = DriftReadings(profile=1.0, rows=400.0, features={"petal_length": Distribution(psi, p_value)},
                             feedback_rows=300.0 if accuracy is not None else 0.0, accuracy=accuracy,
                             reference_accuracy=0.97 if accuracy is not None else None)
    return DriftOutcome(when, report=judge_drift(settings, readings, when))


def run(observed: Observed, when: dt.datetime, drift: DriftOutcome | None) -> tuple[Plan, Observed]:
    the_plan = plan(observed, None, when, drift=drift)
    return the_plan, execute(observed, the_plan)


def test_first_reconcile_asks_for_drift_and_reports_not_evaluated() -> None:
    observed = settle(Observed(md=modeldeployment(spec(monitoring=DRIFT))))
    assert conditions(observed)["DataDrift"] == ("Unknown", "NotEvaluated")
    assert conditions(observed)["ConceptDrift"] == ("Unknown", "NotEvaluated")
    asked = plan(observed, None, T0)
    assert asked.drift is not None and asked.drift.revision and asked.drift.settings.window == "20s"
    assert not asked.writes  # reading is not writing: the plan only hands the request over


def test_drift_detected_then_cleared_one_event_each() -> None:
    body = spec(monitoring=DRIFT)
    observed = settle(Observed(md=modeldeployment(body)))
    detected_plan, observed = run(observed, at(1), outcome(body, at(1), psi=1.4))
    assert conditions(observed)["DataDrift"] == ("True", "FeatureDrift")
    assert [(e.type, e.reason) for e in detected_plan.events] == [("Warning", "DataDriftDetected")]
    assert "feature petal_length PSI 1.4" in detected_plan.events[0].message
    assert observed.md["status"]["drift"]["features"][0]["name"] == "petal_length"
    # Between evaluations nothing changes and nothing is asked: a requeue at the next due time.
    between = plan(observed, None, at(3))
    assert not between.writes and between.drift is None
    assert between.requeue == pytest.approx(1 + every_seconds(parse_spec(body).monitoring.drift) - 3)
    # Still drifting at the next evaluation: status updated (time), no second Event.
    again_plan, observed = run(observed, at(6), outcome(body, at(6), psi=1.2))
    assert again_plan.events == () and observed.md["status"]["drift"]["lastEvaluated"] == "2026-11-25T12:00:06Z"
    cleared_plan, observed = run(observed, at(11), outcome(body, at(11), psi=0.01))
    assert conditions(observed)["DataDrift"] == ("False", "NoDrift")
    assert [(e.type, e.reason) for e in cleared_plan.events] == [("Normal", "DataDriftCleared")]


def test_concept_drift_from_feedback_accuracy() -> None:
    body = spec(monitoring=DRIFT)
    observed = settle(Observed(md=modeldeployment(body)))
    the_plan, observed = run(observed, at(1), outcome(body, at(1), accuracy=0.68))
    assert conditions(observed)["ConceptDrift"] == ("True", "AccuracyDrop")
    assert observed.md["status"]["drift"]["accuracy"] == {"metric": "accuracy", "live": 0.68, "reference": 0.97,
                                                          "samples": 300}
    assert [e.reason for e in the_plan.events] == ["ConceptDriftDetected"]


def test_a_failed_read_keeps_the_conditions_and_says_why() -> None:
    body = spec(monitoring=DRIFT)
    observed = settle(Observed(md=modeldeployment(body)))
    _, observed = run(observed, at(1), outcome(body, at(1), psi=1.4))
    the_plan, after = run(observed, at(6), DriftOutcome(at(6), error="prometheus unreachable"))
    assert conditions(after)["DataDrift"] == ("True", "FeatureDrift") and the_plan.events == ()
    assert after.md["status"]["drift"]["message"] == "metrics provider: prometheus unreachable"
    assert after.md["status"]["drift"]["features"][0]["psi"] == 1.4  # the last figures stay


def test_monitoring_off_removes_conditions_and_status_and_tells_the_pods() -> None:
    body = spec(monitoring=DRIFT)
    observed = settle(Observed(md=modeldeployment(body)))
    _, observed = run(observed, at(1), outcome(body, at(1), psi=1.4))
    off = spec(monitoring={"drift": {"enabled": False}})
    the_plan, after = tick(with_spec(observed, off, generation=2), at(2))
    assert "DataDrift" not in conditions(after) and "drift" not in after.md["status"]
    assert the_plan.drift is None
    env = {e["name"]: e.get("value") for e in after.children[("apps/v1", "Deployment", "fraud")]["spec"]
           ["template"]["spec"]["containers"][0]["env"]}
    assert env["MODELPILOT_DRIFT"] == "false"


@pytest.mark.parametrize(("monitoring", "expected"), [
    (None, {}),
    ({"drift": {"window": "1h", "maxFeatures": 50}}, {}),  # the runtime's defaults: nothing added
    ({"drift": {"window": "20s"}}, {"MODELPILOT_DRIFT_WINDOW": "20"}),
    ({"drift": {"maxFeatures": 7, "window": "2m"}},
     {"MODELPILOT_DRIFT_WINDOW": "120", "MODELPILOT_DRIFT_MAX_FEATURES": "7"}),
    ({"drift": {"enabled": False, "window": "2m"}}, {"MODELPILOT_DRIFT": "false"}),
])
def test_drift_settings_reach_the_pods_only_when_not_default(monitoring: dict[str, Any] | None,
                                                             expected: dict[str, str]) -> None:
    body = spec(**({"monitoring": monitoring} if monitoring else {}))
    deployment = build_deployment(parse_spec(body), name="fraud", namespace="ml", track="stable", replicas=1,
                                  owner={"apiVersion": "v1", "kind": "X", "name": "fraud", "uid": "u"},
                                  settings=BuildSettings())
    env = {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert {k: v for k, v in env.items() if k.startswith("MODELPILOT_DRIFT")} == expected


def test_on_drift_pause_holds_the_canary_until_drift_clears() -> None:
    body = spec(monitoring={"drift": {"window": "20s", "onDrift": "Pause"}})
    settled = settle(Observed(md=modeldeployment(body)))
    v2 = dict(body, model={**body["model"], "version": "v2"})
    _, observed = tick(with_spec(settled, v2), at(0))
    _, observed = tick(observed, at(1))
    assert observed.md["status"]["canary"]["state"] == "Progressing"
    held_plan, observed = run(observed, at(2), outcome(body, at(2), psi=1.4))
    canary = observed.md["status"]["canary"]
    assert (canary["state"], canary["pausedBy"]) == ("Paused", "drift")
    assert "onDrift Pause: DataDrift: feature petal_length PSI 1.4" in canary["message"]
    assert {e.reason for e in held_plan.events} == {"Paused", "DataDriftDetected"}
    assert plan(observed, None, at(30)).analysis is None  # no analysis while held
    resumed_plan, observed = run(observed, at(40), outcome(body, at(40), psi=0.01))
    assert observed.md["status"]["canary"]["state"] == "Progressing"
    assert {e.reason for e in resumed_plan.events} == {"Resumed", "DataDriftCleared"}


def test_report_never_changes_the_canary() -> None:
    body = spec(monitoring=DRIFT)
    settled = settle(Observed(md=modeldeployment(body)))
    v2 = dict(body, model={**body["model"], "version": "v2"})
    _, observed = tick(with_spec(settled, v2), at(0))
    _, observed = tick(observed, at(1))
    _, observed = run(observed, at(2), outcome(body, at(2), psi=1.4))
    assert observed.md["status"]["canary"]["state"] == "Progressing"
    assert conditions(observed)["DataDrift"] == ("True", "FeatureDrift")
