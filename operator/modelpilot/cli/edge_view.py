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


def _cell(name: str, state: str, canary: bool) -> Text:
    style = next(colour for s, _, colour, _ in STATES if s == state)
    mark = "◆" if canary else "■"
    label = name if len(name) <= CELL - 2 else name[: CELL - 3] + "…"
    return Text(f"{mark} {label}", style=style)


def fleet_grid(edge: Mapping[str, Any], columns: int = COLUMNS) -> Table:
    states = node_states(edge)
    canary = {n for n in edge.get("canaryNodes") or [] if isinstance(n, str)}
    grid = Table.grid(padding=(0, 1))
    for _ in range(columns):
        grid.add_column(no_wrap=True)
    names = sorted(states)
    for start in range(0, len(names), columns):
        row = [_cell(n, states[n], n in canary) for n in names[start:start + columns]]
        grid.add_row(*row, *([""] * (columns - len(row))))
    return grid


def fleet_summary(edge: Mapping[str, Any]) -> Text:
    states = node_states(edge)
    parts = [f"{edge.get('nodes', len(states))} nodes"]
    if edge.get("batch"):
        chosen = len(edge.get("canaryNodes") or [])
        parts.append(f"canary batch {edge['batch']}: {chosen}/{edge.get('batchNodes', '?')} nodes, "
                     f"{edge.get('reporting', 0)} reporting")
    text = Text(", ".join(parts) + "  ")
    for state, _, colour, legend in STATES:
        count = sum(1 for s in states.values() if s == state)
        if count:
            text.append(f"■ {legend} {count}  ", style=colour)
    return text


def edge_section(md: Mapping[str, Any]) -> Group | None:
    """The section for `status`; None without status.edge (not target Edge)."""
    edge = (md.get("status") or {}).get("edge")
    if not isinstance(edge, Mapping):
        return None
    return Group(Text("fleet", style="bold"), fleet_summary(edge), fleet_grid(edge))
