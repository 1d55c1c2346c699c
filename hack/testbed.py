"""The local test bed: a real Kubernetes control plane (kwokctl, binary runtime) and Prometheus.

Used three ways: as a script, `python hack/testbed.py up|down|status|exec ...` (the Makefile, from
any directory; `python -m hack.testbed` from the root is the same), and as the module
`hack.testbed`, imported by the e2e fixtures (tests/e2e/conftest.py) and the demo. Every process it
starts binds to 127.0.0.1 on a free port; all state lives under the work dir (default `.cluster/`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

# The siblings, whichever way this file runs (no sys.path edits either way):
if __package__:  # the module hack.testbed: imported, or `python -m hack.testbed` from the root
    from hack import dataplane, edgenodes, keda, netns
else:  # the script `python hack/testbed.py`: Python puts its directory, hack/, first on sys.path
    import dataplane
    import edgenodes
    import keda
    import netns

ROOT = Path(__file__).resolve().parent.parent
HACK = ROOT / "hack"
DEFAULT_WORKDIR = ROOT / ".cluster"
DEFAULT_NAME = "modelpilot"
PROMETHEUS_BINARY = os.environ.get("MODELPILOT_PROMETHEUS_BINARY", "/usr/bin/prometheus")

GPU_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"


def log(message: str) -> None:
    print(f"[testbed] {message}", file=sys.stderr, flush=True)


def versions() -> dict[str, str]:
    """The pinned versions from hack/versions.env."""
    pinned: dict[str, str] = {}
    for line in (HACK / "versions.env").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            pinned[key] = value
    return pinned


def binaries(build: bool = True) -> Path:
    """The cache directory holding the pinned binaries; builds what is missing when `build`."""
    args = [str(HACK / "build-testbed.sh"), "all" if build else "path"]
    out = subprocess.run(args, check=True, stdout=subprocess.PIPE, text=True).stdout
    return Path(out.strip().splitlines()[-1])


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_is_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


# --------------------------------------------------------------------------------------------
# Nodes
# --------------------------------------------------------------------------------------------

def _node(name: str, index: int, cpu: str, memory: str, labels: dict[str, str], gpus: int = 0,
          taints: list[dict[str, str]] | None = None, pods: int = 110, arch: str = "amd64") -> dict[str, Any]:
    capacity = {"cpu": cpu, "memory": memory, "pods": str(pods)}
    if gpus:
        capacity["nvidia.com/gpu"] = str(gpus)
    pod_cidr = node_pod_cidr(index)
    status: dict[str, Any] = {"capacity": capacity, "allocatable": dict(capacity)}
    if arch != "amd64":  # kwok reports amd64 unless nodeInfo says otherwise
        status["nodeInfo"] = {"architecture": arch, "operatingSystem": "linux"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            # kwokctl's kwok controller manages nodes carrying this annotation.
            "annotations": {"node.alpha.kubernetes.io/ttl": "0", "kwok.x-k8s.io/node": "fake"},
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": arch,
                "type": "kwok",
                **labels,
            },
        },
        # kwok takes pod IPs from the node's podCIDR; the namespace routes 10.244.0.0/16 locally.
        "spec": {"taints": taints or [], "podCIDR": pod_cidr, "podCIDRs": [pod_cidr]},
        # The API server keeps status on create and kwok only fills capacity when absent,
        # so the extended resource stays advertised.
        "status": status,
    }


def node_pod_cidr(index: int) -> str:
    """Node `index` (1-based) gets 10.244.<index>.0/24: 254 pod IPs."""
    if not 1 <= index <= 255:
        raise ValueError(f"node index {index} is outside 10.244.1-255.0/24")
    return f"10.244.{index}.0/24"


CPU_NODES = 12  # x 250 pods: room for 3,000 serving pods (a /24 holds 254 pod IPs)
CPU_LABELS = {"modelpilot.io/pool": "cpu"}


def cpu_node(index: int, name: str | None = None) -> dict[str, Any]:
    return _node(name or f"cpu-{index}", index, "32", "128Gi", CPU_LABELS, pods=250)


# Edge devices (docs/testbed.md): small nodes with a k3s/KubeEdge-style role label (empty value),
# tainted so that only pods tolerating the taint (DaemonSets of edge targets) land there, on pod
# CIDRs 10.244.100-119.0/24, clear of the CPU nodes and of the ones add-nodes appends after them.
EDGE_COUNT, EDGE_FIRST_INDEX = 20, 100
EDGE_NODES = tuple(f"edge-{i:02d}" for i in range(EDGE_COUNT))
EDGE_LABEL = "node-role.kubernetes.io/edge"  # its value is "" (a role label)
EDGE_SELECTOR = {EDGE_LABEL: ""}
EDGE_LABELS = {EDGE_LABEL: "", "modelpilot.io/pool": "edge"}
EDGE_TAINT = {"key": EDGE_LABEL, "effect": "NoSchedule"}
EDGE_TOLERATION = {"key": EDGE_LABEL, "operator": "Exists", "effect": "NoSchedule"}
EDGE_INDICES = range(EDGE_FIRST_INDEX, EDGE_FIRST_INDEX + EDGE_COUNT)


def edge_node(i: int) -> dict[str, Any]:
    """Edge node `i` (0-based): 2 CPUs, 4Gi, 10 pods; even ones amd64, odd ones arm64."""
    return _node(EDGE_NODES[i], EDGE_FIRST_INDEX + i, "2", "4Gi", dict(EDGE_LABELS), taints=[dict(EDGE_TAINT)],
                 pods=10, arch="arm64" if i % 2 else "amd64")


def testbed_nodes() -> list[dict[str, Any]]:
    """CPU nodes (CPU_NODES x 250 pods), two 4xA100 nodes and one 1xL4 node, tainted like real
    GPU pools, and the EDGE_NODES. Node i has pod CIDR 10.244.i.0/24; GPU nodes come first so
    their CIDRs never move."""
    gpu = {"modelpilot.io/pool": "gpu"}
    nodes = [
        _node("gpu-a100-1", 1, "32", "256Gi", {GPU_PRODUCT_LABEL: "NVIDIA-A100-SXM4-80GB", **gpu},
              gpus=4, taints=[GPU_TAINT]),
        _node("gpu-a100-2", 2, "32", "256Gi", {GPU_PRODUCT_LABEL: "NVIDIA-A100-SXM4-80GB", **gpu},
              gpus=4, taints=[GPU_TAINT]),
        _node("gpu-l4-1", 3, "16", "64Gi", {GPU_PRODUCT_LABEL: "NVIDIA-L4", **gpu}, gpus=1, taints=[GPU_TAINT]),
    ]
    cpu = [cpu_node(10 + i, f"cpu-{i}") for i in range(1, CPU_NODES + 1)]
    return nodes + cpu + [edge_node(i) for i in range(EDGE_COUNT)]


def free_node_indices(used: set[int], count: int) -> list[int]:
    """`count` node indices (pod CIDRs) after the highest one in use outside the edge range,
    skipping any in use (the edge range among them)."""
    first = max((i for i in used if i not in EDGE_INDICES), default=0) + 1
    free = [i for i in range(first, 256) if i not in used][:count]
    if len(free) < count:
        raise ValueError(f"only {len(free)} free pod CIDRs (10.244.{first}-255.0/24) for {count} nodes")
    return free


# --------------------------------------------------------------------------------------------
# Pod readiness (KWOK stages)
# --------------------------------------------------------------------------------------------

_BY_PROCESS = f'.spec.containers.[].env.[] | select( .name == "{dataplane.READINESS_ENV}" ) | .value'


def kwok_stages(stage_dir: Path) -> list[dict[str, Any]]:
    """kwokctl's default stages plus `pod-ready-by-process` (see dataplane.READINESS_ENV). Job pods
    marked the same way are not completed by KWOK: the e2e bridge runs them and reports their end.

    Without `node-heartbeat-with-lease`: kwok's Lease renewals are the nodes' heartbeats (as a
    kubelet's), and that stage's job, scheduled 10-20 min ahead, fires even once kwok has let go
    of the node and would write Ready True into a partition (hack/edgenodes.py)."""
    stages = [yaml.safe_load((stage_dir / f"{name}.yaml").read_text()) for name in
              ("node-initialize", "pod-ready", "pod-complete", "pod-delete")]
    ready = next(s for s in stages if s["metadata"]["name"] == "pod-ready")
    complete = next(s for s in stages if s["metadata"]["name"] == "pod-complete")
    complete["spec"]["selector"]["matchExpressions"].append({"key": _BY_PROCESS, "operator": "NotIn",
                                                             "values": ["process"]})
    by_process = json.loads(json.dumps(ready))
    ready["spec"]["selector"]["matchExpressions"].append({"key": _BY_PROCESS, "operator": "NotIn",
                                                          "values": ["process"]})
    by_process["metadata"]["name"] = "pod-ready-by-process"
    by_process["spec"]["selector"]["matchExpressions"].append({"key": _BY_PROCESS, "operator": "In",
                                                               "values": ["process"]})
    template = by_process["spec"]["next"]["statusTemplate"]
    template = re.sub(r'status: "True"\n(\s*)type: (Ready|ContainersReady)\n',
                      r'status: "False"\n\1reason: ContainersNotReady\n\1type: \2\n', template)
    # Only the main containers' `ready: true` lines: init containers stay as they were.
    head, sep, tail = template.partition("initContainerStatuses:")
    by_process["spec"]["next"]["statusTemplate"] = head.replace("ready: true", "ready: false") + sep + tail
    return [*stages, by_process]


# --------------------------------------------------------------------------------------------
# Cluster
# --------------------------------------------------------------------------------------------

# The identity `make bench-operator` runs its operator as (bench/operator/): its reads are
# audited too, so the benchmark can count them. Nothing else uses this ServiceAccount.
BENCH_OPERATOR_NAMESPACE, BENCH_OPERATOR_SA = "modelpilot-bench", "operator"
BENCH_OPERATOR_USER = f"system:serviceaccount:{BENCH_OPERATOR_NAMESPACE}:{BENCH_OPERATOR_SA}"

# Only writes are audited: acceptance tests count an actor's writes, and reads would swell the log.
# The one exception is the benchmark's own operator identity above.
AUDIT_POLICY = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived"],
    "rules": [
        # kwok renews every node's Lease every 10 s: noise nobody counts.
        {"level": "None", "namespaces": ["kube-node-lease"]},
        {"level": "Metadata", "verbs": ["create", "update", "patch", "delete", "deletecollection"]},
        {"level": "Metadata", "users": [BENCH_OPERATOR_USER], "verbs": ["get", "list", "watch"]},
        {"level": "None"},
    ],
}


@dataclass
class Cluster:
    """One kwokctl cluster whose state lives entirely under `workdir`."""

    workdir: Path = DEFAULT_WORKDIR
    name: str = DEFAULT_NAME
    bin_dir: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    # The network namespace the cluster lives in (default: the one named after `workdir`).
    netns_name: str | None = None
    # kube-proxy and the gateway. A second cluster inside another one's namespace must go
    # without: two kube-proxies would overwrite each other's rules.
    dataplane: bool = True

    @property
    def netns(self) -> str:
        return self.netns_name or netns.name_for(self.workdir)

    def inside_env(self) -> dict[str, str]:
        """The environment of a command run inside the test bed (`hack/testbed.py exec`)."""
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig), netns.ENV_MARK: self.netns,
                "MODELPILOT_CLUSTER_DIR": str(self.workdir)}

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "kubeconfig"

    @property
    def kwok_workdir(self) -> Path:
        return self.workdir / "kwok"

    @property
    def cluster_dir(self) -> Path:
        return self.kwok_workdir / "clusters" / self.name

    @property
    def audit_log(self) -> Path:
        return self.cluster_dir / "logs" / "audit.log"

    def bin(self, name: str) -> str:
        if self.bin_dir is None:
            self.bin_dir = binaries(build=True)
        return str(self.bin_dir / name)

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self.env)
        env["KWOK_WORKDIR"] = str(self.kwok_workdir)
        env["KWOK_KUBECTL_BINARY"] = self.bin("kubectl")
        env["KUBECONFIG"] = str(self.kubeconfig)
        return env

    def kubectl(self, *args: str, input: str | None = None, check: bool = True,
                capture: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [self.bin("kubectl"), "--kubeconfig", str(self.kubeconfig), *args]
        return subprocess.run(cmd, input=input, check=check, text=True,
                              stdout=subprocess.PIPE if capture else None,
                              stderr=subprocess.PIPE if capture else None, env=self._env())

    def kwokctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [self.bin("kwokctl"), "--name", self.name, *args]
        return subprocess.run(cmd, check=check, text=True, env=self._env(),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def is_up(self) -> bool:
        if not self.kubeconfig.exists():
            return False
        probe = self.kubectl("get", "--raw", "/readyz", "--request-timeout=3s", check=False)
        return probe.returncode == 0 and probe.stdout.strip() == "ok"

    def up(self) -> None:
        """Start the cluster (or reuse the running one), then make sure CRDs and nodes exist."""
        if not netns.inside(self.netns):
            raise RuntimeError(f"the test bed runs inside the network namespace {self.netns}: "
                               "use `python hack/testbed.py up` or `hack/testbed.py exec -- CMD`")
        started = time.monotonic()
        if self.is_up():
            log(f"cluster {self.name} already running ({self.kubeconfig})")
        else:
            if self.cluster_dir.exists():
                log(f"cluster {self.name} has state but does not answer: recreating it")
                self.down()
            self._create()
            log(f"control plane up in {time.monotonic() - started:.1f}s")
        self._install_gateway_api()
        self._ensure_nodes()
        if self.dataplane:
            dataplane.start(self, start_background=start_background, envoy_version=versions()["ENVOY_VERSION"])
            keda.start(self, start_background=start_background)
        log(f"cluster {self.name} ready in {time.monotonic() - started:.1f}s; "
            f"export KUBECONFIG={self.kubeconfig}")

    def _create(self) -> None:
        pinned = versions()
        self.workdir.mkdir(parents=True, exist_ok=True)
        policy = self.workdir / "audit-policy.yaml"
        policy.write_text(yaml.safe_dump(AUDIT_POLICY))
        kwok_ca = self.cluster_dir / "pki" / "ca.crt"  # written by kwokctl before it starts the API server
        config = {
            "apiVersion": "config.kwok.x-k8s.io/v1alpha1",
            "kind": "KwokctlConfiguration",
            "options": {
                "runtime": "binary",
                "kubeVersion": pinned["KUBE_VERSION"],
                "bindAddress": "127.0.0.1",
                "kubeApiserverPort": free_port(),
                "kubeAuthorization": True,
                "kubeAuditPolicy": str(policy),
                "kubeApiserverBinary": self.bin("kube-apiserver"),
                "kubeControllerManagerBinary": self.bin("kube-controller-manager"),
                "kubeSchedulerBinary": self.bin("kube-scheduler"),
                "kwokControllerBinary": self.bin("kwok"),
                "etcdBinary": self.bin("etcd"),
                "kubectlBinary": self.bin("kubectl"),
                "prometheusBinary": PROMETHEUS_BINARY,
                # kwokctl scales kubelet-like timings by 5 by default (Leases of 200 s renewed every
                # 50 s, node-monitor-period 25 s). A node back from a partition (hack/edgenodes.py)
                # waits for kwok's next Lease try: kwok's default 40 s Lease makes that <= 10 s, and
                # the upstream 5 s node-monitor-period taints an unreachable node within 5 s. The
                # grace period keeps kwokctl's 200 s: a busy machine never makes a node flap.
                "heartbeatFactor": 1,
                "nodeLeaseDurationSeconds": 40,
                "kubeControllerManagerNodeMonitorPeriodMilliseconds": 5000,
                "kubeControllerManagerNodeMonitorGracePeriodMilliseconds": 200000,
            },
            "componentsPatches": [
                # There is no default route on these machines: without this the API server
                # cannot pick an address to advertise and refuses to start.
                {"name": "kube-apiserver",
                 "extraArgs": [{"key": "advertise-address", "value": "127.0.0.1"},
                               # A /16 leaves room for thousands of Services (scale tests).
                               {"key": "service-cluster-ip-range", "value": netns.SERVICE_CIDR},
                               # Aggregated APIs (KEDA's external metrics) are reached at their
                               # EndpointSlice address: no kube-proxy is needed for them.
                               {"key": "enable-aggregator-routing", "value": "true"},
                               # The aggregator proxies with kwokctl's admin certificate: trusting the
                               # headers it sends, an aggregated API sees (and authorizes) the real caller.
                               {"key": "requestheader-client-ca-file", "value": str(kwok_ca)},
                               # The CA signs every client certificate too: only that one may proxy.
                               {"key": "requestheader-allowed-names", "value": "kwok-admin"},
                               {"key": "requestheader-username-headers", "value": "X-Remote-User"},
                               {"key": "requestheader-group-headers", "value": "X-Remote-Group"},
                               {"key": "requestheader-extra-headers-prefix", "value": "X-Remote-Extra-"}]},
                # The defaults (20 requests/s, 5 concurrent syncs) suit a small cluster; at a
                # thousand Deployments the controllers, not the system under test, would be the
                # bottleneck of every scale measurement.
                {"name": "kube-controller-manager",
                 "extraArgs": [{"key": "service-cluster-ip-range", "value": netns.SERVICE_CIDR},
                               {"key": "kube-api-qps", "value": "300"},
                               {"key": "kube-api-burst", "value": "600"},
                               {"key": "concurrent-deployment-syncs", "value": "20"},
                               {"key": "concurrent-replicaset-syncs", "value": "20"},
                               # HPAs (KEDA's among them) act within seconds, not the default 15 s.
                               {"key": "horizontal-pod-autoscaler-sync-period", "value": "5s"}]},
            ],
        }
        config_path = self.workdir / "kwokctl.yaml"
        stages = kwok_stages(Path(self.bin("kwok")).parent.parent / "kwok-stages")
        config_path.write_text(yaml.safe_dump_all([config, *stages], sort_keys=False))
        log(f"creating cluster {self.name} (kwokctl, binary runtime, Kubernetes {pinned['KUBE_VERSION']})")
        result = self.kwokctl("create", "cluster", "--config", str(config_path),
                              "--kubeconfig", str(self.kubeconfig), "--wait", "3m", check=False)
        if result.returncode != 0:
            raise RuntimeError(f"kwokctl create cluster failed:\n{result.stdout}")

    def _install_gateway_api(self) -> None:
        assert self.bin_dir is not None or self.bin("kubectl")
        crds = Path(self.bin("kubectl")).parent.parent / "gateway-api-standard.yaml"
        self.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(crds))
        self.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                     "crd/httproutes.gateway.networking.k8s.io", "crd/gateways.gateway.networking.k8s.io")

    def _ensure_nodes(self) -> None:
        # create, not apply: apply would drop the status we set, and existing nodes are kept.
        existing = set(self.kubectl("get", "nodes", "-o", "name").stdout.split())
        missing = [n for n in testbed_nodes() if f"node/{n['metadata']['name']}" not in existing]
        if missing:
            self.kubectl("create", "-f", "-", input="\n---\n".join(yaml.safe_dump(n) for n in missing))
            self._wait_ready([n["metadata"]["name"] for n in missing])
        # A node a test disconnected and never reconnected (it crashed) comes back; not one cut off
        # just now (a test running meanwhile may be using the partition).
        for name in edgenodes.disconnected(self.kubectl, older_than=edgenodes.LEFT_DOWN_SECONDS):
            log(f"node {name} was left disconnected: reconnecting it")
            edgenodes.reconnect_node(self.kubectl, name)

    def _wait_ready(self, names: list[str]) -> None:
        # By name, not --all: a node disconnected on purpose (node-down) is not Ready.
        self.kubectl("wait", "--for=condition=Ready", "--timeout=60s", *(f"node/{n}" for n in names))

    def add_cpu_nodes(self, count: int) -> list[str]:
        """Add `count` CPU nodes (250 pods each) on the free pod CIDRs after the highest one in use
        (edge nodes' excepted, see free_node_indices); returns their names."""
        nodes = yaml.safe_load(self.kubectl("get", "nodes", "-o", "yaml").stdout)["items"]
        used = {int(n["spec"]["podCIDR"].split(".")[2]) for n in nodes if (n.get("spec") or {}).get("podCIDR")}
        added = [cpu_node(i, f"cpu-extra-{i}") for i in free_node_indices(used, count)]
        if added:
            self.kubectl("create", "-f", "-", input="\n---\n".join(yaml.safe_dump(n) for n in added))
            self._wait_ready([n["metadata"]["name"] for n in added])
        return [n["metadata"]["name"] for n in added]

    def show_nodes(self) -> None:
        self.kubectl("get", "nodes", "-o",
                     "custom-columns=NAME:.metadata.name,GPUS:.status.allocatable.nvidia\\.com/gpu,"
                     "PRODUCT:.metadata.labels.nvidia\\.com/gpu\\.product,CPU:.status.allocatable.cpu,"
                     "PODS:.status.allocatable.pods,ARCH:.metadata.labels.kubernetes\\.io/arch,"
                     "POD-CIDR:.spec.podCIDR,TAINTS:.spec.taints[*].key,"
                     "STATUS:.status.conditions[?(@.type=='Ready')].status", capture=False)

    def processes(self) -> list[int]:
        """PIDs of the processes kwokctl started for this cluster (from its pid files)."""
        pids = []
        for pid_file in self.cluster_dir.glob("pids/*.pid"):
            with contextlib.suppress(ValueError, OSError):
                pid = int(pid_file.read_text().strip())
                if _alive(pid):
                    pids.append(pid)
        return pids

    def ports(self) -> list[int]:
        """The ports this cluster's components listen on (from kwokctl's saved configuration)."""
        conf = self.cluster_dir / "kwok.yaml"
        if not conf.exists():
            return []
        found: list[int] = []
        for doc in yaml.safe_load_all(conf.read_text()):
            for component in (doc or {}).get("components") or []:
                found += [int(p["port"]) for p in component.get("ports") or [] if p.get("port")]
            for key, value in ((doc or {}).get("options") or {}).items():
                if key.endswith("Port") and type(value) is int and value > 0:
                    found.append(value)
        return sorted(set(found))

    def down(self) -> None:
        """Stop every process of the cluster and remove its state."""
        pids, ports = self.processes(), self.ports()
        stop_background(self.workdir)
        if self.cluster_dir.exists():
            result = self.kwokctl("delete", "cluster", check=False)
            if result.returncode != 0:
                log(f"kwokctl delete cluster: {result.stdout.strip()}")
        # kwokctl detaches its processes; make sure none outlives the state it used.
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        while any(_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.2)
        for pid in pids:
            if _alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        # A Go process's leader thread can be a zombie while its other threads still hold sockets.
        while any(port_is_open(p) for p in ports) and time.monotonic() < deadline + 10:
            time.sleep(0.2)
        shutil.rmtree(self.workdir, ignore_errors=True)
        log(f"cluster {self.name} down; {self.workdir} removed")


# --------------------------------------------------------------------------------------------
# Background processes beside the cluster (the demo's operator and world)
# --------------------------------------------------------------------------------------------

def start_background(workdir: Path, name: str, cmd: list[str], env: dict[str, str] | None = None) -> int:
    """Start `cmd` detached in its own process group; its pid goes to <workdir>/bg/<name>.pid and
    its output to <workdir>/<name>.log. A previous process of that name is stopped first."""
    stop_background(workdir, name)
    (workdir / "bg").mkdir(parents=True, exist_ok=True)
    log_file = (workdir / f"{name}.log").open("ab")
    process = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    (workdir / "bg" / f"{name}.pid").write_text(str(process.pid))
    return process.pid


def stop_background(workdir: Path, name: str = "*", timeout: float = 15) -> None:
    """Stop background processes (and their whole process groups) started by start_background."""
    for pid_file in sorted((workdir / "bg").glob(f"{name}.pid")):
        with contextlib.suppress(ValueError, OSError):
            pid = int(pid_file.read_text().strip())
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.2)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        pid_file.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is dead for our purposes.
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


# --------------------------------------------------------------------------------------------
# Prometheus
# --------------------------------------------------------------------------------------------

@dataclass
class Prometheus:
    """Debian's Prometheus run as a plain process on a free loopback port."""

    process: subprocess.Popen[bytes]
    port: int
    workdir: Path
    config_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def query(self, promql: str) -> list[dict[str, Any]]:
        """An instant query; returns the result vector."""
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(url, timeout=5) as response:
            body = json.load(response)
        if body.get("status") != "success":
            raise RuntimeError(f"query {promql!r} failed: {body}")
        return list(body["data"]["result"])

    def reload(self, config: dict[str, Any]) -> None:
        """Replace the scrape configuration (SIGHUP makes Prometheus re-read it)."""
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        self.process.send_signal(signal.SIGHUP)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_prometheus(config: dict[str, Any], workdir: Path | None = None, timeout: float = 60.0,
                     port: int | None = None) -> Prometheus:
    """Start Prometheus with `config` (a prometheus.yml as a dict) and wait until it answers."""
    if not Path(PROMETHEUS_BINARY).exists():
        raise RuntimeError(f"{PROMETHEUS_BINARY} not found: run hack/build-testbed.sh (installs Debian's prometheus)")
    workdir = Path(workdir or tempfile.mkdtemp(prefix="modelpilot-prometheus-"))
    workdir.mkdir(parents=True, exist_ok=True)
    config_path = workdir / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    port = port or free_port()
    log_file = (workdir / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [PROMETHEUS_BINARY, f"--config.file={config_path}", f"--storage.tsdb.path={workdir / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--web.enable-lifecycle",
         "--storage.tsdb.retention.time=2h", "--log.level=warn"],
        stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
    prometheus = Prometheus(process=process, port=port, workdir=workdir, config_path=config_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"prometheus exited with {process.returncode}: "
                               f"{(workdir / 'prometheus.log').read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{prometheus.url}/-/ready", timeout=1) as response:
                if response.status == 200:
                    return prometheus
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    prometheus.stop()
    raise RuntimeError(f"prometheus did not become ready on port {port} within {timeout}s")


def scrape_config(targets: list[tuple[str, dict[str, str]]], interval: str = "1s",
                  job: str = "modelpilot") -> dict[str, Any]:
    """A prometheus.yml scraping each `host:port` target with its own static labels."""
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "scrape_configs": [{
            "job_name": job,
            "scrape_interval": interval,
            "static_configs": [{"targets": [t], "labels": labels} for t, labels in targets],
        }],
    }


@contextlib.contextmanager
def prometheus(config: dict[str, Any], workdir: Path | None = None) -> Iterator[Prometheus]:
    prom = start_prometheus(config, workdir)
    try:
        yield prom
    finally:
        prom.stop()


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------

# Commands that act on the running test bed, so they run inside its network namespace.
INSIDE = {"up", "down", "status", "nodes", "add-nodes", "node-down", "node-up", "exec"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("command", choices=["build", "bin", *sorted(INSIDE)])
    parser.add_argument("--workdir", type=Path, default=Path(os.environ.get("MODELPILOT_CLUSTER_DIR",
                                                                             DEFAULT_WORKDIR)))
    parser.add_argument("--name", default=DEFAULT_NAME)
    parser.add_argument("--count", type=int, default=1, help="add-nodes: how many CPU nodes to add")
    parser.add_argument("argv", nargs=argparse.REMAINDER,
                        help="exec: the command (after --); node-down/node-up: the node's name")
    args = parser.parse_args(argv)
    if args.command in ("node-down", "node-up") and len(args.argv) > 1:  # options after the name
        args = parser.parse_args([*args.argv[1:], args.command, args.argv[0]])
    cluster = Cluster(workdir=args.workdir.resolve(), name=args.name)
    if args.command in INSIDE and not netns.inside(cluster.netns):
        return _run_inside(cluster, sys.argv[1:] if argv is None else list(argv), args)
    if args.command == "build":
        print(binaries(build=True))
    elif args.command == "bin":
        print(binaries(build=False))
    elif args.command == "up":
        cluster.up()
    elif args.command == "down":
        cluster.down()
    elif args.command == "status":
        print("up" if cluster.is_up() else "down")
        return 0 if cluster.is_up() else 1
    elif args.command == "nodes":
        cluster.show_nodes()
    elif args.command == "add-nodes":
        cluster.add_cpu_nodes(args.count)
        cluster.show_nodes()
    elif args.command in ("node-down", "node-up"):
        if len(args.argv) != 1:
            parser.error(f"{args.command} needs one node name: hack/testbed.py {args.command} edge-03")
        act = edgenodes.disconnect_node if args.command == "node-down" else edgenodes.reconnect_node
        log(act(cluster.kubectl, args.argv[0]))
    elif args.command == "exec":
        command = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
        if not command:
            parser.error("exec needs a command: hack/testbed.py exec -- CMD ARGS...")
        os.execvpe(command[0], command, cluster.inside_env())
    return 0


def _run_inside(cluster: Cluster, argv: list[str], args: argparse.Namespace) -> int:
    """Run this same command (`argv`, without the program) again inside the test bed's namespace
    (created when missing)."""
    if args.command == "down" and not netns.exists(cluster.netns):
        cluster.down()
        return 0
    netns.ensure(cluster.netns)
    if args.command == "exec":  # straight into the namespace: no Python in between
        command = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
        if command:
            wrapped = netns.wrap(cluster.netns, command)
            os.execvpe(wrapped[0], wrapped, cluster.inside_env())
    # Again as the script, by its absolute path: that works whatever the working directory and
    # however this run was started (`python hack/testbed.py`, `python -m hack.testbed`, main()).
    command = netns.wrap(cluster.netns, [sys.executable, str(Path(__file__).resolve()), *argv])
    code = subprocess.run(command, env=cluster.inside_env()).returncode
    if args.command == "down":
        netns.delete(cluster.netns)
    return code


if __name__ == "__main__":
    sys.exit(main())
