"""plan() for target Edge, tick by tick with an injected clock over a simulated fleet
(tests/unit/edge_world.py): batches of nodes, promotion with the nodes handed back, rollback,
unreachable nodes, maxUnavailable, and pods that are never ours to delete."""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import replace

from modelpilot.control.observe import Observed
from modelpilot.control.plan import plan
from modelpilot.rollout.machine import AnalysisResult, Measurement
from tests.unit.edge_world import (
    T0,
    controllers,
    edge_status,
    pods_by_track,
    set_reachable,
    start,
    step,
    tick,
    with_version,
)


def at(n: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=n)


def verdict(v: str) -> AnalysisResult:
    value = 0.0 if v == "Pass" else 30.0
    return AnalysisResult(v, (Measurement(T0, "error-rate", value, "<= 1", v),))  # type: ignore[arg-type]


def daemonset(observed: Observed, track: str = "stable") -> dict | None:
    return observed.children.get(("apps/v1", "DaemonSet", "fraud" if track == "stable" else "fraud-canary"))


def affinity_nodes(observed: Observed, track: str) -> tuple[str, list[str]] | None:
    ds = daemonset(observed, track)
    assert ds is not None
    affinity = ds["spec"]["template"]["spec"].get("affinity")
    if affinity is None:
        return None
    terms = affinity["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    fields = [f for term in terms for f in term["matchFields"]]
    assert all(f["key"] == "metadata.name" and len(f["values"]) == 1 for f in fields)
    assert len({f["operator"] for f in fields}) == 1
    return fields[0]["operator"], sorted(f["values"][0] for f in fields)


def run_until_ready(observed: Observed, now: float) -> Observed:
    """Tick until the canary's batch is Ready (its nodes widen maxUnavailable at a time)."""
    for _ in range(10):
        _, observed = tick(observed, at(now))
        canary = (observed.md["status"] or {}).get("canary") or {}
        if canary.get("readyAt") and not edge_status(observed).get("pending"):
            return observed
    raise AssertionError(f"batch never Ready: {edge_status(observed)}")


def test_a_fleet_gets_one_stable_pod_per_node_and_no_cluster_children() -> None:
    observed = start()
    assert set(observed.children) == {("apps/v1", "DaemonSet", "fraud"), ("v1", "Service", "fraud")}
    ds = daemonset(observed)
    assert ds is not None and ds["spec"]["updateStrategy"] == {"type": "OnDelete"}
    pod = ds["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"node-role.kubernetes.io/edge": ""}
    assert {"key": "node-role.kubernetes.io/edge", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    assert {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"} in pod["tolerations"]
    assert "affinity" not in pod
    assert pod["containers"][0]["resources"]["requests"] == {"cpu": "50m", "memory": "128Mi"}
    service = observed.children[("v1", "Service", "fraud")]
    assert service["spec"]["internalTrafficPolicy"] == "Local"
    status = observed.md["status"]
    assert status["phase"] == "Ready"
    assert len(status["edge"]["servingStable"]) == 20 and status["edge"]["nodes"] == 20
    assert status["stable"]["replicas"] == 20 and status["stable"]["readyReplicas"] == 20


def test_a_good_version_goes_to_one_node_then_five_then_all_then_is_promoted() -> None:
    observed = with_version(start(), "v2")
    _, observed = tick(observed, at(0))
    edge = edge_status(observed)
    assert len(edge["canaryNodes"]) == 1 and edge["batch"] == 1 and edge["batchNodes"] == 1
    operator, values = affinity_nodes(observed, "canary")  # type: ignore[misc]
    assert (operator, values) == ("In", edge["canaryNodes"])
    assert affinity_nodes(observed, "stable") == ("NotIn", edge["canaryNodes"])
    first = edge["canaryNodes"][0]
    observed = run_until_ready(observed, 1)
    assert pods_by_track(observed)["canary"] == {first}
    seen = {1}
    now = 20.0
    for batch_nodes in (5, 20):
        _, observed = tick(observed, at(now), verdict("Pass"))
        edge = edge_status(observed)
        assert edge["batchNodes"] == batch_nodes
        assert first in edge["canaryNodes"]  # the set only widens
        observed = run_until_ready(observed, now + 1)
        assert len(pods_by_track(observed)["canary"]) == batch_nodes
        seen.add(len(edge_status(observed)["canaryNodes"]))
        now += 20
    assert seen == {1, 5, 20}
    _, observed = tick(observed, at(now), verdict("Pass"))
    assert observed.md["status"]["canary"]["state"] == "Promoting"
    # Handback: the stable DaemonSet takes v2 and the nodes go back maxUnavailable (5) at a time.
    canary_counts = []
    for i in range(10):
        canary_counts.append(len(edge_status(observed)["canaryNodes"]))
        if "canary" not in observed.md["status"]:
            break
        _, observed = tick(observed, at(now + 1 + i))
    assert "canary" not in observed.md["status"], observed.md["status"]
    assert observed.md["status"]["stable"]["version"] == "v2"
    assert all(a - b <= 5 for a, b in itertools.pairwise(canary_counts)), canary_counts
    assert daemonset(observed, "canary") is None
    assert pods_by_track(observed) == {"stable": {f"edge-{i:02d}" for i in range(20)}, "canary": set()}
    assert {p["metadata"]["labels"]["modelpilot.io/version"] for p in observed.pods} == {"v2"}


def test_a_failing_version_is_stopped_at_the_first_batch_and_every_node_returns_to_stable() -> None:
    observed = run_until_ready(tick(with_version(start(), "v2"), at(0))[1], 1)
    _, observed = tick(observed, at(20), verdict("Fail"))
    assert observed.md["status"]["canary"]["state"] == "Progressing"
    _, observed = tick(observed, at(40), verdict("Fail"))
    assert observed.md["status"]["canary"]["state"] == "RolledBack"
    assert edge_status(observed)["canaryNodes"] == []
    assert daemonset(observed, "canary") is None
    assert affinity_nodes(observed, "stable") is None
    assert pods_by_track(observed)["stable"] == {f"edge-{i:02d}" for i in range(20)}
    assert {p["metadata"]["labels"]["modelpilot.io/version"] for p in observed.pods} == {"v1"}


def test_unreachable_canary_nodes_count_neither_for_nor_against_a_batch() -> None:
    observed = start(rollout={"minNodes": 3})
    observed = run_until_ready(tick(with_version(observed, "v2", rollout={"minNodes": 3}), at(0))[1], 1)
    assert len(edge_status(observed)["canaryNodes"]) == 3  # 5 % of 20 is 1 node, but minNodes is 3
    _, observed = tick(observed, at(20), verdict("Pass"))
    observed = run_until_ready(observed, 21)
    canary = edge_status(observed)["canaryNodes"]
    assert len(canary) == 5
    lost = canary[:2]
    observed = set_reachable(observed, lost, False)
    _, observed = tick(observed, at(30))
    edge = edge_status(observed)
    assert edge["unreachable"] == sorted(lost) and edge["reporting"] == 3
    assert edge["canaryNodes"] == canary  # kept: a disconnected node keeps its pod and its track
    assert {p["spec"]["nodeName"] for p in observed.pods} >= set(lost)
    # The next analysis is due (3 reporting >= minNodes 3) and a pass widens to all reachable nodes.
    the_plan = plan(observed, None, at(40))
    assert the_plan.analysis is not None
    _, observed = tick(observed, at(40), verdict("Pass"))
    assert observed.md["status"]["canary"]["state"] == "Progressing"
    for i in range(6):
        _, observed = tick(observed, at(41 + i))
    edge = edge_status(observed)
    assert len(edge["canaryNodes"]) == 20 and set(lost) <= set(edge["canaryNodes"])
    assert len(edge["servingCanary"]) == 18 and edge["unreachable"] == sorted(lost)


def test_too_few_reporting_nodes_hold_the_analysis() -> None:
    observed = start(rollout={"minNodes": 3})
    observed = run_until_ready(tick(with_version(observed, "v2", rollout={"minNodes": 3}), at(0))[1], 1)
    observed = set_reachable(observed, edge_status(observed)["canaryNodes"][:1], False)
    _, observed = tick(observed, at(15))
    assert plan(observed, None, at(25)).analysis is None
    assert edge_status(observed)["reporting"] == 2


def test_max_unavailable_paces_a_widening_batch() -> None:
    observed = start(rollout={"maxUnavailable": 2})
    observed = run_until_ready(tick(with_version(observed, "v2", rollout={"maxUnavailable": 2}), at(0))[1], 1)
    _, observed = tick(observed, at(20), verdict("Pass"))
    _, observed = tick(observed, at(20.5))
    before = set(edge_status(observed)["canaryNodes"])
    the_plan = plan(observed, None, at(21))
    observed = step(observed, the_plan, starting={f"edge-{i:02d}" for i in range(20)})
    added = set(edge_status(observed)["canaryNodes"]) - before
    assert len(added) <= 2
    # With two nodes still starting, nothing more moves.
    moved = plan(observed, None, at(22))
    after = set((moved.status or {}).get("edge", {}).get("canaryNodes") or edge_status(observed)["canaryNodes"])
    assert after == set(edge_status(observed)["canaryNodes"])


def test_only_pods_of_our_own_daemonsets_are_ever_deleted() -> None:
    observed = start()
    foreign = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": "someone-else", "namespace": "ml",
                            "labels": {"app.kubernetes.io/name": "fraud", "app.kubernetes.io/managed-by": "modelpilot",
                                       "modelpilot.io/track": "stable"},
                            "annotations": {"modelpilot.io/revision": "old"},
                            "ownerReferences": [{"kind": "DaemonSet", "name": "fraud", "uid": "not-ours",
                                                 "controller": True}]},
               "spec": {"nodeName": "edge-03"},
               "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}
    observed = replace(observed, pods=(*observed.pods, foreign))
    the_plan = plan(observed, None, at(1))
    assert ("v1", "Pod", "someone-else") not in the_plan.delete


def test_stable_pods_of_an_older_revision_are_replaced_max_unavailable_at_a_time() -> None:
    rolling = {"rollout": {"strategy": "Rolling"}}
    observed = start()
    md = dict(observed.md, spec={**with_version(observed, "v2").md["spec"], **rolling})
    observed = replace(observed, md=md)
    the_plan = plan(observed, None, at(1))
    pods = [ref for ref in the_plan.delete if ref[1] == "Pod"]
    assert len(pods) == 5  # 25 % of 20
    observed = step(observed, the_plan)
    for i in range(8):
        observed = controllers(observed)
        _, observed = tick(observed, at(2 + i))
    assert {p["metadata"]["labels"]["modelpilot.io/version"] for p in observed.pods} == {"v2"}
    assert observed.md["status"]["phase"] == "Ready"
