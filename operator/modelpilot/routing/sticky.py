"""Sticky users for experiments: an Envoy Gateway BackendTrafficPolicy `<name>` on the HTTPRoute
with a consistent hash of one header or cookie. With a hash policy on a route that splits by
weight, Envoy Gateway (>= 1.9) has Envoy choose the weighted backend from the hash instead of at
random, so one user (one header or cookie value) always reaches one version while the weights
stay the same. Standard Gateway API has no such field; other implementations ignore this object's
absence and split per request."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modelpilot.api.models import Sticky
from modelpilot.resources.common import Obj, object_meta
from modelpilot.resources.labels import common_labels

STICKY_API_VERSION = "gateway.envoyproxy.io/v1alpha1"
STICKY_KIND = "BackendTrafficPolicy"


def build_sticky_policy(name: str, namespace: str, owner: Mapping[str, Any], sticky: Sticky) -> Obj:
    if sticky.header is not None:
        hashing: dict[str, Any] = {"type": "Headers", "headers": [{"name": sticky.header}]}
    else:
        hashing = {"type": "Cookie", "cookie": {"name": sticky.cookie}}
    return {
        "apiVersion": STICKY_API_VERSION,
        "kind": STICKY_KIND,
        "metadata": object_meta(name, namespace, common_labels(name), owner),
        "spec": {
            "targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": name}],
            "loadBalancer": {"type": "ConsistentHash", "consistentHash": hashing},
        },
    }
