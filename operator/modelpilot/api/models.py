"""pydantic v2 models of the `ModelDeployment` API (modelpilot.io/v1alpha1), spec and status.

These models are the single source of the API: `modelpilot.api.crd` generates the CRD schema from
them (every field description becomes `kubectl explain` text) and the operator parses objects with
them. Two rules shape the code:

- Defaults live here, never in the CRD schema. The operator fills them when it parses a spec, so
  the object a user applied stays byte-for-byte what GitOps tools compare against.
- Every check the CRD makes with CEL (`x-kubernetes-validations`) is mirrored by a validator here
  with the *same message*, so a cluster that skipped admission checks (or a unit test) gets the
  same answer from the operator, which then reports `Ready=False, reason=InvalidSpec`.

The models live in modules by concern (common, serving, rollout, status); this one adds the whole
spec, the kind and parsing, and is where the rest of the project imports them from.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.alias_generators import to_camel

from modelpilot.api.common import (
    API_VERSION,
    BUILTIN_METRICS,
    DISTRIBUTION_METRICS,
    DNS1123_LABEL,
    DNS1123_SUBDOMAIN,
    ENV_NAME,
    EXTENDED_RESOURCE,
    GROUP,
    HOSTNAME,
    KIND,
    LABEL_VALUE,
    MAX_NAME_LENGTH,
    METRIC_PROVIDERS,
    NAME_PATTERN,
    PLURAL,
    PVC_URI_PATTERN,
    QUANTITY,
    RESERVED_ENV,
    SHORT_NAMES,
    SINGULAR,
    URI_PATTERN,
    URI_SCHEMES,
    VERSION,
    CanaryPhase,
    Duration,
    MetricProvider,
    ModelFormat,
    PausedBy,
    Phase,
    Quantity,
    SpecError,
    SpecModel,
    StatusModel,
    Track,
    Vendor,
    Verdict,
    cel_rules,
    check_duration,
    duration_rules,
    validate_quantity,
)
from modelpilot.api.edge import EDGE_CEL_RULES, EDGE_ROLE_LABEL, Edge, EdgeRollout, EdgeStatus, edge_problem
from modelpilot.api.experiment import Experiment, ExperimentMetric
from modelpilot.api.monitoring import DriftMonitoring, DriftStatus, DriftThresholds, Monitoring
from modelpilot.api.notifications import Notifications
from modelpilot.api.rollout import (
    Analysis,
    Canary,
    CompareToStable,
    Metric,
    Rollout,
)
from modelpilot.api.serving import (
    Accelerator,
    Autoscaling,
    EnvVar,
    ModelSource,
    Resources,
    Runtime,
    SecretRef,
    Toleration,
)
from modelpilot.api.status import (
    AnalysisRecord,
    CanaryStatus,
    Condition,
    ModelDeploymentStatus,
    ServingTemplate,
    StableStatus,
)
from modelpilot.api.traffic import (
    CookieMatch,
    GatewayAPI,
    HeaderMatch,
    ParentRef,
    ReplicasRouting,
    RouteMatch,
    Shadow,
    Sticky,
    TrafficRouting,
)

S = TypeVar("S", bound=BaseModel)

# -------------------------------------------------------------------------------------------- spec

SCALE_TO_ZERO_NEEDS_GATEWAY = ("autoscaling.minReplicas 0 needs rollout.canary.trafficRouting.gatewayAPI: requests "
                               "that arrive while no pod runs are held behind the gateway's route")

Target = Literal["Cluster", "Edge"]


class ModelDeploymentSpec(SpecModel):
    """The desired state: one model served by a Deployment behind Services, rolled out as a canary."""

    model_config = ConfigDict(
        json_schema_extra=cel_rules(
            (
                "self.model.format != 'custom' || (has(self.runtime) && has(self.runtime.image))",
                "runtime.image is required when model.format is custom",
            ),
            (
                "!has(self.autoscaling) || !has(self.autoscaling.minReplicas) || self.autoscaling.minReplicas != 0"
                " || (has(self.rollout) && has(self.rollout.canary) && has(self.rollout.canary.trafficRouting)"
                " && has(self.rollout.canary.trafficRouting.gatewayAPI))",
                SCALE_TO_ZERO_NEEDS_GATEWAY,
            ),
            *EDGE_CEL_RULES,
        )
    )

    model: ModelSource = Field(description="The model to serve.")
    target: Target = Field(
        default="Cluster",
        description="Cluster (Deployments behind Services, default) or Edge (one pod on every node of a fleet "
        "of edge nodes, a DaemonSet per track; see `edge`).",
    )
    edge: Edge | None = Field(
        default=None, description="Target Edge: the fleet's nodes and how a new revision spreads over them."
    )
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
        default=None,
        description="Horizontal autoscaling (CPU, requests or concurrency; to zero with minReplicas 0); replaces "
        "`replicas` when set.",
    )
    rollout: Rollout = Field(default_factory=Rollout, description="How new revisions are rolled out.")
    paused: bool = Field(
        default=False, description="Freeze the rollout where it is (no steps, no promotion, no rollback)."
    )
    monitoring: Monitoring = Field(
        default_factory=Monitoring, description="Data and concept drift monitoring (on by default)."
    )
    notifications: Notifications

    @model_validator(mode="after")
    def _check_custom(self) -> ModelDeploymentSpec:
        if self.model.format == "custom" and self.runtime.image is None:
            raise ValueError("runtime.image is required when model.format is custom")
        if self.autoscaling is not None and self.autoscaling.scale_to_zero and \
                self.rollout.canary.traffic_routing.gateway_api is None:
            raise ValueError(SCALE_TO_ZERO_NEEDS_GATEWAY)
        self._check_edge()
        return self

    def _check_edge(self) -> None:
        canary = self.rollout.canary
        given = {"replicas": "replicas" in self.model_fields_set, "autoscaling": self.autoscaling is not None,
                 "trafficRouting": "traffic_routing" in canary.model_fields_set,
                 "steps": "steps" in canary.model_fields_set, "interval": "interval" in canary.model_fields_set}
        problem = edge_problem(self.target, self.edge is not None, given)
        if problem:
            raise ValueError(problem)

    @property
    def edge_spec(self) -> Edge:
        """spec.edge with its defaults (target Edge)."""
        return self.edge or Edge()

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any] | None) -> ModelDeploymentSpec:
        """Parse `.spec` of a ModelDeployment (defaults filled); raise SpecError naming every bad path."""
        return parse_spec(spec)


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


def validate_spec(model: type[S], spec: Mapping[str, Any] | None, kind: str) -> S:
    """Parse and validate the `.spec` of a `kind` object with `model`, filling operator defaults.
    Raises SpecError (a ValueError) with one message listing every problem by field path."""
    if spec is None:
        raise SpecError("spec: required field is missing")
    if not isinstance(spec, Mapping):
        raise SpecError("spec: must be an object")
    try:
        return model.model_validate(dict(spec))
    except ValidationError as err:
        problems = format_validation_error(err)
        raise SpecError(f"invalid {kind} spec: " + "; ".join(problems), problems) from None


def read_lenient(model: type[S], status: Mapping[str, Any] | None) -> S:
    """Parse a `.status` with `model`; anything unreadable yields an empty one (the operator rebuilds it)."""
    if not status:
        return model()
    try:
        return model.model_validate(dict(status))
    except ValidationError:
        return model()


def parse_spec(spec: Mapping[str, Any] | None) -> ModelDeploymentSpec:
    """Parse and validate a ModelDeployment's `.spec` (see validate_spec)."""
    return validate_spec(ModelDeploymentSpec, spec, KIND)


