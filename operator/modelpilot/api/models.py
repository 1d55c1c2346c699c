"""pydantic v2 models of the `ModelDeployment` API (modelpilot.io/v1alpha1), spec and status.

These models are the single source of the API: `modelpilot.api.crd` generates the CRD schema from
them (every field description becomes `kubectl explain` text) and the operator parses objects with
them. Two rules shape the code:

- Defaults live here, never in the CRD schema. The operator fills them when it parses a spec, so
  the object a user applied stays byte-for-byte what GitOps tools compare against.
- Every check the CRD makes with CEL (`x-kubernetes-validations`) is mirrored by a validator here
  with the *same message*, so a cluster that skipped admission checks (or a unit test) gets the
  same answer from the operator, which then reports `Ready=False, reason=InvalidSpec`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from itertools import pairwise
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from modelpilot.api.durations import DURATION_PATTERN, is_duration, parse_duration

GROUP = "modelpilot.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "ModelDeployment"
PLURAL = "modeldeployments"
SINGULAR = "modeldeployment"
SHORT_NAMES = ("mdep",)

# --- patterns shared by the schema and the parser (RE2-compatible: the API server uses Go regexp) ---
DNS1123_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS1123_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
# Child Services are DNS-1035 labels (must start with a letter) and append "-canary" (7 chars).
NAME_PATTERN = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
MAX_NAME_LENGTH = 56
LABEL_VALUE = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
HOSTNAME = r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
# Extended resource names are domain-prefixed, e.g. nvidia.com/gpu or nvidia.com/mig-1g.10gb.
EXTENDED_RESOURCE = (
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)+/[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)
ENV_NAME = r"^[-._a-zA-Z][-._a-zA-Z0-9]*$"
# The Kubernetes resource.Quantity syntax, as kubebuilder emits it for int-or-string quantities.
QUANTITY = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
URI_SCHEMES = ("file", "http", "https", "s3", "gs", "pvc")
URI_PATTERN = r"^(file|https?|s3|gs|pvc)://.+$"
PVC_URI_PATTERN = r"^pvc://[a-z0-9]([-a-z0-9]*[a-z0-9])?(/.*)?$"

ModelFormat = Literal["sklearn", "xgboost", "onnx", "custom"]
Vendor = Literal["nvidia", "amd", "intel"]
Track = Literal["stable", "canary"]
BUILTIN_METRICS = ("error-rate", "latency-p99")
# Metric providers an analysis can name; each has a module under modelpilot/analysis/ registered in
# modelpilot.analysis.providers (a unit test keeps the two in step).
METRIC_PROVIDERS = ("prometheus",)

# The status enums, defined once: the state machine, the status builder and the CRD use these.
Phase = Literal["Pending", "Progressing", "Ready", "Degraded", "Failed"]
CanaryPhase = Literal["Progressing", "Paused", "Promoting", "RolledBack"]
Verdict = Literal["Pass", "Fail", "Inconclusive", "Error"]
PausedBy = Literal["spec", "inconclusive", "provider-error"]
MetricProvider = Literal["prometheus"]

# Env vars the operator sets on the serving container; users may not set them (see Runtime.env).
RESERVED_ENV = (
    "MODELPILOT_MODEL_DEPLOYMENT",
    "MODELPILOT_MODEL_NAME",
    "MODELPILOT_MODEL_VERSION",
    "MODELPILOT_MODEL_URI",
    "MODELPILOT_MODEL_FORMAT",
    "MODELPILOT_MODEL_DIR",
    "MODELPILOT_NAMESPACE",
    "MODELPILOT_PORT",
    "MODELPILOT_TRACK",
    "MODELPILOT_REVISION",
)


class SpecError(ValueError):
    """An invalid ModelDeployment: `str(err)` is one readable line naming every bad field path."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.problems = problems or [message]


def _rules(*pairs: tuple[str, str]) -> dict[str, Any]:
    """JSON-schema extra that becomes `x-kubernetes-validations` (CEL rule + readable message)."""
    return {"x-kubernetes-validations": [{"rule": rule, "message": message} for rule, message in pairs]}


def _duration_rules(path: str, minimum: str | None = None) -> dict[str, Any]:
    """CEL rules for a duration string: its syntax, then bounds (guarded so a bad string gives one
    readable message instead of a CEL evaluation error)."""
    pattern = DURATION_PATTERN  # no backslashes: safe inside a CEL string literal
    guard = f"!self.matches('{pattern}')"
    pairs = [(f"self.matches('{pattern}')", f"{path} must be a duration with a unit, e.g. 30s, 5m or 1h30m")]
    if minimum:
        pairs.append((f"{guard} || duration(self) >= duration('{minimum}')", f"{path} must be at least {minimum}"))
    pairs.append((f"{guard} || duration(self) <= duration('168h')", f"{path} must be at most 168h"))
    return _rules(*pairs)


