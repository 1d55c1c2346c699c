"""The activator's metric series: names, labels, one resolution per target (pure: no aiohttp)."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from modelpilot.activator.metrics import NO_TARGET, ActivatorMetrics
from modelpilot.activator.target import Target


def _series(metrics: ActivatorMetrics) -> dict[str, list[tuple[dict[str, str], float]]]:
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(metrics.exposition().decode()):
        for sample in family.samples:
            if not sample.name.endswith("_created"):
                out.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return out


def test_metric_series() -> None:
    metrics = ActivatorMetrics()
    fraud = Target("ml", "fraud", "canary")
    labels = {"model_namespace": "ml", "model_deployment": "fraud", "track": "canary"}
    series = metrics.target(fraud)
    assert metrics.target(fraud) is series  # resolved once
    series.waiting.inc()
    series.activations.inc()
    series.hold.observe(0.3)
    metrics.answered(fraud, 200)
    metrics.answered(fraud, 200)
    metrics.answered(NO_TARGET, 400)  # a request without a valid target: only its code is counted
    found = _series(metrics)
    assert found["modelpilot_activator_requests_waiting"] == [(labels, 1.0)]
    assert found["modelpilot_activator_activations_total"] == [(labels, 1.0)]
    assert found["modelpilot_activator_last_request_timestamp_seconds"] == [(labels, 0.0)]
    assert "modelpilot_activator_cold_start_seconds" not in found  # none before the first activation
    assert found["modelpilot_activator_hold_seconds_count"] == [(labels, 1.0)]
    assert sorted(found["modelpilot_activator_requests_total"], key=lambda s: s[0]["code"]) == [
        ({**labels, "code": "200"}, 2.0),
        ({"model_namespace": "", "model_deployment": "", "track": "", "code": "400"}, 1.0),
    ]
    metrics.cold_start(fraud, 2.5)
    assert _series(metrics)["modelpilot_activator_cold_start_seconds"] == [(labels, 2.5)]
