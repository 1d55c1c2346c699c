"""The serving revision: a short hash of the canonical serving template.

Only what the user wrote about *what is served* counts: model, runtime, resources, accelerator.
Not replicas, autoscaling, rollout or paused (they change how, not what), not server-filled
fields, not operator settings. The template is dumped with defaults *excluded*, so

- writing a default explicitly (`port: 8080`) or leaving it out gives the same hash, as does a
  kubectl round-trip that drops empty fields;
- a later operator version that adds a field with a default does not change existing hashes,
  so an operator upgrade starts no spurious rollout.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from modelpilot.api.models import ModelDeploymentSpec

REVISION_LENGTH = 10
SERVING_FIELDS = ("model", "runtime", "resources", "accelerator")


def _prune(value: Any) -> Any:
    """Drop empty objects and lists: `nodeSelector: {}` means the same as no nodeSelector."""
    if isinstance(value, dict):
        pruned = {k: _prune(v) for k, v in value.items()}
        return {k: v for k, v in pruned.items() if v not in ({}, [], None)}
    if isinstance(value, list):
        return [_prune(v) for v in value]
    return value


def canonical_serving_template(spec: ModelDeploymentSpec) -> dict[str, Any]:
    """The canonical serving template as a JSON-able dict (camelCase, defaults left out)."""
    data = spec.model_dump(
        mode="json", by_alias=True, include=set(SERVING_FIELDS), exclude_defaults=True, exclude_none=True
    )
    resources = data.get("resources", {})
    for kind in ("requests", "limits"):
        if kind in resources:
            # 1 and "1" are the same quantity.
            resources[kind] = {k: str(v) for k, v in resources[kind].items()}
    return _prune(data)


def serving_revision(spec: ModelDeploymentSpec) -> str:
    """A 10-hex-digit hash of `canonical_serving_template(spec)`; equal templates, equal hashes."""
    text = json.dumps(canonical_serving_template(spec), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:REVISION_LENGTH]
