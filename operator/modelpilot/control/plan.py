"""plan(): what one reconcile must do, decided from an observation alone (pure).

observe (the cache) -> analyse (a finished analysis, if one was due) -> plan -> execute. The plan
lists the children to apply (only those that differ from what is live), the owned children to
delete, the status patch (None when unchanged), the Events and the webhooks told of them
(spec.notifications, parsed here once), the action annotation to consume, when to look again, and
the analysis to start. A steady state plans nothing: no apply, no delete, no status, no Event.
Nothing here imports kubernetes or kopf.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from modelpilot.analysis.distribution import MAX_WINDOW_SECONDS
from modelpilot.analysis.queries import QueryError, check_confined, check_syntax
from modelpilot.analysis.run import ExperimentRun, window_seconds
from modelpilot.api.models import (
    API_VERSION,
    DISTRIBUTION_METRICS,
    KIND,
    Analysis,
    Metric,
    ModelDeploymentSpec,
    SpecError,
    parse_spec,
)
from modelpilot.api.notifications import NotificationTarget
from modelpilot.api.stored import StoredStatus, read_status
from modelpilot.control.children import Scaling, desired_state
from modelpilot.control.drift import DriftOutcome, DriftPart, DriftRequest, drift_part, drift_request
from modelpilot.control.edge import (
    Fleet,
    Layout,
    describe_moves,
    edge_status,
    owned_pods,
    plan_layout,
    read_fleet,
    readiness,
)
from modelpilot.control.observe import ChildRef, Observed, describe_conflicts
from modelpilot.control.report import StatusPlan, plan_status
from modelpilot.control.scaling import scale_to_zero
from modelpilot.control.serverless import ServerlessPart
from modelpilot.control.tick import Tick, rollout_tick
from modelpilot.resources import BuildSettings, accelerator_resource, canonical_serving_template, serving_revision
from modelpilot.resources.grant import build_activator_grant
from modelpilot.resources.labels import LABEL_TRACK
from modelpilot.resources.service import service_url
from modelpilot.rollout.machine import AnalysisResult, CanaryState, Decision, Event
from modelpilot.status import Accelerator as AcceleratorView
from modelpilot.status import Observation as StatusObservation
from modelpilot.status import RolloutView, WorkloadView

# While an analysis runs, its completion wakes the ModelDeployment; polling faster is wasted work.
ANALYSIS_POLL_SECONDS = 5.0
# A name clash is looked at again this often (besides the watch events of the clashing object).
CONFLICT_RECHECK_SECONDS = 30.0


@dataclass(frozen=True)
class PlanSettings:
    build: BuildSettings = field(default_factory=BuildSettings)
    gpu_product_label: str = "nvidia.com/gpu.product"
    cluster_domain: str = "cluster.local"
    scrape_interval: float = 15.0
    confine_queries: bool = False


@dataclass(frozen=True)
class AnalysisRequest:
    """An analysis to run for the canary `revision` started at `started_at`, due at `due`."""

    namespace: str
    name: str
    revision: str
    stable_revision: str
    started_at: dt.datetime
    due: dt.datetime
    analysis: Analysis
    window: int
    shift_window: int | None = None  # prediction-shift: since the canary's Ready (at most an hour)
    experiment: ExperimentRun | None = None
    shift_optional: bool = False  # prediction-shift added by the shadow, not named by the metrics


@dataclass(frozen=True)
class Plan:
    apply: tuple[dict[str, Any], ...] = ()
    bootstrap: tuple[dict[str, Any], ...] = ()  # a new autoscaled Deployment's first replica count
    delete: tuple[ChildRef, ...] = ()
    status: dict[str, Any] | None = None
    events: tuple[Event, ...] = ()
    consume_action: str | None = None
    requeue: float | None = None
    analysis: AnalysisRequest | None = None
    decisions: tuple[tuple[str, dict[str, Any]], ...] = ()  # (what, fields): one log line each
    decision: Decision | None = None
    drift: DriftRequest | None = None  # the stable track's drift to read
    drift_part: DriftPart | None = None
    serverless: ServerlessPart | None = None
    read_serverless: bool = False  # take a Prometheus reading of the stable track's demand
    notifications: tuple[NotificationTarget, ...] = ()  # spec.notifications, parsed: told of the events

    @property
    def writes(self) -> bool:
        return bool(self.apply or self.bootstrap or self.delete or self.status is not None or self.events
                    or self.consume_action)


def check_queries(spec: ModelDeploymentSpec, confine: bool = False,
                  rejected: Mapping[str, str] | None = None) -> None:
    """What CEL cannot check: the PromQL of custom metrics (syntax; confined to the object's own
    namespace when the operator says so; not one the metric provider already rejected as a bad
    query). Raises SpecError naming the metric."""
    problems = []
    queries = [(f"spec.rollout.canary.analysis.metrics[{i}].query ({metric.name})", metric.query)
               for i, metric in enumerate(spec.rollout.canary.analysis.metrics) if metric.query]
    if spec.rollout.experiment is not None:
        queries += [(f"spec.rollout.experiment.metrics[{i}].{role} ({metric.name})", query)
                    for i, metric in enumerate(spec.rollout.experiment.metrics)
                    for role, query in metric.queries().items()]
    for where, query in queries:
        try:
            check_syntax(query)
            if confine:
                check_confined(query)
            if rejected and query in rejected:
                raise QueryError(f"rejected by the metric provider: {rejected[query]}")
        except QueryError as err:
            problems.append(f"{where}: {err}")
    if problems:
        raise SpecError("invalid ModelDeployment spec: " + "; ".join(problems), problems)


def owner_of(observed: Observed) -> dict[str, Any]:
    meta = observed.md["metadata"]
    return {"apiVersion": API_VERSION, "kind": KIND, "name": meta["name"], "uid": meta["uid"]}


def plan(observed: Observed, analysis: AnalysisResult | None, now: dt.datetime,
         settings: PlanSettings | None = None, drift: DriftOutcome | None = None) -> Plan:
    settings = settings or PlanSettings()
    md = observed.md
    generation = int(md["metadata"].get("generation", 0))
    try:
        spec = parse_spec(md.get("spec"))
        check_queries(spec, settings.confine_queries, observed.rejected_queries)
    except SpecError as err:
        return _blocked(observed, generation, now, StatusObservation(
            generation=generation, version="", revision="", stable_deployment=None, invalid_spec=str(err)),
            ("invalid-spec", {"reason": str(err)}))

    stored = read_status(md.get("status"))  # whichever operator release wrote it; never raises
    monitoring = spec.monitoring.drift
    part = drift_part(monitoring, dict(md.get("status") or {}), drift, now)
    fleet = read_fleet(observed.nodes, observed.pods, spec, md.get("status"), now) if spec.target == "Edge" else None
    tick = rollout_tick(observed, spec, stored, analysis, now, hold=part.hold, fleet=fleet)
    if tick.invalid_status is not None:
        return _blocked(observed, generation, now, StatusObservation(
            generation=generation, version="", revision="", stable_deployment=None,
            invalid_status=tick.invalid_status), ("invalid-status", {"reason": tick.invalid_status}))
    zero, activator = scale_to_zero(observed, spec, tick.decision.canary_running, settings.build.scaling,
                                    observed.serverless_reading, max(5.0, settings.scrape_interval), now)
    layout = None if fleet is None else plan_layout(fleet, spec, tick.decision, serving_revision(spec),
                                                    serving_revision(tick.stable_spec))
    children = desired_state(observed, spec, tick, owner_of(observed), settings.build,
                             Scaling(hold=zero.hold, activator=activator, layout=layout))
    if children.conflicts:
        conflicts = children.conflicts
        return replace(_blocked(observed, generation, now, StatusObservation(
            generation=generation, version="", revision="", stable_deployment=None,
            conflict=describe_conflicts(observed.namespace, conflicts)),
            ("name-conflict", {"objects": ",".join(f"{k}/{n}" for _, k, n in sorted(conflicts))})),
            requeue=CONFLICT_RECHECK_SECONDS)
    stable_revision = serving_revision(tick.stable_spec)
    edge = None if fleet is None or layout is None else _edge(observed, spec, tick, fleet, layout, stable_revision)
    status = _status(observed, tick, stable_revision, settings, generation, now, stored, part, zero, edge)
    decision = tick.decision
    moves = describe_moves(layout) if layout is not None else []
    decisions = _decisions((*children.decisions, *moves), stored, status, tick, part.events, zero.events)
    request = _analysis_request(observed, spec, tick, stable_revision, settings)
    read_drift = drift_request(part, monitoring, namespace=observed.namespace, name=observed.name,
                               revision=stable_revision, now=now)
    requeue = _requeue(decision.requeue_after, request is not None, now,
                       part.next_at if read_drift is None else None, zero.next_at, zero.read_at)
    apply = children.apply
    if zero.status is not None and observed.keda and not observed.activator_granted:
        apply = (*apply, build_activator_grant(observed.namespace, settings.build.scaling))
    return Plan(
        apply=apply, bootstrap=children.bootstrap, delete=(*children.delete, *(edge.replace if edge else ())),
        status=status.patch,
        events=(*decision.events, *status.events, *part.events, *zero.events),
        consume_action=tick.action if tick.action is not None and decision.consume_action else None,
        requeue=requeue, analysis=request, decisions=tuple(decisions), decision=decision,
        drift=read_drift, drift_part=part if drift is not None else None,
        serverless=zero, read_serverless=zero.read_at is not None and zero.read_at <= now,
        notifications=tuple(spec.notifications),
    )


def _decisions(children: tuple[tuple[str, dict[str, Any]], ...], stored: StoredStatus, status: StatusPlan,
               tick: Tick, drift_events: tuple[Event, ...],
               serverless_events: tuple[Event, ...]) -> list[tuple[str, dict[str, Any]]]:
    """One log line per decision of the tick: children, repaired status, the consumed action, the
    rollout's Events, the status written, then drift's and scale to zero's Events."""
    decision = tick.decision
    decisions = list(children)
    repaired = [*stored.dropped, *([stored.template_problem] if stored.template_problem else [])]
    if repaired and status.patch is not None:
        # What another release wrote that this one cannot read: dropped or rebuilt, written back now.
        decisions.append(("status-repaired", {"values": repr("; ".join(repaired))}))
    if tick.action is not None and decision.consume_action:
        decisions.append(("action-consumed", {"action": tick.action}))
    decisions += [(f"rollout-{e.reason}", {"message": repr(e.message)}) for e in decision.events]
    if status.patch is not None:
        decisions.append(("status", {"phase": status.phase, "ready": status.ready[0], "reason": status.ready[1]}))
    decisions += [(f"drift-{e.reason}", {"message": repr(e.message)}) for e in drift_events]
    decisions += [(f"serverless-{e.reason}", {"message": repr(e.message)}) for e in serverless_events]
    return decisions


