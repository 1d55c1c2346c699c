"""The only code that talks to the API server: reads, server-side apply, status, Events.

Synchronous (the official client); the handlers call it through `asyncio.to_thread`. Every write
uses field manager `modelpilot`. Throttling (429) and server errors (5xx) are retried with
backoff that honours Retry-After, so a busy API server slows the operator down instead of
failing reconciles.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from modelpilot import __version__
from modelpilot.api.batch import BATCH_KIND, BATCH_PLURAL
from modelpilot.api.models import GROUP, KIND, PLURAL, VERSION
from modelpilot.metrics import API_WRITES
from modelpilot.resources.common import FIELD_MANAGER

# Sets only the first replica count of an autoscaled Deployment; the HPA owns it from then on.
BOOTSTRAP_FIELD_MANAGER = "modelpilot-bootstrap"
USER_AGENT = f"modelpilot/{__version__}"
# Writes run from a thread pool of this size (the reconciler's I/O threads): one connection each.
CONNECTIONS = 32

log = logging.getLogger("modelpilot.k8s")

# apiVersion/kind -> plural, for the kinds the operator owns or reads.
PLURALS: dict[tuple[str, str], str] = {
    ("apps/v1", "Deployment"): "deployments",
    ("apps/v1", "DaemonSet"): "daemonsets",
    ("v1", "Service"): "services",
    ("v1", "Pod"): "pods",
    ("v1", "Event"): "events",
    ("v1", "Secret"): "secrets",  # read only: one name, spec.notifications' webhook URLs
    ("autoscaling/v2", "HorizontalPodAutoscaler"): "horizontalpodautoscalers",
    ("gateway.networking.k8s.io/v1", "HTTPRoute"): "httproutes",
    ("gateway.envoyproxy.io/v1alpha1", "BackendTrafficPolicy"): "backendtrafficpolicies",
    ("keda.sh/v1alpha1", "ScaledObject"): "scaledobjects",
    ("gateway.networking.k8s.io/v1beta1", "ReferenceGrant"): "referencegrants",
    ("batch/v1", "Job"): "jobs",
    ("batch/v1", "CronJob"): "cronjobs",
    (f"{GROUP}/{VERSION}", KIND): PLURAL,
    (f"{GROUP}/{VERSION}", BATCH_KIND): BATCH_PLURAL,
}

RETRYABLE = {429, 500, 502, 503, 504}
# A write the operator makes never expects a conflict (apply with force, merge patches without a
# resourceVersion), so a 409 is a passing race inside the API server: tried again at once.
CONFLICT = 409


@dataclass(frozen=True)
class Ref:
    api_version: str
    kind: str
    namespace: str
    name: str


def _path(api_version: str, kind: str, namespace: str, name: str | None = None, sub: str = "") -> str:
    prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    path = f"{prefix}/namespaces/{namespace}/{PLURALS[(api_version, kind)]}"
    if name:
        path += f"/{name}"
    if sub:
        path += f"/{sub}"
    return path


class Kube:
    """A thin, retrying wrapper over the API server's REST paths."""

    def __init__(self, api_client: client.ApiClient, max_attempts: int = 6) -> None:
        self.api = api_client
        self.api.user_agent = USER_AGENT
        self.max_attempts = max_attempts
        self.writes = 0  # counted for logs and tests

    @classmethod
    def from_environment(cls, max_attempts: int = 6) -> Kube:
        configuration = client.Configuration()
        try:
            config.load_incluster_config(client_configuration=configuration)
        except config.ConfigException:
            config.load_kube_config(client_configuration=configuration)
        configuration.connection_pool_maxsize = CONNECTIONS
        return cls(client.ApiClient(configuration), max_attempts=max_attempts)

    def _count(self, write: str) -> None:
        self.writes += 1
        API_WRITES.labels(write).inc()

    # -- raw ---------------------------------------------------------------------------------
    def request(self, method: str, path: str, body: Any = None, content_type: str = "application/json",
                query: list[tuple[str, str]] | None = None, timeout: float = 30) -> Any:
        headers = {"Accept": "application/json", "Content-Type": content_type}
        for attempt in range(1, self.max_attempts + 1):
            try:
                method_, url, header_params, body_, _ = self.api.param_serialize(
                    method, path, query_params=query or [], header_params=dict(headers), body=body,
                    auth_settings=["BearerToken"])
                response = self.api.call_api(method_, url, header_params=header_params, body=body_,
                                             _request_timeout=timeout)
                data = response.read()
                if not 200 <= response.status < 300:
                    text = data.decode("utf-8", "replace") if data else ""
                    raise ApiException.from_response(http_resp=response, body=text, data=None)
                return json.loads(data) if data else None
            except ApiException as err:
                if (err.status not in RETRYABLE and err.status != CONFLICT) or attempt == self.max_attempts:
                    raise
                delay = _conflict_delay(attempt) if err.status == CONFLICT else _retry_after(err, attempt)
                log.warning("api %s %s -> %s; retrying in %.1fs", method, path, err.status, delay)
                time.sleep(delay)
        raise AssertionError("unreachable")

    # -- reads -------------------------------------------------------------------------------
    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self.request("GET", _path(api_version, kind, namespace, name))
        except ApiException as err:
            if err.status == 404:
                return None
            raise

    def list(self, api_version: str, kind: str, namespace: str, label_selector: str = "") -> list[dict[str, Any]]:
        query = [("labelSelector", label_selector)] if label_selector else []
        body = self.request("GET", _path(api_version, kind, namespace), query=query)
        return list(body.get("items") or [])

    # -- writes ------------------------------------------------------------------------------
    def apply(self, obj: dict[str, Any], field_manager: str = FIELD_MANAGER) -> dict[str, Any]:
        """Server-side apply, forcing ownership of exactly the fields in `obj`."""
        meta = obj["metadata"]
        path = _path(obj["apiVersion"], obj["kind"], meta["namespace"], meta["name"])
        self._count("apply")
        return self.request("PATCH", path, body=obj, content_type="application/apply-patch+yaml",
                            query=[("fieldManager", field_manager), ("force", "true")])

    def delete(self, api_version: str, kind: str, namespace: str, name: str) -> bool:
        try:
            self._count("delete")
            self.request("DELETE", _path(api_version, kind, namespace, name),
                         body={"propagationPolicy": "Background"})
            return True
        except ApiException as err:
            if err.status == 404:
                return False
            raise

    def remove_annotation(self, api_version: str, kind: str, namespace: str, name: str, key: str,
                          value: str) -> dict[str, Any] | None:
        """Consume a one-shot annotation (e.g. modelpilot.io/action) only while it still holds
        `value`: a JSON patch whose test fails (422) when someone wrote a new value meanwhile, which
        then stays for the next tick. Returns the patched object, or None when nothing was removed."""
        pointer = "/metadata/annotations/" + key.replace("~", "~0").replace("/", "~1")
        ops = [{"op": "test", "path": pointer, "value": value}, {"op": "remove", "path": pointer}]
        self._count("annotation")
        try:
            return self.request("PATCH", _path(api_version, kind, namespace, name), body=ops,
                                content_type="application/json-patch+json", query=[("fieldManager", FIELD_MANAGER)])
        except ApiException as err:
            if err.status in (404, 409, 422):
                return None
            raise

    def patch_status(self, namespace: str, name: str, status: dict[str, Any], kind: str = KIND) -> dict[str, Any]:
        """Merge-patch the status subresource of one of our kinds; keys set to None are removed."""
        path = _path(f"{GROUP}/{VERSION}", kind, namespace, name, sub="status")
        self._count("status")
        return self.request("PATCH", path, body={"status": status},
                            content_type="application/merge-patch+json",
                            query=[("fieldManager", FIELD_MANAGER)])

    def post_event(self, owner: dict[str, Any], event_type: str, reason: str, message: str) -> None:
        """A core/v1 Event on the ModelDeployment (what `kubectl describe` and `get events` show)."""
        meta = owner["metadata"]
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        event = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": f"{meta['name']}.{uuid.uuid4().hex[:12]}", "namespace": meta["namespace"]},
            "involvedObject": {"apiVersion": owner["apiVersion"], "kind": owner["kind"],
                               "name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"]},
            "type": event_type, "reason": reason, "message": message[:1024],
            "source": {"component": FIELD_MANAGER}, "reportingComponent": FIELD_MANAGER,
            "reportingInstance": FIELD_MANAGER,
            "firstTimestamp": now, "lastTimestamp": now, "count": 1,
        }
        self._count("event")
        try:
            self.request("POST", f"/api/v1/namespaces/{meta['namespace']}/events", body=event)
        except ApiException as err:  # an Event is best effort: never fail a reconcile for it
            log.warning("could not post event %s on %s/%s: %s", reason, meta["namespace"], meta["name"],
                        err.status)


def _conflict_delay(attempt: int) -> float:
    return min(0.05 * 2 ** (attempt - 1), 0.4)  # 0.05, 0.1, 0.2, 0.4: all retries within a second


def _retry_after(err: ApiException, attempt: int) -> float:
    header = (err.headers or {}).get("Retry-After") if err.headers else None
    if header:
        try:
            return min(float(header), 30.0)
        except ValueError:
            pass
    return min(0.2 * 2 ** (attempt - 1), 10.0)
