"""A/B experiments through the real gateway: a fixed split with sticky users (Envoy Gateway hashes
the user header to pick the weighted backend), a business metric per track reported by the
harness at known rates and scraped by a real Prometheus, and the operator's statistical verdict.
Needs the local test bed (its gateway)."""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

import pytest

from modelpilot.analysis.builtin import SELECTOR as SELECT
from tests.e2e.canary import Env, start_v1
from tests.e2e.harness import ConversionReporter
from tests.e2e.support import ClusterHandle

USERS = 200
RATE = 100
CONVERSION = {
    "name": "conversion",
    "successes": f"sum(increase(modelpilot_harness_conversions_total{{{SELECT}}}[{{{{window}}}}]))",
    "trials": f"sum(increase(modelpilot_harness_trials_total{{{SELECT}}}[{{{{window}}}}]))",
}


@pytest.fixture(autouse=True)
def _gateway(local_cluster: ClusterHandle) -> None:
    if local_cluster.gateway is None:
        pytest.skip("the test bed has no gateway")


def run_experiment(env: Env, rates: dict[str, float]) -> dict[str, Any]:
    """v1 stable, v2 in a 50 % sticky experiment for 45 s at RATE requests/s from USERS users;
    returns status.canary once the experiment has concluded (onConclusion Report)."""
    experiment = {"split": 50, "sticky": {"header": "x-user-id"}, "duration": "45s", "minSamples": 1000,
                  "confidence": 0.9, "onConclusion": "Report", "metrics": [CONVERSION]}
    start_v1(env, steps=(50,), gateway=f"fraud.{env.namespace}.test", min_requests=10,
             rollout_fields={"strategy": "Experiment", "experiment": experiment})
    # Conversions spread evenly at exactly each track's rate: the test checks the statistics
    # end to end on known inputs, so sampling luck must not decide it.
    env.world.add_reporter(ConversionReporter(env.namespace, "fraud", rates, spread=True))
    loadgen = env.world.loadgen
    loadgen.set_headers(lambda seq: {"x-user-id": f"user-{seq % USERS}"}, user_of=lambda h: h.get("x-user-id"))
    loadgen.set_rate(RATE)
    env.set_version("v2", env.model("good2"))
    started = env.wait_canary(lambda c: c.get("stage") == "experiment", "the experiment stage", timeout=120)
    assert int(started["weight"]) == 50, started
    began = time.monotonic()
    concluded = env.wait_canary(lambda c: (c.get("experiment") or {}).get("final") is True,
                                "the experiment's final verdict", timeout=180)
    check_sticky_split(env, since=began + 3)  # the route takes a moment to reach envoy
    return concluded


def check_sticky_split(env: Env, since: float) -> None:
    tracks: dict[str, set[str]] = defaultdict(set)
    counts = {"stable": 0, "canary": 0}
    for request in env.world.loadgen.requests():
        if request.sent_at >= since and request.pod is not None and request.user is not None:
            tracks[request.user].add(request.track)
            counts[request.track] = counts.get(request.track, 0) + 1
    switched = {user: seen for user, seen in tracks.items() if len(seen) > 1}
    on_canary = sum(1 for seen in tracks.values() if seen == {"canary"})
    share = counts["canary"] / max(1, sum(counts.values()))
    print(f"sticky: {len(tracks)} users, {on_canary} on the canary, {len(switched)} switched; requests {counts}")
    assert len(tracks) >= USERS * 0.9, len(tracks)
    assert switched == {}, dict(list(switched.items())[:5])
    # The 50 % split, by user hash: with 200 users one standard deviation is 3.5 points (a split
    # by pod count instead, 1 canary pod beside 2 stable, would be a third).
    assert abs(share - 0.5) <= 0.1, (share, counts)


def conversion(canary: dict[str, Any]) -> dict[str, Any]:
    experiment = canary["experiment"]
    assert [r["metric"] for r in experiment["results"]] == ["conversion"], experiment
    return dict(experiment["results"][0])


def test_experiment_finds_the_canary_winner_with_its_confidence_interval(env: Env) -> None:
    canary = run_experiment(env, {"stable": 0.10, "canary": 0.12})
    result = conversion(canary)
    print(f"experiment 10% vs 12%: {canary['experiment']}")
    assert canary["experiment"]["verdict"] == "Winner" and result["verdict"] == "Winner", result
    assert abs(result["canary"] - 0.12) < 0.005 and abs(result["stable"] - 0.10) < 0.005, result
    assert 0 < result["ciLow"] < 0.02 < result["ciHigh"], result  # the true difference, and not 0
    assert result["pValue"] < 0.1 and min(result["samplesCanary"], result["samplesStable"]) >= 1000, result
    assert canary["state"] == "Progressing" and canary["reason"] == "ExperimentConcluded", canary
    assert int(canary["weight"]) == 50  # Report: the split stays until a human acts
    env.wait_reasons("ExperimentConcluded")
    # The route changed once (to the split) and the sticky policy never after its creation: what
    # the API server defaults in them is not mistaken for drift (no apply loop).
    logs = env.operator.logs()
    assert logs.count("applied kind=HTTPRoute") <= 2, [line for line in logs.splitlines() if "applied" in line]
    assert "created kind=BackendTrafficPolicy" in logs and "applied kind=BackendTrafficPolicy" not in logs


def test_experiment_with_equal_rates_finds_no_difference(env: Env) -> None:
    canary = run_experiment(env, {"stable": 0.10, "canary": 0.10})
    result = conversion(canary)
    print(f"experiment 10% vs 10%: {canary['experiment']}")
    assert canary["experiment"]["verdict"] == "NoDifference" and result["verdict"] == "NoDifference", result
    assert result["ciLow"] < 0 < result["ciHigh"] and result["pValue"] > 0.1, result
