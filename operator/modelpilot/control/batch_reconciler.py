"""One reconcile of a BatchPrediction: observe (the watch cache) -> plan (pure) -> execute.

The side-effect layer for batch: like the ModelDeployment reconciler it never GETs in steady
state and writes only what the plan lists, putting every answer back into the cache.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from modelpilot import metrics
from modelpilot.api.batch import BATCH_KIND
from modelpilot.api.models import API_VERSION, KIND
from modelpilot.cache import Obj, Store
from modelpilot.control.batch_plan import BatchObserved, BatchPlan, plan_batch
from modelpilot.k8s.client import Kube
from modelpilot.resources import BuildSettings

log = logging.getLogger("modelpilot.batch")

Key = tuple[str, str]


def observe_batch(store: Store, namespace: str, name: str) -> BatchObserved | None:
    bp = store.get(API_VERSION, BATCH_KIND, namespace, name)
    if bp is None:
        return None
    ref = ((bp.get("spec") or {}).get("model") or {}).get("modelDeploymentRef") or {}
    md = store.get(API_VERSION, KIND, namespace, str(ref["name"])) if ref.get("name") else None
    return BatchObserved(
        bp=bp,
        job=store.get("batch/v1", "Job", namespace, name),
        cronjob=store.get("batch/v1", "CronJob", namespace, name),
        runs=tuple(store.batch_objects(namespace, name, "Job")),
        pods=tuple(store.batch_objects(namespace, name, "Pod")),
        model_deployment=md,
    )


@dataclass
class Outcome:
    """What reached the API server, filled as it goes: a write that fails later in the same tick
    does not hide an earlier one from the cache (a created Job is never created again)."""

    written: list[Obj] = field(default_factory=list)
    deleted: list[Obj] = field(default_factory=list)


def execute_batch(kube: Kube, bp: Obj, plan: BatchPlan, outcome: Outcome) -> None:
    """Children, then deletions, then status, then Events."""
    meta = bp["metadata"]
    for obj in plan.apply:
        outcome.written.append(kube.apply(obj))
    for api_version, kind, child in plan.delete:
        kube.delete(api_version, kind, meta["namespace"], child)
        outcome.deleted.append({"apiVersion": api_version, "kind": kind,
                                "metadata": {"namespace": meta["namespace"], "name": child}})
    if plan.status is not None:
        outcome.written.append(kube.patch_status(meta["namespace"], meta["name"], plan.status, kind=BATCH_KIND))
    for event in plan.events:
        kube.post_event(bp, event.type, event.reason, event.message)


class BatchReconciler:
    def __init__(self, kube: Kube, store: Store, build: BuildSettings, workers: int = 2,
                 clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)) -> None:
        self.kube = kube
        self.store = store
        self.build = build
        self.clock = clock
        self.io = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="modelpilot-batch-io")

    async def reconcile(self, key: Key) -> float | None:
        namespace, name = key
        observed = observe_batch(self.store, namespace, name)
        if observed is None or observed.bp["metadata"].get("deletionTimestamp"):
            return None  # its Jobs and CronJob go with it (ownerReferences)
        the_plan = plan_batch(observed, self.clock(), self.build)
        for what, fields in the_plan.decisions:
            log.info("%s/%s %s %s", namespace, name, what, " ".join(f"{k}={v}" for k, v in fields.items()))
        if the_plan.apply or the_plan.delete or the_plan.status is not None or the_plan.events:
            outcome = Outcome()
            try:
                await asyncio.get_running_loop().run_in_executor(self.io, execute_batch, self.kube, observed.bp,
                                                                 the_plan, outcome)
            finally:
                for obj in outcome.written:
                    self.store.put(obj)
                for obj in outcome.deleted:
                    self.store.remove(obj)
        if self.store.get(API_VERSION, BATCH_KIND, namespace, name) is not None:  # not deleted meanwhile
            metrics.record_batch(namespace, name, the_plan.phase, the_plan.rows, the_plan.shards)
        return the_plan.requeue

    def forget(self, key: Key) -> None:
        metrics.forget_batch(*key)

    async def stop(self) -> None:
        self.io.shutdown(wait=False, cancel_futures=True)
