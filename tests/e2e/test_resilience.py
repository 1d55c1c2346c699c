"""The canary when its surroundings fail: a Prometheus too slow to answer, a query Prometheus
refuses, and the ModelDeployment deleted in the middle of a canary. Real model servers, a real
Prometheus (behind the tests' fault proxy where a fault is injected), a real operator process."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kubernetes import client

from modelpilot.api.models import GROUP, PLURAL, VERSION
from modelpilot.resources.labels import LABEL_NAME
from tests.e2e import mdep
from tests.e2e.canary import NAME, SCRAPE, Env, start_v1
from tests.e2e.harness.faultproxy import Fault, FaultProxy
from tests.e2e.harness.world import CanaryWorld
from tests.e2e.operator import OperatorProcess
from tests.e2e.support import ClusterHandle, wait_for

QUERY_TIMEOUT = 2  # seconds (MODELPILOT_QUERY_TIMEOUT)
QUERIES = r"^/api/v1/query"


@pytest.fixture
def proxied(local_cluster: ClusterHandle, crd: str, canary_world: Callable[..., CanaryWorld],
            custom: client.CustomObjectsApi, apps: client.AppsV1Api, core: client.CoreV1Api, solo_namespace: str,
            tmp_path: Path) -> Iterator[tuple[Env, FaultProxy]]:
    """The canary scenario with the operator querying Prometheus through the fault proxy."""
    world = canary_world(solo_namespace, NAME, rate=50.0)
    proxy = FaultProxy(world.prometheus.url).start()
    operator = OperatorProcess(kubeconfig=local_cluster.kubeconfig, namespaces=[solo_namespace],
                               log_path=tmp_path / "operator.log", resync_seconds=5,
                               extra_env={"MODELPILOT_PROMETHEUS_URL": proxy.url,
                                          "MODELPILOT_SCRAPE_INTERVAL": str(SCRAPE),
                                          "MODELPILOT_QUERY_TIMEOUT": str(QUERY_TIMEOUT)}).start()
    models = tmp_path / "models"
    models.mkdir()
    yield Env(solo_namespace, world, operator, custom, apps, core, models), proxy
    operator.stop()
    proxy.stop()


def test_slow_prometheus_is_a_provider_error_and_the_canary_waits(proxied: tuple[Env, FaultProxy]) -> None:
    env, proxy = proxied
    start_v1(env, maxProviderErrors=10, onProviderError="Rollback")
    env.set_version("v2", env.model("good2"))
    env.wait_canary(lambda c: c.get("step", -1) >= 0, "canary Ready")
    slow = proxy.inject(Fault(path=QUERIES, delay=QUERY_TIMEOUT * 3))
    errored = env.wait_canary(lambda c: c.get("providerErrors", 0) >= 2, "two provider errors (query timeouts)")
    assert errored["step"] == 0 and errored["state"] == "Progressing" and errored.get("failedChecks", 0) == 0
    last = errored["analyses"][-1]
    assert last["verdict"] == "Error" and "timed out" in last["detail"].lower(), last
    proxy.clear(slow)
    promoted = env.wait_stable("v2")
    assert promoted["status"]["stable"]["version"] == "v2"
    assert "RolledBack" not in env.reasons()


def test_query_prometheus_refuses_is_invalid_spec_not_a_rollback(env: Env) -> None:
    """A custom query that passes the operator's syntax check but this Prometheus answers with HTTP
    400 (a function newer PromQL has, which this Prometheus does not enable): reported as
    InvalidSpec; the healthy canary is not rolled back, and goes on once the query is fixed."""
    good = 'sum(rate(modelpilot_requests_total{namespace="{{namespace}}", code=~"5.."}[{{window}}])) or vector(0)'
    bad = f'sort_by_label({good}, "namespace")'
    start_v1(env, metrics=[{"name": "error-rate", "max": 1}, {"name": "custom-errors", "query": bad, "max": 100}])
    env.set_version("v2", env.model("good2"))
    obj = mdep.wait_condition(env.custom, env.namespace, NAME, "Ready", "False", reason="InvalidSpec", timeout=120)
    ready = mdep.condition(obj, "Ready")
    assert ready and "rejected by the metric provider" in ready["message"] and "custom-errors" in ready["message"]
    canary = env.canary()
    assert canary.get("state") != "RolledBack" and canary.get("failedChecks", 0) == 0, canary
    env.wait_reasons("InvalidSpec")
    mdep.patch_spec(env.custom, env.namespace, NAME, {"rollout": {"canary": {"analysis": {"metrics": [
        {"name": "error-rate", "max": 1}, {"name": "custom-errors", "query": good, "max": 100}]}}}})
    env.wait_stable("v2")
    assert "RolledBack" not in env.reasons()


def test_deleted_mid_canary_leaves_no_children_and_nothing_polling(proxied: tuple[Env, FaultProxy]) -> None:
    env, proxy = proxied
    start_v1(env)
    env.set_version("v2", env.model("good2"))
    env.wait_canary(lambda c: c.get("step", -1) >= 0 and c.get("analyses"), "the canary analysed once")
    env.custom.delete_namespaced_custom_object(GROUP, VERSION, env.namespace, PLURAL, NAME)
    selector = f"{LABEL_NAME}={NAME}"

    def children() -> list[str]:
        found = [f"deployment/{d.metadata.name}" for d in
                 env.apps.list_namespaced_deployment(env.namespace, label_selector=selector).items]
        found += [f"service/{s.metadata.name}" for s in
                  env.core.list_namespaced_service(env.namespace, label_selector=selector).items]
        return found

    wait_for(lambda: not children(), timeout=60, what="every child garbage-collected")
    # Nothing polls for it any more: the operator forgot it, and once an analysis that was in flight
    # has ended, no query reaches Prometheus over two analysis intervals and more.
    wait_for(lambda: f"{env.namespace}/{NAME} deleted: forgotten" in env.operator.logs(), timeout=30,
             what="the operator forgot the ModelDeployment")
    wait_for(lambda: time.monotonic() - max((s.at for s in proxy.seen(path=QUERIES)), default=0) > 3,
             timeout=30, what="no query for 3 s")
    quiet_from = len(proxy.seen(path=QUERIES))
    deadline = time.monotonic() + 12
    while time.monotonic() < deadline:
        assert len(proxy.seen(path=QUERIES)) == quiet_from, "a query after the ModelDeployment was deleted"
        time.sleep(0.5)
