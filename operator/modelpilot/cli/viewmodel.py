"""What the plugin's views show of a ModelDeployment, as plain data (dicts of str, int, float, bool,
None and lists): the `list` row, the head of `status` (versions, canary, stage, weight), the
analyses against their thresholds, the conditions and the notes under the panel. Pure.

The terminal views (plugin.py, view.py) print the text fields (`*Text`, `line`, `title`); the
dashboard (dashboard_api.py) sends the same as JSON and its page prints them verbatim, keeping
the raw numbers for its charts only, so both word and format everything alike. Every status
field may be missing (an older operator, a canary not Ready yet), so nothing here assumes one
is set.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from modelpilot.cli.experiment_view import stage_cell, stage_text, step_text, weight_note
from modelpilot.resources.labels import ANNOTATION_ACTION

VERDICT_ORDER = {"Fail": 0, "Error": 1, "Inconclusive": 2, "Pass": 3}
DEFAULT_LIMITS = {"error-rate": "<= 1", "latency-p99": "<= 500"}
_ABSOLUTE_LIMIT = re.compile(r"^(<=|>=)\s*(\S+)$")


def _status(md: Mapping[str, Any]) -> Mapping[str, Any]:
    return md.get("status") or {}


def canary_of(md: Mapping[str, Any]) -> Mapping[str, Any]:
    """status.canary ({} without a canary)."""
    return _status(md).get("canary") or {}


def _text_or_none(value: Any) -> str | None:
    return str(value) if value else None


def ref(md: Mapping[str, Any]) -> tuple[str, str]:
    meta = md.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


# ------------------------------------------------------------------------------------ numbers and times


def number_text(value: float | None, unit: str = "") -> str:
    """A measurement in three significant digits (1.23e+03, 0.1, 500), '—' without data."""
    if value is None:
        return "—"
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf"
    return f"{value:.3g}{unit}"


def age(timestamp: str | None, now: dt.datetime | None = None) -> str:
    """kubectl's short age: 42s, 5m12s, 17m, 3h4m, 26h, 3d4h, 12d."""
    if not timestamp:
        return "<unknown>"
    then = dt.datetime.fromisoformat(str(timestamp).replace("Z", "+00:00"))
    seconds = max(0, int(((now or dt.datetime.now(dt.UTC)) - then).total_seconds()))
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if seconds < 120:
        return f"{seconds}s"
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if hours < 3:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if days < 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    return f"{days}d"


# ------------------------------------------------------------------------------------ analyses


