"""Kopf wiring: thin. Watches feed one operator-wide scheduler; the scheduler runs `reconcile`.

Only `@kopf.on.event` handlers are used: they keep no state on the objects (no finalizers, no
`kopf.zalando.org/*` annotations, no status fields), so deleting a ModelDeployment never waits for
the operator and GitOps tools see exactly the object the user wrote. Periodic work comes from
`modelpilot.scheduler`, not from per-object timers or daemons (which would add finalizers).
Run with `kopf run -m modelpilot.handlers` or `modelpilot operator`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf

from modelpilot import metrics
from modelpilot.k8s.client import GROUP, PLURAL, VERSION, Kube
from modelpilot.reconciler import Reconciler
from modelpilot.scheduler import Scheduler
from modelpilot.settings import OperatorSettings

log = logging.getLogger("modelpilot.handlers")

Key = tuple[str, str]  # (namespace, name)
MANAGED = {"app.kubernetes.io/managed-by": "modelpilot"}


class _Runtime:
    """What the handlers share; built at startup so importing this module has no side effects."""

    scheduler: Scheduler[Key] | None = None
    reconciler: Reconciler | None = None


runtime = _Runtime()


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
    config = OperatorSettings.from_env()
    # We post our own Events, one per decision; Kopf's per-handler Events would be writes on
    # every watch event and break "a steady state makes zero writes".
    settings.posting.enabled = False
    # One replica with the Recreate strategy; no KopfPeering objects are needed.
    settings.peering.standalone = True
    settings.watching.server_timeout = int(config.watch_timeout)  # the API server wants an integer
    settings.watching.client_timeout = config.watch_timeout + 30
    settings.watching.connect_timeout = 10
    settings.networking.connect_timeout = 10
    settings.networking.request_timeout = 60
    settings.networking.error_backoffs = (0.2, 0.5, 1, 2, 5, 10)
    settings.networking.enforce_retry_after = True

    reconciler = Reconciler(kube=Kube.from_environment(), settings=config)

    async def reconcile(key: Key) -> float | None:
        with metrics.RECONCILE_SECONDS.time():
            try:
                delay = await asyncio.to_thread(reconciler.reconcile, *key)
            except Exception:
                metrics.RECONCILES.labels("error").inc()
                raise
        metrics.RECONCILES.labels("ok").inc()
        return delay

    scheduler: Scheduler[Key] = Scheduler(reconcile, resync_seconds=config.resync_seconds, workers=config.workers)
    scheduler.start()
    metrics.serve(config.metrics_port)
    runtime.scheduler, runtime.reconciler = scheduler, reconciler
    log.info("modelpilot started: resync=%ss workers=%s namespaces=%s", config.resync_seconds, config.workers,
             ",".join(config.namespaces) or "*")


@kopf.on.cleanup()
async def cleanup(**_: Any) -> None:
    if runtime.scheduler is not None:
        await runtime.scheduler.stop()


@kopf.on.event(GROUP, VERSION, PLURAL)
async def modeldeployment_event(event: dict[str, Any], name: str, namespace: str, **_: Any) -> None:
    scheduler = runtime.scheduler
    if scheduler is None:
        return
    if event.get("type") == "DELETED":
        scheduler.forget((namespace, name))
    else:
        scheduler.track((namespace, name))


def _owner_name(body: kopf.Body) -> str | None:
    for ref in body.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("kind") == "ModelDeployment" and ref.get("apiVersion", "").startswith(f"{GROUP}/"):
            return str(ref.get("name"))
    return None


# A child edited or deleted by hand is put back at once, not at the next resync.
@kopf.on.event("apps", "v1", "deployments", labels=MANAGED, id="deployment_event")
@kopf.on.event("", "v1", "services", labels=MANAGED, id="service_event")
@kopf.on.event("autoscaling", "v2", "horizontalpodautoscalers", labels=MANAGED, id="hpa_event")
@kopf.on.event("gateway.networking.k8s.io", "v1", "httproutes", labels=MANAGED, id="httproute_event")
async def child_event(body: kopf.Body, namespace: str | None, **_: Any) -> None:
    scheduler = runtime.scheduler
    owner = _owner_name(body)
    if scheduler is not None and owner is not None and namespace is not None \
            and (namespace, owner) in scheduler.known:
        scheduler.enqueue((namespace, owner))


# Pods are not owned by the ModelDeployment (their ReplicaSet is), so they map by label; their
# scheduling state feeds the InsufficientAccelerator condition.
@kopf.on.event("", "v1", "pods", labels=MANAGED)
async def pod_event(labels: kopf.Labels, namespace: str | None, **_: Any) -> None:
    scheduler = runtime.scheduler
    owner = labels.get("app.kubernetes.io/name")
    if scheduler is not None and owner and namespace and (namespace, owner) in scheduler.known:
        scheduler.enqueue((namespace, owner))
