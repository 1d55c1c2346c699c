"""KEDA (operator and external-metrics adapter), run beside the data plane inside the test bed's
network namespace, so ScaledObjects scale Deployments to and from zero as in a real cluster.

- keda-operator: the ScaledObject controller and the metrics gRPC service (127.0.0.1 only);
- keda-adapter: serves `external.metrics.k8s.io/v1beta1` on ADAPTER_ADDRESS, a pod-CIDR address no
  KWOK node can hand out, registered with the aggregator through the APIService
  `v1beta1.external.metrics.k8s.io`, a Service without selector and a hand-made EndpointSlice.

Both use one certificate (made with openssl, kept in the work dir) for the operator-adapter mTLS
and the adapter's serving endpoint; the APIService trusts its CA. What was started is written to
`<workdir>/keda.json`. Like hack/dataplane.py, this module imports nothing from hack/: it is loaded
both as `hack.keda` and, beside the script hack/testbed.py, as `keda`.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import yaml

NAMESPACE = "keda"
API_SERVICE = "v1beta1.external.metrics.k8s.io"
ADAPTER_SERVICE = "keda-metrics-apiserver"
SCALED_OBJECT_CRD = "scaledobjects.keda.sh"
# Node i owns 10.244.i.0/24 with i >= 1 (testbed.node_pod_cidr), so 10.244.0.0/24 is never a pod's;
# the namespace routes it locally like the rest of the pod CIDR, and EndpointSlices accept it.
ADAPTER_ADDRESS = "10.244.0.10"
ADAPTER_PORT = 6443
# Away from Envoy Gateway's wildcard listeners (8080, 8081, 9443) and KEDA's defaults (9666).
OPERATOR_GRPC = "127.0.0.1:19666"
OPERATOR_METRICS = "127.0.0.1:19667"
OPERATOR_HEALTH = "127.0.0.1:19668"
# The adapter's own /metrics listens on every address (`:port`, no flag for the host), so no pod IP
# can take it: it is in dataplane.RESERVED_PORTS too.
ADAPTER_METRICS_PORT = 19669
# Readable logs; no stack trace for each retried list while the ScaledObject CRD is missing.
LOG_FLAGS = ("--zap-encoder=console", "--zap-time-encoding=rfc3339", "--zap-stacktrace-level=panic")
OPERATOR_STARTED = "Starting workers"  # logged by each controller, the ScaledObject one included


class ClusterLike(Protocol):
    workdir: Path

    @property
    def kubeconfig(self) -> Path: ...

    def bin(self, name: str) -> str: ...

    def kubectl(self, *args: str, input: str | None = None, check: bool = True,
                capture: bool = True) -> subprocess.CompletedProcess[str]: ...


class KubectlLike(Protocol):
    """The e2e suite's ClusterHandle is enough for install_crds / uninstall_crds."""

    @property
    def kubeconfig(self) -> Path: ...

    def kubectl(self, *args: str, input: str | None = None,
                check: bool = True) -> subprocess.CompletedProcess[str]: ...


# testbed.start_background: (workdir, name, cmd, env=None) -> pid of a detached process.
StartBackground = Callable[..., int]


def info_path(workdir: Path) -> Path:
    return workdir / "keda.json"


def read_info(workdir: Path) -> dict[str, Any] | None:
    """What `start` wrote, or None when the cluster runs no KEDA."""
    path = info_path(workdir)
    return json.loads(path.read_text()) if path.exists() else None


