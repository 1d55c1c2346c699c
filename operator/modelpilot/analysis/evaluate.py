"""Judging one metric's value against its limits (pure)."""

from __future__ import annotations

import datetime as dt
import math

from modelpilot.api.models import Metric
from modelpilot.rollout.machine import Measurement, Verdict


def _num(value: float) -> str:
    return f"{value:g}"


def threshold_text(metric: Metric) -> str:
    parts = []
    if metric.min is not None:
        parts.append(f">= {_num(metric.min)}")
    if metric.max is not None:
        parts.append(f"<= {_num(metric.max)}")
    compare = metric.compare_to_stable
    if compare is not None:
        if compare.max_ratio is not None:
            parts.append(f"ratio to stable <= {_num(compare.max_ratio)}")
        if compare.max_increase is not None:
            parts.append(f"increase over stable <= {_num(compare.max_increase)}")
    return ", ".join(parts)


def _missing(value: float | None) -> str | None:
    if value is None:
        return "no data"
    if math.isnan(value):
        return "NaN"
    return None


def _against(what: str, value: float, limit: float, failures: list[str]) -> str:
    """One comparison with stable: its detail text; a failure appended when over the limit.
    inf/inf and inf-inf are NaN, which compares False with every limit: that must fail instead."""
    if math.isnan(value):
        failures.append(f"{what} undefined (canary and stable both infinite)")
        return ""
    if value > limit:
        failures.append(f"{what} {_num(round(value, 3))} > {_num(limit)}")
    return f", {what} {_num(round(value, 3))}"


def judge(metric: Metric, canary: float | None, stable: float | None, now: dt.datetime) -> Measurement:
    """Pass, Fail or Inconclusive for one metric. +Inf is a value (e.g. a p99 beyond the largest
    histogram bucket) and is judged like any other; no data and NaN are Inconclusive."""
    threshold = threshold_text(metric)

    def result(verdict: Verdict, detail: str = "") -> Measurement:
        return Measurement(time=now, metric=metric.name, value=canary, threshold=threshold, verdict=verdict,
                           detail=detail)

    missing = _missing(canary)
    if missing:
        return result("Inconclusive", f"canary: {missing}")
    assert canary is not None
    failures = []
    if metric.max is not None and canary > metric.max:
        failures.append(f"{_num(canary)} > {_num(metric.max)}")
    if metric.min is not None and canary < metric.min:
        failures.append(f"{_num(canary)} < {_num(metric.min)}")
    detail = ""
    compare = metric.compare_to_stable
    if compare is not None:
        stable_missing = _missing(stable)
        if stable_missing:
            if failures:
                return result("Fail", "; ".join(failures))
            return result("Inconclusive", f"stable: {stable_missing}")
        assert stable is not None
        detail = f"stable {_num(stable)}"
        if compare.max_ratio is not None:
            ratio = (1.0 if canary == 0 else math.inf) if stable == 0 else canary / stable
            detail += _against("ratio", ratio, compare.max_ratio, failures)
        if compare.max_increase is not None:
            detail += _against("increase", canary - stable, compare.max_increase, failures)
    if failures:
        return result("Fail", "; ".join(failures) + (f" ({detail})" if detail else ""))
    return result("Pass", detail)
