"""GPU placement: device-plugin resources, node selector on the product label, vendor taint."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from modelpilot.api.models import Accelerator, Vendor
from modelpilot.resources.common import BuildSettings

# The extended resource each vendor's device plugin advertises. Nodes with these devices are
# commonly tainted `<resource>:NoSchedule` (GKE, AKS, the GPU operators), so the same name is the
# taint key tolerated.
VENDOR_RESOURCES: dict[Vendor, str] = {
    "nvidia": "nvidia.com/gpu",
    "amd": "amd.com/gpu",
    "intel": "gpu.intel.com/i915",
}


@dataclass(frozen=True)
class Placement:
    """What an accelerator adds to a pod: container resources, node selector and tolerations."""

    resources: dict[str, str] = field(default_factory=dict)
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: list[dict[str, Any]] = field(default_factory=list)


def accelerator_resource(accelerator: Accelerator) -> str:
    """The extended resource requested: the override (e.g. a MIG profile) or the vendor default."""
    return accelerator.resource_name or VENDOR_RESOURCES[accelerator.vendor]


def placement(accelerator: Accelerator | None, settings: BuildSettings) -> Placement:
    """Placement for an accelerator (an empty Placement for CPU-only models).

    - resources: `<resource>: <count>` (put in both requests and limits: extended resources
      cannot be overcommitted and Kubernetes requires them equal);
    - node selector: the user's labels, then `<product label>: <product>` when a product is set
      (the product wins on a clash: it is the more specific statement);
    - tolerations: `<vendor resource>` Exists/NoSchedule, plus the override resource name when
      it differs, then the user's tolerations unchanged.
    """
    if accelerator is None:
        return Placement()
    resource = accelerator_resource(accelerator)
    node_selector = dict(accelerator.node_selector)
    if accelerator.product:
        node_selector[settings.gpu_product_label] = accelerator.product
    taint_keys = [VENDOR_RESOURCES[accelerator.vendor]]
    if resource not in taint_keys:
        taint_keys.append(resource)
    tolerations: list[dict[str, Any]] = [
        {"key": key, "operator": "Exists", "effect": "NoSchedule"} for key in taint_keys
    ]
    for toleration in accelerator.tolerations:
        item = toleration.model_dump(by_alias=True, exclude_none=True)
        if item not in tolerations:
            tolerations.append(item)
    return Placement(
        resources={resource: str(accelerator.count)},
        node_selector=node_selector,
        tolerations=tolerations,
    )


def describe_accelerator(accelerator: Accelerator, settings: BuildSettings) -> str:
    """Human text for events and the InsufficientAccelerator condition, e.g.
    `1 x nvidia.com/gpu on nodes with nvidia.com/gpu.product=NVIDIA-A100-SXM4-80GB`."""
    text = f"{accelerator.count} x {accelerator_resource(accelerator)}"
    if accelerator.product:
        text += f" on nodes with {settings.gpu_product_label}={accelerator.product}"
    return text