def _requeue(rollout: float | None, analysing: bool, now: dt.datetime, *due: dt.datetime | None) -> float | None:
    """The rollout's requeue (at least the analysis poll while one runs), or sooner when drift or
    scale to zero is due."""
    requeue = max(rollout or 0.0, ANALYSIS_POLL_SECONDS) if analysing else rollout
    for at in due:
        if at is not None:
            wait = max(0.5, (at - now).total_seconds())
            requeue = wait if requeue is None else min(requeue, wait)
    return requeue


def _blocked(observed: Observed, generation: int, now: dt.datetime, obs: StatusObservation,
             decision: tuple[str, dict[str, Any]]) -> Plan:
    """An invalid spec or a name clash: status and an Event only (logged once, when the status
    changes); no child is written and the rollout state is kept as it was."""
    status = plan_status(observed.md, obs, canary=None, stable_template=None, now=now)
    decisions = (decision,) if status.patch is not None else ()
    return Plan(status=status.patch, events=status.events, decisions=decisions)


@dataclass(frozen=True)
class EdgePart:
    """Target Edge's share of a tick: status.edge, the stable track's view, the pods to replace."""

    status: dict[str, Any]
    stable: WorkloadView
    replace: tuple[ChildRef, ...]


def _edge(observed: Observed, spec: ModelDeploymentSpec, tick: Tick, fleet: Fleet, layout: Layout,
          stable_revision: str) -> EdgePart:
    after = Fleet(fleet.nodes, fleet.pods, layout.canary_nodes, layout.canary_revision)
    ready = readiness(after, spec, tick.decision.canary, serving_revision(spec), stable_revision)
    stable_pods = [p for pods in fleet.pods.values() for p in pods if p.track == "stable"]
    stable_live = observed.child("apps/v1", "DaemonSet", observed.name)
    view = WorkloadView(len(stable_pods), sum(1 for p in stable_pods if p.ready),
                        stable_live is not None and ready.stable_done, ready.detail)
    ours = {str(d["metadata"].get("uid")) for d in (stable_live, observed.child(
        "apps/v1", "DaemonSet", f"{observed.name}-canary")) if d is not None}
    replaceable = owned_pods(observed.pods, ours)
    replace = tuple(("v1", "Pod", name) for name in layout.replace if name in replaceable)
    return EdgePart(edge_status(fleet, layout, spec, tick.decision, ready.reporting), view, replace)


