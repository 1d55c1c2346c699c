"""Target Edge end to end on the test bed's fleet of 20 KWOK edge nodes: one real model-server
process per edge pod (the bridge), a real Prometheus scraping them, the operator choosing the
canary's nodes, and the real DaemonSet controller and scheduler placing the pods.

Traffic is what each device's local clients send: straight to that device's pod (the load
generator's local mode), never through a gateway. Disconnecting a node (harness.edgenodes) is a
partition: the node goes NotReady, its pod keeps serving locally, and Prometheus stops seeing it.
The tests share the fleet, so they run one at a time in the xdist group "edge".
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from hack import dataplane
from hack.testbed import EDGE_NODES
from modelpilot.api.models import API_VERSION, KIND
from modelpilot.resources.labels import LABEL_TRACK, LABEL_VERSION
from tests.e2e import mdep
from tests.e2e.canary import Env, open_env
from tests.e2e.harness.edgenodes import disconnected
from tests.e2e.harness.world import CanaryWorld
from tests.e2e.support import ClusterHandle, wait_for
from tests.support import testmodels

pytestmark = [pytest.mark.xdist_group("edge"), pytest.mark.alone]

NAME = "fraud"
FLEET = len(EDGE_NODES)
RATE = 80.0  # requests/s over the whole fleet: 4/s per device


def edge_spec(uri: str, version: str, fmt: str = "onnx", *, batches: tuple[int, ...] = (5, 25, 100),
              min_nodes: int = 1, failure_threshold: int = 2) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": NAME},
            "spec": {"target": "Edge", "model": {"version": version, "uri": uri, "format": fmt},
                     "runtime": dataplane.bridged_runtime(),
                     "edge": {"rollout": {"batches": list(batches), "interval": "5s", "maxUnavailable": "25%",
                                          "minNodes": min_nodes}},
                     "rollout": {"canary": {"initialDelay": "5s", "failureThreshold": failure_threshold,
                                            "progressDeadline": "180s", "analysis": {"minRequests": 10}}}}}


@pytest.fixture
def env(local_cluster: ClusterHandle, crd: str, canary_world: Callable[..., CanaryWorld],
        custom: client.CustomObjectsApi, apps: client.AppsV1Api, core: client.CoreV1Api, solo_namespace: str,
        tmp_path: Path) -> Iterator[Env]:
    world = canary_world(solo_namespace, NAME, rate=RATE, local=True, grace=2.0)
    yield from open_env(local_cluster, world, custom, apps, core, solo_namespace, tmp_path)


def edge(env: Env) -> dict[str, Any]:
    return dict((env.get().get("status") or {}).get("edge") or {})


def onnx_model(env: Env) -> str:
    """The iris model converted to ONNX (what edge devices run), as a new file:// URI each time."""
    return f"file://{testmodels.write_onnx(env.models / f'onnx-{len(list(env.models.iterdir()))}')}"


def start_fleet(env: Env, fmt: str = "onnx", **kw: Any) -> None:
    uri = onnx_model(env) if fmt == "onnx" else env.model("good")
    mdep.create(env.custom, env.namespace, edge_spec(uri, "v1", fmt, **kw))
    mdep.wait_condition(env.custom, env.namespace, NAME, "Ready", "True", timeout=180)
    assert len(edge(env)["servingStable"]) == FLEET
    env.world.wait_serving(stable=FLEET, timeout=120)


def watch_fleet(env: Env, until: Callable[[dict[str, Any]], bool], what: str,
                timeout: float = 300) -> list[dict[str, Any]]:
    """status.edge and status.canary every 0.3 s until `until(status)`; every distinct snapshot."""
    seen: list[dict[str, Any]] = []

    def check() -> bool:
        status = env.get().get("status") or {}
        snapshot = {"edge": status.get("edge") or {}, "canary": status.get("canary") or {},
                    "stable": status.get("stable") or {}}
        if not seen or seen[-1] != snapshot:
            seen.append(snapshot)
        return until(status)
    try:
        wait_for(check, timeout=timeout, interval=0.3, what=what)
    except AssertionError as err:
        raise AssertionError(f"{err}\nlast: {seen[-1:]}\n{env.debug()}") from None
    return seen


def promoted(version: str) -> Callable[[dict[str, Any]], bool]:
    def check(status: dict[str, Any]) -> bool:
        ready = next((c for c in status.get("conditions") or [] if c["type"] == "Ready"), {})
        return (status.get("stable") or {}).get("version") == version and not status.get("canary") and \
            ready.get("status") == "True"
    return check


def versions_by_node(env: Env) -> dict[str, set[str]]:
    pods = env.core.list_namespaced_pod(env.namespace).items
    out: dict[str, set[str]] = {}
    for pod in pods:
        if pod.metadata.deletion_timestamp is None and pod.spec.node_name:
            out.setdefault(pod.spec.node_name, set()).add(
                f"{pod.metadata.labels[LABEL_TRACK]}:{pod.metadata.labels[LABEL_VERSION]}")
    return out


def wait_versions(env: Env, track_version: str, timeout: float = 120) -> None:
    """Until every node of the fleet has exactly one live pod, of `track:version`."""
    def check() -> bool:
        versions = versions_by_node(env)
        return len(versions) == FLEET and all(v == {track_version} for v in versions.values())
    wait_for(check, timeout=timeout, what=f"every node running one {track_version} pod")


