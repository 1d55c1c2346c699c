"""Drift monitoring end to end: real model servers with a reference profile, a real Prometheus
scraping their drift gauges, the operator reading them; the load generator sends rows of the
model's training data (shifted on demand) and posts feedback labels (flipped on demand)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tests.e2e import mdep
from tests.e2e.canary import NAME, SCRAPE, Env, open_env, spec
from tests.e2e.harness.drifting import FeedbackSender, IrisRows
from tests.e2e.harness.world import CanaryWorld
from tests.e2e.support import ClusterHandle, wait_for

WINDOW = 20  # seconds: the runtime's sliding window
MONITORING = {"drift": {"window": f"{WINDOW}s", "minSamples": 100}}
# Drift shows within two windows, plus one evaluation period (a quarter window, at least 5 s) and
# a few scrapes for the gauges to reach Prometheus.
WITHIN_TWO_WINDOWS = 2 * WINDOW + max(5, WINDOW / 4) + 3 * SCRAPE


@pytest.fixture
def rows() -> IrisRows:
    return IrisRows()


@pytest.fixture
def denv(local_cluster: ClusterHandle, crd: str, canary_world: Callable[..., CanaryWorld],
         custom: client.CustomObjectsApi, apps: client.AppsV1Api, core: client.CoreV1Api, solo_namespace: str,
         tmp_path: Path, rows: IrisRows) -> Iterator[Env]:
    world = canary_world(solo_namespace, NAME, rate=50.0, payload=rows)
    yield from open_env(local_cluster, world, custom, apps, core, solo_namespace, tmp_path)


def create(env: Env, replicas: int = 2, **kw: Any) -> None:
    body = spec(env.model("profiled"), "v1", replicas=replicas, **kw)
    body["spec"]["monitoring"] = MONITORING
    mdep.create(env.custom, env.namespace, body)
    mdep.wait_condition(env.custom, env.namespace, NAME, "Ready", "True", timeout=90)
    env.world.wait_serving(stable=replicas)


def wait_drift(env: Env, kind: str, status: str, reason: str | None = None, timeout: float = 90) -> dict[str, Any]:
    return mdep.wait_condition(env.custom, env.namespace, NAME, kind, status, reason=reason, timeout=timeout)


def test_data_drift_names_the_shifted_feature_and_clears(denv: Env, rows: IrisRows) -> None:
    env = denv
    create(env)
    calm = wait_drift(env, "DataDrift", "False", "NoDrift")
    assert calm["status"]["drift"]["profile"] is True, calm["status"]["drift"]

    def filled() -> dict[str, Any] | None:
        """PSI is biased upwards on few rows (about bins / rows): judge the scores on a full window."""
        drift = env.get()["status"]["drift"]
        return drift if drift["rows"] >= 600 else None

    drift = wait_for(filled, timeout=WINDOW + 20, what="a window of 600 rows")
    assert all(f["psi"] < 0.1 for f in drift["features"]), drift["features"]  # training data: no drift

    shifted_at = time.monotonic()
    rows.shift("petal_length", 2.0)  # +2 standard deviations
    detected = wait_drift(env, "DataDrift", "True", "FeatureDrift", timeout=WITHIN_TWO_WINDOWS)
    took = time.monotonic() - shifted_at
    condition = mdep.condition(detected, "DataDrift")
    assert condition and condition["message"].startswith("feature petal_length PSI"), condition
    worst = detected["status"]["drift"]["features"][0]
    assert worst["name"] == "petal_length" and worst["drifted"] and worst["psi"] > 0.2, worst
    assert worst["pValue"] < 0.01, worst
    env.wait_reasons("DataDriftDetected")

    def top_bin_taken_over() -> dict[str, Any] | None:
        """Once the window holds shifted rows only: most rows in the top bin, ~10 % in the reference."""
        feature = env.get()["status"]["drift"]["features"][0]
        top = next(b for b in feature["bins"] if b["bin"].endswith(",+inf)"))
        return feature if feature["name"] == "petal_length" and top.get("live", 0) > 0.5 else None

    full = wait_for(top_bin_taken_over, timeout=WINDOW + 15, what="a window of shifted rows only")
    top = next(b for b in full["bins"] if b["bin"].endswith(",+inf)"))
    assert top["reference"] < 0.2 and "missing" in {b["bin"] for b in full["bins"]}, full["bins"]
    print(f"petal_length at +2 sd: PSI {full['psi']:.2f}, top bin {top['bin']} reference {top['reference']:.2f}, "
          f"live {top['live']:.2f}")
    psi = env.world.prometheus.value(
        f'max(modelpilot_drift_feature_psi{{namespace="{env.namespace}", feature="petal_length"}})')
    assert psi is not None and psi > 0.2, psi  # the runtime's own score, in Prometheus

    cleared_at = time.monotonic()
    rows.reset()
    wait_drift(env, "DataDrift", "False", "NoDrift", timeout=WITHIN_TWO_WINDOWS)
    print(f"DataDrift: True {took:.1f}s after the shift, False {time.monotonic() - cleared_at:.1f}s after "
          f"shifting back (window {WINDOW}s)")
    env.wait_reasons("DataDriftCleared")


def test_concept_drift_from_flipped_feedback_labels(denv: Env, rows: IrisRows) -> None:
    env = denv
    sender = FeedbackSender(env.world.loadgen, rows, NAME)
    env.world.loadgen.on_answer = sender.record
    create(env, replicas=1)  # feedback joins the predictions of the pod that made them
    calm = wait_drift(env, "ConceptDrift", "False", "AsExpected")
    accuracy = calm["status"]["drift"]["accuracy"]
    assert accuracy["metric"] == "accuracy" and accuracy["live"] > 0.9 and accuracy["reference"] > 0.9, accuracy

    sender.flip(0.3)
    wait_drift(env, "ConceptDrift", "True", "AccuracyDrop", timeout=WITHIN_TWO_WINDOWS)
    env.wait_reasons("ConceptDriftDetected")

    def settled() -> dict[str, Any] | None:
        """A window of flipped labels only: about 0.97 x 0.7 correct."""
        obj = env.get()
        live = obj["status"]["drift"]["accuracy"]["live"]
        return obj if live < 0.8 and mdep.condition(obj, "ConceptDrift")["status"] == "True" else None

    drifted = wait_for(settled, timeout=WINDOW + 15, what="a window of flipped labels only")
    accuracy = drifted["status"]["drift"]["accuracy"]
    assert 0.55 < accuracy["live"] < 0.8 and accuracy["samples"] >= 100, accuracy
    assert f"live accuracy {accuracy['live']:.3f}" in mdep.condition(drifted, "ConceptDrift")["message"]
    print(f"ConceptDrift: live accuracy {accuracy['live']:.3f} over {accuracy['samples']} labelled rows, "
          f"reference {accuracy['reference']:.3f}")
    assert set(sender.answers) == {200}, sender.answers  # every label joined its prediction
    assert mdep.condition(drifted, "DataDrift")["status"] == "False"  # the inputs did not change


@pytest.mark.parametrize("drifted", [True, False], ids=["drifted-segment", "same-inputs"])
def test_canary_judged_on_input_drift_of_its_segment(denv: Env, rows: IrisRows, local_cluster: ClusterHandle,
                                                     drifted: bool) -> None:
    """The canary gets one segment of users (a header); with input-drift in its analysis, a segment
    whose inputs drift fails it and it is rolled back; the same segment without drift is promoted."""
    if local_cluster.gateway is None:
        pytest.skip("the test bed has no gateway")
    env = denv
    segment = [{"headers": [{"name": "x-segment", "value": "beta"}]}]
    create(env, steps=(50,), gateway=f"fraud.{env.namespace}.test", min_requests=30,
           metrics=[{"name": "error-rate", "max": 1}, {"name": "input-drift", "max": 0.2}],
           canary_fields={"match": segment, "matchDuration": "15s"})
    env.world.loadgen.set_headers(lambda seq: {"x-segment": "beta"} if seq % 3 == 0 else {})
    if drifted:
        rows.shift("petal_length", 2.0, only=lambda request: request.headers.get("x-segment") == "beta")
    env.set_version("v2", env.model("profiled"))
    if drifted:
        rolled = env.wait_canary(lambda c: c.get("state") == "RolledBack", "a rollback on input-drift", timeout=120)
        fails = [a for a in rolled["analyses"] if a["metric"] == "input-drift" and a["verdict"] == "Fail"]
        assert fails and fails[-1]["value"] > 0.2 and "petal_length" in fails[-1]["detail"], rolled["analyses"]
        assert rolled["stage"] == "segment", rolled
        wait_drift(env, "DataDrift", "False", timeout=30)  # stable never saw the drifted segment
        return
    env.wait_stable("v2", timeout=150)
    passed = [e.message for e in env.events() if e.reason in ("StageAdvanced", "StepAdvanced", "Promoting")]
    assert any("input-drift=" in m for m in passed), passed
    wait_for(lambda: env.world.loadgen.requests(seconds=3), timeout=10, what="traffic")
