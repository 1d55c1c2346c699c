"""The operator's own Prometheus metrics, served on /metrics (port: MODELPILOT_METRICS_PORT, 0 = off)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client import Counter, Gauge, Histogram, start_http_server

from modelpilot.times import parse_time

RECONCILES = Counter("modelpilot_reconciles_total", "Reconciles of ModelDeployments, by result.", ["result"])
RECONCILE_SECONDS = Histogram("modelpilot_reconcile_duration_seconds", "Duration of one reconcile.",
                              buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
API_WRITES = Counter("modelpilot_api_writes_total", "Write requests sent to the API server, by kind of write.",
                     ["write"])
NOTIFICATIONS = Counter("modelpilot_notifications_total", "Webhook notifications by target type (CloudEvents, "
                        "Slack) and result: delivered, retried (an attempt failed, tried again), failed (given up "
                        "or refused), dropped (queue full).", ["type", "result"])


def serve(port: int, address: str = "0.0.0.0") -> None:
    if port > 0:
        start_http_server(port, addr=address)

CANARY_STATES = ("None", "Progressing", "Paused", "Promoting", "RolledBack")
CANARY_WEIGHT = Gauge("modelpilot_canary_weight_percent", "Canary traffic weight.", ["namespace", "name"])
CANARY_STATE = Gauge("modelpilot_canary_state", "1 for the canary's current state, 0 for the others.",
                     ["namespace", "name", "state"])
ANALYSES = Counter("modelpilot_analysis_measurements_total", "Metric measurements of canary analyses, by verdict.",
                   ["namespace", "name", "metric", "verdict"])
ANALYSIS_VALUE = Gauge("modelpilot_analysis_value", "The last measured value of each analysis metric.",
                       ["namespace", "name", "metric"])
PROMOTIONS = Counter("modelpilot_promotions_total", "Canaries promoted to stable.", ["namespace", "name"])
ROLLBACKS = Counter("modelpilot_rollbacks_total", "Canaries rolled back (failed analyses, deadline, errors, abort).",
                    ["namespace", "name"])
ANALYSIS_LATENESS = Histogram(
    "modelpilot_analysis_lateness_seconds", "How long after its due time a canary analysis started.",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30))
CACHED_OBJECTS = Gauge("modelpilot_cached_objects", "Objects held in the operator's watch cache.")

DRIFT_DETECTED = Gauge("modelpilot_drift_detected", "1 while the condition (DataDrift, ConceptDrift) is True, 0 "
                       "while False; absent while Unknown.", ["namespace", "name", "condition"])
DRIFT_PSI = Gauge("modelpilot_drift_psi", "The stable track's largest feature PSI and its prediction PSI.",
                  ["namespace", "name", "of"])
DRIFT_ACCURACY = Gauge("modelpilot_drift_live_quality", "Live accuracy (classification) or mean absolute error "
                       "(regression) from feedback.", ["namespace", "name", "metric"])

BATCH_PHASES = ("Pending", "Running", "Succeeded", "Failed")
BATCH_PHASE = Gauge("modelpilot_batch_phase", "1 for a BatchPrediction's current phase, 0 for the others.",
                    ["namespace", "name", "phase"])
BATCH_ROWS = Gauge("modelpilot_batch_rows", "Rows of a BatchPrediction's succeeded shards (its latest run).",
                   ["namespace", "name", "rows"])
BATCH_SHARDS = Gauge("modelpilot_batch_shards", "Shards of a BatchPrediction's latest run, by state.",
                     ["namespace", "name", "state"])
_PER_BATCH = (BATCH_PHASE, BATCH_ROWS, BATCH_SHARDS)

SCALED_TO_ZERO = Gauge("modelpilot_serverless_scaled_to_zero", "1 while the stable track is at zero pods.",
                       ["namespace", "name"])
LAST_REQUEST = Gauge("modelpilot_serverless_last_request_timestamp_seconds",
                     "The last request seen for a scale-to-zero track (unix time, to about 30 s).",
                     ["namespace", "name"])
COLD_START = Gauge("modelpilot_serverless_cold_start_seconds",
                   "Cold starts of a scale-to-zero track: the last one and the median of the last 20.",
                   ["namespace", "name", "statistic"])
_PER_OBJECT = (SCALED_TO_ZERO, LAST_REQUEST, COLD_START, CANARY_WEIGHT, CANARY_STATE, ANALYSES, ANALYSIS_VALUE,
               PROMOTIONS, ROLLBACKS, DRIFT_DETECTED,
               DRIFT_PSI, DRIFT_ACCURACY)


def record_drift(namespace: str, name: str, conditions: Iterable[Any], status: Mapping[str, Any] | None) -> None:
    """The last drift evaluation of a ModelDeployment (conditions with .type and .status True/False/None)."""
    for cond in conditions:
        if cond.status is None:
            _remove(DRIFT_DETECTED, namespace, name, cond.type)
        else:
            DRIFT_DETECTED.labels(namespace, name, cond.type).set(1 if cond.status else 0)
    status = status or {}
    features = [f.get("psi") for f in status.get("features") or [] if f.get("psi") is not None]
    prediction = (status.get("prediction") or {}).get("psi")
    for of, value in (("feature", max(features) if features else None), ("prediction", prediction)):
        if value is None:
            _remove(DRIFT_PSI, namespace, name, of)
        else:
            DRIFT_PSI.labels(namespace, name, of).set(value)
    accuracy = status.get("accuracy") or {}
    if accuracy.get("live") is not None:
        DRIFT_ACCURACY.labels(namespace, name, accuracy["metric"]).set(accuracy["live"])


def _remove(metric: Gauge, *labels: str) -> None:
    with contextlib.suppress(KeyError):  # never set
        metric.remove(*labels)


def record_batch(namespace: str, name: str, phase: str | None, rows: tuple[int, int, int] | None,
                 shards: tuple[int, int, int, int] | None) -> None:
    """A BatchPrediction's phase, rows and shards (total, succeeded, failed, running) as last planned."""
    if phase is not None:
        for candidate in BATCH_PHASES:
            BATCH_PHASE.labels(namespace, name, candidate).set(1 if candidate == phase else 0)
    if rows is not None:
        for label, value in zip(("in", "out", "failed"), rows, strict=True):
            BATCH_ROWS.labels(namespace, name, label).set(value)
    if shards is not None:
        for state, value in zip(("total", "succeeded", "failed", "running"), shards, strict=True):
            BATCH_SHARDS.labels(namespace, name, state).set(value)


