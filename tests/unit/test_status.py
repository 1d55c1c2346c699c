"""Status assessment from observations (table-driven), condition merging and status patches."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from modelpilot.status import (
    Accelerator,
    Observation,
    RolloutView,
    assess,
    merge_conditions,
    status_patch,
    transitions,
)

REV = "abc123"
T0 = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC)


def deployment(replicas: int = 2, updated: int = 2, available: int = 2, total: int | None = None,
               revision: str = REV, generation: int = 3, observed: int = 3) -> dict[str, Any]:
    return {
        "metadata": {"generation": generation},
        "spec": {"replicas": replicas, "template": {"metadata": {"annotations": {"modelpilot.io/revision": revision}}}},
        "status": {"observedGeneration": observed, "replicas": total if total is not None else updated,
                   "updatedReplicas": updated, "availableReplicas": available, "readyReplicas": available},
    }


UNSCHEDULABLE_POD = {"metadata": {"name": "p"}, "status": {"conditions": [{
    "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
    "message": "0/5 nodes are available: 5 node(s) didn't match Pod's node affinity/selector."}]}}
A100 = Accelerator(resource="nvidia.com/gpu", count=1, product="NVIDIA-H100", product_label="nvidia.com/gpu.product")
PREVIOUS = {"version": "v1", "revision": "old", "replicas": 2, "readyReplicas": 2}


def obs(**kw: Any) -> Observation:
    base: dict[str, Any] = {"generation": 4, "version": "v2", "revision": REV, "stable_deployment": deployment()}
    base.update(kw)
    return Observation(**base)


CASES: list[tuple[str, Observation, dict[str, Any] | None, str, tuple[bool, str], str | None]] = [
    # name, observation, previous stable, phase, (ready, reason), stable version after
    ("ready", obs(), None, "Ready", (True, "Available"), "v2"),
    ("no-deployment-yet", obs(stable_deployment=None), None, "Pending", (False, "Pending"), None),
    ("first-rollout-in-progress", obs(stable_deployment=deployment(available=0)), None, "Pending",
     (False, "Pending"), None),
    ("rolling-update", obs(stable_deployment=deployment(updated=1, total=3)), PREVIOUS, "Progressing",
     (False, "RollingUpdate"), "v1"),
    ("old-template", obs(stable_deployment=deployment(revision="old")), PREVIOUS, "Progressing",
     (False, "RollingUpdate"), "v1"),
    ("controller-lagging", obs(stable_deployment=deployment(observed=2)), PREVIOUS, "Progressing",
     (False, "RollingUpdate"), "v1"),
    ("old-pods-terminating", obs(stable_deployment=deployment(total=3)), PREVIOUS, "Progressing",
     (False, "RollingUpdate"), "v1"),
    ("no-gpu-node", obs(stable_deployment=deployment(available=0), pods=[UNSCHEDULABLE_POD], accelerator=A100),
     None, "Pending", (False, "InsufficientAccelerator"), None),
    ("unschedulable-cpu", obs(stable_deployment=deployment(available=0), pods=[UNSCHEDULABLE_POD]), None,
     "Pending", (False, "Unschedulable"), None),
    ("invalid-spec", obs(invalid_spec="spec.x: bad"), PREVIOUS, "Degraded", (False, "InvalidSpec"), "v1"),
]


@pytest.mark.parametrize(("case", "observation", "previous", "phase", "ready", "stable_version"), CASES,
                         ids=[c[0] for c in CASES])
def test_assess(case: str, observation: Observation, previous: dict[str, Any] | None, phase: str,
                ready: tuple[bool, str], stable_version: str | None) -> None:
    result = assess(observation, previous)
    assert result.phase == phase
    conditions = {c.type: c for c in result.conditions}
    assert set(conditions) == {"Ready", "Progressing", "Degraded"}
    assert (conditions["Ready"].status, conditions["Ready"].reason) == ready
    assert (result.stable or {}).get("version") == stable_version


def test_insufficient_accelerator_message_names_resource_and_product() -> None:
    result = assess(obs(stable_deployment=deployment(available=0), pods=[UNSCHEDULABLE_POD], accelerator=A100), None)
    message = result.conditions[0].message
    assert "1x nvidia.com/gpu" in message and "nvidia.com/gpu.product=NVIDIA-H100" in message
    assert "didn't match" in message


@pytest.mark.parametrize(("pods", "accelerator", "reason"), [
    ([UNSCHEDULABLE_POD], A100, "InsufficientAccelerator"),
    ([UNSCHEDULABLE_POD], None, "Unschedulable"),
    ([], None, "ProgressDeadlineExceeded"),
])
def test_a_stalled_promotion_is_degraded_with_the_real_reason(pods: list[dict[str, Any]],
                                                               accelerator: Accelerator | None, reason: str) -> None:
    stalled = RolloutView("Promoting", "PromotionStalled", "promotion of v2 stalled")
    result = assess(obs(stable_deployment=deployment(updated=1, available=1, total=2), pods=pods,
                        accelerator=accelerator, rollout=stalled), PREVIOUS)
    conditions = {c.type: c for c in result.conditions}
    assert result.phase == "Degraded" and conditions["Degraded"].status
    assert (conditions["Ready"].status, conditions["Ready"].reason) == (False, reason)
    assert "promotion of v2 stalled" in conditions["Ready"].message
    assert result.stable is not None and result.stable["version"] == "v1"  # the old pods keep serving


def test_invalid_spec_is_degraded() -> None:
    conditions = {c.type: c for c in assess(obs(invalid_spec="bad"), None).conditions}
    assert conditions["Degraded"].status and conditions["Degraded"].reason == "InvalidSpec"


def test_merge_conditions_keeps_transition_time_unless_status_flips() -> None:
    first = merge_conditions([], assess(obs(), None).conditions, 4, T0)
    later = T0 + dt.timedelta(minutes=5)
    # Same statuses, new message: times kept.
    again = merge_conditions(first, assess(obs(version="v2", generation=5), None).conditions, 5, later)
    assert [c["lastTransitionTime"] for c in again] == [c["lastTransitionTime"] for c in first]
    assert all(c["observedGeneration"] == 5 for c in again)
    # Ready flips: only Ready (and whatever else flipped) gets the new time.
    flipped = merge_conditions(first, assess(obs(stable_deployment=None), None).conditions, 5, later)
    by_type = {c["type"]: c for c in flipped}
    assert by_type["Ready"]["lastTransitionTime"] == "2026-11-25T12:05:00Z"
    assert by_type["Degraded"]["lastTransitionTime"] == "2026-11-25T12:00:00Z"
    assert [c["type"] for c in transitions(first, flipped)] == ["Ready", "Progressing"]
    assert transitions(first, again) == []


@pytest.mark.parametrize(("current", "desired", "patch"), [
    ({"a": 1}, {"a": 1}, None),
    ({"a": 1}, {"a": 2}, {"a": 2}),
    ({"a": 1, "canary": {"w": 1}}, {"a": 1}, {"canary": None}),
    ({}, {"phase": "Ready"}, {"phase": "Ready"}),
    ({"canary": {"state": "Paused", "pausedBy": "spec", "step": 1}}, {"canary": {"state": "Progressing", "step": 1}},
     {"canary": {"state": "Progressing", "pausedBy": None}}),
    ({"c": {"l": [1, 2]}}, {"c": {"l": [1]}}, {"c": {"l": [1]}}),
])
def test_status_patch(current: dict[str, Any], desired: dict[str, Any], patch: dict[str, Any] | None) -> None:
    assert status_patch(current, desired) == patch
