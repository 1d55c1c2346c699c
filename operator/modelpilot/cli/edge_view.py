"""The "fleet" section of `kubectl modelpilot status` for target Edge: every node of the fleet as a
cell of a grid, coloured by its state, with the canary's batch above it. Pure: a ModelDeployment
in, a renderable out.

Reads `status.edge` (api/edge.py, EdgeStatus) as the operator writes it; any field may be missing.
A node on the canary that is unreachable keeps its canary mark (◆) under the unreachable colour.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

# state -> (status.edge key, colour, legend)
STATES: tuple[tuple[str, str, str, str], ...] = (
    ("stable", "servingStable", "green", "serving stable"),
    ("canary", "servingCanary", "cyan", "serving canary"),
    ("pending", "pending", "yellow", "pending"),
    ("failed", "failed", "bold red", "failed"),
    ("unreachable", "unreachable", "bright_black", "unreachable"),
)
COLUMNS = 10
CELL = 11  # characters per node name in the grid


def node_states(edge: Mapping[str, Any]) -> dict[str, str]:
    """node -> state, from the lists in status.edge (a node in several lists: the last wins)."""
    states: dict[str, str] = {}
    for state, key, _, _ in STATES:
        for name in edge.get(key) or []:
            if isinstance(name, str):
                states[name] = state
    return states


def fleet(edge: Mapping[str, Any]) -> dict[str, Any]:
    """status.edge as plain data: the summary in words, the count per state (with its legend) and
    every node, sorted by name, with its state and whether the canary chose it."""
    states = node_states(edge)
    chosen = {n for n in edge.get("canaryNodes") or [] if isinstance(n, str)}
    parts = [f"{edge.get('nodes', len(states))} nodes"]
    if edge.get("batch"):
        parts.append(f"canary batch {edge['batch']}: {len(edge.get('canaryNodes') or [])}/"
                     f"{edge.get('batchNodes', '?')} nodes, {edge.get('reporting', 0)} reporting")
    counts = [{"state": state, "legend": legend, "count": sum(1 for s in states.values() if s == state)}
              for state, _, _, legend in STATES]
    return {"summary": ", ".join(parts), "counts": [c for c in counts if c["count"]],
            "nodes": [{"name": name, "state": states[name], "canary": name in chosen} for name in sorted(states)]}


def _cell(node: Mapping[str, Any]) -> Text:
    style = next(colour for s, _, colour, _ in STATES if s == node["state"])
    mark = "◆" if node["canary"] else "■"
    name = node["name"]
    label = name if len(name) <= CELL - 2 else name[: CELL - 3] + "…"
    return Text(f"{mark} {label}", style=style)


def fleet_grid(edge: Mapping[str, Any], columns: int = COLUMNS) -> Table:
    nodes = fleet(edge)["nodes"]
    grid = Table.grid(padding=(0, 1))
    for _ in range(columns):
        grid.add_column(no_wrap=True)
    for start in range(0, len(nodes), columns):
        row = [_cell(node) for node in nodes[start:start + columns]]
        grid.add_row(*row, *([""] * (columns - len(row))))
    return grid


def fleet_summary(edge: Mapping[str, Any]) -> Text:
    data = fleet(edge)
    text = Text(data["summary"] + "  ")
    colours = {state: colour for state, _, colour, _ in STATES}
    for count in data["counts"]:
        text.append(f"■ {count['legend']} {count['count']}  ", style=colours[count["state"]])
    return text


def edge_section(md: Mapping[str, Any]) -> Group | None:
    """The section for `status`; None without status.edge (not target Edge)."""
    edge = (md.get("status") or {}).get("edge")
    if not isinstance(edge, Mapping):
        return None
    return Group(Text("fleet", style="bold"), fleet_summary(edge), fleet_grid(edge))
