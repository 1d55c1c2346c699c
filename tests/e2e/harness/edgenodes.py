"""Edge nodes for e2e tests: cut a KWOK node off from the control plane and bring it back, through
the kubernetes Python client, with the same patches as `hack/testbed.py node-down|node-up`
(hack/edgenodes.py has the semantics).

    with disconnected(core, "edge-03"):      # kwok lets go: Ready Unknown, pods not Ready
        ...                                  # the bridge keeps the pod's process, drops its target
    # reconnected: Ready again (kwok's node-initialize stage)

Disconnecting a node affects every test with pods on it: tests that do run in the xdist group
"edge" (`pytest.mark.xdist_group("edge")`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from hack.edgenodes import (
    LEASE_HOLDER,
    LEASE_NAMESPACE,
    UNREACHABLE_TAINT,
    is_disconnected,
    is_kwok_node,
    lease_expired,
    lease_taken,
    marked,
    node_ready,
    now,
    pod_not_ready_status,
    pod_ready_again_status,
    settle_unknown,
)

Obj = dict[str, Any]


def read_node(core: client.CoreV1Api, name: str) -> Obj:
    return dict(json.loads(core.read_node(name, _preload_content=False).data))


def ready(core: client.CoreV1Api, name: str) -> str | None:
    """The node's Ready condition status: "True", "False", "Unknown" (None without one)."""
    return node_ready(read_node(core, name))


def taints(core: client.CoreV1Api, name: str) -> set[tuple[str, str]]:
    """(key, effect) of the node's taints."""
    return {(t["key"], t["effect"]) for t in (read_node(core, name).get("spec") or {}).get("taints") or []}


def unreachable(core: client.CoreV1Api, name: str) -> bool:
    """Whether the node lifecycle controller has tainted the node unreachable (NoExecute)."""
    return (UNREACHABLE_TAINT, "NoExecute") in taints(core, name)


def disconnect_node(core: client.CoreV1Api, name: str) -> list[str]:
    """Cut node `name` off: kwok loses its Lease, Ready Unknown, its pods' Ready False. Returns
    the pods marked not Ready (namespace/name). Idempotent."""
    node = read_node(core, name)
    if is_disconnected(node):
        return []
    if not is_kwok_node(node):
        raise ValueError(f"node {name} is not a KWOK node: only kwok's nodes can be disconnected")
    when = now()
    client.CoordinationV1Api(core.api_client).patch_namespaced_lease(name, LEASE_NAMESPACE, lease_taken())
    core.patch_node(name, marked(when))
    settle_unknown(lambda: read_node(core, name), lambda body: core.patch_node_status(name, body), when)
    return _patch_pods(core, name, lambda pod: pod_not_ready_status(pod, when))


def _patch_pods(core: client.CoreV1Api, node: str, status: Callable[[Obj], Obj | None]) -> list[str]:
    """Patch the status of each pod on `node` that `status(pod)` gives a patch for; returns them
    (namespace/name)."""
    patched = []
    for pod in core.list_pod_for_all_namespaces(field_selector=f"spec.nodeName={node}").items:
        body = status(core.api_client.sanitize_for_serialization(pod))
        if body is None:
            continue
        try:
            core.patch_namespaced_pod_status(pod.metadata.name, pod.metadata.namespace, body)
            patched.append(f"{pod.metadata.namespace}/{pod.metadata.name}")
        except ApiException as err:
            if err.status != 404:  # deleted meanwhile: nothing to patch
                raise
    return patched


def reconnect_node(core: client.CoreV1Api, name: str, timeout: float = 60.0) -> None:
    """Give node `name` back to kwok; returns once it is Ready (kwok retries a Lease it does not
    hold every 10 s, so this takes up to ~10 s). Idempotent."""
    leases = client.CoordinationV1Api(core.api_client)
    if leases.read_namespaced_lease(name, LEASE_NAMESPACE).spec.holder_identity == LEASE_HOLDER:
        leases.patch_namespaced_lease(name, LEASE_NAMESPACE, lease_expired())
    deadline = time.monotonic() + timeout
    while (status := ready(core, name)) != "True":
        if time.monotonic() > deadline:
            raise AssertionError(f"node {name} not Ready {timeout:.0f}s after reconnecting: Ready={status}")
        time.sleep(0.2)
    core.patch_node(name, marked(None))
    when = now()
    _patch_pods(core, name, lambda pod: pod_ready_again_status(pod, when))


@contextmanager
def disconnected(core: client.CoreV1Api, name: str, timeout: float = 60.0) -> Iterator[list[str]]:
    """The node cut off inside the block (yields the pods marked not Ready), reconnected after it
    whatever happens, so a failing test never leaves a node down for the next one."""
    marked = disconnect_node(core, name)
    try:
        yield marked
    finally:
        reconnect_node(core, name, timeout)
