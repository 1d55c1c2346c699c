"""The serving part of a spec: the model, its runtime container, resources, GPU placement,
autoscaling."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from modelpilot.api.common import (
    DNS1123_SUBDOMAIN,
    ENV_NAME,
    EXTENDED_RESOURCE,
    LABEL_VALUE,
    PVC_URI_PATTERN,
    RESERVED_ENV,
    URI_PATTERN,
    Duration,
    ModelFormat,
    Quantity,
    SpecModel,
    Vendor,
    cel_rules,
    check_duration,
    duration_rules,
)
from modelpilot.api.durations import parse_duration

ScalingMetric = Literal["requests", "concurrency", "cpu"]
ServingProtocol = Literal["rest", "grpc", "both"]
DEFAULT_HTTP_PORT = 8080
DEFAULT_GRPC_PORT = 8081  # KServe's

# ------------------------------------------------------------------------------------------- model


class SecretRef(SpecModel):
    """A reference to a Secret in the ModelDeployment's own namespace."""

    name: str = Field(
        description="Name of the Secret (same namespace; cross-namespace references are not allowed).",
        min_length=1,
        max_length=253,
        pattern=DNS1123_SUBDOMAIN,
    )


class ModelSource(SpecModel):
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
        json_schema_extra=cel_rules(
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


class EnvVar(SpecModel):
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


class Runtime(SpecModel):
    """The model-server container. Everything is optional: the default runtime image serves the
    sklearn, xgboost and onnx formats over Open Inference Protocol v2."""

    model_config = ConfigDict(
        json_schema_extra=cel_rules(
            (
                f"!has(self.env) || self.env.all(e, !(e.name in {_RESERVED_ENV_CEL}))",
                "runtime.env must not set variables the operator sets (MODELPILOT_MODEL_*, MODELPILOT_PORT, "
                "MODELPILOT_TRACK, MODELPILOT_NAMESPACE)",
            ),
            (
                "!has(self.protocol) || self.protocol == 'rest' || "
                f"(has(self.grpcPort) ? self.grpcPort : {DEFAULT_GRPC_PORT}) != "
                f"(has(self.port) ? self.port : {DEFAULT_HTTP_PORT})",
                "runtime.grpcPort must differ from runtime.port when the protocol includes grpc",
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
    port: int = Field(
        default=DEFAULT_HTTP_PORT,
        description=f"Container port the server listens on (default {DEFAULT_HTTP_PORT}).",
        ge=1,
        le=65535,
    )
    protocol: ServingProtocol = Field(
        default="rest",
        description=(
            "Open Inference Protocol v2 over rest (HTTP/JSON on `port`, default), grpc (KServe's "
            "inference.GRPCInferenceService on `grpcPort`) or both. The REST port stays open with grpc alone: "
            "it serves the health probes and /metrics. With grpc, the Services get a port named grpc "
            f"({DEFAULT_GRPC_PORT}, appProtocol kubernetes.io/h2c) and the default runtime gets --grpc-port; "
            "a custom image must serve gRPC on grpcPort itself."
        ),
    )
    grpc_port: int = Field(
        default=DEFAULT_GRPC_PORT,
        description=f"Container port of the gRPC server when protocol is grpc or both (default {DEFAULT_GRPC_PORT}).",
        ge=1,
        le=65535,
    )
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
        if self.serves_grpc and self.grpc_port == self.port:
            raise ValueError("runtime.grpcPort must differ from runtime.port when the protocol includes grpc")
        return self

    @property
    def serves_grpc(self) -> bool:
        return self.protocol in ("grpc", "both")


# --------------------------------------------------------------------------------------- resources


class Resources(SpecModel):
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


class Toleration(SpecModel):
    """A Kubernetes pod toleration (core/v1 Toleration)."""

    model_config = ConfigDict(
        json_schema_extra=cel_rules(
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


class Accelerator(SpecModel):
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


class Autoscaling(SpecModel):
    """Horizontal autoscaling of the stable Deployment; when set, `replicas` is ignored and never
    applied, so the operator does not fight the autoscaler. On CPU with minReplicas >= 1: a
    HorizontalPodAutoscaler. With minReplicas 0 (scale to zero) or a request metric: a KEDA
    ScaledObject, and requests that arrive while no pod runs are held by the activator."""

    model_config = ConfigDict(
        json_schema_extra=cel_rules(
            (
                "!has(self.minReplicas) || self.minReplicas <= self.maxReplicas",
                "autoscaling.minReplicas must be <= maxReplicas",
            ),
            (
                "!has(self.target) || (has(self.metric) && self.metric != 'cpu') || self.target <= 100",
                "autoscaling.target of metric cpu is a percentage of the CPU request (1-100)",
            ),
        )
    )

    min_replicas: int = Field(
        default=1, description="Lower bound of replicas (default 1); 0 scales to zero when idle.", ge=0, le=1000
    )
    max_replicas: int = Field(description="Upper bound of replicas.", ge=1, le=1000)
    metric: ScalingMetric = Field(
        default="cpu",
        description="What `target` is per pod: requests (per second), concurrency (requests in flight) or cpu "
        "(percent of the CPU request; default).",
    )
    target: int | None = Field(
        default=None,
        description="Target value of `metric` per pod. Defaults: requests 10, concurrency 4, cpu "
        "targetCPUUtilization.",
        ge=1,
        le=100000,
    )
    target_cpu_utilization: int = Field(
        default=80,
        alias="targetCPUUtilization",
        description="Target average CPU utilisation in percent of the CPU request (default 80).",
        ge=1,
        le=100,
    )
    scale_to_zero_after: Duration = Field(
        default="5m",
        description="With minReplicas 0: how long every pod must have been Ready with no request before the "
        "track scales to zero (default 5m). Pods waiting for a node or loading the model are never idle.",
        json_schema_extra=duration_rules("autoscaling.scaleToZeroAfter", minimum="10s"),
    )

    @model_validator(mode="after")
    def _check_bounds(self) -> Autoscaling:
        if self.min_replicas > self.max_replicas:
            raise ValueError("autoscaling.minReplicas must be <= maxReplicas")
        if self.metric == "cpu" and self.target is not None and self.target > 100:
            raise ValueError("autoscaling.target of metric cpu is a percentage of the CPU request (1-100)")
        return self

    @field_validator("scale_to_zero_after")
    @classmethod
    def _check_idle(cls, value: str) -> str:
        return check_duration("autoscaling.scaleToZeroAfter", value, 10.0, "10s")

    @property
    def scale_to_zero(self) -> bool:
        return self.min_replicas == 0

    @property
    def keda(self) -> bool:
        """Whether a KEDA ScaledObject scales this track (an HPA alone cannot reach zero or read
        request metrics)."""
        return self.scale_to_zero or self.metric != "cpu"

    @property
    def target_value(self) -> int:
        if self.target is not None:
            return self.target
        return {"requests": 10, "concurrency": 4}.get(self.metric, self.target_cpu_utilization)

    @property
    def scale_to_zero_after_seconds(self) -> float:
        return parse_duration(self.scale_to_zero_after)
