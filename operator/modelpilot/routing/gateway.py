"""The `gatewayAPI` router: an owned HTTPRoute `<name>` with exact weights on `<name>-stable` and
`<name>-canary`. The Service `<name>` then selects stable only (see resources/service.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modelpilot.api.models import GatewayAPI
from modelpilot.resources.common import Obj, object_meta
from modelpilot.resources.labels import common_labels
from modelpilot.resources.service import SERVICE_PORT, service_name


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
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": object_meta(name, namespace, common_labels(name), owner),
        "spec": spec,
    }
