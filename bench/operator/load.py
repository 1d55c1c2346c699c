"""The load: N ModelDeployments created at once (operator runs), or the children an operator would
write for them applied directly (the floor), from a pool of threads."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from kubernetes.client.exceptions import ApiException

from bench.operator.kube import GROUP, VERSION, Api, md_path, object_path
from modelpilot.api.models import parse_spec
from modelpilot.resources import desired_children

FLOOR_MANAGER = "modelpilot-bench-floor"


def md_body(name: str) -> dict[str, Any]:
    """A minimal valid ModelDeployment: one sklearn replica, default everything else (KWOK makes
    its pod Running and Ready; nothing serves)."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "ModelDeployment", "metadata": {"name": name},
        "spec": {"model": {"version": "v1", "uri": f"file:///models/{name}", "format": "sklearn"}, "replicas": 1},
    }


def floor_children(name: str, namespace: str) -> list[dict[str, Any]]:
    """What the operator would write for `md_body(name)`, built by the operator's own builders,
    without the owner reference (no ModelDeployment exists to own them)."""
    body = md_body(name)
    owner = {"apiVersion": body["apiVersion"], "kind": body["kind"], "name": name,
             "uid": "00000000-0000-0000-0000-000000000000"}
    children = desired_children(parse_spec(body["spec"]), name=name, namespace=namespace, owner=owner)
    children = copy.deepcopy(children)
    for child in children:
        child["metadata"].pop("ownerReferences", None)
    return children


@dataclass
class Load:
    """What the creating threads saw: per object, when its first request was sent (`sent`) and
    when its create (or, for the floor, its Deployment's apply) returned (`created`)."""

    sent: dict[str, float] = field(default_factory=dict)
    created: dict[str, float] = field(default_factory=dict)
    finished: dict[str, float] = field(default_factory=dict)  # every request of the object returned
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def first_sent(self) -> float:
        return min(self.sent.values(), default=0.0)

    @property
    def last_created(self) -> float:
        return max(self.created.values(), default=0.0)

    @property
    def last_finished(self) -> float:
        return max(self.finished.values(), default=0.0)


def _run(names: list[str], concurrency: int, one: Callable[[str, Load], None]) -> Load:
    load = Load()

    def task(name: str) -> None:
        try:
            one(name, load)
        except ApiException as err:
            load.errors[name] = f"{err.status} {err.reason}: {(err.body or '')[:300]}"
        except Exception as err:
            load.errors[name] = repr(err)

    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="load") as pool:
        list(pool.map(task, names))
    return load


def create_modeldeployments(api: Api, namespace: str, names: list[str], concurrency: int) -> Load:
    """POST one ModelDeployment per name, `concurrency` requests in flight."""
    path = md_path(namespace)

    def one(name: str, load: Load) -> None:
        body = md_body(name)
        load.sent[name] = time.time()
        api.request("POST", path, body=body)
        load.created[name] = load.finished[name] = time.time()

    return _run(names, concurrency, one)


def apply_children(api: Api, namespace: str, names: list[str], concurrency: int) -> Load:
    """Server-side apply of each name's children (Deployment first, then its Services)."""
    bodies = {name: floor_children(name, namespace) for name in names}

    def one(name: str, load: Load) -> None:
        load.sent[name] = time.time()
        for child in bodies[name]:
            api.apply(child, object_path(child), FLOOR_MANAGER)
            if child["kind"] == "Deployment":
                load.created[name] = time.time()
        load.finished[name] = time.time()

    return _run(names, concurrency, one)
