"""The Services: `<name>` (what clients call, with a ClusterIP), `<name>-stable` and
`<name>-canary` (per track: Gateway API backends, debugging). The per-track Services are headless:
gateways and Prometheus reach pods through their EndpointSlices, never through a virtual IP, so
giving them one would only spend the cluster's Service range (a /16 per cluster, 3 IPs per
ModelDeployment otherwise)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modelpilot.api.models import ModelDeploymentSpec, Track
from modelpilot.api.serving import DEFAULT_GRPC_PORT
from modelpilot.resources.common import BuildSettings, Obj, object_meta
from modelpilot.resources.deployment import GRPC_PORT_NAME, PORT_NAME
from modelpilot.resources.labels import LABEL_TRACK, common_labels, selector_labels

SERVICE_PORT = 80
# With spec.runtime.protocol grpc or both. h2c (HTTP/2 without TLS) tells gateways and meshes that
# support appProtocol to speak HTTP/2 to the pods, which gRPC needs.
GRPC_SERVICE_PORT = DEFAULT_GRPC_PORT
GRPC_APP_PROTOCOL = "kubernetes.io/h2c"


def service_name(name: str, track: Track | None = None) -> str:
    return name if track is None else f"{name}-{track}"


def service_url(name: str, namespace: str, cluster_domain: str = "cluster.local") -> str:
    """In-cluster URL of the main Service (what `status.url` reports)."""
    return f"http://{name}.{namespace}.svc.{cluster_domain}"


def service_ports(grpc: bool) -> list[Obj]:
    """http (80), and grpc (8081) when the pods serve gRPC; both target the pods' named ports."""
    ports: list[Obj] = [{"name": PORT_NAME, "port": SERVICE_PORT, "targetPort": PORT_NAME, "protocol": "TCP"}]
    if grpc:
        ports.append({"name": GRPC_PORT_NAME, "port": GRPC_SERVICE_PORT, "targetPort": GRPC_PORT_NAME,
                      "protocol": "TCP", "appProtocol": GRPC_APP_PROTOCOL})  # fmt: skip
    return ports


def _service(
    name: str, namespace: str, owner: Mapping[str, Any], labels: dict[str, str], selector: dict[str, str],
    headless: bool = False, grpc: bool = False,
) -> Obj:
    spec: dict[str, Any] = {"selector": selector, "ports": service_ports(grpc)}
    if headless:
        spec["clusterIP"] = "None"
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": object_meta(name, namespace, labels, owner),
        "spec": spec,
    }


def build_services(
    spec: ModelDeploymentSpec,
    *,
    name: str,
    namespace: str,
    owner: Mapping[str, Any],
    settings: BuildSettings | None = None,
) -> list[Obj]:
    """`<name>`, `<name>-stable`, `<name>-canary`, in that order; with a grpc port when `spec`'s
    runtime serves gRPC (pass the stable track's spec: its pods are what `<name>` reaches).

    With replica routing `<name>` selects both tracks (traffic splits by pod count); with any
    other router it selects stable only, so in-cluster callers that bypass the router never reach
    an unproven canary.
    """
    del settings  # same signature as the other builders; Services need no operator setting
    by_pods = spec.rollout.canary.traffic_routing.mode == "replicas"
    main_selector = selector_labels(name, None if by_pods else "stable")
    grpc = spec.runtime.serves_grpc
    services = [_service(service_name(name), namespace, owner, common_labels(name), main_selector, grpc=grpc)]
    for track in ("stable", "canary"):
        labels = {**common_labels(name), LABEL_TRACK: track}
        services.append(_service(service_name(name, track), namespace, owner, labels, selector_labels(name, track),
                                 headless=True, grpc=grpc))
    return services