def _check_duration(path: str, value: str, minimum: float = 0.0, minimum_text: str = "") -> str:
    """Parser-side twin of `_duration_rules`, with the same messages."""
    if not is_duration(value):
        raise ValueError(f"{path} must be a duration with a unit, e.g. 30s, 5m or 1h30m")
    try:
        seconds = parse_duration(value)
    except ValueError:
        raise ValueError(f"{path} must be at most 168h") from None
    if seconds < minimum:
        raise ValueError(f"{path} must be at least {minimum_text}")
    return value


def _validate_quantity(value: Any) -> int | str:
    # bool is an int in Python but not in JSON; reject it like the API server would.
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError("must be a Kubernetes quantity: an integer or a string such as 500m or 1Gi")
    if isinstance(value, str) and not re.match(QUANTITY, value):
        raise ValueError(f"{value!r} is not a Kubernetes quantity (e.g. 500m, 2, 1Gi)")
    return value


Quantity = Annotated[
    int | str,
    PlainValidator(_validate_quantity),
    WithJsonSchema({"anyOf": [{"type": "integer"}, {"type": "string", "pattern": QUANTITY}]}),
]
Duration = Annotated[str, Field(max_length=32)]


class _Model(BaseModel):
    """Base of every spec model: camelCase on the wire, unknown fields rejected (typos fail loudly)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class _StatusModel(BaseModel):
    """Base of status models: camelCase, unknown fields ignored (status is the operator's own)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


# ------------------------------------------------------------------------------------------- model


class SecretRef(_Model):
    """A reference to a Secret in the ModelDeployment's own namespace."""

    name: str = Field(
        description="Name of the Secret (same namespace; cross-namespace references are not allowed).",
        min_length=1,
        max_length=253,
        pattern=DNS1123_SUBDOMAIN,
    )


class ModelSource(_Model):
    """Which model to serve: its version label, where its files are and how to load them."""

    version: str = Field(
        description=(
            "Free-form label of this model version, e.g. a date or a registry tag. Changing it (or the "
            "uri) starts a rollout. Shown in status, printer columns and the pods' modelpilot.io/version "
            "label (sanitised to a valid label value)."
        ),
        min_length=1,
        max_length=128,
    )
    uri: str = Field(
        description=(
            "Where the model files are: file://, http://, https://, s3://BUCKET/KEY, gs://BUCKET/KEY, or "
            "pvc://CLAIM/PATH (a PersistentVolumeClaim in the same namespace, mounted read-only instead "
            "of downloaded)."
        ),
        min_length=1,
        max_length=2048,
        json_schema_extra=_rules(
            (
                f"self.matches('{URI_PATTERN}')",
                "model.uri must start with file://, http://, https://, s3://, gs:// or pvc://",
            ),
            (
                f"!self.startsWith('pvc://') || self.matches('{PVC_URI_PATTERN}')",
                "model.uri pvc:// must name a PersistentVolumeClaim: pvc://<claim-name>/<path>",
            ),
        ),
    )
    format: ModelFormat = Field(
        description=(
            "How the runtime loads the model: sklearn, xgboost, onnx, or custom (custom requires "
            "runtime.image)."
        )
    )
    storage_secret_ref: SecretRef | None = Field(
        default=None,
        description=(
            "Secret with storage credentials, passed only to the model-fetch init container as env "
            "variables from the keys AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (both required for s3:// "
            "URIs), AWS_SESSION_TOKEN, AWS_REGION, AWS_ENDPOINT_URL, GOOGLE_APPLICATION_CREDENTIALS_JSON "
            "and HTTP_AUTHORIZATION (optional)."
        ),
    )

    @field_validator("uri")
    @classmethod
    def _check_uri(cls, uri: str) -> str:
        if not re.match(URI_PATTERN, uri):
            raise ValueError("model.uri must start with file://, http://, https://, s3://, gs:// or pvc://")
        if uri.startswith("pvc://") and not re.match(PVC_URI_PATTERN, uri):
            raise ValueError("model.uri pvc:// must name a PersistentVolumeClaim: pvc://<claim-name>/<path>")
        return uri


# ----------------------------------------------------------------------------------------- runtime


class EnvVar(_Model):
    """A literal environment variable for the serving container."""

    name: str = Field(
        description="Variable name. Names the operator sets itself (MODELPILOT_MODEL_*, MODELPILOT_PORT, ...) "
        "are rejected.",
        min_length=1,
        max_length=253,
        pattern=ENV_NAME,
    )
    value: str = Field(default="", description="Literal value (default empty).", max_length=32768)


_RESERVED_ENV_CEL = "[" + ", ".join(f"'{n}'" for n in RESERVED_ENV) + "]"


class Runtime(_Model):
    """The model-server container. Everything is optional: the default runtime image serves the
    sklearn, xgboost and onnx formats over Open Inference Protocol v2."""

    model_config = ConfigDict(
        json_schema_extra=_rules(
            (
                f"!has(self.env) || self.env.all(e, !(e.name in {_RESERVED_ENV_CEL}))",
                "runtime.env must not set variables the operator sets (MODELPILOT_MODEL_*, MODELPILOT_PORT, "
                "MODELPILOT_TRACK, MODELPILOT_NAMESPACE)",
            ),
        )
    )

    image: str | None = Field(
        default=None,
        description=(
            "Container image of the model server. Default: the operator's runtime image for the model "
            "format. A custom image gets the same env variables and must serve the health endpoints "
            "/v2/health/live and /v2/health/ready on the port."
        ),
        min_length=1,
        max_length=512,
    )
    port: int = Field(default=8080, description="Container port the server listens on (default 8080).", ge=1, le=65535)
    env: list[EnvVar] = Field(
        default_factory=list,
        description="Extra environment variables for the serving container, in order.",
        max_length=64,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    args: list[Annotated[str, Field(max_length=1024)]] = Field(
        default_factory=list,
        description=(
            "Extra arguments: appended after `serve --model-dir DIR --port PORT` for the default runtime, "
            "the whole argument list for a custom image."
        ),
        max_length=64,
    )

    @model_validator(mode="after")
    def _check_env(self) -> Runtime:
        if any(e.name in RESERVED_ENV for e in self.env):
            raise ValueError(
                "runtime.env must not set variables the operator sets (MODELPILOT_MODEL_*, MODELPILOT_PORT, "
                "MODELPILOT_TRACK, MODELPILOT_NAMESPACE)"
            )
        names = [e.name for e in self.env]
        if len(names) != len(set(names)):
            raise ValueError("runtime.env names must be unique")
        return self


# --------------------------------------------------------------------------------------- resources


class Resources(_Model):
    """CPU and memory for the serving container (GPUs come from `accelerator`)."""

    requests: dict[str, Quantity] = Field(
        default_factory=dict,
        description="Minimum resources, e.g. {cpu: 500m, memory: 1Gi}. CPU requests are needed for autoscaling.",
        max_length=16,
    )
    limits: dict[str, Quantity] = Field(
        default_factory=dict,
        description="Maximum resources, e.g. {memory: 2Gi}.",
        max_length=16,
    )


class Toleration(_Model):
    """A Kubernetes pod toleration (core/v1 Toleration)."""

    model_config = ConfigDict(
        json_schema_extra=_rules(
            (
                "!has(self.operator) || self.operator != 'Exists' || !has(self.value) || self.value == ''",
                "toleration value must be empty when operator is Exists",
            ),
            (
                "!has(self.operator) || self.operator != 'Exists' || (has(self.key) && self.key != '')",
                "toleration with operator Exists needs a key: without one it tolerates every taint",
            ),
        )
    )

    key: str | None = Field(
        default=None, description="Taint key to tolerate (required with operator Exists: an empty key would "
        "tolerate every taint).", max_length=317
    )
    operator: Literal["Exists", "Equal"] | None = Field(
        default=None, description="Exists or Equal (Kubernetes default Equal)."
    )
    value: str | None = Field(default=None, description="Taint value to match with operator Equal.", max_length=63)
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        default=None, description="Taint effect to match; empty matches all effects."
    )
    toleration_seconds: int | None = Field(
        default=None,
        description="For effect NoExecute: how long the pod stays bound after the taint appears.",
        ge=0,
    )

    @model_validator(mode="after")
    def _check_exists(self) -> Toleration:
        if self.operator == "Exists" and self.value:
            raise ValueError("toleration value must be empty when operator is Exists")
        if self.operator == "Exists" and not self.key:
            raise ValueError("toleration with operator Exists needs a key: without one it tolerates every taint")
        return self


class Accelerator(_Model):
    """GPU placement: resource requests and limits for the vendor's device plugin resource, a node
    selector on the GPU product label, and the toleration for the vendor's taint."""

    vendor: Vendor = Field(
        description=(
            "GPU vendor: nvidia (resource nvidia.com/gpu), amd (amd.com/gpu) or intel (gpu.intel.com/i915)."
        )
    )
    count: int = Field(
        default=1,
        description="Number of devices per pod (default 1, at least 1; remove `accelerator` to run on CPU).",
        ge=1,
        le=64,
    )
    product: str | None = Field(
        default=None,
        description=(
            "GPU product, e.g. NVIDIA-A100-SXM4-80GB: pods are pinned to nodes whose product label "
            "(operator setting, default nvidia.com/gpu.product) has this value."
        ),
        min_length=1,
        max_length=63,
        pattern=LABEL_VALUE,
    )
    resource_name: str | None = Field(
        default=None,
        description=(
            "Extended resource name overriding the vendor default, e.g. nvidia.com/mig-1g.10gb for a MIG slice."
        ),
        max_length=253,
        pattern=EXTENDED_RESOURCE,
    )
    node_selector: dict[str, Annotated[str, Field(max_length=63)]] = Field(
        default_factory=dict,
        description="Extra node labels the pods require, merged with the product selector.",
        max_length=32,
    )
    tolerations: list[Toleration] = Field(
        default_factory=list,
        description="Extra tolerations; the toleration for the vendor's NoSchedule taint is always added.",
        max_length=32,
    )


# ------------------------------------------------------------------------------------- autoscaling


class Autoscaling(_Model):
    """A HorizontalPodAutoscaler on CPU utilisation for the stable Deployment; when set, `replicas` is
    ignored and never applied, so the operator does not fight the autoscaler."""

    model_config = ConfigDict(
        json_schema_extra=_rules(
            (
                "!has(self.minReplicas) || self.minReplicas <= self.maxReplicas",
                "autoscaling.minReplicas must be <= maxReplicas",
            ),
        )
    )

    min_replicas: int = Field(default=1, description="Lower bound of replicas (default 1).", ge=1, le=1000)
    max_replicas: int = Field(description="Upper bound of replicas.", ge=1, le=1000)
    target_cpu_utilization: int = Field(
        default=80,
        alias="targetCPUUtilization",
        description="Target average CPU utilisation in percent of the CPU request (default 80).",
        ge=1,
        le=100,
    )

    @model_validator(mode="after")
    def _check_bounds(self) -> Autoscaling:
        if self.min_replicas > self.max_replicas:
            raise ValueError("autoscaling.minReplicas must be <= maxReplicas")
        return self


# ----------------------------------------------------------------------------------------- rollout


class CompareToStable(_Model):
    """Judge the canary against the stable track: the same query runs on both."""

    model_config = ConfigDict(
        json_schema_extra=_rules(
            (
                "has(self.maxRatio) || has(self.maxIncrease)",
                "compareToStable needs maxRatio or maxIncrease",
            ),
        )
    )

    max_ratio: float | None = Field(
        default=None, description="Fail when canary / stable exceeds this ratio, e.g. 1.2.", ge=0
    )
    max_increase: float | None = Field(
        default=None, description="Fail when canary - stable exceeds this amount (in the metric's unit).", ge=0
    )

    @model_validator(mode="after")
    def _check_limit(self) -> CompareToStable:
        if self.max_ratio is None and self.max_increase is None:
            raise ValueError("compareToStable needs maxRatio or maxIncrease")
        return self


_BUILTIN_CEL = "[" + ", ".join(f"'{n}'" for n in BUILTIN_METRICS) + "]"


class Metric(_Model):
    """One analysis check run every interval. A built-in name (error-rate, latency-p99) selects its
    query; otherwise give `template` (a built-in query under another name) or a PromQL `query`."""

    model_config = ConfigDict(
        json_schema_extra=_rules(
            (
                "has(self.max) || has(self.min) || has(self.compareToStable)",
                "a metric needs at least one of max, min or compareToStable",
            ),
            ("!(has(self.query) && has(self.template))", "a metric may set query or template, not both"),
            (
                f"has(self.query) || has(self.template) || self.name in {_BUILTIN_CEL}",
                "a metric that is not built in (error-rate, latency-p99) needs a query or a template",
            ),
            (
                "!has(self.min) || !has(self.max) || self.min <= self.max",
                "a metric's min must be <= its max",
            ),
        )
    )

    name: str = Field(
        description="Unique name (DNS-1123 label); error-rate and latency-p99 are built in.",
        min_length=1,
        max_length=63,
        pattern=DNS1123_LABEL,
    )
    template: Literal["error-rate", "latency-p99"] | None = Field(
        default=None,
        description="Use a built-in query under this metric's name: error-rate (percent 5xx) or latency-p99 (ms).",
    )
    query: str | None = Field(
        default=None,
        description=(
            "PromQL returning one value; placeholders {{namespace}}, {{name}}, {{track}}, {{revision}} and "
            "{{window}} are substituted with validated, quoted values."
        ),
        min_length=1,
        max_length=4096,
    )
    max: float | None = Field(default=None, description="Fail when the canary's value is above this.")
    min: float | None = Field(default=None, description="Fail when the canary's value is below this.")
    compare_to_stable: CompareToStable | None = Field(
        default=None, description="Fail when the canary is worse than stable by a ratio or an amount."
    )

    @model_validator(mode="after")
    def _check_metric(self) -> Metric:
        if self.max is None and self.min is None and self.compare_to_stable is None:
            raise ValueError("a metric needs at least one of max, min or compareToStable")
        if self.query is not None and self.template is not None:
            raise ValueError("a metric may set query or template, not both")
        if self.query is None and self.template is None and self.name not in BUILTIN_METRICS:
            raise ValueError("a metric that is not built in (error-rate, latency-p99) needs a query or a template")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("a metric's min must be <= its max")
        return self


def _default_metrics() -> list[Metric]:
    return [Metric(name="error-rate", max=1), Metric(name="latency-p99", max=500)]


class Analysis(_Model):
    """How each interval's measurements become a verdict: Pass, Fail, Inconclusive or provider error."""

    min_requests: int = Field(
        default=20,
        description="Fewer canary requests than this in the window make the analysis Inconclusive (default 20).",
        ge=0,
    )
    on_inconclusive: Literal["Wait", "Pause", "Fail"] = Field(
        default="Wait",
        description=(
            "What an Inconclusive analysis does: Wait (hold the step and analyse again), Pause (hold the "
            "rollout until a promote, abort or retry action) or Fail (count as a failed check). Default Wait."
        ),
    )
    on_provider_error: Literal["Rollback", "Pause"] = Field(
        default="Rollback",
        description=(
            "What maxProviderErrors consecutive metric-provider errors do: Rollback or Pause. Default Rollback."
        ),
    )
    max_provider_errors: int = Field(
        default=4,
        description="Consecutive provider errors (unreachable, timeout, bad query) tolerated (default 4).",
        ge=1,
        le=100,
    )
    provider: MetricProvider = Field(
        default="prometheus",
        description="The metric provider that answers the queries: prometheus (the operator's configured "
        "Prometheus; default).",
    )
    metrics: list[Metric] = Field(
        default_factory=_default_metrics,
        description="The checks; names unique. Default: error-rate max 1 (percent) and latency-p99 max 500 (ms).",
        max_length=16,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )

    @field_validator("metrics")
    @classmethod
    def _unique_names(cls, metrics: list[Metric]) -> list[Metric]:
        names = [m.name for m in metrics]
        if len(names) != len(set(names)):
            raise ValueError("metric names must be unique")
        return metrics


class ReplicasRouting(_Model):
    """Traffic split by pod counts: one Service selects both tracks and the canary gets a share of
    pods proportional to its weight. Needs nothing besides Kubernetes."""


class ParentRef(_Model):
    """A Gateway API parent (usually a Gateway) the HTTPRoute attaches to."""

    name: str = Field(description="Name of the Gateway.", min_length=1, max_length=253, pattern=DNS1123_SUBDOMAIN)
    namespace: str | None = Field(
        default=None,
        description="Namespace of the Gateway (default: the ModelDeployment's).",
        max_length=63,
        pattern=DNS1123_LABEL,
    )
    section_name: str | None = Field(
        default=None,
        description="Listener name on the Gateway.",
        max_length=253,
        pattern=DNS1123_SUBDOMAIN,
    )


class GatewayAPI(_Model):
    """Traffic split by an HTTPRoute `<name>` with weighted backends `<name>-stable` and
    `<name>-canary`; the Service `<name>` then selects stable pods only."""

    parent_refs: list[ParentRef] = Field(
        description="Gateways the HTTPRoute attaches to.", min_length=1, max_length=16
    )
    hostnames: list[Annotated[str, Field(max_length=253, pattern=HOSTNAME)]] = Field(
        default_factory=list, description="Host names the HTTPRoute matches (default: all).", max_length=16
    )


class TrafficRouting(_Model):
    """How traffic is shifted to the canary: `replicas` (default) or `gatewayAPI`."""

    model_config = ConfigDict(
        json_schema_extra=_rules(
            (
                "!(has(self.replicas) && has(self.gatewayAPI))",
                "trafficRouting must set either replicas or gatewayAPI, not both",
            ),
        )
    )

    replicas: ReplicasRouting | None = Field(
        default=None, description="Split by pod counts (the default when gatewayAPI is not set); an empty object."
    )
    gateway_api: GatewayAPI | None = Field(
        default=None, alias="gatewayAPI", description="Split with a Gateway API HTTPRoute."
    )

    @model_validator(mode="after")
    def _one_router(self) -> TrafficRouting:
        if self.replicas is not None and self.gateway_api is not None:
            raise ValueError("trafficRouting must set either replicas or gatewayAPI, not both")
        return self

    @property
    def mode(self) -> Literal["replicas", "gatewayAPI"]:
        """The router in effect."""
        return "gatewayAPI" if self.gateway_api is not None else "replicas"


class Canary(_Model):
    """The canary schedule: traffic steps, analysis timing and failure limits."""

    steps: list[int] = Field(
        default=[10, 25, 50],
        description=(
            "Canary traffic weights in percent, strictly ascending, each between 1 and 99; promotion "
            "follows a passing analysis at the last step. Default [10, 25, 50]."
        ),
        min_length=1,
        max_length=20,
        json_schema_extra=_rules(
            ("self.all(s, s > 0 && s < 100)", "rollout.canary.steps must each be between 1 and 99"),
            (
                "self.isSorted() && self.all(s, self.indexOf(s) == self.lastIndexOf(s))",
                "rollout.canary.steps must be strictly ascending",
            ),
        ),
    )
    interval: Duration = Field(
        default="30s",
        description="Time between analyses, at least 5s (default 30s).",
        json_schema_extra=_duration_rules("rollout.canary.interval", minimum="5s"),
    )
    initial_delay: Duration = Field(
        default="30s",
        description="Warm-up after the canary is Ready before the first judgement (default 30s).",
        json_schema_extra=_duration_rules("rollout.canary.initialDelay"),
    )
    failure_threshold: int = Field(
        default=2,
        description="Failed analyses (cumulative over the rollout) that trigger a rollback (default 2).",
        ge=1,
        le=100,
    )
    progress_deadline: Duration = Field(
        default="10m",
        description="Roll back when the canary is not Ready within this time (default 10m).",
        json_schema_extra=_duration_rules("rollout.canary.progressDeadline", minimum="30s"),
    )
    analysis: Analysis = Field(default_factory=Analysis, description="How analyses judge the canary.")
    traffic_routing: TrafficRouting = Field(
        default_factory=TrafficRouting, description="How traffic is shifted (default: replicas)."
    )

    @field_validator("steps")
    @classmethod
    def _check_steps(cls, steps: list[int]) -> list[int]:
        if not all(0 < s < 100 for s in steps):
            raise ValueError("rollout.canary.steps must each be between 1 and 99")
        if any(a >= b for a, b in pairwise(steps)):
            raise ValueError("rollout.canary.steps must be strictly ascending")
        return steps

    @field_validator("interval")
    @classmethod
    def _check_interval(cls, value: str) -> str:
        return _check_duration("rollout.canary.interval", value, 5.0, "5s")

    @field_validator("initial_delay")
    @classmethod
    def _check_initial_delay(cls, value: str) -> str:
        return _check_duration("rollout.canary.initialDelay", value)

    @field_validator("progress_deadline")
    @classmethod
    def _check_progress_deadline(cls, value: str) -> str:
        return _check_duration("rollout.canary.progressDeadline", value, 30.0, "30s")

    @property
    def interval_seconds(self) -> float:
        return parse_duration(self.interval)

    @property
    def initial_delay_seconds(self) -> float:
        return parse_duration(self.initial_delay)

    @property
    def progress_deadline_seconds(self) -> float:
        return parse_duration(self.progress_deadline)


class Rollout(_Model):
    """How a new revision (model, runtime, resources or accelerator changed) reaches production."""

    strategy: Literal["Canary", "Rolling"] = Field(
        default="Canary",
        description="Canary (metric-gated traffic steps, default) or Rolling (a plain rolling update).",
    )
    canary: Canary = Field(default_factory=Canary, description="The canary schedule (used when strategy is Canary).")


# -------------------------------------------------------------------------------------------- spec


class ModelDeploymentSpec(_Model):
    """The desired state: one model served by a Deployment behind Services, rolled out as a canary."""

    model_config = ConfigDict(
        json_schema_extra=_rules(
            (
                "self.model.format != 'custom' || (has(self.runtime) && has(self.runtime.image))",
                "runtime.image is required when model.format is custom",
            ),
        )
    )

    model: ModelSource = Field(description="The model to serve.")
    runtime: Runtime = Field(default_factory=Runtime, description="The model-server container (optional).")
    replicas: int = Field(
        default=1,
        description="Stable replicas when autoscaling is not set (default 1). Also set by `kubectl scale`.",
        ge=0,
        le=1000,
    )
    resources: Resources = Field(default_factory=Resources, description="CPU and memory of the serving container.")
    accelerator: Accelerator | None = Field(default=None, description="GPU placement (omit to run on CPU).")
    autoscaling: Autoscaling | None = Field(
        default=None, description="Horizontal autoscaling on CPU; replaces `replicas` when set."
    )
    rollout: Rollout = Field(default_factory=Rollout, description="How new revisions are rolled out.")
    paused: bool = Field(
        default=False, description="Freeze the rollout where it is (no steps, no promotion, no rollback)."
    )

    @model_validator(mode="after")
    def _check_custom(self) -> ModelDeploymentSpec:
        if self.model.format == "custom" and self.runtime.image is None:
            raise ValueError("runtime.image is required when model.format is custom")
        return self

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any] | None) -> ModelDeploymentSpec:
        """Parse `.spec` of a ModelDeployment (defaults filled); raise SpecError naming every bad path."""
        return parse_spec(spec)


