"""What the dashboard shows of a ModelDeployment, as plain data for its JSON API, and what it has
seen over time (`History`: the canary's weight at every poll, every analysis record). Pure.

Everything shown comes from the same functions as the terminal views (viewmodel.py and the
sections' `*_data` functions), so `kubectl modelpilot status` and the dashboard never disagree.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from modelpilot.cli import viewmodel
from modelpilot.cli.drift_view import drift_data
from modelpilot.cli.edge_view import fleet
from modelpilot.cli.experiment_view import experiment_data
from modelpilot.cli.serverless_view import serverless_data
from modelpilot.times import stamp

Key = tuple[str, str]  # (namespace, name)
WEIGHT_POINTS = 2000  # per object: a change of weight, step, version or state at most every poll
METRIC_POINTS = 500  # per object: analysis records, oldest dropped first


def weight_sample(item: Mapping[str, Any], now: dt.datetime) -> dict[str, Any]:
    """The canary's weight, step, version and state at `now` (weight None without a canary), from
    the object's viewmodel.list_item."""
    return {"time": stamp(now), "weight": item["weight"], "step": item["step"], "version": item["canary"],
            "state": item["state"]}


def metric_points(md: Mapping[str, Any]) -> list[dict[str, Any]]:
    """status.canary.analyses as chart points: the record with its canary version and the
    absolute limits of its threshold (max, min: None when it has none)."""
    canary = viewmodel.canary_of(md)
    points = []
    for row in viewmodel.analysis_rows(canary.get("analyses") or []):
        limits = viewmodel.threshold_limits(row["threshold"])
        points.append({**row, "version": canary.get("version"), "max": limits.get("max"), "min": limits.get("min")})
    return points


@dataclass
class Seen:
    """One object's samples since the dashboard started."""

    weights: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[tuple[Any, str, str], dict[str, Any]] = field(default_factory=dict)


class History:
    """The weights and analyses seen per object; `record` at every poll, `forget` what is gone."""

    def __init__(self, weight_points: int = WEIGHT_POINTS, metric_points: int = METRIC_POINTS) -> None:
        self._seen: dict[Key, Seen] = {}
        self._weight_points, self._metric_points = weight_points, metric_points

    def record(self, md: Mapping[str, Any], item: Mapping[str, Any], now: dt.datetime) -> None:
        """One poll's object and its viewmodel.list_item."""
        seen = self._seen.setdefault(viewmodel.ref(md), Seen())
        sample = weight_sample(item, now)
        last = seen.weights[-1] if seen.weights else None
        if last is None or any(last[k] != sample[k] for k in ("weight", "step", "version", "state")):
            seen.weights.append(sample)
            del seen.weights[:-self._weight_points]
        for point in metric_points(md):
            seen.metrics[(point["version"], point["time"], point["metric"])] = point
        if len(seen.metrics) > self._metric_points:
            for key in sorted(seen.metrics, key=lambda k: seen.metrics[k]["time"])[:-self._metric_points]:
                del seen.metrics[key]

    def forget(self, keep: set[Key]) -> None:
        for key in set(self._seen) - keep:
            del self._seen[key]

    def series(self, key: Key) -> dict[str, Any]:
        """{'weight': samples oldest first, 'metrics': [{metric, points oldest first}] by name}."""
        seen = self._seen.get(key) or Seen()
        by_metric: dict[str, list[dict[str, Any]]] = {}
        for point in sorted(seen.metrics.values(), key=lambda p: p["time"]):
            by_metric.setdefault(point["metric"], []).append(point)
        return {"weight": list(seen.weights),
                "metrics": [{"metric": name, "points": points} for name, points in sorted(by_metric.items())]}


def list_entry(item: Mapping[str, Any], now: dt.datetime) -> dict[str, Any]:
    """A row of the dashboard's list: an object's viewmodel.list_item and its age."""
    return {**item, "age": viewmodel.age(item["created"], now)}


def detail(md: Mapping[str, Any], events: Sequence[Mapping[str, Any]] | None, series: Mapping[str, Any],
           now: dt.datetime, events_error: str | None = None, *,
           item: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """One ModelDeployment for the dashboard. `events` None: not allowed to list them (or
    `events_error` says why they could not be read); `item`: its viewmodel.list_item, when at hand."""
    canary = viewmodel.canary_of(md)
    analyses = canary.get("analyses") or []
    experiment = canary.get("experiment")
    drift = drift_data(md, now)
    edge = (md.get("status") or {}).get("edge")
    return {
        "item": list_entry(viewmodel.list_item(md) if item is None else item, now),
        "head": viewmodel.head(md, now),
        "lastAnalysis": viewmodel.analysis_rows(viewmodel.last_round(analyses)),
        "analyses": viewmodel.analysis_rows(analyses),
        "series": series,
        "conditions": viewmodel.conditions(md),
        "notes": viewmodel.notes(md, events is not None or events_error is not None, drift["summary"]),
        "events": None if events is None else [dict(e) for e in events],
        "eventsError": events_error,
        "drift": drift,
        "edge": fleet(edge) if isinstance(edge, Mapping) else None,
        "serverless": serverless_data(md, now),
        "experiment": experiment_data(md, experiment) if experiment else None,
    }
