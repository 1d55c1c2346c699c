"""plan() by tables: create, steady state, drift, canary steps, promotion, rollback, deletions,
scale to zero.

Driven tick by tick on a simulated cluster (plan_world.py) with an injected clock; no kubernetes
import anywhere on the way.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from modelpilot.cache import stub
from modelpilot.control.observe import Observed, possible_children
from modelpilot.control.plan import PlanSettings, plan
from modelpilot.control.serverless import ServerlessReading
from modelpilot.rollout.machine import AnalysisResult, Measurement
from tests.unit.plan_world import T0, execute, modeldeployment, settle, spec

GATEWAY = {"gatewayAPI": {"parentRefs": [{"name": "gw"}]}}
AUTOSCALING = {"minReplicas": 2, "maxReplicas": 5, "targetCPUUtilization": 70}


def seconds(n: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=n)


def applied(the_plan: Any) -> list[tuple[str, str]]:
    return sorted((o["kind"], o["metadata"]["name"]) for o in the_plan.apply)


def verdict(v: str) -> AnalysisResult:
    return AnalysisResult(v, (Measurement(T0, "error-rate", 0.0 if v == "Pass" else 9.0, "<= 1", v),))  # type: ignore[arg-type]


def gateway_spec(version: str = "v1") -> dict[str, Any]:
    body = spec(version)
    body["rollout"]["canary"]["trafficRouting"] = GATEWAY
    return body


def with_spec(observed: Observed, body: dict[str, Any], generation: int = 2,
              annotations: dict[str, str] | None = None) -> Observed:
    md = copy.deepcopy(observed.md)
    md["spec"] = body
    md["metadata"]["generation"] = generation
    if annotations:
        md["metadata"]["annotations"] = annotations
    return replace(observed, md=md)


# -- create ---------------------------------------------------------------------------------------
CREATE = [
    ("replicas", spec(), [("Deployment", "fraud"), ("Service", "fraud"), ("Service", "fraud-canary"),
                          ("Service", "fraud-stable")]),
    ("gateway", gateway_spec(), [("Deployment", "fraud"), ("HTTPRoute", "fraud"), ("Service", "fraud"),
                                 ("Service", "fraud-canary"), ("Service", "fraud-stable")]),
    ("autoscaled", {**spec(), "autoscaling": AUTOSCALING},
     [("Deployment", "fraud"), ("HorizontalPodAutoscaler", "fraud"), ("Service", "fraud"),
      ("Service", "fraud-canary"), ("Service", "fraud-stable")]),
]


@pytest.mark.parametrize(("body", "children"), [c[1:] for c in CREATE], ids=[c[0] for c in CREATE])
def test_create_plans_every_child_and_a_pending_status(body: dict[str, Any], children: list[tuple[str, str]]) -> None:
    the_plan = plan(Observed(md=modeldeployment(body)), None, T0)
    assert applied(the_plan) == children
    created = {(o["apiVersion"], o["kind"], o["metadata"]["name"]) for o in the_plan.apply}
    assert created <= set(possible_children("fraud"))  # what observe() looks up
    assert the_plan.delete == () and the_plan.consume_action is None and the_plan.analysis is None
    assert the_plan.events == ()  # a new object's first Pending is no news: no Event write
    assert the_plan.status is not None and the_plan.status["phase"] == "Pending"
    assert the_plan.status["selector"] == "app.kubernetes.io/managed-by=modelpilot,app.kubernetes.io/name=fraud," \
                                          "modelpilot.io/track=stable"
    # An autoscaled Deployment starts at minReplicas under the bootstrap manager, never in our apply.
    assert [o["spec"]["replicas"] for o in the_plan.bootstrap] == ([2] if "autoscaling" in body else [])


# -- steady state ---------------------------------------------------------------------------------
STEADY = [
    ("replicas", spec()),
    ("gateway", gateway_spec()),
    ("autoscaled", {**spec(), "autoscaling": AUTOSCALING}),
    ("rolling", {**spec(), "rollout": {"strategy": "Rolling"}}),
]


@pytest.mark.parametrize("body", [c[1] for c in STEADY], ids=[c[0] for c in STEADY])
def test_steady_state_plans_nothing(body: dict[str, Any]) -> None:
    settled = settle(Observed(md=modeldeployment(body)))
    assert settled.md["status"]["phase"] == "Ready"
    the_plan = plan(settled, None, T0 + dt.timedelta(hours=1))
    assert not the_plan.writes, the_plan
    assert the_plan.requeue is None and the_plan.analysis is None and the_plan.decisions == ()


# -- drift ----------------------------------------------------------------------------------------
def _edit(kind: str, name: str, change: Callable[[dict[str, Any]], None]) -> Callable[[Observed], Observed]:
    def edit(observed: Observed) -> Observed:
        children = copy.deepcopy(dict(observed.children))
        key = next(k for k in children if k[1] == kind and k[2] == name)
        change(children[key])
        return replace(observed, children=children)
    return edit


def _delete(kind: str, name: str) -> Callable[[Observed], Observed]:
    def delete(observed: Observed) -> Observed:
        return replace(observed, children={k: v for k, v in observed.children.items()
                                           if (k[1], k[2]) != (kind, name)})
    return delete


def _image(d: dict[str, Any]) -> None:
    d["spec"]["template"]["spec"]["containers"][0]["image"] = "evil:latest"


DRIFT = [
    ("image-edited", _edit("Deployment", "fraud", _image), [("Deployment", "fraud")]),
    ("scaled-by-hand", _edit("Deployment", "fraud", lambda d: d["spec"].update(replicas=7)), [("Deployment", "fraud")]),
    ("selector-edited", _edit("Service", "fraud", lambda s: s["spec"]["selector"].update({"x": "y"})), []),
    ("selector-replaced", _edit("Service", "fraud", lambda s: s["spec"].update(selector={"x": "y"})),
     [("Service", "fraud")]),
    ("third-party-label", _edit("Deployment", "fraud", lambda d: d["metadata"]["labels"].update(team="a")), []),
    ("deployment-deleted", _delete("Deployment", "fraud"), [("Deployment", "fraud")]),
    ("service-deleted", _delete("Service", "fraud-stable"), [("Service", "fraud-stable")]),
]


@pytest.mark.parametrize(("edit", "children"), [c[1:] for c in DRIFT], ids=[c[0] for c in DRIFT])
def test_drift_reapplies_only_what_differs(edit: Callable[[Observed], Observed],
                                           children: list[tuple[str, str]]) -> None:
    settled = settle(Observed(md=modeldeployment(spec())))
    the_plan = plan(edit(settled), None, seconds(60))
    assert applied(the_plan) == children
    assert the_plan.delete == ()


# -- deletions ------------------------------------------------------------------------------------
def _foreign_hpa(observed: Observed) -> Observed:
    hpa = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
           "metadata": {"name": "fraud", "namespace": "ml", "ownerReferences": [{"uid": "someone-else"}]}}
    ref = ("autoscaling/v2", "HorizontalPodAutoscaler", "fraud")
    return replace(observed, children={**observed.children, ref: hpa})


def _service_with_cluster_ip(observed: Observed) -> Observed:
    return _edit("Service", "fraud-stable", lambda s: s["spec"].update(clusterIP="10.96.0.11"))(observed)


DELETIONS = [
    ("autoscaling-removed", {**spec(), "autoscaling": AUTOSCALING}, spec(), None,
     [("autoscaling/v2", "HorizontalPodAutoscaler", "fraud")]),
    ("gateway-to-replicas", gateway_spec(), spec(), None, [("gateway.networking.k8s.io/v1", "HTTPRoute", "fraud")]),
    ("foreign-hpa-kept", spec(), spec(), _foreign_hpa, []),
    ("per-track-service-becomes-headless", spec(), spec(), _service_with_cluster_ip,
     [("v1", "Service", "fraud-stable")]),
]


@pytest.mark.parametrize(("before", "after", "edit", "deleted"), [c[1:] for c in DELETIONS],
                         ids=[c[0] for c in DELETIONS])
def test_unwanted_owned_children_are_deleted(before: dict[str, Any], after: dict[str, Any],
                                             edit: Callable[[Observed], Observed] | None,
                                             deleted: list[tuple[str, str, str]]) -> None:
    settled = settle(Observed(md=modeldeployment(before)))
    if edit is not None:
        settled = edit(settled)
    the_plan = plan(with_spec(settled, after, generation=1), None, seconds(60))
    assert list(the_plan.delete) == deleted
    assert set(deleted) <= set(possible_children("fraud"))  # what observe() looks up
    for ref in deleted:  # deleted children are not applied in the same tick
        assert (ref[1], ref[2]) not in applied(the_plan)


def test_invalid_spec_writes_status_only() -> None:
    body = spec()
    body["rollout"]["canary"]["analysis"] = {"metrics": [{"name": "x", "query": "sum(rate(", "max": 1}]}
    the_plan = plan(Observed(md=modeldeployment(body)), None, T0)
    assert the_plan.apply == () and the_plan.delete == ()
    assert the_plan.status is not None and the_plan.status["conditions"][0]["reason"] == "InvalidSpec"
    assert [e.reason for e in the_plan.events] == ["InvalidSpec"]
    again = execute(Observed(md=modeldeployment(body)), the_plan)
    assert not plan(again, None, seconds(30)).writes  # reported once, not every tick


CUSTOM = {"name": "custom-x", "query": 'sum(rate(x{namespace="payments"}[1m]))', "max": 1}


@pytest.mark.parametrize(("confine", "rejected", "reason"), [
    (False, {}, None),
    (True, {}, "must be confined"),
    (False, {CUSTOM["query"]: "prometheus rejected the query: HTTP Status Code 400"}, "rejected by the metric"),
])
def test_custom_queries_confined_or_rejected_are_invalid_spec(confine: bool, rejected: dict[str, str],
                                                              reason: str | None) -> None:
    body = spec()
    body["rollout"]["canary"]["analysis"] = {"metrics": [CUSTOM]}
    observed = replace(Observed(md=modeldeployment(body)), rejected_queries=rejected)
    the_plan = plan(observed, None, T0, PlanSettings(confine_queries=confine))
    ready = the_plan.status["conditions"][0] if the_plan.status else {}
    if reason is None:
        assert ready["reason"] == "Pending" and the_plan.apply
    else:
        assert ready["reason"] == "InvalidSpec" and reason in ready["message"] and the_plan.apply == ()


def _foreign(kind: str, name: str, api_version: str = "v1") -> Callable[[Observed], Observed]:
    """An object with our labels (so it is in the cache) controlled by another ModelDeployment."""
    def edit(observed: Observed) -> Observed:
        obj = {"apiVersion": api_version, "kind": kind, "metadata": {
            "name": name, "namespace": "ml", "labels": {"app.kubernetes.io/managed-by": "modelpilot"},
            "ownerReferences": [{"apiVersion": "modelpilot.io/v1alpha1", "kind": "ModelDeployment",
                                 "name": "fraud-x", "uid": "u-other", "controller": True}]}}
        return replace(observed, children={**observed.children, (api_version, kind, name): obj})
    return edit


def _unlabelled(kind: str, name: str, owner: bool = True) -> Callable[[Observed], Observed]:
    """An object of someone else's (not our label), held in the cache as a stub."""
    def edit(observed: Observed) -> Observed:
        meta: dict[str, Any] = {"name": name, "namespace": "ml", "resourceVersion": "9", "labels": {"app": "shop"}}
        if owner:
            meta["ownerReferences"] = [{"apiVersion": "argoproj.io/v1alpha1", "kind": "Application", "name": "shop",
                                        "uid": "u-shop", "controller": True}]
        held = stub({"apiVersion": "v1", "kind": kind, "metadata": meta, "spec": {"selector": {"app": "shop"}}})
        return replace(observed, children={**observed.children, ("v1", kind, name): held})
    return edit


