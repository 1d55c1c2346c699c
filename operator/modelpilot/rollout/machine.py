"""The canary state machine, pure: `decide(config, canary, observation, now) -> Decision`.

One call per reconcile ("tick"). All rollout state lives in `CanaryState`, which round-trips
through `status.canary`, so a restarted operator resumes exactly where it was and a tick that is
repeated without new information takes no step twice (steps only move on a fresh analysis, and an
analysis is only due `interval` after the previous one, whose time is in the state).

States:
  Progressing  waiting for the canary to be Ready (step -1), then one analysis per interval
  Paused       by spec.paused, or by the onInconclusive / onProviderError policy (needs an action)
  Promoting    the stable Deployment takes the canary's template; ends when it has rolled out
  RolledBack   traffic back on stable, canary at zero, Degraded; until a new revision or `retry`
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field, replace
from typing import Literal

from modelpilot.api.models import CanaryPhase as State
from modelpilot.api.models import Verdict

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
        value = "no data" if self.value is None else _fmt(self.value)
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
    paused_by: Literal["", "spec", "inconclusive", "provider-error"] = ""
    reason: str = ""  # CamelCase reason of the last state change (for conditions)
    message: str = ""
    analyses: tuple[Measurement, ...] = ()


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


def _fmt(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return f"{value:.4g}"


def _seconds(a: dt.datetime, b: dt.datetime) -> float:
    return (a - b).total_seconds()


def next_analysis_at(canary: CanaryState, config: CanaryConfig) -> dt.datetime | None:
    """When the next analysis is due (None when no analysis runs in this state)."""
    if canary.state != "Progressing" or canary.step < 0 or canary.ready_at is None:
        return None
    if canary.last_analysis_at is None:
        return canary.ready_at + dt.timedelta(seconds=max(config.initial_delay, config.interval))
    return canary.last_analysis_at + dt.timedelta(seconds=config.interval)


def analysis_due(canary: CanaryState | None, config: CanaryConfig, now: dt.datetime, canary_ready: bool,
                 paused: bool = False) -> bool:
    """Whether the caller should run an analysis this tick and pass it to `decide`."""
    if canary is None or paused or not canary_ready:
        return False
    due = next_analysis_at(canary, config)
    return due is not None and now >= due


def _start(obs: Observation, now: dt.datetime) -> CanaryState:
    return CanaryState(state="Progressing", version=obs.desired_version, revision=obs.desired_revision,
                       started_at=now, last_progress_at=now, reason="Started",
                       message=f"canary {obs.desired_version} starting")


def _rollback(canary: CanaryState, reason: str, message: str) -> Decision:
    state = replace(canary, state="RolledBack", weight=0, reason=reason, message=message, paused_by="")
    return Decision(state, events=(Event("Warning", "RolledBack", message),), outcome="rolled-back")


def _hold(canary: CanaryState, config: CanaryConfig, now: dt.datetime, events: tuple[Event, ...] = (),
          ready: bool = True, **kw: object) -> Decision:
    # While the canary is not Ready no analysis can run: wake at the deadline only (its pods'
    # events wake the reconciler as soon as they become Ready), never in a tight loop.
    due = next_analysis_at(canary, config) if ready else None
    deadline = canary.last_progress_at + dt.timedelta(seconds=config.progress_deadline)
    wake = [t for t in (due, deadline) if t is not None]
    requeue = max(0.5, min(_seconds(t, now) for t in wake)) if wake and canary.state == "Progressing" else None
    return Decision(canary, events=events, requeue_after=requeue, **kw)  # type: ignore[arg-type]


def _promoting(config: CanaryConfig, canary: CanaryState, obs: Observation, now: dt.datetime,
               consume: bool) -> Decision:
    """Waiting for the stable Deployment to roll out the promoted template, within progressDeadline
    from the promotion; past it the wait goes on (stable keeps serving, nothing to roll back to
    safely) but is reported Degraded with the reason the status finds (e.g. InsufficientAccelerator)."""
    if obs.stable_rolled_out:
        message = f"version {canary.version} promoted: stable rolled out, traffic back on stable, canary at zero"
        return Decision(None, events=(Event("Normal", "Promoted", message),), outcome="promoted",
                        consume_action=consume)
    deadline = canary.last_progress_at + dt.timedelta(seconds=config.progress_deadline)
    if now <= deadline:
        return Decision(canary, requeue_after=max(0.5, _seconds(deadline, now)), consume_action=consume)
    if canary.reason == "PromotionStalled":
        return Decision(canary, consume_action=consume)
    message = (f"promotion of {canary.version} stalled: the stable Deployment has not rolled out the promoted "
               f"template within progressDeadline {config.progress_deadline:g}s; the previous pods keep serving")
    stalled = replace(canary, reason="PromotionStalled", message=message)
    return Decision(stalled, events=(Event("Warning", "PromotionStalled", message),), consume_action=consume)


def decide(config: CanaryConfig, canary: CanaryState | None, obs: Observation, now: dt.datetime) -> Decision:
    """One tick of the rollout. Pure: the same inputs always give the same decision."""
    consume = obs.action is not None
    # Promotion in flight: the stable snapshot already holds the canary's template.
    if canary is not None and canary.state == "Promoting" and canary.revision == obs.desired_revision:
        return _promoting(config, canary, obs, now, consume)
    if obs.desired_revision == obs.stable_revision or canary is None or canary.revision != obs.desired_revision:
        return _new_revision(canary, obs, now, consume)
    if obs.action is not None:
        return _action(config, canary, obs, now)
    if canary.state == "RolledBack":
        return Decision(canary)
    if obs.paused or canary.state == "Paused":
        return _pause(canary, obs, now)
    return _progressing(config, canary, obs, now)


def _new_revision(canary: CanaryState | None, obs: Observation, now: dt.datetime, consume: bool) -> Decision:
    """The spec is the stable revision (never changed, or reverted), or a revision the running
    canary is not for: start (or restart) on it at weight 0."""
    if obs.desired_revision == obs.stable_revision:
        if canary is None:
            return Decision(None, consume_action=consume)
        ended = "ended" if canary.state != "RolledBack" else "cleared"
        message = (f"spec reverted to the stable revision {obs.stable_revision}: canary {canary.version} {ended}, "
                   "no failure")
        return Decision(None, events=(Event("Normal", "CanaryCancelled", message),), consume_action=consume)
    fresh = _start(obs, now)
    if canary is not None and canary.state != "RolledBack":
        event = Event("Normal", "CanaryRestarted",
                      f"newer revision {obs.desired_version} mid-canary: restarting from step 0 "
                      f"(was {canary.version} at weight {canary.weight}%)")
    else:
        event = Event("Normal", "CanaryStarted", f"canary {obs.desired_version} started")
    return Decision(fresh, events=(event,), requeue_after=1.0, consume_action=consume)


def _action(config: CanaryConfig, canary: CanaryState, obs: Observation, now: dt.datetime) -> Decision:
    """A manual action, consumed once whatever it does."""
    if obs.action == "abort" and canary.state != "RolledBack":
        decision = _rollback(canary, "Aborted", f"canary {canary.version} aborted by a manual action")
        return replace(decision, consume_action=True)
    if obs.action == "retry":
        fresh = _start(obs, now)
        return Decision(fresh, events=(Event("Normal", "CanaryRetried",
                                             f"canary {canary.version} retried from step 0"),),
                        requeue_after=1.0, consume_action=True)
    if obs.action == "promote" and canary.state in ("Progressing", "Paused"):
        message = f"canary {canary.version} promoted by a manual action at weight {canary.weight}%"
        promoting = replace(canary, state="Promoting", reason="ManualPromotion", message=message,
                            paused_by="", last_progress_at=now)
        return Decision(promoting, promote=True, events=(Event("Normal", "Promoting", message),),
                        requeue_after=2.0, consume_action=True)
    if obs.action == "resume" and canary.state == "Paused" and not obs.paused:
        resumed = replace(canary, state="Progressing", paused_by="", provider_errors=0, last_progress_at=now,
                          reason="Resumed", message=f"canary {canary.version} resumed")
        return Decision(resumed, events=(Event("Normal", "Resumed", resumed.message),), requeue_after=1.0,
                        consume_action=True)
    if obs.action not in ACTIONS:
        warning = Event("Warning", "UnknownAction",
                        f"ignored modelpilot.io/action={obs.action!r}: use one of {', '.join(ACTIONS)}")
        return replace(_hold(canary, config, now, (warning,)), consume_action=True)
    ignored = Event("Normal", "ActionIgnored", f"action {obs.action} does nothing in state {canary.state}")
    return replace(_hold(canary, config, now, (ignored,)), consume_action=True)


def _pause(canary: CanaryState, obs: Observation, now: dt.datetime) -> Decision:
    """spec.paused freezes everything, the deadline clock included (reset when it lifts); a policy
    pause waits for promote, abort, retry or resume."""
    if obs.paused:
        if canary.state == "Paused":
            return Decision(canary)
        paused = replace(canary, state="Paused", paused_by="spec", reason="Paused",
                         message=f"canary {canary.version} paused by spec.paused at weight {canary.weight}%")
        return Decision(paused, events=(Event("Normal", "Paused", paused.message),))
    if canary.paused_by != "spec":
        return Decision(canary)
    resumed = replace(canary, state="Progressing", paused_by="", last_progress_at=now, reason="Resumed",
                      message=f"canary {canary.version} resumed")
    return Decision(resumed, events=(Event("Normal", "Resumed", resumed.message),), requeue_after=1.0)


def _progressing(config: CanaryConfig, canary: CanaryState, obs: Observation, now: dt.datetime) -> Decision:
    """Waiting for Ready, then one analysis per interval, all within progressDeadline."""
    overdue = _seconds(now, canary.last_progress_at) > config.progress_deadline
    if not obs.canary_ready:
        if overdue:
            what = "never became Ready" if canary.step < 0 else "is no longer Ready"
            return _rollback(canary, "ProgressDeadlineExceeded",
                             f"canary {canary.version} {what} within progressDeadline "
                             f"{config.progress_deadline:g}s; stable untouched")
        return _hold(canary, config, now, ready=False)
    if canary.step < 0:
        first = replace(canary, step=0, weight=config.steps[0], ready_at=now, last_progress_at=now,
                        reason="Analysing", message=f"canary {canary.version} Ready: weight {config.steps[0]}%")
        return _hold(first, config, now, (Event("Normal", "CanaryReady", first.message),))
    if obs.analysis is None:
        if overdue:
            return _rollback(canary, "ProgressDeadlineExceeded",
                             f"canary {canary.version} made no progress within progressDeadline "
                             f"{config.progress_deadline:g}s (last: {canary.message})")
        return _hold(canary, config, now)
    return replace(_analysed(config, canary, obs.analysis, now), measured=obs.analysis.measurements)


def _analysed(config: CanaryConfig, canary: CanaryState, result: AnalysisResult, now: dt.datetime) -> Decision:
    """One fresh analysis: its verdict under the policies."""
    analysed = replace(canary, last_analysis_at=now,
                       analyses=(*canary.analyses, *result.measurements)[-MAX_ANALYSES:])
    verdict = result.verdict
    if verdict == "Inconclusive" and config.on_inconclusive == "Fail":
        verdict = "Fail"
    if verdict == "Error":
        return _provider_error(config, analysed, result, now)
    analysed = replace(analysed, provider_errors=0)
    if verdict == "Fail":
        failed = canary.failed_checks + 1
        analysed = replace(analysed, failed_checks=failed, reason="AnalysisFailed",
                           message=f"analysis failed ({failed}/{config.failure_threshold}): {result.summary()}")
        if failed >= config.failure_threshold:
            return _rollback(analysed, "RolledBack",
                             f"canary {canary.version} rolled back at weight {canary.weight}%: {result.summary()}")
        return _hold(analysed, config, now, (Event("Warning", "AnalysisFailed", analysed.message),))
    if verdict == "Inconclusive":
        analysed = replace(analysed, reason="Inconclusive", message=f"analysis inconclusive: {result.summary()}")
        if config.on_inconclusive == "Pause":
            paused = replace(analysed, state="Paused", paused_by="inconclusive", reason="Paused",
                             message=f"canary {canary.version} paused on an inconclusive analysis "
                                     f"({result.summary()}); promote, abort, retry or resume")
            return Decision(paused, events=(Event("Normal", "Paused", paused.message),))
        return _hold(analysed, config, now, (Event("Normal", "AnalysisInconclusive", analysed.message),))
    return _passed(config, canary, analysed, result, now)


def _provider_error(config: CanaryConfig, analysed: CanaryState, result: AnalysisResult,
                    now: dt.datetime) -> Decision:
    errors = analysed.provider_errors + 1
    analysed = replace(analysed, provider_errors=errors, reason="ProviderError",
                       message=f"metric provider error {errors}/{config.max_provider_errors}: {result.summary()}")
    if errors < config.max_provider_errors:
        return _hold(analysed, config, now, (Event("Warning", "AnalysisError", analysed.message),))
    if config.on_provider_error == "Rollback":
        return _rollback(analysed, "ProviderErrors", f"canary {analysed.version} rolled back after {errors} "
                         f"consecutive metric provider errors: {result.summary()}")
    paused = replace(analysed, state="Paused", paused_by="provider-error", reason="Paused",
                     message=f"canary {analysed.version} paused after {errors} consecutive metric provider "
                             f"errors: {result.summary()}; promote, abort, retry or resume")
    return Decision(paused, events=(Event("Warning", "Paused", paused.message),))


def _passed(config: CanaryConfig, canary: CanaryState, analysed: CanaryState, result: AnalysisResult,
            now: dt.datetime) -> Decision:
    """The next step, or promotion after the last one."""
    if canary.step + 1 >= len(config.steps):
        message = f"canary {canary.version} passed the last step ({canary.weight}%): promoting ({result.summary()})"
        promoting = replace(analysed, state="Promoting", reason="Promoting", message=message, last_progress_at=now)
        return Decision(promoting, promote=True, events=(Event("Normal", "Promoting", message),), requeue_after=2.0)
    step = canary.step + 1
    advanced = replace(analysed, step=step, weight=config.steps[step], last_progress_at=now, reason="Analysing",
                       message=f"analysis passed: weight {config.steps[step]}% (step {step + 1}/{len(config.steps)}); "
                               f"{result.summary()}")
    return _hold(advanced, config, now, (Event("Normal", "StepAdvanced", advanced.message),))
