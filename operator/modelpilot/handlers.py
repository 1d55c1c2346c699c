"""Kopf wiring: thin. The watches feed the cache and wake ModelDeployments; one operator-wide
scheduler runs the reconciles.

- `@kopf.index` handlers put every object of every watched kind into the cache (`modelpilot.cache`):
  the operator's own children whole, anything else of those kinds as a stub (name, owners), so
  a child name someone else's object already has is a NameConflict found without any GET.
  They keep nothing in Kopf's own indices; they are indices because Kopf holds back every other
  handler until all of them have seen the initial listing, so no reconcile ever starts on a
  half-filled cache (which would re-create children that exist).
- `@kopf.on.event` handlers drop deleted objects from the cache and wake the owning
  ModelDeployment. They keep no state on the objects (no finalizers, no `kopf.zalando.org/*`
  annotations, no status fields), so deleting a ModelDeployment never waits for the operator and
  GitOps tools see exactly the object the user wrote.
- Periodic work comes from `modelpilot.scheduler`, not from per-object timers or daemons (which
  would add finalizers).

Run with `kopf run -m modelpilot.handlers` or `modelpilot operator`.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from modelpilot import metrics
from modelpilot.api.batch import BATCH_KIND, BATCH_PLURAL
from modelpilot.api.models import GROUP, KIND, PLURAL, VERSION
from modelpilot.cache import Store
from modelpilot.control.batch_reconciler import BatchReconciler
from modelpilot.control.observe import KEDA_SCALEDOBJECTS_CRD, is_edge
from modelpilot.control.reconciler import Key, Reconciler, plan_settings
from modelpilot.k8s import watch_guard
from modelpilot.k8s.client import Kube
from modelpilot.resources import SCALEDOBJECT_API_VERSION, SCALEDOBJECT_KIND
from modelpilot.resources.labels import LABEL_BATCH, LABEL_MANAGED_BY, LABEL_NAME, MANAGED_BY
from modelpilot.scheduler import Scheduler
from modelpilot.settings import OperatorSettings

log = logging.getLogger("modelpilot.handlers")
watch_guard.install()  # before Kopf starts any watcher: a deleted CRD must not stop the operator

MANAGED = {LABEL_MANAGED_BY: MANAGED_BY}
RECONCILES_PER_IO_THREAD = 4
WATCH_GRACE_SECONDS = 5.0
CHILD_KINDS = (
    ("apps", "v1", "deployments"),
    # Target Edge: a DaemonSet per track.
    ("apps", "v1", "daemonsets"),
    ("", "v1", "services"),
    ("autoscaling", "v2", "horizontalpodautoscalers"),
    ("gateway.networking.k8s.io", "v1", "httproutes"),
    # Sticky experiments (Envoy Gateway); without its CRD Kopf watches nothing of this kind.
    ("gateway.envoyproxy.io", "v1alpha1", "backendtrafficpolicies"),
    # Request-metric and scale-to-zero autoscaling (KEDA); without its CRD Kopf watches nothing of
    # this kind, and picks it up once the CRD is installed.
    ("keda.sh", "v1alpha1", "scaledobjects"),
    # A BatchPrediction's run (Indexed Job) or schedule (CronJob).
    ("batch", "v1", "jobs"),
    ("batch", "v1", "cronjobs"),
)


class _Runtime:
    """What the handlers share; the store exists from import (pure), the rest from startup."""

    store: Store = Store()
    scheduler: Scheduler[Key] | None = None
    reconciler: Reconciler | None = None
    batch_scheduler: Scheduler[Key] | None = None
    batch_reconciler: BatchReconciler | None = None


runtime = _Runtime()


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
    config = OperatorSettings.from_env()
    # We post our own Events, one per decision; Kopf's per-handler Events would be writes on
    # every watch event and break "a steady state makes zero writes".
    settings.posting.enabled = False
    # No KopfPeering objects: several replicas are kept apart by leader election (modelpilot.leader).
    settings.peering.standalone = True
    settings.watching.server_timeout = int(config.watch_timeout)  # the API server wants an integer
    # A stream that stalls without closing (a proxy, a half-dead connection) is given up a few
    # seconds after the API server would have ended it, and re-established from the last
    # resourceVersion: nothing is missed, and a stall costs at most the watch timeout plus this.
    settings.watching.client_timeout = config.watch_timeout + WATCH_GRACE_SECONDS
    settings.watching.inactivity_timeout = config.watch_timeout + WATCH_GRACE_SECONDS
    settings.watching.connect_timeout = 10
    settings.networking.connect_timeout = 10
    settings.networking.request_timeout = 60
    settings.networking.error_backoffs = (0.2, 0.5, 1, 2, 5, 10)
    settings.networking.enforce_retry_after = True

    runtime.store = Store()
    # More reconciles in flight than I/O threads: planning is quick, and the I/O queue then holds
    # every new ModelDeployment's Deployment ahead of the rest of the writes (control/execute.py).
    scheduler: Scheduler[Key] = Scheduler(_reconcile, resync_seconds=config.resync_seconds,
                                          workers=config.workers * RECONCILES_PER_IO_THREAD)
    reconciler = Reconciler(kube=Kube.from_environment(), settings=config, store=runtime.store,
                            wake=scheduler.enqueue)
    runtime.scheduler, runtime.reconciler = scheduler, reconciler
    # BatchPredictions have their own queue and I/O threads: a burst of runs never delays serving.
    batch_reconciler = BatchReconciler(kube=reconciler.kube, store=runtime.store,
                                       build=plan_settings(config).build)
    batch_scheduler: Scheduler[Key] = Scheduler(_reconcile_batch, resync_seconds=config.resync_seconds, workers=2)
    runtime.batch_scheduler, runtime.batch_reconciler = batch_scheduler, batch_reconciler
    scheduler.start()
    batch_scheduler.start()
    metrics.serve(config.metrics_port)
    log.info("modelpilot started: resync=%ss workers=%s analyses=%s namespaces=%s", config.resync_seconds,
             config.workers, config.analysis_concurrency, ",".join(config.namespaces) or "*")


async def _reconcile(key: Key) -> float | None:
    assert runtime.reconciler is not None
    with metrics.RECONCILE_SECONDS.time():
        try:
            delay = await runtime.reconciler.reconcile(key)
        except Exception:
            metrics.RECONCILES.labels("error").inc()
            raise
    metrics.RECONCILES.labels("ok").inc()
    metrics.CACHED_OBJECTS.set(len(runtime.store))
    return delay


async def _reconcile_batch(key: Key) -> float | None:
    assert runtime.batch_reconciler is not None
    return await runtime.batch_reconciler.reconcile(key)


@kopf.on.cleanup()
async def cleanup(**_: Any) -> None:
    for scheduler in (runtime.scheduler, runtime.batch_scheduler):
        if scheduler is not None:
            await scheduler.stop()
    if runtime.reconciler is not None:
        await runtime.reconciler.stop()
    if runtime.batch_reconciler is not None:
        await runtime.batch_reconciler.stop()


# -- the cache ------------------------------------------------------------------------------------
def _managed(body: kopf.Body) -> bool:
    return (body.get("metadata", {}).get("labels") or {}).get(LABEL_MANAGED_BY) == MANAGED_BY


async def _cache(body: kopf.Body, **_: Any) -> None:
    """Every event but DELETED (Kopf calls index handlers for those, before any other handler)."""
    runtime.store.put(body, whole=body.get("kind") in (KIND, BATCH_KIND) or _managed(body))
    return None  # nothing for Kopf's own index


kopf.index(GROUP, VERSION, PLURAL, id="modeldeployments_cache")(_cache)
kopf.index(GROUP, VERSION, BATCH_PLURAL, id="batchpredictions_cache")(_cache)
kopf.index("", "v1", "pods", labels=MANAGED, id="pods_cache")(_cache)
for _group, _version, _plural in CHILD_KINDS:
    kopf.index(_group, _version, _plural, id=f"{_plural}_cache")(_cache)


def _keda_crd(name: str, **_: Any) -> bool:
    return name == KEDA_SCALEDOBJECTS_CRD


# Whether KEDA's ScaledObject CRD is installed (KEDAMissing otherwise): a stub in the cache.
kopf.index("apiextensions.k8s.io", "v1", "customresourcedefinitions", when=_keda_crd, id="keda_crd_cache")(_cache)


@kopf.on.event("apiextensions.k8s.io", "v1", "customresourcedefinitions", when=_keda_crd, id="keda_crd_event")
async def keda_crd_event(event: dict[str, Any], body: kopf.Body, **_: Any) -> None:
    """KEDA installed or removed: every ModelDeployment looks again (only autoscaled ones change).
    Removed: its ScaledObjects went with the CRD, without DELETED events."""
    if not _track(event, body):
        dropped = runtime.store.forget_kind(SCALEDOBJECT_API_VERSION, SCALEDOBJECT_KIND)
        log.info("KEDA's ScaledObject CRD was deleted: %d ScaledObject(s) dropped from the cache", dropped)
    scheduler = runtime.scheduler
    if scheduler is not None:
        for key in scheduler.known():
            scheduler.enqueue(key)


def _track(event: dict[str, Any], body: kopf.Body) -> bool:
    """Drop a deleted object from the cache (the index handlers put all the others); True when
    the object still exists."""
    if event.get("type") == "DELETED":
        runtime.store.remove(body)
        return False
    return True


# -- waking ModelDeployments ----------------------------------------------------------------------
@kopf.on.event(GROUP, VERSION, PLURAL)
async def modeldeployment_event(event: dict[str, Any], body: kopf.Body, name: str, namespace: str,
                                **_: Any) -> None:
    exists = _track(event, body)
    if runtime.scheduler is None:
        return
    _wake_batches(namespace)  # a BatchPrediction may wait for (or follow) this one's stable version
    _follow(runtime.scheduler, runtime.reconciler, (namespace, name), exists,
            "forgotten (no more reconciles, analyses or metric series)")


@kopf.on.event(GROUP, VERSION, BATCH_PLURAL)
async def batchprediction_event(event: dict[str, Any], body: kopf.Body, name: str, namespace: str,
                                **_: Any) -> None:
    exists = _track(event, body)
    if runtime.batch_scheduler is None:
        return
    _follow(runtime.batch_scheduler, runtime.batch_reconciler, (namespace, name), exists,
            "BatchPrediction forgotten")


def _follow(scheduler: Scheduler[Key], reconciler: Reconciler | BatchReconciler | None, key: Key, exists: bool,
            forgotten: str) -> None:
    """Reconcile a key that exists (now and on every resync); forget one that is gone."""
    if exists:
        scheduler.track(key)
        return
    scheduler.forget(key)
    if reconciler is not None:
        reconciler.forget(key)
    log.info("%s/%s deleted: %s", *key, forgotten)


def _owner_name(body: kopf.Body) -> str | None:
    for ref in body.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("kind") == KIND and ref.get("apiVersion", "").startswith(f"{GROUP}/"):
            return str(ref.get("name"))
    return None


# A child edited or deleted by hand is put back at once, not at the next resync. Objects of these
# kinds that are not ours are followed too (as stubs), so a name clash is seen, and its end.
@kopf.on.event("apps", "v1", "deployments", id="deployment_event")
@kopf.on.event("apps", "v1", "daemonsets", id="daemonset_event")
@kopf.on.event("", "v1", "services", id="service_event")
@kopf.on.event("autoscaling", "v2", "horizontalpodautoscalers", id="hpa_event")
@kopf.on.event("gateway.networking.k8s.io", "v1", "httproutes", id="httproute_event")
@kopf.on.event("gateway.envoyproxy.io", "v1alpha1", "backendtrafficpolicies", id="sticky_event")
@kopf.on.event("keda.sh", "v1alpha1", "scaledobjects", id="scaledobject_event")
async def child_event(event: dict[str, Any], body: kopf.Body, namespace: str | None, **_: Any) -> None:
    _track(event, body)
    _wake(namespace, _owner_name(body))


# A run's Job (or a scheduled run's, owned by the CronJob) and the CronJob wake their BatchPrediction.
@kopf.on.event("batch", "v1", "jobs", id="job_event")
@kopf.on.event("batch", "v1", "cronjobs", id="cronjob_event")
async def batch_child_event(event: dict[str, Any], body: kopf.Body, labels: kopf.Labels, namespace: str | None,
                            **_: Any) -> None:
    _track(event, body)
    _wake_batch(namespace, labels.get(LABEL_BATCH))


# Pods are not owned by the ModelDeployment (their ReplicaSet is), so they map by label; their
# scheduling state feeds the InsufficientAccelerator condition and readiness the canary.
@kopf.on.event("", "v1", "pods", labels=MANAGED)
async def pod_event(event: dict[str, Any], body: kopf.Body, labels: kopf.Labels, namespace: str | None,
                    **_: Any) -> None:
    _track(event, body)
    _wake(namespace, labels.get(LABEL_NAME))
    _wake_batch(namespace, labels.get(LABEL_BATCH))


# Nodes (target Edge): the fleet is chosen from them and a disconnected node changes a batch. Only
# what the operator keeps of a node (labels, taints, Ready) wakes anything: heartbeats do not.
@kopf.index("", "v1", "nodes", id="nodes_cache")
async def node_cache(body: kopf.Body, **_: Any) -> None:
    before = runtime.store.get("v1", "Node", "", body.get("metadata", {}).get("name", ""))
    runtime.store.put(body)
    after = runtime.store.get("v1", "Node", "", body.get("metadata", {}).get("name", ""))
    if _strip_version(before) != _strip_version(after):
        _wake_edge()
    return None


@kopf.on.event("", "v1", "nodes", id="node_event")
async def node_event(event: dict[str, Any], body: kopf.Body, **_: Any) -> None:
    if not _track(event, body):
        _wake_edge()


def _strip_version(node: dict[str, Any] | None) -> Any:
    if node is None:
        return None
    return {**node, "metadata": {k: v for k, v in node["metadata"].items() if k != "resourceVersion"}}


def _wake_edge() -> None:
    """Every target Edge ModelDeployment looks again."""
    scheduler = runtime.scheduler
    if scheduler is None:
        return
    for key in scheduler.known():
        md = runtime.store.get(f"{GROUP}/{VERSION}", KIND, *key)
        if md is not None and is_edge(md):
            scheduler.enqueue(key)


def _wake_batch(namespace: str | None, owner: str | None) -> None:
    _wake(namespace, owner, runtime.batch_scheduler)


def _wake_batches(namespace: str) -> None:
    scheduler = runtime.batch_scheduler
    if scheduler is not None:
        for key in scheduler.known():
            if key[0] == namespace:
                scheduler.enqueue(key)


def _wake(namespace: str | None, owner: str | None, scheduler: Scheduler[Key] | None = None) -> None:
    """Reconcile (namespace, owner) soon, if its scheduler (default: ModelDeployments') tracks it."""
    scheduler = scheduler or runtime.scheduler
    if scheduler is not None and owner and namespace and (namespace, owner) in scheduler:
        scheduler.enqueue((namespace, owner))
