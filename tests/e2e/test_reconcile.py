"""The core reconciler against the real control plane: children, status, GPU placement, drift,
rolling updates, idleness, restarts and deletion."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from hack import audit
from modelpilot.api.models import GROUP, PLURAL, SHORT_NAMES, VERSION
from modelpilot.resources import FIELD_MANAGER
from modelpilot.resources.labels import LABEL_MANAGED_BY, LABEL_NAME, LABEL_TRACK, LABEL_VERSION, MANAGED_BY
from tests.e2e import mdep
from tests.e2e.operator import OperatorProcess
from tests.e2e.support import ClusterHandle, wait_for

A100 = "NVIDIA-A100-SXM4-80GB"
pytestmark = pytest.mark.usefixtures("operator")


def children(apps: client.AppsV1Api, core: client.CoreV1Api, autoscaling: client.AutoscalingV2Api,
             namespace: str) -> dict[str, Any]:
    return {
        "deployments": {d.metadata.name: d for d in apps.list_namespaced_deployment(namespace).items},
        "services": {s.metadata.name: s for s in core.list_namespaced_service(namespace).items},
        "hpas": {h.metadata.name: h for h in
                 autoscaling.list_namespaced_horizontal_pod_autoscaler(namespace).items},
    }


@pytest.fixture(scope="module")
def autoscaling(api_client: client.ApiClient) -> client.AutoscalingV2Api:
    return client.AutoscalingV2Api(api_client)


def owned_by(obj: Any, md: dict[str, Any]) -> bool:
    refs = obj.metadata.owner_references or []
    return any(r.uid == md["metadata"]["uid"] and r.controller for r in refs)


def running_pods(core: client.CoreV1Api, namespace: str, name: str) -> list[client.V1Pod]:
    pods = core.list_namespaced_pod(namespace, label_selector=f"{LABEL_NAME}={name}").items
    return [p for p in pods if p.metadata.deletion_timestamp is None]


# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("example", ["sklearn-cpu", "autoscaled"])
def test_example_creates_children_and_becomes_ready(example: str, cluster: ClusterHandle,
                                                    custom: client.CustomObjectsApi, apps: client.AppsV1Api,
                                                    core: client.CoreV1Api, autoscaling: client.AutoscalingV2Api,
                                                    namespace: str) -> None:
    body = mdep.example(example)
    name = body["metadata"]["name"]
    md = mdep.create(custom, namespace, body)
    ready = mdep.wait_condition(custom, namespace, name, "Ready", "True")
    status = ready["status"]
    assert status["phase"] == "Ready"
    assert status["observedGeneration"] == ready["metadata"]["generation"]
    assert status["stable"]["version"] == body["spec"]["model"]["version"]
    assert status["stable"]["readyReplicas"] >= 1
    assert status["url"] == f"http://{name}.{namespace}.svc.cluster.local"

    found = children(apps, core, autoscaling, namespace)
    assert set(found["deployments"]) == {name}
    assert set(found["services"]) == {name, f"{name}-stable", f"{name}-canary"}
    for obj in [*found["deployments"].values(), *found["services"].values(), *found["hpas"].values()]:
        assert owned_by(obj, md), obj.metadata.name
        assert obj.metadata.labels[LABEL_MANAGED_BY] == MANAGED_BY
    deployment = found["deployments"][name]
    if example == "autoscaled":
        assert set(found["hpas"]) == {name}
        hpa = found["hpas"][name]
        assert (hpa.spec.min_replicas, hpa.spec.max_replicas) == (2, 6)
        assert hpa.spec.scale_target_ref.name == name
    else:
        assert not found["hpas"]
        assert deployment.spec.replicas == 2
    pod_labels = deployment.spec.template.metadata.labels
    assert pod_labels[LABEL_TRACK] == "stable"
    assert pod_labels[LABEL_VERSION] == body["spec"]["model"]["version"]

    # Printer columns: what `kubectl get mdep` shows.
    table = cluster.kubectl("get", SHORT_NAMES[0], name, "-n", namespace).stdout.splitlines()
    header, row = table[0].split(), table[1].split()
    assert header[:3] == ["NAME", "MODEL", "STABLE"] and "PHASE" in header and "AGE" in header
    columns = dict(zip(header, row, strict=False))
    assert columns["STABLE"] == body["spec"]["model"]["version"]
    assert row[header.index("PHASE") - (len(header) - len(row))] == "Ready"


def test_gpu_example_runs_only_on_a100_nodes(local_cluster: ClusterHandle, custom: client.CustomObjectsApi,
                                             core: client.CoreV1Api, namespace: str) -> None:
    body = mdep.example("gpu-a100")
    name = body["metadata"]["name"]
    mdep.create(custom, namespace, body)
    mdep.wait_condition(custom, namespace, name, "Ready", "True")
    pods = running_pods(core, namespace, name)
    assert len(pods) == 2
    for pod in pods:
        node = core.read_node(pod.spec.node_name)
        assert node.metadata.labels["nvidia.com/gpu.product"] == A100
        limits = pod.spec.containers[0].resources.limits
        assert limits["nvidia.com/gpu"] == "1"


def test_missing_gpu_product_reports_insufficient_accelerator_and_recovers(
        local_cluster: ClusterHandle, custom: client.CustomObjectsApi, core: client.CoreV1Api,
        namespace: str) -> None:
    body = mdep.simple("h100", accelerator={"vendor": "nvidia", "count": 1, "product": "NVIDIA-H100-80GB-HBM3"})
    mdep.create(custom, namespace, body)
    stuck = mdep.wait_condition(custom, namespace, "h100", "Ready", "False", reason="InsufficientAccelerator")
    message = mdep.condition(stuck, "Ready")["message"]
    assert "nvidia.com/gpu" in message and "NVIDIA-H100-80GB-HBM3" in message
    mdep.wait_events(core, namespace, "h100", "InsufficientAccelerator")

    mdep.patch_spec(custom, namespace, "h100", {"accelerator": {"product": "NVIDIA-L4"}})
    mdep.wait_condition(custom, namespace, "h100", "Ready", "True")
    pods = running_pods(core, namespace, "h100")
    assert pods and all(core.read_node(p.spec.node_name).metadata.labels["nvidia.com/gpu.product"] == "NVIDIA-L4"
                        for p in pods if p.spec.node_name)


def test_drift_is_reverted_and_third_party_changes_kept(custom: client.CustomObjectsApi, apps: client.AppsV1Api,
                                                        core: client.CoreV1Api,
                                                        autoscaling: client.AutoscalingV2Api,
                                                        namespace: str) -> None:
    mdep.create(custom, namespace, mdep.simple("drift", autoscaling={"minReplicas": 1, "maxReplicas": 3},
                                               resources={"requests": {"cpu": "100m"}}))
    mdep.wait_condition(custom, namespace, "drift", "Ready", "True")
    original = apps.read_namespaced_deployment("drift", namespace).spec.template.spec.containers[0].image

    # An image changed by hand is put back; a third-party label and hand-set replicas stay.
    apps.patch_namespaced_deployment("drift", namespace, {
        "metadata": {"labels": {"team.example.com/owner": "fraud-squad"}},
        "spec": {"replicas": 3, "template": {"spec": {"containers": [{"name": "server", "image": "evil:latest"}]}}},
    })
    wait_for(lambda: apps.read_namespaced_deployment("drift", namespace)
             .spec.template.spec.containers[0].image == original, timeout=30, what="image reverted")
    live = apps.read_namespaced_deployment("drift", namespace)
    assert live.metadata.labels["team.example.com/owner"] == "fraud-squad"
    assert live.spec.replicas == 3, "replicas belong to the HPA when autoscaling is set"
    assert not any(f.manager == FIELD_MANAGER and "f:replicas" in json.dumps(f.fields_v1 or {})
                   for f in live.metadata.managed_fields or []), "the operator must not own spec.replicas"

    # Deleted children come back.
    core.delete_namespaced_service("drift-stable", namespace)
    autoscaling.delete_namespaced_horizontal_pod_autoscaler("drift", namespace)

    def recreated() -> bool:
        try:
            core.read_namespaced_service("drift-stable", namespace)
            autoscaling.read_namespaced_horizontal_pod_autoscaler("drift", namespace)
            return True
        except ApiException:
            return False

    wait_for(recreated, timeout=30, what="Service and HPA recreated")


def test_version_change_rolls_stable_deployment(custom: client.CustomObjectsApi, apps: client.AppsV1Api,
                                                namespace: str) -> None:
    mdep.create(custom, namespace, mdep.simple("roll", version="v1", replicas=2,
                                               rollout={"strategy": "Rolling"}))
    first = mdep.wait_condition(custom, namespace, "roll", "Ready", "True")
    assert first["status"]["stable"]["version"] == "v1"
    revision = first["status"]["stable"]["revision"]

    mdep.patch_spec(custom, namespace, "roll", {"model": {"version": "v2", "uri": "file:///models/roll-v2"}})
    second = mdep.wait_condition(custom, namespace, "roll", "Ready", "True")
    assert second["status"]["stable"]["version"] == "v2"
    assert second["status"]["stable"]["revision"] != revision
    deployment = apps.read_namespaced_deployment("roll", namespace)
    assert deployment.spec.template.metadata.labels[LABEL_VERSION] == "v2"
    env = {e.name: e.value for e in deployment.spec.template.spec.containers[0].env}
    assert env["MODELPILOT_MODEL_VERSION"] == "v2"
    assert deployment.status.updated_replicas == 2
    assert deployment.spec.strategy.rolling_update.max_unavailable in (0, "0", "0%")


def test_pods_admitted_under_restricted_pod_security(custom: client.CustomObjectsApi, core: client.CoreV1Api,
                                                     namespace: str) -> None:
    core.patch_namespace(namespace, {"metadata": {"labels": {
        "pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/enforce-version": "latest"}}})
    mdep.create(custom, namespace, mdep.simple("strict", replicas=2))
    mdep.wait_condition(custom, namespace, "strict", "Ready", "True")
    assert len(running_pods(core, namespace, "strict")) == 2
    warnings = core.list_namespaced_event(namespace, field_selector="reason=FailedCreate").items
    assert not warnings, [w.message for w in warnings]


def test_invalid_spec_past_admission_is_reported_and_recovers(custom: client.CustomObjectsApi,
                                                              core: client.CoreV1Api, namespace: str) -> None:
    """What CEL cannot check (PromQL syntax) is reported as InvalidSpec with an Event, and the
    object recovers once fixed."""
    body = mdep.simple("badq", rollout={"canary": {"analysis": {"metrics": [
        {"name": "custom-x", "query": "sum(rate(x{a=\"b\"[1m]))", "max": 1}]}}})
    mdep.create(custom, namespace, body)
    bad = mdep.wait_condition(custom, namespace, "badq", "Ready", "False", reason="InvalidSpec")
    assert mdep.condition(bad, "Degraded")["status"] == "True"
    mdep.wait_events(core, namespace, "badq", "InvalidSpec")
    mdep.patch_spec(custom, namespace, "badq", {"rollout": {"canary": {"analysis": {"metrics": [
        {"name": "custom-x", "query": "sum(rate(x{a=\"b\"}[1m]))", "max": 1}]}}}})
    mdep.wait_condition(custom, namespace, "badq", "Ready", "True")


# --------------------------------------------------------------------------------------------- idle


def audit_writes(audit_log: Path, namespace: str, since: float) -> list[dict[str, Any]]:
    """Write requests in `namespace` made by the operator (its user agents) after `since` (the
    test bed audits only writes, but for the benchmark's own identity)."""
    return [{"verb": e["verb"], "resource": (e.get("objectRef") or {}).get("resource"),
             "name": (e.get("objectRef") or {}).get("name"), "sub": (e.get("objectRef") or {}).get("subresource"),
             "agent": e.get("userAgent", "")}
            for e in audit.requests(audit_log, since=since, namespace=namespace, agents=("modelpilot/", "kopf/"))]


def resource_versions(apps: client.AppsV1Api, core: client.CoreV1Api, namespace: str) -> dict[str, str]:
    versions = {f"deploy/{d.metadata.name}": d.metadata.resource_version
                for d in apps.list_namespaced_deployment(namespace).items}
    versions.update({f"svc/{s.metadata.name}": s.metadata.resource_version
                     for s in core.list_namespaced_service(namespace).items})
    return versions


def test_idle_operator_makes_no_writes_and_restart_changes_nothing(
        local_cluster: ClusterHandle, custom: client.CustomObjectsApi, apps: client.AppsV1Api,
        core: client.CoreV1Api, solo_namespace: str, tmp_path: Path) -> None:
    assert local_cluster.audit_log is not None
    own = OperatorProcess(kubeconfig=local_cluster.kubeconfig, namespaces=[solo_namespace],
                          log_path=tmp_path / "operator.log", resync_seconds=5).start()
    try:
        for i in range(10):
            mdep.create(custom, solo_namespace, mdep.simple(f"idle-{i}", replicas=1))
        for i in range(10):
            mdep.wait_condition(custom, solo_namespace, f"idle-{i}", "Ready", "True")
        time.sleep(3)  # let the last status writes and their watch events settle
        before = resource_versions(apps, core, solo_namespace)
        start = time.time() + 1
        time.sleep(61)  # twelve safety resyncs at 5 s
        writes = audit_writes(local_cluster.audit_log, solo_namespace, start)
        assert writes == [], writes
        assert own.logs().count("modelpilot started") == 1

        own.stop()
        own.start()
        time.sleep(12)  # the restarted operator lists everything and resyncs twice
        assert resource_versions(apps, core, solo_namespace) == before
        assert audit_writes(local_cluster.audit_log, solo_namespace, start) == []
    finally:
        own.stop()


# ------------------------------------------------------------------------------------------ delete


def test_delete_removes_children_also_while_operator_is_down(
        cluster: ClusterHandle, custom: client.CustomObjectsApi, apps: client.AppsV1Api, core: client.CoreV1Api,
        solo_namespace: str, tmp_path: Path) -> None:
    own = OperatorProcess(kubeconfig=cluster.kubeconfig, namespaces=[solo_namespace],
                          log_path=tmp_path / "operator.log").start()
    try:
        for name in ("alive", "orphan"):
            mdep.create(custom, solo_namespace, mdep.simple(name, autoscaling={"minReplicas": 1, "maxReplicas": 2}))
        for name in ("alive", "orphan"):
            mdep.wait_condition(custom, solo_namespace, name, "Ready", "True")
        obj = mdep.get(custom, solo_namespace, "alive")
        assert not obj["metadata"].get("finalizers"), "no finalizer: deletion must never wait for the operator"
        assert not [k for k in obj["metadata"].get("annotations") or {} if "kopf" in k]

        custom.delete_namespaced_custom_object(GROUP, VERSION, solo_namespace, PLURAL, "alive")
        own.kill()
        custom.delete_namespaced_custom_object(GROUP, VERSION, solo_namespace, PLURAL, "orphan")
    finally:
        own.stop()

    def gone() -> bool:
        left = [d.metadata.name for d in apps.list_namespaced_deployment(solo_namespace).items]
        left += [s.metadata.name for s in core.list_namespaced_service(solo_namespace).items]
        left += [h.metadata.name for h in client.AutoscalingV2Api(apps.api_client)
                 .list_namespaced_horizontal_pod_autoscaler(solo_namespace).items]
        left += [p.metadata.name for p in core.list_namespaced_pod(solo_namespace).items]
        return not left and mdep.get(custom, solo_namespace, "orphan") is None

    wait_for(gone, timeout=90, what="every child garbage-collected")
