"""The operator's own Prometheus metrics, served on /metrics (port: MODELPILOT_METRICS_PORT, 0 = off)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram, start_http_server

RECONCILES = Counter("modelpilot_reconciles_total", "Reconciles of ModelDeployments, by result.", ["result"])
RECONCILE_SECONDS = Histogram("modelpilot_reconcile_duration_seconds", "Duration of one reconcile.",
                              buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
API_WRITES = Counter("modelpilot_api_writes_total", "Write requests sent to the API server, by kind of write.",
                     ["write"])


def serve(port: int, address: str = "0.0.0.0") -> None:
    if port > 0:
        start_http_server(port, addr=address)
