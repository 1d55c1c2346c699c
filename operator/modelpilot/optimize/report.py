"""report.json of `modelpilot optimize` and the table printed from it (docs/optimize.md, Report).

Pure: builds dictionaries from measured figures and renders them with rich; no model, no file.
Latencies are milliseconds: per row (one row per predict call, as an online request) and per batch
(all validation rows, up to the batch cap, in one predict call), each as median and 99th percentile.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from modelpilot.optimize.validate import BASIS_AGREEMENT, REGRESSOR, Comparison

LATENCY_UNIT = "ms"
QUANTIZATION_METHOD = "onnxruntime dynamic quantization: int8 (QInt8) weights, activations quantized at run time"
STATUS_WRITTEN = "written"
STATUS_REFUSED = "refused"


@dataclass(frozen=True)
class Latency:
    """Timings of one model, in seconds: single-row calls and whole-batch calls."""

    row_seconds: tuple[float, ...]
    batch_seconds: tuple[float, ...]
    batch_rows: int


@dataclass(frozen=True)
class Figures:
    """One model's measured figures; `comparison` is None for the original."""

    name: str
    file: str
    size: int
    latency: Latency
    comparison: Comparison | None = None


@dataclass(frozen=True)
class Quantization:
    requested: str | None  # "int8", or None when not asked for
    applied: bool = False
    quantized_tensors: int = 0
    note: str | None = None


@dataclass(frozen=True)
class Run:
    """Everything one run measured; `candidates` are the produced ONNX models, the last one is the
    artifact (`model.onnx`)."""

    format_in: str
    task: str
    data: str
    features: int
    target: str | None
    limit: float
    rtol: float
    quantization: Quantization
    original: Figures
    candidates: Sequence[Figures]
    refused: Sequence[str] = field(default_factory=tuple)


def summarize(seconds: Sequence[float]) -> dict[str, float | int]:
    """Median and 99th percentile of timings, in milliseconds, with the sample count."""
    if not seconds:
        return {"median": 0.0, "p99": 0.0, "samples": 0}
    ms = np.asarray(seconds, dtype=np.float64) * 1000.0
    return {"median": _round(float(np.median(ms))), "p99": _round(float(np.percentile(ms, 99))), "samples": len(ms)}


def _round(value: float) -> float:
    return float(f"{value:.4g}")


def latency_json(latency: Latency) -> dict[str, Any]:
    return {
        "per_row": summarize(latency.row_seconds),
        "per_batch": {"rows": latency.batch_rows, **summarize(latency.batch_seconds)},
    }


def _candidate(figures: Figures, limit: float) -> dict[str, Any]:
    c = figures.comparison
    if c is None:
        raise ValueError(f"candidate {figures.name} has no comparison with the original")
    entry: dict[str, Any] = {"model": figures.name, "bytes": figures.size, "rows": c.rows,
                             "agreement": _round(c.agreement), "accuracy_drop": _round(c.drop)}  # fmt: skip
    if c.accuracy_output is not None:
        entry["accuracy"] = _round(c.accuracy_output)
    if c.mae_output is not None:
        entry["mean_absolute_error"] = _round(c.mae_output)
    entry["within_limit"] = c.drop <= limit + 1e-9
    entry["latency"] = latency_json(figures.latency)
    return entry


def _original(run: Run) -> dict[str, Any]:
    entry: dict[str, Any] = {"format": run.format_in, "file": run.original.file, "bytes": run.original.size}
    first = run.candidates[0].comparison if run.candidates else None
    if first is not None and first.accuracy_original is not None:
        entry["accuracy"] = _round(first.accuracy_original)
    if first is not None and first.mae_original is not None:
        entry["mean_absolute_error"] = _round(first.mae_original)
    entry["latency"] = latency_json(run.original.latency)
    return entry