def _status(observed: Observed, tick: Tick, stable_revision: str, settings: PlanSettings, generation: int,
            now: dt.datetime, stored: StoredStatus, drift: DriftPart, serverless: ServerlessPart,
            edge: EdgePart | None = None) -> StatusPlan:
    stable_spec = tick.stable_spec
    canary = tick.decision.canary
    view = RolloutView(canary.state, canary.reason or canary.state, canary.message) if canary else None
    acc = stable_spec.accelerator
    accelerator = None if acc is None else AcceleratorView(
        resource=accelerator_resource(acc), count=acc.count, product=acc.product,
        product_label=settings.gpu_product_label)
    stable_pods = [p for p in observed.pods
                   if (p["metadata"].get("labels") or {}).get(LABEL_TRACK) != "canary"]
    obs = StatusObservation(
        generation=generation, version=stable_spec.model.version, revision=stable_revision,
        stable_deployment=observed.child("apps/v1", "Deployment", observed.name), pods=stable_pods,
        accelerator=accelerator, url=service_url(observed.name, observed.namespace, settings.cluster_domain),
        rollout=view, stable_view=edge.stable if edge is not None else None,
    )
    return plan_status(observed.md, obs, canary=canary, stable_template=canonical_serving_template(stable_spec),
                       now=now, stored=stored, drift=drift, serverless=serverless,
                       edge=edge.status if edge is not None else None)


