"""The bench's own thin REST client: the official client's ApiClient for auth and connection
pooling, raw JSON in and out (no generated models: they cost more CPU than the requests), plus the
cluster chores of one run (CRDs, namespaces, the operator's identity, capacity)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from hack.kubeconfig import token_kubeconfig

GROUP, VERSION, PLURAL = "modelpilot.io", "v1alpha1", "modeldeployments"
USER_AGENT = "modelpilot-bench"
RETRYABLE = {429, 500, 502, 503, 504}


def md_path(namespace: str, name: str | None = None) -> str:
    path = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}"
    return f"{path}/{name}" if name else path


def deployments_path(namespace: str) -> str:
    return f"/apis/apps/v1/namespaces/{namespace}/deployments"


def object_path(obj: dict[str, Any]) -> str:
    """The REST path of a namespaced built-in object (Deployment, Service)."""
    plural = {"Deployment": "deployments", "Service": "services",
              "HorizontalPodAutoscaler": "horizontalpodautoscalers"}[obj["kind"]]
    version = obj["apiVersion"]
    prefix = "/api/v1" if version == "v1" else f"/apis/{version}"
    meta = obj["metadata"]
    return f"{prefix}/namespaces/{meta['namespace']}/{plural}/{meta['name']}"


class Api:
    """Requests against one kubeconfig; safe to share between threads."""

    def __init__(self, kubeconfig: str | None = None, pool: int = 32) -> None:
        configuration = client.Configuration()
        config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
        configuration.connection_pool_maxsize = pool
        self.client = client.ApiClient(configuration)
        self.client.user_agent = USER_AGENT
        self.host = configuration.host

    def _call(self, method: str, path: str, body: Any, content_type: str,
              query: list[tuple[str, str]] | None, timeout: float | tuple[float, float]) -> Any:
        headers = {"Accept": "application/json", "Content-Type": content_type}
        method_, url, header_params, body_, _ = self.client.param_serialize(
            method, path, query_params=query or [], header_params=headers, body=body,
            auth_settings=["BearerToken"])
        return self.client.call_api(method_, url, header_params=header_params, body=body_,
                                    _request_timeout=timeout)

    def request(self, method: str, path: str, body: Any = None, content_type: str = "application/json",
                query: list[tuple[str, str]] | None = None, timeout: float = 60, attempts: int = 5) -> Any:
        """One request; 429 and 5xx are retried with backoff. Raises ApiException otherwise."""
        for attempt in range(1, attempts + 1):
            response = self._call(method, path, body, content_type, query, timeout)
            data = response.read()
            if 200 <= response.status < 300:
                return json.loads(data) if data else None
            error = ApiException.from_response(http_resp=response, body=data.decode("utf-8", "replace"),
                                               data=None)
            if response.status not in RETRYABLE or attempt == attempts:
                raise error
            time.sleep(min(0.2 * 2 ** attempt, 5))
        raise AssertionError("unreachable")

    def get(self, path: str) -> Any | None:
        try:
            return self.request("GET", path)
        except ApiException as err:
            if err.status == 404:
                return None
            raise

    def apply(self, obj: dict[str, Any], path: str, manager: str) -> Any:
        """Server-side apply of `obj` at `path`, forcing ownership of its fields."""
        return self.request("PATCH", path, body=obj, content_type="application/apply-patch+yaml",
                            query=[("fieldManager", manager), ("force", "true")])

    def stream(self, path: str, query: list[tuple[str, str]], timeout: float) -> Iterator[dict[str, Any]]:
        """Start one watch request (the request is sent before this returns) and return its events,
        as decoded JSON lines."""
        response = self._call("GET", path, None, "application/json", [*query, ("watch", "true")],
                              (10, timeout))
        if response.status != 200:
            data = response.read()
            raise ApiException.from_response(http_resp=response, body=data.decode("utf-8", "replace"), data=None)
        return _lines(response.response)


def _lines(raw: Any) -> Iterator[dict[str, Any]]:
    buffer = b""
    try:
        for chunk in raw.stream(None, decode_content=False):  # chunk by chunk, as they arrive
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                if line.strip():
                    yield json.loads(line)
    finally:
        raw.release_conn()


# --------------------------------------------------------------------------------------------
# Chores
# --------------------------------------------------------------------------------------------

def apply_crds(api: Api, crd_dir: Path, timeout: float = 60) -> None:
    """`kubectl apply --server-side -f crds/`, then wait until each CRD is Established."""
    names = []
    for path in sorted(crd_dir.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                name = doc["metadata"]["name"]
                api.apply(doc, f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}", "modelpilot-bench")
                names.append(name)
    deadline = time.monotonic() + timeout
    for name in names:
        while True:
            crd = api.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}") or {}
            conditions = (crd.get("status") or {}).get("conditions") or []
            if any(c["type"] == "Established" and c["status"] == "True" for c in conditions):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"CRD {name} not Established after {timeout}s")
            time.sleep(0.5)


def delete_namespace(api: Api, name: str, timeout: float) -> float | None:
    """Delete a namespace and wait until it is gone; returns the seconds it took (None: timed out)."""
    started = time.monotonic()
    try:
        api.request("DELETE", f"/api/v1/namespaces/{name}", body={"propagationPolicy": "Background"})
    except ApiException as err:
        if err.status != 404:
            raise
    while time.monotonic() - started < timeout:
        if api.get(f"/api/v1/namespaces/{name}") is None:
            return time.monotonic() - started
        time.sleep(1)
    return None


def fresh_namespace(api: Api, name: str, timeout: float = 900) -> None:
    """Create `name`, first deleting what a previous (interrupted) run left behind."""
    if api.get(f"/api/v1/namespaces/{name}") is not None:
        print(f"namespace {name} exists (an interrupted run?): deleting it first", flush=True)
        if delete_namespace(api, name, timeout) is None:
            raise RuntimeError(f"namespace {name} still terminating after {timeout}s")
    api.request("POST", "/api/v1/namespaces", body={
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": name, "labels": {"modelpilot.io/bench": "operator"}}})


def operator_kubeconfig(api: Api, admin_kubeconfig: Path, namespace: str, service_account: str,
                        path: Path, seconds: int = 6 * 3600) -> Path:
    """A kubeconfig that authenticates as `namespace/service_account` (bound to cluster-admin; the
    test bed audits this identity's reads), with a token from the TokenRequest API."""
    if api.get(f"/api/v1/namespaces/{namespace}") is None:
        api.request("POST", "/api/v1/namespaces", body={"metadata": {"name": namespace}})
    api.apply({"apiVersion": "v1", "kind": "ServiceAccount",
               "metadata": {"name": service_account, "namespace": namespace}},
              f"/api/v1/namespaces/{namespace}/serviceaccounts/{service_account}", "modelpilot-bench")
    binding = f"{namespace}-{service_account}"
    api.apply({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
               "metadata": {"name": binding},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
               "subjects": [{"kind": "ServiceAccount", "name": service_account, "namespace": namespace}]},
              f"/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/{binding}", "modelpilot-bench")
    token = api.request("POST", f"/api/v1/namespaces/{namespace}/serviceaccounts/{service_account}/token",
                        body={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                              "spec": {"audiences": [], "expirationSeconds": seconds}})["status"]["token"]
    return token_kubeconfig(admin_kubeconfig, token, f"{namespace}-{service_account}", path)


def free_pod_slots(api: Api) -> int:
    """Pods that still fit on untainted Ready nodes (where the bench's pods can go)."""
    nodes = api.request("GET", "/api/v1/nodes")["items"]
    usable = {n["metadata"]["name"]: int((n.get("status") or {}).get("allocatable", {}).get("pods", 0))
              for n in nodes if not (n.get("spec") or {}).get("taints")}
    pods = api.request("GET", "/api/v1/pods", query=[("fieldSelector", "status.phase!=Succeeded,status.phase!=Failed")])
    used = sum(1 for p in pods["items"] if (p.get("spec") or {}).get("nodeName") in usable)
    return sum(usable.values()) - used
