"""The real helm binary against the e2e cluster, for the chart tests (test_helm.py, test_rbac.py)."""

from __future__ import annotations

import json
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from hack.kubeconfig import token_kubeconfig
from tests.e2e.support import ClusterHandle

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "modelpilot"


def unique(prefix: str) -> str:
    """A release or namespace name no concurrent test (or test session) uses."""
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


@dataclass
class Helm:
    """helm with its own config, cache and data directories (nothing shared with the user's)."""

    cluster: ClusterHandle
    home: Path

    def run(self, *args: str, check: bool = True, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        assert self.cluster.helm_binary, "no helm binary"
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(self.home),
            "HELM_CONFIG_HOME": str(self.home / "config"),
            "HELM_CACHE_HOME": str(self.home / "cache"),
            "HELM_DATA_HOME": str(self.home / "data"),
            "KUBECONFIG": str(self.cluster.kubeconfig),
        }
        result = subprocess.run([self.cluster.helm_binary, *args], env=env, text=True, capture_output=True,
                                timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
        return result

    def template(self, release: str, namespace: str, *args: str) -> list[dict[str, Any]]:
        out = self.run("template", release, str(CHART), "--namespace", namespace, *args).stdout
        return [doc for doc in yaml.safe_load_all(out) if doc]

    def manifest(self, release: str, namespace: str) -> list[dict[str, Any]]:
        out = self.run("get", "manifest", release, "--namespace", namespace).stdout
        return [doc for doc in yaml.safe_load_all(out) if doc]


def set_args(values: dict[str, Any]) -> list[str]:
    """`--set-json key=value` for each entry: exact types, unlike `--set`."""
    args: list[str] = []
    for key, value in values.items():
        args += ["--set-json", f"{key}={json.dumps(value)}"]
    return args


COMPONENT = "app.kubernetes.io/component"


def component(doc: dict[str, Any]) -> str | None:
    return (doc["metadata"].get("labels") or {}).get(COMPONENT)


def find(docs: list[dict[str, Any]], kind: str, name: str | None = None,
         of: str | None = "operator") -> list[dict[str, Any]]:
    """Objects of `kind` (and `name`) of the chart's component `of` (the operator by default, the
    activator with of="activator", any with None)."""
    return [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
            and (of is None or component(d) in (of, None))]


def one(docs: list[dict[str, Any]], kind: str, of: str | None = "operator") -> dict[str, Any]:
    found = find(docs, kind, of=of)
    assert len(found) == 1, f"expected one {kind}, got {[d['metadata']['name'] for d in found]}"
    return found[0]


def container_env(deployment: dict[str, Any]) -> dict[str, str]:
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", "") for e in container.get("env") or []}


def service_account_kubeconfig(core: client.CoreV1Api, admin_kubeconfig: Path, namespace: str,
                               service_account: str, path: Path, seconds: int = 3600) -> Path:
    """A kubeconfig that authenticates as `namespace/service_account` with a token from the
    TokenRequest API; server and CA come from the admin kubeconfig."""
    request = client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(
        audiences=[], expiration_seconds=seconds))
    token = core.create_namespaced_service_account_token(service_account, namespace, request).status.token
    return token_kubeconfig(admin_kubeconfig, token, f"{namespace}-{service_account}", path)
