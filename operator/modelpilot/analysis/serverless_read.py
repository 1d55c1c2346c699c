"""Reading a track's demand history from the metrics provider: its last request (the model
servers' and the activator's gauges) and the activator's latest activation."""

from __future__ import annotations

import datetime as dt

from modelpilot.analysis.provider import MetricsProvider, ProviderError
from modelpilot.control.serverless import ServerlessReading

# The gauges persist in Prometheus only while their pods do: look back far enough to see the
# last request of pods that have just gone (the status keeps it beyond that).
LOOKBACK = "15m"


def reading_queries(namespace: str, name: str, track: str = "stable") -> dict[str, str]:
    server = f'namespace="{namespace}",model_deployment="{name}",track="{track}"'
    activator = f'model_namespace="{namespace}",model_deployment="{name}",track="{track}"'
    return {
        "served": f"max(max_over_time(modelpilot_last_request_timestamp_seconds{{{server}}}[{LOOKBACK}]))",
        "held": f"max(max_over_time(modelpilot_activator_last_request_timestamp_seconds{{{activator}}}[{LOOKBACK}]))",
        "activations": f"sum(modelpilot_activator_activations_total{{{activator}}})",
        "cold_start": f"max(modelpilot_activator_cold_start_seconds{{{activator}}})",
    }


def _time(value: float | None) -> dt.datetime | None:
    if value is None or value <= 0:
        return None
    return dt.datetime.fromtimestamp(value, dt.UTC)


def read_serverless(provider: MetricsProvider, *, namespace: str, name: str, start: dt.datetime,
                    scrape_interval: float) -> ServerlessReading:
    """One reading, as of one scrape interval before `start` (what Prometheus can know by then); a
    provider error is a reading with `error` (never an idle track)."""
    start = start - dt.timedelta(seconds=scrape_interval)
    try:
        values = {key: provider.query(query) for key, query in reading_queries(namespace, name).items()}
    except ProviderError as err:
        return ServerlessReading(at=start, error=str(err)[:300])
    times = [t for t in (_time(values["served"]), _time(values["held"])) if t is not None]
    activations = values["activations"]
    return ServerlessReading(at=start, last_request=max(times) if times else None,
                             activations=None if activations is None else int(activations),
                             cold_start=values["cold_start"])
