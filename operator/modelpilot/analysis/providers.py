"""Metric providers by name: `spec.rollout.canary.analysis.provider` picks one.

A provider answers one PromQL-like query with one number (or None for no data) and raises
ProviderError for anything that is not an answer (see provider.py). A new provider is one module
with a class that has `query(text) -> float | None`, plus one entry here.
"""

from __future__ import annotations

from collections.abc import Callable

from modelpilot.analysis.provider import MetricsProvider, PrometheusProvider
from modelpilot.settings import OperatorSettings

PROVIDERS: dict[str, Callable[[OperatorSettings], MetricsProvider]] = {
    "prometheus": lambda settings: PrometheusProvider(settings.prometheus_url, timeout=settings.query_timeout,
                                                      insecure_skip_verify=settings.prometheus_insecure_skip_verify),
}


class Providers:
    """One provider instance per name, made on first use."""

    def __init__(self, settings: OperatorSettings) -> None:
        self._settings = settings
        self._made: dict[str, MetricsProvider] = {}

    def get(self, name: str) -> MetricsProvider:
        if name not in self._made:
            self._made[name] = PROVIDERS[name](self._settings)
        return self._made[name]
