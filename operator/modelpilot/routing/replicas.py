"""The `replicas` router: one Service selects both tracks, so traffic splits by Ready pod count.

For a canary weight w the canary gets ceil(stable x w / (100 - w)) pods; stable is never scaled
down during analysis, so stable capacity is untouched (the weight is approximate when pod counts
are small: with 2 stable pods and w=10, one canary pod takes a third of the traffic).
"""

from __future__ import annotations

import math

from modelpilot.routing.base import ChildRef, Obj, RouteContext, Traffic


def canary_replicas(stable_replicas: int, weight: int) -> int:
    if weight <= 0:
        return 0
    if weight >= 100:
        return max(1, stable_replicas)
    return max(1, math.ceil(max(1, stable_replicas) * weight / (100 - weight)))


def effective_weight(stable_ready: int, canary_ready: int) -> int:
    """The share of traffic the canary really gets with this router, in percent."""
    total = stable_ready + canary_ready
    return round(100 * canary_ready / total) if total else 0


class ReplicasRouter:
    mode = "replicas"

    def children(self, ctx: RouteContext, traffic: Traffic) -> list[Obj]:
        return []  # the Service <name> already selects both tracks

    def child_refs(self, name: str) -> list[ChildRef]:
        return []

    def canary_replicas(self, stable_replicas: int, weight: int, first_step: int) -> int:
        return canary_replicas(stable_replicas, weight)
