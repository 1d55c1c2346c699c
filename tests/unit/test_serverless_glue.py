"""Scale to zero, the parts around the idle clock: the demand reading from Prometheus and the stable
track read from an observation."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from modelpilot.analysis.provider import ProviderError
from modelpilot.analysis.serverless_read import read_serverless, reading_queries
from modelpilot.control.observe import Observed
from modelpilot.control.scaling import activator_for, stable_track
from modelpilot.control.serverless import (
    ServerlessReading,
    Track,
)
from modelpilot.resources.common import ScalingSettings
from tests.unit.test_serverless import at, stamp

T0 = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC)
# ------------------------------------------------------------------------------------ the reading


class FakeProvider:
    """Answers reading_queries by their key; an exception instead of an answer raises it."""

    def __init__(self, answers: dict[str, float | Exception | None]) -> None:
        self.by_query = {query: answers.get(key) for key, query in reading_queries("ml", "fraud").items()}
        self.asked: list[str] = []

    def query(self, promql: str) -> float | None:
        self.asked.append(promql)
        answer = self.by_query[promql]
        if isinstance(answer, Exception):
            raise answer
        return answer

    def query_vector(self, promql: str, label: str) -> dict[str, float]:
        raise AssertionError("not used")

    def query_series(self, promql: str) -> list[tuple[dict[str, str], float]]:
        raise AssertionError("not used")


EPOCH = T0.timestamp()
READINGS = [
    ("served-later", {"served": EPOCH - 10, "held": EPOCH - 100, "activations": 3.0, "cold_start": 7.5},
     ServerlessReading(at(-15), at(-10), 3, 7.5)),
    ("held-later", {"served": EPOCH - 100, "held": EPOCH - 3}, ServerlessReading(at(-15), at(-3))),
    ("only-held", {"held": EPOCH - 3}, ServerlessReading(at(-15), at(-3))),
    ("no-series", {}, ServerlessReading(at(-15))),
    ("zero-is-no-request", {"served": 0.0, "held": 0.0, "activations": 0.0}, ServerlessReading(at(-15), None, 0)),
    ("error", {"served": EPOCH, "activations": ProviderError("prometheus unreachable: " + "x" * 400)},
     ServerlessReading(at(-15), error="prometheus unreachable: " + "x" * 276)),
]


@pytest.mark.parametrize(("case", "answers", "want"), READINGS, ids=[r[0] for r in READINGS])
def test_read_serverless(case: str, answers: dict[str, Any], want: ServerlessReading) -> None:
    provider = FakeProvider(answers)
    got = read_serverless(provider, namespace="ml", name="fraud", start=T0, scrape_interval=15.0)
    assert got == want
    assert want.error is not None or len(provider.asked) == 4


def test_reading_queries_select_the_stable_track_of_one_model() -> None:
    queries = reading_queries("ml", "fraud")
    assert set(queries) == {"served", "held", "activations", "cold_start"}
    for key in ("served", "cold_start"):
        assert 'track="stable"' in queries[key]
    assert 'namespace="ml",model_deployment="fraud"' in queries["served"]
    assert 'model_namespace="ml",model_deployment="fraud"' in queries["held"]


# ------------------------------------------------------------------------------------ from an observation


def pod(track: str = "stable", ready: bool = True, phase: str = "Running", deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "p", "labels": {"modelpilot.io/track": track}}
    if deleting:
        meta["deletionTimestamp"] = stamp(0)
    return {"metadata": meta, "status": {"phase": phase, "conditions": [{"type": "Ready", "status": str(ready)}]}}


def observed(replicas: int | None, status_replicas: int | None, *pods: dict[str, Any],
             cluster_ip: str | None = None) -> Observed:
    children: dict[Any, Any] = {}
    if replicas is not None or status_replicas is not None:
        spec = {} if replicas is None else {"replicas": replicas}
        children[("apps/v1", "Deployment", "fraud")] = {"spec": spec, "status": {"replicas": status_replicas}}
    if cluster_ip is not None:
        children[("v1", "Service", "fraud")] = {"spec": {"clusterIP": cluster_ip}}
    children[("v1", "Service", "fraud-stable")] = {"spec": {"clusterIP": "None"}}
    md = {"metadata": {"name": "fraud", "namespace": "ml"}}
    return Observed(md=md, children=children, pods=tuple(pods))


TRACKS = [
    ("not-created-yet", observed(None, None), Track(1, 0, 0, 0)),
    ("ready", observed(1, 1, pod()), Track(1, 1, 1, 0)),
    ("starting", observed(2, 2, pod(), pod(ready=False)), Track(2, 2, 1, 1)),
    ("canary-pods-not-counted", observed(1, 1, pod(), pod("canary", ready=False)), Track(1, 1, 1, 0)),
    ("finished-pods-not-counted", observed(1, 1, pod(), pod(phase="Failed", ready=False)), Track(1, 1, 1, 0)),
    ("a-deleted-pod-is-not-ready", observed(0, 1, pod(deleting=True)), Track(0, 1, 0, 0)),
    ("at-zero", observed(0, 0), Track(0, 0, 0, 0)),
    ("pods-before-the-status", observed(1, 0, pod(ready=False)), Track(1, 1, 0, 1)),
]


@pytest.mark.parametrize(("case", "seen", "want"), TRACKS, ids=[t[0] for t in TRACKS])
def test_stable_track(case: str, seen: Observed, want: Track) -> None:
    assert stable_track(seen) == want


@pytest.mark.parametrize(("cluster_ip", "upstream"), [("10.96.0.7", "10.96.0.7:80"), ("fd00::7", "[fd00::7]:80"),
                                                      ("None", None), (None, None)])
def test_activator_forwards_to_the_services_cluster_ip(cluster_ip: str | None, upstream: str | None) -> None:
    settings = ScalingSettings(activator_namespace="serverless", activator_service="gate", activator_port=8080)
    activator = activator_for(observed(1, 1, cluster_ip=cluster_ip), settings)
    if upstream is None:
        assert activator is None
        return
    assert activator is not None
    assert (activator.namespace, activator.service, activator.port) == ("serverless", "gate", 8080)
    assert (activator.upstream, activator.target) == (upstream, "ml/fraud/stable")
