"""One `modelpilot optimize` run: load, convert, quantize, validate, measure, then write the
artifact (only when every produced model is within the limit) and report.json (always).

Candidates are ONNX models written to a scratch directory and loaded with the runtime's ONNX
loader: a candidate that the runtime cannot load or serve fails the run before anything is written.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from modelpilot.optimize import convert, quantize, report, validate
from modelpilot.optimize.data import Validation, load_validation
from modelpilot.optimize.errors import ConversionError, UsageError, first_line
from modelpilot.optimize.measure import predict_all, time_model
from modelpilot.optimize.source import Source, load_source

MODEL_FILE = "model.onnx"
REPORT_FILE = "report.json"
FLOAT = "float32"


@dataclass(frozen=True)
class Options:
    model: Path
    fmt: str
    validation: str
    output: Path
    quantize: str | None = None
    limit: float = 0.01
    target: str | None = None
    rtol: float = validate.DEFAULT_RTOL
    force: bool = False


@dataclass(frozen=True)
class Outcome:
    report: dict[str, Any]
    report_path: Path
    written: Path | None  # the artifact; None when refused
    notes: list[str] = field(default_factory=list)


def check_options(options: Options) -> None:
    """Flags and the output directory, before any work. Raises UsageError."""
    if options.quantize is not None and options.quantize not in quantize.QUANTIZATIONS:
        raise UsageError(f"unknown quantization {options.quantize!r}; known: {', '.join(quantize.QUANTIZATIONS)}")
    if not 0.0 <= options.limit <= 1.0:
        raise UsageError(f"--max-accuracy-drop {options.limit:g} is not between 0 and 1")
    if options.rtol < 0:
        raise UsageError("--regression-rtol must not be negative")
    if options.output.exists() and not options.output.is_dir():
        raise UsageError(f"--output {options.output} is a file, not a directory")
    taken = [name for name in (MODEL_FILE, REPORT_FILE) if (options.output / name).exists()]
    if taken and not options.force:
        raise UsageError(f"{options.output} already holds {' and '.join(taken)}; pass --force to replace")


def optimize(options: Options) -> Outcome:
    check_options(options)
    source = load_source(options.model, options.fmt)
    data = load_validation(options.validation, options.target, source.n_features, source.feature_names)
    candidates, quantization = produce(source, options.quantize)
    with tempfile.TemporaryDirectory(prefix="modelpilot-optimize-") as work:
        original, figures = measure(source, data, candidates, Path(work), options.rtol)
    comparisons = {f.name: f.comparison for f in figures if f.comparison is not None}
    run = report.Run(format_in=source.fmt, task=source.task, data=data.location, features=len(data.features),
                     target=options.target, limit=options.limit, rtol=options.rtol, quantization=quantization,
                     original=original, candidates=figures,
                     refused=validate.refusals(comparisons, options.limit))  # fmt: skip
    written = None if run.refused else write_file(options.output, MODEL_FILE, candidates[figures[-1].name])
    if run.refused and options.force:
        with contextlib.suppress(FileNotFoundError):
            (options.output / MODEL_FILE).unlink()  # no model this run did not accept stays behind
    built = report.build_report(run, str(written) if written else None)
    report_path = write_file(options.output, REPORT_FILE, report_bytes(built))
    notes = [f"int8: {quantization.note}"] if quantization.note else []
    return Outcome(built, report_path, written, notes)


def produce(source: Source, quantization: str | None) -> tuple[dict[str, bytes], report.Quantization]:
    """The ONNX candidates by name, float32 first, and what quantization did."""
    float_model = convert.to_onnx(source)
    candidates = {FLOAT: float_model}
    if quantization is None:
        return candidates, report.Quantization(None)
    result = quantize.quantize_int8(float_model)
    if result.data is None:
        return candidates, report.Quantization(quantization, False, 0, quantize.NOT_APPLICABLE)
    candidates[quantize.INT8] = result.data
    note = None
    if len(result.data) >= len(float_model):
        note = (f"the int8 model ({len(result.data):,} B) is not smaller than the float32 one "
                f"({len(float_model):,} B): too few weights for int8 to outweigh the quantization nodes")  # fmt: skip
    return candidates, report.Quantization(quantization, True, result.tensors, note)


def measure(source: Source, data: Validation, candidates: Mapping[str, bytes], work: Path,
            rtol: float) -> tuple[report.Figures, list[report.Figures]]:  # fmt: skip
    """Predictions and timings of the original and of every candidate on the validation rows."""
    raw = predict_all(source.model, data.matrix, source.output, "original")
    expected = _decode(raw, source.decoding, "original")
    original = report.Figures("original", str(source.file), source.file.stat().st_size,
                              time_model(source.model, data.matrix, source.output, "original"))  # fmt: skip
    figures = []
    decoding = validate.LABEL if source.task == validate.CLASSIFIER else validate.VALUE
    for name, blob in candidates.items():
        model = load_candidate(work, name, blob)
        # Classifiers answer `label` and `probabilities`, regressors `variable`: the class or the value.
        output = "label" if "label" in model.default_outputs else model.default_outputs[0]
        got = _decode(predict_all(model, data.matrix, output, name), decoding, name)
        try:
            comparison = validate.compare(expected, got, source.task, data.target, rtol)
        except ValueError as err:
            raise ConversionError(f"cannot compare the {name} model with the original: {err}") from None
        latency = time_model(model, data.matrix, output, name)
        figures.append(report.Figures(name, f"{name} candidate", len(blob), latency, comparison))
    return original, figures


def load_candidate(work: Path, name: str, blob: bytes) -> Any:
    """A candidate through the runtime's ONNX loader, as `modelpilot serve` would load it."""
    from modelpilot.server.loaders import ModelLoadError, load_model

    path = work / name / MODEL_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(blob)
    try:
        return load_model(path, "onnx")
    except ModelLoadError as err:
        raise ConversionError(f"the {name} model does not load in the runtime: {first_line(err)}") from None


def _decode(raw: np.ndarray, how: str, name: str) -> np.ndarray:
    try:
        return validate.decode(raw, how)
    except ValueError as err:
        raise ConversionError(f"the {name} model's output: {err}") from None


def report_bytes(built: dict[str, Any]) -> bytes:
    import json

    return (json.dumps(built, indent=2) + "\n").encode()


def write_file(directory: Path, name: str, data: bytes) -> Path:
    """Write atomically (a reader never sees half a file), with the umask's permissions."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / name
    scratch = directory / f".{name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        with open(scratch, "xb") as stream:
            stream.write(data)
        os.replace(scratch, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            scratch.unlink()
        raise
    return target
