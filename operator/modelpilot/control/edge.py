"""Target Edge: which nodes run the canary, which pods are replaced, and status.edge (pure).

One tick of the fleet, after the rollout's decision:
- a canary in flight widens its node set towards the batch the decision names (a passing
  analysis raised it); new nodes are taken in a stable order, reachable ones only;
- while the promotion runs, canary nodes go back to the stable DaemonSet (which now has the new
  template), unreachable ones at once, the others as maxUnavailable allows;
- otherwise (rolled back, superseded, no canary) the set is empty: every node runs stable;
- stable pods of an older revision are replaced as maxUnavailable allows (the DaemonSets use
  OnDelete, so nothing else replaces them).
Every move spends the budget: maxUnavailable less the reachable nodes already without a Ready
pod. Unreachable nodes cost nothing and are never chosen for a canary.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from modelpilot.api.models import ModelDeploymentSpec
from modelpilot.control.fleet import (
    FleetNode,
    NodeState,
    PodView,
    batch_size,
    canary_order,
    fleet_nodes,
    node_state,
    pod_views,
    serving_pod,
)
from modelpilot.rollout.machine import CanaryState, Decision

Mode = Literal["widen", "handback", "clear"]
STATE_KEYS: dict[NodeState, str] = {"stable": "servingStable", "canary": "servingCanary",
                                    "unreachable": "unreachable", "failed": "failed", "pending": "pending"}


@dataclass(frozen=True)
class Fleet:
    """The fleet at the start of a tick: nodes, this ModelDeployment's pods by node, and the canary
    node set as stored in status.edge (with the revision it was chosen for)."""

    nodes: tuple[FleetNode, ...]
    pods: Mapping[str, list[PodView]]
    canary_nodes: tuple[str, ...] = ()
    canary_revision: str | None = None

    @property
    def names(self) -> set[str]:
        return {n.name for n in self.nodes}

    def assigned(self, canary: Iterable[str]) -> dict[str, str]:
        chosen = set(canary)
        return {n.name: "canary" if n.name in chosen else "stable" for n in self.nodes}

    def states(self, canary: Iterable[str]) -> dict[str, NodeState]:
        tracks = self.assigned(canary)
        return {n.name: node_state(n, tracks[n.name], self.pods) for n in self.nodes}


def read_fleet(nodes: Iterable[dict[str, Any]], pods: Iterable[dict[str, Any]], spec: ModelDeploymentSpec,
               status: Mapping[str, Any] | None, now: dt.datetime) -> Fleet:
    edge_status = (status or {}).get("edge") or {}
    fleet = fleet_nodes(nodes, spec.edge_spec)
    names = {n.name for n in fleet}
    stored = edge_status.get("canaryNodes") or []
    canary = tuple(n for n in stored if isinstance(n, str) and n in names)
    revision = edge_status.get("canaryRevision")
    return Fleet(tuple(fleet), pod_views(pods, now), canary, revision if isinstance(revision, str) else None)


def batch_target(spec: ModelDeploymentSpec, canary: CanaryState | None, fleet_size: int) -> int:
    """Nodes the canary's current batch takes (the first batch while it waits to be Ready)."""
    rollout = spec.edge_spec.rollout
    if canary is None:
        return 0
    percent = canary.weight if canary.step >= 0 and canary.weight > 0 else rollout.batches[0]
    return batch_size(percent, fleet_size, rollout.min_nodes)


@dataclass(frozen=True)
class Readiness:
    canary_ready: bool
    stable_done: bool
    reporting: int
    detail: str


def _outdated(fleet: Fleet, canary: Iterable[str], stable_revision: str) -> list[PodView]:
    """Stable pods of another revision on reachable nodes that stay stable."""
    chosen = set(canary)
    out = []
    for node in fleet.nodes:
        if node.reachable and node.name not in chosen:
            out += [p for p in fleet.pods.get(node.name, []) if p.track == "stable" and p.revision != stable_revision]
    return out


def readiness(fleet: Fleet, spec: ModelDeploymentSpec, canary: CanaryState | None, canary_revision: str,
              stable_revision: str) -> Readiness:
    """What the rollout machine asks of the fleet: is the canary's batch serving (with minNodes
    reporting), and does every reachable node run the stable revision with no canary left?"""
    states = fleet.states(fleet.canary_nodes)
    reporting = sum(1 for n in fleet.canary_nodes if states.get(n) == "canary" and _current(
        fleet, n, "canary", canary_revision))
    reachable_canary = [n for n in fleet.canary_nodes if states.get(n) != "unreachable"]
    target = batch_target(spec, canary, len(fleet.nodes))
    candidates = [n for n in fleet.nodes if n.reachable and n.name not in fleet.canary_nodes]
    widened = len(fleet.canary_nodes) >= target or not candidates
    min_nodes = min(spec.edge_spec.rollout.min_nodes, len(fleet.nodes))
    canary_ready = fleet.canary_revision == canary_revision and bool(fleet.canary_nodes) and widened and \
        reporting == len(reachable_canary) and reporting >= max(1, min_nodes)
    stable_states = [s for n, s in states.items() if n not in fleet.canary_nodes]
    stable_done = not fleet.canary_nodes and all(s in ("stable", "unreachable") for s in stable_states) and \
        not _outdated(fleet, (), stable_revision)
    serving = sum(1 for s in stable_states if s == "stable")
    unreachable = sum(1 for s in states.values() if s == "unreachable")
    detail = f"{serving}/{len(fleet.nodes)} nodes serving stable"
    if unreachable:
        detail += f", {unreachable} unreachable"
    if fleet.canary_nodes:
        detail += f", {len(fleet.canary_nodes)} on the canary ({reporting} reporting)"
    return Readiness(canary_ready, stable_done, reporting, detail)


