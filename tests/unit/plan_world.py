"""A tiny simulated cluster for plan() tests: executes a Plan on an Observed without any API server.

Applied children become live (Deployments fully rolled out at their replica count unless told
otherwise), the status patch is merged (RFC 7386), deleted children vanish, a consumed action is
removed. Pure, like plan() itself.
"""

from __future__ import annotations

import copy
import datetime as dt
from dataclasses import replace
from typing import Any

from modelpilot.control.observe import Observed
from modelpilot.control.plan import Plan, plan
from modelpilot.resources import ANNOTATION_ACTION
from modelpilot.rollout.machine import AnalysisResult

UID = "u-1"
T0 = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC)


def spec(version: str = "v1", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": {"version": version, "uri": "file:///models/fraud", "format": "sklearn"},
        "rollout": {"canary": {"steps": [20, 50], "interval": "10s", "initialDelay": "10s",
                               "failureThreshold": 2, "progressDeadline": "5m"}},
    }
    body.update(extra)
    return body


def modeldeployment(body: dict[str, Any], status: dict[str, Any] | None = None, generation: int = 1,
                    annotations: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "fraud", "namespace": "ml", "uid": UID, "generation": generation,
                            "resourceVersion": "1"}
    if annotations:
        meta["annotations"] = dict(annotations)
    return {"apiVersion": "modelpilot.io/v1alpha1", "kind": "ModelDeployment", "metadata": meta, "spec": body,
            "status": status or {}}


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def _live(child: dict[str, Any], ready: bool) -> dict[str, Any]:
    live = copy.deepcopy(child)
    live["metadata"]["generation"] = 1
    if child["kind"] == "Deployment":
        n = child["spec"].get("replicas", 1)
        ready_n = n if ready else 0
        live["status"] = {"observedGeneration": 1, "replicas": n, "updatedReplicas": n,
                          "availableReplicas": ready_n, "readyReplicas": ready_n}
    if child["kind"] == "Service" and "clusterIP" not in child["spec"]:
        live["spec"]["clusterIP"] = "10.96.0.10"
    return live


def execute(observed: Observed, the_plan: Plan, ready: bool = True) -> Observed:
    """`observed` after `the_plan` ran and the controllers caught up."""
    children = dict(observed.children)
    for child in the_plan.apply:
        children[(child["apiVersion"], child["kind"], child["metadata"]["name"])] = _live(child, ready)
    for ref in the_plan.delete:
        children.pop(ref, None)
    md = copy.deepcopy(observed.md)
    if the_plan.status is not None:
        md["status"] = merge_patch(md.get("status") or {}, the_plan.status)
    if the_plan.consume_action is not None:
        md["metadata"].get("annotations", {}).pop(ANNOTATION_ACTION, None)
    return replace(observed, md=md, children=children)


def settle(observed: Observed, now: dt.datetime = T0, rounds: int = 4) -> Observed:
    """Plan and execute until nothing is left to do (a fresh object becomes Ready)."""
    for _ in range(rounds):
        the_plan = plan(observed, None, now)
        if not the_plan.writes:
            return observed
        observed = execute(observed, the_plan)
    raise AssertionError("did not settle")


def tick(observed: Observed, now: dt.datetime, analysis: AnalysisResult | None = None,
         ready: bool = True) -> tuple[Plan, Observed]:
    the_plan = plan(observed, analysis, now)
    return the_plan, execute(observed, the_plan, ready)