# ------------------------------------------------------------------------------------------ status


class StableStatus(_StatusModel):
    """The revision serving production traffic."""

    version: str | None = Field(default=None, description="spec.model.version of the stable revision.", max_length=128)
    revision: str | None = Field(default=None, description="Hash of the stable serving template.", max_length=64)
    replicas: int | None = Field(default=None, description="Pods of the stable Deployment.", ge=0)
    ready_replicas: int | None = Field(default=None, description="Ready pods of the stable Deployment.", ge=0)
    template: ServingTemplate | None = Field(
        default=None, description="The stable serving template (model, runtime, resources, accelerator)."
    )


class AnalysisRecord(_StatusModel):
    """One measurement of one metric and its verdict."""

    time: datetime = Field(description="When the measurement was taken (RFC 3339).")
    metric: str = Field(description="Metric name.", max_length=63)
    value: float | None = Field(
        default=None, description="Measured value (absent when there was no data or it was NaN or infinite)."
    )
    threshold: str | None = Field(
        default=None, description="The limit it was judged against, e.g. '<= 1' or 'ratio <= 1.2'.", max_length=128
    )
    verdict: Verdict = Field(
        description="Pass, Fail, Inconclusive (no data or too few requests) or Error (provider error)."
    )
    detail: str | None = Field(
        default=None,
        description="Why, when the value alone does not say: no data, NaN, +Inf, too few requests, provider error.",
        max_length=512,
    )


