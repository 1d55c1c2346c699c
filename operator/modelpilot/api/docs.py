"""Generate docs/api.md, the field-by-field API reference, from the models and the CRD schema.

    python -m modelpilot.api.docs            # write docs/api.md
    python -m modelpilot.api.docs --check    # exit 1 when docs/api.md is stale

Types, validation and descriptions come from the generated CRD schema (what the API server
enforces), defaults from the pydantic models (what the operator fills in), so the page cannot
drift from either.
"""

from __future__ import annotations

import argparse
import json
import sys
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from modelpilot.api import batch, crd, models
from modelpilot.resources.common import DEFAULT_RUNTIME_IMAGE, MODEL_DIR, PVC_MOUNT
from modelpilot.resources.deployment import STORAGE_SECRET_KEYS
from modelpilot.resources.labels import (
    ANNOTATION_REVISION,
    LABEL_BATCH,
    LABEL_MANAGED_BY,
    LABEL_NAME,
    LABEL_TRACK,
    LABEL_VERSION,
    MANAGED_BY,
)
from modelpilot.resources.placement import VENDOR_RESOURCES

Section = tuple[str, type[BaseModel], dict[str, Any]]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _code(text: str) -> str:
    return f"`{text}`"


def _type_text(schema: dict[str, Any]) -> str:
    if schema.get("x-kubernetes-int-or-string"):
        return "quantity (int or string)"
    kind = schema.get("type", "any")
    if kind == "array":
        return f"[]{_type_text(schema['items'])}"
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        return f"map[string]{_type_text(schema['additionalProperties'])}"
    if schema.get("format") == "date-time":
        return "string (RFC 3339 time)"
    return str(kind)


def _validation_text(schema: dict[str, Any], required: bool) -> str:
    parts: list[str] = []
    if required:
        parts.append("**required**")
    if "enum" in schema:
        parts.append("one of " + ", ".join(_code(str(v)) for v in schema["enum"]))
    low, high = schema.get("minimum"), schema.get("maximum")
    if low is not None and high is not None:
        parts.append(f"{low}..{high}")
    elif low is not None:
        parts.append(f">= {low}")
    elif high is not None:
        parts.append(f"<= {high}")
    if schema.get("minLength", 0) > 1:
        parts.append(f"length >= {schema['minLength']}")
    if "maxLength" in schema:
        parts.append(f"length <= {schema['maxLength']}")
    if "minItems" in schema:
        parts.append(f">= {schema['minItems']} items")
    if "maxItems" in schema:
        parts.append(f"<= {schema['maxItems']} items")
    if "maxProperties" in schema:
        parts.append(f"<= {schema['maxProperties']} entries")
    if "pattern" in schema:
        parts.append("pattern " + _code(schema["pattern"]))
    items = schema.get("items", {})
    if "pattern" in items:
        parts.append("items match " + _code(items["pattern"]))
    if schema.get("x-kubernetes-list-type") == "map":
        parts.append("unique by " + ", ".join(schema["x-kubernetes-list-map-keys"]))
    parts.extend(rule["message"] for rule in schema.get("x-kubernetes-validations", []))
    return "; ".join(parts)


def _default_text(info: FieldInfo) -> str:
    if info.is_required():
        return ""
    value = info.get_default(call_default_factory=True)
    if value is None:
        return "—"
    if isinstance(value, BaseModel):
        return "(see below)"
    if isinstance(value, list) and value and isinstance(value[0], BaseModel):
        dumped = [v.model_dump(mode="json", by_alias=True, exclude_none=True) for v in value]
        return _code(json.dumps(dumped, separators=(", ", ": ")))
    if value == "":
        return "empty"
    if isinstance(value, bool):
        return _code(str(value).lower())
    if isinstance(value, list | dict):
        return _code(json.dumps(value)) if value else "empty"
    return _code(str(value))


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    """The model inside X, X | None, list[X] or Annotated[...] (None for scalars)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType, list, typing.Annotated):
        for arg in typing.get_args(annotation):
            found = _inner_model(arg)
            if found is not None:
                return found
    return None


def _section(path: str, model: type[BaseModel], schema: dict[str, Any], out: list[str], queue: list[Section]) -> None:
    out.append(f"### `{path}`")
    out.append("")
    out.append(_cell(schema.get("description", "")))
    out.append("")
    object_rules = [rule["message"] for rule in schema.get("x-kubernetes-validations", [])]
    if object_rules:
        out.append("Rules: " + "; ".join(_cell(m) for m in object_rules) + ".")
        out.append("")
    props = schema.get("properties", {})
    if not props:
        out.append("No fields: an empty object `{}` selects this option.")
        out.append("")
        return
    out.append("| Field | Type | Default | Validation | Description |")
    out.append("|---|---|---|---|---|")
    required = set(schema.get("required", []))
    for name, info in model.model_fields.items():
        alias = info.alias or name
        prop = props[alias]
        inner = _inner_model(info.annotation)
        if inner is not None and prop.get("type") == "object":
            # The object's own rules are listed in its section, not in this row.
            prop = {k: v for k, v in prop.items() if k != "x-kubernetes-validations"}
        out.append(
            "| "
            + " | ".join(
                [
                    _code(alias),
                    _cell(_type_text(prop)),
                    _cell(_default_text(info)),
                    _cell(_validation_text(prop, alias in required)),
                    _cell(prop.get("description", "")),
                ]
            )
            + " |"
        )
        if inner is not None:
            nested = prop["items"] if prop.get("type") == "array" else props[alias]
            queue.append((f"{path}.{alias}" + ("[]" if prop.get("type") == "array" else ""), inner, nested))
    out.append("")


def _walk(root: str, model: type[BaseModel], schema: dict[str, Any], out: list[str]) -> None:
    # Depth-first, in field order: each object's section is followed by those of its fields.
    children: list[Section] = []
    _section(root, model, schema, out, children)
    for path, sub_model, sub_schema in children:
        _walk(path, sub_model, sub_schema, out)


INTRO = f"""\
# ModelDeployment API reference