@pytest.mark.parametrize(("edit", "named"), [
    (_foreign("Service", "fraud-canary"), "Service ml/fraud-canary exists and is controlled by ModelDeployment "
                                          "fraud-x"),
    (_foreign("Deployment", "fraud", "apps/v1"), "Deployment ml/fraud"),
    (_unlabelled("Service", "fraud"), "Service ml/fraud exists and is controlled by Application shop"),
    (_unlabelled("Service", "fraud-stable", owner=False), "Service ml/fraud-stable exists and is not controlled by "
                                                          "this ModelDeployment"),
], ids=["cached-service", "cached-deployment", "someone-elses-service", "an-unowned-service"])
def test_a_name_taken_by_another_owner_is_a_conflict_and_nothing_is_written(
        edit: Callable[[Observed], Observed], named: str) -> None:
    for observed in (Observed(md=modeldeployment(spec())), settle(Observed(md=modeldeployment(spec())))):
        the_plan = plan(edit(observed), None, seconds(60))
        assert the_plan.apply == () and the_plan.delete == () and the_plan.bootstrap == ()
        assert the_plan.status is not None
        ready = the_plan.status["conditions"][0]
        assert (ready["status"], ready["reason"]) == ("False", "NameConflict") and named in ready["message"]
        assert [(e.type, e.reason) for e in the_plan.events] == [("Warning", "NameConflict")]
        assert the_plan.requeue is not None and the_plan.requeue > 0


