"""The rollout's values, pure: its configuration, its state (status.canary), one observation, one
decision. machine.py decides; these only carry."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Literal

from modelpilot.api.models import CanaryPhase as State
from modelpilot.api.models import Verdict
from modelpilot.rollout.stages import ExperimentReport, Stage, StageConfig

Action = Literal["promote", "abort", "retry", "resume"]
ACTIONS: tuple[str, ...] = ("promote", "abort", "retry", "resume")
MAX_ANALYSES = 10


@dataclass(frozen=True)
class CanaryConfig:
    """spec.rollout.canary, in seconds and plain values."""

    steps: tuple[int, ...]
    interval: float
    initial_delay: float
    failure_threshold: int
    progress_deadline: float
    on_inconclusive: Literal["Wait", "Pause", "Fail"] = "Wait"
    on_provider_error: Literal["Rollback", "Pause"] = "Rollback"
    max_provider_errors: int = 4
    stages: StageConfig = field(default_factory=StageConfig)


@dataclass(frozen=True)
class Measurement:
    """One metric of one analysis, as recorded in status.canary.analyses."""

    time: dt.datetime
    metric: str
    value: float | None
    threshold: str
    verdict: Verdict
    detail: str = ""

    def describe(self) -> str:
        value = "no data" if self.value is None else fmt(self.value)
        text = f"{self.metric}={value} (limit {self.threshold})"
        return f"{text}: {self.detail}" if self.detail else text


@dataclass(frozen=True)
class AnalysisResult:
    """The outcome of one analysis: an overall verdict and its measurements."""

    verdict: Verdict
    measurements: tuple[Measurement, ...] = ()
    reason: str = ""  # why, for Inconclusive/Error without a measurement (e.g. too few requests)
    # Custom queries the provider refused as invalid: (query, why). Not an outage: InvalidSpec.
    rejected: tuple[tuple[str, str], ...] = ()
    experiment: ExperimentReport | None = None  # strategy Experiment: the comparisons of this analysis

    def summary(self) -> str:
        parts = [m.describe() for m in self.measurements]
        if self.reason:
            parts.insert(0, self.reason)
        return "; ".join(parts) or self.verdict

    def failing(self) -> tuple[Measurement, ...]:
        return tuple(m for m in self.measurements if m.verdict == self.verdict)


@dataclass(frozen=True)
class CanaryState:
    state: State
    version: str
    revision: str
    started_at: dt.datetime
    last_progress_at: dt.datetime
    step: int = -1  # -1: not Ready yet, no traffic decided
    weight: int = 0
    failed_checks: int = 0
    provider_errors: int = 0
    ready_at: dt.datetime | None = None
    last_analysis_at: dt.datetime | None = None
    paused_by: Literal["", "spec", "inconclusive", "provider-error", "drift"] = ""
    reason: str = ""  # CamelCase reason of the last state change (for conditions)
    message: str = ""
    analyses: tuple[Measurement, ...] = ()
    stage: Stage = ""  # "" until Ready; then shadow, segment, experiment or steps
    stage_started_at: dt.datetime | None = None
    experiment: ExperimentReport | None = None  # the latest comparisons (final once concluded)


@dataclass(frozen=True)
class Event:
    type: Literal["Normal", "Warning"]
    reason: str
    message: str


@dataclass(frozen=True)
class Observation:
    desired_revision: str
    desired_version: str
    stable_revision: str | None
    canary_ready: bool = False
    stable_rolled_out: bool = False
    paused: bool = False
    action: str | None = None
    analysis: AnalysisResult | None = None
    hold: str | None = None  # why the canary must hold (drift detected with onDrift Pause); lifts by itself


@dataclass(frozen=True)
class Decision:
    canary: CanaryState | None
    promote: bool = False  # the stable snapshot takes the canary's (= the current spec's) template
    events: tuple[Event, ...] = ()
    requeue_after: float | None = None
    consume_action: bool = False
    outcome: Literal["", "promoted", "rolled-back"] = ""
    measured: tuple[Measurement, ...] = field(default=())

    @property
    def weight(self) -> int:
        return self.canary.weight if self.canary else 0

    @property
    def canary_running(self) -> bool:
        """Whether the canary Deployment should have pods."""
        return self.canary is not None and self.canary.state in ("Progressing", "Paused", "Promoting")


def fmt(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return f"{value:.4g}"
