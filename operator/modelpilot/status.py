"""ModelDeployment status from what the cluster shows (pure: plain dicts in, plain dicts out).

Conditions follow metav1.Condition: Ready, Progressing, Degraded. `lastTransitionTime` moves only
when a condition's status flips, so a changed message alone does not look like a transition.
Beside them, the kstatus pair (Flux, kpt, Helm's --wait): Reconciling while a rollout is under way,
Stalled when the operator will not go on by itself. Both are written only while True.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from modelpilot.resources.labels import ANNOTATION_REVISION

READY, PROGRESSING, DEGRADED = "Ready", "Progressing", "Degraded"
RECONCILING, STALLED = "Reconciling", "Stalled"
CONDITION_TYPES = (READY, PROGRESSING, DEGRADED)
# The stable track's drift conditions (analysis/drift_judge.py judges them; control/drift.py posts
# `<type>Detected` and `<type>Cleared` Events as they change).
DATA_DRIFT, CONCEPT_DRIFT = "DataDrift", "ConceptDrift"
DRIFT_CONDITIONS = (DATA_DRIFT, CONCEPT_DRIFT)
# Degraded for a reason that is not a failure: an experiment rolled back by its own onConclusion.
PLANNED_DEGRADED = frozenset({"ExperimentConcluded"})


def timestamp(now: dt.datetime) -> str:
    return now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Condition:
    type: str
    status: bool | None  # None: Unknown
    reason: str
    message: str = ""


@dataclass(frozen=True)
class Accelerator:
    """What the pods ask for, to explain scheduling failures."""

    resource: str
    count: int
    product: str | None
    product_label: str


@dataclass(frozen=True)
class RolloutView:
    """The canary's state as far as conditions are concerned."""

    state: str  # Progressing | Paused | Promoting | RolledBack
    reason: str
    message: str


@dataclass(frozen=True)
class WorkloadView:
    """The stable track's pods when they are not one Deployment's (target Edge: a DaemonSet over
    a fleet): how many run, how many are Ready, and whether the revision has rolled out."""

    replicas: int
    ready: int
    done: bool
    detail: str
    # The workload controller gave up waiting (a Deployment's Progressing=False,
    # ProgressDeadlineExceeded): a rollout that stays stuck is Stalled, not in progress.
    deadline_exceeded: bool = False


@dataclass
class Observation:
    """What the reconciler read from the cluster for one ModelDeployment."""

    generation: int
    version: str
    revision: str
    stable_deployment: dict[str, Any] | None
    pods: list[dict[str, Any]] = field(default_factory=list)
    accelerator: Accelerator | None = None
    url: str = ""
    invalid_spec: str | None = None
    conflict: str | None = None  # a child name taken by an object this ModelDeployment does not control
    # The stable template in status cannot be used (another release wrote it) and the running
    # stable is not the current spec: the rollout holds until someone acts.
    invalid_status: str | None = None
    rollout: RolloutView | None = None
    stable_view: WorkloadView | None = None  # instead of stable_deployment (target Edge)


@dataclass(frozen=True)
class Assessment:
    phase: str
    conditions: tuple[Condition, ...]
    stable: dict[str, Any] | None


def rolled_out(deployment: dict[str, Any], revision: str) -> tuple[bool, str]:
    """Whether the Deployment runs the current template everywhere and is available."""
    meta, spec, status = deployment.get("metadata", {}), deployment.get("spec", {}), deployment.get("status", {})
    template_revision = (spec.get("template", {}).get("metadata", {}).get("annotations") or {}).get(
        ANNOTATION_REVISION)
    if template_revision != revision:
        return False, "the Deployment does not run the current template yet"
    if status.get("observedGeneration", 0) < meta.get("generation", 0):
        return False, "the Deployment controller has not observed the new template yet"
    want = spec.get("replicas", 1)
    updated = status.get("updatedReplicas", 0)
    available = status.get("availableReplicas", 0)
    total = status.get("replicas", 0)
    if updated < want:
        return False, f"{updated}/{want} replicas run the new template"
    if total > updated:
        return False, f"{total - updated} old replica(s) still terminating"
    if available < want:
        return False, f"{available}/{want} replicas available"
    return True, f"{available}/{want} replicas available"


def _unschedulable(pods: list[dict[str, Any]]) -> list[str]:
    messages = []
    for pod in pods:
        if (pod.get("metadata") or {}).get("deletionTimestamp"):
            continue
        for cond in (pod.get("status") or {}).get("conditions") or []:
            if cond.get("type") == "PodScheduled" and cond.get("status") == "False" \
                    and cond.get("reason") == "Unschedulable":
                messages.append(cond.get("message", ""))
    return messages


