"""`modelpilot optimize`: an sklearn or XGBoost model as ONNX (optionally int8) for small devices.

    modelpilot optimize --model M --format sklearn|xgboost --to onnx [--quantize int8] \\
        --validation DATA --max-accuracy-drop 0.01 --output DIR [--target COLUMN]

Writes DIR/model.onnx and DIR/report.json, and prints the report as a table; refuses (exit code 3,
no model.onnx) when a produced model loses more accuracy on DATA than the limit allows. Needs the
`[server]` extra; its imports happen inside the command (docs/optimize.md).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from modelpilot.optimize.errors import EXIT_FAILED, EXIT_OK, EXIT_REFUSED, EXIT_USAGE, first_line

PROG = "modelpilot optimize"


def add_optimize_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "optimize",
        help="convert an sklearn or XGBoost model to ONNX, optionally int8, validated on data (needs the "
        "[server] extra)",
        description="Converts the model, quantizes it on request, compares its predictions with the "
        "original's on the validation data and writes DIR/model.onnx and DIR/report.json; refuses (exit code "
        f"{EXIT_REFUSED}, no model.onnx) when the accuracy drop exceeds --max-accuracy-drop. Exit code "
        f"{EXIT_USAGE}: bad input; 1: the model did not convert or predict.",
    )
    parser.add_argument("--model", required=True, help="model file or directory, as `modelpilot serve` takes it")
    parser.add_argument("--format", required=True, help="the model's format: sklearn | xgboost")
    parser.add_argument("--to", default="onnx", help="output format: onnx (the only one)")
    parser.add_argument("--quantize", help="int8: dynamic int8 quantization of the weights")
    parser.add_argument("--validation", required=True, help="validation rows: DATA.csv or DATA.parquet (path or "
                        "fsspec URL, optionally compressed)")  # fmt: skip
    parser.add_argument("--max-accuracy-drop", type=float, default=0.01,
                        help="refuse when accuracy drops by more than this fraction (default 0.01)")  # fmt: skip
    parser.add_argument("--output", required=True, help="directory for model.onnx and report.json")
    parser.add_argument("--target", help="the label column of the validation data (default: none; the drop is then "
                        "1 - agreement with the original)")  # fmt: skip
    parser.add_argument("--regression-rtol", type=float, default=1e-3,
                        help="regressors: the relative tolerance within which two predictions agree (default 1e-3)")
    parser.add_argument("--force", action="store_true", help="replace model.onnx and report.json in --output")
    parser.set_defaults(func=run_optimize)


def run_optimize(args: argparse.Namespace) -> int:
    if args.to != "onnx":
        return _fail(f"--to {args.to}: optimize writes onnx only", EXIT_USAGE)
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401

        from modelpilot.optimize import pipeline
        from modelpilot.optimize.errors import OptimizeError
        from modelpilot.server.loaders import ModelLoadError
    except ImportError as err:
        return _fail(f"needs the [server] extra: {err}", EXIT_USAGE)
    options = pipeline.Options(model=Path(args.model), fmt=args.format, validation=args.validation,
                               output=Path(args.output), quantize=args.quantize, limit=args.max_accuracy_drop,
                               target=args.target, rtol=args.regression_rtol, force=args.force)  # fmt: skip
    try:
        outcome = pipeline.optimize(options)
    except ModelLoadError as err:
        return _fail(first_line(err), EXIT_USAGE)
    except OptimizeError as err:
        return _fail(str(err), err.exit_code)
    except ImportError as err:  # a converter missing from this installation
        return _fail(f"needs the [server] extra: {err}", EXIT_USAGE)
    except OSError as err:  # writing --output
        return _fail(f"{type(err).__name__}: {err}", EXIT_FAILED)
    _print(outcome.report)
    for note in outcome.notes:
        print(f"{PROG}: {note}", file=sys.stderr)
    if outcome.written is None:
        for message in outcome.report["refused"]:
            print(f"{PROG}: {message}; nothing written", file=sys.stderr)
        print(f"{PROG}: the refusal is in {outcome.report_path}", file=sys.stderr)
        return EXIT_REFUSED
    _print_written(outcome.report, outcome.report_path)
    return EXIT_OK


def _fail(message: str, code: int) -> int:
    one_line = " ".join(part.strip() for part in message.splitlines() if part.strip())
    print(f"{PROG}: {one_line}", file=sys.stderr)
    return code


def _print(report: dict[str, Any]) -> None:
    from rich.console import Console

    from modelpilot.optimize.report import render

    Console(highlight=False, soft_wrap=True).print(render(report))


def _print_written(report: dict[str, Any], report_path: Path) -> None:
    output = report["output"]
    ratio = output.get("size_ratio")
    share = f", {100.0 * ratio:.1f} % of the original" if ratio is not None else ""
    print(f"wrote {output['file']} (onnx {output['model']}, {output['bytes']:,} bytes{share}) and {report_path}")
