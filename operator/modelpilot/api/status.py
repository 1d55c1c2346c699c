"""The status the operator writes (only through these models, so it always matches the CRD)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from modelpilot.api.common import (
    CanaryPhase,
    ExperimentVerdict,
    PausedBy,
    Phase,
    Stage,
    StatusModel,
    Verdict,
)
from modelpilot.api.edge import EdgeStatus
from modelpilot.api.monitoring import DriftStatus
from modelpilot.api.serving import (
    Accelerator,
    ModelSource,
    Resources,
    Runtime,
)

# ------------------------------------------------------------------------------------------ status


class StableStatus(StatusModel):
    """The revision serving production traffic."""

    version: str | None = Field(default=None, description="spec.model.version of the stable revision.", max_length=128)
    revision: str | None = Field(default=None, description="Hash of the stable serving template.", max_length=64)
    replicas: int | None = Field(default=None, description="Pods of the stable Deployment.", ge=0)
    ready_replicas: int | None = Field(default=None, description="Ready pods of the stable Deployment.", ge=0)
    template: ServingTemplate | None = Field(
        default=None, description="The stable serving template (model, runtime, resources, accelerator)."
    )


class AnalysisRecord(StatusModel):
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


class ComparisonStatus(StatusModel):
    """One experiment metric compared between the tracks."""

    metric: str = Field(description="Experiment metric name.", max_length=63)
    verdict: ExperimentVerdict = Field(
        description="Winner (the canary is better), Loser (worse), NoDifference (enough samples, no significant "
        "difference) or Inconclusive (too few samples or no data)."
    )
    canary: float | None = Field(default=None, description="The canary's rate or mean.")
    stable: float | None = Field(default=None, description="Stable's rate or mean.")
    difference: float | None = Field(default=None, description="canary - stable.")
    ci_low: float | None = Field(default=None, description="Lower bound of the difference's confidence interval.")
    ci_high: float | None = Field(default=None, description="Upper bound of the difference's confidence interval.")
    p_value: float | None = Field(default=None, description="Two-sided p-value of the test.", ge=0, le=1)
    samples_canary: float | None = Field(default=None, description="The canary's trials (or count).", ge=0)
    samples_stable: float | None = Field(default=None, description="Stable's trials (or count).", ge=0)
    detail: str | None = Field(default=None, description="The comparison in words.", max_length=512)


class ExperimentStatus(StatusModel):
    """The A/B experiment's latest comparisons (interim until final)."""

    final: bool = Field(description="Whether the experiment's duration is over and this is its verdict.")
    verdict: ExperimentVerdict = Field(description="Combined: Loser if any metric loses, Inconclusive if any is, "
                                       "Winner if any wins, else NoDifference.")
    results: list[ComparisonStatus] = Field(default_factory=list, description="One per experiment metric.",
                                            max_length=8)


class CanaryStatus(StatusModel):
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
    stage: Stage | None = Field(
        default=None,
        description="shadow (mirrored requests only), segment (matching requests only), experiment (a fixed "
        "split) or steps (the weight steps); absent until the canary is Ready.",
    )
    stage_started_at: datetime | None = Field(default=None, description="When the current stage began.")
    experiment: ExperimentStatus | None = Field(default=None, description="Strategy Experiment: the comparisons.")


class ReplicaSample(StatusModel):
    """The stable track's pod count from `time` on (a change of it)."""

    time: datetime = Field(description="When the count changed (RFC 3339).")
    replicas: int = Field(description="Pods of the stable Deployment from then on.", ge=0)


class ServerlessStatus(StatusModel):
    """Scale to zero (autoscaling.minReplicas 0): whether the track is at zero, its idle clock, its
    cold starts and the pod counts of the last 24 hours (the plugin's cost view)."""

    scaled_to_zero: bool = Field(description="No stable pod runs; requests are held by the activator.")
    last_request_time: datetime | None = Field(
        default=None, description="The last request seen by a model server or the activator (to about 30 s)."
    )
    ready_since: datetime | None = Field(
        default=None, description="Since when every pod has been Ready: the idle clock runs from here or from "
        "the last request, whichever is later. Absent while a pod is starting, a canary is in flight or the "
        "track is at zero."
    )
    last_scaled_to_zero_time: datetime | None = Field(default=None, description="When it last went to zero.")
    last_activation_time: datetime | None = Field(default=None, description="When it last scaled from zero.")
    activations: int | None = Field(
        default=None, description="The activator's activation count last read (a new count adds a cold start).",
        ge=0,
    )
    cold_starts: list[float] = Field(
        default_factory=list, description="Seconds the first held request waited, last 20 activations, oldest "
        "first.", max_length=20
    )
    last_cold_start_seconds: float | None = Field(default=None, description="The last cold start.", ge=0)
    p50_cold_start_seconds: float | None = Field(default=None, description="Median of coldStarts.", ge=0)
    replica_history: list[ReplicaSample] = Field(
        default_factory=list, description="Pod-count changes of the last 24 hours, oldest first (the first one "
        "may be older: the count at the start of the window).", max_length=200
    )


class ServingTemplate(StatusModel):
    """The serving part of a spec (what the revision hashes): kept for the stable track, so the stable
    Deployment keeps its template while a canary runs a newer one, and after an operator restart."""

    model: ModelSource = Field(description="The stable model.")
    runtime: Runtime | None = Field(default=None, description="The stable model-server container.")
    resources: Resources | None = Field(default=None, description="The stable container resources.")
    accelerator: Accelerator | None = Field(default=None, description="The stable GPU placement.")


class Condition(StatusModel):
    """A standard Kubernetes condition (metav1.Condition)."""

    type: str = Field(description="Condition type: Ready, Progressing, Degraded, Reconciling, Stalled, "
                      "DataDrift or ConceptDrift.",
                      min_length=1, max_length=316)
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


class ModelDeploymentStatus(StatusModel):
    """Observed state, written only by the operator through the status subresource."""

    observed_generation: int | None = Field(default=None, description="metadata.generation last reconciled.", ge=0)
    phase: Phase | None = Field(
        default=None, description="Summary: Pending, Progressing, Ready, Degraded or Failed."
    )
    stable: StableStatus | None = Field(default=None, description="The revision serving production traffic.")
    canary: CanaryStatus | None = Field(default=None, description="The rollout in progress, if any.")
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Ready, Progressing and Degraded; the kstatus pair, each only while True: Reconciling "
                    "(a rollout under way) or Stalled (the operator will not go on by itself: a rollback, an "
                    "abort, a missed progress deadline, an invalid spec); DataDrift and ConceptDrift while "
                    "monitoring is on.",
        max_length=16,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    url: str | None = Field(default=None, description="In-cluster URL of the Service <name>.", max_length=512)
    drift: DriftStatus | None = Field(default=None, description="The stable track's data and concept drift.")
    serverless: ServerlessStatus | None = Field(
        default=None, description="Scale to zero: present while autoscaling.minReplicas is 0."
    )
    edge: EdgeStatus | None = Field(default=None, description="Target Edge: the fleet by node state.")
    selector: str | None = Field(
        default=None,
        description="Label selector of the stable pods (for the scale subresource and HPAs).",
        max_length=1024,
    )
