"""Reading one track's drift gauges (modelpilot.monitoring.contract) from the metrics provider.

The runtime scores each pod's own window; a track is pooled over its pods here, in PromQL: PSI and
bin shares as a rows-weighted mean (`sum(x * rows) / sum(rows)`), the p-value as the smallest
pod's (the strongest evidence any pod has). Every query selects one ModelDeployment, one track
and that track's revision, like the built-in analysis queries.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from modelpilot.analysis.builtin import SELECTOR
from modelpilot.analysis.provider import MetricsProvider
from modelpilot.analysis.queries import render
from modelpilot.monitoring import contract as c

Bins = dict[str, tuple[float, float | None]]  # bin -> (reference share, live share)


def _sel(metric: str) -> str:
    return f"{metric}{{{SELECTOR}}}"


def _weighted(metric: str, rows: str, by: str) -> str:
    """Each pod's value times its rows, summed by `by`: divided by the track's rows, a pooled mean."""
    return f"sum by ({by}) ({_sel(metric)} * on(pod) group_left {_sel(rows)})"


QUERIES: dict[str, str] = {
    "profile": f"max({_sel(c.PROFILE_LOADED)})",
    "rows": f"sum({_sel(c.WINDOW_ROWS)})",
    "psi": _weighted(c.FEATURE_PSI, c.WINDOW_ROWS, c.FEATURE),
    "p_value": f"min by ({c.FEATURE}) ({_sel(c.FEATURE_P_VALUE)})",
    "bins": _weighted(c.FEATURE_BIN_RATIO, c.WINDOW_ROWS, f"{c.FEATURE}, {c.BIN}, {c.DISTRIBUTION}"),
    "unexported": f"max({_sel(c.UNEXPORTED_FEATURES)})",
    "unexported_over": f"max({_sel(c.UNEXPORTED_OVER)})",
    "unexported_psi": f"max({_sel(c.UNEXPORTED_PSI_MAX)})",
    "prediction_rows": f"sum({_sel(c.PREDICTION_ROWS)})",
    "prediction_psi": f"sum({_sel(c.PREDICTION_PSI)} * on(pod) group_left {_sel(c.PREDICTION_ROWS)})",
    "prediction_p_value": f"min({_sel(c.PREDICTION_P_VALUE)})",
    "prediction_bins": _weighted(c.PREDICTION_BIN_RATIO, c.PREDICTION_ROWS, f"{c.BIN}, {c.DISTRIBUTION}"),
    "feedback_rows": f"sum({_sel(c.FEEDBACK_ROWS)})",
    "accuracy": f"sum({_sel(c.FEEDBACK_ACCURACY)} * on(pod) group_left {_sel(c.FEEDBACK_ROWS)})",
    "error": f"sum({_sel(c.FEEDBACK_ERROR)} * on(pod) group_left {_sel(c.FEEDBACK_ROWS)})",
    "reference_accuracy": f"max({_sel(c.REFERENCE_ACCURACY)})",
    "reference_error": f"max({_sel(c.REFERENCE_ERROR)})",
}
# What input-drift needs of the canary: its rows, its pooled PSI and p-value per feature.
CANARY_QUERIES = ("profile", "rows", "psi", "p_value")


@dataclass(frozen=True)
class Distribution:
    """One pooled distribution against the reference: PSI, p-value and the shares per bin."""

    psi: float | None = None
    p_value: float | None = None
    bins: Bins = field(default_factory=dict)


@dataclass(frozen=True)
class DriftReadings:
    """A track's drift gauges, pooled over its pods. `profile` None: no pod exports them at all."""

    profile: float | None
    rows: float = 0.0
    features: Mapping[str, Distribution] = field(default_factory=dict)
    unexported: tuple[float, float, float | None] | None = None  # count, over threshold, max PSI
    prediction_rows: float = 0.0
    prediction: Distribution | None = None
    feedback_rows: float = 0.0
    accuracy: float | None = None
    error: float | None = None
    reference_accuracy: float | None = None
    reference_error: float | None = None


def _pooled(total: float | None, rows: float) -> float | None:
    return None if total is None or rows <= 0 else total / rows


def _bins(series: list[tuple[dict[str, str], float]], rows: float, key: str | None) -> dict[str, Bins]:
    """{feature (or ""): {bin: (reference, live)}} from weighted bin shares."""
    shares: dict[str, dict[str, dict[str, float]]] = {}
    for labels, value in series:
        owner = labels.get(key, "") if key else ""
        shares.setdefault(owner, {}).setdefault(labels.get(c.BIN, ""), {})[labels.get(c.DISTRIBUTION, "")] = value
    out: dict[str, Bins] = {}
    for owner, by_bin in shares.items():
        out[owner] = {b: (round(_pooled(d.get("reference"), rows) or 0.0, 6),
                          None if "live" not in d else _pooled(d["live"], rows))
                      for b, d in by_bin.items()}
    return out


def read_drift(provider: MetricsProvider, *, namespace: str, name: str, track: str, revision: str,
               only: tuple[str, ...] | None = None) -> DriftReadings:
    """The track's readings (`only`: just these queries). Raises ProviderError when the provider
    gives no usable answer."""
    values = {"namespace": namespace, "name": name, "track": track, "revision": revision}
    wanted = only or tuple(QUERIES)

    def one(key: str) -> float | None:
        return provider.query(render(QUERIES[key], values)) if key in wanted else None

    def many(key: str) -> list[tuple[dict[str, str], float]]:
        return provider.query_series(render(QUERIES[key], values)) if key in wanted else []

    profile = one("profile")
    if profile is None:
        return DriftReadings(profile=None)
    rows = one("rows") or 0.0
    weighted = {labels.get(c.FEATURE, ""): value for labels, value in many("psi")}
    p_values = {labels.get(c.FEATURE, ""): value for labels, value in many("p_value")}
    bins = _bins(many("bins"), rows, c.FEATURE)
    features = {f: Distribution(_pooled(w, rows), p_values.get(f), bins.get(f, {})) for f, w in weighted.items()}
    count = one("unexported")
    unexported = None if not count else (count, one("unexported_over") or 0.0, one("unexported_psi"))
    prediction_rows = one("prediction_rows") or 0.0
    prediction = None
    if prediction_rows > 0:
        prediction = Distribution(_pooled(one("prediction_psi"), prediction_rows), one("prediction_p_value"),
                                  _bins(many("prediction_bins"), prediction_rows, None).get("", {}))
    feedback_rows = one("feedback_rows") or 0.0
    return DriftReadings(
        profile=profile, rows=rows, features=features, unexported=unexported,
        prediction_rows=prediction_rows, prediction=prediction, feedback_rows=feedback_rows,
        accuracy=_pooled(one("accuracy"), feedback_rows), error=_pooled(one("error"), feedback_rows),
        reference_accuracy=one("reference_accuracy"), reference_error=one("reference_error"),
    )
