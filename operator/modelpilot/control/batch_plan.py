"""plan_batch(): what one reconcile of a BatchPrediction must do, from an observation alone (pure).

A one-off BatchPrediction gets one Indexed Job, created once with the model resolved at that
moment (a ModelDeployment reference means the version its stable track serves then); the run
is fixed from there on, like a Job. A scheduled one gets a CronJob whose template carries the
model resolved now, updated when the referenced stable version changes, so each run uses the
version stable at its start. Status is patched only on change; Events on each transition.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from pydantic import ValidationError

from modelpilot.api.batch import (
    BatchPredictionSpec,
    BatchPredictionStatus,
    ResolvedModel,
    RowCounts,
    ShardFailure,
    parse_batch_spec,
    parse_batch_status,
)
from modelpilot.api.common import SpecError
from modelpilot.api.models import ModelSource
from modelpilot.api.status import ServingTemplate
from modelpilot.batch import contract
from modelpilot.control.batch_status import RunView, run_view
from modelpilot.control.observe import controlled_by
from modelpilot.drift import differences
from modelpilot.resources import BuildSettings, serving_revision
from modelpilot.resources.batchjob import ANNOTATION_MODEL, BatchRun, build_cronjob, build_job, serving_spec
from modelpilot.rollout.model import Event
from modelpilot.status import Condition, merge_conditions, status_patch, timestamp, transitions

Obj = dict[str, Any]
COMPLETE, FAILED = "Complete", "Failed"
# A missing ModelDeployment or stable version is looked at again this often (besides its events).
BLOCKED_RECHECK_SECONDS = 15.0


@dataclass(frozen=True)
class BatchObserved:
    bp: Obj
    job: Obj | None = None  # the Job named after the BatchPrediction (whoever owns it)
    cronjob: Obj | None = None  # the CronJob named after it (whoever owns it)
    runs: tuple[Obj, ...] = ()  # Jobs labelled as its runs (one-off or scheduled)
    pods: tuple[Obj, ...] = ()  # pods labelled as its shards
    model_deployment: Obj | None = None  # the referenced ModelDeployment, when there is one

    @property
    def name(self) -> str:
        return str(self.bp["metadata"]["name"])

    @property
    def namespace(self) -> str:
        return str(self.bp["metadata"]["namespace"])

    @property
    def uid(self) -> str:
        return str(self.bp["metadata"].get("uid", ""))


@dataclass(frozen=True)
class BatchPlan:
    apply: tuple[Obj, ...] = ()
    delete: tuple[tuple[str, str, str], ...] = ()  # apiVersion, kind, name
    status: Obj | None = None
    events: tuple[Event, ...] = ()
    requeue: float | None = None
    decisions: tuple[tuple[str, dict[str, Any]], ...] = ()
    phase: str | None = None
    rows: tuple[int, int, int] | None = None  # in, out, failed (for metrics)
    shards: tuple[int, int, int, int] | None = None  # total, succeeded, failed, running (for metrics)


@dataclass(frozen=True)
class Blocked:
    reason: str
    message: str


Resolved = tuple[ResolvedModel, ModelSource, str | None]


def resolve_model(obs: BatchObserved, spec: BatchPredictionSpec) -> Resolved | Blocked:
    """(the model, its full source for the pods, the referenced ModelDeployment's runtime image)."""
    ref = spec.model.model_deployment_ref
    if ref is None:
        source = ModelSource(version=spec.model.version or "", uri=spec.model.uri or "",
                             format=spec.model.format or "sklearn", storage_secret_ref=spec.model.storage_secret_ref)
        run = BatchRun(obs.name, obs.namespace, {}, spec, ResolvedModel(), source)
        return (ResolvedModel(name=obs.name, version=source.version, revision=serving_revision(serving_spec(run)),
                              uri=source.uri, format=source.format), source, None)
    md = obs.model_deployment
    if md is None:
        return Blocked("ModelDeploymentNotFound", f"ModelDeployment {obs.namespace}/{ref.name} not found")
    stable = (md.get("status") or {}).get("stable") or {}
    try:
        template = ServingTemplate.model_validate(stable.get("template") or {})
    except ValidationError:
        return Blocked("NoStableVersion", f"ModelDeployment {obs.namespace}/{ref.name} has no stable version yet")
    image = template.runtime.image if template.runtime else None
    return (ResolvedModel(name=ref.name, version=template.model.version, revision=stable.get("revision"),
                          uri=template.model.uri, format=template.model.format), template.model, image)


def _owner(bp: Obj) -> Obj:
    meta = bp["metadata"]
    return {"apiVersion": bp["apiVersion"], "kind": bp["kind"], "name": meta["name"], "uid": meta["uid"]}


def _time(text: str | None) -> dt.datetime | None:
    """An RFC 3339 time from the API server (None when absent or unreadable)."""
    try:
        return dt.datetime.fromisoformat(text) if text else None
    except ValueError:
        return None


def _model_of(job: Mapping[str, Any]) -> ResolvedModel | None:
    raw = ((job.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_MODEL)
    try:
        return ResolvedModel.model_validate(json.loads(raw)) if raw else None
    except (ValueError, ValidationError):
        return None


@dataclass
class _Draft:
    """The status being built, and what else the plan collects on the way."""

    status: BatchPredictionStatus
    conditions: tuple[Condition, ...] = ()
    apply: list[Obj] = field(default_factory=list)
    delete: list[tuple[str, str, str]] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    decisions: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    requeue: float | None = None


def plan_batch(obs: BatchObserved, now: dt.datetime, settings: BuildSettings) -> BatchPlan:
    previous = parse_batch_status(obs.bp.get("status"))
    draft = _Draft(status=previous.model_copy(deep=True))
    try:
        spec = parse_batch_spec(obs.bp.get("spec"))
    except SpecError as err:
        _terminal(draft, "Failed", "InvalidSpec", err.message)
        return _finish(obs, draft, previous, now)
    if spec.schedule is not None:
        _plan_scheduled(obs, spec, draft, settings, now)
    else:
        _plan_once(obs, spec, draft, settings, now)
    return _finish(obs, draft, previous, now)


def _terminal(draft: _Draft, phase: str, reason: str, message: str) -> None:
    draft.status.phase = phase  # type: ignore[assignment]
    draft.conditions = (Condition(COMPLETE, phase == "Succeeded", reason if phase != "Succeeded" else "Succeeded",
                                  message), Condition(FAILED, phase == "Failed", reason, message))


def _waiting(draft: _Draft, reason: str, message: str) -> None:
    draft.status.phase = "Pending"
    draft.conditions = (Condition(COMPLETE, False, reason, message), Condition(FAILED, False, reason, message))


def _conflict(obs: BatchObserved, obj: Obj | None) -> str | None:
    if obj is None or controlled_by(obj, obs.uid):
        return None
    return (f"{obj.get('kind')} {obs.namespace}/{obs.name} exists and is not controlled by this BatchPrediction: "
            "nothing is written to it; rename the BatchPrediction or remove the object")


def _plan_once(obs: BatchObserved, spec: BatchPredictionSpec, draft: _Draft, settings: BuildSettings,
               now: dt.datetime) -> None:
    if obs.cronjob is not None and controlled_by(obs.cronjob, obs.uid):
        # The schedule was removed: the CronJob goes (an active run with it) and nothing new starts.
        draft.delete.append(("batch/v1", "CronJob", obs.name))
        return
    if _was_scheduled(draft.status):
        return
    conflict = _conflict(obs, obs.job)
    if conflict:
        _waiting(draft, "NameConflict", conflict)
        draft.requeue = BLOCKED_RECHECK_SECONDS
        return
    if obs.job is not None:
        _from_run(obs, draft, obs.job, spec, now)
        return
    if draft.status.job:
        # A run is never started twice: its Job is gone (ttlSecondsAfterFinished after the end,
        # or deleted by hand); a run that had not ended is lost.
        if draft.status.phase not in ("Succeeded", "Failed"):
            _terminal(draft, "Failed", "JobDeleted", f"the run's Job {draft.status.job} was deleted before it "
                      "ended; create a new BatchPrediction to score again")
        return
    resolved = resolve_model(obs, spec)
    if isinstance(resolved, Blocked):
        _waiting(draft, resolved.reason, resolved.message)
        draft.requeue = BLOCKED_RECHECK_SECONDS
        return
    model, source, image = resolved
    job = build_job(BatchRun(obs.name, obs.namespace, _owner(obs.bp), spec, model, source, image), settings)
    draft.apply.append(job)
    draft.status.model, draft.status.job, draft.status.phase = model, obs.name, "Pending"
    draft.status.started_at = now
    message = f"scoring {spec.input.uri} in {spec.shard_count} shards with {model.name} version {model.version}"
    draft.conditions = (Condition(COMPLETE, False, "Started", message), Condition(FAILED, False, "Started", message))
    draft.events.append(Event("Normal", "Started", message + f" (revision {model.revision})"))
    draft.decisions.append(("batch-start", {"job": obs.name, "shards": spec.shard_count, "version": model.version}))


def _was_scheduled(status: BatchPredictionStatus) -> bool:
    return status.last_schedule_time is not None or status.runs_succeeded is not None


def _from_run(obs: BatchObserved, draft: _Draft, job: Obj, spec: BatchPredictionSpec, now: dt.datetime) -> None:
    same_run = draft.status.job == job["metadata"]["name"]
    if same_run and job["metadata"].get("deletionTimestamp"):
        return  # its pods are being deleted (ttlSecondsAfterFinished): what the status says stays
    view = run_view(job, obs.pods, draft.status.failures if same_run else (), now)
    _report_failures(draft, view.failures)
    status = draft.status
    status.job, status.model = job["metadata"]["name"], _model_of(job) or status.model
    rows = view.rows
    if same_run and status.rows is not None:
        # Rows of a run only grow; a shard pod deleted after it succeeded does not take them away.
        rows = RowCounts(input=max(rows.input, status.rows.input), output=max(rows.output, status.rows.output),
                         failed=max(rows.failed, status.rows.failed))
    status.shards, status.rows, status.failures = view.shards, rows, list(view.failures)
    status.progress = f"{view.shards.succeeded}/{view.shards.total}"
    status.started_at = _time(view.started_at) or status.started_at
    status.completed_at = _time(view.completed_at)
    # A run that started never looks Pending again (between a failed attempt and its retry, say).
    status.phase = "Running" if view.phase == "Pending" and status.phase == "Running" else view.phase
    output = contract.output_uri(spec.output.uri, str(status.job)).rstrip("/")
    status.output_manifest = f"{output}/{contract.RUN_MANIFEST}" if view.phase == "Succeeded" else None
    _run_conditions(draft, replace(view, rows=rows))


def _report_failures(draft: _Draft, failures: tuple[ShardFailure, ...]) -> None:
    seen = {f.pod for f in draft.status.failures}
    for failure in failures:
        if failure.pod not in seen:
            draft.events.append(Event("Warning", "ShardFailed", f"shard {failure.shard} (pod {failure.pod}) failed: "
                                      f"{failure.reason}" + (f": {failure.message}" if failure.message else "")))


def _run_conditions(draft: _Draft, view: RunView) -> None:
    rows = view.rows
    if view.phase == "Succeeded":
        message = (f"{view.shards.total} shards: {rows.input} rows in, {rows.output} out, {rows.failed} failed")
        draft.conditions = (Condition(COMPLETE, True, "Succeeded", message), Condition(FAILED, False, "Succeeded", ""))
    elif view.phase == "Failed":
        reason, message = view.failed_reason or "JobFailed", view.failed_message or "the Job failed"
        draft.conditions = (Condition(COMPLETE, False, reason, message), Condition(FAILED, True, reason, message))
    else:
        message = (f"{view.shards.succeeded}/{view.shards.total} shards done, {view.shards.running} running, "
                   f"{view.shards.failed} failed")
        draft.conditions = (Condition(COMPLETE, False, view.phase, message),
                            Condition(FAILED, False, view.phase, message))


def _plan_scheduled(obs: BatchObserved, spec: BatchPredictionSpec, draft: _Draft, settings: BuildSettings,
                    now: dt.datetime) -> None:
    conflict = _conflict(obs, obs.cronjob)
    if conflict:
        _waiting(draft, "NameConflict", conflict)
        draft.requeue = BLOCKED_RECHECK_SECONDS
        return
    resolved = resolve_model(obs, spec)
    if isinstance(resolved, Blocked):
        # The CronJob keeps the model it has; the runs are still followed below.
        draft.decisions.append(("batch-schedule-blocked", {"reason": resolved.reason}))
        draft.requeue = BLOCKED_RECHECK_SECONDS
        if obs.cronjob is None:
            _waiting(draft, resolved.reason, resolved.message)
            return
        model = draft.status.model or ResolvedModel()
    else:
        model, source, image = resolved
        desired = build_cronjob(BatchRun(obs.name, obs.namespace, _owner(obs.bp), spec, model, source, image),
                                settings)
        if obs.cronjob is None or differences(desired, obs.cronjob):
            draft.apply.append(desired)
            draft.decisions.append(("batch-schedule", {"schedule": spec.schedule, "version": model.version}))
    runs = sorted((j for j in obs.runs if obs.cronjob is not None and controlled_by(j, obs.cronjob["metadata"].get(
        "uid", ""))), key=lambda j: (j["metadata"].get("creationTimestamp") or "", j["metadata"]["name"]))
    cron_status = (obs.cronjob or {}).get("status") or {}
    draft.status.last_schedule_time = _time(cron_status.get("lastScheduleTime"))
    finished = [run_view(j, (), (), now).phase for j in runs]
    draft.status.runs_succeeded = finished.count("Succeeded")
    draft.status.runs_failed = finished.count("Failed")
    if runs:
        _from_run(obs, draft, runs[-1], spec, now)
    else:
        draft.status.model = model
        _waiting(draft, "Scheduled", f"waiting for the schedule {spec.schedule!r}")


def _finish(obs: BatchObserved, draft: _Draft, previous: BatchPredictionStatus, now: dt.datetime) -> BatchPlan:
    current = dict(obs.bp.get("status") or {})
    generation = int(obs.bp["metadata"].get("generation") or 0)
    # No conditions decided (a run that is over, a Job being deleted): the stored ones stay.
    conditions = merge_conditions(current.get("conditions") or [], draft.conditions, generation, now) \
        if draft.conditions else list(current.get("conditions") or [])
    draft.status.observed_generation = generation
    desired = draft.status.model_dump(mode="json", by_alias=True, exclude_none=True)
    desired["conditions"] = conditions
    desired = BatchPredictionStatus.model_validate(desired).model_dump(mode="json", by_alias=True, exclude_none=True)
    events = list(draft.events)
    for cond in transitions(current.get("conditions") or [], conditions):
        if cond["status"] == "True":
            events.append(Event("Warning" if cond["type"] == FAILED else "Normal", cond["reason"], cond["message"]))
        elif cond["type"] == COMPLETE and cond["reason"] in ("ModelDeploymentNotFound", "NoStableVersion",
                                                             "NameConflict"):
            events.append(Event("Warning", cond["reason"], cond["message"]))
    if desired.get("phase") != previous.phase:
        draft.decisions.append(("batch-phase", {"from": previous.phase, "to": desired.get("phase"),
                                                "at": timestamp(now)}))
    rows, shards = draft.status.rows, draft.status.shards
    return BatchPlan(apply=tuple(draft.apply), delete=tuple(draft.delete), status=status_patch(current, desired),
                     events=tuple(events), requeue=draft.requeue, decisions=tuple(draft.decisions),
                     phase=desired.get("phase"), rows=(rows.input, rows.output, rows.failed) if rows else None,
                     shards=(shards.total, shards.succeeded, shards.failed, shards.running) if shards else None)
