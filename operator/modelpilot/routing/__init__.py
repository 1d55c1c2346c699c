"""Traffic routers behind one interface (routing/base.py), chosen by trafficRouting's mode. Pure."""

from modelpilot.api.models import ModelDeploymentSpec
from modelpilot.routing.base import ChildRef, RouteContext, Router, Traffic
from modelpilot.routing.gateway import GatewayAPIRouter, build_httproute
from modelpilot.routing.replicas import ReplicasRouter, canary_replicas

# mode -> router; TrafficRouting.mode names one of these.
ROUTERS: dict[str, Router] = {router.mode: router for router in (ReplicasRouter(), GatewayAPIRouter())}


def router_for(spec: ModelDeploymentSpec) -> Router:
    return ROUTERS[spec.rollout.canary.traffic_routing.mode]


__all__ = ["ROUTERS", "ChildRef", "RouteContext", "Router", "Traffic", "build_httproute", "canary_replicas",
           "router_for"]
