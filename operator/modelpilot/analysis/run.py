"""One analysis: the request-count guard, then every metric on the canary (and stable when compared)."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping

from modelpilot.analysis.builtin import BUILTIN, REQUESTS
from modelpilot.analysis.evaluate import judge
from modelpilot.analysis.provider import MetricsProvider, ProviderError, QueryRejected
from modelpilot.analysis.queries import render
from modelpilot.api.models import Analysis, Metric
from modelpilot.rollout.machine import AnalysisResult, Measurement, Verdict

# Worst first: one failing metric is a failure even if another could not be measured.
PRECEDENCE: tuple[Verdict, ...] = ("Fail", "Error", "Inconclusive", "Pass")


def window_seconds(interval: float, scrape_interval: float) -> int:
    """rate() needs at least two samples: the window is max(interval, 4 x scrape interval)."""
    return math.ceil(max(interval, 4 * scrape_interval))


def metric_template(metric: Metric) -> str:
    if metric.query:
        return metric.query
    return BUILTIN[metric.template or metric.name]


def run_analysis(analysis: Analysis, *, namespace: str, name: str, window: int, provider: MetricsProvider,
                 now: dt.datetime, revisions: Mapping[str, str]) -> AnalysisResult:
    """`revisions`: the serving revision of each track ("canary", "stable"), for {{revision}}."""
    values = {"namespace": namespace, "name": name, "window": f"{window}s"}

    def query(template: str, track: str) -> float | None:
        return provider.query(render(template, {**values, "track": track, "revision": revisions[track]}))

    try:
        requests = query(REQUESTS, "canary")
    except ProviderError as err:
        return AnalysisResult("Error", (Measurement(now, "requests", None, f">= {analysis.min_requests}", "Error",
                                                    str(err)),))
    count = 0.0 if requests is None or math.isnan(requests) else requests
    if count < analysis.min_requests:
        reason = f"{count:.0f} canary requests in {window}s < minRequests {analysis.min_requests}"
        return AnalysisResult("Inconclusive", (Measurement(now, "requests", count, f">= {analysis.min_requests}",
                                                           "Inconclusive", reason),))

    measurements: list[Measurement] = []
    rejected: list[tuple[str, str]] = []
    for metric in analysis.metrics:
        template = metric_template(metric)
        try:
            canary = query(template, "canary")
            stable = query(template, "stable") if metric.compare_to_stable is not None else None
        except QueryRejected as err:
            measurements.append(Measurement(now, metric.name, None, "", "Error", str(err)))
            if metric.query:
                rejected.append((metric.query, str(err)))
            continue
        except ProviderError as err:
            measurements.append(Measurement(now, metric.name, None, "", "Error", str(err)))
            continue
        measurements.append(judge(metric, canary, stable, now))
    verdicts = {m.verdict for m in measurements}
    verdict = next((v for v in PRECEDENCE if v in verdicts), "Pass")
    return AnalysisResult(verdict, tuple(measurements), rejected=tuple(rejected))
