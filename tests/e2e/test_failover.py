"""Two operator replicas with leader election, as the chart runs them: exactly one acts; when it
dies a standby takes the Lease over within 15 s, and the rollout in flight resumes from the status
the dead leader wrote, without a step taken twice or cut short."""

from __future__ import annotations

import datetime as dt
import itertools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tests.e2e.canary import INTERVAL, SCRAPE, Env, start_v1
from tests.e2e.harness.world import CanaryWorld
from tests.e2e.operator import OperatorProcess
from tests.e2e.support import ClusterHandle, wait_for

LEASE = "modelpilot-failover"
TAKEOVER_SECONDS = 15  # the promise: a standby acts within this of the leader's death


@dataclass
class Replicas:
    env: Env
    first: OperatorProcess
    second: OperatorProcess
    coordination: client.CoordinationV1Api

    def holder(self) -> str:
        try:
            lease = self.coordination.read_namespaced_lease(LEASE, self.env.namespace)
        except client.ApiException as err:
            if err.status == 404:
                return ""
            raise
        return lease.spec.holder_identity or ""


@pytest.fixture
def replicas(local_cluster: ClusterHandle, crd: str, canary_world: Callable[..., CanaryWorld],
             custom: client.CustomObjectsApi, apps: client.AppsV1Api, core: client.CoreV1Api, solo_namespace: str,
             api_client: client.ApiClient, tmp_path: Path) -> Iterator[Replicas]:
    world = canary_world(solo_namespace, "fraud", rate=50.0)
    extra = {**world.operator_env(), "MODELPILOT_SCRAPE_INTERVAL": str(SCRAPE), "MODELPILOT_QUERY_TIMEOUT": "2",
             "MODELPILOT_LEADER_ELECTION": "true", "MODELPILOT_LEADER_ELECTION_NAMESPACE": solo_namespace,
             "MODELPILOT_LEADER_ELECTION_ID": LEASE}

    def replica(name: str) -> OperatorProcess:
        return OperatorProcess(kubeconfig=local_cluster.kubeconfig, namespaces=[solo_namespace],
                               log_path=tmp_path / f"operator-{name}.log", resync_seconds=5, extra_env=extra)

    first = replica("a").start()  # the Lease is free: it leads at once
    second = replica("b").start(started="waiting to lead")
    models = tmp_path / "models"
    models.mkdir()
    yield Replicas(Env(solo_namespace, world, first, custom, apps, core, models), first, second,
                   client.CoordinationV1Api(api_client))
    for proc in (first, second):
        proc.stop()


def _seconds(stamp: str) -> dt.datetime:
    return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def test_standby_takes_over_a_dead_leader_and_the_rollout_resumes_without_a_double_step(
        replicas: Replicas) -> None:
    env, leader, standby = replicas.env, replicas.first, replicas.second
    start_v1(env, steps=(20, 40, 60))
    leader_identity = replicas.holder()
    assert leader_identity and f"acquired by {leader_identity}" in leader.logs()
    # The standby waits without acting: Kopf never started there, so it has not read or written a thing.
    assert "modelpilot started" not in standby.logs() and "waiting to lead" in standby.logs()

    steps: dict[int, str] = {}  # step -> lastProgressAt, as the status showed them

    def at_step(wanted: int) -> Callable[[dict[str, Any]], bool]:
        def probe(canary: dict[str, Any]) -> bool:
            if canary.get("step") is not None and canary.get("lastProgressAt"):
                steps.setdefault(int(canary["step"]), canary["lastProgressAt"])
            return int(canary.get("step") if canary.get("step") is not None else -1) >= wanted
        return probe

    env.set_version("v2", env.model("good2"))
    env.wait_canary(at_step(1), "the second step (40 %)")
    leader.kill()
    killed = time.monotonic()
    taken = wait_for(lambda: replicas.holder() not in ("", leader_identity) and replicas.holder(),
                     timeout=TAKEOVER_SECONDS + 1, interval=0.2, what="the standby holding the Lease")
    took = time.monotonic() - killed
    assert took <= TAKEOVER_SECONDS, f"takeover after {took:.1f}s"
    assert f"acquired by {taken}" in standby.logs()
    wait_for(lambda: "modelpilot started" in standby.logs(), timeout=30, what="the new leader started")

    # The rollout goes on from the dead leader's status: through 60 % to promotion.
    env.operator = standby
    env.wait_canary(at_step(2), "the third step (60 %), under the new leader", timeout=120)
    env.wait_stable("v2")
    assert sorted(s for s in steps if s >= 0) == [0, 1, 2], steps  # -1: waiting for the canary's readiness
    # No step cut short: each began at least one analysis interval after the one before.
    starts = [_seconds(steps[i]) for i in (0, 1, 2)]
    gaps = [(later - earlier).total_seconds() for earlier, later in itertools.pairwise(starts)]
    assert all(gap >= INTERVAL - 1 for gap in gaps), gaps  # -1: the timestamps have whole seconds
    advanced = env.reasons().count("StepAdvanced")
    assert advanced <= 2, env.reasons()  # one Event per step, never two (the dead leader's may be lost)