class CanaryStatus(_StatusModel):
    """The rollout in progress, if any."""

    state: CanaryPhase | None = Field(
        default=None,
        description="Progressing (waiting for Ready, then analysing), Paused (spec.paused or a policy; needs an "
        "action), Promoting (stable takes the canary's template) or RolledBack (until a new revision or retry).",
    )
    version: str | None = Field(default=None, description="spec.model.version of the canary revision.", max_length=128)
    revision: str | None = Field(default=None, description="Hash of the canary serving template.", max_length=64)
    weight: int | None = Field(default=None, description="Current canary traffic weight in percent.", ge=0, le=100)
    step: int | None = Field(
        default=None, description="Index into spec.rollout.canary.steps; -1 until the canary is Ready.", ge=-1
    )
    failed_checks: int | None = Field(default=None, description="Failed analyses so far in this rollout.", ge=0)
    provider_errors: int | None = Field(default=None, description="Consecutive metric-provider errors.", ge=0)
    started_at: datetime | None = Field(default=None, description="When this canary started (RFC 3339).")
    ready_at: datetime | None = Field(default=None, description="When the canary first became Ready.")
    last_progress_at: datetime | None = Field(
        default=None, description="Start or last step change: progressDeadline counts from here."
    )
    last_analysis_at: datetime | None = Field(default=None, description="When the last analysis ran.")
    paused_by: PausedBy | None = Field(
        default=None, description="What paused the canary (state Paused)."
    )
    reason: str | None = Field(default=None, description="CamelCase reason of the last decision.", max_length=64)
    message: str | None = Field(default=None, description="The last decision, in words.", max_length=2048)
    analyses: list[AnalysisRecord] = Field(
        default_factory=list, description="The last 10 measurements, oldest first.", max_length=10
    )


