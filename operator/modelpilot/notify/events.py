"""Which of the operator's Events a webhook hears about, and what a notification carries (pure)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from modelpilot.api.notifications import NotificationTarget
from modelpilot.rollout.experiment import EXPERIMENT_CONCLUDED
from modelpilot.rollout.machine import ABORTED
from modelpilot.rollout.model import Event
from modelpilot.status import DRIFT_CONDITIONS

# The Event reasons the reconcile emits (rollout/machine.py, control/tick.py, control/drift.py)
# -> the notification event they are. Reasons not listed (analysis verdicts, Promoting, conditions,
# scale to zero, ...) are never sent.
REASONS: dict[str, str] = {
    "CanaryStarted": "Started",
    "CanaryRestarted": "Started",
    "CanaryRetried": "Started",
    "StepAdvanced": "StepAdvanced",
    "StageAdvanced": "StepAdvanced",  # shadow, segment or experiment stage to the next
    "Paused": "Paused",
    "Resumed": "Resumed",
    "Promoted": "Promoted",
    "RolledBack": "RolledBack",
    # control/drift.py: `<condition>Detected` and `<condition>Cleared` for each drift condition.
    **{f"{kind}Detected": "DriftDetected" for kind in DRIFT_CONDITIONS},
    **{f"{kind}Cleared": "DriftCleared" for kind in DRIFT_CONDITIONS},
}


def notification_event(reason: str, canary: Mapping[str, Any]) -> str | None:
    """The notification event an operator Event is, given status.canary as written with it."""
    if reason == "RolledBack" and canary.get("reason") == ABORTED:
        return "Aborted"  # the manual abort action: the same Event as an automatic rollback
    if reason == EXPERIMENT_CONCLUDED and canary.get("state") == "RolledBack":
        return "RolledBack"  # a losing experiment goes back to stable without a RolledBack Event
    return REASONS.get(reason)


def status_facts(status: Mapping[str, Any]) -> dict[str, Any]:
    """What status holds of the rollout at that moment (absent keys left out)."""
    canary = status.get("canary") or {}
    stable = status.get("stable") or {}
    facts = {"stableVersion": stable.get("version"), "canaryVersion": canary.get("version"),
             "weight": canary.get("weight"), "step": canary.get("step"), "state": canary.get("state")}
    return {key: value for key, value in facts.items() if value is not None}


@dataclass(frozen=True)
class Notice:
    """One notification, the same for every target and every retry (same id)."""

    id: str
    event: str  # a NotificationEvent
    namespace: str
    name: str
    reason: str  # the operator Event's reason
    message: str
    time: dt.datetime
    facts: Mapping[str, Any] = field(default_factory=dict)


def notices(md: Mapping[str, Any], events: Iterable[Event], now: dt.datetime,
            new_id: Callable[[], str] = lambda: str(uuid.uuid4())) -> list[Notice]:
    """The notifications of a reconcile's Events, in their order; `md`: the ModelDeployment as
    written (status after the tick)."""
    meta = md.get("metadata") or {}
    status = md.get("status") or {}
    facts = status_facts(status)
    out = []
    for event in events:
        kind = notification_event(event.reason, status.get("canary") or {})
        if kind is not None:
            out.append(Notice(new_id(), kind, str(meta.get("namespace", "")), str(meta.get("name", "")),
                              event.reason, event.message, now, facts))
    return out


def wanted(target: NotificationTarget, notice: Notice) -> bool:
    return notice.event in target.events
