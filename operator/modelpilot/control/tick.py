"""One tick of the rollout for an observed ModelDeployment (pure): which template the stable track
runs, the state machine's decision, and whether an analysis is due and still to be run."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from modelpilot.api.models import ModelDeploymentSpec, Resources, Runtime, ServingTemplate
from modelpilot.api.stored import StoredStatus
from modelpilot.control.edge import Fleet, readiness
from modelpilot.control.observe import Observed
from modelpilot.resources import ANNOTATION_ACTION, ANNOTATION_REVISION, serving_revision
from modelpilot.rollout.machine import (
    AnalysisResult,
    CanaryConfig,
    CanaryState,
    Decision,
    Event,
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
    # Set when the stable template cannot be known: nothing but status is written (plan._blocked).
    invalid_status: str | None = None


def stable_spec_from(spec: ModelDeploymentSpec, template: ServingTemplate) -> ModelDeploymentSpec:
    """The spec with its serving part (model, runtime, resources, accelerator) taken from the stable
    template kept in status; everything else (replicas, autoscaling, routing) is the current spec's."""
    return spec.model_copy(update={
        "model": template.model,
        "runtime": template.runtime or Runtime(),
        "resources": template.resources or Resources(),
        "accelerator": template.accelerator,
    })


def _running_revision(obs: Observed) -> str | None:
    live = obs.child("apps/v1", "Deployment", obs.name) or obs.child("apps/v1", "DaemonSet", obs.name) or {}
    template = (live.get("spec") or {}).get("template") or {}
    return ((template.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_REVISION)


def known_stable_spec(obs: Observed, spec: ModelDeploymentSpec, stored: StoredStatus, canary: CanaryState | None,
                      desired_revision: str) -> ModelDeploymentSpec | None:
    """The stable track's spec: from the template in status; without a readable one (another
    release wrote it), the current spec when that is provably what the stable track runs or is
    being promoted to (revisions are hashes of the template); otherwise unknown (None)."""
    if stored.template is not None:
        return stable_spec_from(spec, stored.template)
    promoting = canary is not None and canary.state == "Promoting" and canary.revision == desired_revision
    if promoting or desired_revision in (_running_revision(obs), stored.stable.get("revision")):
        return spec
    return None


def _unknown_stable(obs: Observed, spec: ModelDeploymentSpec, stored: StoredStatus, action: str | None) -> Tick:
    """Never guess the stable template and never roll the spec out without a canary: hold (status
    only) until the spec is set back to what the stable track runs, or a `promote` says to."""
    problem = stored.template_problem or "status.stable.template is missing"
    if action == "promote":
        message = f"version {spec.model.version} promoted by a manual action without a canary ({problem})"
        return Tick(stable_spec=spec, action=action,
                    decision=Decision(None, events=(Event("Normal", "Promoted", message),), consume_action=True))
    running = _running_revision(obs) or stored.stable.get("revision") or "unknown"
    message = (f"{problem} (written by another operator release?): the stable Deployment is left as it is "
               f"(revision {running}) and version {spec.model.version} is not rolled out. Set the spec back to "
               f"the version it runs, or annotate {ANNOTATION_ACTION}=promote to roll out "
               f"{spec.model.version} without a canary")
    return Tick(stable_spec=spec, decision=Decision(None), action=action, invalid_status=message)


def _canary_ready(obs: Observed, canary: CanaryState | None, revision: str) -> bool:
    live = obs.child("apps/v1", "Deployment", f"{obs.name}-canary")
    return live is not None and canary is not None and rolled_out(live, revision)[0] and \
        (live.get("status") or {}).get("readyReplicas", 0) >= 1


def rollout_tick(obs: Observed, spec: ModelDeploymentSpec, stored: StoredStatus, analysis: AnalysisResult | None,
                 now: dt.datetime, hold: str | None = None, fleet: Fleet | None = None) -> Tick:
    """`hold`: why a canary in flight must hold (drift detected with onDrift Pause), if it must.
    `fleet`: target Edge, whose batches and DaemonSets say when the canary is Ready and the
    stable track rolled out."""
    if spec.rollout.strategy == "Rolling" or not stored.served:
        # Rolling strategy, or no version has ever served (nothing to protect, nothing to compare a
        # canary with, e.g. a first spec whose pods could not be scheduled): stable takes the spec.
        return Tick(stable_spec=spec, decision=Decision(None))

    desired_revision = serving_revision(spec)
    canary = from_status(stored.canary)
    action = (obs.md["metadata"].get("annotations") or {}).get(ANNOTATION_ACTION)
    stable_spec = known_stable_spec(obs, spec, stored, canary, desired_revision)
    if stable_spec is None:
        return _unknown_stable(obs, spec, stored, action)
    config: CanaryConfig = config_from_spec(spec)
    if fleet is not None:
        fleet_ready = readiness(fleet, spec, canary, desired_revision, desired_revision)
        canary_ready = canary is not None and fleet_ready.canary_ready
        stable_done = obs.child("apps/v1", "DaemonSet", obs.name) is not None and fleet_ready.stable_done
    else:
        canary_ready = _canary_ready(obs, canary, desired_revision)
        stable_live = obs.child("apps/v1", "Deployment", obs.name)
        stable_done = stable_live is not None and rolled_out(stable_live, desired_revision)[0]

    due = canary is not None and canary.revision == desired_revision and action is None and \
        analysis_due(canary, config, now, canary_ready, spec.paused or hold is not None)
    observation = Observation(
        desired_revision=desired_revision, desired_version=spec.model.version,
        stable_revision=serving_revision(stable_spec), canary_ready=canary_ready, stable_rolled_out=stable_done,
        paused=spec.paused, action=action, analysis=analysis if due else None, hold=hold,
    )
    decision = decide(config, canary, observation, now)
    if (decision.canary is not None and decision.canary.state == "Promoting") or decision.outcome == "promoted":
        stable_spec = spec  # the stable Deployment takes the canary's (= the current) template
    due_at = next_analysis_at(canary, config) if due and analysis is None and canary is not None else None
    return Tick(stable_spec=stable_spec, decision=decision, action=action, analysis_due_at=due_at,
                canary_before=canary)
