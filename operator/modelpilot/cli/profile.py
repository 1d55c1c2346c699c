"""`modelpilot profile`: the reference profile of a model's training data, for drift monitoring.

    modelpilot profile --data train.csv --model ./model-dir [--target label] [--features a,b,c]

Reads the data (CSV or Parquet, local or any fsspec URL: s3://, gs://, https://) with pyarrow,
predicts it in batches with the runtime's own loader (so the predictions are the ones the server
makes), and writes `profile.json` beside the model, where the runtime looks for it. Needs the
`[server]` extra; its imports happen inside the command.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

    from modelpilot.monitoring.profile import Profile
    from modelpilot.server.loaders import Model

BATCH_ROWS = 10_000
_COMPRESSION = (".gz", ".bz2", ".xz", ".zst")


class UsageError(Exception):
    """The command cannot run as asked (exit code 2): a missing file, an unknown column, ..."""


def add_profile_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "profile",
        help="write a model's reference profile from its training data (drift monitoring; needs the [server] extra)",
        description="Bins every feature and the model's predictions on the data; the runtime compares live "
        "requests with it. Data: .csv or .parquet (optionally compressed), a path or an fsspec URL.",
    )
    parser.add_argument("--data", required=True, help="training data: TRAIN.csv or TRAIN.parquet (path or URL)")
    parser.add_argument("--model", required=True, help="model directory or file, as `modelpilot serve` takes it")
    parser.add_argument("--format", help="sklearn | xgboost | onnx (default: by file name)")
    parser.add_argument("--output", help="where to write the profile (default: profile.json beside the model)")
    parser.add_argument("--target", help="the label column: also records the model's accuracy or error on the data")
    parser.add_argument("--features", help="feature columns in the model's order, comma-separated (default: all "
                        "columns but the target, in file order)")  # fmt: skip
    parser.add_argument("--bins", type=int, default=10, help="quantile bins per numeric feature (default 10)")
    parser.add_argument("--top-k", type=int, default=20, help="categories kept per text feature (default 20)")
    parser.set_defaults(func=run_profile)


def run_profile(args: argparse.Namespace) -> int:
    try:
        import pyarrow  # noqa: F401

        from modelpilot.monitoring.profile import ProfileError, write_profile
        from modelpilot.server.loaders import ModelLoadError, load_model
    except ImportError as err:
        print(f"modelpilot profile needs the [server] extra: {err}", file=sys.stderr)
        return 2
    try:
        if args.bins < 1 or args.top_k < 1:
            raise UsageError("--bins and --top-k must be at least 1")
        model_path = Path(args.model)
        if not model_path.exists():
            raise UsageError(f"model {model_path} does not exist")
        table = read_table(args.data)
        features = feature_names(table.column_names, args.features, args.target)
        model = load_model(model_path, args.format)
        profile = profile_table(table, features, args.target, model, bins=args.bins, top_k=args.top_k)
        output = Path(args.output) if args.output else default_output(model_path)
        write_profile(profile, output)
    except (UsageError, ModelLoadError, ProfileError) as err:
        print(f"modelpilot profile: {err}", file=sys.stderr)
        return 2
    except PredictError as err:
        print(f"modelpilot profile: {err}", file=sys.stderr)
        return 1
    print_summary(profile, output)
    return 0


class PredictError(Exception):
    """The model failed on the data (exit code 1)."""


def default_output(model_path: Path) -> Path:
    from modelpilot.monitoring.contract import PROFILE_FILE

    return (model_path if model_path.is_dir() else model_path.parent) / PROFILE_FILE


def read_table(location: str) -> pa.Table:
    """The data file as a pyarrow Table, through fsspec (compression from the name)."""
    import fsspec
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pa_parquet

    name = location.lower()
    for suffix in _COMPRESSION:
        name = name.removesuffix(suffix)
    if name.endswith((".parquet", ".pq")):
        reader = pa_parquet.read_table
    elif name.endswith((".csv", ".txt")):
        reader = pa_csv.read_csv
    else:
        raise UsageError(f"cannot tell the format of {location}: name it .csv or .parquet")
    try:
        with fsspec.open(location, "rb", compression="infer") as stream:
            return reader(stream)
    except FileNotFoundError:
        raise UsageError(f"data file {location} does not exist") from None
    except (OSError, ValueError) as err:  # pyarrow's ArrowInvalid is a ValueError
        raise UsageError(f"cannot read {location}: {err}") from None


def feature_names(columns: Sequence[str], wanted: str | None, target: str | None) -> list[str]:
    known = set(columns)
    if target is not None and target not in known:
        raise UsageError(f"no column {target!r} in the data (columns: {', '.join(columns)})")
    if wanted is None:
        names = [c for c in columns if c != target]
    else:
        names = [n.strip() for n in wanted.split(",") if n.strip()]
        unknown = [n for n in names if n not in known]
        if unknown:
            raise UsageError(f"no column {', '.join(map(repr, unknown))} in the data (columns: {', '.join(columns)})")
        if len(set(names)) != len(names):
            raise UsageError("--features names a column twice")
    if not names:
        raise UsageError("no feature columns: the data has only the target")
    return names


def column_values(table: pa.Table, name: str) -> np.ndarray:
    """One column as numpy: numbers (NaN for nulls; bools with nulls as 1.0/0.0/NaN), or objects."""
    import pyarrow as pa

    column = table.column(name)
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    if pa.types.is_boolean(column.type) and column.null_count:
        column = column.cast(pa.float64())
    return column.to_numpy()


def profile_table(
    table: pa.Table, features: list[str], target: str | None, model: Model, *, bins: int, top_k: int
) -> Profile:
    from modelpilot.monitoring.profile import build_profile

    columns = {name: column_values(table, name) for name in features}
    predictions = predict_all(model, list(columns.values()), table.num_rows)
    truth = None if target is None else column_values(table, target)
    return build_profile(columns, predictions, truth, bins=bins, top_k=top_k)


def predict_all(model: Model, columns: list[np.ndarray], rows: int) -> np.ndarray:
    """The first default output of `model` on every row, one value per row, in batches."""
    import numpy as np

    from modelpilot.server.loaders import model_columns
    from modelpilot.server.predictions import prediction_rows

    expected = model_columns(model)
    if expected is not None and expected != len(columns):
        raise UsageError(f"the model takes {expected} feature columns; the data gives {len(columns)}")
    if rows == 0:
        raise UsageError("the data has no rows")
    output = model.default_outputs[0]
    parts = []
    for start in range(0, rows, BATCH_ROWS):
        batch = np.column_stack([column[start : start + BATCH_ROWS] for column in columns])
        inputs = model_inputs(model, batch)
        try:
            result = model.predict(inputs, model.default_outputs)
        except Exception as err:
            raise PredictError(f"model predict failed on rows {start}..: {type(err).__name__}: {err}") from None
        values = prediction_rows(np.asarray(result[output]))
        if values is None:
            raise UsageError(f"the model's first output {output!r} is not one value per row; a profile needs that")
        parts.append(values)
    return np.concatenate(parts)


def model_inputs(model: Model, batch: np.ndarray) -> dict[str, np.ndarray]:
    """A batch of feature rows as the model's inputs (`loaders.model_inputs`), with a usage error
    naming the input when the columns do not fit its datatype."""
    from modelpilot.server.loaders import model_inputs as split

    try:
        return split(model, batch)
    except ValueError as err:
        raise UsageError(f"the feature columns do not fit {err}") from None


def print_summary(profile: Profile, output: Path) -> None:
    from rich.console import Console

    from modelpilot.monitoring.profile import CLASS, CLASSIFICATION, NUMERIC

    numeric = sum(1 for f in profile.features if f.kind == NUMERIC)
    prediction = profile.prediction
    kind = f"classes ({len(prediction.categories)} kept)" if prediction.kind == CLASS else "values"
    console = Console(highlight=False, soft_wrap=True)  # long paths stay on one line
    features = len(profile.features)
    console.print(f"[bold]{output}[/bold]: {profile.rows:,} rows, {features} features ({numeric} numeric, "
                  f"{features - numeric} categorical), predictions: {kind}")  # fmt: skip
    if profile.target is not None:
        name = "accuracy" if profile.target.task == CLASSIFICATION else "mean absolute error"
        console.print(f"{name} on the data: {profile.target.value:.4g}")
