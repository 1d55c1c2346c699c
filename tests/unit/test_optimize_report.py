"""modelpilot.optimize.report: report.json and its table, from figures (pure)."""

from __future__ import annotations

from typing import Any

import pytest
from rich.console import Console

from modelpilot.optimize.report import (
    Figures,
    Latency,
    Quantization,
    Run,
    build_report,
    render,
    summarize,
    table_rows,
)
from modelpilot.optimize.validate import BASIS_AGREEMENT, BASIS_TARGET, CLASSIFIER, REGRESSOR, Comparison

SUMMARY_CASES = [
    # (seconds, summary in ms)
    ([], {"median": 0.0, "p99": 0.0, "samples": 0}),
    ([0.001], {"median": 1.0, "p99": 1.0, "samples": 1}),
    ([0.001, 0.002, 0.003], {"median": 2.0, "p99": 2.98, "samples": 3}),
    ([0.0001] * 99 + [0.1], {"median": 0.1, "p99": 1.099, "samples": 100}),
    ([1.23456789e-5], {"median": 0.01235, "p99": 0.01235, "samples": 1}),  # four significant digits
]


@pytest.mark.parametrize(("seconds", "expected"), SUMMARY_CASES)
def test_summarize(seconds: list[float], expected: dict[str, float]) -> None:
    assert summarize(seconds) == expected


LATENCY = Latency((0.001, 0.002), (0.010, 0.020), 1000)


def _run(task: str = CLASSIFIER, *, quantized: bool = True, refused: tuple[str, ...] = (),
         target: str | None = "label") -> Run:  # fmt: skip
    basis = BASIS_TARGET if target and task == CLASSIFIER else BASIS_AGREEMENT
    extra: dict[str, Any] = {}
    if target and task == CLASSIFIER:
        extra = {"accuracy_original": 0.9, "accuracy_output": 0.89}
    elif target:
        extra = {"mae_original": 1.5, "mae_output": 1.6}
    candidates = [Figures("float32", "float32 candidate", 400, LATENCY, Comparison(1000, 1.0, 0.0, basis, **extra))]
    if quantized:
        candidates.append(Figures("int8", "int8 candidate", 100, LATENCY, Comparison(1000, 0.99, 0.01, basis, **extra)))
    quantization = Quantization("int8", True, 3) if quantized else Quantization(None)
    return Run(format_in="sklearn", task=task, data="val.csv", features=20, target=target, limit=0.01, rtol=1e-3,
               quantization=quantization, original=Figures("original", "m.joblib", 1000, LATENCY),
               candidates=candidates, refused=refused)  # fmt: skip


REPORT_CASES = [
    # (run, written, expected fields: dotted path -> value)
    (_run(), "out/model.onnx", {
        "status": "written", "format": {"in": "sklearn", "out": "onnx"}, "task": "classifier",
        "quantization.requested": "int8", "quantization.applied": True, "quantization.quantized_tensors": 3,
        "validation.rows": 1000, "validation.target": "label", "validation.drop_basis": "target",
        "validation.max_accuracy_drop": 0.01, "latency_unit": "ms",
        "original.bytes": 1000, "original.accuracy": 0.9, "original.latency.per_row.median": 1.5,
        "output.model": "int8", "output.file": "out/model.onnx", "output.bytes": 100, "output.size_ratio": 0.1,
        "output.agreement": 0.99, "output.accuracy": 0.89, "output.accuracy_drop": 0.01,
        "output.within_limit": True, "output.latency.per_batch.rows": 1000, "output.latency.per_batch.p99": 19.9,
        "refused": []}),
    (_run(quantized=False, target=None), "out/model.onnx", {
        "quantization.requested": None, "quantization.method": None, "validation.drop_basis": "agreement",
        "output.model": "float32", "output.size_ratio": 0.4}),
    (_run(refused=("int8 model: accuracy drop 0.5 ...",)), None, {
        "status": "refused", "output.file": None, "refused": ["int8 model: accuracy drop 0.5 ..."]}),
    (_run(REGRESSOR), "m.onnx", {
        "task": "regressor", "validation.regression_rtol": 1e-3, "validation.drop_basis": "agreement",
        "original.mean_absolute_error": 1.5, "output.mean_absolute_error": 1.6}),
]  # fmt: skip


def _field(report: dict[str, Any], path: str) -> Any:
    value: Any = report
    for key in path.split("."):
        value = value[key]
    return value


@pytest.mark.parametrize(("run", "written", "expected"), REPORT_CASES)
def test_build_report(run: Run, written: str | None, expected: dict[str, Any]) -> None:
    report = build_report(run, written)
    for path, value in expected.items():
        assert _field(report, path) == value, path
    assert [c["model"] for c in report["candidates"]] == [c.name for c in run.candidates]


def test_report_shape() -> None:
    report = build_report(_run(), "model.onnx")
    assert set(report) == {"status", "format", "task", "quantization", "validation", "latency_unit", "original",
                           "output", "candidates", "refused"}  # fmt: skip
    assert "accuracy" not in build_report(_run(target=None), "m")["original"]  # no target, no accuracy
    assert "regression_rtol" not in report["validation"]


def test_a_report_needs_a_candidate() -> None:
    run = _run()
    empty = Run(**{**run.__dict__, "candidates": []})
    with pytest.raises(ValueError, match="at least one"):
        build_report(empty, None)


def test_table() -> None:
    report = build_report(_run(), "model.onnx")
    rows = table_rows(report)
    assert rows[0] == ("size", "1,000 B", "400 B (40.0 %)", "100 B (10.0 %)")
    assert ("agreement", "", "1.0000", "0.9900") in rows
    assert ("accuracy (target)", "0.9000", "0.8900", "0.8900") in rows
    assert ("1 row, ms median/p99", "1.5 / 1.99", "1.5 / 1.99", "1.5 / 1.99") in rows
    console = Console(width=160, record=True)
    console.print(render(report))
    text = console.export_text()
    assert "sklearn -> onnx (int8)" in text and "onnx int8 *" in text and "written as model.onnx" in text
    refused = build_report(_run(refused=("no",)), None)
    console = Console(width=160, record=True)
    console.print(render(refused))
    assert "refused: nothing written" in console.export_text() and "int8 *" not in console.export_text()
