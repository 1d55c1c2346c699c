"""The kstatus pair (Reconciling, Stalled) derived from each assessment, table-driven: what Flux,
kpt and Helm's --wait conclude from it (Reconciling=True: InProgress, Stalled=True: Failed)."""

from __future__ import annotations

from typing import Any

import pytest

from modelpilot.status import (
    RECONCILING,
    STALLED,
    Accelerator,
    Condition,
    Observation,
    RolloutView,
    assess,
    kstatus_conditions,
)
from tests.unit.test_status import PREVIOUS, UNSCHEDULABLE_POD, deployment, obs

GPU = Accelerator(resource="nvidia.com/gpu", count=1, product=None, product_label="nvidia.com/gpu.product")


def past_deadline(**kw: Any) -> dict[str, Any]:
    body = deployment(**kw)
    body["status"]["conditions"] = [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]
    return body


def canary(state: str, reason: str = "Analysing", message: str = "canary v2 at 20%") -> RolloutView:
    return RolloutView(state=state, reason=reason, message=message)


CASES: list[tuple[str, Observation, dict[str, Any] | None, tuple[str, str] | None]] = [
    # name, observation, previous stable, expected (type, reason) or None (kstatus: Current)
    ("ready", obs(), None, None),
    ("creating", obs(stable_deployment=None), None, (RECONCILING, "Creating")),
    ("first-rollout", obs(stable_deployment=deployment(available=0)), None, (RECONCILING, "Pending")),
    ("rolling-update", obs(stable_deployment=deployment(updated=1, total=3)), PREVIOUS, (RECONCILING, "RollingUpdate")),
    ("canary-progressing", obs(rollout=canary("Progressing")), PREVIOUS, (RECONCILING, "Canary")),
    ("canary-promoting", obs(rollout=canary("Promoting", "Promoting")), PREVIOUS, (RECONCILING, "Promoting")),
    ("canary-paused", obs(rollout=canary("Paused", "Paused")), PREVIOUS, (RECONCILING, "Paused")),
    ("rolled-back", obs(rollout=canary("RolledBack", "RolledBack")), PREVIOUS, (STALLED, "RolledBack")),
    ("aborted", obs(rollout=canary("RolledBack", "Aborted")), PREVIOUS, (STALLED, "Aborted")),
    ("canary-deadline", obs(rollout=canary("RolledBack", "ProgressDeadlineExceeded")), PREVIOUS,
     (STALLED, "ProgressDeadlineExceeded")),
    ("experiment-concluded-back", obs(rollout=canary("RolledBack", "ExperimentConcluded")), PREVIOUS, None),
    ("invalid-spec", obs(invalid_spec="bad"), PREVIOUS, (STALLED, "InvalidSpec")),
    ("name-conflict", obs(conflict="taken"), PREVIOUS, (STALLED, "NameConflict")),
    ("invalid-status", obs(invalid_status="foreign"), PREVIOUS, (STALLED, "InvalidStatus")),
    ("gpu-missing-before-deadline",
     obs(stable_deployment=deployment(available=0), pods=[UNSCHEDULABLE_POD], accelerator=GPU), None,
     (RECONCILING, "InsufficientAccelerator")),
    ("gpu-missing-after-deadline",
     obs(stable_deployment=past_deadline(available=0), pods=[UNSCHEDULABLE_POD], accelerator=GPU), None,
     (STALLED, "InsufficientAccelerator")),
    ("unschedulable-after-deadline",
     obs(stable_deployment=past_deadline(available=0), pods=[UNSCHEDULABLE_POD]), None, (STALLED, "Unschedulable")),
    ("never-ready-after-deadline", obs(stable_deployment=past_deadline(available=0)), None,
     (STALLED, "ProgressDeadlineExceeded")),
    # A deadline marked earlier but the rollout done since: the Deployment's condition is stale.
    ("done-despite-old-deadline", obs(stable_deployment=past_deadline()), None, None),
    ("promotion-stalled-on-gpu",
     obs(rollout=canary("Promoting", "PromotionStalled", "stable did not roll out"),
         stable_deployment=deployment(updated=1, available=1, total=3), pods=[UNSCHEDULABLE_POD], accelerator=GPU),
     PREVIOUS, (STALLED, "InsufficientAccelerator")),
]


@pytest.mark.parametrize(("case", "observation", "previous", "expected"), CASES, ids=[c[0] for c in CASES])
def test_kstatus_pair(case: str, observation: Observation, previous: dict[str, Any] | None,
                      expected: tuple[str, str] | None) -> None:
    result = assess(observation, previous)
    pair = kstatus_conditions(result.conditions, observation.rollout)
    assert [(c.type, c.reason) for c in pair] == ([expected] if expected else [])
    assert all(c.status is True for c in pair)  # written only while True


def test_stalled_carries_the_degraded_message() -> None:
    result = assess(obs(invalid_spec="spec.model.uri: unsupported scheme"), PREVIOUS)
    (stalled,) = kstatus_conditions(result.conditions, None)
    assert stalled.message == "spec.model.uri: unsupported scheme"


def test_a_stuck_rollout_past_its_deadline_is_degraded_and_no_longer_progressing() -> None:
    result = assess(obs(stable_deployment=past_deadline(available=0), pods=[UNSCHEDULABLE_POD], accelerator=GPU),
                    None)
    kinds = {c.type: (c.status, c.reason) for c in result.conditions}
    assert result.phase == "Degraded"
    assert kinds == {"Ready": (False, "InsufficientAccelerator"), "Progressing": (False, "InsufficientAccelerator"),
                     "Degraded": (True, "InsufficientAccelerator")}


def test_nothing_but_degraded_and_progressing_decides() -> None:
    conditions = tuple(Condition(kind, False, "X") for kind in ("Ready", "Progressing", "Degraded"))
    assert kstatus_conditions(conditions, None) == ()