class ServingTemplate(_StatusModel):
    """The serving part of a spec (what the revision hashes): kept for the stable track, so the stable
    Deployment keeps its template while a canary runs a newer one, and after an operator restart."""

    model: ModelSource = Field(description="The stable model.")
    runtime: Runtime | None = Field(default=None, description="The stable model-server container.")
    resources: Resources | None = Field(default=None, description="The stable container resources.")
    accelerator: Accelerator | None = Field(default=None, description="The stable GPU placement.")


class Condition(_StatusModel):
    """A standard Kubernetes condition (metav1.Condition)."""

    type: str = Field(description="Condition type: Ready, Progressing or Degraded.", min_length=1, max_length=316)
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str = Field(
        description="CamelCase reason, e.g. InvalidSpec, InsufficientAccelerator, RolledBack.",
        min_length=1,
        max_length=1024,
        pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
    )
    message: str = Field(description="Human-readable details.", max_length=32768)
    last_transition_time: datetime = Field(description="When status last changed (RFC 3339).")
    observed_generation: int | None = Field(
        default=None, description="metadata.generation this condition was computed from.", ge=0
    )


class ModelDeploymentStatus(_StatusModel):
    """Observed state, written only by the operator through the status subresource."""

    observed_generation: int | None = Field(default=None, description="metadata.generation last reconciled.", ge=0)
    phase: Phase | None = Field(
        default=None, description="Summary: Pending, Progressing, Ready, Degraded or Failed."
    )
    stable: StableStatus | None = Field(default=None, description="The revision serving production traffic.")
    canary: CanaryStatus | None = Field(default=None, description="The rollout in progress, if any.")
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Ready, Progressing and Degraded conditions.",
        max_length=16,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    url: str | None = Field(default=None, description="In-cluster URL of the Service <name>.", max_length=512)
    selector: str | None = Field(
        default=None,
        description="Label selector of the stable pods (for the scale subresource and HPAs).",
        max_length=1024,
    )


