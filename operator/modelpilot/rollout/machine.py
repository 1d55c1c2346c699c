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
from dataclasses import replace

from modelpilot.rollout.experiment import conclude
from modelpilot.rollout.model import (
    ACTIONS,
    MAX_ANALYSES,
    Action,
    AnalysisResult,
    CanaryConfig,
    CanaryState,
    Decision,
    Event,
    Measurement,
    Observation,
    State,
    Verdict,
)
from modelpilot.rollout.stages import describe_stage, first_stage, next_stage, stage_elapsed, stage_seconds

# status.canary.reason of a canary rolled back by the abort action (its Event is RolledBack, like any
# rollback's; notify/events.py tells the two apart by this reason).
ABORTED = "Aborted"


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
    if obs.paused or obs.hold is not None or canary.state == "Paused":
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
        decision = _rollback(canary, ABORTED, f"canary {canary.version} aborted by a manual action")
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
    """spec.paused freezes everything, the deadline clock included (reset when it lifts), and so
    does detected drift with onDrift Pause (lifted when the drift clears); a policy pause waits for
    promote, abort, retry or resume."""
    if obs.paused:
        if canary.state == "Paused":
            return Decision(canary)
        paused = replace(canary, state="Paused", paused_by="spec", reason="Paused",
                         message=f"canary {canary.version} paused by spec.paused at weight {canary.weight}%")
        return Decision(paused, events=(Event("Normal", "Paused", paused.message),))
    if obs.hold is not None:
        if canary.state == "Paused":
            return Decision(canary)
        paused = replace(canary, state="Paused", paused_by="drift", reason="Paused",
                         message=f"canary {canary.version} paused at weight {canary.weight}%: {obs.hold}"[:2048])
        return Decision(paused, events=(Event("Warning", "Paused", paused.message),))
    if canary.paused_by not in ("spec", "drift"):
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
        stage, weight = first_stage(config.stages, config.steps)
        first = replace(canary, step=0, weight=weight, stage=stage, stage_started_at=now, ready_at=now,
                        last_progress_at=now, reason="Analysing",
                        message=f"canary {canary.version} Ready: {describe_stage(config.stages, stage, weight)}")
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
    concluded = canary.experiment is not None and canary.experiment.final
    analysed = replace(canary, last_analysis_at=now,
                       analyses=(*canary.analyses, *result.measurements)[-MAX_ANALYSES:],
                       experiment=canary.experiment if concluded else (result.experiment or canary.experiment))
    verdict = result.verdict
    if verdict == "Inconclusive" and config.on_inconclusive == "Fail":
        verdict = "Fail"
    if verdict == "Error":
        return _provider_error(config, analysed, result, now)
    report = result.experiment
    if verdict != "Fail" and canary.stage == "experiment" and not concluded and report is not None and report.final:
        return conclude(config, replace(analysed, provider_errors=0), report, now)
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
    if canary.stage in ("shadow", "segment", "experiment"):
        return _stage_passed(config, canary, analysed, result, now)
    if canary.step + 1 >= len(config.steps):
        message = f"canary {canary.version} passed the last step ({canary.weight}%): promoting ({result.summary()})"
        promoting = replace(analysed, state="Promoting", reason="Promoting", message=message, last_progress_at=now)
        return Decision(promoting, promote=True, events=(Event("Normal", "Promoting", message),), requeue_after=2.0)
    step = canary.step + 1
    advanced = replace(analysed, step=step, weight=config.steps[step], last_progress_at=now, reason="Analysing",
                       message=f"analysis passed: weight {config.steps[step]}% (step {step + 1}/{len(config.steps)}); "
                               f"{result.summary()}")
    return _hold(advanced, config, now, (Event("Normal", "StepAdvanced", advanced.message),))


def _stage_passed(config: CanaryConfig, canary: CanaryState, analysed: CanaryState, result: AnalysisResult,
                  now: dt.datetime) -> Decision:
    """A passing analysis in a shadow, segment or experiment stage: the next stage once the stage
    has lasted its duration (an experiment ends on its final report instead); until then, every
    pass is progress, so a stage longer than progressDeadline is not cut short."""
    stages = config.stages
    needed = stage_seconds(stages, canary.stage)
    elapsed = stage_elapsed(canary.stage_started_at, now)
    following = next_stage(stages, canary.stage, config.steps)
    if canary.stage == "experiment" or (needed is not None and elapsed < needed) or following is None:
        if canary.stage == "experiment" and analysed.experiment is not None and analysed.experiment.final:
            message = canary.message  # concluded: the verdict stays the message until an action
        elif following is None and canary.stage == "segment" and needed is not None and elapsed >= needed:
            message = (f"segment passed ({result.summary()}): the canary stays on its segment until a promote "
                       "action (no weight steps)")
        else:
            left = "" if needed is None else f", {max(0.0, needed - elapsed):.0f}s left"
            traffic = describe_stage(stages, canary.stage, canary.weight)
            message = f"{traffic}: analysis passed{left}; {result.summary()}"
        held = replace(analysed, last_progress_at=now, reason=canary.reason if message == canary.message
                       else "Analysing", message=message)
        return _hold(held, config, now)
    stage, weight = following
    advanced = replace(analysed, stage=stage, weight=weight, step=0, stage_started_at=now, last_progress_at=now,
                       reason="Analysing",
                       message=f"{canary.stage} passed: {describe_stage(stages, stage, weight)}; {result.summary()}")
    return _hold(advanced, config, now, (Event("Normal", "StageAdvanced", advanced.message),))


# The values live in model.py; callers import them from here too.
__all__ = [
    "ACTIONS",
    "MAX_ANALYSES",
    "Action",
    "AnalysisResult",
    "CanaryConfig",
    "CanaryState",
    "Decision",
    "Event",
    "Measurement",
    "Observation",
    "State",
    "Verdict",
    "analysis_due",
    "decide",
    "next_analysis_at",
]