def _log(message: str) -> None:
    print(f"[testbed] {message}", file=sys.stderr, flush=True)


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def start(cluster: ClusterLike, *, start_background: StartBackground) -> dict[str, Any]:
    """Apply KEDA's CRDs and API registration, start the operator and the adapter (each only when
    not running yet, or again when the ScaledObject CRD had to be re-created: see install_crds), and
    wait until the operator's controllers run and the APIService is Available."""
    started = time.monotonic()
    certs = _certificates(cluster.workdir / "keda" / "certs")
    crds = Path(cluster.bin("keda-crds.yaml")).resolve()
    recreated = not _crd_exists(cluster)
    _apply(cluster, crds, certs)
    info = read_info(cluster.workdir) or {}
    info["crds"] = str(crds)
    for name, command in (("operator", _operator_command), ("adapter", _adapter_command)):
        if recreated or not _alive(info.get(name, {}).get("pid")):
            cmd, env = command(cluster, certs)
            mark = _log_size(cluster.workdir, name)
            info[name] = {"pid": start_background(cluster.workdir, f"keda-{name}", cmd, env=env),
                          "cmd": cmd, "env": env, "logOffset": mark}
    info["operator"].update(grpc=OPERATOR_GRPC, metrics=OPERATOR_METRICS, health=OPERATOR_HEALTH)
    info["adapter"].update(address=ADAPTER_ADDRESS, port=ADAPTER_PORT, metricsPort=ADAPTER_METRICS_PORT)
    info_path(cluster.workdir).write_text(json.dumps(info, indent=1))
    _wait_ready(cluster, cluster.workdir, info)
    _log(f"KEDA ready in {time.monotonic() - started:.1f}s: operator (gRPC {OPERATOR_GRPC}), "
         f"adapter {ADAPTER_ADDRESS}:{ADAPTER_PORT} behind apiservice/{API_SERVICE}")
    return info


def install_crds(cluster: KubectlLike, timeout: float = 120) -> None:
    """Install KEDA's CRDs again (after uninstall_crds) and make KEDA use them at once.

    Without its ScaledObject CRD the operator neither exits nor wedges: its informers retry listing
    with a backoff that grows to 30 s, so after the CRD comes back it can take that long before new
    ScaledObjects are reconciled (and the adapter finds them). When the CRD was missing, the operator
    and the adapter are therefore restarted, which takes ~3 s, and this returns once both serve."""
    workdir = _workdir(cluster)
    info = read_info(workdir)
    if info is None:
        raise RuntimeError(f"no KEDA on this cluster ({info_path(workdir)} is missing): run `hack/testbed.py up`")
    recreated = not _crd_exists(cluster)
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", info["crds"])
    cluster.kubectl("wait", "--for=condition=Established", f"--timeout={int(timeout)}s", f"crd/{SCALED_OBJECT_CRD}")
    if not recreated and all(_alive(info[name]["pid"]) for name in ("operator", "adapter")):
        return
    for name in ("operator", "adapter"):  # the adapter's gRPC client would otherwise back off too
        info[name]["logOffset"] = _log_size(workdir, name)
        info[name]["pid"] = _respawn(workdir, f"keda-{name}", info[name]["cmd"], info[name]["env"])
    info_path(workdir).write_text(json.dumps(info, indent=1))
    _wait_ready(cluster, workdir, info, timeout)


def uninstall_crds(cluster: KubectlLike, timeout: float = 120) -> None:
    """Remove the ScaledObject CRD (the other KEDA CRDs stay): every ScaledObject of the cluster goes
    with it (the operator drops its finalizer and its HPAs); the operator and the adapter keep running."""
    cluster.kubectl("delete", "crd", SCALED_OBJECT_CRD, "--ignore-not-found", "--wait", f"--timeout={int(timeout)}s",
                    check=False)
    # The CRD stays (terminating) until KEDA has removed its finalizers from every ScaledObject: a
    # CRD installed again meanwhile would be the terminating one, gone a moment later.
    deadline = time.monotonic() + timeout
    while _crd_exists(cluster):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{SCALED_OBJECT_CRD} was still there {timeout:.0f}s after its deletion")
        time.sleep(0.5)


def _workdir(cluster: KubectlLike) -> Path:
    """testbed.Cluster has `workdir`; the e2e suite's ClusterHandle has the test bed's kubeconfig in it."""
    workdir = getattr(cluster, "workdir", None)
    return Path(workdir) if workdir else cluster.kubeconfig.parent


def _crd_exists(cluster: KubectlLike) -> bool:
    return cluster.kubectl("get", "crd", SCALED_OBJECT_CRD, "-o", "name", check=False).returncode == 0


