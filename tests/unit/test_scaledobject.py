"""The KEDA ScaledObject builder (resources/scaledobject.py): bounds, triggers per metric, the demand
PromQL (it must parse), and the ReferenceGrant that lets routes reach the activator."""

from __future__ import annotations

from typing import Any

import pytest

from modelpilot.analysis.queries import check_syntax
from modelpilot.api.serving import Autoscaling
from modelpilot.resources.common import ScalingSettings
from modelpilot.resources.grant import build_activator_grant, grant_name
from modelpilot.resources.scaledobject import HELD_PER_POD, build_scaledobject, demand_queries, triggers

OWNER = {"apiVersion": "modelpilot.io/v1alpha1", "kind": "ModelDeployment", "name": "fraud", "uid": "u-1"}
SETTINGS = ScalingSettings(prometheus_url="http://prom:9090", scrape_interval=15.0, polling_seconds=5,
                           cooldown_seconds=30, scale_down_stabilization_seconds=120)
SERVER = '{namespace="ml",model_deployment="fraud",track="stable"}'
HELD = 'sum(modelpilot_activator_requests_waiting{model_namespace="ml",model_deployment="fraud",track="stable"})'


def scaling(**fields: Any) -> Autoscaling:
    return Autoscaling.model_validate({"maxReplicas": 4, **fields})


def build(hold: bool, **fields: Any) -> dict[str, Any]:
    return build_scaledobject(scaling(**fields), name="fraud", namespace="ml", owner=OWNER, settings=SETTINGS,
                              hold=hold)


# ------------------------------------------------------------------------------------ bounds


@pytest.mark.parametrize(("fields", "hold", "minimum"), [
    ({"minReplicas": 0}, True, 1),  # not idle yet, or a canary in flight: one pod stays
    ({"minReplicas": 0}, False, 0),  # idle and the route on the activator: KEDA may remove the last pod
    ({"minReplicas": 2, "metric": "requests"}, True, 2),
    ({"minReplicas": 2, "metric": "requests"}, False, 2),
    ({"minReplicas": 1, "metric": "concurrency"}, False, 1),
])
def test_min_replicas_follow_the_hold(fields: dict[str, Any], hold: bool, minimum: int) -> None:
    spec = build(hold, **fields)["spec"]
    assert spec["minReplicaCount"] == minimum and spec["maxReplicaCount"] == 4


def test_scaledobject_targets_the_stable_deployment_and_is_owned() -> None:
    obj = build(True, minReplicas=0)
    assert (obj["apiVersion"], obj["kind"]) == ("keda.sh/v1alpha1", "ScaledObject")
    meta = obj["metadata"]
    assert (meta["name"], meta["namespace"]) == ("fraud", "ml")
    assert meta["ownerReferences"][0]["uid"] == "u-1" and meta["ownerReferences"][0]["controller"] is True
    assert meta["labels"]["app.kubernetes.io/managed-by"] == "modelpilot"
    spec = obj["spec"]
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "fraud"}
    assert (spec["pollingInterval"], spec["cooldownPeriod"]) == (5, 30)
    assert spec["advanced"] == {"horizontalPodAutoscalerConfig": {"behavior": {"scaleDown": {
        "stabilizationWindowSeconds": 120}}}}


# ------------------------------------------------------------------------------------ triggers


@pytest.mark.parametrize(("fields", "name", "threshold", "served"), [
    ({"minReplicas": 0, "metric": "requests"}, "requests", "10",
     f"sum(rate(modelpilot_requests_total{SERVER}[60s]))"),
    ({"minReplicas": 0, "metric": "requests", "target": 25}, "requests", "25",
     f"sum(rate(modelpilot_requests_total{SERVER}[60s]))"),
    ({"minReplicas": 0, "metric": "concurrency"}, "concurrency", "4", f"sum(modelpilot_requests_in_flight{SERVER})"),
    ({"minReplicas": 1, "metric": "concurrency", "target": 2}, "concurrency", "2",
     f"sum(modelpilot_requests_in_flight{SERVER})"),
])
def test_request_metrics_are_one_prometheus_trigger_with_the_held_requests(
        fields: dict[str, Any], name: str, threshold: str, served: str) -> None:
    (trigger,) = build(True, **fields)["spec"]["triggers"]
    assert trigger["type"] == "prometheus" and trigger["name"] == name
    assert trigger["metadata"] == {"serverAddress": "http://prom:9090",
                                   "query": f"({served} or vector(0)) + ({HELD} or vector(0))",
                                   "threshold": threshold, "activationThreshold": "0", "ignoreNullValues": "true"}


@pytest.mark.parametrize(("fields", "value"), [({"minReplicas": 0}, "80"),
                                               ({"minReplicas": 0, "targetCPUUtilization": 60}, "60"),
                                               ({"minReplicas": 0, "target": 50}, "50")])
def test_cpu_is_a_cpu_trigger_plus_the_held_requests(fields: dict[str, Any], value: str) -> None:
    cpu, held = build(False, **fields)["spec"]["triggers"]
    assert cpu == {"type": "cpu", "name": "cpu", "metricType": "Utilization", "metadata": {"value": value}}
    assert held["type"] == "prometheus" and held["name"] == "held"
    assert held["metadata"]["query"] == f"{HELD} or vector(0)"
    assert held["metadata"]["threshold"] == str(HELD_PER_POD) and held["metadata"]["activationThreshold"] == "0"


@pytest.mark.parametrize(("scrape", "window"), [(1.0, "10s"), (2.4, "10s"), (5.0, "20s"), (15.0, "60s"),
                                                (30.0, "120s")])
def test_the_request_rate_window_covers_four_scrapes(scrape: float, window: str) -> None:
    demand, _ = demand_queries("ml", "fraud", scaling(minReplicas=0, metric="requests"), scrape)
    assert f"[{window}]" in demand


@pytest.mark.parametrize("metric", ["requests", "concurrency", "cpu"])
@pytest.mark.parametrize("track", ["stable", "canary"])
def test_every_demand_query_parses(metric: str, track: str) -> None:
    for query in demand_queries("ml", "fraud", scaling(minReplicas=0, metric=metric), 15.0, track):
        check_syntax(query)
        assert f'track="{track}"' in query
    for trigger in triggers("ml", "fraud", scaling(minReplicas=0, metric=metric), SETTINGS):
        if trigger["type"] == "prometheus":
            check_syntax(trigger["metadata"]["query"])


# ------------------------------------------------------------------------------------ the grant


def test_activator_grant_lets_the_namespaces_routes_reach_the_activator_only() -> None:
    settings = ScalingSettings(activator_namespace="serverless", activator_service="gate")
    grant = build_activator_grant("ml", settings)
    assert (grant["apiVersion"], grant["kind"]) == ("gateway.networking.k8s.io/v1beta1", "ReferenceGrant")
    assert grant["metadata"] == {"name": "modelpilot-activator-from-ml", "namespace": "serverless",
                                 "labels": {"app.kubernetes.io/managed-by": "modelpilot"}}
    assert "ownerReferences" not in grant["metadata"]  # another namespace: nothing there can own it
    assert grant["spec"] == {
        "from": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "namespace": "ml"}],
        "to": [{"group": "", "kind": "Service", "name": "gate"}],
    }


def test_grant_name_is_a_valid_name_for_long_namespaces() -> None:
    name = grant_name("n" * 63)
    assert len(name) <= 63 and name.startswith("modelpilot-activator-from-") and name[-1].isalnum()
