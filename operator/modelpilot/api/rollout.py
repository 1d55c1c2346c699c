"""The rollout part of a spec: canary steps and timing, analysis metrics and policies, traffic
routing."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from modelpilot.api.common import (
    BUILTIN_METRICS,
    DISTRIBUTION_METRICS,
    DNS1123_LABEL,
    Duration,
    MetricProvider,
    SpecModel,
    ascending_percent_rules,
    cel_rules,
    check_ascending_percents,
    check_duration,
    duration_rules,
)
from modelpilot.api.durations import parse_duration
from modelpilot.api.experiment import Experiment
from modelpilot.api.traffic import RouteMatch, Shadow, TrafficRouting

# ----------------------------------------------------------------------------------------- rollout


class CompareToStable(SpecModel):
    """Judge the canary against the stable track: the same query runs on both."""

    model_config = ConfigDict(
        json_schema_extra=cel_rules(
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


_DISTRIBUTION_MESSAGE = ("prediction-shift and input-drift compare distributions themselves (the tracks' "
                         "predictions; the canary's inputs and the reference profile): give them max only (no "
                         "query, template or compareToStable)")
_DISTRIBUTION_CEL = "[" + ", ".join(f"'{n}'" for n in DISTRIBUTION_METRICS) + "]"
_BUILTIN_CEL = "[" + ", ".join(f"'{n}'" for n in BUILTIN_METRICS) + "]"


class Metric(SpecModel):
    """One analysis check run every interval. A built-in name (error-rate, latency-p99) selects its
    query; otherwise give `template` (a built-in query under another name) or a PromQL `query`."""

    model_config = ConfigDict(
        json_schema_extra=cel_rules(
            (
                "has(self.max) || has(self.min) || has(self.compareToStable)",
                "a metric needs at least one of max, min or compareToStable",
            ),
            ("!(has(self.query) && has(self.template))", "a metric may set query or template, not both"),
            (
                f"has(self.query) || has(self.template) || self.name in {_BUILTIN_CEL}",
                "a metric that is not built in (error-rate, latency-p99, prediction-shift, input-drift) needs a "
                "query or a template",
            ),
            (
                "!has(self.min) || !has(self.max) || self.min <= self.max",
                "a metric's min must be <= its max",
            ),
            (
                f"!(self.name in {_DISTRIBUTION_CEL}) || (!has(self.query) && !has(self.template) && "
                "!has(self.compareToStable))",
                _DISTRIBUTION_MESSAGE,
            ),
        )
    )

    name: str = Field(
        description="Unique name (DNS-1123 label); error-rate, latency-p99, prediction-shift (Jensen-Shannon "
        "distance between the tracks' prediction distributions, 0-1) and input-drift (the largest population "
        "stability index of the canary's input features against the reference profile) are built in.",
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
            raise ValueError("a metric that is not built in (error-rate, latency-p99, prediction-shift, "
                             "input-drift) needs a query or a template")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("a metric's min must be <= its max")
        if self.name in DISTRIBUTION_METRICS and (self.query or self.template or self.compare_to_stable):
            raise ValueError(_DISTRIBUTION_MESSAGE)
        return self


def _default_metrics() -> list[Metric]:
    return [Metric(name="error-rate", max=1), Metric(name="latency-p99", max=500)]


class Analysis(SpecModel):
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


_GATEWAY_ONLY = "gatewayAPI routing is required: the replicas router cannot mirror or match requests"


class Canary(SpecModel):
    """The canary schedule: an optional shadow and segment phase, traffic steps, analysis timing and
    failure limits."""

    model_config = ConfigDict(
        json_schema_extra=cel_rules(
            ("!has(self.steps) || size(self.steps) > 0 || has(self.match)",
             "rollout.canary.steps may be empty only with match (the canary then stays on its segment until "
             "promote)"),
            ("!(has(self.shadow) || has(self.match)) || (has(self.trafficRouting) && "
             "has(self.trafficRouting.gatewayAPI))", f"rollout.canary shadow and match: {_GATEWAY_ONLY}"),
        )
    )

    steps: list[int] = Field(
        default=[10, 25, 50],
        description=(
            "Canary traffic weights in percent, strictly ascending, each between 1 and 99; promotion "
            "follows a passing analysis at the last step. Empty only with `match`. Default [10, 25, 50]."
        ),
        max_length=20,
        json_schema_extra=ascending_percent_rules("rollout.canary.steps", 99),
    )
    interval: Duration = Field(
        default="30s",
        description="Time between analyses, at least 5s (default 30s).",
        json_schema_extra=duration_rules("rollout.canary.interval", minimum="5s"),
    )
    initial_delay: Duration = Field(
        default="30s",
        description="Warm-up after the canary is Ready before the first judgement (default 30s).",
        json_schema_extra=duration_rules("rollout.canary.initialDelay"),
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
        json_schema_extra=duration_rules("rollout.canary.progressDeadline", minimum="30s"),
    )
    analysis: Analysis = Field(default_factory=Analysis, description="How analyses judge the canary.")
    traffic_routing: TrafficRouting = Field(
        default_factory=TrafficRouting, description="How traffic is shifted (default: replicas)."
    )
    shadow: Shadow | None = Field(
        default=None, description="A shadow phase on mirrored requests before any user sees the canary."
    )
    match: list[RouteMatch] | None = Field(
        default=None,
        description=(
            "A segment phase after the shadow (if any): only requests matching one of these go to the canary "
            "until a passing analysis at least matchDuration in, then the weight steps (or, with no steps, "
            "until a promote action)."
        ),
        min_length=1,
        max_length=8,
    )
    match_duration: Duration = Field(
        default="1m",
        description="How long the segment phase runs at least (default 1m).",
        json_schema_extra=duration_rules("rollout.canary.matchDuration"),
    )

    @model_validator(mode="after")
    def _check_phases(self) -> Canary:
        if not self.steps and not self.match:
            raise ValueError("rollout.canary.steps may be empty only with match (the canary then stays on its "
                             "segment until promote)")
        if (self.shadow is not None or self.match) and self.traffic_routing.gateway_api is None:
            raise ValueError(f"rollout.canary shadow and match: {_GATEWAY_ONLY}")
        return self

    @field_validator("steps")
    @classmethod
    def _check_steps(cls, steps: list[int]) -> list[int]:
        return check_ascending_percents("rollout.canary.steps", steps, 99)

    @field_validator("interval")
    @classmethod
    def _check_interval(cls, value: str) -> str:
        return check_duration("rollout.canary.interval", value, 5.0, "5s")

    @field_validator("initial_delay")
    @classmethod
    def _check_initial_delay(cls, value: str) -> str:
        return check_duration("rollout.canary.initialDelay", value)

    @field_validator("progress_deadline")
    @classmethod
    def _check_progress_deadline(cls, value: str) -> str:
        return check_duration("rollout.canary.progressDeadline", value, 30.0, "30s")

    @property
    def interval_seconds(self) -> float:
        return parse_duration(self.interval)

    @property
    def initial_delay_seconds(self) -> float:
        return parse_duration(self.initial_delay)

    @property
    def progress_deadline_seconds(self) -> float:
        return parse_duration(self.progress_deadline)

    @field_validator("match_duration")
    @classmethod
    def _check_match_duration(cls, value: str) -> str:
        return check_duration("rollout.canary.matchDuration", value)

    @property
    def match_duration_seconds(self) -> float:
        return parse_duration(self.match_duration)


class Rollout(SpecModel):
    """How a new revision (model, runtime, resources or accelerator changed) reaches production."""

    model_config = ConfigDict(
        json_schema_extra=cel_rules(
            ("!has(self.strategy) || self.strategy != 'Experiment' || has(self.experiment)",
             "strategy Experiment needs rollout.experiment"),
            ("!has(self.strategy) || self.strategy != 'Experiment' || (has(self.canary) && "
             "has(self.canary.trafficRouting) && has(self.canary.trafficRouting.gatewayAPI))",
             f"strategy Experiment: {_GATEWAY_ONLY}"),
            ("!has(self.strategy) || self.strategy != 'Experiment' || !has(self.canary) || !has(self.canary.match)",
             "strategy Experiment splits all users: rollout.canary.match applies to strategy Canary only"),
        )
    )

    strategy: Literal["Canary", "Rolling", "Experiment"] = Field(
        default="Canary",
        description="Canary (metric-gated traffic steps, default), Rolling (a plain rolling update) or "
        "Experiment (a fixed split judged by a statistical test; needs gatewayAPI routing).",
    )
    canary: Canary = Field(
        default_factory=Canary,
        description="The canary schedule (strategy Canary); with Experiment: its shadow, timing, analysis "
        "(the guardrails) and routing.",
    )
    experiment: Experiment | None = Field(default=None, description="The A/B experiment (strategy Experiment).")

    @model_validator(mode="after")
    def _check_experiment(self) -> Rollout:
        if self.strategy != "Experiment":
            return self
        if self.experiment is None:
            raise ValueError("strategy Experiment needs rollout.experiment")
        if self.canary.traffic_routing.gateway_api is None:
            raise ValueError(f"strategy Experiment: {_GATEWAY_ONLY}")
        if self.canary.match:
            raise ValueError("strategy Experiment splits all users: rollout.canary.match applies to strategy "
                             "Canary only")
        return self
