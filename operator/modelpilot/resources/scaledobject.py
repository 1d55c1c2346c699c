"""The KEDA ScaledObject `<name>` for the stable Deployment (pure), used instead of an HPA when the
track scales to zero or on a request metric.

KEDA runs the 0 <-> 1 step itself and hands 1 <-> N to an HPA it creates (`keda-hpa-<name>`). The
demand it reads is a Prometheus query over the model servers' own series plus the requests the
activator is holding, so demand exists while no pod runs. When the track may go to zero is the
operator's decision (control/serverless.py): until then `minReplicaCount` stays at 1, which is
how a pod waiting for a node or loading its model is never scaled away.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modelpilot.api.serving import Autoscaling
from modelpilot.resources.common import Obj, ScalingSettings, object_meta
from modelpilot.resources.deployment import deployment_name
from modelpilot.resources.labels import common_labels

SCALEDOBJECT_API_VERSION = "keda.sh/v1alpha1"
SCALEDOBJECT_KIND = "ScaledObject"
# Held requests per pod that a CPU-scaled track is sized for while it wakes up (the CPU metric says
# nothing until a pod runs).
HELD_PER_POD = 10


def _selector(label: str, namespace: str, name: str, track: str) -> str:
    return f'{{{label}="{namespace}",model_deployment="{name}",track="{track}"}}'


def demand_queries(namespace: str, name: str, scaling: Autoscaling, scrape_interval: float,
                   track: str = "stable") -> tuple[str, str]:
    """(the query of `scaling.metric`, the held requests alone). Both count the activator's held
    requests, so a track at zero has demand the moment a request waits."""
    server = _selector("namespace", namespace, name, track)
    held = f"sum(modelpilot_activator_requests_waiting{_selector('model_namespace', namespace, name, track)})"
    window = max(10, round(4 * scrape_interval))
    if scaling.metric == "requests":
        served = f"sum(rate(modelpilot_requests_total{server}[{window}s]))"
    else:
        served = f"sum(modelpilot_requests_in_flight{server})"
    return f"({served} or vector(0)) + ({held} or vector(0))", f"{held} or vector(0)"


def _prometheus(name: str, url: str, query: str, threshold: int) -> dict[str, Any]:
    return {"type": "prometheus", "name": name,
            "metadata": {"serverAddress": url, "query": query, "threshold": str(threshold),
                         "activationThreshold": "0", "ignoreNullValues": "true"}}


def triggers(namespace: str, name: str, scaling: Autoscaling, settings: ScalingSettings) -> list[dict[str, Any]]:
    demand, held = demand_queries(namespace, name, scaling, settings.scrape_interval)
    if scaling.metric != "cpu":
        return [_prometheus(scaling.metric, settings.prometheus_url, demand, scaling.target_value)]
    return [
        {"type": "cpu", "name": "cpu", "metricType": "Utilization", "metadata": {"value": str(scaling.target_value)}},
        _prometheus("held", settings.prometheus_url, held, HELD_PER_POD),
    ]


def build_scaledobject(scaling: Autoscaling, *, name: str, namespace: str, owner: Mapping[str, Any],
                       settings: ScalingSettings, hold: bool) -> Obj:
    """`hold`: keep at least one pod (the track is not idle yet, or a canary is in flight)."""
    minimum = max(1, scaling.min_replicas) if hold else scaling.min_replicas
    return {
        "apiVersion": SCALEDOBJECT_API_VERSION,
        "kind": SCALEDOBJECT_KIND,
        "metadata": object_meta(name, namespace, common_labels(name), owner),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                               "name": deployment_name(name, "stable")},
            "pollingInterval": settings.polling_seconds,
            "cooldownPeriod": settings.cooldown_seconds,
            "minReplicaCount": minimum,
            "maxReplicaCount": scaling.max_replicas,
            "advanced": {"horizontalPodAutoscalerConfig": {"behavior": {"scaleDown": {
                "stabilizationWindowSeconds": settings.scale_down_stabilization_seconds}}}},
            "triggers": triggers(namespace, name, scaling, settings),
        },
    }
