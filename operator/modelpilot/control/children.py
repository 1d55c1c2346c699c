"""The children part of a plan (pure): desired children at this tick's weight, which of them differ
from what is live, and which owned children must go."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from modelpilot.api.models import ModelDeploymentSpec
from modelpilot.control.edge import Layout
from modelpilot.control.observe import ChildRef, Observed, controlled_by, controller_of
from modelpilot.control.tick import Tick
from modelpilot.drift import differences
from modelpilot.resources import (
    BuildSettings,
    build_deployment,
    build_scaledobject,
    desired_children,
    desired_replicas,
    unwanted_children,
)
from modelpilot.resources.daemonset import build_daemonset, build_edge_service
from modelpilot.resources.labels import ANNOTATION_WEIGHT
from modelpilot.rollout.machine import Decision
from modelpilot.rollout.stages import capacity_percent, first_stage
from modelpilot.rollout.state import stage_config
from modelpilot.routing import ROUTERS, RouteContext, Traffic, router_for
from modelpilot.routing.base import Activator

Obj = dict[str, Any]


@dataclass(frozen=True)
class Children:
    apply: tuple[Obj, ...] = ()
    bootstrap: tuple[Obj, ...] = ()
    delete: tuple[ChildRef, ...] = ()
    decisions: tuple[tuple[str, dict[str, Any]], ...] = ()
    conflicts: dict[ChildRef, str] = field(default_factory=dict)  # ref -> who controls it


def _ref(obj: Obj) -> ChildRef:
    return obj["apiVersion"], obj["kind"], obj["metadata"]["name"]


def stable_replicas(spec: ModelDeploymentSpec, stable_live: Obj | None) -> int:
    wanted = desired_replicas(spec)
    if wanted is not None:
        return wanted
    live = ((stable_live or {}).get("spec") or {}).get("replicas")
    return int(live or (spec.autoscaling.min_replicas if spec.autoscaling else 1))


@dataclass(frozen=True)
class Scaling:
    """This tick's scale-to-zero decisions (control/serverless.py): the ScaledObject keeps a pod
    (`hold`), and the route's stable share goes through `activator`."""

    hold: bool = True
    activator: Activator | None = None
    layout: Layout | None = None  # target Edge: the canary's nodes this tick (control/edge.py)


def edge_children(observed: Observed, spec: ModelDeploymentSpec, tick: Tick, owner: dict[str, Any],
                  build: BuildSettings, layout: Layout) -> list[Obj]:
    """Target Edge: the stable DaemonSet (every fleet node but the canary's), the canary
    DaemonSet while it has nodes, and the node-local Service."""
    name, namespace = observed.name, observed.namespace
    children = [build_daemonset(tick.stable_spec, name=name, namespace=namespace, owner=owner, settings=build,
                                track="stable", canary_nodes=layout.canary_nodes)]
    if layout.canary_nodes:
        children.append(build_daemonset(spec, name=name, namespace=namespace, owner=owner, settings=build,
                                        track="canary", canary_nodes=layout.canary_nodes))
    children.append(build_edge_service(name, namespace, owner, tick.stable_spec.runtime.serves_grpc))
    return children


def wanted_children(observed: Observed, spec: ModelDeploymentSpec, tick: Tick, owner: dict[str, Any],
                    build: BuildSettings, scaling: Scaling = Scaling()) -> list[Obj]:
    """Stable Deployment, Services, HPA (from the stable spec) or ScaledObject, the canary
    Deployment, the router's; or, for target Edge, the DaemonSets and the Service."""
    if scaling.layout is not None:
        return edge_children(observed, spec, tick, owner, build, scaling.layout)
    name, namespace = observed.name, observed.namespace
    decision = tick.decision
    children = desired_children(tick.stable_spec, name=name, namespace=namespace, owner=owner, settings=build)
    if spec.autoscaling is not None and spec.autoscaling.keda and observed.keda:
        children.append(build_scaledobject(spec.autoscaling, name=name, namespace=namespace, owner=owner,
                                           settings=build.scaling, hold=scaling.hold))
    router = router_for(spec)
    canary_live = observed.child("apps/v1", "Deployment", f"{name}-canary")
    stages = stage_config(spec)
    if decision.canary_running:
        assert decision.canary is not None
        steps = spec.rollout.canary.steps
        first_stage_of = first_stage(stages, tuple(steps))
        first_step = capacity_percent(stages, first_stage_of[0], first_stage_of[1], steps[0] if steps else 0)
        capacity = capacity_percent(stages, decision.canary.stage, decision.canary.weight, first_step) \
            if decision.canary.step >= 0 else first_step
        stable = stable_replicas(spec, observed.child("apps/v1", "Deployment", name))
        canary = build_deployment(spec, name=name, namespace=namespace, owner=owner, settings=build, track="canary",
                                  replicas=router.canary_replicas(stable, capacity, first_step))
        # The weight these replicas were sized for, on the same object (for people and tests).
        canary["metadata"].setdefault("annotations", {})[ANNOTATION_WEIGHT] = str(decision.weight)
        children.append(canary)
    elif canary_live is not None and (canary_live.get("spec") or {}).get("replicas", 0) != 0:
        # The canary scales to zero; its Deployment stays (cheap, and a retry reuses it).
        children.append(build_deployment(spec, name=name, namespace=namespace, owner=owner, settings=build,
                                         track="canary", replicas=0))
    ctx = RouteContext(name=name, namespace=namespace, owner=owner, spec=spec)
    children += router.children(ctx, replace(traffic_for(spec, decision), activator=scaling.activator))
    return children


