"""The activator's metrics, in a registry of its own (docs/activator.md, Metrics).

KEDA scales a Deployment from zero on `modelpilot_activator_requests_waiting`. The target labels
are `model_namespace` and `model_deployment`, not `namespace`: Prometheus adds the scraped pod's
own `namespace` label, and the two would clash. Only prometheus_client is imported here, so the
operator can take the names from this module without the `[server]` extra.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.metrics import MetricWrapperBase

from modelpilot.activator.target import Target

WAITING = "modelpilot_activator_requests_waiting"
REQUESTS = "modelpilot_activator_requests_total"
LAST_REQUEST = "modelpilot_activator_last_request_timestamp_seconds"
ACTIVATIONS = "modelpilot_activator_activations_total"
COLD_START = "modelpilot_activator_cold_start_seconds"
HOLD = "modelpilot_activator_hold_seconds"

LABELS = ("model_namespace", "model_deployment", "track")
CODE = "code"
# The status of a request whose client went away before it was answered (nginx's convention).
CLIENT_GONE = 499
# From a request forwarded at once to one held for the default hold timeout (300 s).
HOLD_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 180.0, 300.0)
CONTENT_TYPE = CONTENT_TYPE_LATEST
# The labels of requests whose target header was missing or malformed (counted, with their 400).
NO_TARGET = Target("", "", "")


@dataclass
class TargetMetrics:
    """One target's series, resolved once (labels() takes a lock and builds a tuple per call)."""

    waiting: MetricWrapperBase
    last_request: MetricWrapperBase
    activations: MetricWrapperBase
    hold: MetricWrapperBase


class ActivatorMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self._waiting = Gauge(WAITING, "Requests held now: no upstream connection yet.", LABELS, registry=r)
        self._requests = Counter(REQUESTS, "Requests answered, by HTTP status code (499: the client went away).",
                                 (*LABELS, CODE), registry=r)  # fmt: skip
        self._last = Gauge(LAST_REQUEST, "Unix time of the last request's arrival.", LABELS, registry=r)
        self._activations = Counter(ACTIVATIONS, "Activations started: a request found its model at zero.",
                                    LABELS, registry=r)  # fmt: skip
        self._cold_start = Gauge(COLD_START, "Seconds the last activation took, from its first request's arrival "
                                 "to the first upstream connection.", LABELS, registry=r)  # fmt: skip
        self._hold = Histogram(HOLD, "Seconds each request was held before its upstream connection (or until "
                               "it gave up).", LABELS, buckets=HOLD_BUCKETS, registry=r)  # fmt: skip
        self._targets: dict[Target, TargetMetrics] = {}
        # Apart from the target's other series: a request without a valid target has only a code.
        self._codes: dict[tuple[Target, int], MetricWrapperBase] = {}

    def target(self, target: Target) -> TargetMetrics:
        found = self._targets.get(target)
        if found is None:
            values = (target.namespace, target.deployment, target.track)
            found = self._targets[target] = TargetMetrics(
                waiting=self._waiting.labels(*values),
                last_request=self._last.labels(*values),
                activations=self._activations.labels(*values),
                hold=self._hold.labels(*values),
            )
        return found

    def answered(self, target: Target, code: int) -> None:
        child = self._codes.get((target, code))
        if child is None:
            values = (target.namespace, target.deployment, target.track, str(code))
            child = self._codes[target, code] = self._requests.labels(*values)
        child.inc()  # type: ignore[attr-defined]

    def cold_start(self, target: Target, seconds: float) -> None:
        # Resolved here, not with the target's other series: no `0` before its first activation.
        self._cold_start.labels(target.namespace, target.deployment, target.track).set(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