def _wait_ready(cluster: KubectlLike, workdir: Path, info: dict[str, Any], timeout: float = 120) -> None:
    _wait_operator(workdir, info["operator"], timeout)
    wait = cluster.kubectl("wait", "--for=condition=Available", f"--timeout={int(timeout)}s",
                           f"apiservice/{API_SERVICE}", check=False)
    if wait.returncode != 0:
        raise RuntimeError(f"{API_SERVICE} never became Available: {wait.stderr.strip()}\n"
                           f"{_tail(workdir, 'adapter', info['adapter']['logOffset'])}")
    # The condition can lag behind a restarted adapter: wait until a request really goes through.
    deadline = time.monotonic() + timeout
    while cluster.kubectl("get", "--raw", "/apis/external.metrics.k8s.io/v1beta1", check=False).returncode != 0:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{API_SERVICE} does not answer:\n{_tail(workdir, 'adapter')}")
        time.sleep(0.3)


def _log_size(workdir: Path, name: str) -> int:
    log = workdir / f"keda-{name}.log"
    return log.stat().st_size if log.exists() else 0


def _read_log(workdir: Path, name: str, offset: int = 0) -> str:
    log = workdir / f"keda-{name}.log"
    if not log.exists():
        return ""
    with log.open("rb") as f:
        f.seek(offset)
        return f.read().decode(errors="replace")


def _tail(workdir: Path, name: str, offset: int = 0) -> str:
    return _read_log(workdir, name, offset)[-3000:] or "(no log)"


def _wait_operator(workdir: Path, operator: dict[str, Any], timeout: float = 120) -> None:
    """Until the operator (started when its log had `logOffset` bytes) runs its ScaledObject controller."""
    offset, deadline = operator["logOffset"], time.monotonic() + timeout
    while not any(OPERATOR_STARTED in line and "scaledobject" in line
                  for line in _read_log(workdir, "operator", offset).splitlines()):
        if not _alive(operator["pid"]) or time.monotonic() > deadline:
            state = "exited" if not _alive(operator["pid"]) else "did not start its controllers"
            raise RuntimeError(f"the KEDA operator {state}:\n{_tail(workdir, 'operator', offset)}")
        time.sleep(0.3)


# --------------------------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------------------------

def _respawn(workdir: Path, name: str, cmd: list[str], env: dict[str, str]) -> int:
    """Restart a process the way testbed.start_background started it (its pid file in <workdir>/bg,
    its output appended to <workdir>/<name>.log, its own process group), so Cluster.down() stops it."""
    pid_file = workdir / "bg" / f"{name}.pid"
    with contextlib.suppress(ValueError, OSError):
        old = int(pid_file.read_text().strip())
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(old, signal.SIGTERM)
        deadline = time.monotonic() + 15
        while _alive(old) and time.monotonic() < deadline:
            time.sleep(0.1)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(old, signal.SIGKILL)
    with (workdir / f"{name}.log").open("ab") as log:
        process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    pid_file.write_text(str(process.pid))
    return process.pid


