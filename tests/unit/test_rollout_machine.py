"""The canary state machine, tick by tick with an injected clock (table-driven scenarios).

Each scenario is a list of ticks: (seconds since t0, observation changes, expectations). The state
returned by one tick is serialised to status and parsed back before the next, as the operator does.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import replace
from typing import Any

import pytest

from modelpilot.rollout.machine import (
    AnalysisResult,
    CanaryConfig,
    CanaryState,
    Decision,
    Measurement,
    Observation,
    analysis_due,
    decide,
)
from modelpilot.rollout.state import from_status, to_status

T0 = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC)
CONFIG = CanaryConfig(steps=(10, 25, 50), interval=10, initial_delay=10, failure_threshold=2,
                      progress_deadline=60, on_inconclusive="Wait", on_provider_error="Rollback",
                      max_provider_errors=3)
BASE = Observation(desired_revision="new", desired_version="v2", stable_revision="old", canary_ready=True)


def m(verdict: str, value: float | None = 0.1, metric: str = "error-rate", threshold: str = "<= 1") -> Measurement:
    return Measurement(time=T0, metric=metric, value=value, threshold=threshold, verdict=verdict)  # type: ignore[arg-type]


PASS = AnalysisResult("Pass", (m("Pass"),))
FAIL = AnalysisResult("Fail", (m("Fail", 37.5),))
INCONCLUSIVE = AnalysisResult("Inconclusive", (), reason="3 requests < minRequests 20")
ERROR = AnalysisResult("Error", (), reason="prometheus unreachable")

Tick = tuple[float, dict[str, Any], dict[str, Any]]


def run(ticks: list[Tick], config: CanaryConfig = CONFIG, canary: CanaryState | None = None,
        auto_analyse: bool = True) -> list[Decision]:
    """Drive `decide` through `ticks`. An `analysis` in the changes is only handed over when an
    analysis is due (as the reconciler does) unless auto_analyse is False."""
    decisions = []
    for seconds, changes, expect in ticks:
        now = T0 + dt.timedelta(seconds=seconds)
        obs = replace(BASE, **changes)
        if auto_analyse and obs.analysis is not None and not analysis_due(canary, config, now, obs.canary_ready,
                                                                          obs.paused):
            obs = replace(obs, analysis=None)
        decision = decide(config, canary, obs, now)
        decisions.append(decision)
        # Round-trip through status, like a real reconcile (and an operator restart) does.
        canary = from_status(to_status(decision.canary)) if decision.canary else None
        check(seconds, decision, canary, expect)
    return decisions


def check(seconds: float, decision: Decision, canary: CanaryState | None, expect: dict[str, Any]) -> None:
    where = f"t={seconds}"
    for key, want in expect.items():
        if key == "state":
            assert (canary.state if canary else None) == want, where
        elif key == "events":
            assert [e.reason for e in decision.events] == want, (where, decision.events)
        elif key == "promote":
            assert decision.promote == want, where
        elif key == "consume":
            assert decision.consume_action == want, where
        elif key == "outcome":
            assert decision.outcome == want, where
        elif key == "message":
            assert canary is not None and want in canary.message, (where, canary.message if canary else None)
        else:
            assert canary is not None, where
            assert getattr(canary, key) == want, (where, key, getattr(canary, key))


# ------------------------------------------------------------------------------------ scenarios

SCENARIOS: dict[str, list[Tick]] = {
    "good-version-promoted-through-every-step": [
        (0, {"canary_ready": False}, {"state": "Progressing", "step": -1, "weight": 0, "events": ["CanaryStarted"]}),
        (2, {"canary_ready": False}, {"step": -1, "events": []}),
        (4, {}, {"step": 0, "weight": 10, "events": ["CanaryReady"]}),
        (9, {"analysis": PASS}, {"step": 0, "weight": 10, "events": []}),  # initialDelay not over
        (14, {"analysis": PASS}, {"step": 1, "weight": 25, "events": ["StepAdvanced"]}),
        (20, {"analysis": PASS}, {"step": 1, "events": []}),  # interval not over: no double step
        (24, {"analysis": PASS}, {"step": 2, "weight": 50}),
        (34, {"analysis": PASS}, {"state": "Promoting", "promote": True, "events": ["Promoting"], "weight": 50}),
        (36, {"stable_revision": "new"}, {"state": "Promoting", "promote": False, "events": []}),
        (40, {"stable_revision": "new", "stable_rolled_out": True},
         {"state": None, "events": ["Promoted"], "outcome": "promoted"}),
        (45, {"stable_revision": "new"}, {"state": None, "events": []}),
    ],
    "promotion-past-the-deadline-is-reported-once": [
        (0, {}, {}), (1, {}, {"step": 0}),
        (11, {"analysis": PASS}, {"step": 1}), (21, {"analysis": PASS}, {"step": 2}),
        (31, {"analysis": PASS}, {"state": "Promoting", "last_progress_at": T0 + dt.timedelta(seconds=31)}),
        (90, {"stable_revision": "new"}, {"state": "Promoting", "reason": "Promoting", "events": []}),
        (92, {"stable_revision": "new"}, {"state": "Promoting", "reason": "PromotionStalled",
                                          "events": ["PromotionStalled"], "message": "stalled"}),
        (99, {"stable_revision": "new"}, {"state": "Promoting", "events": []}),
        (120, {"stable_revision": "new", "stable_rolled_out": True}, {"state": None, "events": ["Promoted"]}),
    ],
    "faulty-version-rolled-back-at-threshold": [
        (0, {}, {"events": ["CanaryStarted"]}),
        (1, {}, {"step": 0, "weight": 10}),
        (11, {"analysis": FAIL}, {"failed_checks": 1, "weight": 10, "events": ["AnalysisFailed"]}),
        (21, {"analysis": FAIL}, {"state": "RolledBack", "weight": 0, "failed_checks": 2, "events": ["RolledBack"],
                                  "outcome": "rolled-back", "message": "error-rate=37.5 (limit <= 1)"}),
        (31, {"analysis": PASS}, {"state": "RolledBack", "events": []}),  # stays until a new revision
    ],
    "failed-checks-are-cumulative-not-consecutive": [
        (0, {}, {}), (1, {}, {"step": 0}),
        (11, {"analysis": FAIL}, {"failed_checks": 1}),
        (21, {"analysis": PASS}, {"step": 1, "failed_checks": 1}),
        (31, {"analysis": FAIL}, {"state": "RolledBack", "failed_checks": 2}),
    ],
    "never-ready-rolled-back-at-progress-deadline": [
        (0, {"canary_ready": False}, {"step": -1}),
        (59, {"canary_ready": False}, {"state": "Progressing"}),
        (61, {"canary_ready": False}, {"state": "RolledBack", "reason": "ProgressDeadlineExceeded",
                                       "message": "never became Ready"}),
    ],
    "inconclusive-wait-holds-then-deadline": [
        (0, {}, {}), (1, {}, {"step": 0}),
        (11, {"analysis": INCONCLUSIVE}, {"state": "Progressing", "step": 0, "failed_checks": 0,
                                          "events": ["AnalysisInconclusive"]}),
        (21, {"analysis": INCONCLUSIVE}, {"step": 0, "failed_checks": 0}),
        (51, {"analysis": INCONCLUSIVE}, {"step": 0}),
        (62, {}, {"state": "RolledBack", "reason": "ProgressDeadlineExceeded"}),
    ],
    "provider-errors-rollback-after-max": [
        (0, {}, {}), (1, {}, {"step": 0}),
        (11, {"analysis": ERROR}, {"provider_errors": 1, "failed_checks": 0, "events": ["AnalysisError"]}),
        (21, {"analysis": ERROR}, {"provider_errors": 2, "step": 0}),
        (31, {"analysis": ERROR}, {"state": "RolledBack", "reason": "ProviderErrors", "provider_errors": 3}),
    ],
    "provider-back-before-max-continues": [
        (0, {}, {}), (1, {}, {"step": 0}),
        (11, {"analysis": ERROR}, {"provider_errors": 1}),
        (21, {"analysis": ERROR}, {"provider_errors": 2}),
        (31, {"analysis": PASS}, {"provider_errors": 0, "step": 1, "state": "Progressing"}),
    ],
    "newer-revision-mid-canary-restarts-at-zero": [
        (0, {}, {}), (1, {}, {"step": 0}),
        (11, {"analysis": FAIL}, {"failed_checks": 1}),
        (12, {"desired_revision": "newer", "desired_version": "v3", "canary_ready": False},
         {"revision": "newer", "version": "v3", "step": -1, "weight": 0, "failed_checks": 0,
          "events": ["CanaryRestarted"]}),
        (13, {"desired_revision": "newer", "desired_version": "v3"}, {"step": 0, "weight": 10}),
    ],
    "spec-reverted-to-stable-ends-without-failure": [
        (0, {}, {}), (1, {}, {"step": 0}),
        (11, {"analysis": PASS}, {"step": 1}),
        (12, {"desired_revision": "old", "desired_version": "v1"}, {"state": None, "events": ["CanaryCancelled"],
                                                                     "outcome": ""}),
    ],
    "revert-after-rollback-clears-it": [
        (0, {}, {}), (1, {}, {}),
        (11, {"analysis": FAIL}, {}), (21, {"analysis": FAIL}, {"state": "RolledBack"}),
        (25, {"desired_revision": "old"}, {"state": None, "events": ["CanaryCancelled"]}),
    ],
    "new-revision-after-rollback-starts-fresh": [
        (0, {}, {}), (1, {}, {}),
        (11, {"analysis": FAIL}, {}), (21, {"analysis": FAIL}, {"state": "RolledBack"}),
        (25, {"desired_revision": "v3rev", "desired_version": "v3"},
         {"state": "Progressing", "failed_checks": 0, "events": ["CanaryStarted"]}),
    ],
    "spec-paused-holds-and-resets-deadline": [
        (0, {}, {}), (1, {}, {"step": 0}),
        (5, {"paused": True}, {"state": "Paused", "paused_by": "spec", "events": ["Paused"]}),
        (11, {"paused": True, "analysis": PASS}, {"state": "Paused", "step": 0, "events": []}),
        (200, {"paused": True}, {"state": "Paused"}),  # far past the deadline: nothing happens
        (201, {}, {"state": "Progressing", "events": ["Resumed"]}),
        (215, {"analysis": PASS}, {"step": 1}),
    ],
    "manual-promote": [
        (0, {}, {}), (1, {}, {"step": 0}),
        (3, {"action": "promote"}, {"state": "Promoting", "promote": True, "consume": True}),
        (5, {"stable_revision": "new", "stable_rolled_out": True}, {"state": None, "outcome": "promoted"}),
    ],
    "manual-abort-then-retry": [
        (0, {}, {}), (1, {}, {"step": 0}),
        (3, {"action": "abort"}, {"state": "RolledBack", "reason": "Aborted", "consume": True, "weight": 0}),
        (4, {"action": "retry"}, {"state": "Progressing", "step": -1, "failed_checks": 0, "consume": True,
                                  "events": ["CanaryRetried"]}),
        (5, {}, {"step": 0, "weight": 10}),
    ],
    "unknown-action-is-consumed-with-a-warning": [
        (0, {}, {}), (1, {}, {"step": 0}),
        (2, {"action": "yolo"}, {"state": "Progressing", "consume": True, "events": ["UnknownAction"]}),
    ],
    "steady-state-without-canary": [
        (0, {"desired_revision": "old"}, {"state": None, "events": []}),
        (100, {"desired_revision": "old"}, {"state": None, "events": []}),
    ],
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_scenario(name: str) -> None:
    run(SCENARIOS[name])


def test_inconclusive_fail_policy_counts_as_failure() -> None:
    config = replace(CONFIG, on_inconclusive="Fail")
    run([(0, {}, {}), (1, {}, {}), (11, {"analysis": INCONCLUSIVE}, {"failed_checks": 1}),
         (21, {"analysis": INCONCLUSIVE}, {"state": "RolledBack"})], config=config)


def test_inconclusive_pause_waits_for_action() -> None:
    run([(0, {}, {}), (1, {}, {"step": 0}),
         (11, {"analysis": INCONCLUSIVE}, {"state": "Paused", "paused_by": "inconclusive", "events": ["Paused"]}),
         (300, {}, {"state": "Paused", "events": []}),  # no deadline while paused
         (301, {"action": "resume"}, {"state": "Progressing", "consume": True, "events": ["Resumed"]})],
        config=replace(CONFIG, on_inconclusive="Pause"))


def test_provider_error_pause_policy() -> None:
    config = replace(CONFIG, on_provider_error="Pause", max_provider_errors=1)
    run([(0, {}, {}), (1, {}, {}), (11, {"analysis": ERROR}, {"state": "Paused", "paused_by": "provider-error"}),
         (12, {"action": "promote"}, {"state": "Promoting", "promote": True})], config=config)


def test_no_traffic_is_never_a_pass() -> None:
    decisions = run([(0, {}, {}), (1, {}, {})] + [(11 + 10 * i, {"analysis": INCONCLUSIVE}, {"step": 0})
                                                    for i in range(4)])
    assert not any(d.promote for d in decisions)


def test_analyses_are_bounded_to_ten() -> None:
    many = AnalysisResult("Inconclusive", tuple(m("Inconclusive", None) for _ in range(4)), reason="no data")
    config = replace(CONFIG, progress_deadline=10_000)
    ticks: list[Tick] = [(0, {}, {}), (1, {}, {})] + [(11 + 10 * i, {"analysis": many}, {}) for i in range(5)]
    decisions = run(ticks, config=config)
    assert decisions[-1].canary is not None and len(decisions[-1].canary.analyses) == 10


def test_repeated_tick_without_new_analysis_takes_no_step() -> None:
    """A restarted operator re-running the same tick (same status, no due analysis) changes nothing."""
    decisions = run([(0, {}, {}), (1, {}, {}), (11, {"analysis": PASS}, {"step": 1})])
    state = decisions[-1].canary
    again = decide(CONFIG, state, replace(BASE, analysis=None), T0 + dt.timedelta(seconds=12))
    assert again.canary == state and not again.events


def test_status_round_trip_keeps_everything() -> None:
    state = CanaryState(state="Progressing", version="v2", revision="new", started_at=T0, last_progress_at=T0,
                        step=1, weight=25, failed_checks=1, provider_errors=2, ready_at=T0, last_analysis_at=T0,
                        reason="Analysing", message="m", analyses=(m("Pass"), m("Fail", math.inf, "latency-p99")))
    back = from_status(to_status(state))
    assert back is not None
    assert back.analyses[1].value is None and "inf" in back.analyses[1].detail
    assert replace(back, analyses=()) == replace(state, analyses=())
    assert to_status(state)["analyses"][0] == {"time": "2026-11-25T12:00:00Z", "metric": "error-rate",
                                               "threshold": "<= 1", "verdict": "Pass", "value": 0.1}


def test_a_canary_that_is_not_ready_wakes_at_the_deadline_not_in_a_loop() -> None:
    """Past step 0 and no longer Ready: no analysis can run, so no 0.5 s polling (pod events wake
    the reconciler); the deadline is the only timer."""
    [*_, lost] = run([(0, {}, {}), (1, {}, {"step": 0}), (20, {"canary_ready": False}, {"step": 0})])
    assert lost.requeue_after == pytest.approx(41)  # progressDeadline 60 s from the last progress at 1 s
    [*_, promoting] = run([(0, {}, {}), (1, {}, {}), (11, {"analysis": PASS}, {}), (21, {"analysis": PASS}, {}),
                           (31, {"analysis": PASS}, {"state": "Promoting"}), (32, {"stable_revision": "new"}, {})])
    assert promoting.requeue_after == pytest.approx(59)  # the promotion deadline, not a 2 s poll
