"""What the bridge knows of nodes: whether each is Ready and whether KWOK runs it, kept current by
a watch on the nodes (they change rarely: on the test bed the heartbeats are Lease renewals,
other objects), so asking costs nothing.

An edge node cut off from the control plane (hack/edgenodes.py) is not Ready: its kubelet keeps
its containers running but can reach nothing, so the bridge asks here before acting for a pod.
Right before it writes a pod's status it asks the API server itself (`read`): a disconnect may
have happened since the watch last told.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from hack.edgenodes import is_kwok_node, node_ready

Obj = dict[str, Any]


@dataclass(frozen=True)
class NodeState:
    name: str
    ready: bool  # condition Ready is True: its kubelet reaches the API server
    kwok: bool  # KWOK runs it (also while disconnected on purpose), no real kubelet


def state_of(node: Obj) -> NodeState:
    return NodeState(name=str(node["metadata"]["name"]), ready=node_ready(node) == "True", kwok=is_kwok_node(node))


class NodeStates:
    """The cluster's nodes, listed once by `start()` and then watched until `stop()`.

    on_change: called (from the watch thread) when a node's readiness or KWOK-ness changes.
    on_error: told about API errors (the watch retries by itself).
    """

    def __init__(self, api: client.CoreV1Api, *, on_change: Callable[[], None] | None = None,
                 on_error: Callable[[str], None] | None = None) -> None:
        self.api = api
        self._on_change = on_change or (lambda: None)
        self._on_error = on_error or (lambda _msg: None)
        self._states: dict[str, NodeState] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._version = ""

    def start(self) -> NodeStates:
        self._relist()
        self._thread = threading.Thread(target=self._watch, name="bridge-nodes", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(0.1)  # ends at its next event or server timeout (<= 5 s)

    def get(self, name: str | None) -> NodeState | None:
        """The node as last seen (None: unknown to the watch, or no name)."""
        if not name:
            return None
        with self._lock:
            return self._states.get(name)

    def read(self, name: str | None) -> NodeState | None:
        """The node as the API server has it now (None: no such node, or it cannot say)."""
        if not name:
            return None
        try:
            raw = self.api.read_node(name, _preload_content=False)
        except ApiException as err:
            if err.status != 404:
                self._on_error(f"reading node {name}: {err.status} {err.reason}")
            return None
        state = state_of(json.loads(raw.data))
        self._set(state)
        return state

    def _set(self, state: NodeState) -> None:
        with self._lock:
            changed = self._states.get(state.name) != state
            self._states[state.name] = state
        if changed:
            self._on_change()

    def _relist(self) -> None:
        raw = json.loads(self.api.list_node(_preload_content=False).data)
        states = {s.name: s for s in map(state_of, raw.get("items") or [])}
        with self._lock:
            changed, self._states = self._states != states, states
        self._version = str((raw.get("metadata") or {}).get("resourceVersion") or "")
        if changed:
            self._on_change()

    def _watch(self) -> None:
        while not self._stop.is_set():
            w = watch.Watch()
            try:
                for event in w.stream(self.api.list_node, resource_version=self._version, timeout_seconds=5,
                                      _request_timeout=10):
                    node = event["raw_object"]
                    self._version = str(node["metadata"].get("resourceVersion") or self._version)
                    if event["type"] == "DELETED":
                        with self._lock:
                            self._states.pop(node["metadata"]["name"], None)
                    elif event["type"] in ("ADDED", "MODIFIED"):
                        self._set(state_of(node))
                    if self._stop.is_set():
                        break
            except Exception as err:  # 410 Gone, a dropped connection: list again
                if not self._stop.is_set():
                    self._on_error(f"node watch: {err!r}")
                    self._stop.wait(0.5)
                    self._relist_quietly()
            finally:
                w.stop()

    def _relist_quietly(self) -> None:
        try:
            self._relist()
        except Exception as err:
            self._on_error(f"listing nodes: {err!r}")