def traffic_for(spec: ModelDeploymentSpec, decision: Decision) -> Traffic:
    """What the router sends to the canary in the decided stage. Matching users stay on the canary
    through the weight steps too (no flapping back to stable between phases)."""
    canary = decision.canary
    if not decision.canary_running or canary is None or canary.step < 0:
        return Traffic(weight=0)
    shadow = spec.rollout.canary.shadow
    if canary.stage == "shadow" and shadow is not None:
        return Traffic(weight=0, mirror_percent=shadow.percent)
    return Traffic(weight=canary.weight, segment=canary.stage in ("segment", "steps") and
                   bool(spec.rollout.canary.match) and spec.rollout.strategy == "Canary")


def _needs_replacement(desired: Obj, live: Obj) -> bool:
    """A Service whose ClusterIP must change (to or from headless): the field is immutable."""
    if desired["kind"] != "Service":
        return False
    want = desired["spec"].get("clusterIP")
    have = (live.get("spec") or {}).get("clusterIP")
    return (want == "None") != (have == "None")


def desired_state(observed: Observed, spec: ModelDeploymentSpec, tick: Tick, owner: dict[str, Any],
                  build: BuildSettings, scaling: Scaling = Scaling()) -> Children:
    uid = owner["uid"]
    apply: list[Obj] = []
    bootstrap: list[Obj] = []
    delete: list[ChildRef] = []
    decisions: list[tuple[str, dict[str, Any]]] = []
    wanted = wanted_children(observed, spec, tick, owner, build, scaling)
    conflicts: dict[ChildRef, str] = {}
    for child in wanted:
        live = observed.children.get(_ref(child))
        if live is not None and not controlled_by(live, uid):
            conflicts[_ref(child)] = controller_of(live)
    if conflicts:
        # Never adopt, patch or delete what another owner controls; and write no other child
        # either while the name clashes: a half-built ModelDeployment helps nobody.
        return Children(conflicts=conflicts)
    for child in wanted:
        ref = _ref(child)
        live = observed.children.get(ref)
        if live is None:
            if child["kind"] == "Deployment" and spec.autoscaling is not None and "replicas" not in child["spec"]:
                # Start an autoscaled Deployment at minReplicas (an HPA without metrics yet would
                # leave it at 1) under a separate field manager, so the operator's own apply
                # never owns replicas and never fights the HPA.
                bootstrap.append({**child, "spec": {**child["spec"],
                                                    "replicas": spec.autoscaling.min_replicas or 1}})
            apply.append(child)
            decisions.append(("created", {"kind": ref[1], "child": ref[2]}))
        elif _needs_replacement(child, live):  # ours: a conflict returned above
            delete.append(ref)  # re-created by the next tick, once the delete is seen
            decisions.append(("replaced", {"kind": ref[1], "child": ref[2], "why": "clusterIP is immutable"}))
        else:
            drift = differences(child, live)
            if drift:
                apply.append(child)
                decisions.append(("applied", {"kind": ref[1], "child": ref[2], "fields": ",".join(drift[:5])}))
    wanted_refs = {_ref(c) for c in wanted}
    for ref in _unwanted(observed.name, spec):
        live = observed.children.get(ref)
        if ref not in wanted_refs and live is not None and controlled_by(live, uid):
            delete.append(ref)
            decisions.append(("deleted", {"kind": ref[1], "child": ref[2], "why": "no longer in the spec"}))
    return Children(tuple(apply), tuple(bootstrap), tuple(delete), tuple(decisions))


def _unwanted(name: str, spec: ModelDeploymentSpec) -> list[ChildRef]:
    """Children that may exist from an earlier spec: the HPA once autoscaling is removed, and any
    router child not wanted now (another router's, or the sticky policy after an experiment); the
    other target's workloads; the canary DaemonSet once no node runs the canary."""
    refs = [ref for router in ROUTERS.values() for ref in router.child_refs(name)]
    daemonsets: list[ChildRef] = [("apps/v1", "DaemonSet", name), ("apps/v1", "DaemonSet", f"{name}-canary")]
    if spec.target == "Edge":
        cluster: list[ChildRef] = [("apps/v1", "Deployment", name), ("apps/v1", "Deployment", f"{name}-canary"),
                                   ("v1", "Service", f"{name}-stable"), ("v1", "Service", f"{name}-canary")]
        return [*unwanted_children(spec, name=name), *cluster, *dict.fromkeys(refs), daemonsets[1]]
    return [*unwanted_children(spec, name=name), *dict.fromkeys(refs), *daemonsets]
