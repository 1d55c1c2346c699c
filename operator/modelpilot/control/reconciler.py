"""One reconcile of a ModelDeployment, as ordered steps:

observe (the watch cache) -> analyse (take a finished analysis; start a due one, never wait for
it) -> plan (pure) -> execute (only when the plan writes; in an I/O thread) -> requeue.

Runs on the event loop, where the cache lives: observing and planning are pure and quick, so the
loop only leaves for the writes. A steady-state reconcile makes no request at all.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

from modelpilot import metrics
from modelpilot.analysis.drift_judge import judge_drift
from modelpilot.analysis.drift_read import read_drift
from modelpilot.analysis.provider import ProviderError
from modelpilot.analysis.providers import Providers
from modelpilot.analysis.run import run_analysis
from modelpilot.analysis.runner import AnalysisRunner
from modelpilot.analysis.serverless_read import read_serverless
from modelpilot.cache import Store
from modelpilot.control.drift import DriftOutcome, DriftRequest
from modelpilot.control.execute import execute, first_stage
from modelpilot.control.observe import observe
from modelpilot.control.plan import AnalysisRequest, Plan, PlanSettings, plan
from modelpilot.control.serverless import ServerlessReading
from modelpilot.k8s.client import Kube
from modelpilot.logs import decision_log
from modelpilot.notify.notifier import Notifier
from modelpilot.resources import BuildSettings
from modelpilot.resources.common import ScalingSettings
from modelpilot.resources.grant import GRANT_KIND
from modelpilot.rollout.machine import AnalysisResult, Decision
from modelpilot.rollout.state import from_status
from modelpilot.settings import OperatorSettings

Key = tuple[str, str]  # namespace, name


def plan_settings(settings: OperatorSettings) -> PlanSettings:
    scaling = ScalingSettings(
        prometheus_url=settings.prometheus_url, scrape_interval=settings.scrape_interval,
        polling_seconds=settings.keda_polling_seconds, cooldown_seconds=settings.keda_cooldown_seconds,
        scale_down_stabilization_seconds=settings.scale_down_stabilization_seconds,
        activator_namespace=settings.activator_namespace, activator_service=settings.activator_service,
        activator_port=settings.activator_port)
    build = BuildSettings(gpu_product_label=settings.gpu_product_label, runtime_image=settings.runtime_image,
                          cluster_domain=settings.cluster_domain, max_model_bytes=settings.max_model_bytes,
                          allow_link_local=settings.allow_link_local, scaling=scaling)
    return PlanSettings(build=build, gpu_product_label=settings.gpu_product_label,
                        cluster_domain=settings.cluster_domain, scrape_interval=settings.scrape_interval,
                        confine_queries=settings.confine_queries)


class Reconciler:
    def __init__(self, kube: Kube, settings: OperatorSettings, store: Store, wake: Callable[[Key], None],
                 clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
                 providers: Providers | None = None) -> None:
        self.kube = kube
        self.store = store
        self.clock = clock
        self.settings = plan_settings(settings)
        self.providers = providers or Providers(settings)
        self.io = ThreadPoolExecutor(max_workers=settings.workers, thread_name_prefix="modelpilot-io")
        self.notifier = Notifier(kube, settings.notifications_secret)  # spec.notifications' webhooks
        self.analyses: AnalysisRunner[AnalysisResult] = AnalysisRunner(settings.analysis_concurrency, done=wake,
                                                                       clock=clock)
        self.drifts: AnalysisRunner[DriftOutcome] = AnalysisRunner(
            settings.analysis_concurrency, done=wake, clock=clock, name="drift",
            failed=lambda at, err: DriftOutcome(at, error=f"{type(err).__name__}: {err}"[:300]))
        self.rejected_queries: dict[Key, dict[str, str]] = {}
        # Scale to zero: each track's latest demand reading (kept, not consumed: the idle clock
        # needs the freshest one on every tick), and the namespaces whose routes may use the activator.
        self.readings: AnalysisRunner[ServerlessReading] = AnalysisRunner(
            settings.analysis_concurrency, done=wake, clock=clock, name="serverless",
            failed=lambda at, err: ServerlessReading(at, error=f"{type(err).__name__}: {err}"[:300]))
        self.last_reading: dict[Key, ServerlessReading] = {}
        self.granted: set[str] = set()
        self.scrape_interval = settings.scrape_interval

    async def reconcile(self, key: Key) -> float | None:
        namespace, name = key
        observed = observe(self.store, namespace, name)
        if observed is None or observed.md["metadata"].get("deletionTimestamp"):
            self.analyses.forget(key)
            self.drifts.forget(key)
            self.readings.forget(key)
            return None  # children go with it: ownerReferences and the garbage collector
        now = self.clock()
        analysis = self._finished_analysis(key, observed.md)
        if analysis is not None and analysis.rejected:
            # A custom query the provider refused is the spec's fault: InvalidSpec, not an outage
            # that would count towards a rollback of a healthy canary.
            self.rejected_queries.setdefault(key, {}).update(dict(analysis.rejected))
            analysis = None
        reading = self.readings.take(key)
        if reading is not None:
            self.last_reading[key] = reading.result
        observed = replace(observed, rejected_queries=self.rejected_queries.get(key, {}),
                           serverless_reading=self.last_reading.get(key),
                           activator_granted=namespace in self.granted)
        finished_drift = self.drifts.take(key)
        the_plan = plan(observed, analysis, now, self.settings,
                        drift=finished_drift.result if finished_drift is not None else None)
        if the_plan.analysis is not None:
            self._start_analysis(key, the_plan.analysis)
        if the_plan.drift is not None:
            self._start_drift(key, the_plan.drift)
        if the_plan.read_serverless and not self.readings.busy(key):
            job = functools.partial(_read_serverless, self.providers.get("prometheus"), key, self.scrape_interval)
            self.readings.submit(key, "", now, now, job)
        for what, fields in the_plan.decisions:
            decision_log(namespace, name, what, fields)
        for stage in first_stage(the_plan):
            if not stage.writes:
                continue
            outcome = await asyncio.get_running_loop().run_in_executor(self.io, execute, self.kube, observed.md, stage,
                                                                       self.notifier)
            for obj in outcome.written:
                if obj.get("kind") == GRANT_KIND:
                    self.granted.add(namespace)
                    continue  # not cached: the operator does not watch ReferenceGrants
                self.store.put(obj)
            for obj in outcome.deleted:
                self.store.remove(obj)
        self._record_metrics(namespace, name, the_plan)
        return the_plan.requeue

    def _finished_analysis(self, key: Key, md: dict[str, Any]) -> AnalysisResult | None:
        """A finished analysis, if it was for the canary now in status (else it is stale: dropped)."""
        finished = self.analyses.take(key)
        if finished is None:
            return None
        canary = from_status((md.get("status") or {}).get("canary"))
        if canary is None or canary.revision != finished.revision or canary.started_at != finished.started_at:
            return None
        return finished.result

    def _start_analysis(self, key: Key, request: AnalysisRequest) -> None:
        if self.analyses.busy(key):
            return
        provider = self.providers.get(request.analysis.provider)
        job = functools.partial(_analyse, request, provider)
        self.analyses.submit(key, request.revision, request.started_at, request.due, job)

    def _start_drift(self, key: Key, request: DriftRequest) -> None:
        if self.drifts.busy(key):
            return
        provider = self.providers.get("prometheus")
        self.drifts.submit(key, request.revision, request.due, request.due,
                           functools.partial(_read_drift, request, provider))

    def _record_metrics(self, namespace: str, name: str, the_plan: Plan) -> None:
        if the_plan.serverless is not None and the_plan.serverless.status is not None:
            metrics.record_serverless(namespace, name, the_plan.serverless.status)
        if the_plan.drift_part is not None:
            metrics.record_drift(namespace, name, the_plan.drift_part.conditions, the_plan.drift_part.status)
        decision: Decision | None = the_plan.decision
        if decision is None:
            return
        metrics.CANARY_WEIGHT.labels(namespace, name).set(decision.weight)
        state = decision.canary.state if decision.canary else "None"
        for candidate in metrics.CANARY_STATES:
            metrics.CANARY_STATE.labels(namespace, name, candidate).set(1 if candidate == state else 0)
        for m in decision.measured:
            metrics.ANALYSES.labels(namespace, name, m.metric, m.verdict).inc()
            if m.value is not None and math.isfinite(m.value):
                metrics.ANALYSIS_VALUE.labels(namespace, name, m.metric).set(m.value)
        if decision.outcome == "promoted":
            metrics.PROMOTIONS.labels(namespace, name).inc()
        elif decision.outcome == "rolled-back":
            metrics.ROLLBACKS.labels(namespace, name).inc()

    def forget(self, key: Key) -> None:
        self.analyses.forget(key)
        self.drifts.forget(key)
        self.readings.forget(key)
        self.last_reading.pop(key, None)
        self.rejected_queries.pop(key, None)
        metrics.forget_object(*key)

    async def stop(self) -> None:
        await self.analyses.stop()
        await self.drifts.stop()
        await self.readings.stop()
        self.io.shutdown(wait=False, cancel_futures=True)
        self.notifier.stop()


def _analyse(request: AnalysisRequest, provider: Any, start: dt.datetime) -> AnalysisResult:
    result = run_analysis(request.analysis, namespace=request.namespace, name=request.name, window=request.window,
                          provider=provider, now=start,
                          revisions={"canary": request.revision, "stable": request.stable_revision},
                          shift_window=request.shift_window, experiment=request.experiment,
                          shift_optional=request.shift_optional)
    fields = {"verdict": result.verdict, "window": f"{request.window}s", "result": repr(result.summary())}
    if result.experiment is not None:
        fields.update(experiment=result.experiment.verdict, final=str(result.experiment.final).lower(),
                      comparisons=repr(result.experiment.summary()))
    decision_log(request.namespace, request.name, "analysis", fields)
    return result


def _read_serverless(provider: Any, key: Key, scrape_interval: float, start: dt.datetime) -> ServerlessReading:
    reading = read_serverless(provider, namespace=key[0], name=key[1], start=start, scrape_interval=scrape_interval)
    if reading.error is not None:
        decision_log(key[0], key[1], "serverless-unavailable", {"error": repr(reading.error)})
    return reading


def _read_drift(request: DriftRequest, provider: Any, start: dt.datetime) -> DriftOutcome:
    try:
        readings = read_drift(provider, namespace=request.namespace, name=request.name, track="stable",
                              revision=request.revision)
    except ProviderError as err:
        decision_log(request.namespace, request.name, "drift-unavailable", {"error": repr(str(err))})
        return DriftOutcome(start, error=str(err))
    report = judge_drift(request.settings, readings, start)
    decision_log(request.namespace, request.name, "drift", {
        "data": f"{report.data.status}/{report.data.reason}", "concept": f"{report.concept.status}/"
        f"{report.concept.reason}", "rows": f"{readings.rows:.0f}"})
    return DriftOutcome(start, report=report)