def _current(fleet: Fleet, node: str, track: str, revision: str) -> bool:
    pod = serving_pod(fleet.pods, node, track)
    return pod is not None and pod.revision == revision


@dataclass(frozen=True)
class Layout:
    """The fleet after this tick: the canary's nodes and the pods to replace."""

    canary_nodes: tuple[str, ...]
    canary_revision: str | None
    replace: tuple[str, ...] = ()  # pod names (stable pods of an older revision)
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    states: Mapping[str, NodeState] = field(default_factory=dict)


def mode_of(decision: Decision) -> Mode:
    canary = decision.canary
    if canary is not None and canary.state == "Promoting":
        return "handback"
    return "widen" if decision.canary_running else "clear"


def plan_layout(fleet: Fleet, spec: ModelDeploymentSpec, decision: Decision, canary_revision: str,
                stable_revision: str) -> Layout:
    mode = mode_of(decision)
    states = fleet.states(fleet.canary_nodes)
    unavailable = sum(1 for s in states.values() if s in ("pending", "failed"))
    budget = max(0, spec.edge_spec.rollout.max_unavailable_nodes(len(fleet.nodes)) - unavailable)
    kept = list(fleet.canary_nodes) if fleet.canary_revision == canary_revision else []
    reachable = {n.name for n in fleet.nodes if n.reachable}
    if mode == "widen":
        target = batch_target(spec, decision.canary, len(fleet.nodes))
        candidates = canary_order(canary_revision, (n for n in reachable if n not in kept))
        added = candidates[:max(0, min(budget, target - len(kept)))]
        budget -= len(added)
        canary = [*kept, *added]
    elif mode == "handback":
        gone = [n for n in kept if n not in reachable]
        back = [n for n in kept if n in reachable][:budget]
        budget -= len(back)
        canary, added = [n for n in kept if n not in gone and n not in back], []
    else:
        canary, added = [], []
    removed = [n for n in fleet.canary_nodes if n not in canary]
    outdated = [p.name for p in _outdated(fleet, canary, stable_revision) if p.node not in removed]
    replace = tuple(sorted(outdated)[:budget])
    revision = canary_revision if canary else None
    return Layout(tuple(canary), revision, replace, tuple(added), tuple(removed), fleet.states(canary))


def edge_status(fleet: Fleet, layout: Layout, spec: ModelDeploymentSpec, decision: Decision,
                reporting: int) -> dict[str, Any]:
    """status.edge (camelCase): the canary's set and batch, and every node by state."""
    out: dict[str, Any] = {"nodes": len(fleet.nodes), "canaryNodes": sorted(layout.canary_nodes)}
    if layout.canary_revision:
        out["canaryRevision"] = layout.canary_revision
    canary = decision.canary
    if decision.canary_running and canary is not None:
        out["batch"] = canary.step + 1 if canary.step >= 0 else 1
        out["batchNodes"] = batch_target(spec, canary, len(fleet.nodes))
        out["reporting"] = reporting
    for state, key in STATE_KEYS.items():
        out[key] = sorted(n for n, s in layout.states.items() if s == state)
    return out


def describe_moves(layout: Layout) -> list[tuple[str, dict[str, Any]]]:
    """One decision line per kind of move."""
    lines: list[tuple[str, dict[str, Any]]] = []
    if layout.added:
        lines.append(("edge-canary-nodes-added", {"nodes": ",".join(layout.added),
                                                  "canary": len(layout.canary_nodes)}))
    if layout.removed:
        lines.append(("edge-canary-nodes-removed", {"nodes": ",".join(layout.removed),
                                                    "canary": len(layout.canary_nodes)}))
    if layout.replace:
        lines.append(("edge-pods-replaced", {"pods": ",".join(layout.replace), "why": "older revision"}))
    return lines


def owned_pods(pods: Sequence[dict[str, Any]], daemonset_uids: set[str]) -> set[str]:
    """Names of pods whose controller is one of our DaemonSets: the only pods ever deleted."""
    out = set()
    for pod in pods:
        meta = pod.get("metadata") or {}
        for ref in meta.get("ownerReferences") or []:
            if ref.get("controller") and ref.get("kind") == "DaemonSet" and ref.get("uid") in daemonset_uids:
                out.add(str(meta.get("name")))
    return out
