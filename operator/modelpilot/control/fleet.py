"""Target Edge: the fleet as the operator sees it (pure).

The fleet is every node the spec's edge.nodeSelector selects and whose taints the pods tolerate.
A node is reachable while its Ready condition is True; an unreachable one keeps its pod and counts
neither for nor against a batch. Each reachable node is in one state: serving the track it is
assigned to (stable or canary), pending (its pod is being created or replaced) or failed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from modelpilot.api.models import Edge
from modelpilot.resources.labels import ANNOTATION_REVISION, LABEL_TRACK
from modelpilot.rollout.state import parse_time

NodeState = Literal["stable", "canary", "unreachable", "failed", "pending"]
# A pod Running this long without becoming Ready has failed (a model that cannot load, a probe
# that never passes), not merely started slowly.
FAILED_AFTER_SECONDS = 300.0
FAILING_REASONS = frozenset({"CrashLoopBackOff", "ErrImagePull", "ImagePullBackOff", "CreateContainerConfigError",
                             "CreateContainerError", "InvalidImageName", "RunContainerError"})
# Taints of the node lifecycle (a disconnected or cordoned node): never a reason to leave the fleet.
LIFECYCLE_TAINT_PREFIX = "node.kubernetes.io/"

Obj = dict[str, Any]


@dataclass(frozen=True)
class FleetNode:
    name: str
    reachable: bool


@dataclass(frozen=True)
class PodView:
    name: str
    node: str
    track: str
    revision: str
    ready: bool
    failed: bool


def _tolerates(tolerations: Sequence[Mapping[str, Any]], taint: Mapping[str, Any]) -> bool:
    for tol in tolerations:
        if tol.get("effect") and tol.get("effect") != taint.get("effect"):
            continue
        if tol.get("operator") == "Exists" and tol.get("key") in (None, taint.get("key")):
            return True
        if tol.get("key") == taint.get("key") and (tol.get("value") or "") == (taint.get("value") or ""):
            return True
    return False


def _reachable(node: Obj) -> bool:
    conditions = (node.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def fleet_nodes(nodes: Iterable[Obj], edge: Edge) -> list[FleetNode]:
    """The fleet, by name: selected nodes whose scheduling taints the pods tolerate."""
    tolerations = [t.model_dump(by_alias=True, exclude_none=True) for t in edge.tolerations]
    fleet = []
    for node in nodes:
        meta = node.get("metadata") or {}
        labels = meta.get("labels") or {}
        if meta.get("deletionTimestamp") or any(labels.get(k) != v for k, v in edge.node_selector.items()):
            continue
        taints = [t for t in (node.get("spec") or {}).get("taints") or []
                  if t.get("effect") in ("NoSchedule", "NoExecute")
                  and not str(t.get("key", "")).startswith(LIFECYCLE_TAINT_PREFIX)]
        if all(_tolerates(tolerations, t) for t in taints):
            fleet.append(FleetNode(str(meta.get("name")), _reachable(node)))
    return sorted(fleet, key=lambda n: n.name)


def _failed(pod: Obj, now: dt.datetime) -> bool:
    status = pod.get("status") or {}
    if status.get("phase") == "Failed":
        return True
    for container in (*status.get("initContainerStatuses", []), *status.get("containerStatuses", [])):
        state = container.get("state") or {}
        if (state.get("waiting") or {}).get("reason") in FAILING_REASONS:
            return True
    started = parse_time(status.get("startTime"))
    return status.get("phase") == "Running" and started is not None and \
        (now - started).total_seconds() > FAILED_AFTER_SECONDS and not _ready(pod)


def _ready(pod: Obj) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def pod_views(pods: Iterable[Obj], now: dt.datetime) -> dict[str, list[PodView]]:
    """The ModelDeployment's live (not terminating) pods by node."""
    by_node: dict[str, list[PodView]] = {}
    for pod in pods:
        meta = pod.get("metadata") or {}
        node = (pod.get("spec") or {}).get("nodeName")
        if meta.get("deletionTimestamp") or not node:
            continue
        track = (meta.get("labels") or {}).get(LABEL_TRACK, "")
        view = PodView(name=str(meta.get("name")), node=str(node), track=track,
                       revision=(meta.get("annotations") or {}).get(ANNOTATION_REVISION, ""), ready=_ready(pod),
                       failed=_failed(pod, now))
        by_node.setdefault(view.node, []).append(view)
    return by_node


def serving_pod(pods: Mapping[str, list[PodView]], node: str, track: str) -> PodView | None:
    """The node's pod of `track` (a Ready one first)."""
    mine = [p for p in pods.get(node, []) if p.track == track]
    return next((p for p in mine if p.ready), mine[0] if mine else None)


def node_state(node: FleetNode, track: str, pods: Mapping[str, list[PodView]]) -> NodeState:
    """What a node of the fleet does for the track it is assigned to."""
    if not node.reachable:
        return "unreachable"
    pod = serving_pod(pods, node.name, track)
    if pod is not None and pod.ready:
        return "canary" if track == "canary" else "stable"
    return "failed" if pod is not None and pod.failed else "pending"


def canary_order(revision: str, names: Iterable[str]) -> list[str]:
    """Nodes in the order a canary of `revision` takes them: a hash of revision and name, so each
    revision spreads over different devices (and architectures) while the choice stays stable
    across ticks and operator restarts."""
    return sorted(names, key=lambda n: hashlib.sha256(f"{revision}/{n}".encode()).hexdigest())


def batch_size(percent: int, fleet: int, min_nodes: int) -> int:
    """Nodes a batch of `percent` takes: rounded up, at least minNodes, at most the fleet."""
    return min(fleet, max(min_nodes, -(-percent * fleet // 100)))
