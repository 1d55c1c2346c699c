"""Terminal views of a ModelDeployment's rollout (rich), shared by the demo and the kubectl plugin.

`render(md, live)` draws versions, the rollout's stage, a weight bar, the live metrics of both
tracks against their thresholds, the last analyses, an experiment's comparisons and the
conditions; `plain_line(md, live)` says the same in one line for logs and non-terminals.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from modelpilot.cli.edge_view import edge_section
from modelpilot.cli.experiment_view import experiment_table, plain_words
from modelpilot.cli.serverless_view import serverless_section
from modelpilot.cli.viewmodel import analysis_rows, head, last_round, metric_limits
from modelpilot.cli.viewmodel import conditions as condition_rows

# track -> metric -> value (None: no data)
Live = Mapping[str, Mapping[str, float | None]]

VERDICT_STYLE = {"Pass": "green", "Fail": "bold red", "Inconclusive": "yellow", "Error": "magenta"}


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


def plain_table(*columns: str) -> Table:
    """A borderless table; MESSAGE and DETAIL columns wrap, the others never do."""
    table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold", padding=(0, 3, 0, 0))
    for column in columns:
        table.add_column(column, no_wrap=column not in ("MESSAGE", "DETAIL"), overflow="fold")
    return table


def _fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "—"
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf"
    return f"{value:.3g}{unit}"


def weight_bar(weight: int, width: int = 40, note: str = "") -> Text:
    filled = round(width * weight / 100)
    bar = Text()
    bar.append("█" * (width - filled), style="green")
    bar.append("█" * filled, style="yellow")
    bar.append(f"  stable {100 - weight}% / canary {weight}%{note}")
    return bar


def _analysis_table(title: str, records: Sequence[Mapping[str, Any]]) -> Table:
    table = Table(title=title, expand=False)
    for column in ("time", "metric", "value", "threshold", "verdict", "detail"):
        table.add_column(column)
    for record in analysis_rows(records):
        verdict = record["verdict"]
        table.add_row(record["time"][11:19], record["metric"], _fmt(record["value"]), record["threshold"],
                      Text(verdict, style=VERDICT_STYLE.get(verdict, "")), record["detail"][:60])
    return table


def render(md: Mapping[str, Any], live: Live | None = None, *, latest_only: bool = False,
           events: Sequence[Mapping[str, Any]] | None = None, now: dt.datetime | None = None) -> Group:
    """The rollout panel. `latest_only` shows the most recent analysis (every metric it measured)
    instead of the last six records; `events` (dicts with time, type, reason, message; oldest
    first) adds a table of recent events; `now` (default: the clock) times the current stage."""
    meta, status = md.get("metadata") or {}, md.get("status") or {}
    title = f"{meta.get('namespace')}/{meta.get('name')}  phase {status.get('phase', '?')}"
    parts: list[Any] = [_head(md, now)]
    if live:
        parts.append(_live_table(md, live))
    if (zero := serverless_section(md, now)) is not None:
        parts.append(zero)
    if (fleet := edge_section(md)) is not None:
        parts.append(fleet)
    canary = status.get("canary") or {}
    analyses = canary.get("analyses") or []
    if analyses and latest_only:
        parts.append(_analysis_table("last analysis", last_round(analyses)))
    elif analyses:
        parts.append(_analysis_table("last analyses", analyses[-6:]))
    if canary.get("experiment"):
        parts.append(experiment_table(md, canary["experiment"]))
    conditions = Table(title="conditions", expand=False)
    for column in ("type", "status", "reason", "message"):
        conditions.add_column(column)
    for cond in condition_rows(md):
        conditions.add_row(cond["type"], cond["status"], cond["reason"], cond["message"][:90])
    parts.append(conditions)
    if events is not None:
        parts.append(_events_table(events))
    return Group(Panel(Group(*parts), title=title))


def _head(md: Mapping[str, Any], now: dt.datetime | None = None) -> Table:
    """Versions, the canary's step and counters, its stage, the weight bar and the last decision."""
    data = head(md, now)
    stable, canary = data["stable"], data["canary"]
    grid = Table.grid(padding=(0, 2))
    grid.add_row("spec version", data["specVersion"])
    grid.add_row("stable", f"{stable['version'] or '—'} ({stable['readyReplicas']}/{stable['replicas']} ready)")
    if canary is None:
        grid.add_row("weight", weight_bar(0))
        return grid
    step = canary["step"]
    grid.add_row("canary", f"{canary['version']}  state {canary['state']}  "
                           + (f"step {step}  " if step != "-" else "")
                           + f"failed checks {canary['failedChecks']}  "
                           f"provider errors {canary['providerErrors']}")
    if canary["stage"]:
        grid.add_row("stage", canary["stage"])
    grid.add_row("weight", weight_bar(canary["weight"], note=canary["weightNote"]))
    if canary["message"]:
        grid.add_row("last decision", Text(canary["message"][:200]))
    return grid


def _live_table(md: Mapping[str, Any], live: Live) -> Table:
    limits = metric_limits(md)
    table = Table(title="live (Prometheus)", expand=False)
    for column, justify in (("metric", "left"), ("stable", "right"), ("canary", "right"), ("limit", "left")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for metric in sorted({m for values in live.values() for m in values}):
        unit = "%" if metric == "error-rate" else " ms" if metric == "latency-p99" else ""
        table.add_row(metric, _fmt((live.get("stable") or {}).get(metric), unit),
                      _fmt((live.get("canary") or {}).get(metric), unit), limits.get(metric, ""))
    return table


def _events_table(events: Sequence[Mapping[str, Any]]) -> Table:
    table = Table(title="recent events", expand=False)
    for column in ("time", "type", "reason", "message"):
        table.add_column(column)
    for event in events:
        style = "yellow" if event.get("type") == "Warning" else ""
        table.add_row(str(event.get("time", ""))[11:19], Text(str(event.get("type", "")), style=style),
                      str(event.get("reason", "")), str(event.get("message", ""))[:100])
    if not events:
        table.add_row("", "", "", "no events (they expire after an hour)")
    return table


def plain_line(md: Mapping[str, Any], live: Live | None = None) -> str:
    status = md.get("status") or {}
    canary = status.get("canary") or {}
    stable = status.get("stable") or {}
    words = [f"phase={status.get('phase', '?')}", f"stable={stable.get('version', '-')}"]
    if canary:
        words += [f"canary={canary.get('version')}", f"state={canary.get('state')}", f"weight={canary.get('weight')}%",
                  f"failed={canary.get('failedChecks', 0)}", *plain_words(canary)]
    if live:
        for track in ("stable", "canary"):
            values = live.get(track) or {}
            words += [f"{track}.{metric}={_fmt(value)}" for metric, value in sorted(values.items())]
    return " ".join(words)
