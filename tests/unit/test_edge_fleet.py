"""The fleet's pure parts, table-driven: which nodes form it, each node's state, batch sizes,
maxUnavailable, the canary's node order, and the DaemonSet builder."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from modelpilot.api.models import Edge, EdgeRollout, parse_spec
from modelpilot.control.fleet import FleetNode, PodView, batch_size, canary_order, fleet_nodes, node_state, pod_views
from modelpilot.resources import BuildSettings
from modelpilot.resources.daemonset import ANNOTATION_CANARY_NODES, build_daemonset, canary_nodes_annotation
from tests.unit.edge_world import edge_spec, node

NOW = dt.datetime(2026, 11, 25, 12, 10, tzinfo=dt.UTC)
EDGE_TAINT = {"key": "node-role.kubernetes.io/edge", "effect": "NoSchedule"}


@pytest.mark.parametrize(("case", "candidate", "selected"), [
    ("edge node with the edge taint", node("a"), True),
    ("not labelled edge", {**node("a"), "metadata": {"name": "a", "labels": {}}}, False),
    ("a taint the pods do not tolerate", node("a", taints=[EDGE_TAINT, {"key": "gpu", "effect": "NoSchedule"}]),
     False),
    ("a PreferNoSchedule taint is no bar", node("a", taints=[{"key": "x", "effect": "PreferNoSchedule"}]), True),
    ("disconnected: the lifecycle taint is no bar", node("a", ready=False, taints=[
        EDGE_TAINT, {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"}]), True),
    ("being deleted", {**node("a"), "metadata": {**node("a")["metadata"], "deletionTimestamp": "x"}}, False),
])
def test_fleet_membership(case: str, candidate: dict[str, Any], selected: bool) -> None:
    assert bool(fleet_nodes([candidate], Edge())) is selected, case


def test_fleet_reachability_and_selector() -> None:
    edge = Edge(node_selector={"node-role.kubernetes.io/edge": "", "kubernetes.io/arch": "arm64"})
    nodes = [node("a", labels={"kubernetes.io/arch": "arm64"}), node("b", labels={"kubernetes.io/arch": "amd64"}),
             node("c", ready=False, labels={"kubernetes.io/arch": "arm64"})]
    assert fleet_nodes(nodes, edge) == [FleetNode("a", True), FleetNode("c", False)]


def _pod(track: str, ready: bool, phase: str = "Running", started: str = "2026-11-25T12:09:00Z",
         waiting: str | None = None) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": phase, "startTime": started,
                              "conditions": [{"type": "Ready", "status": str(ready)}]}
    if waiting:
        status["containerStatuses"] = [{"state": {"waiting": {"reason": waiting}}}]
    return {"metadata": {"name": f"p-{track}", "labels": {"modelpilot.io/track": track},
                         "annotations": {"modelpilot.io/revision": "r1"}},
            "spec": {"nodeName": "a"}, "status": status}


@pytest.mark.parametrize(("case", "reachable", "track", "pods", "state"), [
    ("serving stable", True, "stable", [_pod("stable", True)], "stable"),
    ("serving canary", True, "canary", [_pod("canary", True)], "canary"),
    ("the canary's pod not created yet, the stable one going", True, "canary", [_pod("stable", True)], "pending"),
    ("starting", True, "stable", [_pod("stable", False)], "pending"),
    ("crash looping", True, "stable", [_pod("stable", False, waiting="CrashLoopBackOff")], "failed"),
    ("never Ready long after it started", True, "stable",
     [_pod("stable", False, started="2026-11-25T11:00:00Z")], "failed"),
    ("phase Failed", True, "canary", [_pod("canary", False, phase="Failed")], "failed"),
    ("unreachable, whatever its pod says", False, "canary", [_pod("canary", True)], "unreachable"),
    ("no pod at all", True, "stable", [], "pending"),
])
def test_node_state(case: str, reachable: bool, track: str, pods: list[dict[str, Any]], state: str) -> None:
    views = pod_views([{**p, "status": {**p["status"], "conditions": [
        {"type": "Ready", "status": "True" if p["status"]["conditions"][0]["status"] == "True" else "False"}]}}
        for p in pods], NOW)
    assert node_state(FleetNode("a", reachable), track, views) == state, case


def test_terminating_pods_are_not_counted() -> None:
    pod = {**_pod("stable", True), "metadata": {**_pod("stable", True)["metadata"], "deletionTimestamp": "x"}}
    assert pod_views([pod], NOW) == {}


@pytest.mark.parametrize(("percent", "fleet", "min_nodes", "size"), [
    (5, 20, 1, 1), (25, 20, 1, 5), (100, 20, 1, 20), (1, 20, 1, 1), (5, 20, 3, 3), (50, 3, 1, 2), (5, 2, 5, 2),
    (10, 1000, 1, 100),
])
def test_batch_size(percent: int, fleet: int, min_nodes: int, size: int) -> None:
    assert batch_size(percent, fleet, min_nodes) == size


@pytest.mark.parametrize(("value", "fleet", "count"), [("25%", 20, 5), ("25%", 3, 1), ("100%", 7, 7), (2, 20, 2),
                                                       ("1%", 20, 1)])
def test_max_unavailable_nodes(value: int | str, fleet: int, count: int) -> None:
    assert EdgeRollout(max_unavailable=value).max_unavailable_nodes(fleet) == count


def test_canary_order_is_stable_and_differs_by_revision() -> None:
    names = [f"edge-{i:02d}" for i in range(20)]
    first = canary_order("r1", names)
    assert canary_order("r1", reversed(names)) == first and sorted(first) == names
    assert canary_order("r2", names) != first


def test_pod_view_reads_track_revision_and_node() -> None:
    views = pod_views([_pod("canary", True)], NOW)
    assert views == {"a": [PodView("p-canary", "a", "canary", "r1", True, False)]}


def test_canary_daemonset_runs_on_its_nodes_only() -> None:
    spec = parse_spec(edge_spec("v2"))
    owner = {"apiVersion": "modelpilot.io/v1alpha1", "kind": "ModelDeployment", "name": "fraud", "uid": "u"}
    ds = build_daemonset(spec, name="fraud", namespace="ml", owner=owner, settings=BuildSettings(), track="canary",
                         canary_nodes=["edge-07", "edge-02"])
    assert ds["metadata"]["name"] == "fraud-canary"
    assert ds["metadata"]["annotations"][ANNOTATION_CANARY_NODES] == canary_nodes_annotation(["edge-02", "edge-07"])
    terms = ds["spec"]["template"]["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert terms == {"nodeSelectorTerms": [  # one value per node-name requirement (API validation)
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["edge-02"]}]},
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["edge-07"]}]}]}
    stable = build_daemonset(spec, name="fraud", namespace="ml", owner=owner, settings=BuildSettings(),
                             track="stable", canary_nodes=["edge-07", "edge-02"])
    assert stable["spec"]["template"]["spec"]["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"] == {"nodeSelectorTerms": [{"matchFields": [
            {"key": "metadata.name", "operator": "NotIn", "values": ["edge-02"]},
            {"key": "metadata.name", "operator": "NotIn", "values": ["edge-07"]}]}]}
    assert ds["spec"]["selector"]["matchLabels"]["modelpilot.io/track"] == "canary"
    with pytest.raises(ValueError, match="at least one node"):
        build_daemonset(spec, name="fraud", namespace="ml", owner=owner, settings=BuildSettings(), track="canary",
                        canary_nodes=[])


def test_requests_in_the_spec_replace_the_small_defaults() -> None:
    spec = parse_spec({**edge_spec(), "resources": {"requests": {"cpu": "200m"}}})
    owner = {"apiVersion": "modelpilot.io/v1alpha1", "kind": "ModelDeployment", "name": "fraud", "uid": "u"}
    ds = build_daemonset(spec, name="fraud", namespace="ml", owner=owner, settings=BuildSettings(), track="stable",
                         canary_nodes=[])
    assert ds["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"] == {"cpu": "200m"}