<!-- Generated by `python -m modelpilot.api.docs` from operator/modelpilot/api/models.py; do not edit. -->

`apiVersion: {models.API_VERSION}`, `kind: {models.KIND}`, plural `{models.PLURAL}`, short name
`{models.SHORT_NAMES[0]}`, namespaced. Subresources: `status`, and `scale` (`kubectl scale mdep NAME
--replicas N` sets `spec.replicas`; the selector is `status.selector`). `kubectl get mdep` shows MODEL
(spec.model.version), STABLE, CANARY, WEIGHT, PHASE and AGE; `-o wide` adds FORMAT and URL.

**Defaults are applied by the operator, not by the API server.** The CRD schema has no `default:`
keys, so the object you applied stays exactly what you wrote and GitOps tools see no diff. The
Default column below is what the operator uses when a field is absent.

**Validation happens at admission.** Types, enums, bounds and patterns are in the schema; rules the
schema cannot express are CEL rules whose messages are listed in the Validation column (field
rules) or under "Rules" (rules on an object). The operator applies the same checks when it parses a
spec and reports a failure as `Ready=False, reason=InvalidSpec`.

`metadata.name` must be a DNS-1035 label of at most {models.MAX_NAME_LENGTH} characters (children are
named `<name>`, `<name>-stable` and `<name>-canary`).

Durations (`interval`, `initialDelay`, `progressDeadline`) are whole numbers with a unit, `ms`, `s`,
`m` or `h`, optionally combined: `500ms`, `30s`, `10m`, `1h30m`; at most `168h`.

## Example

```yaml
apiVersion: {models.API_VERSION}
kind: {models.KIND}
metadata: {{name: fraud, namespace: ml}}
spec:
  model: {{version: "2026-11-02", uri: s3://models/fraud/v7, format: sklearn, storageSecretRef: {{name: s3}}}}
  resources: {{requests: {{cpu: 500m, memory: 1Gi}}, limits: {{memory: 2Gi}}}}
  accelerator: {{vendor: nvidia, count: 1, product: NVIDIA-A100-SXM4-80GB}}
  autoscaling: {{minReplicas: 1, maxReplicas: 10, targetCPUUtilization: 70}}
  rollout:
    canary:
      steps: [10, 25, 50]
      analysis:
        metrics:
          - {{name: error-rate, max: 1}}
          - {{name: latency-p99, max: 500}}
          - {{name: slower-than-stable, template: latency-p99, compareToStable: {{maxRatio: 1.2}}}}
```

## What the operator creates

- Deployment `<name>` (stable; `<name>-canary` during a rollout), Services `<name>`,
  `<name>-stable`, `<name>-canary` (port 80 -> container port `http`), and HorizontalPodAutoscaler
  `<name>` when `autoscaling` is set. All carry `{LABEL_NAME}=<name>` and
  `{LABEL_MANAGED_BY}={MANAGED_BY}` and an owner reference to the ModelDeployment.
- Pods are labelled `{LABEL_TRACK}=stable|canary` and `{LABEL_VERSION}=<spec.model.version, sanitised>`,
  annotated `{ANNOTATION_REVISION}=<hash of model, runtime, resources and accelerator>`, and meet the
  Pod Security "restricted" profile (non-root uid 1000, read-only root filesystem, no privilege
  escalation, all capabilities dropped, RuntimeDefault seccomp, no service-account token).
- The model is downloaded by an init container (`modelpilot fetch URI {MODEL_DIR}`) into an emptyDir
  mounted read-only at `{MODEL_DIR}` in the server; a `pvc://CLAIM/PATH` URI instead mounts the claim
  read-only at `{PVC_MOUNT}` and the server reads `{PVC_MOUNT}/PATH`.
