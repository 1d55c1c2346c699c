"""What every part of the ModelDeployment API shares: names, patterns, enums, base models, and
the helpers that keep a CEL rule and its parser-side twin in step (see models.py)."""

from __future__ import annotations

import re
from itertools import pairwise
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, WithJsonSchema
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
BUILTIN_METRICS = ("error-rate", "latency-p99", "prediction-shift", "input-drift")
# Built-in metrics that compare the tracks themselves (no query, no template, no compareToStable).
DISTRIBUTION_METRICS = ("prediction-shift", "input-drift")
# Metric providers an analysis can name; each has a module under modelpilot/analysis/ registered in
# modelpilot.analysis.providers (a unit test keeps the two in step).
METRIC_PROVIDERS = ("prometheus",)

# The status enums, defined once: the state machine, the status builder and the CRD use these.
Phase = Literal["Pending", "Progressing", "Ready", "Degraded", "Failed"]
CanaryPhase = Literal["Progressing", "Paused", "Promoting", "RolledBack"]
Verdict = Literal["Pass", "Fail", "Inconclusive", "Error"]
PausedBy = Literal["spec", "inconclusive", "provider-error", "drift"]
Stage = Literal["shadow", "segment", "experiment", "steps"]
ExperimentVerdict = Literal["Winner", "Loser", "NoDifference", "Inconclusive"]
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


def cel_rules(*pairs: tuple[str, str]) -> dict[str, Any]:
    """JSON-schema extra that becomes `x-kubernetes-validations` (CEL rule + readable message)."""
    return {"x-kubernetes-validations": [{"rule": rule, "message": message} for rule, message in pairs]}


def duration_rules(path: str, minimum: str | None = None) -> dict[str, Any]:
    """CEL rules for a duration string: its syntax, then bounds (guarded so a bad string gives one
    readable message instead of a CEL evaluation error)."""
    pattern = DURATION_PATTERN  # no backslashes: safe inside a CEL string literal
    guard = f"!self.matches('{pattern}')"
    pairs = [(f"self.matches('{pattern}')", f"{path} must be a duration with a unit, e.g. 30s, 5m or 1h30m")]
    if minimum:
        pairs.append((f"{guard} || duration(self) >= duration('{minimum}')", f"{path} must be at least {minimum}"))
    pairs.append((f"{guard} || duration(self) <= duration('168h')", f"{path} must be at most 168h"))
    return cel_rules(*pairs)


def ascending_percent_rules(path: str, high: int) -> dict[str, Any]:
    """CEL rules for a list of percentages: each between 1 and `high`, strictly ascending."""
    return cel_rules(
        (f"self.all(p, p > 0 && p <= {high})", f"{path} must each be between 1 and {high}"),
        ("self.isSorted() && self.all(p, self.indexOf(p) == self.lastIndexOf(p))",
         f"{path} must be strictly ascending"),
    )


def check_ascending_percents(path: str, values: list[int], high: int) -> list[int]:
    """Parser-side twin of `ascending_percent_rules`, with the same messages."""
    if not all(0 < v <= high for v in values):
        raise ValueError(f"{path} must each be between 1 and {high}")
    if any(a >= b for a, b in pairwise(values)):
        raise ValueError(f"{path} must be strictly ascending")
    return values


def check_duration(path: str, value: str, minimum: float = 0.0, minimum_text: str = "") -> str:
    """Parser-side twin of `duration_rules`, with the same messages."""
    if not is_duration(value):
        raise ValueError(f"{path} must be a duration with a unit, e.g. 30s, 5m or 1h30m")
    try:
        seconds = parse_duration(value)
    except ValueError:
        raise ValueError(f"{path} must be at most 168h") from None
    if seconds < minimum:
        raise ValueError(f"{path} must be at least {minimum_text}")
    return value


def validate_quantity(value: Any) -> int | str:
    # bool is an int in Python but not in JSON; reject it like the API server would.
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError("must be a Kubernetes quantity: an integer or a string such as 500m or 1Gi")
    if isinstance(value, str) and not re.match(QUANTITY, value):
        raise ValueError(f"{value!r} is not a Kubernetes quantity (e.g. 500m, 2, 1Gi)")
    return value


Quantity = Annotated[
    int | str,
    PlainValidator(validate_quantity),
    WithJsonSchema({"anyOf": [{"type": "integer"}, {"type": "string", "pattern": QUANTITY}]}),
]
Duration = Annotated[str, Field(max_length=32)]


class SpecModel(BaseModel):
    """Base of every spec model: camelCase on the wire, unknown fields rejected (typos fail loudly)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class StatusModel(BaseModel):
    """Base of status models: camelCase, unknown fields ignored (status is the operator's own)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")
