"""Traffic routers: the replica ratio (no dependencies) and Gateway API HTTPRoute weights. Pure."""

from modelpilot.routing.gateway import build_httproute
from modelpilot.routing.replicas import canary_replicas

__all__ = ["build_httproute", "canary_replicas"]
