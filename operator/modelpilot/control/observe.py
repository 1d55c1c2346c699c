"""Observe: one ModelDeployment and everything it may own, read from the cache (pure, no I/O).

The reconciler never GETs in steady state: the watches keep the Store current and the operator's
own writes are put back into it, so this snapshot is as fresh as a GET would be.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from modelpilot.api.models import API_VERSION, KIND
from modelpilot.cache import Obj, Store
from modelpilot.control.serverless import ServerlessReading
from modelpilot.resources.labels import LABEL_MANAGED_BY, MANAGED_BY
from modelpilot.routing import ROUTERS

ChildRef = tuple[str, str, str]  # apiVersion, kind, name
KEDA_SCALEDOBJECTS_CRD = "scaledobjects.keda.sh"


def possible_children(name: str) -> list[ChildRef]:
    """Every child a ModelDeployment `name` may own, whatever its spec."""
    refs: list[ChildRef] = [
        ("apps/v1", "Deployment", name),
        ("apps/v1", "Deployment", f"{name}-canary"),
        ("apps/v1", "DaemonSet", name),
        ("apps/v1", "DaemonSet", f"{name}-canary"),
        ("v1", "Service", name),
        ("v1", "Service", f"{name}-stable"),
        ("v1", "Service", f"{name}-canary"),
        ("autoscaling/v2", "HorizontalPodAutoscaler", name),
        ("keda.sh/v1alpha1", "ScaledObject", name),
    ]
    for router in ROUTERS.values():
        refs += [ref for ref in router.child_refs(name) if ref not in refs]
    return refs


@dataclass(frozen=True)
class Observed:
    """The ModelDeployment, its live children by (apiVersion, kind, name), and its pods."""

    md: Obj
    children: Mapping[ChildRef, Obj] = field(default_factory=dict)
    pods: tuple[Obj, ...] = ()
    # Custom queries the metric provider refused as invalid (query -> why): reported as InvalidSpec
    # until the query changes, instead of counting as provider outages.
    rejected_queries: Mapping[str, str] = field(default_factory=dict)
    keda: bool = False  # KEDA's ScaledObject CRD is installed
    # Scale to zero: the last Prometheus reading of the stable track (the reconciler keeps it), and
    # whether this process has already granted the namespace's routes the activator.
    serverless_reading: ServerlessReading | None = None
    activator_granted: bool = False
    nodes: tuple[Obj, ...] = ()  # target Edge: every Node (stubs), the fleet is chosen from them

    @property
    def namespace(self) -> str:
        return str(self.md["metadata"]["namespace"])

    @property
    def name(self) -> str:
        return str(self.md["metadata"]["name"])

    def child(self, api_version: str, kind: str, name: str) -> Obj | None:
        return self.children.get((api_version, kind, name))


def observe(store: Store, namespace: str, name: str) -> Observed | None:
    """The snapshot for one key; None when the ModelDeployment is not (or no longer) there."""
    md = store.get(API_VERSION, KIND, namespace, name)
    if md is None:
        return None
    children: dict[ChildRef, Obj] = {}
    for ref in possible_children(name):
        live = store.get(ref[0], ref[1], namespace, ref[2])
        if live is not None:
            children[ref] = live
    pods = tuple(p for p in store.pods_of(namespace, name)
                 if ((p.get("metadata") or {}).get("labels") or {}).get(LABEL_MANAGED_BY) == MANAGED_BY)
    keda = store.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", "", KEDA_SCALEDOBJECTS_CRD) is not None
    nodes = tuple(store.all_nodes()) if is_edge(md) else ()
    return Observed(md=md, children=children, pods=pods, keda=keda, nodes=nodes)


def is_edge(md: Obj) -> bool:
    """Target Edge, read from the raw spec (before parsing: the fleet's nodes are observed for it)."""
    return (md.get("spec") or {}).get("target") == "Edge"


def controlled_by(obj: Mapping[str, Any], uid: str) -> bool:
    """Whether `uid` is the object's controller: the only objects the operator ever writes."""
    return any(ref.get("uid") == uid and ref.get("controller") is True
               for ref in (obj.get("metadata") or {}).get("ownerReferences") or [])


def controller_of(obj: Mapping[str, Any]) -> str:
    """Who controls the object, in words (for a NameConflict message)."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller") is True:
            return f"controlled by {ref.get('kind')} {ref.get('name')} (uid {ref.get('uid')})"
    return "not controlled by this ModelDeployment"


def describe_conflicts(namespace: str, conflicts: Mapping[ChildRef, str]) -> str:
    parts = [f"{kind} {namespace}/{name} exists and is {who}" for (_, kind, name), who in sorted(conflicts.items())]
    return "; ".join(parts) + ": nothing is written to it; rename the ModelDeployment or remove the object"
