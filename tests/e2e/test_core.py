"""The operator core against the real control plane: analyses never hold up reconciles, the scale
subresource (kubectl scale, an HPA that targets a ModelDeployment)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from hack import audit, testbed
from modelpilot.api.models import API_VERSION, KIND, SHORT_NAMES
from modelpilot.resources.labels import scale_selector
from tests.e2e import mdep
from tests.e2e.helm import service_account_kubeconfig
from tests.e2e.operator import OperatorProcess
from tests.e2e.support import ClusterHandle, wait_for

CANARY = {"rollout": {"canary": {"steps": [50], "interval": "5s", "initialDelay": "5s",
                                 "analysis": {"minRequests": 0}}}}


class HangingPrometheus:
    """An HTTP server that accepts every query and answers none of them for `hang` seconds."""

    def __init__(self, hang: float) -> None:
        self.hang = hang
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.waiting = 0  # queries received and not answered yet
        self.answered = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # closed
            threading.Thread(target=self._hold, args=(conn,), daemon=True).start()

    def _hold(self, conn: socket.socket) -> None:
        with self._lock:
            self.waiting += 1
        try:
            self._stop.wait(self.hang)
            conn.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        except OSError:
            pass
        finally:
            conn.close()
            with self._lock:
                self.waiting -= 1
                self.answered += 1

    def close(self) -> None:
        self._stop.set()
        self.sock.close()


@pytest.fixture
def hanging_prometheus() -> Iterator[HangingPrometheus]:
    server = HangingPrometheus(hang=60)
    yield server
    server.close()


def deployment_exists(apps: client.AppsV1Api, namespace: str, name: str) -> bool:
    try:
        apps.read_namespaced_deployment(name, namespace)
        return True
    except ApiException as err:
        if err.status == 404:
            return False
        raise


def test_a_hanging_prometheus_never_delays_other_reconciles(
        cluster: ClusterHandle, custom: client.CustomObjectsApi, apps: client.AppsV1Api, solo_namespace: str,
        hanging_prometheus: HangingPrometheus, tmp_path: Path) -> None:
    """Six canaries whose analyses all hang on Prometheus (60 s per query) and only four reconcile
    workers: a ModelDeployment created meanwhile gets its children before any analysis returns."""
    own = OperatorProcess(
        kubeconfig=cluster.kubeconfig, namespaces=[solo_namespace], log_path=tmp_path / "operator.log",
        extra_env={"MODELPILOT_PROMETHEUS_URL": f"http://127.0.0.1:{hanging_prometheus.port}",
                   "MODELPILOT_QUERY_TIMEOUT": "90", "MODELPILOT_WORKERS": "4"}).start()
    try:
        names = [f"slow-{i}" for i in range(6)]
        for name in names:
            mdep.create(custom, solo_namespace, mdep.simple(name, **CANARY))
        for name in names:
            mdep.wait_condition(custom, solo_namespace, name, "Ready", "True")
        for name in names:
            mdep.patch_spec(custom, solo_namespace, name, {"model": {"version": "v2"}})
        # State, not time: every canary is Ready and its first analysis is stuck on Prometheus.
        wait_for(lambda: hanging_prometheus.waiting >= len(names) or None, timeout=120)
        assert hanging_prometheus.answered == 0

        created = time.monotonic()
        mdep.create(custom, solo_namespace, mdep.simple("fresh"))
        wait_for(lambda: deployment_exists(apps, solo_namespace, "fresh") or None, timeout=30, interval=0.05)
        took = time.monotonic() - created
        print(f"children of a new ModelDeployment while {hanging_prometheus.waiting} analyses hang: {took:.2f}s")
        # Behaviour, not a stopwatch: every query hangs 60 s, so children made before any answer
        # came back were not queued behind an analysis.
        assert hanging_prometheus.answered == 0, "the new children must not wait for any analysis"
        mdep.wait_condition(custom, solo_namespace, "fresh", "Ready", "True")
    finally:
        own.stop()


def kubectl_json(cluster: ClusterHandle, *args: str) -> dict[str, Any]:
    return dict(json.loads(cluster.kubectl(*args, "-o", "json").stdout))


def deployment_replicas(apps: client.AppsV1Api, namespace: str, name: str) -> int | None:
    return apps.read_namespaced_deployment(name, namespace).spec.replicas


@pytest.mark.usefixtures("operator")
def test_kubectl_scale_and_an_hpa_that_targets_the_modeldeployment(
        cluster: ClusterHandle, custom: client.CustomObjectsApi, apps: client.AppsV1Api, namespace: str) -> None:
    mdep.create(custom, namespace, mdep.simple("scaled", replicas=1))
    mdep.wait_condition(custom, namespace, "scaled", "Ready", "True")
    scale = kubectl_json(cluster, "get", SHORT_NAMES[0], "scaled", "-n", namespace, "--subresource=scale")
    assert scale["kind"] == "Scale" and scale["status"]["selector"] == scale_selector("scaled")
    assert scale["spec"]["replicas"] == 1

    cluster.kubectl("scale", SHORT_NAMES[0], "scaled", "-n", namespace, "--replicas=3")
    wait_for(lambda: deployment_replicas(apps, namespace, "scaled") == 3 or None, timeout=60)

    # An HPA with minReplicas above the current count scales up without any metric: it reads the
    # ModelDeployment's scale subresource (selector included) and writes spec.replicas through it.
    hpa = {
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "scaled-hpa", "namespace": namespace},
        "spec": {"scaleTargetRef": {"apiVersion": API_VERSION, "kind": KIND, "name": "scaled"},
                 "minReplicas": 4, "maxReplicas": 6,
                 "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                                                               "target": {"type": "Utilization",
                                                                          "averageUtilization": 50}}}]},
    }
    client.AutoscalingV2Api(apps.api_client).create_namespaced_horizontal_pod_autoscaler(namespace, hpa)

    def hpa_read_the_scale() -> bool | None:
        status = kubectl_json(cluster, "get", "hpa", "scaled-hpa", "-n", namespace).get("status") or {}
        able = next((c for c in status.get("conditions") or [] if c["type"] == "AbleToScale"), None)
        return (able is not None and able["status"] == "True") or None

    wait_for(hpa_read_the_scale, timeout=90)
    wait_for(lambda: deployment_replicas(apps, namespace, "scaled") == 4 or None, timeout=90)
    assert (mdep.get(custom, namespace, "scaled") or {})["spec"]["replicas"] == 4


# ------------------------------------------------------------------------------ steady state
AUDITED_WRITES = {"create", "update", "patch", "delete", "deletecollection"}


def audited_requests(audit_log: Path, user: str, namespace: str, since: float) -> list[dict[str, Any]]:
    """Requests of `user` in `namespace` received after `since` (one entry per request)."""
    return [{"verb": e["verb"], "resource": (e.get("objectRef") or {}).get("resource"),
             "name": (e.get("objectRef") or {}).get("name"), "sub": (e.get("objectRef") or {}).get("subresource")}
            for e in audit.requests(audit_log, since=since, user=user, namespace=namespace)]


def audited_operator_kubeconfig(core: client.CoreV1Api, rbac: client.RbacAuthorizationV1Api, admin: Path,
                                path: Path) -> Path:
    """A kubeconfig for the identity whose reads the test bed audits (hack/testbed.py)."""
    namespace, account = testbed.BENCH_OPERATOR_NAMESPACE, testbed.BENCH_OPERATOR_SA
    for create in (
        lambda: core.create_namespace({"metadata": {"name": namespace}}),
        lambda: core.create_namespaced_service_account(namespace, {"metadata": {"name": account}}),
        lambda: rbac.create_cluster_role_binding({
            "metadata": {"name": f"{namespace}-{account}"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
            "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}]}),
    ):
        try:
            create()
        except ApiException as err:
            if err.status != 409:
                raise
    return service_account_kubeconfig(core, admin, namespace, account, path)


def test_steady_state_makes_no_writes_and_no_reads(
        local_cluster: ClusterHandle, custom: client.CustomObjectsApi, core: client.CoreV1Api,
        solo_namespace: str, tmp_path: Path) -> None:
    """20 Ready ModelDeployments, 60 s of steady state (twelve resyncs at 5 s): the operator's
    only requests are its watches. Counted from the API server's audit log."""
    assert local_cluster.audit_log is not None
    kubeconfig = audited_operator_kubeconfig(core, client.RbacAuthorizationV1Api(core.api_client),
                                             local_cluster.kubeconfig, tmp_path / "operator.kubeconfig")
    own = OperatorProcess(kubeconfig=kubeconfig, namespaces=[solo_namespace], log_path=tmp_path / "operator.log",
                          resync_seconds=5).start()
    user = testbed.BENCH_OPERATOR_USER
    try:
        names = [f"steady-{i}" for i in range(20)]
        for name in names:
            mdep.create(custom, solo_namespace, mdep.simple(name))
        for name in names:
            mdep.wait_condition(custom, solo_namespace, name, "Ready", "True")

        def quiet() -> bool | None:  # no write for 5 s: the last status writes have landed
            recent = audited_requests(local_cluster.audit_log, user, solo_namespace, time.time() - 5)
            return not [r for r in recent if r["verb"] in AUDITED_WRITES] or None

        wait_for(quiet, timeout=60)
        start = time.time()
        time.sleep(60)
        requests = audited_requests(local_cluster.audit_log, user, solo_namespace, start)
        writes = [r for r in requests if r["verb"] in AUDITED_WRITES]
        reads = [r for r in requests if r["verb"] in ("get", "list")]
        watches = [r for r in requests if r["verb"] == "watch"]
        print(f"steady state, 20 ModelDeployments, 60 s: {len(writes)} writes, {len(reads)} reads, "
              f"{len(watches)} watch requests")
        assert writes == [], writes
        assert reads == [], reads
        assert watches, "the audit log must see the operator's watches (else nothing was counted)"
    finally:
        own.stop()
