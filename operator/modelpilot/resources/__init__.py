"""Pure builders: a parsed ModelDeployment spec in, plain dicts for server-side apply out.

Nothing here imports kubernetes or kopf. Every child carries the common labels and a controller
owner reference, never a status and never a null. `desired_children` is the entry point of the
steady state (stable Deployment, Services, HPA); the canary engine adds
`build_deployment(..., track="canary")`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modelpilot.api.models import ModelDeploymentSpec
from modelpilot.resources.common import DEFAULT_RUNTIME_IMAGE, FIELD_MANAGER, BuildSettings, Obj, owner_reference
from modelpilot.resources.deployment import (
    STORAGE_SECRET_KEYS,
    build_deployment,
    build_pod_template,
    deployment_name,
    desired_replicas,
)
from modelpilot.resources.hpa import build_hpa
from modelpilot.resources.labels import (
    ANNOTATION_ACTION,
    ANNOTATION_REVISION,
    LABEL_MANAGED_BY,
    LABEL_NAME,
    LABEL_TRACK,
    LABEL_VERSION,
    MANAGED_BY,
    common_labels,
    label_value,
    pod_labels,
    scale_selector,
    selector_labels,
    selector_string,
)
from modelpilot.resources.placement import VENDOR_RESOURCES, accelerator_resource, describe_accelerator, placement
from modelpilot.resources.revision import canonical_serving_template, serving_revision
from modelpilot.resources.scaledobject import SCALEDOBJECT_API_VERSION, SCALEDOBJECT_KIND, build_scaledobject
from modelpilot.resources.service import build_services, service_name, service_url


def desired_children(
    spec: ModelDeploymentSpec,
    *,
    name: str,
    namespace: str,
    owner: Mapping[str, Any],
    settings: BuildSettings | None = None,
) -> list[Obj]:
    """All children of the steady state, in apply order: stable Deployment, Services
    (`<name>`, `<name>-stable`, `<name>-canary`), then the HPA when autoscaling is on CPU without
    scale to zero (the ScaledObject otherwise depends on the tick: control/children.py)."""
    settings = settings or BuildSettings()
    children = [
        build_deployment(
            spec,
            name=name,
            namespace=namespace,
            owner=owner,
            settings=settings,
            track="stable",
            replicas=desired_replicas(spec),
        ),
        *build_services(spec, name=name, namespace=namespace, owner=owner, settings=settings),
    ]
    hpa = build_hpa(spec, name=name, namespace=namespace, owner=owner, settings=settings)
    if hpa is not None:
        children.append(hpa)
    return children


def unwanted_children(spec: ModelDeploymentSpec, *, name: str) -> list[tuple[str, str, str]]:
    """(apiVersion, kind, name) of owned children that must NOT exist in the steady state and
    should be deleted if found: the HPA unless CPU autoscaling without scale to zero is set, the
    ScaledObject unless KEDA scales the track."""
    scaling = spec.autoscaling
    unwanted = []
    if scaling is None or scaling.keda:
        unwanted.append(("autoscaling/v2", "HorizontalPodAutoscaler", name))
    if scaling is None or not scaling.keda:
        unwanted.append((SCALEDOBJECT_API_VERSION, SCALEDOBJECT_KIND, name))
    return unwanted


__all__ = [
    "ANNOTATION_ACTION",
    "ANNOTATION_REVISION",
    "DEFAULT_RUNTIME_IMAGE",
    "FIELD_MANAGER",
    "LABEL_MANAGED_BY",
    "LABEL_NAME",
    "LABEL_TRACK",
    "LABEL_VERSION",
    "MANAGED_BY",
    "SCALEDOBJECT_API_VERSION",
    "SCALEDOBJECT_KIND",
    "STORAGE_SECRET_KEYS",
    "VENDOR_RESOURCES",
    "BuildSettings",
    "accelerator_resource",
    "build_deployment",
    "build_hpa",
    "build_pod_template",
    "build_scaledobject",
    "build_services",
    "canonical_serving_template",
    "common_labels",
    "deployment_name",
    "describe_accelerator",
    "desired_children",
    "desired_replicas",
    "label_value",
    "owner_reference",
    "placement",
    "pod_labels",
    "scale_selector",
    "selector_labels",
    "selector_string",
    "service_name",
    "service_url",
    "serving_revision",
    "unwanted_children",
]
