"""Built-in queries over the runtime's metrics contract (docs/runtime.md).

`modelpilot_requests_total` and `modelpilot_request_duration_seconds` carry the labels
model_deployment, model, version, revision, track and code from the runtime; Prometheus adds
namespace and pod at scrape. Every query selects one ModelDeployment, one track and that track's
revision, and aggregates to one series.
"""

from __future__ import annotations

# By revision as well as track: a canary is judged on its own pods' traffic only, never on an
# earlier canary's (the series of a replaced revision stay in Prometheus for a while).
SELECTOR = 'namespace="{{namespace}}", model_deployment="{{name}}", track="{{track}}", revision="{{revision}}"'

BUILTIN: dict[str, str] = {
    # Percent of responses that are 5xx. A track without any 5xx has no 5xx series at all, so the
    # numerator falls back to 0; without requests the denominator is empty and so is the result.
    "error-rate": (
        f'100 * (sum(rate(modelpilot_requests_total{{{SELECTOR}, code=~"5.."}}[{{{{window}}}}])) or vector(0))'
        f" / sum(rate(modelpilot_requests_total{{{SELECTOR}}}[{{{{window}}}}]))"
    ),
    # 99th percentile latency in milliseconds.
    "latency-p99": (
        "1000 * histogram_quantile(0.99, sum by (le) "
        f"(rate(modelpilot_request_duration_seconds_bucket{{{SELECTOR}}}[{{{{window}}}}])))"
    ),
}

# Requests answered in the window: fewer than minRequests make the analysis Inconclusive.
REQUESTS = f"sum(increase(modelpilot_requests_total{{{SELECTOR}}}[{{{{window}}}}]))"
