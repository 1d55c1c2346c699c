"""How a finished experiment ends, pure: its final report under onConclusion."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

from modelpilot.rollout.model import CanaryConfig, CanaryState, Decision, Event
from modelpilot.rollout.stages import ExperimentReport, conclusion

# The Event reason of a concluded experiment, and status.canary.reason while its split is held or
# after onConclusion rolled it back (no RolledBack Event then: notify/events.py).
EXPERIMENT_CONCLUDED = "ExperimentConcluded"


def conclude(config: CanaryConfig, canary: CanaryState, report: ExperimentReport, now: dt.datetime) -> Decision:
    """Promote (a Winner under Promote), roll back (a Loser under Promote, anything under Rollback)
    or hold the split for a human (Report, or no clear verdict under Promote). The guardrails keep
    running while the split is held."""
    what = conclusion(config.stages, report)
    verdict = f"experiment {canary.version} concluded: {report.verdict} ({report.summary()})"
    done = replace(canary, experiment=report, last_progress_at=now)
    if what == "promote":
        message = f"{verdict}: promoting"
        promoting = replace(done, state="Promoting", reason="ExperimentWon", message=message)
        return Decision(promoting, promote=True, events=(Event("Normal", EXPERIMENT_CONCLUDED, message),
                                                          Event("Normal", "Promoting", message)), requeue_after=2.0)
    if what == "rollback":
        message = f"{verdict}: rolled back (onConclusion {config.stages.on_conclusion})"
        rolled = replace(done, state="RolledBack", weight=0, paused_by="", reason=EXPERIMENT_CONCLUDED,
                         message=message)
        return Decision(rolled, events=(Event("Normal", EXPERIMENT_CONCLUDED, message),), outcome="rolled-back")
    message = (f"{verdict}: the split stays until a promote or abort action "
               f"(onConclusion {config.stages.on_conclusion})")
    held = replace(done, reason=EXPERIMENT_CONCLUDED, message=message)
    due = (canary.last_analysis_at or now) + dt.timedelta(seconds=config.interval)
    return Decision(held, events=(Event("Normal", EXPERIMENT_CONCLUDED, message),),
                    requeue_after=max(0.5, (due - now).total_seconds()))
