"""Figures from one run's raw marks, the table, and the JSON file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (0-100), linear between closest ranks; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def latencies(start: dict[str, float], end: dict[str, float]) -> list[float]:
    """end - start per object that has both."""
    return [end[name] - t for name, t in start.items() if name in end]


def summary(values: list[float]) -> dict[str, float | int | None]:
    return {"count": len(values), "p50": percentile(values, 50), "p99": percentile(values, 99),
            "max": max(values, default=None)}


def _seconds(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.1f} s"


def _number(value: float | None, digits: int = 0) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


COLUMNS = [
    ("run", "left"), ("N", "right"), ("creates/s", "right"),
    ("→Deploy p50", "right"), ("p99", "right"), ("→Ready p50", "right"), ("p99", "right"),
    ("all Ready", "right"), ("RSS idle", "right"), ("peak", "right"), ("steady", "right"),
    ("reads/min", "right"), ("watches/min", "right"), ("writes/min", "right"), ("reads/MD/h", "right"),
]


def table_row(result: dict[str, Any]) -> list[str]:
    n, ready = result["count"], result["create_to_ready"]["count"]
    rss = result.get("rss") or {}
    api = result.get("api_per_minute") or {}
    return [
        result["run"],
        f"{n:,}" if ready == n else f"{n:,} ({ready:,} ready)",
        _number(result.get("creates_per_second")),
        _seconds(result["create_to_deployment"]["p50"]), _seconds(result["create_to_deployment"]["p99"]),
        _seconds(result["create_to_ready"]["p50"]), _seconds(result["create_to_ready"]["p99"]),
        _seconds(result.get("all_ready_after_last_create")),
        _number(rss.get("idle_mb")), _number(rss.get("peak_mb")), _number(rss.get("steady_mb")),
        _number(api.get("reads")), _number(api.get("watches"), 1), _number(api.get("writes"), 1),
        _number(result.get("reads_per_md_per_hour"), 1),
    ]


def print_table(results: list[dict[str, Any]], console: Console) -> None:
    table = Table(title="modelpilot operator on the local test bed (KWOK)", title_justify="left")
    for header, justify in COLUMNS:
        table.add_column(header, justify=justify)  # type: ignore[arg-type]
    for result in results:
        table.add_row(*table_row(result))
    console.print(table)
    console.print(
        "→Deploy: the ModelDeployment's create call returned → its Deployment's ADDED event (floor: the\n"
        "  Deployment's apply was sent → ADDED). →Ready: same start → condition Ready=True (floor: the\n"
        "  Deployment's pod ready). all Ready: last create returned → last one Ready.\n"
        "RSS (MB): VmRSS of the operator and its children; peak = max(VmHWM, sampled every 0.5 s).\n"
        "reads (get, list), watches (opened), writes: the operator's own requests in the steady window\n"
        "  (audit log); reads/MD/h = reads/min x 60 / N. docs/benchmarks.md explains each column.",
        highlight=False)
    for result in results:
        for note in result.get("notes") or []:
            console.print(f"[yellow]{result['run']} {result['count']}: {note}[/yellow]")


def write_json(path: Path, meta: dict[str, Any], results: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**meta, "results": results}, indent=2, sort_keys=False) + "\n")
