"""The status a tick writes, built from the pydantic status models (pure).

The whole desired status is assembled, validated by `ModelDeploymentStatus` (the same models the
CRD schema is generated from, so a written status always matches the CRD) and dumped from it; the
patch is the difference from the current status, None when there is none, so a steady state
writes nothing.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from typing import Any

from modelpilot.api.models import ModelDeploymentStatus
from modelpilot.api.stored import StoredStatus, read_status
from modelpilot.control.drift import DriftPart, carried_conditions
from modelpilot.control.serverless import ServerlessPart
from modelpilot.resources.labels import scale_selector
from modelpilot.rollout.machine import CanaryState, Event
from modelpilot.rollout.state import to_status
from modelpilot.status import (
    PROGRESSING,
    READY,
    Assessment,
    Condition,
    Observation,
    assess,
    kstatus_conditions,
    merge_conditions,
    status_patch,
    transitions,
)

# Ready reasons that deserve a Warning Event rather than a Normal one.
WARNING_REASONS = frozenset({"InvalidSpec", "InvalidStatus", "InsufficientAccelerator", "Unschedulable",
                             "NameConflict", "KEDAMissing", "ProgressDeadlineExceeded"})
# Ready reasons of scale to zero: its own Events (ScaledToZero, Activated) already say so.
SERVERLESS_READY = frozenset({"ScaledToZero", "Activating"})
KEDA_MISSING = ("autoscaling needs KEDA, and its ScaledObject CRD (scaledobjects.keda.sh) is not installed: "
                "the Deployment keeps the replicas it has until KEDA is installed")


@dataclass(frozen=True)
class StatusPlan:
    patch: dict[str, Any] | None
    events: tuple[Event, ...] = ()
    phase: str = ""
    ready: tuple[str, str] = ("", "")  # status, reason of the Ready condition


def typed_status(desired: dict[str, Any], verbatim: dict[str, Any] | None = None) -> dict[str, Any]:
    """`desired` through the status models: enums, bounds and field names as the CRD has them.
    The stable template stays as built (canonical, defaults left out: it is what revisions hash).
    Parts in `verbatim` are kept exactly as stored, unchecked: another release may have written them."""
    template = (desired.get("stable") or {}).get("template")
    out = ModelDeploymentStatus.model_validate(desired).model_dump(mode="json", by_alias=True, exclude_none=True)
    if template is not None:
        out["stable"]["template"] = template
    out.update(verbatim or {})
    return out


def _with_serverless(result: Assessment, obs: Observation, serverless: ServerlessPart | None) -> Assessment:
    """Scale to zero's say in Ready: KEDAMissing (False), or at zero and waking from it (True: the
    model answers, its requests wait at the activator). Never over a bad spec or a name clash."""
    if serverless is None or obs.invalid_spec is not None or obs.conflict is not None:
        return result
    if serverless.keda_missing:
        return replace(result, phase="Degraded" if result.phase == "Ready" else result.phase, conditions=tuple(
            Condition(READY, False, "KEDAMissing", KEDA_MISSING) if c.type == READY else c
            for c in result.conditions))
    if serverless.ready is None or obs.rollout is not None:
        return result
    reason, message = serverless.ready
    return replace(result, phase="Ready", conditions=tuple(
        Condition(READY, True, reason, message) if c.type == READY else
        Condition(PROGRESSING, False, reason, message) if c.type == PROGRESSING else c
        for c in result.conditions))


def plan_status(md: dict[str, Any], obs: Observation, canary: CanaryState | None,
                stable_template: dict[str, Any] | None, now: dt.datetime,
                stored: StoredStatus | None = None, drift: DriftPart | None = None,
                serverless: ServerlessPart | None = None, edge: dict[str, Any] | None = None) -> StatusPlan:
    """`drift`: the drift conditions and status.drift to write; None keeps them as stored.
    `serverless`: status.serverless and whether KEDA is missing (Ready False, KEDAMissing).
    `edge`: status.edge (target Edge), kept as stored when None."""
    current: dict[str, Any] = dict(md.get("status") or {})  # as stored: the patch is against this
    stored = stored if stored is not None else read_status(current)  # what this release can read of it
    name = md["metadata"]["name"]
    result = _with_serverless(assess(obs, stored.stable or None), obs, serverless)
    extra = drift.conditions if drift is not None else carried_conditions(stored.conditions)
    wanted = (*result.conditions, *kstatus_conditions(result.conditions, obs.rollout), *extra)
    conditions = merge_conditions(stored.conditions, wanted, obs.generation, now)
    desired: dict[str, Any] = {"observedGeneration": obs.generation, "phase": result.phase,
                               "conditions": conditions, "selector": scale_selector(name)}
    verbatim: dict[str, Any] = {}
    if obs.invalid_spec is not None or obs.conflict is not None or obs.invalid_status is not None:
        # Keep the rollout state as stored: once the spec, the name or the status is sorted out, the
        # rollout resumes where it stopped.
        verbatim = {key: current[key] for key in ("stable", "canary") if key in current}
    else:
        stable = dict(result.stable or {})
        if stable_template is not None:
            stable["template"] = stable_template
        if stable:
            desired["stable"] = stable
        if canary is not None:
            desired["canary"] = to_status(canary)
    if obs.url:
        desired["url"] = obs.url
    if serverless is not None and serverless.status is not None:
        desired["serverless"] = serverless.status
    if edge is not None:
        desired["edge"] = edge
    elif "edge" in current and (obs.invalid_spec is not None or obs.conflict is not None):
        verbatim["edge"] = current["edge"]  # the canary's nodes stay chosen while the spec is fixed
    if drift is None and "drift" in current:
        verbatim["drift"] = current["drift"]
    elif drift is not None and drift.status is not None:
        desired["drift"] = drift.status
    patch = status_patch(current, typed_status(desired, verbatim))
    ready = next(c for c in conditions if c["type"] == "Ready")
    if patch is None:
        return StatusPlan(None, phase=result.phase, ready=(ready["status"], ready["reason"]))
    # One Event per change of the Ready condition (status or reason), never one per resync;
    # rollout decisions post their own Events. A new object's first "Pending" says nothing the
    # create did not: no Event (one write less per new ModelDeployment).
    previous = stored.conditions
    new = not any(c.get("type") == "Ready" for c in previous)
    events = tuple(
        Event("Warning" if cond["reason"] in WARNING_REASONS else "Normal", cond["reason"],
              cond["message"] or cond["reason"])
        for cond in transitions(previous, conditions)
        if cond["type"] == "Ready" and obs.rollout is None and not (new and cond["reason"] == "Pending")
        and cond["reason"] not in SERVERLESS_READY)
    return StatusPlan(patch, events, result.phase, (ready["status"], ready["reason"]))