def _analysis_request(observed: Observed, spec: ModelDeploymentSpec, tick: Tick, stable_revision: str,
                      settings: PlanSettings) -> AnalysisRequest | None:
    canary = tick.canary_before
    if tick.analysis_due_at is None or canary is None:
        return None
    canary_spec = spec.rollout.canary
    interval = spec.edge_spec.rollout.interval_seconds if spec.target == "Edge" else canary_spec.interval_seconds
    window = window_seconds(interval, settings.scrape_interval)
    if canary.ready_at is not None:
        # Never reach back before this canary became Ready: older samples belong to an earlier
        # canary (say, a failing version this one replaces) and must not judge this one.
        window = max(1, min(window, math.floor((tick.analysis_due_at - canary.ready_at).total_seconds())))
    due = tick.analysis_due_at
    analysis = stage_analysis(spec, canary)
    shift_window = None
    if canary.ready_at is not None:
        shift_window = max(1, min(MAX_WINDOW_SECONDS, math.floor((due - canary.ready_at).total_seconds())))
    return AnalysisRequest(
        namespace=observed.namespace, name=observed.name, revision=canary.revision,
        stable_revision=stable_revision, started_at=canary.started_at,
        due=due, analysis=analysis, window=window, shift_window=shift_window,
        experiment=_experiment_run(spec, canary, due), shift_optional=analysis is not canary_spec.analysis,
    )


def stage_analysis(spec: ModelDeploymentSpec, canary: CanaryState) -> Analysis:
    """The analysis of the current stage: a shadow adds prediction-shift (with its
    maxPredictionShift) unless the metrics name it already."""
    analysis = spec.rollout.canary.analysis
    shadow = spec.rollout.canary.shadow
    if canary.stage != "shadow" or shadow is None or any(m.name in DISTRIBUTION_METRICS for m in analysis.metrics):
        return analysis
    shift = Metric(name="prediction-shift", max=shadow.max_prediction_shift)
    return analysis.model_copy(update={"metrics": [*analysis.metrics, shift]})


def _experiment_run(spec: ModelDeploymentSpec, canary: CanaryState, due: dt.datetime) -> ExperimentRun | None:
    """The experiment's queries while it runs (none once it has concluded)."""
    experiment = spec.rollout.experiment
    if spec.rollout.strategy != "Experiment" or experiment is None or canary.stage != "experiment" or \
            canary.stage_started_at is None or (canary.experiment is not None and canary.experiment.final):
        return None
    elapsed = (due - canary.stage_started_at).total_seconds()
    return ExperimentRun(experiment, window=max(1, math.floor(elapsed)),
                         final=elapsed >= experiment.duration_seconds)