def forget_batch(namespace: str, name: str) -> None:
    _forget(_PER_BATCH, namespace, name)


def record_serverless(namespace: str, name: str, status: Mapping[str, Any]) -> None:
    """status.serverless as written (camelCase, RFC 3339 times)."""
    SCALED_TO_ZERO.labels(namespace, name).set(1 if status.get("scaledToZero") else 0)
    last = parse_time(status.get("lastRequestTime"))
    if last is not None:
        LAST_REQUEST.labels(namespace, name).set(last.timestamp())
    for statistic, key in (("last", "lastColdStartSeconds"), ("p50", "p50ColdStartSeconds")):
        if isinstance(status.get(key), int | float):
            COLD_START.labels(namespace, name, statistic).set(status[key])


def forget_object(namespace: str, name: str) -> None:
    """Drop every series of a ModelDeployment that is gone, so deleted objects leave no series."""
    _forget(_PER_OBJECT, namespace, name)


def _forget(metrics: tuple[Any, ...], namespace: str, name: str) -> None:
    for metric in metrics:
        labelnames = metric._labelnames  # the label order remove() expects
        seen: set[tuple[str, ...]] = set()
        for family in metric.collect():
            for sample in family.samples:
                if sample.labels.get("namespace") == namespace and sample.labels.get("name") == name:
                    seen.add(tuple(sample.labels[label] for label in labelnames))
        for values in seen:
            metric.remove(*values)