- `storageSecretRef` keys passed to the init container only (each an env variable of the same
  name; absent keys are ignored, except the two AWS keys for `s3://` URIs):
  {", ".join(_code(k) for k in STORAGE_SECRET_KEYS)}.
- The server container gets `MODELPILOT_MODEL_DEPLOYMENT`, `MODELPILOT_MODEL_NAME` (both the
  ModelDeployment name), `MODELPILOT_MODEL_VERSION`, `MODELPILOT_MODEL_URI`, `MODELPILOT_MODEL_FORMAT`,
  `MODELPILOT_MODEL_DIR`, `MODELPILOT_NAMESPACE`, `MODELPILOT_PORT` and `MODELPILOT_TRACK`, then
  `runtime.env`. It must answer `GET /v2/health/ready` and `GET /v2/health/live` on the port.
- GPUs: the vendor resource ({", ".join(f"{v} -> {_code(r)}" for v, r in VENDOR_RESOURCES.items())}, or
  `accelerator.resourceName`) in requests and limits, a node selector on the product label (operator
  setting, default `nvidia.com/gpu.product`) when `product` is set, and a toleration of the vendor
  taint (`<resource>:NoSchedule`, operator Exists).
- Default runtime image: `{DEFAULT_RUNTIME_IMAGE}` (operator setting), run as
  `modelpilot serve --model-dir DIR --port PORT [runtime.args...]`.
"""


BATCH_INTRO = f"""\
# BatchPrediction API reference

`apiVersion: {models.API_VERSION}`, `kind: {batch.BATCH_KIND}`, plural `{batch.BATCH_PLURAL}`, short name
`{batch.BATCH_SHORT_NAMES[0]}`, namespaced. Subresource: `status`. `kubectl get bp` shows MODEL, VERSION,
PROGRESS (succeeded shards of all), ROWS (rows written), PHASE and AGE; `-o wide` adds SCHEDULE and
FAILED (rows sent to errors/). Defaults and validation work as for ModelDeployment. `metadata.name` is a
DNS-1035 label of at most {batch.MAX_BATCH_NAME_LENGTH} characters. How runs work: [batch.md](batch.md).

## What the operator creates

- Without `schedule`: one Indexed Job `<name>` (completionMode Indexed, `completions` = shards,
  `backoffLimitPerIndex` = backoffLimitPerShard, a podFailurePolicy that fails a shard over its
  failed-row limit without retrying it and fails the Job when the run cannot start), created once
  with the model resolved at that moment.
- With `schedule`: a CronJob `<name>` (concurrencyPolicy Forbid) whose Jobs are the same Indexed
  Job; its template is updated when the referenced ModelDeployment's stable version changes.
- Jobs, CronJob and pods carry `{LABEL_MANAGED_BY}={MANAGED_BY}` and `{LABEL_BATCH}=<name>` (not
  `{LABEL_NAME}`: batch pods are never a ModelDeployment's serving pods) and an owner reference
  (the CronJob's Jobs are owned by the CronJob). The pods are the serving pods of the same model
  (restricted security, model-fetch init container, GPU placement) with the container `batch`
  running `modelpilot batch`; `storageSecretRef` keys go to that container (it reads and writes
  the data), `model.storageSecretRef` keys to the init container only.
"""


def render_docs() -> str:
    out: list[str] = [INTRO, "## Spec", ""]
    _walk("spec", models.ModelDeploymentSpec, crd.model_schema(models.ModelDeploymentSpec), out)
    out += ["## Status", "", "Written only by the operator, through the status subresource.", ""]
    _walk("status", models.ModelDeploymentStatus, crd.model_schema(models.ModelDeploymentStatus), out)
    out += [BATCH_INTRO, "## BatchPrediction spec", ""]
    _walk("spec", batch.BatchPredictionSpec, crd.model_schema(batch.BatchPredictionSpec), out)
    out += ["## BatchPrediction status", "", "Written only by the operator, through the status subresource.", ""]
    _walk("status", batch.BatchPredictionStatus, crd.model_schema(batch.BatchPredictionStatus), out)
    return "\n".join(out).rstrip() + "\n"


def default_path() -> Path:
    return crd.default_path().parent.parent / "docs" / "api.md"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m modelpilot.api.docs", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    parser.add_argument("--output", type=Path, default=None, help="where (default docs/api.md)")
    args = parser.parse_args(argv)
    path = args.output or default_path()
    text = render_docs()
    if args.check:
        if path.is_file() and path.read_text() == text:
            print(f"{path}: up to date")
            return 0
        print(f"{path} is stale or missing: regenerate it with `python -m modelpilot.api.docs`", file=sys.stderr)
        return 1
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
