"""Which operator Events become notifications, and what they carry (pure)."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import pytest

from modelpilot.api.notifications import NOTIFICATION_EVENTS, NotificationTarget
from modelpilot.control.drift import DRIFT_CONDITIONS
from modelpilot.notify.events import REASONS, notices, notification_event, status_facts, wanted
from modelpilot.rollout.model import Event

OPERATOR = Path(__file__).resolve().parents[2] / "operator" / "modelpilot"
NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


def emitted_reasons() -> set[str]:
    """Every Event reason the reconcile can emit, read from its source (drift: per condition)."""
    found: set[str] = set()
    for part in ("rollout", "control"):
        for path in (OPERATOR / part).glob("*.py"):
            found |= set(re.findall(r'Event\("(?:Normal|Warning)",\s*"([A-Za-z]+)"', path.read_text()))
    drift = (OPERATOR / "control" / "drift.py").read_text()
    for suffix in re.findall(r'Event\("(?:Normal|Warning)", f"\{cond\.type\}([A-Za-z]+)"', drift):
        found |= {f"{kind}{suffix}" for kind in DRIFT_CONDITIONS}
    return found


def test_every_mapped_reason_is_one_the_operator_emits() -> None:
    emitted = emitted_reasons()
    assert {"CanaryStarted", "StepAdvanced", "Promoted", "RolledBack", "DataDriftDetected"} <= emitted
    assert set(REASONS) <= emitted, set(REASONS) - emitted


def test_every_notification_event_can_happen() -> None:
    reachable = set(REASONS.values()) | {"Aborted"}  # Aborted: a RolledBack Event after the abort action
    assert reachable == set(NOTIFICATION_EVENTS)


@pytest.mark.parametrize(("reason", "canary", "expected"), [
    ("CanaryStarted", {}, "Started"),
    ("CanaryRestarted", {"state": "Progressing"}, "Started"),
    ("CanaryRetried", {}, "Started"),
    ("StepAdvanced", {"weight": 50}, "StepAdvanced"),
    ("StageAdvanced", {}, "StepAdvanced"),
    ("Paused", {"state": "Paused"}, "Paused"),
    ("Resumed", {}, "Resumed"),
    ("Promoted", {}, "Promoted"),
    ("RolledBack", {"state": "RolledBack", "reason": "AnalysisFailed"}, "RolledBack"),
    ("RolledBack", {"state": "RolledBack", "reason": "Aborted"}, "Aborted"),
    ("ExperimentConcluded", {"state": "RolledBack", "reason": "ExperimentConcluded"}, "RolledBack"),
    ("ExperimentConcluded", {"state": "Promoting"}, None),  # Promoted follows
    ("DataDriftDetected", {}, "DriftDetected"),
    ("ConceptDriftCleared", {}, "DriftCleared"),
    ("Promoting", {"state": "Promoting"}, None),
    ("AnalysisFailed", {}, None),
    ("Ready", {}, None),
    ("ScaledToZero", {}, None),
])
def test_notification_event(reason: str, canary: dict[str, Any], expected: str | None) -> None:
    assert notification_event(reason, canary) == expected


@pytest.mark.parametrize(("status", "facts"), [
    ({}, {}),
    ({"stable": {"version": "v1"}}, {"stableVersion": "v1"}),
    ({"stable": {"version": "v1"}, "canary": {"version": "v2", "weight": 0, "step": -1, "state": "Progressing"}},
     {"stableVersion": "v1", "canaryVersion": "v2", "weight": 0, "step": -1, "state": "Progressing"}),
    ({"canary": {"version": "v2", "weight": None}}, {"canaryVersion": "v2"}),
])
def test_status_facts(status: dict[str, Any], facts: dict[str, Any]) -> None:
    assert status_facts(status) == facts


def _md(status: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = {"model": {"version": "v2", "uri": "s3://m/v2", "format": "sklearn"}}
    return {"metadata": {"name": "fraud", "namespace": "ml", "uid": "u1"}, "spec": spec, "status": status}


def test_notices_keep_the_order_and_skip_other_events() -> None:
    ids = iter(["a", "b", "c"])
    status = {"stable": {"version": "v1"}, "canary": {"version": "v2", "weight": 20, "step": 0,
                                                        "state": "Progressing", "reason": "Ready"}}
    events = [Event("Normal", "AnalysisInconclusive", "no data"), Event("Normal", "StepAdvanced", "to 20%"),
              Event("Warning", "DataDriftDetected", "psi 0.4")]
    found = notices(_md(status), events, NOW, new_id=lambda: next(ids))
    assert [(n.id, n.event, n.reason, n.message) for n in found] == [
        ("a", "StepAdvanced", "StepAdvanced", "to 20%"), ("b", "DriftDetected", "DataDriftDetected", "psi 0.4")]
    assert all((n.namespace, n.name, n.time) == ("ml", "fraud", NOW) for n in found)
    assert found[0].facts == {"stableVersion": "v1", "canaryVersion": "v2", "weight": 20, "step": 0,
                              "state": "Progressing"}


def test_notice_ids_are_unique() -> None:
    found = notices(_md({}), [Event("Normal", "Promoted", "m")] * 3, NOW)
    assert len({n.id for n in found}) == 3


def test_targets_want_all_events_by_default_or_the_listed_ones() -> None:
    everything, promoted_only = (NotificationTarget.model_validate(raw) for raw in [
        {"name": "a", "type": "Slack", "urlKey": "k"},
        {"name": "b", "type": "Slack", "urlKey": "k", "events": ["Promoted"]}])
    events = [Event("Normal", reason, "m") for reason in ("CanaryStarted", "Promoted", "DataDriftCleared")]
    found = notices(_md({}), events, NOW)
    assert [n.event for n in found if wanted(everything, n)] == ["Started", "Promoted", "DriftCleared"]
    assert [n.event for n in found if wanted(promoted_only, n)] == ["Promoted"]
