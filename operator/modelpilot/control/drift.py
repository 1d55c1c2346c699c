"""The drift part of a reconcile (pure): when the stable track's drift is read next, and what the
DataDrift / ConceptDrift conditions, status.drift and their Events become.

Reading happens beside the reconcile (like an analysis): a due evaluation is handed to the
reconciler's runner, and its outcome comes back into a later plan. Between evaluations the
conditions and status.drift are carried over as stored, so a reconcile for any other reason
changes nothing about drift.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from modelpilot.analysis.drift_judge import DriftReport, unavailable
from modelpilot.api.monitoring import DriftMonitoring
from modelpilot.rollout.machine import Event
from modelpilot.status import DRIFT_CONDITIONS, Condition
from modelpilot.times import parse_time

_STATUS = {"True": True, "False": False}


@dataclass(frozen=True)
class DriftRequest:
    """Read the stable track's (revision `revision`) drift, due at `due`."""

    namespace: str
    name: str
    revision: str
    due: dt.datetime
    settings: DriftMonitoring


@dataclass(frozen=True)
class DriftOutcome:
    """A finished evaluation: a report, or why the metrics could not be read."""

    at: dt.datetime
    report: DriftReport | None = None
    error: str | None = None


@dataclass(frozen=True)
class DriftPart:
    conditions: tuple[Condition, ...] = ()  # DataDrift, ConceptDrift; none while monitoring is off
    status: dict[str, Any] | None = None  # status.drift; None removes it
    events: tuple[Event, ...] = ()
    hold: str | None = None  # onDrift: Pause and drift detected: why a canary in flight holds
    next_at: dt.datetime | None = None  # when the next evaluation is due


def every_seconds(settings: DriftMonitoring) -> float:
    """A quarter of the window, between 5 s and 5 min: drift shows within about a window."""
    return min(300.0, max(5.0, settings.window_seconds / 4))


def _stored(conditions: list[dict[str, Any]]) -> dict[str, Condition]:
    out = {}
    for cond in conditions:
        kind = cond.get("type")
        if kind in DRIFT_CONDITIONS and isinstance(cond.get("reason"), str):
            out[kind] = Condition(kind, _STATUS.get(cond.get("status", "")), cond["reason"],
                                  str(cond.get("message") or ""))
    return out


def carried_conditions(conditions: list[dict[str, Any]]) -> tuple[Condition, ...]:
    """The drift conditions as stored, unchanged (a reconcile that does not evaluate drift)."""
    stored = _stored(conditions)
    return tuple(stored[kind] for kind in DRIFT_CONDITIONS if kind in stored)


def _events(before: dict[str, Condition], after: tuple[Condition, ...]) -> tuple[Event, ...]:
    """One Event per change: Warning when drift is detected, Normal when it no longer is."""
    events = []
    for cond in after:
        old = before.get(cond.type)
        was = old is not None and old.status is True
        if cond.status is True and (not was or (old is not None and old.reason != cond.reason)):
            events.append(Event("Warning", f"{cond.type}Detected", cond.message))
        elif was and cond.status is not True:
            events.append(Event("Normal", f"{cond.type}Cleared", cond.message))
    return tuple(events)


def drift_part(settings: DriftMonitoring, current: dict[str, Any], outcome: DriftOutcome | None,
               now: dt.datetime) -> DriftPart:
    """`current`: the status as stored. Without an outcome, what is stored is kept."""
    if not settings.enabled:
        return DriftPart()
    before = _stored(list(current.get("conditions") or []))
    previous = current.get("drift") if isinstance(current.get("drift"), dict) else None
    if outcome is not None and outcome.report is not None:
        conditions = (outcome.report.data, outcome.report.concept)
        status: dict[str, Any] | None = dict(outcome.report.status)
    else:
        conditions = tuple(before.get(kind) or Condition(kind, None, "NotEvaluated", "waiting for the first "
                                                         "evaluation") for kind in DRIFT_CONDITIONS)
        status = previous
        if outcome is not None:  # the read failed: conditions kept, the failure shown
            status = unavailable(settings, outcome.error or "unknown error", outcome.at, previous)
    evaluated = parse_time((status or {}).get("lastEvaluated"))
    next_at = now if evaluated is None else evaluated + dt.timedelta(seconds=every_seconds(settings))
    detected = [c for c in conditions if c.status is True]
    hold = None
    if settings.on_drift == "Pause" and detected:
        hold = "onDrift Pause: " + "; ".join(f"{c.type}: {c.message}" for c in detected)
    return DriftPart(conditions, status, _events(before, conditions), hold, next_at)


def drift_request(part: DriftPart, settings: DriftMonitoring, *, namespace: str, name: str, revision: str,
                  now: dt.datetime) -> DriftRequest | None:
    if not settings.enabled or part.next_at is None or part.next_at > now:
        return None
    return DriftRequest(namespace, name, revision, part.next_at, settings)