def assess(obs: Observation, previous_stable: dict[str, Any] | None) -> Assessment:
    """Phase, conditions and the stable track's status for one observation."""
    base = _assess_stable(obs, previous_stable)
    view = obs.rollout
    if view is None or obs.invalid_spec is not None or obs.conflict is not None or obs.invalid_status is not None:
        return base
    if view.state == "RolledBack":
        return Assessment("Degraded", (
            Condition(READY, False, view.reason, view.message),
            Condition(PROGRESSING, False, view.reason, view.message),
            Condition(DEGRADED, True, view.reason, view.message),
        ), base.stable)
    if view.state == "Paused":
        return Assessment("Progressing", (
            Condition(READY, False, "Paused", view.message),
            Condition(PROGRESSING, False, "Paused", view.message),
            Condition(DEGRADED, False, "AsExpected"),
        ), base.stable)
    if view.state == "Promoting" and view.reason == "PromotionStalled":
        # Past progressDeadline: say why the stable track is stuck, as the stable assessment sees it.
        stable_reason, stable_message = next((c.reason, c.message) for c in base.conditions if c.type == READY)
        reason = stable_reason if stable_reason in ("InsufficientAccelerator", "Unschedulable") \
            else "ProgressDeadlineExceeded"
        message = f"{view.message}: {stable_message}"
        return Assessment("Degraded", (
            Condition(READY, False, reason, message),
            Condition(PROGRESSING, False, reason, message),
            Condition(DEGRADED, True, reason, message),
        ), base.stable)
    reason = "Promoting" if view.state == "Promoting" else "Canary"
    return Assessment("Progressing", (
        Condition(READY, False, reason, view.message),
        Condition(PROGRESSING, True, reason, view.message),
        Condition(DEGRADED, False, "AsExpected"),
    ), base.stable)


def _blocked(reason: str, message: str, remedy: str, previous_stable: dict[str, Any] | None) -> Assessment:
    """Nothing can proceed until the user acts: Degraded, the stable status kept as it was."""
    return Assessment("Degraded", (
        Condition(READY, False, reason, message),
        Condition(PROGRESSING, False, reason, remedy),
        Condition(DEGRADED, True, reason, message),
    ), previous_stable)


def _deployment_view(deployment: dict[str, Any] | None, revision: str) -> WorkloadView | None:
    if deployment is None:
        return None
    status = deployment.get("status") or {}
    done, detail = rolled_out(deployment, revision)
    exceeded = any(c.get("type") == "Progressing" and c.get("status") == "False"
                   and c.get("reason") == "ProgressDeadlineExceeded" for c in status.get("conditions") or [])
    return WorkloadView(status.get("replicas", 0), status.get("readyReplicas", 0), done, detail, exceeded)


def _assess_stable(obs: Observation, previous_stable: dict[str, Any] | None) -> Assessment:
    if obs.conflict is not None:
        return _blocked("NameConflict", obs.conflict, "rename the ModelDeployment or remove the object",
                        previous_stable)
    if obs.invalid_spec is not None:
        return _blocked("InvalidSpec", obs.invalid_spec, "fix the spec to resume", previous_stable)
    if obs.invalid_status is not None:
        return _blocked("InvalidStatus", obs.invalid_status,
                        "set the spec back to the version the stable Deployment runs, or promote", previous_stable)

    view = obs.stable_view or _deployment_view(obs.stable_deployment, obs.revision)
    if view is None:
        return Assessment("Pending", (
            Condition(READY, False, "Pending", "the serving Deployment is being created"),
            Condition(PROGRESSING, True, "Creating", "creating the serving Deployment"),
            Condition(DEGRADED, False, "AsExpected"),
        ), previous_stable)

    replicas, ready_replicas, done, detail = view.replicas, view.ready, view.done, view.detail
    stable = dict(previous_stable or {})
    stable.update({"replicas": replicas, "readyReplicas": ready_replicas})
    if done:
        stable.update({"version": obs.version, "revision": obs.revision})

    stuck = _unschedulable(obs.pods)
    if stuck and not done:
        if obs.accelerator is not None:
            acc = obs.accelerator
            wanted = f"{acc.count}x {acc.resource}"
            if acc.product:
                wanted += f" with {acc.product_label}={acc.product}"
            reason, message = "InsufficientAccelerator", (
                f"{len(stuck)} pod(s) cannot be scheduled: no node offers {wanted}; scheduler: {stuck[0]}")
        else:
            reason, message = "Unschedulable", f"{len(stuck)} pod(s) cannot be scheduled: {stuck[0]}"
        if view.deadline_exceeded:
            return _stuck_past_deadline(reason, message, stable or None)
        return Assessment("Pending" if not previous_stable else "Progressing", (
            Condition(READY, False, reason, message),
            Condition(PROGRESSING, True, reason, message),
            Condition(DEGRADED, False, "AsExpected"),
        ), stable or None)

    if done:
        return Assessment("Ready", (
            Condition(READY, True, "Available", f"version {obs.version} serving: {detail}"),
            Condition(PROGRESSING, False, "Complete", f"version {obs.version} rolled out"),
            Condition(DEGRADED, False, "AsExpected"),
        ), stable)

    if view.deadline_exceeded:
        return _stuck_past_deadline("ProgressDeadlineExceeded", f"rolling out version {obs.version}: {detail}",
                                    stable or None)
    first = not previous_stable or not previous_stable.get("version")
    reason = "Pending" if first else "RollingUpdate"
    return Assessment("Pending" if first else "Progressing", (
        Condition(READY, False, reason, f"rolling out version {obs.version}: {detail}"),
        Condition(PROGRESSING, True, reason, f"rolling out version {obs.version}: {detail}"),
        Condition(DEGRADED, False, "AsExpected"),
    ), stable or None)


