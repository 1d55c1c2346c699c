"""The ReferenceGrant that lets HTTPRoutes of one namespace send requests to the activator's Service
in its own namespace (Gateway API refuses cross-namespace backends without one).

It lives in the activator's namespace, so it cannot be owned by a ModelDeployment: it carries the
operator's managed-by label, names the one Service it grants, and is left in place (it grants
nothing but the activator) when the namespace's last scale-to-zero model goes.
"""

from __future__ import annotations

from modelpilot.resources.common import Obj, ScalingSettings
from modelpilot.resources.labels import LABEL_MANAGED_BY, MANAGED_BY, label_value

GRANT_API_VERSION = "gateway.networking.k8s.io/v1beta1"
GRANT_KIND = "ReferenceGrant"


def grant_name(namespace: str) -> str:
    return label_value(f"modelpilot-activator-from-{namespace}")


def build_activator_grant(namespace: str, scaling: ScalingSettings) -> Obj:
    """HTTPRoutes of `namespace` may reference the activator's Service."""
    return {
        "apiVersion": GRANT_API_VERSION,
        "kind": GRANT_KIND,
        "metadata": {"name": grant_name(namespace), "namespace": scaling.activator_namespace,
                     "labels": {LABEL_MANAGED_BY: MANAGED_BY}},
        "spec": {
            "from": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "namespace": namespace}],
            "to": [{"group": "", "kind": "Service", "name": scaling.activator_service}],
        },
    }
