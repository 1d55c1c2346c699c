"""Target Edge: the serving DaemonSets `<name>` (stable) and `<name>-canary`, and the Service
`<name>` that reaches the pod on the caller's own node.

The canary runs on an explicit set of nodes and the stable track on the rest of the fleet. The
set is written into each DaemonSet's node affinity (`matchFields` on `metadata.name`, In for the
canary, NotIn for stable), so no node is ever labelled or otherwise written to. Changing the set
changes the pod template, so both DaemonSets use the OnDelete strategy: the DaemonSet controller
then only adds pods on nodes that join a track and removes them from nodes that leave it, and
never restarts the pods of every other node; the operator itself replaces pods of an older
revision, as many at a time as maxUnavailable allows (control/edge.py).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from modelpilot.api.models import ModelDeploymentSpec, Track
from modelpilot.resources.common import BuildSettings, Obj, object_meta, quantity
from modelpilot.resources.deployment import build_pod_template, deployment_name
from modelpilot.resources.labels import (
    ANNOTATION_REVISION,
    LABEL_TRACK,
    LABEL_VERSION,
    common_labels,
    label_value,
    selector_labels,
)
from modelpilot.resources.revision import serving_revision
from modelpilot.resources.service import service_ports

# Small devices: what an edge pod asks for when the spec asks for nothing.
EDGE_DEFAULT_REQUESTS = {"cpu": "50m", "memory": "128Mi"}
# A disconnected node keeps its pod (the DaemonSet controller adds these too; stated so it shows).
LIFECYCLE_TAINTS = ("node.kubernetes.io/unreachable", "node.kubernetes.io/not-ready")
NODE_NAME_FIELD = "metadata.name"
# On both DaemonSets: the canary's node set, as a count and a hash. A set that empties removes the
# node affinity, a change the drift check cannot see in a field that is gone; this one it sees, and
# the apply (server-side, which drops the fields it no longer sets) follows.
ANNOTATION_CANARY_NODES = "modelpilot.io/canary-nodes"


def canary_nodes_annotation(nodes: Sequence[str]) -> str:
    if not nodes:
        return "0"
    digest = hashlib.sha256("\n".join(sorted(nodes)).encode()).hexdigest()[:12]
    return f"{len(nodes)}/{digest}"


def _node_affinity(nodes: Sequence[str], operator: str) -> Obj:
    """A node-name field selector takes one value per requirement (API validation): the canary's
    nodes are one term each (terms are ORed), the stable track's exclusions one requirement each
    in a single term (requirements are ANDed)."""
    def field(node: str) -> Obj:
        return {"key": NODE_NAME_FIELD, "operator": operator, "values": [node]}
    if operator == "In":
        terms = [{"matchFields": [field(n)]} for n in sorted(nodes)]
    else:
        terms = [{"matchFields": [field(n) for n in sorted(nodes)]}]
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}}


def _edge_tolerations(spec: ModelDeploymentSpec, existing: Sequence[Obj]) -> list[Obj]:
    tolerations = list(existing)
    for toleration in spec.edge_spec.tolerations:
        item = toleration.model_dump(by_alias=True, exclude_none=True)
        if item not in tolerations:
            tolerations.append(item)
    tolerations += [{"key": key, "operator": "Exists", "effect": "NoExecute"} for key in LIFECYCLE_TAINTS]
    return tolerations


def build_edge_pod_template(spec: ModelDeploymentSpec, *, name: str, namespace: str, track: Track,
                            settings: BuildSettings, canary_nodes: Sequence[str]) -> Obj:
    """The serving pod template, placed on the fleet: the edge node selector (with the
    accelerator's, if any), the edge tolerations, small default requests, and the track's nodes."""
    template = build_pod_template(spec, name=name, namespace=namespace, track=track, settings=settings)
    pod = template["spec"]
    pod["nodeSelector"] = dict(sorted({**spec.edge_spec.node_selector, **pod.get("nodeSelector", {})}.items()))
    pod["tolerations"] = _edge_tolerations(spec, pod.get("tolerations", []))
    if track == "canary":
        pod["affinity"] = _node_affinity(canary_nodes, "In")
    elif canary_nodes:
        pod["affinity"] = _node_affinity(canary_nodes, "NotIn")
    if not spec.resources.requests:
        defaults = {k: quantity(v) for k, v in EDGE_DEFAULT_REQUESTS.items()}
        for container in (*pod.get("initContainers", []), *pod["containers"]):
            resources = container.setdefault("resources", {})
            resources["requests"] = {**defaults, **resources.get("requests", {})}
    return template


def build_daemonset(spec: ModelDeploymentSpec, *, name: str, namespace: str, owner: Mapping[str, Any],
                    settings: BuildSettings, track: Track, canary_nodes: Sequence[str]) -> Obj:
    """DaemonSet `<name>` (stable: every fleet node but `canary_nodes`) or `<name>-canary` (only
    `canary_nodes`, which must not be empty)."""
    if track == "canary" and not canary_nodes:
        raise ValueError("the canary DaemonSet needs at least one node")
    labels = {**common_labels(name), LABEL_TRACK: track, LABEL_VERSION: label_value(spec.model.version)}
    body: Obj = {
        "revisionHistoryLimit": settings.revision_history_limit,
        "selector": {"matchLabels": selector_labels(name, track)},
        "updateStrategy": {"type": "OnDelete"},
        "template": build_edge_pod_template(spec, name=name, namespace=namespace, track=track, settings=settings,
                                            canary_nodes=canary_nodes),
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": object_meta(deployment_name(name, track), namespace, labels, owner,
                                annotations={ANNOTATION_REVISION: serving_revision(spec),
                                             ANNOTATION_CANARY_NODES: canary_nodes_annotation(canary_nodes)}),
        "spec": body,
    }


def build_edge_service(name: str, namespace: str, owner: Mapping[str, Any], grpc: bool = False) -> Obj:
    """Service `<name>` over both tracks with internalTrafficPolicy Local: a client on an edge
    node reaches that node's own pod (stable or canary, whichever runs there), never another
    device's over the WAN. With a grpc port when `grpc` (the stable track's pods serve gRPC)."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": object_meta(name, namespace, common_labels(name), owner),
        "spec": {
            "selector": selector_labels(name),
            "internalTrafficPolicy": "Local",
            "ports": service_ports(grpc),
        },
    }
