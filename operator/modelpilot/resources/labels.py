"""Labels, selectors and annotations of the children (docs/architecture.md)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping

from modelpilot.api.models import Track

LABEL_NAME = "app.kubernetes.io/name"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY = "modelpilot"
LABEL_TRACK = "modelpilot.io/track"
LABEL_VERSION = "modelpilot.io/version"
ANNOTATION_REVISION = "modelpilot.io/revision"
# On a BatchPrediction's Jobs and pods (instead of app.kubernetes.io/name: never serving pods).
LABEL_BATCH = "modelpilot.io/batch-prediction"
ANNOTATION_ACTION = "modelpilot.io/action"
# On the canary Deployment: the weight its replicas were sized for (for people and tests).
ANNOTATION_WEIGHT = "modelpilot.io/canary-weight"

_INVALID = re.compile(r"[^A-Za-z0-9_.-]+")
_MAX = 63


def label_value(text: str) -> str:
    """Turn free text (a model version) into a valid label value: invalid characters become '-',
    ends are trimmed to alphanumerics, and anything too long keeps a prefix plus a short hash so
    distinct versions stay distinct."""
    value = _INVALID.sub("-", text).strip("-_.")
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    if not value:
        return digest
    if len(value) > _MAX:
        value = value[: _MAX - 9].rstrip("-_.") + "-" + digest
    return value


def common_labels(name: str) -> dict[str, str]:
    """Labels on every child object."""
    return {LABEL_NAME: name, LABEL_MANAGED_BY: MANAGED_BY}


def selector_labels(name: str, track: Track | None = None) -> dict[str, str]:
    """Pod selector. Never includes the version: Deployment selectors are immutable. managed-by is
    included so that other workloads labelled app.kubernetes.io/name=<name> are never selected."""
    labels = common_labels(name)
    if track is not None:
        labels[LABEL_TRACK] = track
    return labels


def pod_labels(name: str, track: Track, version: str) -> dict[str, str]:
    labels = selector_labels(name, track)
    labels[LABEL_VERSION] = label_value(version)
    return labels


def selector_string(labels: Mapping[str, str]) -> str:
    """`a=b,c=d` (sorted) for list calls and `status.selector` (the scale subresource)."""
    return ",".join(f"{key}={value}" for key, value in sorted(labels.items()))


def scale_selector(name: str) -> str:
    """Value for `status.selector`: the stable pods, which `spec.replicas` scales."""
    return selector_string(selector_labels(name, "stable"))