def _env(cluster: ClusterLike) -> dict[str, str]:
    return {"KUBECONFIG": str(cluster.kubeconfig), "WATCH_NAMESPACE": "", "POD_NAMESPACE": NAMESPACE,
            "KEDA_CLUSTER_OBJECT_NAMESPACE": NAMESPACE, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": str(cluster.workdir / "keda")}


def _operator_command(cluster: ClusterLike, certs: Path) -> tuple[list[str], dict[str, str]]:
    return [cluster.bin("keda-operator"), "--leader-elect=false",
            f"--metrics-bind-address={OPERATOR_METRICS}", f"--health-probe-bind-address={OPERATOR_HEALTH}",
            f"--metrics-service-bind-address={OPERATOR_GRPC}", f"--cert-dir={certs}",
            "--enable-cert-rotation=false", "--enable-webhook-patching=false", "--enable-apiservice-patching=false",
            f"--ca-dir={certs}", "--kube-api-qps=50", "--kube-api-burst=100",
            *LOG_FLAGS], _env(cluster)


def _adapter_command(cluster: ClusterLike, certs: Path) -> tuple[list[str], dict[str, str]]:
    kubeconfig = str(cluster.kubeconfig)
    return [cluster.bin("keda-adapter"), f"--bind-address={ADAPTER_ADDRESS}", f"--secure-port={ADAPTER_PORT}",
            f"--tls-cert-file={certs / 'tls.crt'}", f"--tls-private-key-file={certs / 'tls.key'}",
            f"--cert-dir={certs}", f"--lister-kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}", f"--authorization-kubeconfig={kubeconfig}",
            f"--metrics-service-address={OPERATOR_GRPC}", f"--port={ADAPTER_METRICS_PORT}",
            "--kube-api-qps=50", "--kube-api-burst=100",
            *LOG_FLAGS], _env(cluster)


def _certificates(directory: Path) -> Path:
    """A CA and one certificate (server and client) for the operator's gRPC service, the adapter's
    client of it and the adapter's HTTPS endpoint, which the aggregator reaches by the Service name."""
    if (directory / "tls.crt").exists():
        return directory
    directory.mkdir(parents=True, exist_ok=True)
    names = [f"DNS:{service}.{NAMESPACE}.svc{suffix}" for service in (ADAPTER_SERVICE, "keda-operator")
             for suffix in ("", ".cluster.local")]
    (directory / "ext.cnf").write_text(f"subjectAltName={','.join(names)},IP:127.0.0.1,IP:{ADAPTER_ADDRESS}\n"
                                       "extendedKeyUsage=serverAuth,clientAuth\nbasicConstraints=CA:FALSE\n")
    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for args in (["req", "-x509", *key, "-days", "3650", "-subj", "/CN=keda-testbed-ca",
                  "-keyout", "ca.key", "-out", "ca.crt"],
                 ["req", *key, "-subj", "/CN=keda", "-keyout", "tls.key", "-out", "tls.csr"],
                 ["x509", "-req", "-in", "tls.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                  "-days", "3650", "-extfile", "ext.cnf", "-out", "tls.crt"]):
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)
    return directory


# --------------------------------------------------------------------------------------------
# Objects
# --------------------------------------------------------------------------------------------

def _apply(cluster: ClusterLike, crds: Path, certs: Path) -> None:
    """KEDA's CRDs, its namespace and the registration of the adapter with the aggregator."""
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(crds))
    ca = base64.b64encode((certs / "ca.crt").read_bytes()).decode()
    labels = {"app.kubernetes.io/part-of": "keda", "app.kubernetes.io/managed-by": "modelpilot-testbed"}
    docs: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": ADAPTER_SERVICE, "namespace": NAMESPACE, "labels": labels},
         "spec": {"ports": [{"name": "https", "port": 443, "targetPort": ADAPTER_PORT, "protocol": "TCP"}]}},
        {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
         "metadata": {"name": f"{ADAPTER_SERVICE}-testbed", "namespace": NAMESPACE,
                      "labels": {**labels, "kubernetes.io/service-name": ADAPTER_SERVICE,
                                 "endpointslice.kubernetes.io/managed-by": "modelpilot-testbed"}},
         "addressType": "IPv4",
         "endpoints": [{"addresses": [ADAPTER_ADDRESS], "conditions": {"ready": True}}],
         "ports": [{"name": "https", "port": ADAPTER_PORT, "protocol": "TCP"}]},
        {"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService", "metadata": {"name": API_SERVICE},
         "spec": {"group": "external.metrics.k8s.io", "version": "v1beta1", "caBundle": ca,
                  "service": {"name": ADAPTER_SERVICE, "namespace": NAMESPACE, "port": 443},
                  "groupPriorityMinimum": 100, "versionPriority": 100}},
    ]
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-",
                    input="\n---\n".join(yaml.safe_dump(d) for d in docs))
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", f"crd/{SCALED_OBJECT_CRD}")
