"""The real data plane measured: traffic through Envoy Gateway and through a Service's ClusterIP
(kube-proxy) reaches exactly the pods the operator's objects say, counted by the pod that answered.
Needs the local test bed (its gateway and network namespace)."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from typing import Any

import pytest
from kubernetes import client

from modelpilot.routing import build_httproute
from tests.e2e import mdep
from tests.e2e.canary import Env, start_v1
from tests.e2e.harness import Request, fixtures
from tests.e2e.harness.fixtures import WorldFactory
from tests.e2e.support import ClusterHandle, wait_for
from tests.e2e.test_harness import (
    GATEWAY,
    NAME,
    OWNER,
    apply_canary,
    apply_stable,
    host_of,
    models,  # noqa: F401  (fixture)
    spec_of,
    unowned,
)

canary_world = fixtures.canary_world  # the harness's fixture


@pytest.fixture(autouse=True)
def _gateway(local_cluster: ClusterHandle) -> None:
    if local_cluster.gateway is None:
        pytest.skip("the test bed has no gateway")


def shares(requests: list[Request]) -> dict[str, float]:
    """Share per track of the requests a pod answered."""
    counts = Counter(r.track for r in requests if r.pod is not None)
    total = sum(counts.values())
    return {track: n / total for track, n in counts.items()}


def unanswered(requests: list[Request]) -> Counter[Any]:
    """Outcomes of the requests no pod answered (dropped by the client's in-flight bound on a
    loaded machine, or a connection error)."""
    return Counter(r.outcome for r in requests if r.pod is None)


def route_at(custom: client.CustomObjectsApi, namespace: str, spec: Any, weight: int) -> None:
    gateway = spec.rollout.canary.traffic_routing.gateway_api
    custom.create_namespaced_custom_object(*GATEWAY[:2], namespace, GATEWAY[2],
                                           unowned(build_httproute(NAME, namespace, OWNER, gateway, weight=weight)))


# ------------------------------------------------------------------------------------ the operator's canary


def test_gateway_canary_at_20_percent_then_promoted(env: Env) -> None:
    """Acceptance: weight 20 through envoy over 1,000 requests is 20 +/- 4 %; after promotion
    every request is answered by a pod of the new stable template."""
    host = f"fraud.{env.namespace}.test"
    start_v1(env, steps=(20,), gateway=host)
    env.world.loadgen.set_rate(100)
    env.set_version("v2", env.model("good2"))
    env.wait_canary(lambda c: int(c.get("weight") or 0) == 20, "the canary at weight 20")
    mdep.patch_spec(env.custom, env.namespace, "fraud", {"paused": True})  # hold the step while we measure
    env.world.wait_serving(stable=2, canary=1)
    env.world.wait_split({"stable": 0.8, "canary": 0.2}, tolerance=0.1, seconds=4)
    measured = env.world.measure(1000)
    split = shares(measured)
    print(f"weight 20 through envoy: {split} over {len(measured)} requests; unanswered {unanswered(measured)}")
    assert abs(split.get("canary", 0) - 0.20) <= 0.04, split
    assert sum(n for outcome, n in unanswered(measured).items() if outcome != "dropped") <= 50, unanswered(measured)

    mdep.patch_spec(env.custom, env.namespace, "fraud", {"paused": False})
    env.annotate("promote")
    env.wait_stable("v2")
    env.world.wait_serving(stable=2, canary=0)
    env.world.wait_split({"stable": 1.0}, tolerance=0.0, seconds=3)
    after = [r for r in env.world.measure(500) if r.outcome != "dropped"]
    assert {(r.track, r.version) for r in after} == {("stable", "v2")}, Counter((r.track, r.version) for r in after)


# ------------------------------------------------------------------------------------ the harness alone


def test_weight_zero_reaches_no_canary_pod(api_client: client.ApiClient, custom: client.CustomObjectsApi,
                                           solo_namespace: str, models: dict[str, str],  # noqa: F811
                                           canary_world: WorldFactory) -> None:
    ns = solo_namespace
    spec = spec_of(models["good"], "v1", replicas=2, gateway=host_of(ns))
    apply_stable(api_client, ns, spec)
    apply_canary(api_client, ns, spec_of(models["good"], "v2", gateway=host_of(ns)), replicas=2)
    route_at(custom, ns, spec, weight=0)
    world = canary_world(ns, NAME, rate=100)
    world.wait_serving(stable=2, canary=2)  # canary pods serving and in the EndpointSlices
    wait_for(lambda: world.loadgen.entry.kind == "gateway", what="requests through the gateway")
    world.wait_split({"stable": 1.0}, tolerance=0.0, seconds=2)
    measured = [r for r in world.measure(1000) if r.outcome != "dropped"]  # dropped: never sent
    assert len(measured) >= 900 and Counter(r.track for r in measured) == {"stable": len(measured)}
    assert world.loadgen.totals().get("canary") is None  # not one request, ever


def test_service_split_follows_ready_pods_within_5_points(api_client: client.ApiClient, solo_namespace: str,
                                                          models: dict[str, str],  # noqa: F811
                                                          canary_world: WorldFactory) -> None:
    """Acceptance: replicas mode through the ClusterIP, 3 stable + 1 canary pods -> 75/25 +/- 5."""
    ns = solo_namespace
    apply_stable(api_client, ns, spec_of(models["good"], "v1", replicas=3))
    apply_canary(api_client, ns, spec_of(models["good"], "v2"), replicas=1)
    world = canary_world(ns, NAME, rate=100)
    world.wait_serving(stable=3, canary=1)
    assert world.loadgen.wait_resolved().kind == "service"
    world.wait_split({"stable": 0.75, "canary": 0.25}, tolerance=0.1, seconds=4)
    measured = world.measure(1000)
    split = shares(measured)
    print(f"3 stable + 1 canary through the ClusterIP: {split} over {len(measured)} requests; "
          f"unanswered {unanswered(measured)}")
    assert abs(split.get("canary", 0) - 0.25) <= 0.05, split
    assert sum(n for outcome, n in unanswered(measured).items() if outcome != "dropped") <= 50, unanswered(measured)


def test_a_pod_that_is_not_ready_gets_no_traffic(api_client: client.ApiClient, custom: client.CustomObjectsApi,
                                                 solo_namespace: str, models: dict[str, str],  # noqa: F811
                                                 canary_world: WorldFactory) -> None:
    """A canary whose model cannot load listens but is not Ready: envoy never sends it a request,
    though the route gives it half (envoy answers that half itself or gives it to stable)."""
    ns = solo_namespace
    spec = spec_of(models["good"], "v1", gateway=host_of(ns))
    apply_stable(api_client, ns, spec)
    apply_canary(api_client, ns, spec_of(models["corrupt"], "v2", gateway=host_of(ns)), replicas=1)
    route_at(custom, ns, spec, weight=50)
    world = canary_world(ns, NAME, rate=60)
    world.wait_serving(stable=1)
    broken = wait_for(lambda: next((p for p in world.bridge.pods() if p.track == "canary" and p.process
                                    and p.process.live and "loading" not in p.process.reason), None),
                      timeout=60, what="the canary listening, its model failed")
    assert not broken.api_ready
    measured = world.measure(400)
    assert broken.name not in {r.pod for r in measured}
    assert {r.track for r in measured} <= {"stable", "none"}
    assert {r.outcome for r in measured if r.track == "none"} <= {503, "dropped"}
    assert {r.outcome for r in measured if r.track == "stable"} == {200}


def test_a_stopped_process_leaves_the_gateway_within_5_seconds(
        api_client: client.ApiClient, custom: client.CustomObjectsApi, solo_namespace: str,
        models: dict[str, str], canary_world: WorldFactory) -> None:  # noqa: F811
    ns = solo_namespace
    spec = spec_of(models["good"], "v1", replicas=2, gateway=host_of(ns))
    apply_stable(api_client, ns, spec)
    route_at(custom, ns, spec, weight=0)
    world = canary_world(ns, NAME, rate=100)
    pods = world.wait_serving(stable=2)
    wait_for(lambda: world.loadgen.entry.kind == "gateway", what="requests through the gateway")
    world.wait_split({"stable": 1.0}, tolerance=0.0, seconds=2)
    victim = pods[0]
    assert victim.process is not None and victim.process.pid is not None
    stopped_at = time.monotonic()
    os.kill(victim.process.pid, signal.SIGKILL)
    # Every request sent from 5 s after the kill on is answered, and by the other pod only.
    wait_for(lambda: [r for r in world.loadgen.requests() if r.sent_at > stopped_at + 7 and r.outcome], timeout=30,
             what="requests sent 7 s after the kill")
    # "dropped" never left the load generator (its in-flight bound on a loaded machine).
    late = [r for r in world.loadgen.requests() if r.sent_at > stopped_at + 5 and r.outcome not in (None, "dropped")]
    failed = [r for r in world.loadgen.requests() if r.sent_at > stopped_at and r.outcome != 200]
    print(f"stopped process left after {max((r.sent_at for r in failed), default=stopped_at) - stopped_at:.2f}s "
          f"({len(failed)} failed requests)")
    assert late and all(r.outcome == 200 and r.pod == pods[1].name for r in late), Counter(
        (r.pod, r.outcome) for r in late)
