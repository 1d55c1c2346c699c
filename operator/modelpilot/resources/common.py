"""What every builder shares: settings, owner references, object metadata, quantities."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from modelpilot.api.models import ModelFormat
from modelpilot.fetch_settings import DEFAULT_MAX_MODEL_BYTES

DEFAULT_RUNTIME_IMAGE = "ghcr.io/modelpilot/runtime:0.1.0"
MODEL_DIR = "/mnt/models"  # emptyDir the init container downloads into; read-only for the server
PVC_MOUNT = "/mnt/pvc"  # where a pvc:// claim is mounted read-only
TMP_DIR = "/tmp"  # the only other writable path (the root filesystem is read-only)
FIELD_MANAGER = "modelpilot"

Obj = dict[str, Any]


@dataclass(frozen=True)
class ScalingSettings:
    """Operator-wide inputs of the ScaledObject (docs/operations.md)."""

    prometheus_url: str = "http://prometheus.monitoring.svc:9090"
    scrape_interval: float = 15.0
    polling_seconds: int = 5  # how often KEDA checks whether a track at zero has demand
    cooldown_seconds: int = 30  # KEDA's own wait after the last demand before it removes the last pod
    scale_down_stabilization_seconds: int = 300  # the HPA's scale-in window
    # The activator's Service, which routes of tracks at zero point to (namespace/name:port).
    activator_namespace: str = "modelpilot-system"
    activator_service: str = "modelpilot-activator"
    activator_port: int = 80


@dataclass(frozen=True)
class BuildSettings:
    """Operator-wide inputs of the builders (from `modelpilot.settings.OperatorSettings`).

    Changing one of these changes children but never the serving revision (the revision hashes
    only the user's spec), so an operator upgrade rolls pods but never starts a canary.
    """

    gpu_product_label: str = "nvidia.com/gpu.product"
    runtime_image: str = DEFAULT_RUNTIME_IMAGE
    # Per-format overrides of runtime_image, e.g. {"onnx": "ghcr.io/modelpilot/runtime-onnx:0.1.0"}.
    runtime_images: Mapping[str, str] = field(default_factory=dict)
    # Image of the model-fetch init container when the serving image is a custom one (format
    # custom); otherwise the init container uses the serving image itself.
    fetch_image: str | None = None
    cluster_domain: str = "cluster.local"
    run_as_user: int = 1000
    # The fetch step's cap (also the model volume's sizeLimit) and its link-local switch; at their
    # defaults (the fetch step's own) no env is set, so the pod template stays as it always was.
    max_model_bytes: int = DEFAULT_MAX_MODEL_BYTES
    allow_link_local: bool = False
    revision_history_limit: int = 3
    scaling: ScalingSettings = field(default_factory=ScalingSettings)

    def runtime_image_for(self, model_format: ModelFormat) -> str:
        return self.runtime_images.get(model_format, self.runtime_image)


def owner_reference(owner: Mapping[str, Any]) -> Obj:
    """A controller owner reference to the ModelDeployment: garbage collection deletes children
    (also while the operator is down) without any finalizer."""
    missing = [k for k in ("apiVersion", "kind", "name", "uid") if not owner.get(k)]
    if missing:
        raise ValueError(f"owner reference lacks {', '.join(missing)}")
    return {
        "apiVersion": str(owner["apiVersion"]),
        "kind": str(owner["kind"]),
        "name": str(owner["name"]),
        "uid": str(owner["uid"]),
        "controller": True,
        "blockOwnerDeletion": True,
    }


def object_meta(
    name: str,
    namespace: str,
    labels: Mapping[str, str],
    owner: Mapping[str, Any],
    annotations: Mapping[str, str] | None = None,
) -> Obj:
    meta: Obj = {"name": name, "namespace": namespace, "labels": dict(labels)}
    if annotations:
        meta["annotations"] = dict(annotations)
    meta["ownerReferences"] = [owner_reference(owner)]
    return meta


def quantity(value: int | str) -> str:
    """Quantities as strings: one spelling for 1 and "1", so goldens and hashes are stable."""
    return str(value)
