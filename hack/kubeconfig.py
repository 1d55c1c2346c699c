"""A kubeconfig that authenticates with a bearer token against the test bed's API server (server
and CA taken from the admin kubeconfig), for the identities the tests and benchmarks run as."""

from __future__ import annotations

import base64
from pathlib import Path

import yaml


def token_kubeconfig(admin_kubeconfig: Path, token: str, user: str, path: Path) -> Path:
    admin = yaml.safe_load(admin_kubeconfig.read_text())
    context = next(c for c in admin["contexts"] if c["name"] == admin["current-context"])["context"]
    cluster = dict(next(c for c in admin["clusters"] if c["name"] == context["cluster"])["cluster"])
    if "certificate-authority" in cluster:  # a file path: embed it so the kubeconfig stands alone
        ca_path = Path(cluster.pop("certificate-authority"))
        if not ca_path.is_absolute():
            ca_path = admin_kubeconfig.parent / ca_path
        cluster["certificate-authority-data"] = base64.b64encode(ca_path.read_bytes()).decode()
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": user,
        "clusters": [{"name": "cluster", "cluster": cluster}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": user, "context": {"cluster": "cluster", "user": user}}],
    }))
    path.chmod(0o600)
    return path