def build_report(run: Run, written: str | None) -> dict[str, Any]:
    """report.json: `written` is the artifact's path, None when the run was refused."""
    if not run.candidates:
        raise ValueError("a report needs at least one produced model")
    final = run.candidates[-1]
    basis = final.comparison.basis if final.comparison else BASIS_AGREEMENT
    validation: dict[str, Any] = {"data": run.data, "rows": final.comparison.rows if final.comparison else 0,
                                  "features": run.features, "target": run.target,
                                  "max_accuracy_drop": run.limit, "drop_basis": basis}  # fmt: skip
    if run.task == REGRESSOR:
        validation["regression_rtol"] = run.rtol
    q = run.quantization
    quantization = {"requested": q.requested, "applied": q.applied,
                    "method": QUANTIZATION_METHOD if q.requested else None,
                    "quantized_tensors": q.quantized_tensors, "note": q.note}  # fmt: skip
    ratio = _round(final.size / run.original.size) if run.original.size else None
    output = {"model": final.name, "file": written, "size_ratio": ratio, **_candidate(final, run.limit)}
    return {
        "status": STATUS_REFUSED if run.refused else STATUS_WRITTEN,
        "format": {"in": run.format_in, "out": "onnx"},
        "task": run.task,
        "quantization": quantization,
        "validation": validation,
        "latency_unit": LATENCY_UNIT,
        "original": _original(run),
        "output": output,
        "candidates": [_candidate(c, run.limit) for c in run.candidates],
        "refused": list(run.refused),
    }


def _size(size: int, original: int) -> str:
    text = f"{size:,} B"
    return text if size == original or not original else f"{text} ({100.0 * size / original:.1f} %)"


def _timing(latency: dict[str, Any], key: str) -> str:
    part = latency[key]
    return f"{part['median']:.3g} / {part['p99']:.3g}"


def table_rows(report: dict[str, Any]) -> list[tuple[str, ...]]:
    """The table's rows: a label, then the original's value and each produced model's."""
    original = report["original"]
    models = [original, *report["candidates"]]
    rows: list[tuple[str, ...]] = [("size", *(_size(m["bytes"], original["bytes"]) for m in models))]
    rows.append(("agreement", "", *(f"{m['agreement']:.4f}" for m in report["candidates"])))
    for key, label in (("accuracy", "accuracy (target)"), ("mean_absolute_error", "MAE (target)")):
        if key in original:
            rows.append((label, *(f"{m[key]:.4f}" if key in m else "" for m in models)))
    rows.append(("accuracy drop", "", *(f"{m['accuracy_drop']:.4f}" for m in report["candidates"])))
    batch = original["latency"]["per_batch"]["rows"]
    unit = report["latency_unit"]
    rows.append((f"1 row, {unit} median/p99", *(_timing(m["latency"], "per_row") for m in models)))
    rows.append((f"{batch} rows, {unit} median/p99", *(_timing(m["latency"], "per_batch") for m in models)))
    return rows


def render(report: dict[str, Any]) -> Any:
    """The report as a rich Table."""
    from rich.table import Table

    quantized = report["quantization"]
    title = f"modelpilot optimize: {report['format']['in']} -> onnx"
    if quantized["requested"]:
        title += f" ({quantized['requested']}{'' if quantized['applied'] else ', not applied'})"
    final = report["output"]["model"]
    caption = "* written as model.onnx; " if report["status"] == STATUS_WRITTEN else "refused: nothing written; "
    caption += "latency: one predict call through the runtime's model"
    table = Table(title=title, title_justify="left", caption=caption, caption_justify="left")
    table.add_column("")
    table.add_column(f"original ({report['format']['in']})", justify="right")
    for candidate in report["candidates"]:
        name = candidate["model"]
        marker = " *" if name == final and report["status"] == STATUS_WRITTEN else ""
        table.add_column(f"onnx {name}{marker}", justify="right")
    for row in table_rows(report):
        table.add_row(*row)
    return table
