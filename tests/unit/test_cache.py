"""The watch cache: newest resourceVersion wins, tombstones, the pod index, slim copies."""

from __future__ import annotations

from typing import Any

import pytest

from modelpilot.analysis.providers import PROVIDERS
from modelpilot.api.models import METRIC_PROVIDERS, TrafficRouting
from modelpilot.cache import Store
from modelpilot.routing import ROUTERS


def obj(name: str, rv: str | None, kind: str = "Deployment", **labels: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "ml", "labels": labels,
                            "managedFields": [{"manager": "x"}]}
    if rv is not None:
        meta["resourceVersion"] = rv
    return {"apiVersion": "v1" if kind == "Pod" else "apps/v1", "kind": kind, "metadata": meta, "spec": {"rv": rv}}


@pytest.mark.parametrize(("puts", "kept"), [
    (["5", "6"], "6"),           # newer wins
    (["6", "5"], "6"),           # a late, older event never undoes a newer write
    (["6", "6"], "6"),
    (["5", None], None),         # not an integer: kept (conservative)
    (["9", "10"], "10"),         # compared as numbers, not strings
])
def test_newest_resource_version_wins(puts: list[str | None], kept: str | None) -> None:
    store = Store()
    for rv in puts:
        store.put(obj("a", rv))
    held = store.get("apps/v1", "Deployment", "ml", "a")
    assert held is not None and held["spec"]["rv"] == kept
    assert "managedFields" not in held["metadata"]


def test_a_deleted_object_is_not_revived_by_a_late_event_but_a_new_one_is_kept() -> None:
    store = Store()
    store.put(obj("a", "5"))
    store.remove(obj("a", "7"))
    assert not store.put(obj("a", "6")) and store.get("apps/v1", "Deployment", "ml", "a") is None
    assert store.put(obj("a", "8")) and store.get("apps/v1", "Deployment", "ml", "a") is not None


def test_pods_are_indexed_by_app_and_follow_relabels_and_deletes() -> None:
    store = Store()
    store.put(obj("p1", "1", "Pod", **{"app.kubernetes.io/name": "fraud"}))
    store.put(obj("p2", "2", "Pod", **{"app.kubernetes.io/name": "fraud"}))
    store.put(obj("p3", "3", "Pod", **{"app.kubernetes.io/name": "churn"}))
    assert sorted(p["metadata"]["name"] for p in store.pods_of("ml", "fraud")) == ["p1", "p2"]
    store.put(obj("p2", "4", "Pod", **{"app.kubernetes.io/name": "churn"}))
    store.remove(obj("p1", "5", "Pod"))
    assert store.pods_of("ml", "fraud") == []
    assert sorted(p["metadata"]["name"] for p in store.pods_of("ml", "churn")) == ["p2", "p3"]


def test_every_router_mode_and_provider_name_is_registered() -> None:
    assert set(TrafficRouting.model_fields) - {"replicas", "gateway_api"} == set()
    gateway = TrafficRouting.model_validate({"gatewayAPI": {"parentRefs": [{"name": "g"}]}})
    assert {TrafficRouting().mode, gateway.mode} == set(ROUTERS)
    assert set(PROVIDERS) == set(METRIC_PROVIDERS)


def test_a_deleted_modeldeployment_leaves_no_metric_series() -> None:
    from modelpilot import metrics

    metrics.CANARY_WEIGHT.labels("ml", "gone").set(20)
    metrics.CANARY_STATE.labels("ml", "gone", "Progressing").set(1)
    metrics.ANALYSES.labels("ml", "gone", "error-rate", "Pass").inc()
    metrics.ROLLBACKS.labels("ml", "kept").inc()
    metrics.forget_object("ml", "gone")
    names = {(s.labels.get("namespace"), s.labels.get("name"))
             for metric in (metrics.CANARY_WEIGHT, metrics.CANARY_STATE, metrics.ANALYSES, metrics.ROLLBACKS)
             for family in metric.collect() for s in family.samples}
    assert ("ml", "gone") not in names and ("ml", "kept") in names


def test_an_object_that_is_not_ours_is_kept_as_a_stub() -> None:
    store = Store()
    foreign = obj("shop", "3", kind="Service")
    foreign["metadata"]["ownerReferences"] = [{"kind": "Application", "name": "shop", "uid": "u", "controller": True}]
    foreign["spec"] = {"selector": {"app": "shop"}, "ports": [{"port": 80}] * 50}
    store.put(foreign, whole=False)
    held = store.get("apps/v1", "Service", "ml", "shop")
    owners = foreign["metadata"]["ownerReferences"]
    assert held == {"apiVersion": "apps/v1", "kind": "Service", "metadata": {
        "name": "shop", "namespace": "ml", "resourceVersion": "3", "ownerReferences": owners}}


def test_forget_kind_drops_every_object_of_a_deleted_crds_kind() -> None:
    store = Store()
    scaled = {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": {"namespace": "ml", "name": "a"}}
    other = {"apiVersion": "v1", "kind": "Service", "metadata": {"namespace": "ml", "name": "a"}}
    store.put(scaled)
    store.put({**scaled, "metadata": {"namespace": "team", "name": "b"}})
    store.put(other)
    assert store.forget_kind("keda.sh/v1alpha1", "ScaledObject") == 2
    assert store.get("keda.sh/v1alpha1", "ScaledObject", "ml", "a") is None
    assert store.get("v1", "Service", "ml", "a") is not None
    assert store.forget_kind("keda.sh/v1alpha1", "ScaledObject") == 0
