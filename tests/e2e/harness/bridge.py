"""PodProcessBridge: the kubelet stand-in for the model-server pods of one namespace.

KWOK binds pods and marks them Running but runs nothing. For every Running pod labelled
`app.kubernetes.io/managed-by=modelpilot` the bridge plans the pod's containers
(harness.template) and runs them as real processes (harness.process): the init containers, then
the server on the pod's own IP (`status.podIP`, from the node's podCIDR) and containerPort, as in
a real pod. It keeps a file_sd file of the pods' servers for Prometheus, with the labels a
PodMonitor adds (`namespace`, `pod`). Traffic reaches them the real way: through the gateway or
a Service, from the EndpointSlices the controller-manager builds out of the pods' Ready condition.
Prometheus applies file_sd changes at most every 5 s (its discovery manager throttles them, not
configurable), so a target appears or goes up to ~5 s after the file changes.

Readiness (`reflect_readiness=True`, the default): like a kubelet, the bridge writes the pod's
`Ready` / `ContainersReady` conditions from the server's readiness probe, so a model that cannot
load gives a pod that is not Ready in the API (the Deployment's readyReplicas, the Service
endpoints and the operator all see it). KWOK marks a pod Ready the moment it runs it; the bridge
watches pods and overrides that within a fraction of a second, but in that short window the pod
is Ready in the API. KWOK never touches a Running pod's conditions again, so the bridge then owns
them. With `reflect_readiness=False` only Ready pods get a process and kwok's Ready stays.

A pod that is deleted, terminating, or no longer Running loses its process (SIGTERM, then
SIGKILL after `grace` seconds); it stops taking traffic at once.

Partitions: on a node that is not Ready (an edge node cut off, hack/edgenodes.py) the bridge acts
like a kubelet that cannot reach the API server: the pod's process keeps serving (a disconnected
device serves its local clients), nothing is started or stopped there (a deletion is seen once the
node is back), no status is written, and the target leaves the file_sd file (the central Prometheus
cannot scrape across the partition). Once the node is Ready it catches up like a reconnected
kubelet: target back, Ready written from the probe again, a pod deleted meanwhile stopped. Node
readiness comes from a watch (harness.nodes) and is read afresh before each status write.

Job pods (a BatchPrediction's shards) run to completion, as a kubelet runs them: env from Secrets
is resolved (secretKeyRef), the termination message file is read when the process ends, and the
pod's status becomes Succeeded or Failed with the container's exit code and message, which is what
the Job controller counts (and its podFailurePolicy matches). The test bed's KWOK stage that would
complete Job pods by itself leaves bridged pods alone (hack/testbed.py).
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from hack import dataplane
from modelpilot.resources.labels import LABEL_MANAGED_BY, LABEL_TRACK, MANAGED_BY, selector_string
from tests.e2e.harness.nodes import NodeStates
from tests.e2e.harness.podstatus import is_ready, is_running, ready_status, terminal_status
from tests.e2e.harness.process import PodProcess, ProcessInfo, wait_stopped
from tests.e2e.harness.prometheus import PrometheusHub, write_targets
from tests.e2e.harness.template import is_job_pod, plan_pod, termination_log
from tests.support import REPO_ROOT

MANAGED_SELECTOR = selector_string({LABEL_MANAGED_BY: MANAGED_BY})
DEFAULT_BIN_DIR = REPO_ROOT / ".venv" / "bin"

Obj = dict[str, Any]


def _bindable(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def matches(selector: Mapping[str, str] | None, labels: Mapping[str, str]) -> bool:
    """A Service selector (equality on every key); an empty or missing one selects nothing."""
    return bool(selector) and all(labels.get(k) == v for k, v in (selector or {}).items())


@dataclass(frozen=True)
class PodView:
    """A pod as the API server last said, plus its process (None when it has none)."""

    name: str
    uid: str
    labels: dict[str, str]
    api_ready: bool
    process: ProcessInfo | None
    node: str | None = None
    partitioned: bool = False  # its node is not Ready: it serves locally, out of the cluster's sight

    @property
    def track(self) -> str:
        return self.labels.get(LABEL_TRACK, "")

    @property
    def serving(self) -> bool:
        """Ready in the API and its process answers its readiness probe: may take traffic."""
        return self.api_ready and self.process is not None and self.process.ready


class PodProcessBridge:
    """Runs the model-server processes of the modelpilot pods in `namespace`.

    api_client: a kubernetes ApiClient for the cluster.
    workdir: per-pod volumes and logs go under it (a temp dir by default).
    prometheus: a PrometheusHub whose target directory gets this bridge's file_sd file; or
        `targets_file` to write the file elsewhere; or neither (no scraping).
    bin_dir: the stand-in for the image: container commands are looked up here.
    reflect_readiness: write pod Ready conditions from the processes' readiness (see module doc).
    pvc_dirs: claim name -> host directory, for pods that mount a PersistentVolumeClaim.
    only_kwok_nodes: leave pods on nodes with a real kubelet alone (see _kwok_node).
    """

    def __init__(self, api_client: client.ApiClient, namespace: str, *, workdir: Path | None = None,
                 prometheus: PrometheusHub | None = None, targets_file: Path | None = None,
                 bin_dir: Path = DEFAULT_BIN_DIR, reflect_readiness: bool = True,
                 pvc_dirs: Mapping[str, Path] | None = None, poll_interval: float = 0.5,
                 grace: float = 10.0, label_selector: str = MANAGED_SELECTOR, only_kwok_nodes: bool = True) -> None:
        self.api = client.CoreV1Api(api_client)
        self.namespace = namespace
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix=f"bridge-{namespace}-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.targets_file = targets_file or (prometheus.target_file(namespace) if prometheus else None)
        self.bin_dir = bin_dir
        self.reflect_readiness = reflect_readiness
        self.pvc_dirs = dict(pvc_dirs or {})
        self.poll_interval = poll_interval
        self.grace = grace
        self.label_selector = label_selector
        self._wake = threading.Event()
        self.only_kwok_nodes = only_kwok_nodes
        self.nodes = NodeStates(self.api, on_change=self._wake.set, on_error=self._error)
        self._told_not_kwok: set[str] = set()
        self.events_path = self.workdir / "events.log"
        self._processes: dict[str, PodProcess] = {}  # pod name -> process
        self._node_of: dict[str, str | None] = {}  # pod name -> the node its process runs on
        self._stopping: list[PodProcess] = []  # stopped, maybe still holding their address
        self._labels: dict[str, dict[str, str]] = {}  # every pod name ever seen -> its labels
        self._pods: dict[str, Obj] = {}  # pod name -> last seen pod (dict, camelCase)
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._targets: list[tuple[str, dict[str, str]]] | None = None
        self._started_total = 0
        self.errors: list[str] = []

    # ------------------------------------------------------------------------------- public

    def start(self) -> PodProcessBridge:
        self.nodes.start()
        self._reconcile()
        for target, name in ((self._loop, "bridge-loop"), (self._watch, "bridge-watch")):
            thread = threading.Thread(target=target, name=f"{name}-{self.namespace}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        """Stop polling and every process (in parallel); empty the file_sd file."""
        self._stop.set()
        self._wake.set()
        self.nodes.stop()
        for thread in self._threads:
            # The watch ends at its next event or server timeout (<= 5 s); it only wakes the loop.
            thread.join(10 if thread.name.startswith("bridge-loop") else 0.1)
        with self._lock:
            processes = list(self._processes.values())
            self._processes.clear()
        for process in processes:
            process.stop()
        wait_stopped(processes, self.grace + 5)
        if self.targets_file is not None:
            with contextlib.suppress(OSError):
                write_targets(self.targets_file, [])

    def __enter__(self) -> PodProcessBridge:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def processes_left(self) -> int:
        """Processes running or still stopping (a deleted pod's process drains for up to `grace`)."""
        with self._lock:
            return len(self._processes) + sum(1 for p in self._stopping if not p.stopped)

    def registry(self) -> dict[str, ProcessInfo]:
        """Pod name -> its process (track, port, state, live, ready, reason, pid, log dir)."""
        with self._lock:
            return {name: p.info() for name, p in self._processes.items()}

    def pods(self) -> list[PodView]:
        """Every modelpilot pod of the namespace as last listed, with its process if any."""
        with self._lock:
            return [PodView(name=name, uid=pod["metadata"]["uid"], labels=dict(pod["metadata"].get("labels") or {}),
                            api_ready=is_ready(pod),
                            process=self._processes[name].info() if name in self._processes else None,
                            node=_node_name(pod), partitioned=self._cut_off(_node_name(pod)))
                    for name, pod in self._pods.items()]

    def labels_of(self, pod: str) -> dict[str, str] | None:
        """The labels of a pod seen at any time since start (also one deleted since)."""
        with self._lock:
            return self._labels.get(pod)

    def process(self, pod: str) -> PodProcess | None:
        with self._lock:
            return self._processes.get(pod)

    @property
    def started_total(self) -> int:
        """Processes started since the bridge started (restarted pods count again)."""
        return self._started_total

    def describe(self) -> str:
        """A readable summary for assertion messages: pods, processes, log locations."""
        lines = [f"bridge {self.namespace} (workdir {self.workdir}):"]
        for view in sorted(self.pods(), key=lambda v: v.name):
            proc = view.process
            what = (f"{proc.address} {proc.state} live={proc.live} ready={proc.ready}: {proc.reason}"
                    if proc else "no process")
            cut = " PARTITIONED" if view.partitioned else ""
            lines.append(f"  {view.name} [{view.track}] on {view.node}{cut} api_ready={view.api_ready} {what}")
        lines += [f"  error: {e}" for e in self.errors[-5:]]
        if self.events_path.exists():
            lines.append(f"  last events ({self.events_path}):")
            lines += [f"    {line}" for line in self.events_path.read_text().splitlines()[-12:]]
        return "\n".join(lines)

    # ------------------------------------------------------------------------------- internals

    def _log(self, message: str) -> None:
        stamp = dt.datetime.now().strftime("%H:%M:%S.%f")[:-3]
        with self.events_path.open("a") as f:
            f.write(f"{stamp} {message}\n")

    def _error(self, message: str) -> None:
        self.errors.append(message)
        self._log(f"ERROR {message}")

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.poll_interval)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self._reconcile()
            except Exception as err:  # the API may hiccup; the next round retries
                self._error(f"reconcile: {err!r}")

    def _watch(self) -> None:
        """Wakes the loop on every pod event, so kwok's Ready is overridden within milliseconds."""
        while not self._stop.is_set():
            w = watch.Watch()
            try:
                for _event in w.stream(self.api.list_namespaced_pod, self.namespace,
                                       label_selector=self.label_selector, timeout_seconds=5,
                                       _request_timeout=10):
                    self._wake.set()
                    if self._stop.is_set():
                        break
            except Exception:
                self._stop.wait(0.5)
            finally:
                w.stop()

    def _list(self) -> dict[str, Obj]:
        pods = self.api.list_namespaced_pod(self.namespace, label_selector=self.label_selector)
        raw = self.api.api_client.sanitize_for_serialization(pods)
        return {p["metadata"]["name"]: p for p in raw.get("items") or []}

    def _wanted(self, pod: Obj) -> bool:
        if not (is_running(pod) if self.reflect_readiness else is_ready(pod)):
            return False
        if not (pod.get("status") or {}).get("podIP"):
            return False
        return not self.only_kwok_nodes or self._kwok_node(_node_name(pod))

    def _kwok_node(self, node: str | None) -> bool:
        """Whether KWOK runs `node` (annotation kwok.x-k8s.io/node, on every test-bed node): on a
        node with a real kubelet (e.g. kind) the containers run for real and the bridge must stay out."""
        state = self.nodes.get(node) or self.nodes.read(node)
        if state is not None and not state.kwok and state.name not in self._told_not_kwok:
            self._told_not_kwok.add(state.name)
            self._log(f"node {state.name} is not a KWOK node: its pods are left to its kubelet")
        return state is not None and state.kwok

    def _cut_off(self, node: str | None) -> bool:
        """Whether `node` is known and not Ready: its kubelet cannot reach the API server."""
        state = self.nodes.get(node)
        return state is not None and not state.ready

    def _may_write(self, pod: Obj) -> bool:
        """Asked afresh before writing a pod's status: a cut-off kubelet writes nothing."""
        state = self.nodes.read(_node_name(pod))
        if state is not None and not state.ready:
            self._log(f"{pod['metadata']['name']}: node {state.name} not Ready: no status written")
            return False
        return True

    def _reconcile(self) -> None:
        pods = self._list()
        with self._lock:
            self._pods = pods
            self._labels.update({name: dict(p["metadata"].get("labels") or {}) for name, p in pods.items()})
            cut_off = {name for name in self._processes if self._cut_off(self._node_of.get(name))}
            for name, process in list(self._processes.items()):
                pod = pods.get(name)
                if name in cut_off:  # its kubelet sees no change: it keeps running what it ran
                    continue
                if pod is None or not self._wanted(pod) or pod["metadata"]["uid"] != process.plan.uid:
                    why = "gone" if pod is None else "not running/ready or replaced"
                    self._log(f"{name}: pod {why}; stopping its process")
                    process.stop()
                    self._stopping.append(process)
                    del self._processes[name]
                    self._node_of.pop(name, None)
            self._stopping = [p for p in self._stopping if not p.stopped]
            for name, pod in pods.items():
                if name not in self._processes and self._wanted(pod) and not self._cut_off(_node_name(pod)) \
                        and self._address_free(pod):
                    self._start(pod)
            processes = {n: p for n, p in self._processes.items() if n not in cut_off and n in pods}
        for name, process in processes.items():
            if is_job_pod(pods[name]):
                if process.state in ("exited", "failed") and (pods[name].get("status") or {}).get("phase") == "Running":
                    self._complete(pods[name], process)
            elif self.reflect_readiness:
                self._sync_ready(pods[name], process)
        # Partitioned pods are out of the central Prometheus's reach: no target.
        self._write_targets({n: p for n, p in processes.items() if not is_job_pod(pods[n])})

    def _address_free(self, pod: Obj) -> bool:
        """kwok hands a deleted pod's IP to the next pod at once, while the old pod's process
        (of this bridge or of another test's) may still drain on it: wait until it let go."""
        ip = str((pod.get("status") or {}).get("podIP"))
        if any(p.plan.host == ip for p in self._stopping):
            return False
        ports = [int(p["containerPort"]) for c in (pod.get("spec") or {}).get("containers") or []
                 for p in c.get("ports") or [] if p.get("containerPort")]
        return all(_bindable(ip, port) for port in ports)

    def _root(self, pod: Obj) -> Path:
        return self.workdir / f"{pod['metadata']['name']}-{pod['metadata']['uid'][:8]}"

    def _read_secret(self, name: str, key: str) -> str | None:
        """A kubelet resolving secretKeyRef: the key's value, None when the Secret or key is absent."""
        try:
            data = self.api.read_namespaced_secret(name, self.namespace).data or {}
        except ApiException as err:
            if err.status != 404:
                self._error(f"reading secret {name}: {err.status} {err.reason}")
            return None
        return base64.b64decode(data[key]).decode() if key in data else None

    def _start(self, pod: Obj) -> None:
        name = pod["metadata"]["name"]
        root = self._root(pod)
        if root.exists():
            shutil.rmtree(root, ignore_errors=True)
        # PYTHONPATH: the runtime must import the test models' classes (tests.support.testmodels).
        base_env = {"PATH": f"{self.bin_dir}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
                    "HOME": str(root), "LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(REPO_ROOT)}
        plan = plan_pod(pod, root=root, bin_dir=self.bin_dir, base_env=base_env, pvc_dirs=self.pvc_dirs,
                        secrets=self._read_secret)
        if plan.port in dataplane.RESERVED_PORTS:
            plan.problems.append(f"port {plan.port} is taken on every address by the test bed's gateway: "
                                 f"give the pods another port (spec.runtime.port: {dataplane.POD_PORT})")
        for note in plan.notes:
            self._log(f"{name}: note: {note}")
        for problem in plan.problems:
            self._log(f"{name}: template problem: {problem}")
        self._log(f"{name}: starting on {plan.host}:{plan.port}"
                  + (f": {' '.join(plan.server.argv)}" if plan.server else ""))
        process = PodProcess(plan, root / "logs", grace=self.grace, on_change=self._wake.set, event_log=self._log)
        self._processes[name] = process.start()
        self._node_of[name] = _node_name(pod)
        self._started_total += 1

    def _sync_ready(self, pod: Obj, process: PodProcess) -> None:
        """Make the pod's Ready/ContainersReady conditions say what the readiness probe says."""
        body = ready_status(pod, process)
        if body is None or not self._may_write(pod):
            return
        try:
            self.api.patch_namespaced_pod_status(pod["metadata"]["name"], self.namespace, body)
            self._log(f"{pod['metadata']['name']}: pod condition Ready={process.ready}")
        except ApiException as err:
            if err.status != 404:
                self._error(f"patch status of {pod['metadata']['name']}: {err.status} {err.reason}")

    def _complete(self, pod: Obj, process: PodProcess) -> None:
        """A Job pod's process ended: the pod becomes Succeeded or Failed, as a kubelet reports it."""
        if not self._may_write(pod):
            return
        body = terminal_status(pod, process, termination_log(self._root(pod)))
        try:
            self.api.patch_namespaced_pod_status(pod["metadata"]["name"], self.namespace, body)
            self._log(f"{pod['metadata']['name']}: exited {process.returncode}: pod {body['status']['phase']}")
        except ApiException as err:
            if err.status != 404:
                self._error(f"completing {pod['metadata']['name']}: {err.status} {err.reason}")

    def kill(self, pod: str) -> bool:
        """SIGKILL a pod's process (as if its container was killed mid-way); False when it has none."""
        process = self.process(pod)
        info = process.info() if process else None
        if info is None or info.pid is None:
            return False
        with contextlib.suppress(ProcessLookupError):
            os.killpg(info.pid, signal.SIGKILL)
        return True

    def _write_targets(self, processes: Mapping[str, PodProcess]) -> None:
        if self.targets_file is None:
            return
        # Like a PodMonitor, every pod with a process is a target from the start (a scrape fails
        # until it listens): Prometheus applies discovery changes only every 5 s, so registering
        # early means the server is scraped soon after it starts.
        targets = sorted((f"{p.plan.host}:{p.port}", {"namespace": self.namespace, "pod": name})
                         for name, p in processes.items() if p.plan.server is not None)
        if targets != self._targets:
            write_targets(self.targets_file, targets)
            self._targets = targets
            self._log(f"scrape targets: {[labels['pod'] for _, labels in targets]}")


def _node_name(pod: Obj) -> str | None:
    return (pod.get("spec") or {}).get("nodeName")


def wait_serving(bridge: PodProcessBridge, counts: Mapping[str, int], timeout: float = 90.0) -> list[PodView]:
    """Wait until exactly `counts[track]` pods of each given track are serving (API Ready and
    process ready); returns the serving pods."""
    deadline = time.monotonic() + timeout
    while True:
        serving = [v for v in bridge.pods() if v.serving]
        have = {track: sum(1 for v in serving if v.track == track) for track in counts}
        if have == dict(counts):
            return serving
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for serving pods {dict(counts)}, "
                                 f"have {have}\n{bridge.describe()}")
        time.sleep(0.25)
