"""Routers: the replica rule, the HTTPRoute builder (weights, mirror, segment matches, the Cookie
header pattern, the stable share through the activator) and the gatewayAPI router's children (with
the sticky BackendTrafficPolicy)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from modelpilot.api.models import GatewayAPI, RouteMatch, parse_spec
from modelpilot.routing import RouteContext, Traffic, build_httproute, canary_replicas
from modelpilot.routing.base import Activator
from modelpilot.routing.gateway import GatewayAPIRouter, activator_filter, cookie_pattern, on_activator, route_matches
from modelpilot.routing.replicas import effective_weight
from tests.unit.spec_cases import CONVERSIONS, GATEWAY, canary, experiment, spec

OWNER = {"apiVersion": "modelpilot.io/v1alpha1", "kind": "ModelDeployment", "name": "fraud", "uid": "u-1"}


@pytest.mark.parametrize(("stable", "weight", "canary"), [
    (2, 0, 0), (2, 10, 1), (9, 10, 1), (10, 10, 2), (3, 25, 1), (4, 50, 4), (4, 75, 12), (0, 10, 1), (5, 100, 5),
])
def test_canary_replicas_follow_the_weight_rule(stable: int, weight: int, canary: int) -> None:
    assert canary_replicas(stable, weight) == canary


def test_stable_is_never_scaled_so_effective_weight_is_from_pods() -> None:
    assert effective_weight(4, canary_replicas(4, 50)) == 50
    assert effective_weight(2, canary_replicas(2, 10)) == 33  # coarse with few pods
    assert effective_weight(0, 0) == 0


@pytest.mark.parametrize("weight", [0, 10, 25, 50, 100])
def test_httproute_weights_are_exact(weight: int) -> None:
    gateway = GatewayAPI.model_validate({"parentRefs": [{"name": "gw", "namespace": "infra"}],
                                         "hostnames": ["fraud.example.com"]})
    route = build_httproute("fraud", "ml", OWNER, gateway, weight)
    assert route["apiVersion"] == "gateway.networking.k8s.io/v1" and route["kind"] == "HTTPRoute"
    assert route["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    assert route["spec"]["parentRefs"] == [{"name": "gw", "namespace": "infra"}]
    assert route["spec"]["hostnames"] == ["fraud.example.com"]
    backends = route["spec"]["rules"][0]["backendRefs"]
    assert [(b["name"], b["weight"], b["port"]) for b in backends] == [
        ("fraud-stable", 100 - weight, 80), ("fraud-canary", weight, 80)]


# -- shadow, segment and sticky experiments (gatewayAPI) -------------------------------------------
GATEWAY_API = GatewayAPI.model_validate({"parentRefs": [{"name": "gw"}]})
CANARY_SVC = {"group": "", "kind": "Service", "name": "fraud-canary", "port": 80}


def backends(rule: dict[str, Any]) -> list[tuple[str, int]]:
    return [(b["name"], b["weight"]) for b in rule["backendRefs"]]


@pytest.mark.parametrize(("weight", "mirror"), [(0, 1), (0, 50), (0, 100), (10, 20)])
def test_httproute_mirror_copies_a_percent_to_the_canary(weight: int, mirror: int) -> None:
    route = build_httproute("fraud", "ml", OWNER, GATEWAY_API, weight, mirror_percent=mirror)
    (split,) = route["spec"]["rules"]
    assert backends(split) == [("fraud-stable", 100 - weight), ("fraud-canary", weight)]
    # The mirror's backendRef carries no weight: it is a copy, not a share.
    assert split["filters"] == [{"type": "RequestMirror", "requestMirror": {"backendRef": CANARY_SVC,
                                                                             "percent": mirror}}]


def test_httproute_without_mirror_has_no_filter() -> None:
    (split,) = build_httproute("fraud", "ml", OWNER, GATEWAY_API, 10)["spec"]["rules"]
    assert "filters" not in split and "matches" not in split


@pytest.mark.parametrize("weight", [0, 20, 50])
def test_httproute_matches_send_the_segment_to_the_canary_first(weight: int) -> None:
    matches = [RouteMatch.model_validate({"headers": [{"name": "x-cohort", "value": "beta"}]})]
    segment, split = build_httproute("fraud", "ml", OWNER, GATEWAY_API, weight, matches=matches)["spec"]["rules"]
    assert segment["matches"] == [{"path": {"type": "PathPrefix", "value": "/"},
                                   "headers": [{"type": "Exact", "name": "x-cohort", "value": "beta"}]}]
    assert backends(segment) == [("fraud-stable", 0), ("fraud-canary", 100)]
    assert backends(split) == [("fraud-stable", 100 - weight), ("fraud-canary", weight)]
    assert "matches" not in split


ALL_PATHS = {"type": "PathPrefix", "value": "/"}
MATCH_CASES = [
    ("exact-header", [{"headers": [{"name": "x-cohort", "value": "beta"}]}],
     [[{"type": "Exact", "name": "x-cohort", "value": "beta"}]]),
    ("regex-header", [{"headers": [{"name": "x-cohort", "value": "be.*", "type": "RegularExpression"}]}],
     [[{"type": "RegularExpression", "name": "x-cohort", "value": "be.*"}]]),
    ("cookie", [{"cookie": {"name": "cohort", "value": "beta"}}],
     [[{"type": "RegularExpression", "name": "Cookie", "value": cookie_pattern("cohort", "beta")}]]),
    ("headers-and-cookie-all-hold",
     [{"headers": [{"name": "x-a", "value": "1"}, {"name": "x-b", "value": "2"}],
       "cookie": {"name": "cohort", "value": "beta"}}],
     [[{"type": "Exact", "name": "x-a", "value": "1"}, {"type": "Exact", "name": "x-b", "value": "2"},
       {"type": "RegularExpression", "name": "Cookie", "value": cookie_pattern("cohort", "beta")}]]),
    ("alternatives-are-separate-matches",
     [{"headers": [{"name": "x-cohort", "value": "beta"}]}, {"cookie": {"name": "cohort", "value": "beta"}}],
     [[{"type": "Exact", "name": "x-cohort", "value": "beta"}],
      [{"type": "RegularExpression", "name": "Cookie", "value": cookie_pattern("cohort", "beta")}]]),
]


@pytest.mark.parametrize(("case", "raw", "headers"), MATCH_CASES, ids=[c[0] for c in MATCH_CASES])
def test_route_matches(case: str, raw: list[dict[str, Any]], headers: list[list[dict[str, str]]]) -> None:
    matches = [RouteMatch.model_validate(m) for m in raw]
    assert route_matches(matches) == [{"path": ALL_PATHS, "headers": h} for h in headers]


COOKIE_CASES = [
    ("cohort", "beta", "cohort=beta", True),
    ("cohort", "beta", "a=1; cohort=beta", True),
    ("cohort", "beta", "cohort=beta; b=2", True),
    ("cohort", "beta", "a=1;cohort=beta;b=2", True),
    ("cohort", "beta", "a=1; cohort=beta; b=2", True),
    ("cohort", "beta", "cohort=betamax", False),
    ("cohort", "beta", "xcohort=beta", False),
    ("cohort", "beta", "a=1; xcohort=beta", False),
    ("cohort", "beta", "cohort=alpha", False),
    ("cohort", "beta", "cohort=alpha; b=cohort=beta", False),
    ("cohort", "beta", "", False),
    # Regex metacharacters in the value (all valid cookie-octets) are literal.
    ("v", "a.b*c+(d)[e]{2}|$^?&~#-", "x=1; v=a.b*c+(d)[e]{2}|$^?&~#-", True),
    ("v", "a.b", "v=aXb", False),
    ("v", "a+", "v=aaa", False),
    ("v", "(x|y)", "v=x", False),
    ("v", "1.0", "v=1.0", True),
    ("c.o", "1", "cxo=1", False),  # the name too
]


@pytest.mark.parametrize(("name", "value", "header", "matched"), COOKIE_CASES)
def test_cookie_pattern_matches_the_whole_cookie_header(name: str, value: str, header: str, matched: bool) -> None:
    pattern = cookie_pattern(name, value)
    assert bool(re.fullmatch(pattern, header)) is matched
    # Envoy evaluates the pattern with RE2 (Go regexp semantics): same answer there.
    re2 = pytest.importorskip("re2")
    assert bool(re2.fullmatch(pattern, header)) is matched


def ctx(body: dict[str, Any]) -> RouteContext:
    return RouteContext(name="fraud", namespace="ml", owner=OWNER, spec=parse_spec(body))


SEGMENT = [{"headers": [{"name": "x-cohort", "value": "beta"}]}, {"cookie": {"name": "cohort", "value": "beta"}}]
STEPS = canary(steps=[10, 50], trafficRouting=GATEWAY)
SHADOW = canary(shadow={"percent": 50}, trafficRouting=GATEWAY)
MATCHED = canary(match=SEGMENT, trafficRouting=GATEWAY)
HEADER_EXP = experiment(split=30, sticky={"header": "x-user"})
COOKIE_EXP = experiment(split=30, sticky={"cookie": "user"})
CANARY_WITH_EXPERIMENT = spec(rollout={"strategy": "Canary", "canary": {"trafficRouting": GATEWAY},
                                       "experiment": {"metrics": [CONVERSIONS], "sticky": {"header": "x-user"}}})
HEADERS_HASH = {"type": "Headers", "headers": [{"name": "x-user"}]}
COOKIE_HASH = {"type": "Cookie", "cookie": {"name": "user"}}

# id, spec, traffic, (stable, canary) of the split rule, mirror percent, segment rule?, sticky hash
CHILDREN_CASES = [
    ("steps", STEPS, Traffic(weight=10), (90, 10), None, False, None),
    ("nothing-yet", STEPS, Traffic(), (100, 0), None, False, None),
    ("shadow", SHADOW, Traffic(weight=0, mirror_percent=50), (100, 0), 50, False, None),
    ("segment", MATCHED, Traffic(weight=0, segment=True), (100, 0), None, True, None),
    ("segment-through-steps", MATCHED, Traffic(weight=20, segment=True), (80, 20), None, True, None),
    ("match-not-in-segment", MATCHED, Traffic(weight=20), (80, 20), None, False, None),
    ("segment-without-match", STEPS, Traffic(weight=10, segment=True), (90, 10), None, False, None),
    ("experiment-header", HEADER_EXP, Traffic(weight=30), (70, 30), None, False, HEADERS_HASH),
    ("experiment-cookie", COOKIE_EXP, Traffic(weight=30), (70, 30), None, False, COOKIE_HASH),
    ("experiment-not-sticky", experiment(split=30), Traffic(weight=30), (70, 30), None, False, None),
    ("experiment-shadow", experiment({"trafficRouting": GATEWAY, "shadow": {"percent": 10}}, sticky={"cookie": "user"}),
     Traffic(weight=0, mirror_percent=10), (100, 0), 10, False, COOKIE_HASH),
    ("sticky-ignored-under-canary", CANARY_WITH_EXPERIMENT, Traffic(weight=10), (90, 10), None, False, None),
]


@pytest.mark.parametrize(("case", "body", "traffic", "split", "mirror", "segment", "hashing"), CHILDREN_CASES,
                         ids=[c[0] for c in CHILDREN_CASES])
def test_gateway_router_children(case: str, body: dict[str, Any], traffic: Traffic, split: tuple[int, int],
                                 mirror: int | None, segment: bool, hashing: dict[str, Any] | None) -> None:
    router = GatewayAPIRouter()
    children = router.children(ctx(body), traffic)
    refs = [(c["apiVersion"], c["kind"], c["metadata"]["name"]) for c in children]
    assert set(refs) <= set(router.child_refs("fraud"))
    route, *rest = children
    assert route["kind"] == "HTTPRoute" and route["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    rules = route["spec"]["rules"]
    assert len(rules) == (2 if segment else 1)
    if segment:
        assert rules[0]["matches"] == route_matches(parse_spec(body).rollout.canary.match or [])
        assert backends(rules[0]) == [("fraud-stable", 0), ("fraud-canary", 100)]
    assert backends(rules[-1]) == [("fraud-stable", split[0]), ("fraud-canary", split[1])]
    filters = rules[-1].get("filters", [])
    assert [f["requestMirror"]["percent"] for f in filters] == ([mirror] if mirror else [])
    if hashing is None:
        assert rest == []
        return
    (policy,) = rest
    assert (policy["apiVersion"], policy["kind"]) == ("gateway.envoyproxy.io/v1alpha1", "BackendTrafficPolicy")
    assert policy["metadata"]["name"] == "fraud" and policy["metadata"]["namespace"] == "ml"
    assert policy["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    assert policy["spec"] == {
        "targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": "fraud"}],
        "loadBalancer": {"type": "ConsistentHash", "consistentHash": hashing},
    }


def test_gateway_router_child_refs_list_the_route_and_the_sticky_policy() -> None:
    assert GatewayAPIRouter().child_refs("fraud") == [
        ("gateway.networking.k8s.io/v1", "HTTPRoute", "fraud"),
        ("gateway.envoyproxy.io/v1alpha1", "BackendTrafficPolicy", "fraud"),
    ]


# -- scale to zero: the stable share through the activator -----------------------------------------
ACTIVATOR = Activator(namespace="modelpilot-system", service="modelpilot-activator", port=8080,
                      upstream="10.96.0.10:80", target="ml/fraud/stable")
ACTIVATOR_REF = {"group": "", "kind": "Service", "name": "modelpilot-activator", "namespace": "modelpilot-system",
                 "port": 8080}
UPSTREAM = {"type": "RequestHeaderModifier", "requestHeaderModifier": {"set": [
    {"name": "x-modelpilot-upstream", "value": "10.96.0.10:80"},
    {"name": "x-modelpilot-target", "value": "ml/fraud/stable"}]}}


@pytest.mark.parametrize("weight", [0, 10])
def test_httproute_through_the_activator(weight: int) -> None:
    (split,) = build_httproute("fraud", "ml", OWNER, GATEWAY_API, weight, activator=ACTIVATOR)["spec"]["rules"]
    assert split["backendRefs"] == [{**ACTIVATOR_REF, "weight": 100 - weight},
                                    {"group": "", "kind": "Service", "name": "fraud-canary", "port": 80,
                                     "weight": weight}]
    assert split["filters"] == [UPSTREAM] == [activator_filter(ACTIVATOR)]


def test_httproute_through_the_activator_keeps_a_mirror() -> None:
    (split,) = build_httproute("fraud", "ml", OWNER, GATEWAY_API, 0, mirror_percent=5,
                               activator=ACTIVATOR)["spec"]["rules"]
    assert [f["type"] for f in split["filters"]] == ["RequestHeaderModifier", "RequestMirror"]


def test_gateway_router_children_route_through_the_activator() -> None:
    (route,) = GatewayAPIRouter().children(ctx(STEPS), Traffic(activator=ACTIVATOR))
    assert backends(route["spec"]["rules"][0]) == [("modelpilot-activator", 100), ("fraud-canary", 0)]


def live_route(refs: list[dict[str, Any]], conditions: dict[str, tuple[str, int]] | None,
               generation: int = 3, gateways: tuple[str, ...] = ("gw",)) -> dict[str, Any]:
    """A route as the cache holds it, attached to `gateways`: its backends and the first gateway's
    conditions (type -> status, observedGeneration)."""
    parents = [] if conditions is None else [{"parentRef": {"name": "gw", "namespace": "ml"}, "conditions": [
        {"type": kind, "status": status, "observedGeneration": seen} for kind, (status, seen) in conditions.items()]}]
    return {"metadata": {"name": "fraud", "namespace": "ml", "generation": generation},
            "spec": {"parentRefs": [{"name": gw} for gw in gateways], "rules": [{"backendRefs": refs}]},
            "status": {"parents": parents}}


STABLE_REF = {"group": "", "kind": "Service", "name": "fraud-stable", "port": 80, "weight": 100}
ACCEPTED = {"Accepted": ("True", 3), "ResolvedRefs": ("True", 3)}
ON_ACTIVATOR = [
    ("accepted", live_route([{**ACTIVATOR_REF, "weight": 100}], ACCEPTED), True),
    ("no-route", None, False),
    ("stable-backend", live_route([STABLE_REF], ACCEPTED), False),
    ("same-name-other-namespace", live_route([{**ACTIVATOR_REF, "namespace": "ml", "weight": 100}], ACCEPTED), False),
    ("not-yet-seen", live_route([{**ACTIVATOR_REF, "weight": 100}], None), False),
    ("accepted-an-older-generation", live_route([{**ACTIVATOR_REF, "weight": 100}],
                                                {"Accepted": ("True", 2), "ResolvedRefs": ("True", 2)}), False),
    ("refs-of-an-older-generation", live_route([{**ACTIVATOR_REF, "weight": 100}],
                                               {"Accepted": ("True", 3), "ResolvedRefs": ("True", 2)}), False),
    ("not-accepted", live_route([{**ACTIVATOR_REF, "weight": 100}],
                                {"Accepted": ("False", 3), "ResolvedRefs": ("True", 3)}), False),
    ("refs-unresolved", live_route([{**ACTIVATOR_REF, "weight": 100}],  # no ReferenceGrant yet
                                   {"Accepted": ("True", 3), "ResolvedRefs": ("False", 3)}), False),
    ("no-resolved-refs", live_route([{**ACTIVATOR_REF, "weight": 100}], {"Accepted": ("True", 3)}), False),
    ("one-of-two-gateways", live_route([{**ACTIVATOR_REF, "weight": 100}], ACCEPTED, gateways=("gw", "edge")), False),
]


@pytest.mark.parametrize(("case", "route", "on"), ON_ACTIVATOR, ids=[c[0] for c in ON_ACTIVATOR])
def test_on_activator_only_once_the_gateway_took_that_generation(case: str, route: dict[str, Any] | None,
                                                                  on: bool) -> None:
    assert on_activator(route, ACTIVATOR) is on

