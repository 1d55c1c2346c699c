"""The phases of a rollout before (or instead of) the weight steps, pure.

A canary that became Ready enters its first stage: `shadow` (mirrored requests only), `segment`
(only matching requests), `experiment` (a fixed split judged by a statistical test) or `steps`
(the weight steps). The shadow and segment stages last at least their duration and end on a
passing analysis; the experiment ends on its final report. machine.py calls these on every
passing analysis; everything else (failures, deadlines, actions) works the same in every stage.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

from modelpilot.api.common import ExperimentVerdict as Verdict

Stage = Literal["", "shadow", "segment", "steps", "experiment"]  # "": not Ready yet
OnConclusion = Literal["Promote", "Rollback", "Report"]


@dataclass(frozen=True)
class StageConfig:
    """The stages spec.rollout asks for, in seconds and plain values."""

    shadow_seconds: float | None = None  # None: no shadow stage
    mirror_percent: int = 0
    match: bool = False
    match_seconds: float = 0.0
    experiment_seconds: float | None = None  # None: strategy Canary
    experiment_split: int = 0
    on_conclusion: OnConclusion = "Report"


@dataclass(frozen=True)
class ComparisonRecord:
    """One experiment metric compared between the tracks (status.canary.experiment.results)."""

    metric: str
    verdict: Verdict
    canary: float | None = None
    stable: float | None = None
    difference: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None
    samples_canary: float = 0.0
    samples_stable: float = 0.0
    detail: str = ""


@dataclass(frozen=True)
class ExperimentReport:
    """The experiment's comparisons at one analysis; `final` once its duration is over."""

    final: bool
    verdict: Verdict
    results: tuple[ComparisonRecord, ...] = ()

    def summary(self) -> str:
        return "; ".join(f"{r.metric}: {r.verdict} ({r.detail})" if r.detail else f"{r.metric}: {r.verdict}"
                         for r in self.results) or self.verdict


def after_steps(config: StageConfig, steps: tuple[int, ...]) -> tuple[Stage, int]:
    """The stage after the shadow (or the first one without it) and its weight."""
    if config.match:
        return "segment", 0
    if config.experiment_seconds is not None:
        return "experiment", config.experiment_split
    return "steps", steps[0] if steps else 0


def first_stage(config: StageConfig, steps: tuple[int, ...]) -> tuple[Stage, int]:
    if config.shadow_seconds is not None:
        return "shadow", 0
    return after_steps(config, steps)


def next_stage(config: StageConfig, stage: Stage, steps: tuple[int, ...]) -> tuple[Stage, int] | None:
    """Where a finished stage leads; None when it is the last one before promotion."""
    if stage == "shadow":
        return after_steps(config, steps)
    if stage == "segment":
        return ("steps", steps[0]) if steps else None
    return None


def stage_seconds(config: StageConfig, stage: Stage) -> float | None:
    """How long a timed stage lasts at least (None for untimed ones)."""
    return {"shadow": config.shadow_seconds, "segment": config.match_seconds,
            "experiment": config.experiment_seconds}.get(stage)


def stage_elapsed(stage_started_at: dt.datetime | None, now: dt.datetime) -> float:
    return 0.0 if stage_started_at is None else (now - stage_started_at).total_seconds()


def capacity_percent(config: StageConfig, stage: Stage, weight: int, first_step: int) -> int:
    """The share of traffic the canary's pods must be able to serve in a stage (for sizing)."""
    if stage == "shadow":
        return config.mirror_percent
    if stage == "segment":
        return max(weight, first_step or 10)
    if stage == "experiment":
        return config.experiment_split
    return weight


def conclusion(config: StageConfig, report: ExperimentReport) -> Literal["promote", "rollback", "hold"]:
    """What a final experiment report does under onConclusion."""
    if config.on_conclusion == "Rollback":
        return "rollback"
    if config.on_conclusion == "Promote":
        if report.verdict == "Winner":
            return "promote"
        if report.verdict == "Loser":
            return "rollback"
    return "hold"


def describe_stage(config: StageConfig, stage: Stage, weight: int) -> str:
    """The traffic of a stage, in words."""
    return {"shadow": f"shadow: {config.mirror_percent}% of requests mirrored, clients see stable only",
            "segment": "segment: only matching requests on the canary",
            "experiment": f"experiment: {config.experiment_split}% of users on the canary",
            "steps": f"weight {weight}%", "": "starting"}[stage]
