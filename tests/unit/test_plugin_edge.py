"""The fleet section of `kubectl modelpilot status` (cli/edge_view.py), rendered from a status.edge
the operator's own planner wrote over a simulated fleet (tests/unit/edge_world.py)."""

from __future__ import annotations

import io
from typing import Any

from rich.console import Console, RenderableType

from modelpilot.cli import plugin
from modelpilot.cli.edge_view import edge_section, node_states
from tests.unit.edge_world import set_reachable, start, tick, with_version
from tests.unit.test_edge_plan import at, run_until_ready, verdict


def text_of(renderable: RenderableType, width: int = 160) -> str:
    console = Console(width=width, no_color=True, highlight=False, record=True, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


def canary_in_flight() -> dict[str, Any]:
    observed = start(rollout={"minNodes": 3})
    observed = run_until_ready(tick(with_version(observed, "v2", rollout={"minNodes": 3}), at(0))[1], 1)
    _, observed = tick(observed, at(20), verdict("Pass"))
    observed = run_until_ready(observed, 21)
    lost = observed.md["status"]["edge"]["canaryNodes"][:2]
    _, observed = tick(set_reachable(observed, lost, False), at(30))
    return observed.md


def test_every_node_is_one_cell_with_its_state() -> None:
    md = canary_in_flight()
    edge = md["status"]["edge"]
    states = node_states(edge)
    assert len(states) == 20
    assert sum(1 for s in states.values() if s == "canary") == 3
    assert sum(1 for s in states.values() if s == "unreachable") == 2
    text = text_of(edge_section(md))  # type: ignore[arg-type]
    assert "20 nodes, canary batch 2: 5/5 nodes, 3 reporting" in text
    assert "serving stable 15" in text and "serving canary 3" in text and "unreachable 2" in text
    assert text.count("◆") == 5 and text.count("■") == 15 + 3  # canary cells; stable cells and the legend
    for name in states:
        assert name in text


def test_the_status_command_shows_the_fleet_only_for_edge() -> None:
    md = canary_in_flight()
    assert "fleet" in text_of(plugin.status_view(md, events=[]))
    md["status"].pop("edge")
    assert edge_section(md) is None