# -- scale to zero (KEDA and the activator) --------------------------------------------------------
TO_ZERO = {"minReplicas": 0, "maxReplicas": 3, "metric": "requests", "scaleToZeroAfter": "60s"}
ON_REQUESTS = {"minReplicas": 1, "maxReplicas": 3, "metric": "requests"}
SCALEDOBJECT = ("keda.sh/v1alpha1", "ScaledObject", "fraud")
ROUTE = ("gateway.networking.k8s.io/v1", "HTTPRoute", "fraud")


def autoscaled(autoscaling: dict[str, Any]) -> dict[str, Any]:
    return {**gateway_spec(), "autoscaling": dict(autoscaling)}


def applied_kind(the_plan: Any, kind: str) -> dict[str, Any] | None:
    return next((o for o in the_plan.apply if o["kind"] == kind), None)


def stable_pod(ready: bool) -> dict[str, Any]:
    return {"metadata": {"name": "fraud-1", "namespace": "ml", "labels": {"modelpilot.io/track": "stable"}},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": str(ready)}]}}


def scaled_to(observed: Observed, replicas: int, ready: bool = True) -> Observed:
    """KEDA set the stable Deployment to `replicas`, and the ReplicaSet caught up."""
    children = copy.deepcopy(dict(observed.children))
    deployment = children[("apps/v1", "Deployment", "fraud")]
    deployment["spec"]["replicas"] = replicas
    deployment["status"].update(replicas=replicas, readyReplicas=replicas if ready else 0,
                                availableReplicas=replicas if ready else 0)
    return replace(observed, children=children, pods=tuple(stable_pod(ready) for _ in range(replicas)))


def accepted(observed: Observed) -> Observed:
    """The gateway accepted the live route's generation, and resolved its backends."""
    children = copy.deepcopy(dict(observed.children))
    route = children[ROUTE]
    seen = route["metadata"]["generation"]
    route["status"] = {"parents": [{"parentRef": {"name": "gw"}, "conditions": [
        {"type": kind, "status": "True", "observedGeneration": seen} for kind in ("Accepted", "ResolvedRefs")]}]}
    return replace(observed, children=children)


@pytest.mark.parametrize(("autoscaling", "minimum", "grant"), [(TO_ZERO, 1, True), (ON_REQUESTS, 1, False)],
                         ids=["scale-to-zero", "request-metric"])
def test_keda_scales_instead_of_an_hpa(autoscaling: dict[str, Any], minimum: int, grant: bool) -> None:
    observed = Observed(md=modeldeployment(autoscaled(autoscaling)), keda=True)
    the_plan = plan(observed, None, T0)
    kinds = [kind for kind, _ in applied(the_plan)]
    assert "ScaledObject" in kinds and "HorizontalPodAutoscaler" not in kinds
    scaledobject = applied_kind(the_plan, "ScaledObject")
    assert scaledobject is not None and scaledobject["spec"]["minReplicaCount"] == minimum
    assert [o["spec"]["replicas"] for o in the_plan.bootstrap] == [1]  # never created at zero
    reference_grant = applied_kind(the_plan, "ReferenceGrant")
    assert (reference_grant is not None) is grant
    if grant:
        assert reference_grant["metadata"]["namespace"] == "modelpilot-system"  # type: ignore[index]
        # Granted once per namespace and process: not again.
        again = plan(replace(observed, activator_granted=True), None, T0)
        assert applied_kind(again, "ReferenceGrant") is None and applied_kind(again, "ScaledObject") is not None
    assert the_plan.status is not None and ("serverless" in the_plan.status) is grant
    assert the_plan.read_serverless is grant


@pytest.mark.parametrize("autoscaling", [TO_ZERO, ON_REQUESTS], ids=["scale-to-zero", "request-metric"])
def test_without_keda_ready_is_false_keda_missing(autoscaling: dict[str, Any]) -> None:
    observed = Observed(md=modeldeployment(autoscaled(autoscaling)), keda=False)
    the_plan = plan(observed, None, T0)
    kinds = [kind for kind, _ in applied(the_plan)]
    assert not {"ScaledObject", "HorizontalPodAutoscaler", "ReferenceGrant"} & set(kinds)
    assert the_plan.status is not None
    ready = the_plan.status["conditions"][0]
    assert (ready["type"], ready["status"], ready["reason"]) == ("Ready", "False", "KEDAMissing")
    assert [(e.type, e.reason) for e in the_plan.events] == [("Warning", "KEDAMissing")]
    later = plan(execute(observed, the_plan), None, seconds(30))
    assert "KEDAMissing" not in [e.reason for e in later.events]  # once, not every tick


def test_idle_track_moves_its_route_then_goes_to_zero_and_comes_back() -> None:
    body = autoscaled(TO_ZERO)
    observed = settle(replace(Observed(md=modeldeployment(body)), keda=True, activator_granted=True,
                              pods=(stable_pod(True),)))
    assert observed.md["status"]["serverless"]["readySince"] == "2026-11-25T12:00:00Z"
    # Idle: the stable share moves to the activator; the pod stays until the gateway took the route.
    observed = replace(observed, serverless_reading=ServerlessReading(at=seconds(60)))
    the_plan = plan(observed, None, seconds(61))
    route = applied_kind(the_plan, "HTTPRoute")
    assert route is not None and [b["name"] for b in route["spec"]["rules"][0]["backendRefs"]] == [
        "modelpilot-activator", "fraud-canary"]
    # Forwarded to the Service `fraud` (stable pods only, with a ClusterIP; fraud-stable is headless).
    assert route["spec"]["rules"][0]["filters"][0]["requestHeaderModifier"]["set"] == [
        {"name": "x-modelpilot-upstream", "value": "10.96.0.10:80"},
        {"name": "x-modelpilot-target", "value": "ml/fraud/stable"}]
    assert applied_kind(the_plan, "ScaledObject") is None and the_plan.events == ()
    # Accepted: the ScaledObject may now remove the last pod.
    observed = accepted(execute(observed, the_plan))
    the_plan = plan(observed, None, seconds(62))
    assert applied(the_plan) == [("ScaledObject", "fraud")]
    assert the_plan.apply[0]["spec"]["minReplicaCount"] == 0
    observed = scaled_to(execute(observed, the_plan), 0)
    the_plan = plan(observed, None, seconds(100))
    assert [e.reason for e in the_plan.events] == ["ScaledToZero"] and applied(the_plan) == []
    assert the_plan.status is not None and the_plan.status["serverless"]["scaledToZero"] is True
    # A request at the activator: KEDA scales to one; requests stay held until the pod is Ready.
    observed = scaled_to(execute(observed, the_plan), 1, ready=False)
    the_plan = plan(observed, None, seconds(200))
    assert the_plan.serverless is not None and [e.reason for e in the_plan.serverless.events] == ["Activated"]
    assert "Activated" in [e.reason for e in the_plan.events]
    assert applied(the_plan) == [("ScaledObject", "fraud")] and the_plan.apply[0]["spec"]["minReplicaCount"] == 1
    observed = scaled_to(execute(observed, the_plan), 1)
    the_plan = plan(observed, None, seconds(230))
    route = applied_kind(the_plan, "HTTPRoute")
    assert route is not None and route["spec"]["rules"][0]["backendRefs"][0]["name"] == "fraud-stable"
