"""The `gatewayAPI` router: an owned HTTPRoute `<name>` with exact weights on `<name>-stable` and
`<name>-canary`. The Service `<name>` then selects stable only (see resources/service.py)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from modelpilot.api.models import GatewayAPI
from modelpilot.resources.common import Obj, object_meta
from modelpilot.resources.labels import common_labels
from modelpilot.resources.service import SERVICE_PORT, service_name
from modelpilot.routing.base import ChildRef, RouteContext

HTTPROUTE_API_VERSION = "gateway.networking.k8s.io/v1"


def build_httproute(name: str, namespace: str, owner: Mapping[str, Any], gateway: GatewayAPI, weight: int) -> Obj:
    parent_refs = [ref.model_dump(by_alias=True, exclude_none=True) for ref in gateway.parent_refs]
    spec: dict[str, Any] = {
        "parentRefs": parent_refs,
        "rules": [{
            "backendRefs": [
                {"group": "", "kind": "Service", "name": service_name(name, "stable"), "port": SERVICE_PORT,
                 "weight": 100 - weight},
                {"group": "", "kind": "Service", "name": service_name(name, "canary"), "port": SERVICE_PORT,
                 "weight": weight},
            ],
        }],
    }
    if gateway.hostnames:
        spec["hostnames"] = list(gateway.hostnames)
    return {
        "apiVersion": HTTPROUTE_API_VERSION,
        "kind": "HTTPRoute",
        "metadata": object_meta(name, namespace, common_labels(name), owner),
        "spec": spec,
    }


class GatewayAPIRouter:
    mode = "gatewayAPI"

    def children(self, ctx: RouteContext, weight: int) -> list[Obj]:
        gateway = ctx.spec.rollout.canary.traffic_routing.gateway_api
        assert gateway is not None, "the gatewayAPI router serves specs with trafficRouting.gatewayAPI"
        return [build_httproute(ctx.name, ctx.namespace, ctx.owner, gateway, weight)]

    def child_refs(self, name: str) -> list[ChildRef]:
        return [(HTTPROUTE_API_VERSION, "HTTPRoute", name)]

    def canary_replicas(self, stable_replicas: int, weight: int, first_step: int) -> int:
        # Exact weights come from the HTTPRoute; the canary only needs the capacity for them.
        if weight <= 0 and first_step <= 0:
            return 0
        return max(1, math.ceil(max(1, stable_replicas) * max(weight, first_step) / 100))
