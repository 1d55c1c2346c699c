"""A simulated fleet for plan() tests of target Edge: Nodes, and the DaemonSet controller with the
OnDelete strategy (pure, no API server).

After a plan runs, each fleet node gets a pod from the DaemonSet whose node affinity takes it
(with that DaemonSet's current template: track label, revision annotation), loses a pod whose
DaemonSet no longer takes the node or is gone, and keeps a pod across template changes unless the
plan deleted it. Pods are Ready at once unless the node is in `starting`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from modelpilot.control.observe import Observed
from modelpilot.control.plan import Plan, plan
from modelpilot.rollout.machine import AnalysisResult
from tests.unit.plan_world import T0, execute, modeldeployment

Obj = dict[str, Any]
EDGE_LABEL = "node-role.kubernetes.io/edge"


def edge_spec(version: str = "v1", **edge: Any) -> dict[str, Any]:
    rollout = {"batches": [5, 25, 100], "interval": "10s", "maxUnavailable": "25%", **edge.pop("rollout", {})}
    return {
        "model": {"version": version, "uri": f"file:///models/fraud-{version}/model.onnx", "format": "onnx"},
        "target": "Edge",
        "edge": {"rollout": rollout, **edge},
        "rollout": {"canary": {"initialDelay": "10s", "failureThreshold": 2, "progressDeadline": "5m"}},
    }


def node(name: str, ready: bool = True, labels: dict[str, str] | None = None,
         taints: list[Obj] | None = None) -> Obj:
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {EDGE_LABEL: "", **(labels or {})}},
            "spec": {"taints": taints if taints is not None else [
                {"key": EDGE_LABEL, "effect": "NoSchedule"}]},
            "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "Unknown"}]}}


def fleet(count: int = 20) -> tuple[Obj, ...]:
    return tuple(node(f"edge-{i:02d}") for i in range(count))


def set_reachable(observed: Observed, names: Iterable[str], reachable: bool) -> Observed:
    wanted = set(names)
    nodes = tuple(node(n["metadata"]["name"], reachable) if n["metadata"]["name"] in wanted else n
                  for n in observed.nodes)
    return replace(observed, nodes=nodes)


def _takes(daemonset: Obj, name: str) -> bool:
    affinity = daemonset["spec"]["template"]["spec"].get("affinity")
    if affinity is None:
        return True
    terms = affinity["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    for term in terms:
        fields = term["matchFields"]
        assert all(len(f["values"]) == 1 for f in fields), "a node-name field selector takes one value"
        if all((name in f["values"]) == (f["operator"] == "In") for f in fields):
            return True  # terms are ORed, a term's requirements ANDed
    return False


def _pod(daemonset: Obj, node_name: str, ready: bool) -> Obj:
    template = daemonset["spec"]["template"]
    track = template["metadata"]["labels"]["modelpilot.io/track"]
    revision = template["metadata"]["annotations"]["modelpilot.io/revision"][:6]
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"{daemonset['metadata']['name']}-{node_name}-{revision}",
                         "namespace": "ml", "labels": dict(template["metadata"]["labels"]),
                         "annotations": dict(template["metadata"]["annotations"]),
                         "ownerReferences": [{"kind": "DaemonSet", "name": daemonset["metadata"]["name"],
                                              "uid": f"ds-{track}", "controller": True}]},
            "spec": {"nodeName": node_name},
            "status": {"phase": "Running", "startTime": "2026-11-25T12:00:00Z",
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def controllers(observed: Observed, deleted: Iterable[str] = (), starting: Iterable[str] = ()) -> Observed:
    """The DaemonSet controller (OnDelete) and a kubelet that makes pods Ready at once."""
    gone, slow = set(deleted), set(starting)
    daemonsets = {track: observed.children.get(("apps/v1", "DaemonSet", name))
                  for track, name in (("stable", "fraud"), ("canary", "fraud-canary"))}
    children = dict(observed.children)
    for track, ds in daemonsets.items():
        if ds is not None:
            children[("apps/v1", "DaemonSet", ds["metadata"]["name"])] = {
                **ds, "metadata": {**ds["metadata"], "uid": f"ds-{track}"}}
    pods: list[Obj] = []
    for n in observed.nodes:
        name = n["metadata"]["name"]
        for track, ds in daemonsets.items():
            if ds is None or not _takes(ds, name):
                continue
            mine = [p for p in observed.pods if p["spec"]["nodeName"] == name
                    and p["metadata"]["labels"]["modelpilot.io/track"] == track and p["metadata"]["name"] not in gone]
            pods += mine or [_pod(ds, name, name not in slow)]
    return replace(observed, children=children, pods=tuple(pods))


def start(count: int = 20, **edge: Any) -> Observed:
    """v1 on a fleet of `count` nodes, settled: every node serves stable."""
    observed = Observed(md=modeldeployment(edge_spec("v1", **edge)), nodes=fleet(count))
    for _ in range(6):
        the_plan = plan(observed, None, T0)
        if not the_plan.writes:
            return observed
        observed = step(observed, the_plan)
    raise AssertionError("did not settle")


def step(observed: Observed, the_plan: Plan, starting: Iterable[str] = ()) -> Observed:
    deleted = [ref[2] for ref in the_plan.delete if ref[1] == "Pod"]
    return controllers(execute(observed, the_plan), deleted, starting)


def tick(observed: Observed, now: dt.datetime, analysis: AnalysisResult | None = None,
         starting: Iterable[str] = ()) -> tuple[Plan, Observed]:
    the_plan = plan(observed, analysis, now)
    return the_plan, step(observed, the_plan, starting)


def with_version(observed: Observed, version: str, **edge: Any) -> Observed:
    md = dict(observed.md, spec=edge_spec(version, **edge))
    md["metadata"] = {**md["metadata"], "generation": md["metadata"]["generation"] + 1}
    return replace(observed, md=md)


def edge_status(observed: Observed) -> Obj:
    return dict((observed.md.get("status") or {}).get("edge") or {})


def pods_by_track(observed: Observed) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {"stable": set(), "canary": set()}
    for p in observed.pods:
        out[p["metadata"]["labels"]["modelpilot.io/track"]].add(p["spec"]["nodeName"])
    return out


