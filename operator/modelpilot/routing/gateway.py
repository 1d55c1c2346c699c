"""The `gatewayAPI` router: an owned HTTPRoute `<name>` with exact weights on `<name>-stable` and
`<name>-canary` (the Service `<name>` then selects stable only, see resources/service.py).

The route also carries the phases the replicas router cannot: a RequestMirror filter copying a
percentage of requests to the canary (shadow; standard channel since Gateway API v1.3), a rule
sending requests that match headers or a cookie to the canary (segment), and, for sticky
experiments, an Envoy Gateway BackendTrafficPolicy hashing a header or cookie, which makes Envoy
pick the weighted backend from the hash (routing/sticky.py)."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from modelpilot.api.models import GatewayAPI, RouteMatch
from modelpilot.resources.common import Obj, object_meta
from modelpilot.resources.labels import common_labels
from modelpilot.resources.service import SERVICE_PORT, service_name
from modelpilot.routing.base import Activator, ChildRef, RouteContext, Traffic
from modelpilot.routing.sticky import STICKY_API_VERSION, STICKY_KIND, build_sticky_policy

HTTPROUTE_API_VERSION = "gateway.networking.k8s.io/v1"
_ALL_PATHS = {"type": "PathPrefix", "value": "/"}


TRACK_HEADER = "x-modelpilot-track"
# Set on requests routed to the activator (and removed by it): where to forward, and for whom.
UPSTREAM_HEADER = "x-modelpilot-upstream"
TARGET_HEADER = "x-modelpilot-target"


def _activator_backend(activator: Activator, weight: int) -> dict[str, Any]:
    return {"group": "", "kind": "Service", "name": activator.service, "namespace": activator.namespace,
            "port": activator.port, "weight": weight}


def activator_filter(activator: Activator) -> dict[str, Any]:
    return {"type": "RequestHeaderModifier", "requestHeaderModifier": {"set": [
        {"name": UPSTREAM_HEADER, "value": activator.upstream}, {"name": TARGET_HEADER, "value": activator.target}]}}


def on_activator(route: Mapping[str, Any] | None, activator: Activator) -> bool:
    """Whether the live route sends its stable share to the activator and every gateway it is
    attached to has accepted (and resolved) exactly that generation."""
    if not route:
        return False
    spec, meta = route.get("spec") or {}, route.get("metadata") or {}
    refs = [ref for rule in spec.get("rules") or [] for ref in rule.get("backendRefs") or []]
    if not any(ref.get("name") == activator.service and ref.get("namespace") == activator.namespace for ref in refs):
        return False

    def key(ref: Mapping[str, Any]) -> tuple[Any, Any, Any]:
        return ref.get("name"), ref.get("namespace") or meta.get("namespace"), ref.get("sectionName")

    def programmed(parent: Mapping[str, Any]) -> bool:
        conditions = {c.get("type"): c for c in parent.get("conditions") or []}
        return all((conditions.get(kind) or {}).get("status") == "True" and
                   (conditions.get(kind) or {}).get("observedGeneration") == meta.get("generation")
                   for kind in ("Accepted", "ResolvedRefs"))

    wanted = {key(ref) for ref in spec.get("parentRefs") or []}
    done = {key(p.get("parentRef") or {}) for p in (route.get("status") or {}).get("parents") or [] if programmed(p)}
    return bool(wanted) and wanted <= done


def _backend(name: str, track: str, weight: int | None = None, labelled: bool = False) -> dict[str, Any]:
    ref: dict[str, Any] = {"group": "", "kind": "Service", "name": service_name(name, track), "port": SERVICE_PORT}
    if weight is not None:
        ref["weight"] = weight
    if labelled:
        # A filter per backend makes Envoy Gateway keep one cluster per backend (weighted clusters),
        # the only shape in which its consistent hash picks the backend by weight: with two plain
        # backendRefs it merges them into one cluster whose weights the hash ignores, splitting
        # users by pod count instead.
        ref["filters"] = [{"type": "RequestHeaderModifier",
                           "requestHeaderModifier": {"set": [{"name": TRACK_HEADER, "value": track}]}}]
    return ref


def cookie_pattern(name: str, value: str) -> str:
    """An RE2 pattern matching a whole Cookie header that carries `name=value` (Gateway API has no
    cookie match; header regexes must match the entire value)."""
    return rf"(?:.*;\s*)?{re.escape(name)}={re.escape(value)}(?:;.*)?"


def route_matches(matches: Sequence[RouteMatch]) -> list[dict[str, Any]]:
    """spec.rollout.canary.match as Gateway API HTTPRouteMatches."""
    out = []
    for match in matches:
        headers = [{"type": h.type, "name": h.name, "value": h.value} for h in match.headers]
        if match.cookie is not None:
            headers.append({"type": "RegularExpression", "name": "Cookie",
                            "value": cookie_pattern(match.cookie.name, match.cookie.value)})
        out.append({"path": dict(_ALL_PATHS), "headers": headers})
    return out


def build_httproute(name: str, namespace: str, owner: Mapping[str, Any], gateway: GatewayAPI, weight: int, *,
                    mirror_percent: int = 0, matches: Sequence[RouteMatch] = (), sticky: bool = False,
                    activator: Activator | None = None) -> Obj:
    """The route at `weight` percent to the canary; with `mirror_percent`, that share of requests
    copied to the canary; with `matches`, a first rule sending matching requests to the canary;
    `sticky`: the backends shaped for a consistent-hash split (each sets x-modelpilot-track);
    `activator`: the stable share goes to the activator, told where to forward it."""
    parent_refs = [ref.model_dump(by_alias=True, exclude_none=True) for ref in gateway.parent_refs]
    stable = _backend(name, "stable", 100 - weight, sticky) if activator is None \
        else _activator_backend(activator, 100 - weight)
    split: dict[str, Any] = {"backendRefs": [stable, _backend(name, "canary", weight, sticky)]}
    filters = [activator_filter(activator)] if activator is not None else []
    if mirror_percent > 0:
        filters.append({"type": "RequestMirror",
                        "requestMirror": {"backendRef": _backend(name, "canary"), "percent": mirror_percent}})
    if filters:
        split["filters"] = filters
    rules = [split]
    if matches:
        # More specific (header) matches win over the catch-all rule, whatever the order.
        rules.insert(0, {"matches": route_matches(matches),
                         "backendRefs": [_backend(name, "stable", 0), _backend(name, "canary", 100)]})
    spec: dict[str, Any] = {"parentRefs": parent_refs, "rules": rules}
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

    def children(self, ctx: RouteContext, traffic: Traffic) -> list[Obj]:
        rollout = ctx.spec.rollout
        gateway = rollout.canary.traffic_routing.gateway_api
        assert gateway is not None, "the gatewayAPI router serves specs with trafficRouting.gatewayAPI"
        matches = rollout.canary.match if traffic.segment and rollout.canary.match else ()
        experiment = rollout.experiment if rollout.strategy == "Experiment" else None
        sticky = experiment.sticky if experiment is not None else None
        route = build_httproute(ctx.name, ctx.namespace, ctx.owner, gateway, traffic.weight,
                                mirror_percent=traffic.mirror_percent, matches=matches, sticky=sticky is not None,
                                activator=traffic.activator)
        if sticky is None:
            return [route]
        return [route, build_sticky_policy(ctx.name, ctx.namespace, ctx.owner, sticky)]

    def child_refs(self, name: str) -> list[ChildRef]:
        return [(HTTPROUTE_API_VERSION, "HTTPRoute", name), (STICKY_API_VERSION, STICKY_KIND, name)]

    def canary_replicas(self, stable_replicas: int, weight: int, first_step: int) -> int:
        # Exact weights come from the HTTPRoute; the canary only needs the capacity for them.
        if weight <= 0 and first_step <= 0:
            return 0
        return max(1, math.ceil(max(1, stable_replicas) * max(weight, first_step) / 100))
