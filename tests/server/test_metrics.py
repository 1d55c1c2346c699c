"""The metrics contract (docs/runtime.md, Metrics): exact counts per code and track after a known mix."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from modelpilot.server.metrics import DURATION_BUCKETS
from tests.support import testmodels
from tests.support.testing import RuntimeProcess, free_port, iris_request

LABELS = {"model_deployment", "model", "version", "revision", "track", "code"}
REVISION = "c0ffee0001"
BASE = {"model_deployment": "fraud", "model": "fraud", "version": "2026-11-02", "revision": REVISION}


def _pod_env(track: str) -> dict[str, str]:
    # What the operator's pod template sets (resources/deployment.py).
    return {
        "MODELPILOT_MODEL_DEPLOYMENT": "fraud",
        "MODELPILOT_MODEL_NAME": "fraud",
        "MODELPILOT_MODEL_VERSION": "2026-11-02",
        "MODELPILOT_NAMESPACE": "ml",
        "MODELPILOT_TRACK": track,
        "MODELPILOT_REVISION": REVISION,
    }


def _samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    out: dict[str, list[tuple[dict[str, str], float]]] = defaultdict(list)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[sample.name].append((dict(sample.labels), sample.value))
    return out


def _send_mix(server: RuntimeProcess, name: str) -> None:
    for _ in range(6):
        server.post_json(f"/v2/models/{name}/infer", iris_request())
    server.post_json(f"/v2/models/{name}/infer", b"{not json")
    server.post_json(f"/v2/models/{name}/infer", {"inputs": [{"name": "input-0"}]})
    server.post_json("/v2/models/other/infer", iris_request())
    # Probes, metadata and scrapes are not inference traffic: they must not be counted.
    for path in ("/v2/health/live", "/v2/health/ready", f"/v2/models/{name}", f"/v2/models/{name}/ready", "/metrics"):
        assert server.get(path)[0] == 200


def _by_code(samples: list[tuple[dict[str, str], float]], **labels: str) -> dict[str, float]:
    out = {}
    for sample_labels, value in samples:
        assert set(sample_labels) - {"le"} == LABELS
        if all(sample_labels[k] == v for k, v in labels.items()):
            out[sample_labels["code"]] = value
    return out


def _check(text: str, track: str, expected: dict[str, float]) -> None:
    samples = _samples(text)
    base = {**BASE, "track": track}
    assert _by_code(samples["modelpilot_requests_total"], **base) == expected
    # Every series carries this server's labels, nothing else.
    assert len(samples["modelpilot_requests_total"]) == len(expected)
    assert _by_code(samples["modelpilot_request_duration_seconds_count"], **base) == expected
    buckets: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for sample_labels, value in samples["modelpilot_request_duration_seconds_bucket"]:
        buckets[sample_labels["code"]].append((float(sample_labels["le"]), value))
    for code, count in expected.items():
        series = sorted(buckets[code])
        assert [le for le, _ in series] == [*DURATION_BUCKETS, float("inf")]
        values = [v for _, v in series]
        assert values == sorted(values), "cumulative buckets must not decrease"
        assert values[-1] == count
        assert dict(series)[10.0] == count  # every request here took well under 10 s
    ready = samples["modelpilot_model_ready"]
    assert ready == [(base, 1.0)]
    assert samples["modelpilot_requests_in_flight"] == [(base, 0.0)]
    [(labels, last_request)] = samples["modelpilot_last_request_timestamp_seconds"]
    assert labels == base and last_request > 0


def test_counts_per_code_and_track(models: dict[str, Path]) -> None:
    stable = RuntimeProcess.serve(models["iris"], env=_pod_env("stable"), extra_args=["--name", "fraud"])
    canary = RuntimeProcess.serve(models["failing"], env=_pod_env("canary"), extra_args=["--name", "fraud"])
    with stable, canary:
        stable.wait_ready()
        canary.wait_ready()
        _send_mix(stable, "fraud")
        _send_mix(canary, "fraud")
        _check(stable.metrics_text(), "stable", {"200": 6, "400": 2, "404": 1})
        # The failing model raises on every second predict(): 3 of the 6 valid requests.
        _check(canary.metrics_text(), "canary", {"200": 3, "500": 3, "400": 2, "404": 1})


def test_labels_come_from_the_environment(models: dict[str, Path]) -> None:
    port = free_port()
    env = {"MODELPILOT_MODEL_NAME": "iris", "MODELPILOT_TRACK": "stable", "MODELPILOT_PORT": str(port),
           "MODELPILOT_HOST": "127.0.0.1", "MODELPILOT_MODEL_DIR": str(models["iris"]),
           "MODELPILOT_REVISION": "0a1b2c3d4e"}
    # A bare `modelpilot serve`: name, port, address and model all from the environment.
    with RuntimeProcess(["serve"], port=port, env=env) as server:
        server.wait_ready()
        assert server.post_json("/v2/models/iris/infer", iris_request())[0] == 200
        samples = _samples(server.metrics_text())["modelpilot_requests_total"]
        # No deployment or version in the environment: deployment falls back to the model name.
        assert samples == [
            ({"model_deployment": "iris", "model": "iris", "version": "", "revision": "0a1b2c3d4e", "track": "stable",
              "code": "200"}, 1.0)
        ]


def _gauges(server: RuntimeProcess) -> tuple[float, float]:
    """(modelpilot_requests_in_flight, modelpilot_last_request_timestamp_seconds), each one series
    with this server's labels."""
    samples = _samples(server.metrics_text())
    base = {**BASE, "track": "stable"}
    [(in_flight_labels, in_flight)] = samples["modelpilot_requests_in_flight"]
    [(last_labels, last)] = samples["modelpilot_last_request_timestamp_seconds"]
    assert in_flight_labels == base and last_labels == base
    return in_flight, last


def test_in_flight_and_last_request_time(tmp_path: Path) -> None:
    started, release = tmp_path / "started", tmp_path / "release"
    testmodels.write_slow(tmp_path / "model", delay_seconds=0.0, started_file=started, release_file=release)
    # A worker thread for predict(): the loop keeps answering scrapes while the request is held.
    args = ["--name", "fraud", "--predict-mode", "thread"]
    with RuntimeProcess.serve(tmp_path / "model", env=_pod_env("stable"), extra_args=args) as server:
        server.wait_ready()
        assert _gauges(server) == (0.0, 0.0)
        result: dict[str, Any] = {}
        before = time.time()
        client = threading.Thread(target=lambda: result.update(answer=server.post_json(
            "/v2/models/fraud/infer", iris_request(), timeout=120)))  # fmt: skip
        client.start()
        server.wait_until(started.exists, 60, "predicting")
        in_flight, arrived = _gauges(server)
        assert in_flight == 1
        assert before <= arrived <= time.time()
        # Probes, metadata and scrapes are not inference requests: neither gauge moves.
        for path in ("/v2/health/ready", "/v2/models/fraud", "/metrics"):
            assert server.get(path)[0] == 200
        assert _gauges(server) == (1.0, arrived)
        release.touch()
        client.join(120)
        assert result["answer"][0] == 200
        assert _gauges(server) == (0.0, arrived)
        # Inference traffic for another model name is still inference traffic (a counted 404).
        before = time.time()
        assert server.post_json("/v2/models/other/infer", iris_request())[0] == 404
        in_flight, last = _gauges(server)
        assert in_flight == 0 and last >= before
