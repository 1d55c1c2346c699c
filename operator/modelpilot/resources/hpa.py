"""The HorizontalPodAutoscaler `<name>` for the stable Deployment."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modelpilot.api.models import ModelDeploymentSpec
from modelpilot.resources.common import BuildSettings, Obj, object_meta
from modelpilot.resources.deployment import deployment_name
from modelpilot.resources.labels import common_labels


def build_hpa(
    spec: ModelDeploymentSpec,
    *,
    name: str,
    namespace: str,
    owner: Mapping[str, Any],
    settings: BuildSettings | None = None,
) -> Obj | None:
    """autoscaling/v2 HPA on CPU utilisation, or None when spec.autoscaling is not set or KEDA
    scales the track (resources/scaledobject.py)."""
    del settings
    scaling = spec.autoscaling
    if scaling is None or scaling.keda:
        return None
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": object_meta(name, namespace, common_labels(name), owner),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment_name(name, "stable")},
            "minReplicas": scaling.min_replicas,
            "maxReplicas": scaling.max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": scaling.target_cpu_utilization},
                    },
                }
            ],
        },
    }
