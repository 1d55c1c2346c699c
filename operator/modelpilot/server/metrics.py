"""The metrics contract the canary analysis reads (docs/runtime.md, Metrics), emitted by the runtime itself.

`modelpilot_requests_total{model_deployment, model, version, revision, track, code}` and
`modelpilot_request_duration_seconds` (histogram, same labels); `modelpilot_predictions_total` counts
the predicted rows of successful inferences by `bin` instead of `code` (`modelpilot.server.predictions`);
`modelpilot_requests_in_flight` and `modelpilot_last_request_timestamp_seconds` (gauges without `code`)
tell an idle server from a busy one (scale-to-zero).
Label values come from the pod's environment; Prometheus adds `namespace` and `pod` at scrape.
The drift gauges go to the same registry (`modelpilot.server.drift_metrics`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.process_collector import ProcessCollector

from modelpilot.server.predictions import PredictionBinner

LABELS = ("model_deployment", "model", "version", "revision", "track", "code")
# The labels every series of this process carries (the drift gauges add theirs to these).
BASE_LABELS = LABELS[:-1]
PREDICTION_LABELS = (*BASE_LABELS, "bin")
log = logging.getLogger("modelpilot.server")

# Roughly x1.5 per bucket from 0.5 ms to 10 s: histogram_quantile interpolates inside a bucket, so
# a p99 anywhere between 1 ms and 10 s is read with at most ~half a bucket's (~25 %) error.
DURATION_BUCKETS = (
    0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.004, 0.005, 0.0075,
    0.01, 0.015, 0.02, 0.03, 0.04, 0.05, 0.075,
    0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75,
    1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 7.5, 10.0,
)  # fmt: skip

CONTENT_TYPE = CONTENT_TYPE_LATEST


@dataclass(frozen=True)
class MetricLabels:
    """The constant label values of this server process."""

    model_deployment: str
    model: str
    version: str
    track: str
    # The serving revision (a hash of the serving template): what analyses select, so one canary
    # is never judged on the traffic of an earlier one with the same track or version.
    revision: str = ""

    def values(self) -> tuple[str, str, str, str, str]:
        """The values of BASE_LABELS, in order."""
        return (self.model_deployment, self.model, self.version, self.revision, self.track)


class RequestMetrics:
    """The request counter and histogram, plus readiness, in a registry of their own (so several
    servers in one test process never collide in the global registry)."""

    def __init__(self, labels: MetricLabels, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.labels = labels
        self._requests = Counter(
            "modelpilot_requests_total",
            "Inference requests answered, by HTTP status code.",
            LABELS,
            registry=self.registry,
        )
        self._duration = Histogram(
            "modelpilot_request_duration_seconds",
            "Time from receiving an inference request to sending its response.",
            LABELS,
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self._ready = Gauge(
            "modelpilot_model_ready",
            "1 when the model is loaded and the server answers inference requests.",
            BASE_LABELS,
            registry=self.registry,
        )
        self._predictions = Counter(
            "modelpilot_predictions_total",
            "Predicted rows of the first output of successful inference requests, by class or value bin.",
            PREDICTION_LABELS,
            registry=self.registry,
        )
        in_flight = Gauge(
            "modelpilot_requests_in_flight",
            "Inference requests being processed now.",
            BASE_LABELS,
            registry=self.registry,
        )
        last_request = Gauge(
            "modelpilot_last_request_timestamp_seconds",
            "Unix time of the last inference request's arrival (0: none yet).",
            BASE_LABELS,
            registry=self.registry,
        )
        ProcessCollector(registry=self.registry)
        # The labels never change in a process: resolved once, so the hot path skips labels().
        self._in_flight = in_flight.labels(*self._base())
        self._last_request = last_request.labels(*self._base())
        # Children are resolved once per status code: labels() takes a lock and builds a tuple.
        self._children: dict[int, tuple[MetricWrapperBase, MetricWrapperBase]] = {}
        self._binner = PredictionBinner()
        self._bins: dict[str, MetricWrapperBase] = {}  # bounded: the float bins, NaN, the class bins, other
        self._ready.labels(*self._base()).set(0)

    def _base(self) -> tuple[str, str, str, str, str]:
        return self.labels.values()

    def request_started(self) -> None:
        """An inference request arrived: in flight until `request_finished`."""
        self._last_request.set(time.time())
        self._in_flight.inc()

    def request_finished(self) -> None:
        self._in_flight.dec()

    def observe(self, code: int, seconds: float) -> None:
        children = self._children.get(code)
        if children is None:
            values = (*self._base(), str(code))
            children = (self._requests.labels(*values), self._duration.labels(*values))
            self._children[code] = children
        children[0].inc()  # type: ignore[attr-defined]
        children[1].observe(seconds)  # type: ignore[attr-defined]

    def observe_predictions(self, output: object) -> None:
        """Count each row of `output`, the first output tensor of a successful inference, in its bin.
        Never raises: an output that is not one value per row (or anything unexpected) is not counted."""
        try:
            counts = self._binner.count(output)
        except Exception as err:  # a metric must never fail a request that succeeded
            log.debug("predictions not counted: %s: %s", type(err).__name__, err)
            return
        for name, rows in counts.items():
            child = self._bins.get(name)
            if child is None:
                child = self._bins[name] = self._predictions.labels(*self._base(), name)
            child.inc(rows)  # type: ignore[attr-defined]

    def set_ready(self, ready: bool) -> None:
        self._ready.labels(*self._base()).set(1 if ready else 0)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
