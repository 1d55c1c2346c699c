"""plan() through whole rollouts, tick by tick with an injected clock: canary steps, analyses
requested (never run inside plan), promotion, rollback, a consumed action."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from modelpilot.api.notifications import NOTIFICATION_EVENTS
from modelpilot.control.observe import Observed
from modelpilot.control.plan import ANALYSIS_POLL_SECONDS, plan
from modelpilot.rollout.machine import AnalysisResult, Measurement
from tests.unit.plan_world import T0, execute, modeldeployment, settle, spec, tick
from tests.unit.test_plan import gateway_spec, with_spec


def at(n: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=n)


def verdict(v: str) -> AnalysisResult:
    value = 0.0 if v == "Pass" else 9.0
    return AnalysisResult(v, (Measurement(T0, "error-rate", value, "<= 1", v),))  # type: ignore[arg-type]


def canary_replicas(observed: Observed) -> int:
    return int(observed.children[("apps/v1", "Deployment", "fraud-canary")]["spec"]["replicas"])


def route_weights(observed: Observed) -> list[int]:
    route = observed.children[("gateway.networking.k8s.io/v1", "HTTPRoute", "fraud")]
    return [b["weight"] for b in route["spec"]["rules"][0]["backendRefs"]]


def start_canary(body: dict[str, Any]) -> Observed:
    """v1 serving and settled, then the spec moves to v2 and the canary becomes Ready (weight 20)."""
    settled = settle(Observed(md=modeldeployment(body)))
    v2 = dict(body, model={**body["model"], "version": "v2"})
    started_plan, observed = tick(with_spec(settled, v2), at(0))
    assert [e.reason for e in started_plan.events] == ["CanaryStarted"]
    ready_plan, observed = tick(observed, at(1))
    assert [e.reason for e in ready_plan.events] == ["CanaryReady"]
    assert observed.md["status"]["canary"]["weight"] == 20
    return observed


@pytest.mark.parametrize("body", [spec(), gateway_spec()], ids=["replicas", "gateway"])
def test_canary_steps_then_promotes(body: dict[str, Any]) -> None:
    observed = start_canary(body)
    # Before the first analysis is due (ready + initialDelay 10 s): nothing to do, a requeue at due.
    waiting = plan(observed, None, at(5))
    assert not waiting.writes and waiting.analysis is None and waiting.requeue == pytest.approx(6)
    # Due: plan asks for an analysis and does not change the rollout while it runs.
    due = plan(observed, None, at(11))
    assert due.analysis is not None and due.analysis.due == at(11)
    # max(interval, 4 x scrape) is 60 s, but the canary became Ready 10 s before: no older samples.
    assert due.analysis.window == 10
    assert not due.writes and due.requeue is not None and due.requeue >= ANALYSIS_POLL_SECONDS
    # The analysis passed: next step.
    step, observed = tick(observed, at(12), verdict("Pass"))
    later = plan(observed, None, at(100))  # the next analysis, due at 22 s: its window starts at Ready (1 s)
    assert later.analysis is not None and later.analysis.window == 21
    assert [e.reason for e in step.events] == ["StepAdvanced"]
    assert observed.md["status"]["canary"]["weight"] == 50
    if "gatewayAPI" in body["rollout"]["canary"].get("trafficRouting", {}):
        assert route_weights(observed) == [50, 50]
    else:
        assert canary_replicas(observed) == 1  # one stable pod: one canary pod is 50%
    # Last step passes: the stable Deployment takes v2, then the canary scales to zero.
    promoting, observed = tick(observed, at(23), verdict("Pass"))
    assert [e.reason for e in promoting.events] == ["Promoting"]
    stable = next(o for o in promoting.apply if o["metadata"]["name"] == "fraud")
    assert stable["spec"]["template"]["metadata"]["labels"]["modelpilot.io/version"] == "v2"
    promoted, observed = tick(observed, at(24))
    assert [e.reason for e in promoted.events] == ["Promoted", "Available"]
    assert canary_replicas(observed) == 0
    observed = settle(observed, at(25))
    assert observed.md["status"]["stable"]["version"] == "v2" and "canary" not in observed.md["status"]
    assert not plan(observed, None, at(3600)).writes


def test_failed_analyses_roll_back_and_stable_keeps_serving() -> None:
    observed = start_canary(spec())
    failed, observed = tick(observed, at(12), verdict("Fail"))
    assert [e.reason for e in failed.events] == ["AnalysisFailed"] and canary_replicas(observed) == 1
    rolled, observed = tick(observed, at(23), verdict("Fail"))
    assert [e.reason for e in rolled.events] == ["RolledBack"]
    assert canary_replicas(observed) == 0
    assert all(o["metadata"]["name"] != "fraud" for o in rolled.apply)  # stable untouched
    status = observed.md["status"]
    assert status["phase"] == "Degraded" and status["stable"]["version"] == "v1"
    assert not plan(observed, None, at(3600)).writes  # rolled back is a steady state too


def test_stale_analysis_after_a_state_change_is_ignored() -> None:
    """An analysis handed in when none is due (e.g. spec.paused meanwhile) changes nothing."""
    observed = start_canary(spec())
    paused_spec = dict(observed.md["spec"], paused=True)
    paused, observed = tick(with_spec(observed, paused_spec, generation=3), at(11))
    assert [e.reason for e in paused.events] == ["Paused"]
    late = plan(observed, verdict("Fail"), at(12))
    assert not late.writes and observed.md["status"]["canary"]["failedChecks"] == 0


def test_manual_promote_is_consumed_with_its_value() -> None:
    observed = start_canary(spec())
    with_action = with_spec(observed, observed.md["spec"], generation=2,
                            annotations={"modelpilot.io/action": "promote"})
    the_plan = plan(with_action, None, at(3))
    assert the_plan.consume_action == "promote"
    assert [e.reason for e in the_plan.events] == ["Promoting"]
    assert the_plan.analysis is None
    after = execute(with_action, the_plan)
    assert "modelpilot.io/action" not in after.md["metadata"].get("annotations", {})


SLACK = {"name": "chat", "type": "Slack", "urlKey": "slack", "events": ["Promoted"]}
CLOUD = {"name": "events", "type": "CloudEvents", "urlKey": "ce"}


def test_the_plan_carries_the_parsed_notification_targets() -> None:
    """execute() hands them to the notifier with the plan's Events: the spec is parsed once, here."""
    settled = settle(Observed(md=modeldeployment(spec(notifications=[SLACK, CLOUD]))))
    the_plan, _ = tick(with_spec(settled, spec("v2", notifications=[SLACK, CLOUD])), at(0))
    assert [e.reason for e in the_plan.events] == ["CanaryStarted"]
    assert [(t.name, t.type, t.url_key, t.events) for t in the_plan.notifications] == [
        ("chat", "Slack", "slack", ["Promoted"]), ("events", "CloudEvents", "ce", list(NOTIFICATION_EVENTS))]
    assert plan(with_spec(settled, spec("v2")), None, at(0)).notifications == ()
    # A target the parser refuses makes the spec invalid: InvalidSpec, and no target is told anything.
    teams = {**CLOUD, "type": "Teams"}
    refused = plan(with_spec(settled, spec("v2", notifications=[SLACK, teams])), None, at(0))
    assert [e.reason for e in refused.events] == ["InvalidSpec"] and refused.notifications == ()