# ---------------------------------------------------------------------------------------- the kind


class ModelDeployment(BaseModel):
    """A whole ModelDeployment object as read from the API server (metadata kept as a plain dict)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    api_version: Literal[API_VERSION] = Field(default=API_VERSION, description="API version.")
    kind: Literal[KIND] = Field(default=KIND, description="Kind.")
    metadata: dict[str, Any] = Field(default_factory=dict, description="Standard object metadata.")
    spec: ModelDeploymentSpec = Field(description="Desired state.")
    status: ModelDeploymentStatus = Field(default_factory=ModelDeploymentStatus, description="Observed state.")

    @property
    def name(self) -> str:
        return str(self.metadata.get("name", ""))

    @property
    def namespace(self) -> str:
        return str(self.metadata.get("namespace", ""))

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> ModelDeployment:
        """Parse a whole object: spec strictly (SpecError), status leniently (an unreadable status,
        e.g. from an older operator, is treated as empty rather than blocking reconciliation)."""
        metadata = dict(obj.get("metadata") or {})
        name = metadata.get("name")
        if isinstance(name, str):
            check_name(name)
        spec = parse_spec(obj.get("spec"))
        return cls(metadata=metadata, spec=spec, status=parse_status(obj.get("status")))


# --------------------------------------------------------------------------------------- parsing


def _format_loc(loc: tuple[int | str, ...]) -> str:
    path = "spec"
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def format_validation_error(err: ValidationError) -> list[str]:
    """One readable line per problem, each naming the field path, e.g.
    `spec.rollout.canary.steps: rollout.canary.steps must be strictly ascending`."""
    problems: list[str] = []
    for item in err.errors(include_url=False):
        message = item["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
        if item["type"] == "extra_forbidden":
            message = "unknown field"
        elif item["type"] == "missing":
            message = "required field is missing"
        problems.append(f"{_format_loc(tuple(item['loc']))}: {message}")
    return problems


def parse_spec(spec: Mapping[str, Any] | None) -> ModelDeploymentSpec:
    """Parse and validate `.spec`, filling operator defaults. Raises SpecError (a ValueError) with
    one message listing every problem by field path."""
    if spec is None:
        raise SpecError("spec: required field is missing")
    if not isinstance(spec, Mapping):
        raise SpecError("spec: must be an object")
    try:
        return ModelDeploymentSpec.model_validate(dict(spec))
    except ValidationError as err:
        problems = format_validation_error(err)
        raise SpecError("invalid ModelDeployment spec: " + "; ".join(problems), problems) from None


def parse_status(status: Mapping[str, Any] | None) -> ModelDeploymentStatus:
    """Parse `.status`; anything unreadable yields an empty status (the operator rebuilds it)."""
    if not status:
        return ModelDeploymentStatus()
    try:
        return ModelDeploymentStatus.model_validate(dict(status))
    except ValidationError:
        return ModelDeploymentStatus()


def check_name(name: str) -> str:
    """Validate a ModelDeployment name the way the CRD does (children append "-canary")."""
    if len(name) > MAX_NAME_LENGTH or not re.match(NAME_PATTERN, name):
        raise SpecError(NAME_MESSAGE)
    return name


NAME_MESSAGE = (
    f"metadata.name must be a DNS-1035 label (lowercase letters, digits and '-', starting with a letter) "
    f"of at most {MAX_NAME_LENGTH} characters, so that child names such as <name>-canary stay valid"
)
