"""Terminal views of a ModelDeployment's rollout (rich), shared by the demo and the kubectl plugin.

`render(md, live)` draws versions, the rollout's stage, a weight bar, the live metrics of both
tracks against their thresholds, the last analyses, an experiment's comparisons and the
conditions; `plain_line(md, live)` says the same in one line for logs and non-terminals.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from modelpilot.cli.edge_view import edge_section
from modelpilot.cli.experiment_view import experiment_table, plain_words
from modelpilot.cli.serverless_view import serverless_section
from modelpilot.cli.viewmodel import analysis_rows, head, last_round, metric_limits, number_text, weight_text
from modelpilot.cli.viewmodel import conditions as condition_rows

# track -> metric -> value (None: no data)
Live = Mapping[str, Mapping[str, float | None]]

VERDICT_STYLE = {"Pass": "green", "Fail": "bold red", "Inconclusive": "yellow", "Error": "magenta"}


def plain_table(*columns: str) -> Table:
    """A borderless table; MESSAGE and DETAIL columns wrap, the others never do."""
    table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold", padding=(0, 3, 0, 0))
    for column in columns:
        table.add_column(column, no_wrap=column not in ("MESSAGE", "DETAIL"), overflow="fold")
    return table


def weight_bar(weight: int, text: str, width: int = 40) -> Text:
    """The bar, stable green and canary yellow, then `text` (viewmodel.weight_text)."""
    filled = round(width * weight / 100)
    bar = Text()
    bar.append("█" * (width - filled), style="green")
    bar.append("█" * filled, style="yellow")
    bar.append(f"  {text}")
    return bar


def _analysis_table(title: str, records: Sequence[Mapping[str, Any]]) -> Table:
    table = Table(title=title, expand=False)
    for column in ("time", "metric", "value", "threshold", "verdict", "detail"):
        table.add_column(column)
    for record in analysis_rows(records):
        verdict = record["verdict"]
        table.add_row(record["time"][11:19], record["metric"], record["valueText"], record["threshold"],
                      Text(verdict, style=VERDICT_STYLE.get(verdict, "")), record["detail"][:60])
    return table


def render(md: Mapping[str, Any], live: Live | None = None, *, latest_only: bool = False,
           events: Sequence[Mapping[str, Any]] | None = None, now: dt.datetime | None = None) -> Group:
    """The rollout panel. `latest_only` shows the most recent analysis (every metric it measured)
    instead of the last six records; `events` (dicts with time, type, reason, message; oldest
    first) adds a table of recent events; `now` (default: the clock) times the current stage."""
    status = md.get("status") or {}
    data = head(md, now)
    parts: list[Any] = [_head(data)]
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
    return Group(Panel(Group(*parts), title=data["title"]))


def _head(data: Mapping[str, Any]) -> Table:
    """Versions, the canary's step and counters, its stage, the weight bar and the last decision
    (viewmodel.head's data)."""
    canary = data["canary"]
    grid = Table.grid(padding=(0, 2))
    grid.add_row("spec version", data["specVersion"])
    grid.add_row("stable", data["stableText"])
    if canary is None:
        grid.add_row("weight", weight_bar(0, weight_text(0)))
        return grid
    grid.add_row("canary", canary["line"])
    if canary["stage"]:
        grid.add_row("stage", canary["stage"])
    grid.add_row("weight", weight_bar(canary["weight"], canary["weightText"]))
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
        table.add_row(metric, number_text((live.get("stable") or {}).get(metric), unit),
                      number_text((live.get("canary") or {}).get(metric), unit), limits.get(metric, ""))
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
            words += [f"{track}.{metric}={number_text(value)}" for metric, value in sorted(values.items())]
    return " ".join(words)