def _stuck_past_deadline(reason: str, message: str, stable: dict[str, Any] | None) -> Assessment:
    """The serving workload made no progress within its deadline: Degraded until it does (the
    Deployment controller clears the deadline as soon as a pod moves)."""
    message = f"no progress within the progress deadline: {message}"
    return Assessment("Degraded", (
        Condition(READY, False, reason, message),
        Condition(PROGRESSING, False, reason, message),
        Condition(DEGRADED, True, reason, message),
    ), stable)


def kstatus_conditions(conditions: tuple[Condition, ...], rollout: RolloutView | None) -> tuple[Condition, ...]:
    """Reconciling or Stalled (at most one, only while True) from Ready/Progressing/Degraded: kstatus
    reads Reconciling=True as InProgress and Stalled=True as Failed. A paused canary is still a
    rollout under way; a rollback, an abort, a missed deadline or a spec the operator cannot act on
    is Stalled until someone changes something."""
    by_type = {c.type: c for c in conditions}
    degraded, progressing = by_type.get(DEGRADED), by_type.get(PROGRESSING)
    if degraded is not None and degraded.status and degraded.reason not in PLANNED_DEGRADED:
        return (Condition(STALLED, True, degraded.reason, degraded.message),)
    if progressing is not None and progressing.status:
        return (Condition(RECONCILING, True, progressing.reason, progressing.message),)
    if rollout is not None and rollout.state == "Paused":
        return (Condition(RECONCILING, True, "Paused", rollout.message),)
    return ()


def merge_conditions(previous: list[dict[str, Any]], wanted: tuple[Condition, ...], generation: int,
                     now: dt.datetime) -> list[dict[str, Any]]:
    """The whole conditions list; lastTransitionTime kept unless the status flipped."""
    by_type = {c.get("type"): c for c in previous or []}
    merged = []
    for cond in wanted:
        status = "Unknown" if cond.status is None else "True" if cond.status else "False"
        old = by_type.get(cond.type)
        since = old["lastTransitionTime"] if old and old.get("status") == status and \
            old.get("lastTransitionTime") else timestamp(now)
        merged.append({"type": cond.type, "status": status, "reason": cond.reason,
                       "message": cond.message, "lastTransitionTime": since,
                       "observedGeneration": generation})
    return merged


def transitions(previous: list[dict[str, Any]], merged: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Conditions whose status or reason changed: each deserves one Event, not one per resync."""
    old = {c.get("type"): (c.get("status"), c.get("reason")) for c in previous or []}
    return [c for c in merged if old.get(c["type"]) != (c["status"], c["reason"])]


def status_patch(current: dict[str, Any], desired: dict[str, Any]) -> dict[str, Any] | None:
    """A JSON merge patch (RFC 7386) turning `current` into `desired`, None when they are equal.
    Maps are patched key by key (removed keys become null); lists are replaced whole."""
    if current == desired:
        return None
    patch: dict[str, Any] = {}
    for key, value in desired.items():
        old = current.get(key)
        if old == value:
            continue
        if isinstance(old, dict) and isinstance(value, dict):
            patch[key] = status_patch(old, value) or {}
        else:
            patch[key] = value
    for key in current:
        if key not in desired:
            patch[key] = None
    return patch or None
