"""API server faults between the operator and the API server, injected by the tests' fault proxy:
throttling (429 with Retry-After), server errors (500, 503), conflicts (409) and a watch stream
that stalls without closing. The operator runs against the proxy; the tests talk to the API server
directly."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from tests.e2e import mdep
from tests.e2e.harness.faultproxy import Fault, FaultProxy, Seen
from tests.e2e.operator import OperatorProcess
from tests.e2e.support import ClusterHandle, wait_for

WATCH_TIMEOUT = 10  # MODELPILOT_WATCH_TIMEOUT of the tests' operators
RESYNC = 5
WATCH_GRACE = 5  # the operator gives a stalled stream up this long after the watch timeout


@pytest.fixture
def proxy(cluster: ClusterHandle) -> Iterator[FaultProxy]:
    with FaultProxy.for_kubeconfig(cluster.kubeconfig) as running:
        yield running


@pytest.fixture
def operator(proxy: FaultProxy, crd: str, solo_namespace: str, tmp_path: Path) -> Iterator[OperatorProcess]:
    """An operator of this namespace that reaches the API server only through the proxy."""
    proc = OperatorProcess(kubeconfig=proxy.write_kubeconfig(tmp_path / "proxied.kubeconfig"),
                           namespaces=[solo_namespace], log_path=tmp_path / "operator.log",
                           resync_seconds=RESYNC,
                           extra_env={"MODELPILOT_WATCH_TIMEOUT": str(WATCH_TIMEOUT)}).start()
    yield proc
    proc.stop()


def gaps(attempts: list[Seen]) -> list[float]:
    return [later.at - earlier.at for earlier, later in itertools.pairwise(attempts)]


def settled(proxy: FaultProxy, method: str, path: str, answered: int) -> list[Seen]:
    """The requests to `path` once `answered` of them got an answer, the last a success."""
    def done() -> list[Seen] | None:
        seen = [s for s in proxy.seen(method, path) if s.status is not None]
        return seen if len(seen) >= answered and seen[answered - 1].status is not None and \
            seen[answered - 1].status < 300 else None
    return wait_for(done, timeout=60, what=f"{answered} answers to {method} {path}")


def test_throttled_writes_wait_as_long_as_retry_after_says(proxy: FaultProxy, operator: OperatorProcess,
                                                           custom: client.CustomObjectsApi,
                                                           apps: client.AppsV1Api, solo_namespace: str) -> None:
    path = rf"/namespaces/{solo_namespace}/deployments/thr$"
    proxy.inject(Fault.kube_status(429, "TooManyRequests", "slow down", headers={"Retry-After": "2"},
                                   method="PATCH", path=path, times=2))
    mdep.create(custom, solo_namespace, mdep.simple("thr"))
    attempts = settled(proxy, "PATCH", path, 3)[:3]
    assert [a.status for a in attempts[:2]] == [429, 429] and attempts[2].status in (200, 201)
    assert all(gap >= 1.9 for gap in gaps(attempts)), gaps(attempts)  # Retry-After: 2
    mdep.wait_condition(custom, solo_namespace, "thr", "Ready", "True", timeout=60)
    assert operator.process is not None and operator.process.poll() is None


def test_server_errors_are_retried_with_backoff(proxy: FaultProxy, operator: OperatorProcess,
                                                custom: client.CustomObjectsApi, solo_namespace: str) -> None:
    path = rf"/namespaces/{solo_namespace}/modeldeployments/srv/status$"
    proxy.inject(Fault.kube_status(500, "InternalError", "etcd hiccup", method="PATCH", path=path, times=1))
    proxy.inject(Fault.kube_status(503, "ServiceUnavailable", "try again", method="PATCH", path=path, times=1))
    mdep.create(custom, solo_namespace, mdep.simple("srv"))
    attempts = settled(proxy, "PATCH", path, 3)[:3]
    assert [a.status for a in attempts[:2]] == [500, 503] and attempts[2].status in (200, 201)
    assert all(gap >= 0.15 for gap in gaps(attempts)), gaps(attempts)  # backed off, not hammered
    mdep.wait_condition(custom, solo_namespace, "srv", "Ready", "True", timeout=60)
    assert "-> 500; retrying" in operator.logs() and "-> 503; retrying" in operator.logs()


def test_conflicts_are_retried_within_a_second(proxy: FaultProxy, operator: OperatorProcess,
                                               custom: client.CustomObjectsApi, core: client.CoreV1Api,
                                               solo_namespace: str) -> None:
    path = rf"/namespaces/{solo_namespace}/services/cfl-stable$"
    proxy.inject(Fault.kube_status(409, "Conflict", "the object has been modified", method="PATCH", path=path,
                                   times=2))
    mdep.create(custom, solo_namespace, mdep.simple("cfl"))
    attempts = settled(proxy, "PATCH", path, 3)[:3]
    assert [a.status for a in attempts[:2]] == [409, 409] and attempts[2].status in (200, 201)
    assert attempts[2].at - attempts[0].at < 1.0, gaps(attempts)
    core.read_namespaced_service("cfl-stable", solo_namespace)


def test_a_stalled_watch_is_reestablished_within_the_watch_timeout(
        proxy: FaultProxy, operator: OperatorProcess, custom: client.CustomObjectsApi, apps: client.AppsV1Api,
        solo_namespace: str) -> None:
    watches = rf"/namespaces/{solo_namespace}/modeldeployments$"
    wait_for(lambda: [s for s in proxy.seen("GET", watches) if s.watch], timeout=30, what="the operator's watch")
    # The stream open now (or, if it ends first, the next one) delivers nothing more, and never closes.
    stall = proxy.inject(Fault(method="GET", path=watches, query="watch=", stall=True, times=1))
    created = time.monotonic()
    mdep.create(custom, solo_namespace, mdep.simple("stl"))
    wait_for(lambda: stall.hits, timeout=WATCH_TIMEOUT + 5, what="the stream stalled")

    def deployed() -> bool:
        return bool(apps.list_namespaced_deployment(solo_namespace, field_selector="metadata.name=stl").items)

    # Noticed through a new stream: at most the watch timeout, the grace and one resync later.
    wait_for(deployed, timeout=WATCH_TIMEOUT + WATCH_GRACE + RESYNC + 5, interval=0.2,
             what="the ModelDeployment seen despite the stalled watch")
    took = time.monotonic() - created
    reopened = [s for s in proxy.seen("GET", watches) if s.watch and s.at > created and not s.fault]
    assert reopened, "the operator opened a new watch"
    assert took <= WATCH_TIMEOUT + WATCH_GRACE + RESYNC + 5


def test_throttled_listing_at_start_waits_as_long_as_retry_after_says(
        proxy: FaultProxy, crd: str, custom: client.CustomObjectsApi, apps: client.AppsV1Api, solo_namespace: str,
        tmp_path: Path) -> None:
    """Kopf's own requests (the initial listing of the watches) honour Retry-After too."""
    lists = rf"/namespaces/{solo_namespace}/modeldeployments$"
    proxy.inject(Fault.kube_status(429, "TooManyRequests", "slow down", headers={"Retry-After": "2"},
                                   method="GET", path=lists, times=2))
    mdep.create(custom, solo_namespace, mdep.simple("lst"))
    proc = OperatorProcess(kubeconfig=proxy.write_kubeconfig(tmp_path / "proxied.kubeconfig"),
                           namespaces=[solo_namespace], log_path=tmp_path / "operator.log",
                           resync_seconds=RESYNC, extra_env={"MODELPILOT_WATCH_TIMEOUT": str(WATCH_TIMEOUT)}).start()
    try:
        attempts = settled(proxy, "GET", lists, 3)[:3]
        assert [a.status for a in attempts[:2]] == [429, 429] and attempts[2].status == 200
        assert all(gap >= 1.9 for gap in gaps(attempts)), gaps(attempts)
        wait_for(lambda: apps.list_namespaced_deployment(solo_namespace, field_selector="metadata.name=lst").items,
                 timeout=60, what="the ModelDeployment reconciled after the throttled listing")
    finally:
        proc.stop()
