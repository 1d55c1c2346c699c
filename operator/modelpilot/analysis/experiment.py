"""An experiment's comparisons: each metric's queries on both tracks over the experiment so far,
then the statistical test (analysis/stats.py). Interim reports are shown in status; only the
final one (after the duration) decides: one fixed-horizon test per metric, no peeking, so the
false-positive rate is the stated 1 - confidence."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from modelpilot.analysis.provider import ProviderError
from modelpilot.analysis.stats import Comparison, combine, proportion_test, welch_test
from modelpilot.api.models import Experiment, ExperimentMetric
from modelpilot.rollout.stages import ComparisonRecord, ExperimentReport

Query = Callable[[str, str], float | None]  # (template, track) -> value


def _record(metric: ExperimentMetric, comparison: Comparison) -> ComparisonRecord:
    # The record is the comparison (same fields) named after its metric.
    return ComparisonRecord(metric=metric.name, **dataclasses.asdict(comparison))


def compare_metric(metric: ExperimentMetric, experiment: Experiment, query: Query) -> ComparisonRecord:
    try:
        values = {(role, track): query(template, track)
                  for role, template in metric.queries().items() for track in ("canary", "stable")}
    except ProviderError as err:
        return ComparisonRecord(metric=metric.name, verdict="Inconclusive", detail=f"provider error: {err}"[:512])
    options = {"confidence": experiment.confidence, "higher_is_better": metric.higher_is_better,
               "min_samples": experiment.min_samples}
    if metric.type == "Proportion":
        comparison = proportion_test(values["successes", "canary"], values["trials", "canary"],
                                     values["successes", "stable"], values["trials", "stable"], **options)
    else:
        comparison = welch_test(values["sum", "canary"], values["count", "canary"], values["sumOfSquares", "canary"],
                                values["sum", "stable"], values["count", "stable"], values["sumOfSquares", "stable"],
                                **options)
    return _record(metric, comparison)


def experiment_report(experiment: Experiment, query: Query, final: bool) -> ExperimentReport:
    results = tuple(compare_metric(metric, experiment, query) for metric in experiment.metrics)
    return ExperimentReport(final=final, verdict=combine(r.verdict for r in results), results=results)
