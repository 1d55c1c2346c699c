"""The Experiment strategy: a fixed split for a duration, users sticky by header or cookie, and a
business metric per track compared with a statistical test at the end."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from modelpilot.api.common import DNS1123_LABEL, Duration, SpecModel, cel_rules, check_duration, duration_rules
from modelpilot.api.durations import parse_duration
from modelpilot.api.traffic import Sticky

_QUERY_HELP = ("PromQL returning one value per track; placeholders {{namespace}}, {{name}}, {{track}}, "
               "{{revision}} and {{window}} (the experiment so far) are substituted.")


def _query(what: str) -> object:
    return Field(default=None, description=f"{what}. {_QUERY_HELP}", min_length=1, max_length=4096)


class ExperimentMetric(SpecModel):
    """One business metric: a proportion (successes / trials, two-proportion z-test) or a mean
    (sum / count with the sum of squares for the variance, Welch's t-test)."""

    model_config = ConfigDict(
        json_schema_extra=cel_rules(
            (
                "(has(self.type) && self.type != 'Proportion') || (has(self.successes) && has(self.trials))",
                "a Proportion metric needs successes and trials",
            ),
            (
                "!has(self.type) || self.type != 'Mean' || "
                "(has(self.sum) && has(self.count) && has(self.sumOfSquares))",
                "a Mean metric needs sum, count and sumOfSquares",
            ),
        )
    )

    name: str = Field(description="Unique name (DNS-1123 label).", min_length=1, max_length=63,
                      pattern=DNS1123_LABEL)
    type: Literal["Proportion", "Mean"] = Field(
        default="Proportion", description="Proportion (successes / trials, default) or Mean (sum / count).")
    successes: str | None = _query("Proportion: successes in the window")  # type: ignore[assignment]
    trials: str | None = _query("Proportion: trials in the window")  # type: ignore[assignment]
    sum: str | None = _query("Mean: the sum of the observed values")  # type: ignore[assignment]
    count: str | None = _query("Mean: the number of observed values")  # type: ignore[assignment]
    sum_of_squares: str | None = _query("Mean: the sum of the squared values")  # type: ignore[assignment]
    higher_is_better: bool = Field(default=True, description="Whether a higher value wins (default true).")

    @model_validator(mode="after")
    def _check_queries(self) -> ExperimentMetric:
        if self.type == "Proportion" and (self.successes is None or self.trials is None):
            raise ValueError("a Proportion metric needs successes and trials")
        if self.type == "Mean" and (self.sum is None or self.count is None or self.sum_of_squares is None):
            raise ValueError("a Mean metric needs sum, count and sumOfSquares")
        return self

    def queries(self) -> dict[str, str]:
        """role -> query template, the roles the metric's test needs."""
        roles = {"successes": self.successes, "trials": self.trials} if self.type == "Proportion" else \
            {"sum": self.sum, "count": self.count, "sumOfSquares": self.sum_of_squares}
        return {role: query for role, query in roles.items() if query is not None}


class Experiment(SpecModel):
    """An A/B experiment: `split` percent of users on the canary for `duration`, then a verdict per
    metric (Winner, Loser, NoDifference or Inconclusive) and `onConclusion`."""

    split: int = Field(default=50, description="Percent of traffic (users, when sticky) on the canary (default 50).",
                       ge=1, le=99)
    sticky: Sticky | None = Field(
        default=None,
        description="Keep each user on one version by hashing this header or cookie (needs Envoy Gateway: "
        "a BackendTrafficPolicy with a consistent hash is created beside the HTTPRoute).",
    )
    duration: Duration = Field(
        default="1h",
        description="How long the split runs before the verdict (at least 10s; default 1h).",
        json_schema_extra=duration_rules("rollout.experiment.duration", minimum="10s"),
    )
    min_samples: int = Field(default=1000, description="Trials (or counts) each track needs for a verdict; "
                             "fewer make it Inconclusive (default 1000).", ge=1)
    confidence: float = Field(default=0.95, description="Confidence level of the test and its intervals "
                              "(0.5 to 0.999; default 0.95).", ge=0.5, le=0.999)
    metrics: list[ExperimentMetric] = Field(
        description="The business metrics compared; names unique.", min_length=1, max_length=8,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    on_conclusion: Literal["Promote", "Rollback", "Report"] = Field(
        default="Report",
        description=(
            "At the end: Promote (the canary if it wins, rollback if it loses, otherwise keep the split for a "
            "human), Rollback (always back to stable) or Report (default: keep the split until a promote or "
            "abort action)."
        ),
    )

    @field_validator("duration")
    @classmethod
    def _check_duration(cls, value: str) -> str:
        return check_duration("rollout.experiment.duration", value, 10.0, "10s")

    @field_validator("metrics")
    @classmethod
    def _unique(cls, metrics: list[ExperimentMetric]) -> list[ExperimentMetric]:
        names = [m.name for m in metrics]
        if len(names) != len(set(names)):
            raise ValueError("experiment metric names must be unique")
        return metrics

    @property
    def duration_seconds(self) -> float:
        return parse_duration(self.duration)
