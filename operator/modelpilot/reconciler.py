"""One idempotent, level-based reconcile of a ModelDeployment.

Reads the object and its children, runs one tick of the canary state machine (with an analysis
when one is due), applies (server-side) only the children that differ from the desired state,
deletes children that are no longer wanted, and writes status only when it changed. Synchronous;
the Kopf layer runs it in a thread.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from modelpilot import metrics
from modelpilot.analysis.provider import MetricsProvider, PrometheusProvider
from modelpilot.analysis.queries import QueryError, check_syntax
from modelpilot.analysis.run import run_analysis, window_seconds
from modelpilot.api.models import (
    Accelerator,
    ModelDeploymentSpec,
    ModelSource,
    Resources,
    Runtime,
    SpecError,
    parse_spec,
)
from modelpilot.drift import differences
from modelpilot.k8s.client import BOOTSTRAP_FIELD_MANAGER, GROUP, KIND, VERSION, Kube
from modelpilot.resources import (
    ANNOTATION_ACTION,
    BuildSettings,
    accelerator_resource,
    build_deployment,
    canonical_serving_template,
    desired_children,
    desired_replicas,
    service_url,
    serving_revision,
    unwanted_children,
)
from modelpilot.rollout.machine import AnalysisResult, CanaryState, Decision, Observation, analysis_due, decide
from modelpilot.rollout.state import config_from_spec, from_status, to_status
from modelpilot.routing import build_httproute, canary_replicas
from modelpilot.settings import OperatorSettings
from modelpilot.status import (
    Accelerator as AcceleratorView,
)
from modelpilot.status import (
    Observation as StatusObservation,
)
from modelpilot.status import (
    RolloutView,
    assess,
    merge_conditions,
    rolled_out,
    status_patch,
    transitions,
)

log = logging.getLogger("modelpilot.reconcile")

API_VERSION = f"{GROUP}/{VERSION}"
HTTPROUTE = ("gateway.networking.k8s.io/v1", "HTTPRoute")
ANNOTATION_WEIGHT = "modelpilot.io/canary-weight"
WARNING_REASONS = frozenset({"InvalidSpec", "InsufficientAccelerator", "Unschedulable"})
MANAGED_BY = "app.kubernetes.io/managed-by=modelpilot"


def decision_log(ns: str, name: str, what: str, **fields: Any) -> None:
    """One structured log line per decision, always naming the ModelDeployment."""
    detail = " ".join(f"{k}={v}" for k, v in fields.items())
    log.info("%s/%s %s %s", ns, name, what, detail)


def check_queries(spec: ModelDeploymentSpec) -> None:
    """What CEL cannot check: the PromQL of custom metrics. Raises SpecError naming the metric."""
    problems = []
    for i, metric in enumerate(spec.rollout.canary.analysis.metrics):
        if metric.query:
            try:
                check_syntax(metric.query)
            except QueryError as err:
                problems.append(f"spec.rollout.canary.analysis.metrics[{i}].query ({metric.name}): {err}")
    if problems:
        raise SpecError("invalid ModelDeployment spec: " + "; ".join(problems), problems)


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


@dataclass
class Plan:
    """What one tick decided: which template the stable track runs, and the rollout decision."""

    stable_spec: ModelDeploymentSpec
    decision: Decision
    action: str | None = None
    analysed: AnalysisResult | None = None


@dataclass
class Reconciler:
    kube: Kube
    settings: OperatorSettings
    clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)
    provider: MetricsProvider | None = None

    def __post_init__(self) -> None:
        if self.provider is None:
            self.provider = PrometheusProvider(self.settings.prometheus_url, timeout=self.settings.query_timeout)

    def build_settings(self) -> BuildSettings:
        return BuildSettings(gpu_product_label=self.settings.gpu_product_label,
                             runtime_image=self.settings.runtime_image,
                             cluster_domain=self.settings.cluster_domain)

    # -- the reconcile -------------------------------------------------------------------------
    def reconcile(self, namespace: str, name: str) -> float | None:
        md = self.kube.get(API_VERSION, KIND, namespace, name)
        if md is None or md["metadata"].get("deletionTimestamp"):
            return None  # children go with it: ownerReferences and the garbage collector
        meta = md["metadata"]
        generation = int(meta.get("generation", 0))
        current_status: dict[str, Any] = dict(md.get("status") or {})

        try:
            spec = parse_spec(md.get("spec"))
            check_queries(spec)
        except SpecError as err:
            decision_log(namespace, name, "invalid-spec", reason=str(err))
            observation = StatusObservation(generation=generation, version="", revision="",
                                            stable_deployment=None, invalid_spec=str(err))
            self._write_status(md, current_status, observation, canary=None, stable_template=None)
            return None

        owner = {"apiVersion": API_VERSION, "kind": KIND, "name": name, "uid": meta["uid"]}
        settings = self.build_settings()
        now = self.clock()
        stable_live = self.kube.get("apps/v1", "Deployment", namespace, name)
        canary_live = self.kube.get("apps/v1", "Deployment", namespace, f"{name}-canary")
        plan = self._plan(md, spec, current_status, stable_live, canary_live, now)
        decision = plan.decision
        stable_spec = plan.stable_spec

        # Children: the steady set from the stable spec, then the canary and the route.
        children = desired_children(stable_spec, name=name, namespace=namespace, owner=owner, settings=settings)
        stable_replicas = self._stable_replicas(spec, stable_live)
        gateway = spec.rollout.canary.traffic_routing.gateway_api
        if decision.canary_running:
            assert decision.canary is not None
            canary_deployment = build_deployment(
                spec, name=name, namespace=namespace, owner=owner, settings=settings, track="canary",
                replicas=self._canary_replicas(spec, decision.canary, stable_replicas))
            # The weight these replicas were sized for, on the same object (for people and tests).
            canary_deployment["metadata"].setdefault("annotations", {})[ANNOTATION_WEIGHT] = str(decision.weight)
            children.append(canary_deployment)
        elif canary_live is not None and (canary_live.get("spec") or {}).get("replicas", 0) != 0:
            # The canary scales to zero; its Deployment stays (cheap, and a retry reuses it).
            children.append(build_deployment(spec, name=name, namespace=namespace, owner=owner, settings=settings,
                                             track="canary", replicas=0))
        if gateway is not None:
            children.append(build_httproute(name, namespace, owner, gateway, decision.weight))
        for child in children:
            self._ensure(namespace, name, child, spec)
        unwanted = list(unwanted_children(spec, name=name))
        if gateway is None:
            unwanted.append((*HTTPROUTE, name))
        for api_version, kind, child_name in unwanted:
            self._delete_if_owned(namespace, name, api_version, kind, child_name, meta["uid"])

        if plan.action is not None and decision.consume_action:
            self.kube.remove_annotation(API_VERSION, KIND, namespace, name, ANNOTATION_ACTION)
            decision_log(namespace, name, "action-consumed", action=plan.action)
        for event in decision.events:
            self.kube.post_event(md, event.type, event.reason, event.message)
            decision_log(namespace, name, f"rollout-{event.reason}", message=repr(event.message))
        self._record_metrics(namespace, name, decision, plan.analysed)

        # Status.
        stable_after = self.kube.get("apps/v1", "Deployment", namespace, name)  # after this tick's applies
        pods = self.kube.list("v1", "Pod", namespace, label_selector=f"app.kubernetes.io/name={name},{MANAGED_BY}")
        stable_pods = [p for p in pods if (p["metadata"].get("labels") or {}).get("modelpilot.io/track") != "canary"]
        canary = decision.canary
        view = RolloutView(canary.state, canary.reason or canary.state, canary.message) if canary else None
        observation = StatusObservation(
            generation=generation,
            version=stable_spec.model.version,
            revision=serving_revision(stable_spec),
            stable_deployment=stable_after,
            pods=stable_pods,
            accelerator=self._accelerator(stable_spec),
            url=service_url(name, namespace, self.settings.cluster_domain),
            rollout=view,
        )
        self._write_status(md, current_status, observation, canary=canary,
                           stable_template=canonical_serving_template(stable_spec))
        return decision.requeue_after

    # -- the rollout tick ----------------------------------------------------------------------
    def _plan(self, md: dict[str, Any], spec: ModelDeploymentSpec, status: dict[str, Any],
              stable_live: dict[str, Any] | None, canary_live: dict[str, Any] | None, now: dt.datetime) -> Plan:
        meta = md["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        stable = status.get("stable") or {}
        if spec.rollout.strategy != "Canary" or not stable.get("template") or not stable.get("version"):
            # Rolling strategy, or no version has ever served (nothing to protect, nothing to compare
            # a canary with, e.g. a first spec whose pods could not be scheduled): the stable
            # Deployment takes the spec directly.
            return Plan(stable_spec=spec, decision=Decision(None))

        stable_spec = stable_spec_from(spec, stable.get("template"))
        stable_revision = serving_revision(stable_spec)
        desired_revision = serving_revision(spec)
        config = config_from_spec(spec)
        canary = from_status(status.get("canary"))
        action = (meta.get("annotations") or {}).get(ANNOTATION_ACTION)
        canary_ready = canary_live is not None and canary is not None and \
            rolled_out(canary_live, desired_revision)[0] and \
            (canary_live.get("status") or {}).get("readyReplicas", 0) >= 1
        stable_done = stable_live is not None and rolled_out(stable_live, desired_revision)[0]

        analysed: AnalysisResult | None = None
        if canary is not None and canary.revision == desired_revision and \
                analysis_due(canary, config, now, canary_ready, spec.paused) and action is None:
            window = window_seconds(config.interval, self.settings.scrape_interval)
            assert self.provider is not None
            analysed = run_analysis(spec.rollout.canary.analysis, namespace=namespace, name=name, window=window,
                                    provider=self.provider, now=now)
            decision_log(namespace, name, "analysis", verdict=analysed.verdict, window=f"{window}s",
                         result=repr(analysed.summary()))
        observation = Observation(
            desired_revision=desired_revision, desired_version=spec.model.version, stable_revision=stable_revision,
            canary_ready=canary_ready, stable_rolled_out=stable_done, paused=spec.paused, action=action,
            analysis=analysed,
        )
        decision = decide(config, canary, observation, now)
        promoting = decision.canary is not None and decision.canary.state == "Promoting"
        if promoting or decision.outcome == "promoted":
            stable_spec = spec  # the stable Deployment takes the canary's (= the current) template
        return Plan(stable_spec=stable_spec, decision=decision, action=action, analysed=analysed)

    def _stable_replicas(self, spec: ModelDeploymentSpec, stable_live: dict[str, Any] | None) -> int:
        wanted = desired_replicas(spec)
        if wanted is not None:
            return wanted
        live = ((stable_live or {}).get("spec") or {}).get("replicas")
        return int(live or (spec.autoscaling.min_replicas if spec.autoscaling else 1))

    def _canary_replicas(self, spec: ModelDeploymentSpec, canary: CanaryState, stable_replicas: int) -> int:
        first_step = spec.rollout.canary.steps[0]
        weight = canary.weight if canary.step >= 0 else first_step
        if spec.rollout.canary.traffic_routing.gateway_api is not None:
            # Exact weights come from the HTTPRoute; the canary only needs the capacity for them.
            return max(1, math.ceil(max(1, stable_replicas) * max(weight, first_step) / 100))
        return canary_replicas(stable_replicas, weight)

    def _record_metrics(self, namespace: str, name: str, decision: Decision, analysed: AnalysisResult | None) -> None:
        metrics.CANARY_WEIGHT.labels(namespace, name).set(decision.weight)
        state = decision.canary.state if decision.canary else "None"
        for candidate in metrics.CANARY_STATES:
            metrics.CANARY_STATE.labels(namespace, name, candidate).set(1 if candidate == state else 0)
        if analysed is not None:
            for m in analysed.measurements:
                metrics.ANALYSES.labels(namespace, name, m.metric, m.verdict).inc()
                if m.value is not None and math.isfinite(m.value):
                    metrics.ANALYSIS_VALUE.labels(namespace, name, m.metric).set(m.value)
        if decision.outcome == "promoted":
            metrics.PROMOTIONS.labels(namespace, name).inc()
        elif decision.outcome == "rolled-back":
            metrics.ROLLBACKS.labels(namespace, name).inc()

    # -- children ------------------------------------------------------------------------------
    def _ensure(self, namespace: str, name: str, child: dict[str, Any], spec: ModelDeploymentSpec) -> None:
        meta = child["metadata"]
        live = self.kube.get(child["apiVersion"], child["kind"], meta["namespace"], meta["name"])
        if live is None:
            if child["kind"] == "Deployment" and spec.autoscaling is not None and "replicas" not in child["spec"]:
                # Start an autoscaled Deployment at minReplicas (an HPA without metrics yet would
                # leave it at 1) under a separate field manager, so the operator's own apply
                # never owns replicas and never fights the HPA.
                first = {**child, "spec": {**child["spec"], "replicas": spec.autoscaling.min_replicas or 1}}
                self.kube.apply(first, field_manager=BOOTSTRAP_FIELD_MANAGER)
            self.kube.apply(child)
            decision_log(namespace, name, "created", kind=child["kind"], child=meta["name"])
            return
        drift = differences(child, live)
        if drift:
            self.kube.apply(child)
            decision_log(namespace, name, "applied", kind=child["kind"], child=meta["name"],
                         fields=",".join(drift[:5]))

    def _delete_if_owned(self, namespace: str, name: str, api_version: str, kind: str, child_name: str,
                         uid: str) -> None:
        live = self.kube.get(api_version, kind, namespace, child_name)
        if live is None:
            return
        owners = live["metadata"].get("ownerReferences") or []
        if any(o.get("uid") == uid for o in owners) and self.kube.delete(api_version, kind, namespace, child_name):
            decision_log(namespace, name, "deleted", kind=kind, child=child_name, why="no longer in the spec")

    def _accelerator(self, spec: ModelDeploymentSpec) -> AcceleratorView | None:
        acc = spec.accelerator
        if acc is None:
            return None
        return AcceleratorView(resource=accelerator_resource(acc), count=acc.count, product=acc.product,
                               product_label=self.settings.gpu_product_label)

    # -- status --------------------------------------------------------------------------------
    def _write_status(self, md: dict[str, Any], current: dict[str, Any], obs: StatusObservation,
                      canary: CanaryState | None, stable_template: dict[str, Any] | None) -> None:
        meta = md["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        result = assess(obs, current.get("stable"))
        conditions = merge_conditions(current.get("conditions") or [], result.conditions, obs.generation,
                                      self.clock())
        desired = {k: v for k, v in current.items()
                   if k not in ("conditions", "phase", "stable", "url", "observedGeneration", "canary")}
        desired.update({"observedGeneration": obs.generation, "phase": result.phase, "conditions": conditions})
        if obs.invalid_spec is not None:
            # Keep the rollout state as it was: fixing the spec resumes where it stopped.
            for key in ("stable", "canary"):
                if key in current:
                    desired[key] = current[key]
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
        patch = status_patch(current, desired)
        if patch is None:
            return
        self.kube.patch_status(namespace, name, patch)
        # One Event per change of the Ready condition (status or reason), never one per resync.
        # Rollout decisions post their own Events.
        for cond in transitions(current.get("conditions") or [], conditions):
            if cond["type"] == "Ready" and obs.rollout is None:
                event_type = "Warning" if cond["reason"] in WARNING_REASONS else "Normal"
                self.kube.post_event(md, event_type, cond["reason"], cond["message"] or cond["reason"])
        decision_log(namespace, name, "status", phase=result.phase,
                     ready=next(c["status"] for c in conditions if c["type"] == "Ready"),
                     reason=next(c["reason"] for c in conditions if c["type"] == "Ready"))
