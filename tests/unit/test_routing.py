"""Routers: the replica rule and the HTTPRoute builder."""

from __future__ import annotations

import pytest

from modelpilot.api.models import GatewayAPI
from modelpilot.routing import build_httproute, canary_replicas
from modelpilot.routing.replicas import effective_weight

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
