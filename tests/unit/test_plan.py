"""plan() by tables: create, steady state, drift, canary steps, promotion, rollback, deletions.

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
