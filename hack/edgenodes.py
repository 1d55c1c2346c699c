"""Disconnecting a KWOK node from the control plane, as an edge device loses its link.

A real edge node that loses its uplink keeps running its pods, but its kubelet can no longer post
node status or renew its Lease. After `--node-monitor-grace-period` the node lifecycle controller
(kube-controller-manager) marks the node's conditions Unknown ("Kubelet stopped posting node
status."), marks its pods' Ready condition False and taints the node
`node.kubernetes.io/unreachable` (NoSchedule, and NoExecute at its next node-monitor period).
DaemonSet pods tolerate the NoExecute taint without a time limit, so nothing evicts them.

kwok is the kubelet of every test-bed node (kwokctl runs it with `--manage-all-nodes=true`: the
annotation `kwok.x-k8s.io/node` changes nothing). It treats a node whose Lease
(kube-node-lease/<node>) another holder has as not its own: it stops renewing the Lease and writes
nothing for the node or its pods. `disconnect_node` does at once what the grace period would do
(200 s on the test bed):

1. takes the node's Lease from kwok: holder `modelpilot-testbed-disconnected`, renewed now, for a
   day; and marks the node `testbed.modelpilot.io/disconnected: <when>`;
2. writes what the node lifecycle controller writes when the grace period runs out: Ready,
   MemoryPressure, DiskPressure and PIDPressure Unknown, reason NodeStatusUnknown. kwok's Lease
   cache may lag the node's update by a moment and answer with its node-initialize stage (Ready
   True): the write is repeated until it holds. (The test bed runs kwok without its node
   heartbeat stage: a heartbeat scheduled before the cut would still fire and write Ready True.)
3. marks the node's pods' Ready condition False, as the controller's MarkPodsNotReady does. The
   controller does that only when *it* sees Ready leave True, never for a node whose Ready another
   client already set Unknown, hence this step.

The controller then adds the unreachable taints by itself: NoSchedule on the node's update,
NoExecute within its node-monitor period (5 s on the test bed). A pod deleted meanwhile stays
Terminating, as behind a real partition. `reconnect_node` expires the Lease: kwok takes it over at
its next try (it retries every lease duration / 4 = 10 s), manages the node and its pods again
(its node-initialize stage makes the node Ready; terminating pods go) and the controller removes
the taints. A kubelet back in touch posts its pods' Ready again; kwok's stages never revisit a
running pod, so `reconnect_node` does it for pods the controller's way of marking left behind
(Ready False, ContainersReady True). The e2e bridge does the same for the pods it runs.

Functions take a `kubectl` callable, `kubectl(*args, input=None, check=True)` returning a
CompletedProcess with stdout (testbed.Cluster.kubectl, the e2e suite's ClusterHandle.kubectl).
The patch builders are shared with the e2e harness (tests/e2e/harness/edgenodes.py), which does
the same through the kubernetes Python client.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import time
from collections.abc import Callable
from typing import Any

Kubectl = Callable[..., subprocess.CompletedProcess[str]]
Obj = dict[str, Any]

KWOK_ANNOTATION = "kwok.x-k8s.io/node"
# Marks a node disconnected on purpose: `hack/testbed.py up` reconnects one a test left down.
DISCONNECTED_ANNOTATION = "testbed.modelpilot.io/disconnected"
LEFT_DOWN_SECONDS = 900  # no test keeps a node down this long: one cut off longer was left behind
UNKNOWN_REASON = "NodeStatusUnknown"
UNKNOWN_MESSAGE = "Kubelet stopped posting node status."
# The conditions the node lifecycle controller sets Unknown (NetworkUnavailable is not its to set).
UNKNOWN_CONDITIONS = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")
UNREACHABLE_TAINT = "node.kubernetes.io/unreachable"
LEASE_NAMESPACE = "kube-node-lease"
LEASE_HOLDER = "modelpilot-testbed-disconnected"  # not kwok: kwok leaves the node alone
LEASE_SECONDS = 86400  # kwok takes an expired Lease back: this one lasts until reconnect_node
SETTLE_SECONDS = 0.5  # kwok answers a node update it still thinks its own within milliseconds


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def micro_now() -> str:
    """Now as a Lease's renewTime (MicroTime)."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def is_kwok_node(node: Obj) -> bool:
    """Whether kwok runs the node's pods (a real kubelet's node, e.g. kind's, lacks the annotation)."""
    annotations = (node.get("metadata") or {}).get("annotations") or {}
    return KWOK_ANNOTATION in annotations or DISCONNECTED_ANNOTATION in annotations


def is_disconnected(node: Obj) -> bool:
    return DISCONNECTED_ANNOTATION in ((node.get("metadata") or {}).get("annotations") or {})


def node_ready(node: Obj) -> str | None:
    """The node's Ready condition status ("True", "False", "Unknown"), None without one."""
    for cond in (node.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return str(cond.get("status"))
    return None


def marked(when: str | None) -> Obj:
    """Merge patch of the node's metadata: disconnected since `when`, or (None) not any more."""
    return {"metadata": {"annotations": {DISCONNECTED_ANNOTATION: when}}}


def lease_taken() -> Obj:
    """Merge patch of the node's Lease: held by someone other than kwok, renewed now, for a day."""
    return {"spec": {"holderIdentity": LEASE_HOLDER, "leaseDurationSeconds": LEASE_SECONDS, "renewTime": micro_now()}}


def lease_expired() -> Obj:
    """Merge patch of the node's Lease: expired, so kwok takes it over (and the node with it)."""
    return {"spec": {"leaseDurationSeconds": 1}}


def unknown_status(node: Obj, when: str) -> Obj:
    """Strategic-merge status patch (conditions merge by type): what the node lifecycle controller
    writes when the grace period runs out. The heartbeat time stays the last real one."""
    conditions = []
    for cond in (node.get("status") or {}).get("conditions") or []:
        if cond.get("type") in UNKNOWN_CONDITIONS and cond.get("status") != "Unknown":
            conditions.append({"type": cond["type"], "status": "Unknown", "reason": UNKNOWN_REASON,
                               "message": UNKNOWN_MESSAGE, "lastTransitionTime": when})
    return {"status": {"conditions": conditions}}


def pod_not_ready_status(pod: Obj, when: str) -> Obj | None:
    """Status patch setting a pod's Ready condition False, like the controller's MarkPodsNotReady
    (Ready only; ContainersReady stays); None when it is not True."""
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready" and cond.get("status") == "True":
            return {"status": {"conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": when}]}}
    return None


