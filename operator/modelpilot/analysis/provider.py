"""Prometheus as the metrics provider (prometheus-api-client), with a timeout and no hidden retries.

`query` returns one float, None for no data, or raises ProviderError for anything that is not an
answer: unreachable, timeout, an HTTP error (e.g. 400 for a bad query), more than one series, or a
non-numeric result. Errors are never turned into values.
"""

from __future__ import annotations

import re
from typing import Any, Protocol

import requests
import urllib3
from prometheus_api_client import PrometheusApiClientException, PrometheusConnect
from urllib3.util.retry import Retry


class ProviderError(Exception):
    """The metrics provider gave no usable answer."""


class QueryRejected(ProviderError):
    """The provider refused the query itself as invalid (Prometheus: HTTP 400 bad_data): the
    query is wrong, not the provider down."""


class MetricsProvider(Protocol):
    def query(self, promql: str) -> float | None: ...

    def query_vector(self, promql: str, label: str) -> dict[str, float]:
        """Every series of the result by the value of `label` (a histogram by bin, say)."""
        ...

    def query_series(self, promql: str) -> list[tuple[dict[str, str], float]]:
        """Every series of an instant vector: its labels and its value."""
        ...


class PrometheusProvider:
    def __init__(self, url: str, timeout: float = 5.0, insecure_skip_verify: bool = False) -> None:
        self.url = url
        # Retries would stretch one analysis past its interval; the state machine counts errors instead.
        # TLS certificates are verified (REQUESTS_CA_BUNDLE names a private CA) unless told otherwise.
        self._client = PrometheusConnect(url=url, disable_ssl=insecure_skip_verify, retry=Retry(total=0),
                                         timeout=timeout)
        self._timeout = timeout

    def query(self, promql: str) -> float | None:
        return single_value(self._query(promql))

    def query_vector(self, promql: str, label: str) -> dict[str, float]:
        return by_label(self._query(promql), label)

    def query_series(self, promql: str) -> list[tuple[dict[str, str], float]]:
        return series_of(self._query(promql))

    def _query(self, promql: str) -> Any:
        try:
            return self._client.custom_query(promql, params={"timeout": f"{self._timeout:g}s"})
        except requests.exceptions.RequestException as err:
            if _timed_out(err):
                raise ProviderError(f"prometheus at {self.url} timed out after {self._timeout:g}s") from None
            raise ProviderError(f"prometheus at {self.url} unreachable: {type(err).__name__}") from None
        except PrometheusApiClientException as err:
            if re.search(r"HTTP Status Code 400\b", str(err)):
                raise QueryRejected(f"prometheus rejected the query: {str(err)[:300]}") from None
            raise ProviderError(f"prometheus failed the query: {str(err)[:300]}") from None


def _timed_out(err: requests.exceptions.RequestException) -> bool:
    """With retries off, urllib3 wraps a read timeout in MaxRetryError, which requests reports as a
    ConnectionError: look inside."""
    if isinstance(err, requests.exceptions.Timeout):
        return True
    reason = getattr(err.args[0], "reason", None) if err.args else None
    return isinstance(reason, urllib3.exceptions.TimeoutError)


def single_value(result: Any) -> float | None:
    """The one number in an instant-query result (vector or scalar)."""
    if isinstance(result, list) and len(result) == 2 and not isinstance(result[0], dict):
        return _number(result[1])  # scalar: [time, "value"]
    if not isinstance(result, list):
        raise ProviderError(f"unexpected result type {type(result).__name__}")
    if not result:
        return None
    if len(result) > 1:
        raise ProviderError(f"query returned {len(result)} series; aggregate it to one (e.g. with sum)")
    sample = result[0].get("value")
    if not isinstance(sample, list) or len(sample) != 2:
        raise ProviderError("query returned a range vector or no value; use an instant vector")
    return _number(sample[1])


def by_label(result: Any, label: str) -> dict[str, float]:
    """An instant vector as {value of `label`: sample}; series without the label are refused."""
    if not isinstance(result, list) or (len(result) == 2 and not isinstance(result[0], dict)):
        raise ProviderError(f"expected an instant vector by {label}, got {type(result).__name__}")
    out: dict[str, float] = {}
    for series in result:
        key = (series.get("metric") or {}).get(label)
        sample = series.get("value")
        if key is None or not isinstance(sample, list) or len(sample) != 2:
            raise ProviderError(f"a series without the label {label!r} or without a value")
        out[str(key)] = _number(sample[1])
    return out


def series_of(result: Any) -> list[tuple[dict[str, str], float]]:
    """An instant vector as (labels, sample) pairs."""
    if not isinstance(result, list) or (len(result) == 2 and not isinstance(result[0], dict)):
        raise ProviderError(f"expected an instant vector, got {type(result).__name__}")
    out: list[tuple[dict[str, str], float]] = []
    for series in result:
        sample = series.get("value")
        if not isinstance(sample, list) or len(sample) != 2:
            raise ProviderError("a series without a value")
        out.append(({str(k): str(v) for k, v in (series.get("metric") or {}).items()}, _number(sample[1])))
    return out


def _number(text: Any) -> float:
    try:
        return float(text)  # Prometheus spells NaN and +Inf as strings float() reads
    except (TypeError, ValueError):
        raise ProviderError(f"non-numeric sample {text!r}") from None