def parse_status(status: Mapping[str, Any] | None) -> ModelDeploymentStatus:
    """Parse `.status`; anything unreadable yields an empty status (the operator rebuilds it)."""
    return read_lenient(ModelDeploymentStatus, status)


def check_name(name: str) -> str:
    """Validate a ModelDeployment name the way the CRD does (children append "-canary")."""
    if len(name) > MAX_NAME_LENGTH or not re.match(NAME_PATTERN, name):
        raise SpecError(NAME_MESSAGE)
    return name


NAME_MESSAGE = (
    f"metadata.name must be a DNS-1035 label (lowercase letters, digits and '-', starting with a letter) "
    f"of at most {MAX_NAME_LENGTH} characters, so that child names such as <name>-canary stay valid"
)

__all__ = [
    "API_VERSION",
    "BUILTIN_METRICS",
    "DISTRIBUTION_METRICS",
    "DNS1123_LABEL",
    "DNS1123_SUBDOMAIN",
    "EDGE_ROLE_LABEL",
    "ENV_NAME",
    "EXTENDED_RESOURCE",
    "GROUP",
    "HOSTNAME",
    "KIND",
    "LABEL_VALUE",
    "MAX_NAME_LENGTH",
    "METRIC_PROVIDERS",
    "NAME_MESSAGE",
    "NAME_PATTERN",
    "PLURAL",
    "PVC_URI_PATTERN",
    "QUANTITY",
    "RESERVED_ENV",
    "SHORT_NAMES",
    "SINGULAR",
    "URI_PATTERN",
    "URI_SCHEMES",
    "VERSION",
    "Accelerator",
    "Analysis",
    "AnalysisRecord",
    "Autoscaling",
    "Canary",
    "CanaryPhase",
    "CanaryStatus",
    "CompareToStable",
    "Condition",
    "CookieMatch",
    "DriftMonitoring",
    "DriftStatus",
    "DriftThresholds",
    "Duration",
    "Edge",
    "EdgeRollout",
    "EdgeStatus",
    "EnvVar",
    "Experiment",
    "ExperimentMetric",
    "GatewayAPI",
    "HeaderMatch",
    "Metric",
    "MetricProvider",
    "ModelDeployment",
    "ModelDeploymentSpec",
    "ModelDeploymentStatus",
    "ModelFormat",
    "ModelSource",
    "Monitoring",
    "ParentRef",
    "PausedBy",
    "Phase",
    "Quantity",
    "ReplicasRouting",
    "Resources",
    "Rollout",
    "RouteMatch",
    "Runtime",
    "SecretRef",
    "ServingTemplate",
    "Shadow",
    "SpecError",
    "SpecModel",
    "StableStatus",
    "StatusModel",
    "Sticky",
    "Toleration",
    "Track",
    "TrafficRouting",
    "Vendor",
    "Verdict",
    "cel_rules",
    "check_duration",
    "check_name",
    "duration_rules",
    "format_validation_error",
    "parse_spec",
    "parse_status",
    "read_lenient",
    "validate_quantity",
    "validate_spec",
]
