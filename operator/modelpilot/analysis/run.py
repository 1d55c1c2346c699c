"""One analysis: the request-count guard, then every metric on the canary (and stable when compared)."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass

from modelpilot.analysis.builtin import BUILTIN, REQUESTS
from modelpilot.analysis.distribution import HISTOGRAM, input_drift, prediction_shift
from modelpilot.analysis.drift_read import CANARY_QUERIES, read_drift
from modelpilot.analysis.evaluate import judge
from modelpilot.analysis.experiment import experiment_report
from modelpilot.analysis.provider import MetricsProvider, ProviderError, QueryRejected
from modelpilot.analysis.queries import render
from modelpilot.api.models import DISTRIBUTION_METRICS, Analysis, Experiment, Metric
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


@dataclass(frozen=True)
class ExperimentRun:
    """The experiment part of an analysis: its spec, the window since the split began, and whether
    its duration is over (then the report is final)."""

    experiment: Experiment
    window: int
    final: bool


def run_analysis(analysis: Analysis, *, namespace: str, name: str, window: int, provider: MetricsProvider,
                 now: dt.datetime, revisions: Mapping[str, str], shift_window: int | None = None,
                 experiment: ExperimentRun | None = None, shift_optional: bool = False) -> AnalysisResult:
    """`revisions`: the serving revision of each track ("canary", "stable"), for {{revision}}.
    `shift_window`: the window of prediction-shift (default `window`); `shift_optional`: the
    shadow added it (see distribution.prediction_shift)."""
    values = {"namespace": namespace, "name": name, "window": f"{window}s"}

    def query(template: str, track: str, seconds: int = window) -> float | None:
        return provider.query(render(template, {**values, "window": f"{seconds}s", "track": track,
                                                "revision": revisions[track]}))

    def histogram(track: str) -> dict[str, float]:
        return provider.query_vector(render(HISTOGRAM, {**values, "window": f"{shift_window or window}s",
                                                        "track": track, "revision": revisions[track]}), "bin")

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
        try:
            if metric.name == "input-drift":
                readings = read_drift(provider, namespace=namespace, name=name, track="canary",
                                      revision=revisions["canary"], only=CANARY_QUERIES)
                measurements.append(input_drift(metric, readings, analysis.min_requests, now))
                continue
            if metric.name in DISTRIBUTION_METRICS:
                measurements.append(prediction_shift(metric, histogram, analysis.min_requests, now,
                                                     optional=shift_optional))
                continue
            template = metric_template(metric)
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
    report = None
    if experiment is not None:
        report = experiment_report(experiment.experiment, lambda t, track: query(t, track, experiment.window),
                                   experiment.final)
    return AnalysisResult(verdict, tuple(measurements), rejected=tuple(rejected), experiment=report)
