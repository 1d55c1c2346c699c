"""Glue between an observation and the scale-to-zero part (pure): the stable track as the cache
shows it, the activator target of its route, and the KEDA CRD's presence."""

from __future__ import annotations

import datetime as dt
from typing import Any

from modelpilot.api.models import ModelDeploymentSpec
from modelpilot.control.observe import Observed
from modelpilot.control.serverless import ServerlessInputs, ServerlessPart, ServerlessReading, Track, serverless_part
from modelpilot.resources.common import ScalingSettings
from modelpilot.resources.labels import LABEL_TRACK
from modelpilot.resources.service import SERVICE_PORT, service_name
from modelpilot.routing.base import Activator
from modelpilot.routing.gateway import HTTPROUTE_API_VERSION, on_activator


def _ready(pod: dict[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def stable_track(observed: Observed) -> Track:
    deployment = observed.child("apps/v1", "Deployment", observed.name) or {}
    pods = [p for p in observed.pods if (p["metadata"].get("labels") or {}).get(LABEL_TRACK) != "canary"
            and not p["metadata"].get("deletionTimestamp") and
            (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")]
    ready = sum(1 for p in pods if _ready(p))
    replicas = (deployment.get("spec") or {}).get("replicas")
    return Track(replicas=int(1 if replicas is None else replicas),
                 pods=max(int((deployment.get("status") or {}).get("replicas") or 0), len(pods)),
                 ready=ready, starting=len(pods) - ready)


def activator_for(observed: Observed, scaling: ScalingSettings) -> Activator | None:
    """The activator as the route's stable backend, or None while the Service `<name>` has no
    ClusterIP. The activator forwards to that one: with Gateway API routing (which scale to zero
    needs) it selects the stable pods only, and `<name>-stable` is headless (no ClusterIP ever)."""
    service = observed.child("v1", "Service", service_name(observed.name)) or {}
    ip = (service.get("spec") or {}).get("clusterIP")
    if not ip or ip == "None":
        return None
    upstream = f"[{ip}]:{SERVICE_PORT}" if ":" in ip else f"{ip}:{SERVICE_PORT}"
    return Activator(namespace=scaling.activator_namespace, service=scaling.activator_service,
                     port=scaling.activator_port, upstream=upstream,
                     target=f"{observed.namespace}/{observed.name}/stable")


def scale_to_zero(observed: Observed, spec: ModelDeploymentSpec, canary_in_flight: bool,
                  scaling: ScalingSettings, reading: ServerlessReading | None,
                  read_every: float, now: dt.datetime) -> tuple[ServerlessPart, Activator | None]:
    autoscaling = spec.autoscaling
    if autoscaling is None or not autoscaling.keda:
        return ServerlessPart(), None
    if not autoscaling.scale_to_zero:
        return ServerlessPart(keda_missing=not observed.keda), None
    activator = activator_for(observed, scaling)
    route = observed.child(HTTPROUTE_API_VERSION, "HTTPRoute", observed.name)
    part = serverless_part(ServerlessInputs(
        scaling=autoscaling, stored=dict((observed.md.get("status") or {}).get("serverless") or {}),
        track=stable_track(observed), canary_in_flight=canary_in_flight, keda=observed.keda,
        upstream_known=activator is not None,
        route_on_activator=activator is not None and on_activator(route, activator),
        reading=reading, read_every=read_every), now=now)
    return part, activator if part.via_activator else None