def node_marks(core: client.CoreV1Api) -> dict[str, Any]:
    """What a controller could have written to the fleet's nodes (labels, annotations, taints)."""
    return {n: (dict(core.read_node(n).metadata.labels or {}), core.read_node(n).spec.taints and sorted(
        t.key for t in core.read_node(n).spec.taints)) for n in EDGE_NODES}


# ------------------------------------------------------------------------------------ acceptance


def test_a_new_version_goes_to_one_node_then_five_then_all(env: Env) -> None:
    marks = node_marks(env.core)
    start_fleet(env)
    assert set(versions_by_node(env)) == set(EDGE_NODES)
    assert all(v == {"stable:v1"} for v in versions_by_node(env).values())
    env.set_version("v2", onnx_model(env))
    seen = watch_fleet(env, promoted("v2"), "v2 promoted over the whole fleet")
    sizes = [len(s["edge"].get("canaryNodes") or []) for s in seen if s["canary"].get("state") == "Progressing"]
    batches = [(s["edge"].get("batch"), s["edge"].get("batchNodes")) for s in seen if s["edge"].get("batch")]
    assert [b for i, b in enumerate(batches) if i == 0 or batches[i - 1] != b] == [(1, 1), (2, 5), (3, 20)], batches
    assert sizes and max(sizes) == FLEET and sizes == sorted(sizes), sizes  # the set only widened
    # An analysis passed between batches: one per batch at least, all passing.
    analyses = max((s["canary"].get("analyses") or [] for s in seen), key=len)
    assert analyses and all(a["verdict"] == "Pass" for a in analyses), analyses
    steps = {s["canary"].get("step") for s in seen if s["canary"].get("state") == "Progressing"}
    assert {0, 1, 2} <= steps, steps
    # Every device ends with one pod, the stable DaemonSet's, serving v2; no canary DaemonSet.
    env.world.wait_serving(stable=FLEET, canary=0, timeout=120)
    wait_versions(env, "stable:v2")
    assert env.apps.list_namespaced_daemon_set(env.namespace).items[0].metadata.name == NAME
    assert len(env.apps.list_namespaced_daemon_set(env.namespace).items) == 1
    assert node_marks(env.core) == marks  # no node was written to
    reasons = env.wait_reasons("Promoted")
    assert "RolledBack" not in reasons


def test_a_version_failing_on_30_percent_of_inputs_stops_at_the_first_batch(env: Env) -> None:
    # The failing model is a scikit-learn one (a wrapper that errors on 30 % of rows), so both
    # versions are: every device's clients then send the same inputs to either.
    start_fleet(env, fmt="sklearn")
    env.set_version("v2", env.model("failing", error_ratio=0.3))
    seen = watch_fleet(env, lambda s: (s.get("canary") or {}).get("state") == "RolledBack", "rollback")
    assert max(len(s["edge"].get("canaryNodes") or []) for s in seen) == 1
    canary = env.canary()
    fails = [a for a in canary["analyses"] if a["metric"] == "error-rate" and a["verdict"] == "Fail"]
    assert len(fails) == 2 and all(a["value"] > 10 for a in fails), canary["analyses"]
    assert canary["step"] == 0
    ready = mdep.condition(env.get(), "Ready")
    assert ready and ready["reason"] == "RolledBack"
    # Every node returns to stable v1, and the canary's DaemonSet is gone.
    watch_fleet(env, lambda s: len((s.get("edge") or {}).get("servingStable") or []) == FLEET, "all stable")
    env.world.wait_serving(stable=FLEET, canary=0, timeout=120)
    assert [d.metadata.name for d in env.apps.list_namespaced_daemon_set(env.namespace).items] == [NAME]
    assert edge(env)["canaryNodes"] == []
    wait_versions(env, "stable:v1")


def test_disconnected_canary_nodes_neither_fail_nor_hold_the_batch(env: Env) -> None:
    start_fleet(env, batches=(25, 100), min_nodes=3)
    env.set_version("v2", onnx_model(env))
    env.wait_canary(lambda c: c.get("readyAt") is not None, "first batch Ready", timeout=180)
    first = edge(env)["canaryNodes"]
    assert len(first) == 5
    lost = first[:2]
    with contextlib.ExitStack() as stack:
        for node in lost:
            stack.enter_context(disconnected(env.core, node))
        cut_at = dt.datetime.now(dt.UTC)
        seen = watch_fleet(env, lambda s: sorted((s.get("edge") or {}).get("unreachable") or []) == sorted(lost),
                           "the two nodes reported unreachable")
        assert edge(env)["reporting"] == 3
        # The batch goes on: a passing analysis after the cut widens it, and the rollout completes
        # with the two nodes still away (they keep their pods; they count neither way).
        seen += watch_fleet(env, promoted("v2"), "v2 promoted with two nodes disconnected")
        passed_after = [a for s in seen for a in s["canary"].get("analyses") or []
                        if a["verdict"] == "Pass" and dt.datetime.fromisoformat(
                            a["time"].replace("Z", "+00:00")) > cut_at]
        assert passed_after, seen[-1]
        assert not any(s["canary"].get("state") == "RolledBack" for s in seen)
        assert any(len(s["edge"].get("canaryNodes") or []) == FLEET for s in seen)
        assert sorted(edge(env)["unreachable"]) == sorted(lost)
        assert len(edge(env)["servingStable"]) == FLEET - 2
    # Back online: the two devices get the stable v2 pod too.
    watch_fleet(env, lambda s: len((s.get("edge") or {}).get("servingStable") or []) == FLEET, "all 20 stable")
    wait_versions(env, "stable:v2")
    assert "RolledBack" not in env.reasons()
