"""The router interface: how a canary weight becomes children and pod counts (pure).

A router is chosen by `spec.rollout.canary.trafficRouting` (its `mode`). It answers three
questions for the plan: which extra children carry the split at a weight (an HTTPRoute, ...),
which children it may ever create (so those of another router are deleted after a switch), and how
many canary pods a weight needs. A new router is one module with a class like the ones in
replicas.py and gateway.py, plus one line in `modelpilot.routing.ROUTERS`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from modelpilot.api.models import ModelDeploymentSpec

Obj = dict[str, Any]
ChildRef = tuple[str, str, str]  # apiVersion, kind, name


@dataclass(frozen=True)
class Activator:
    """The activator's Service, and where it forwards the stable share once a pod is Ready."""

    namespace: str
    service: str
    port: int
    upstream: str  # the stable Service's ClusterIP:port
    target: str  # namespace/name/track, the labels of the activator's metrics


@dataclass(frozen=True)
class Traffic:
    """What reaches the canary at one tick."""

    weight: int = 0  # percent of the (unmatched) requests
    mirror_percent: int = 0  # shadow: percent of the requests copied to the canary, answers discarded
    segment: bool = False  # requests matching spec.rollout.canary.match all go to the canary
    activator: Activator | None = None  # scale to zero: the stable share goes through the activator


@dataclass(frozen=True)
class RouteContext:
    """The ModelDeployment a router works for."""

    name: str
    namespace: str
    owner: Mapping[str, Any]
    spec: ModelDeploymentSpec


class Router(Protocol):
    mode: str

    def children(self, ctx: RouteContext, traffic: Traffic) -> list[Obj]:
        """Children that carry `traffic` to the canary (may be empty)."""
        ...

    def child_refs(self, name: str) -> list[ChildRef]:
        """Every child this router may create for ModelDeployment `name`."""
        ...

    def canary_replicas(self, stable_replicas: int, weight: int, first_step: int) -> int:
        """Canary pods needed to serve `weight` percent of the traffic (or of its copy) next to
        `stable_replicas` stable pods."""
        ...