def last_round(analyses: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The records of the most recent analysis: every metric it measured, against its threshold."""
    if not analyses:
        return []
    latest = max(str(record.get("time", "")) for record in analyses)
    return [record for record in analyses if str(record.get("time", "")) == latest]


def last_verdict(canary: Mapping[str, Any]) -> tuple[str, str]:
    """The verdict of the most recent analysis (its worst measurement) and the metric behind it."""
    records = last_round(canary.get("analyses") or [])
    if not records:
        return "", ""
    worst = min(records, key=lambda r: VERDICT_ORDER.get(str(r.get("verdict")), 9))
    verdict = str(worst.get("verdict", ""))
    return verdict, "" if verdict == "Pass" else str(worst.get("metric", ""))


def threshold_limits(threshold: str | None) -> dict[str, float]:
    """The absolute limits in an analysis record's threshold, as analysis/evaluate.threshold_text
    words it ('>= 5, <= 10' -> min 5, max 10); comparisons with stable ('ratio to stable <= 1.2')
    are no line on the value's scale."""
    limits: dict[str, float] = {}
    for part in str(threshold or "").split(","):
        found = _ABSOLUTE_LIMIT.match(part.strip())
        if not found:
            continue
        try:
            limits["max" if found.group(1) == "<=" else "min"] = float(found.group(2))
        except ValueError:
            continue
    return limits


def metric_limits(md: Mapping[str, Any]) -> dict[str, str]:
    """metric -> its limit in words, from spec.rollout.canary.analysis.metrics (the defaults when unset)."""
    canary = ((md.get("spec") or {}).get("rollout") or {}).get("canary") or {}
    metrics = (canary.get("analysis") or {}).get("metrics")
    if not metrics:
        return dict(DEFAULT_LIMITS)
    limits = {}
    for metric in metrics:
        parts = []
        if "max" in metric:
            parts.append(f"<= {metric['max']:g}")
        if "min" in metric:
            parts.append(f">= {metric['min']:g}")
        if "compareToStable" in metric:
            parts.append("vs stable")
        limits[metric["name"]] = ", ".join(parts)
    return limits


def analysis_rows(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The analysis records as the views show them: time, metric, value (None: no data) and
    valueText, threshold, verdict, detail."""
    return [{"time": str(record.get("time", "")), "metric": str(record.get("metric")), "value": record.get("value"),
             "valueText": number_text(record.get("value")), "threshold": str(record.get("threshold", "")),
             "verdict": str(record.get("verdict")), "detail": str(record.get("detail", ""))} for record in records]


# ------------------------------------------------------------------------------------ list and head


def list_item(md: Mapping[str, Any]) -> dict[str, Any]:
    """One ModelDeployment as `list` shows it. Canary fields are None without a canary; `ready`
    is the Ready condition's status (None before the operator wrote it); weightText and
    verdictText are the WEIGHT and VERDICT cells ('25%', 'Fail (error-rate)'; '-' when none)."""
    meta, spec, status = md.get("metadata") or {}, md.get("spec") or {}, _status(md)
    canary = canary_of(md)
    verdict, metric = last_verdict(canary) if canary else ("", "")
    ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
    weight = int(canary.get("weight") or 0) if canary else None
    return {
        "namespace": str(meta.get("namespace")), "name": str(meta.get("name")),
        "model": str((spec.get("model") or {}).get("version", "")),
        "stable": _text_or_none((status.get("stable") or {}).get("version")),
        "canary": _text_or_none(canary.get("version")),
        "state": str(canary.get("state", "?")) if canary else None,
        "step": step_text(md, canary) if canary else "-",
        "weight": weight, "weightText": "-" if weight is None else f"{weight}%",
        "verdict": verdict, "verdictMetric": metric,
        "verdictText": verdict + (f" ({metric})" if metric else "") if verdict else "-",
        "phase": str(status.get("phase") or ""),
        "stage": stage_cell(canary),
        "ready": None if ready is None else str(ready.get("status")),
        "created": meta.get("creationTimestamp"),
    }


def weight_text(weight: int, note: str = "") -> str:
    """'stable 75% / canary 25%' and what the weight alone does not say (a mirror, a segment)."""
    return f"stable {100 - weight}% / canary {weight}%{note}"


def _canary_head(md: Mapping[str, Any], canary: Mapping[str, Any], now: dt.datetime | None) -> dict[str, Any]:
    step = step_text(md, canary)
    failed, errors = canary.get("failedChecks", 0), canary.get("providerErrors", 0)
    weight, note = int(canary.get("weight") or 0), weight_note(md, canary)
    return {
        "version": canary.get("version"), "state": canary.get("state"), "step": step,
        "failedChecks": failed, "providerErrors": errors,
        "line": f"{canary.get('version')}  state {canary.get('state')}  " + (f"step {step}  " if step != "-" else "")
                + f"failed checks {failed}  provider errors {errors}",
        "stage": stage_text(md, canary, now), "weight": weight, "weightNote": note,
        "weightText": weight_text(weight, note), "message": str(canary.get("message") or ""),
    }


def head(md: Mapping[str, Any], now: dt.datetime | None = None) -> dict[str, Any]:
    """The head of `status`: its title, spec and stable versions (stableText: the stable line),
    and the canary (None without one) with its step ('-' off the weight steps), counters, its
    line of the head, stage in words, weight (weightText: the words beside the bar) and last
    decision."""
    meta, spec, status = md.get("metadata") or {}, md.get("spec") or {}, _status(md)
    stable, canary = status.get("stable") or {}, canary_of(md)
    ready, replicas = stable.get("readyReplicas", 0), stable.get("replicas", 0)
    return {
        "title": f"{meta.get('namespace')}/{meta.get('name')}  phase {status.get('phase', '?')}",
        "specVersion": str((spec.get("model") or {}).get("version", "?")),
        "stable": {"version": stable.get("version"), "readyReplicas": ready, "replicas": replicas},
        "stableText": f"{stable.get('version', '—')} ({ready}/{replicas} ready)",
        "canary": _canary_head(md, canary, now) if canary else None,
    }


def condition_row(cond: Mapping[str, Any]) -> dict[str, str]:
    """A status condition as the views show it: type, status, reason, message."""
    return {"type": str(cond.get("type")), "status": str(cond.get("status", "Unknown")),
            "reason": str(cond.get("reason", "")), "message": str(cond.get("message") or "")}


def conditions(md: Mapping[str, Any]) -> list[dict[str, str]]:
    return [condition_row(c) for c in _status(md).get("conditions") or []]


def notes(md: Mapping[str, Any], events_listed: bool, drift: str | None) -> list[str]:
    """The lines under `status`: events not allowed, a pending action, spec.paused, a status the
    operator has not written (or not for this generation), the drift summary and the URL."""
    meta, status = md.get("metadata") or {}, _status(md)
    lines = []
    if not events_listed:
        lines.append("events: not allowed to list events in this namespace")
    pending = (meta.get("annotations") or {}).get(ANNOTATION_ACTION)
    if pending:
        lines.append(f"pending action: {pending} (waiting for the operator)")
    if (md.get("spec") or {}).get("paused") is True:
        lines.append("spec.paused: true (kubectl modelpilot resume to continue)")
    observed, generation = status.get("observedGeneration"), meta.get("generation")
    if observed is None:
        lines.append("no status yet: waiting for the operator (is it running and watching this namespace?)")
    elif generation is not None and observed < generation:
        lines.append(f"the operator has not observed generation {generation} yet (status is of {observed})")
    if drift:
        lines.append(drift)
    if status.get("url"):
        lines.append(f"url: {status['url']}")
    return lines
