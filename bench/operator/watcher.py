"""The watches that time everything, in a process of their own (so the threads creating objects
never delay an event's timestamp): Deployments and ModelDeployments in one namespace.

The process puts `(mark, name, wall_time)` tuples on a queue, each at most once per object:
- `deploy`: the Deployment was first seen (its ADDED event),
- `deploy_ready`: the Deployment first had all its replicas ready (observed generation current),
- `ready`: the ModelDeployment first had condition Ready=True,
and `("watching", resource, t)` once each watch is established.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import queue as queues
import threading
import time
from collections.abc import Callable, Iterator
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from typing import Any

from kubernetes.client.exceptions import ApiException

from bench.operator.kube import Api, deployments_path, md_path

Handler = Callable[[dict[str, Any], float], None]


def _deployment_ready(obj: dict[str, Any]) -> bool:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    generation = (obj.get("metadata") or {}).get("generation", 0)
    wanted = spec.get("replicas", 1)
    return (status.get("observedGeneration", 0) >= generation
            and status.get("readyReplicas", 0) >= wanted and status.get("updatedReplicas", 0) >= wanted)


def _md_ready(obj: dict[str, Any]) -> bool:
    status = obj.get("status") or {}
    generation = (obj.get("metadata") or {}).get("generation", 0)
    if status.get("observedGeneration", generation) < generation:
        return False
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])


class _Marks:
    """First-time marks, sent once each."""

    def __init__(self, queue: Queue[tuple[str, str, float]]) -> None:
        self.queue = queue
        self.seen: set[tuple[str, str]] = set()

    def mark(self, kind: str, name: str, at: float) -> None:
        if (kind, name) not in self.seen:
            self.seen.add((kind, name))
            self.queue.put((kind, name, at))


def _watch(api: Api, path: str, resource: str, handle: Handler, marks: _Marks, stop: Event) -> None:
    """List, then watch from the list's resourceVersion; resume after timeouts, relist after 410."""
    rv = ""
    announced = False
    while not stop.is_set():
        if not rv:
            listed = api.request("GET", path)
            now = time.time()
            for item in listed["items"]:
                handle(item, now)
            rv = listed["metadata"]["resourceVersion"]
        query = [("resourceVersion", rv), ("allowWatchBookmarks", "true"), ("timeoutSeconds", "300")]
        try:
            events = api.stream(path, query, timeout=330)
            if not announced:
                marks.mark("watching", resource, time.time())
                announced = True
            for event in events:
                now = time.time()
                obj = event.get("object") or {}
                if event.get("type") == "ERROR":
                    if obj.get("code") == 410:
                        rv = ""  # too old: relist
                    break
                rv = (obj.get("metadata") or {}).get("resourceVersion", rv)
                if event.get("type") in ("ADDED", "MODIFIED"):
                    handle(obj, now)
                if stop.is_set():
                    return
        except ApiException as err:
            if err.status == 410:
                rv = ""
            else:
                time.sleep(1)
        except Exception:  # a dropped connection: resume from the last resourceVersion
            time.sleep(0.5)


def run(kubeconfig: str | None, namespace: str, queue: Queue[tuple[str, str, float]], stop: Event) -> None:
    """The watcher process's entry point: returns once `stop` is set."""
    api = Api(kubeconfig, pool=4)
    marks = _Marks(queue)

    def on_deployment(obj: dict[str, Any], at: float) -> None:
        name = obj["metadata"]["name"]
        marks.mark("deploy", name, at)
        if _deployment_ready(obj):
            marks.mark("deploy_ready", name, at)

    def on_md(obj: dict[str, Any], at: float) -> None:
        if _md_ready(obj):
            marks.mark("ready", obj["metadata"]["name"], at)

    for path, resource, handler in ((deployments_path(namespace), "deployments", on_deployment),
                                    (md_path(namespace), "modeldeployments", on_md)):
        threading.Thread(target=_watch, args=(api, path, resource, handler, marks, stop), daemon=True).start()
    stop.wait()


# --------------------------------------------------------------------------------------------
# The bench's side
# --------------------------------------------------------------------------------------------

class Timeline:
    """The marks received so far: mark -> name -> wall time."""

    def __init__(self, source: Queue[tuple[str, str, float]]) -> None:
        self.source = source
        self.marks: dict[str, dict[str, float]] = {k: {} for k in ("watching", "deploy", "deploy_ready", "ready")}

    def drain(self, timeout: float = 0.0) -> None:
        """Take every mark queued now, waiting up to `timeout` for the first one."""
        try:
            kind, name, at = self.source.get(timeout=timeout) if timeout > 0 else self.source.get_nowait()
            self.marks[kind][name] = at
            while True:
                kind, name, at = self.source.get_nowait()
                self.marks[kind][name] = at
        except queues.Empty:
            pass

    def missing(self, kind: str, names: list[str]) -> list[str]:
        self.drain()
        return [n for n in names if n not in self.marks[kind]]

    def wait(self, kind: str, names: list[str], deadline: float,
             progress: Callable[[], None] | None = None, every: float = 10.0) -> bool:
        """Wait until every name has mark `kind` or the monotonic `deadline` passes."""
        wanted = set(names)
        shown = time.monotonic()
        while not wanted <= self.marks[kind].keys():
            if time.monotonic() > deadline:
                return False
            self.drain(timeout=0.2)
            if progress is not None and time.monotonic() - shown >= every:
                progress()
                shown = time.monotonic()
        return True


@contextlib.contextmanager
def watching(kubeconfig: str | None, namespace: str, timeout: float = 60) -> Iterator[Timeline]:
    """Run the watcher process for `namespace` while the block runs; both watches are established
    when the block starts."""
    context = multiprocessing.get_context("spawn")
    marks: Queue[tuple[str, str, float]] = context.Queue()
    stop = context.Event()
    process = context.Process(target=run, args=(kubeconfig, namespace, marks, stop), name="watcher", daemon=True)
    process.start()
    timeline = Timeline(marks)
    try:
        if not timeline.wait("watching", ["deployments", "modeldeployments"], time.monotonic() + timeout):
            raise RuntimeError(f"the watches on {namespace} did not start within {timeout}s")
        yield timeline
    finally:
        timeline.drain()
        stop.set()
        process.join(10)
        if process.is_alive():
            process.terminate()
            process.join(5)
