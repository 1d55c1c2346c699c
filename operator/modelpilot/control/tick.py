"""One tick of the rollout for an observed ModelDeployment (pure): which template the stable track
runs, the state machine's decision, and whether an analysis is due and still to be run."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from modelpilot.api.models import Accelerator, ModelDeploymentSpec, ModelSource, Resources, Runtime
from modelpilot.control.observe import Observed
from modelpilot.resources import ANNOTATION_ACTION, serving_revision
from modelpilot.rollout.machine import (
    AnalysisResult,
    CanaryConfig,
    CanaryState,
    Decision,
    Observation,
    analysis_due,
    decide,
    next_analysis_at,
)
from modelpilot.rollout.state import config_from_spec, from_status
from modelpilot.status import rolled_out


@dataclass(frozen=True)
class Tick:
    stable_spec: ModelDeploymentSpec
    decision: Decision
    action: str | None = None
    # Set when an analysis is due and none was handed in: the reconciler runs one (asynchronously).
    analysis_due_at: dt.datetime | None = None
    canary_before: CanaryState | None = None


def stable_spec_from(spec: ModelDeploymentSpec, template: dict[str, Any] | None) -> ModelDeploymentSpec:
    """The spec with its serving part (model, runtime, resources, accelerator) taken from the stable
    template kept in status; everything else (replicas, autoscaling, routing) is the current spec's."""
    if not template or "model" not in template:
        return spec
    return spec.model_copy(update={
        "model": ModelSource.model_validate(template["model"]),
        "runtime": Runtime.model_validate(template.get("runtime") or {}),
        "resources": Resources.model_validate(template.get("resources") or {}),
        "accelerator": Accelerator.model_validate(template["accelerator"]) if template.get("accelerator") else None,
    })


def _canary_ready(obs: Observed, canary: CanaryState | None, revision: str) -> bool:
    live = obs.child("apps/v1", "Deployment", f"{obs.name}-canary")
    return live is not None and canary is not None and rolled_out(live, revision)[0] and \
        (live.get("status") or {}).get("readyReplicas", 0) >= 1


def rollout_tick(obs: Observed, spec: ModelDeploymentSpec, status: dict[str, Any], analysis: AnalysisResult | None,
                 now: dt.datetime) -> Tick:
    stable = status.get("stable") or {}
    if spec.rollout.strategy != "Canary" or not stable.get("template") or not stable.get("version"):
        # Rolling strategy, or no version has ever served (nothing to protect, nothing to compare a
        # canary with, e.g. a first spec whose pods could not be scheduled): stable takes the spec.
        return Tick(stable_spec=spec, decision=Decision(None))

    stable_spec = stable_spec_from(spec, stable.get("template"))
    desired_revision = serving_revision(spec)
    config: CanaryConfig = config_from_spec(spec)
    canary = from_status(status.get("canary"))
    action = (obs.md["metadata"].get("annotations") or {}).get(ANNOTATION_ACTION)
    canary_ready = _canary_ready(obs, canary, desired_revision)
    stable_live = obs.child("apps/v1", "Deployment", obs.name)
    stable_done = stable_live is not None and rolled_out(stable_live, desired_revision)[0]

    due = canary is not None and canary.revision == desired_revision and action is None and \
        analysis_due(canary, config, now, canary_ready, spec.paused)
    observation = Observation(
        desired_revision=desired_revision, desired_version=spec.model.version,
        stable_revision=serving_revision(stable_spec), canary_ready=canary_ready, stable_rolled_out=stable_done,
        paused=spec.paused, action=action, analysis=analysis if due else None,
    )
    decision = decide(config, canary, observation, now)
    if (decision.canary is not None and decision.canary.state == "Promoting") or decision.outcome == "promoted":
        stable_spec = spec  # the stable Deployment takes the canary's (= the current) template
    due_at = next_analysis_at(canary, config) if due and analysis is None and canary is not None else None
    return Tick(stable_spec=stable_spec, decision=decision, action=action, analysis_due_at=due_at,
                canary_before=canary)
