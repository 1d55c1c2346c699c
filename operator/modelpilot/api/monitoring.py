"""Drift monitoring: `spec.monitoring.drift` and `status.drift` (docs/monitoring.md).

The runtime measures (window counts over the reference profile's bins, scores, feedback); the
operator reads the scores from Prometheus, judges them against these thresholds and reports.
Only `window` and `maxFeatures` reach the pods (they shape what the runtime keeps); the rest is
the operator's, so tuning a threshold never restarts a pod.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field, field_validator

from modelpilot.api.common import Duration, SpecModel, StatusModel, check_duration, duration_rules
from modelpilot.api.durations import parse_duration

DriftOutcome = Literal["Report", "Pause"]


class DriftThresholds(SpecModel):
    """When drift is reported."""

    feature_psi: float = Field(
        default=0.2, alias="featurePSI", ge=0, le=100,
        description="A feature drifts when its population stability index reaches this (default 0.2: the "
        "usual 'significant shift' level; 0.1 is 'moderate').")
    prediction_psi: float = Field(
        default=0.2, alias="predictionPSI", ge=0, le=100,
        description="The predictions drift when their PSI reaches this (default 0.2).")
    accuracy_drop: float = Field(
        default=0.05, ge=0, le=1,
        description="Concept drift (classification) when live accuracy from feedback falls this far below the "
        "profile's reference accuracy, in absolute terms (default 0.05 = five points).")
    error_increase: float = Field(
        default=0.2, ge=0, le=100,
        description="Concept drift (regression) when the live mean absolute error exceeds the reference by "
        "this fraction (default 0.2 = 20 %).")


class DriftMonitoring(SpecModel):
    """Data drift (inputs and predictions against the reference profile) and concept drift (accuracy
    from feedback), measured by the runtime over a sliding window."""

    enabled: bool = Field(default=True, description="Measure and report drift (default true).")
    window: Duration = Field(
        default="1h",
        description="The runtime's sliding window (at least 10s; default 1h). Changing it restarts the pods.",
        json_schema_extra=duration_rules("monitoring.drift.window", minimum="10s"),
    )
    thresholds: DriftThresholds = Field(default_factory=DriftThresholds, description="When drift is reported.")
    min_samples: int = Field(
        default=100, ge=1,
        description="Rows (or labelled rows, for concept drift) a window needs before it is judged; fewer "
        "leave the condition Unknown (default 100).")
    max_features: int = Field(
        default=50, ge=1, le=500,
        description="Features exported one by one; the rest are summarised (default 50). Changing it "
        "restarts the pods.")
    on_drift: DriftOutcome = Field(
        default="Report",
        description="Report (default: conditions, status, Events and metrics only; traffic never changes) or "
        "Pause (also freeze a canary in flight while drift is detected; it resumes when drift clears).")

    @field_validator("window")
    @classmethod
    def _check_window(cls, value: str) -> str:
        return check_duration("monitoring.drift.window", value, 10.0, "10s")

    @property
    def window_seconds(self) -> float:
        return parse_duration(self.window)


class Monitoring(SpecModel):
    """What the runtime measures about the model's inputs and outputs."""

    drift: DriftMonitoring = Field(default_factory=DriftMonitoring, description="Data and concept drift.")


# ------------------------------------------------------------------------------------------ status


class BinRatio(StatusModel):
    """One bin of a distribution: its share in the reference profile and in the live window."""

    bin: str = Field(description="The bin: an interval such as (4.8,5.1], a category, other or missing.",
                     max_length=128)
    reference: float = Field(description="Share of the reference rows.", ge=0, le=1)
    live: float | None = Field(default=None, description="Share of the window's rows.", ge=0, le=1)


class FeatureDrift(StatusModel):
    """One input feature (or the predictions) against the reference profile."""

    name: str = Field(description="Feature name, as in the profile.", max_length=253)
    psi: float | None = Field(default=None, description="Population stability index (pooled over the pods).")
    p_value: float | None = Field(default=None, description="Chi-square goodness-of-fit p-value (smallest pod).",
                                  ge=0, le=1)
    drifted: bool = Field(default=False, description="Whether the PSI reached its threshold.")
    bins: list[BinRatio] = Field(default_factory=list, description="Reference and live shares per bin.",
                                 max_length=64)


class UnexportedFeatures(StatusModel):
    """Features past maxFeatures, summarised by the runtime."""

    count: int = Field(description="How many.", ge=0)
    over_threshold: int = Field(description="How many have a PSI of at least 0.2 on some pod.", ge=0)
    max_psi: float | None = Field(default=None, alias="maxPSI", description="The largest PSI among them.")


class Accuracy(StatusModel):
    """Concept drift: the model's live quality from feedback against the profile's reference."""

    metric: Literal["accuracy", "error"] = Field(
        description="accuracy (classification: share correct) or error (regression: mean absolute error).")
    live: float | None = Field(default=None, description="Over the window's labelled rows.")
    reference: float | None = Field(default=None, description="On the profile's data (needs --target).")
    samples: int = Field(default=0, description="Labelled rows in the window (all pods).", ge=0)


class DriftStatus(StatusModel):
    """The stable track's drift at the last evaluation."""

    last_evaluated: datetime = Field(description="When the scores were last read (RFC 3339).")
    window: str | None = Field(default=None, description="The window the scores cover.", max_length=32)
    rows: int = Field(default=0, description="Input rows in the window (all stable pods).", ge=0)
    profile: bool = Field(default=False, description="Whether the serving pods found a reference profile.")
    features: list[FeatureDrift] = Field(
        default_factory=list, description="The top offenders, worst first (at most 5).", max_length=5)
    unexported: UnexportedFeatures | None = Field(default=None, description="Features past maxFeatures.")
    prediction: FeatureDrift | None = Field(default=None, description="The predictions against the profile.")
    accuracy: Accuracy | None = Field(default=None, description="Live accuracy or error from feedback.")
    message: str | None = Field(default=None, description="Why nothing was judged, when so.", max_length=1024)