def pod_ready_again_status(pod: Obj, when: str) -> Obj | None:
    """Status patch of a kubelet back in touch for a pod marked not Ready behind its back (Ready
    False while ContainersReady is True: only MarkPodsNotReady leaves that pair): Ready True.
    None for any other pod (terminating, not running, with readiness gates, not marked)."""
    if (pod.get("metadata") or {}).get("deletionTimestamp") or (pod.get("spec") or {}).get("readinessGates"):
        return None
    status = pod.get("status") or {}
    conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
    marked_pair = conditions.get("Ready") == "False" and conditions.get("ContainersReady") == "True"
    if status.get("phase") != "Running" or not marked_pair:
        return None
    return {"status": {"conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": when}]}}


def settle_unknown(read: Callable[[], Obj], write: Callable[[Obj], None], when: str, tries: int = 10) -> None:
    """Write Ready Unknown (`write(patch)`) until the node (`read()`) still says so a moment later."""
    for _ in range(tries):
        node = read()
        if node_ready(node) != "Unknown":
            write(unknown_status(node, when))
        time.sleep(SETTLE_SECONDS)
        if node_ready(read()) == "Unknown":
            return
    raise RuntimeError(f"kwok kept setting the node Ready after {tries} tries")


def _get(kubectl: Kubectl, *args: str) -> Obj:
    return dict(json.loads(kubectl("get", *args, "-o", "json").stdout))


def disconnect_node(kubectl: Kubectl, name: str) -> str:
    """Cut node `name` off (see the module doc); returns what was done. Idempotent."""
    node = _get(kubectl, "node", name)
    if is_disconnected(node):
        return f"node {name} is already disconnected"
    if not is_kwok_node(node):
        raise ValueError(f"node {name} is not a KWOK node: only kwok's nodes can be disconnected")
    when = now()
    kubectl("patch", "lease", name, "-n", LEASE_NAMESPACE, "--type=merge", "-p", json.dumps(lease_taken()))
    kubectl("patch", "node", name, "--type=merge", "-p", json.dumps(marked(when)))
    settle_unknown(lambda: _get(kubectl, "node", name),
                   lambda body: kubectl("patch", "node", name, "--subresource=status", "--type=strategic", "-p",
                                        json.dumps(body)), when)
    count, total = _patch_pods(kubectl, name, lambda pod: pod_not_ready_status(pod, when))
    return f"node {name} disconnected: Ready Unknown, {count} of {total} pods marked not Ready"


def _patch_pods(kubectl: Kubectl, node: str, status: Callable[[Obj], Obj | None]) -> tuple[int, int]:
    """Patch the status of each pod on `node` that `status(pod)` gives a patch for: (patched, pods)."""
    pods = _get(kubectl, "pods", "--all-namespaces", "--field-selector", f"spec.nodeName={node}")["items"]
    count = 0
    for pod in pods:
        body = status(pod)
        if body is not None:
            meta = pod["metadata"]
            # A pod deleted meanwhile is no error: there is nothing to patch.
            done = kubectl("patch", "pod", meta["name"], "-n", meta["namespace"], "--subresource=status",
                           "--type=strategic", "-p", json.dumps(body), check=False)
            count += done.returncode == 0
    return count, len(pods)


def reconnect_node(kubectl: Kubectl, name: str, timeout: float = 60.0) -> str:
    """Give node `name` back to kwok and wait until it is Ready again. Idempotent."""
    holder = kubectl("get", "lease", name, "-n", LEASE_NAMESPACE, "-o", "jsonpath={.spec.holderIdentity}").stdout
    if holder == LEASE_HOLDER:
        kubectl("patch", "lease", name, "-n", LEASE_NAMESPACE, "--type=merge", "-p", json.dumps(lease_expired()))
    kubectl("wait", "--for=condition=Ready", f"--timeout={int(timeout)}s", f"node/{name}")
    kubectl("patch", "node", name, "--type=merge", "-p", json.dumps(marked(None)))
    when = now()
    count, _ = _patch_pods(kubectl, name, lambda pod: pod_ready_again_status(pod, when))
    return f"node {name} reconnected: Ready, {count} pods Ready again"


def disconnected(kubectl: Kubectl, older_than: float = 0.0) -> list[str]:
    """Names of the nodes disconnect_node cut off at least `older_than` seconds ago and nobody
    reconnected."""
    horizon = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=older_than)
    return sorted(n["metadata"]["name"] for n in _get(kubectl, "nodes")["items"]
                  if is_disconnected(n) and _since(n) <= horizon)


def _since(node: Obj) -> dt.datetime:
    """When the node was disconnected (long ago when the mark cannot be read)."""
    text = str(node["metadata"]["annotations"][DISCONNECTED_ANNOTATION])
    try:
        return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    except ValueError:
        return dt.datetime.min.replace(tzinfo=dt.UTC)
