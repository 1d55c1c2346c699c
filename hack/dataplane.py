"""The test bed's data plane, run beside the control plane inside its network namespace:

- kube-proxy (nftables mode) makes ClusterIP Services answer for every process in the namespace;
- Envoy Gateway in host mode runs one envoy for the shared Gateway `modelpilot-gateway/modelpilot`,
  whose listener answers on 127.0.0.1:GATEWAY_PORT and routes HTTPRoutes of every namespace.

Both follow EndpointSlices (pod IPs, Ready conditions), as in a real cluster. What was started is
written to `<workdir>/dataplane.json` for the tests and the demo.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import yaml

GATEWAY_NAMESPACE = "modelpilot-gateway"
GATEWAY_NAME = "modelpilot"
GATEWAY_CLASS = "modelpilot"
GATEWAY_PORT = 10080  # the listener; envoy binds it on every address of the namespace
GATEWAY_CONTROLLER = "gateway.envoyproxy.io/gatewayclass-controller"
EG_ADMIN_PORT = 19010  # Envoy Gateway's admin server, away from envoy's own 19000
KUBE_PROXY_NODE = "cpu-1"
# Envoy Gateway's xDS server reads its certificate from this fixed path when its resources come
# from Kubernetes; it is bind-mounted in envoy-gateway's private mount namespace only.
XDS_CERT_DIR = Path("/certs")
# Envoy Gateway listens on these on every address of the namespace (its controller-runtime
# metrics on :8080 cannot be moved), so a pod IP cannot take them: test-bed pods serve on 8000.
# KEDA's adapter serves its /metrics on every address too (19669, hack/keda.py ADAPTER_METRICS_PORT).
RESERVED_PORTS = frozenset({8080, 8081, 9443, 18000, 18002, 19003, GATEWAY_PORT, EG_ADMIN_PORT, 19669})
POD_PORT = 8000
# A pod whose template sets this env variable to "process" is made Running but not Ready by KWOK
# (hack/testbed.py kwok_stages): its readiness is the e2e bridge's to give, from the real process's
# readiness probe. Otherwise KWOK makes it Ready, an endpoint taking traffic, before it listens.
READINESS_ENV = "MODELPILOT_TESTBED_READINESS"


def bridged_runtime() -> dict[str, Any]:
    """`spec.runtime` for a ModelDeployment whose pods the e2e bridge runs as real processes."""
    return {"port": POD_PORT, "env": [{"name": READINESS_ENV, "value": "process"}]}


class ClusterLike(Protocol):
    workdir: Path

    @property
    def kubeconfig(self) -> Path: ...

    def bin(self, name: str) -> str: ...

    def kubectl(self, *args: str, input: str | None = None, check: bool = True,
                capture: bool = True) -> subprocess.CompletedProcess[str]: ...


# testbed.start_background: (workdir, name, cmd, env=None) -> pid of a detached process.
StartBackground = Callable[..., int]


def info_path(workdir: Path) -> Path:
    return workdir / "dataplane.json"


def read_info(workdir: Path) -> dict[str, Any] | None:
    """What `start` wrote, or None when the cluster has no data plane."""
    path = info_path(workdir)
    return json.loads(path.read_text()) if path.exists() else None


def gateway_parent_ref() -> dict[str, str]:
    """The parentRef of the shared Gateway, for HTTPRoutes of any namespace."""
    return {"name": GATEWAY_NAME, "namespace": GATEWAY_NAMESPACE}


def _log(message: str) -> None:
    import sys

    print(f"[testbed] {message}", file=sys.stderr, flush=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _listening(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.3)
        return s.connect_ex((host, port)) == 0


def start(cluster: ClusterLike, *, start_background: StartBackground, envoy_version: str) -> dict[str, Any]:
    """Start kube-proxy and Envoy Gateway (each only when not running yet) and the shared Gateway.

    The test bed passes its `start_background` and the pinned envoy version (hack/versions.env):
    this module imports nothing from hack/, as it is loaded both as `hack.dataplane` and, beside
    the script hack/testbed.py, as `dataplane`."""
    info = read_info(cluster.workdir) or {}
    started = time.monotonic()
    if not _alive(info.get("kubeProxy", {}).get("pid")):
        info["kubeProxy"] = _start_kube_proxy(cluster, start_background)
    if not _alive(info.get("gateway", {}).get("pid")):
        info["gateway"] = _start_envoy_gateway(cluster, start_background, envoy_version)
    info_path(cluster.workdir).write_text(json.dumps(info, indent=1))
    _wait_gateway_listening(cluster)
    _log(f"data plane ready in {time.monotonic() - started:.1f}s: kube-proxy ({info['kubeProxy']['mode']}), "
         f"gateway {GATEWAY_NAMESPACE}/{GATEWAY_NAME} on 127.0.0.1:{GATEWAY_PORT}")
    return info


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


# --------------------------------------------------------------------------------------------
# kube-proxy
# --------------------------------------------------------------------------------------------

def _start_kube_proxy(cluster: ClusterLike, start_background: StartBackground) -> dict[str, Any]:
    workdir = cluster.workdir / "kube-proxy"
    workdir.mkdir(parents=True, exist_ok=True)
    config = {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(cluster.kubeconfig), "qps": 50, "burst": 100},
        "hostnameOverride": KUBE_PROXY_NODE,
        # KWOK nodes have no address: without this kube-proxy waits 30 s for one, then uses loopback.
        "bindAddress": "127.0.0.1",
        "nodePortAddresses": ["127.0.0.1/32"],
        "mode": "nftables",
        "healthzBindAddress": f"127.0.0.1:{_free_port()}",
        "metricsBindAddress": f"127.0.0.1:{_free_port()}",
        # Leave the kernel's conntrack settings alone: there is nothing to tune in a test namespace.
        "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
        # Endpoint changes reach the rules at once, so a pod that stops being Ready leaves quickly.
        "nftables": {"syncPeriod": "30s", "minSyncPeriod": "0s"},
    }
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    pid = start_background(cluster.workdir, "kube-proxy", [cluster.bin("kube-proxy"), f"--config={path}", "--v=1"])
    return {"pid": pid, "mode": "nftables", "healthz": config["healthzBindAddress"]}


# --------------------------------------------------------------------------------------------
# Envoy Gateway
# --------------------------------------------------------------------------------------------

def _host_dirs(workdir: Path) -> dict[str, str]:
    root = workdir / "envoy-gateway"
    return {key: str(root / sub) for key, sub in
            (("configHome", "config"), ("dataHome", "data"), ("stateHome", "state"), ("runtimeDir", "run"))}


def _start_envoy_gateway(cluster: ClusterLike, start_background: StartBackground, version: str) -> dict[str, Any]:
    dirs = _host_dirs(cluster.workdir)
    for directory in dirs.values():
        Path(directory).mkdir(parents=True, exist_ok=True)
    # The envoy it would otherwise download: the pinned binary, where func-e looks first.
    envoy_bin = Path(dirs["dataHome"]) / "envoy-versions" / version / "bin" / "envoy"
    envoy_bin.parent.mkdir(parents=True, exist_ok=True)
    if not envoy_bin.exists():
        envoy_bin.symlink_to(Path(cluster.bin("envoy")).resolve())
    certs = Path(dirs["configHome"]) / "certs"
    if not (certs / "envoy-gateway" / "tls.crt").exists():
        subprocess.run([cluster.bin("envoy-gateway"), "certgen", "--local", "--config-home", dirs["configHome"]],
                       check=True, capture_output=True, text=True)
    _apply_gateway_objects(cluster, certs, version)
    config = {
        "apiVersion": "gateway.envoyproxy.io/v1alpha1",
        "kind": "EnvoyGateway",
        "gateway": {"controllerName": GATEWAY_CONTROLLER},
        "provider": {"type": "Custom", "custom": {"resource": {"type": "Kubernetes"},
                                                   "infrastructure": {"type": "Host", "host": dirs}}},
        "admin": {"address": {"host": "127.0.0.1", "port": EG_ADMIN_PORT}},
        "telemetry": {"metrics": {"prometheus": {"disable": True}}},
        "logging": {"level": {"default": "info"}},
    }
    path = cluster.workdir / "envoy-gateway" / "envoy-gateway.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    if not XDS_CERT_DIR.exists():
        XDS_CERT_DIR.mkdir(mode=0o755)  # an empty mount point; the certificates stay in the work dir
    script = (f"mount --bind {certs / 'envoy-gateway'} {XDS_CERT_DIR} && "
              f"exec {cluster.bin('envoy-gateway')} server --config-path {path}")
    env = {"KUBECONFIG": str(cluster.kubeconfig), "ENVOY_GATEWAY_NAMESPACE": GATEWAY_NAMESPACE,
           "PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(cluster.workdir / "envoy-gateway")}
    unshare = shutil.which("unshare") or "unshare"
    pid = start_background(cluster.workdir, "envoy-gateway",
                           [unshare, "--mount", "--propagation", "private", "sh", "-c", script], env=env)
    return {"pid": pid, "namespace": GATEWAY_NAMESPACE, "name": GATEWAY_NAME, "host": "127.0.0.1",
            "port": GATEWAY_PORT, "envoyVersion": version}


def _secret(name: str, files: dict[str, Path]) -> dict[str, Any]:
    import base64

    data = {key: base64.b64encode(path.read_bytes()).decode() for key, path in files.items() if path.exists()}
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": name, "namespace": GATEWAY_NAMESPACE}, "data": data}


def _apply_gateway_objects(cluster: ClusterLike, certs: Path, version: str) -> None:
    crds = Path(cluster.bin("envoy-gateway-crds.yaml"))
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(crds))
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd/envoyproxies.gateway.envoyproxy.io")
    tls = ("tls.crt", "tls.key", "ca.crt")
    docs: list[dict[str, Any]] = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": GATEWAY_NAMESPACE}}]
    docs += [_secret(name, {f: certs / name / f for f in tls})
             for name in ("envoy", "envoy-gateway", "envoy-rate-limit")]
    docs.append(_secret("envoy-oidc-hmac", {"hmac-secret": certs / "envoy-oidc-hmac" / "hmac-secret"}))
    docs += [
        {"apiVersion": "gateway.envoyproxy.io/v1alpha1", "kind": "EnvoyProxy",
         "metadata": {"name": "host", "namespace": GATEWAY_NAMESPACE},
         "spec": {"provider": {"type": "Host", "host": {"envoyVersion": version}}}},
        {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass", "metadata": {"name": GATEWAY_CLASS},
         "spec": {"controllerName": GATEWAY_CONTROLLER,
                  "parametersRef": {"group": "gateway.envoyproxy.io", "kind": "EnvoyProxy", "name": "host",
                                    "namespace": GATEWAY_NAMESPACE}}},
        {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
         "metadata": {"name": GATEWAY_NAME, "namespace": GATEWAY_NAMESPACE},
         "spec": {"gatewayClassName": GATEWAY_CLASS,
                  "listeners": [{"name": "http", "protocol": "HTTP", "port": GATEWAY_PORT,
                                 "allowedRoutes": {"namespaces": {"from": "All"}}}]}},
    ]
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-",
                    input="\n---\n".join(yaml.safe_dump(d) for d in docs))


def _wait_gateway_listening(cluster: ClusterLike, timeout: float = 120) -> None:
    """Envoy binds the listener once Envoy Gateway has programmed the Gateway."""
    deadline = time.monotonic() + timeout
    while not _listening(GATEWAY_PORT):
        if time.monotonic() > deadline:
            log = cluster.workdir / "envoy-gateway.log"
            tail = log.read_text(errors="replace")[-3000:] if log.exists() else "(no log)"
            raise RuntimeError(f"the gateway never listened on 127.0.0.1:{GATEWAY_PORT}:\n{tail}")
        time.sleep(0.3)
