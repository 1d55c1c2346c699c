"""CanaryState <-> status.canary (camelCase dicts), and CanaryConfig from the parsed spec. Pure."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from modelpilot.api.models import ModelDeploymentSpec
from modelpilot.rollout.machine import CanaryConfig, CanaryState, Measurement
from modelpilot.rollout.stages import ComparisonRecord, ExperimentReport, StageConfig

_COMPARISON_FIELDS = (("canary", "canary"), ("stable", "stable"), ("difference", "difference"),
                      ("ci_low", "ciLow"), ("ci_high", "ciHigh"), ("p_value", "pValue"),
                      ("samples_canary", "samplesCanary"), ("samples_stable", "samplesStable"))


def config_from_spec(spec: ModelDeploymentSpec) -> CanaryConfig:
    canary = spec.rollout.canary
    analysis = canary.analysis
    # Target Edge: the steps are batches of nodes (percent of the fleet), judged every edge interval.
    edge = spec.edge_spec.rollout if spec.target == "Edge" else None
    return CanaryConfig(
        steps=tuple(edge.batches if edge else canary.steps),
        interval=edge.interval_seconds if edge else canary.interval_seconds,
        initial_delay=canary.initial_delay_seconds,
        failure_threshold=canary.failure_threshold,
        progress_deadline=canary.progress_deadline_seconds,
        on_inconclusive=analysis.on_inconclusive,
        on_provider_error=analysis.on_provider_error,
        max_provider_errors=analysis.max_provider_errors,
        stages=stage_config(spec),
    )


def stage_config(spec: ModelDeploymentSpec) -> StageConfig:
    canary = spec.rollout.canary
    shadow = canary.shadow
    experiment = spec.rollout.experiment if spec.rollout.strategy == "Experiment" else None
    return StageConfig(
        shadow_seconds=shadow.duration_seconds if shadow else None,
        mirror_percent=shadow.percent if shadow else 0,
        match=bool(canary.match) and experiment is None,
        match_seconds=canary.match_duration_seconds,
        experiment_seconds=experiment.duration_seconds if experiment else None,
        experiment_split=experiment.split if experiment else 0,
        on_conclusion=experiment.on_conclusion if experiment else "Report",
    )


def stamp(value: dt.datetime | None) -> str | None:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def parse_time(value: Any) -> dt.datetime | None:
    if not value:
        return None
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def measurement_to_status(m: Measurement) -> dict[str, Any]:
    record: dict[str, Any] = {"time": stamp(m.time), "metric": m.metric, "threshold": m.threshold,
                              "verdict": m.verdict}
    if m.value is not None and math.isfinite(m.value):
        record["value"] = round(m.value, 6)
    detail = m.detail
    if m.value is not None and not math.isfinite(m.value):
        detail = (f"value {m.value}; " + detail) if detail else f"value {m.value}"
    if detail:
        record["detail"] = detail[:512]
    return record


def measurement_from_status(record: dict[str, Any]) -> Measurement:
    return Measurement(time=parse_time(record["time"]) or dt.datetime.now(dt.UTC), metric=record["metric"],
                       value=record.get("value"), threshold=record.get("threshold") or "",
                       verdict=record["verdict"], detail=record.get("detail") or "")


def to_status(canary: CanaryState) -> dict[str, Any]:
    out: dict[str, Any] = {
        "state": canary.state, "version": canary.version, "revision": canary.revision, "weight": canary.weight,
        "step": canary.step, "failedChecks": canary.failed_checks, "providerErrors": canary.provider_errors,
        "startedAt": stamp(canary.started_at), "lastProgressAt": stamp(canary.last_progress_at),
        "readyAt": stamp(canary.ready_at), "lastAnalysisAt": stamp(canary.last_analysis_at),
        "pausedBy": canary.paused_by or None, "reason": canary.reason or None,
        "message": canary.message[:2048] or None,
        "analyses": [measurement_to_status(m) for m in canary.analyses],
        "stage": canary.stage or None, "stageStartedAt": stamp(canary.stage_started_at),
        "experiment": experiment_to_status(canary.experiment) if canary.experiment else None,
    }
    return {k: v for k, v in out.items() if v is not None}


def from_status(status: Any) -> CanaryState | None:
    """The canary state in `status.canary`; None when there is none (or it is unreadable)."""
    if not isinstance(status, dict) or not status.get("state") or not status.get("revision"):
        return None
    try:
        started = parse_time(status.get("startedAt")) or dt.datetime.now(dt.UTC)
        return CanaryState(
            state=status["state"], version=status.get("version", ""), revision=status["revision"],
            started_at=started, last_progress_at=parse_time(status.get("lastProgressAt")) or started,
            step=int(status.get("step", -1)), weight=int(status.get("weight", 0)),
            failed_checks=int(status.get("failedChecks", 0)), provider_errors=int(status.get("providerErrors", 0)),
            ready_at=parse_time(status.get("readyAt")), last_analysis_at=parse_time(status.get("lastAnalysisAt")),
            paused_by=status.get("pausedBy") or "", reason=status.get("reason") or "",
            message=status.get("message") or "",
            analyses=tuple(measurement_from_status(r) for r in status.get("analyses") or []),
            stage=status.get("stage") or "", stage_started_at=parse_time(status.get("stageStartedAt")),
            experiment=experiment_from_status(status.get("experiment")),
        )
    except (KeyError, ValueError, TypeError):
        return None


def _finite(value: float | None) -> float | None:
    return round(value, 6) if value is not None and math.isfinite(value) else None


def experiment_to_status(report: ExperimentReport) -> dict[str, Any]:
    results = []
    for r in report.results:
        record: dict[str, Any] = {"metric": r.metric, "verdict": r.verdict}
        for attr, key in _COMPARISON_FIELDS:
            value = _finite(getattr(r, attr))
            if value is not None:
                record[key] = min(1.0, max(0.0, value)) if key == "pValue" else value
        if r.detail:
            record["detail"] = r.detail[:512]
        results.append(record)
    return {"final": report.final, "verdict": report.verdict, "results": results}


def experiment_from_status(status: Any) -> ExperimentReport | None:
    if not isinstance(status, dict) or "verdict" not in status:
        return None
    results = tuple(
        ComparisonRecord(metric=r["metric"], verdict=r["verdict"], detail=r.get("detail") or "",
                         **{attr: r.get(key) for attr, key in _COMPARISON_FIELDS if r.get(key) is not None})
        for r in status.get("results") or [] if isinstance(r, dict) and "metric" in r and "verdict" in r)
    return ExperimentReport(final=bool(status.get("final")), verdict=status["verdict"], results=results)
