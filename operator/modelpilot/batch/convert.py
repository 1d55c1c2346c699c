"""Feature columns -> the float64 matrix the model takes, row by row validated; predictions -> Arrow.

A value is a number when it is a numeric Arrow value (booleans count as 0/1), a JSON number (not
true/false), or a string that parses as a float ("1", "-2.5", "1e-3", "nan", "inf"; spaces
around allowed). Anything else fails its row with the column and the value in the reason; a null,
an empty string or a missing key is a missing value. Batches where every value converts take a
vectorised path (Arrow casts); only a batch with a bad value looks at values one by one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from modelpilot.server.loaders import Model
from modelpilot.server.protocol import DATATYPES

VALUE_LIMIT = 80  # characters of a bad value quoted in a reason


@dataclass
class Problems:
    """Why rows fail, by row index within the batch: the reason, and the reason without the value
    (what the manifest counts, e.g. "column x: not a number")."""

    reasons: dict[int, list[str]]
    summaries: dict[int, str]

    def add(self, row: int, reason: str, summary: str) -> None:
        self.reasons.setdefault(row, []).append(reason)
        self.summaries.setdefault(row, summary)


def _quoted(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= VALUE_LIMIT else text[: VALUE_LIMIT - 3] + "..."


def _slow_number(value: Any, strict_json: bool) -> float | None:
    """One value as a float, None when it is not a number (missing values are handled before)."""
    if isinstance(value, bool):
        return None if strict_json else float(value)
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and not strict_json and "_" not in value:
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _column_slow(name: str, values: list[Any], strict_json: bool, out: np.ndarray, problems: Problems) -> None:
    for i, value in enumerate(values):
        if value is None or value == "":
            problems.add(i, f"column {name}: missing value", f"column {name}: missing value")
            continue
        number = _slow_number(value, strict_json)
        if number is None:
            problems.add(i, f"column {name}: {_quoted(value)} is not a number", f"column {name}: not a number")
        else:
            out[i] = number


def _numeric(column: pa.Array) -> np.ndarray | None:
    """The column as float64 (NaN where null) when its type is numeric or it casts cleanly."""
    kind = column.type
    if pa.types.is_dictionary(kind):
        column = column.dictionary_decode()
        kind = column.type
    if not (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind)
            or pa.types.is_boolean(kind) or pa.types.is_string(kind) or pa.types.is_large_string(kind)
            or pa.types.is_null(kind)):  # fmt: skip
        return None
    try:
        as_float = pc.cast(column, pa.float64()) if kind != pa.float64() else column
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None  # a string that is not a number somewhere in the batch
    return np.asarray(as_float.to_numpy(zero_copy_only=False), dtype=np.float64)


def _json_numeric(column: list[Any]) -> tuple[np.ndarray | None, np.ndarray | None]:
    """JSON values as float64 and their nulls, when every value is a number or null."""
    try:
        arrow = pa.array(column)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        return None, None
    if not (pa.types.is_integer(arrow.type) or pa.types.is_floating(arrow.type) or pa.types.is_null(arrow.type)):
        return None, None  # strings, booleans, objects: value by value
    nulls = arrow.is_null().to_numpy(zero_copy_only=False) if arrow.null_count else None
    return _numeric(arrow), nulls


def feature_matrix(features: dict[str, pa.Array | list[Any]], rows: int) -> tuple[np.ndarray, Problems]:
    """The [rows, columns] float64 matrix and the problems of the rows that cannot be predicted
    (their matrix values are meaningless)."""
    matrix = np.empty((rows, len(features)), dtype=np.float64)
    problems = Problems({}, {})
    for j, (name, column) in enumerate(features.items()):
        strict = isinstance(column, list)
        if strict:
            values, nulls = _json_numeric(column)
        else:
            values = _numeric(column)
            # a string column that casts has no empty strings (they do not cast): nulls are all
            nulls = column.is_null().to_numpy(zero_copy_only=False) if column.null_count else None
        if values is None:
            matrix[:, j] = 0.0
            _column_slow(name, column if strict else column.to_pylist(), strict, matrix[:, j], problems)
            continue
        matrix[:, j] = values
        if nulls is not None:
            for i in np.flatnonzero(nulls).tolist():
                problems.add(i, f"column {name}: missing value", f"column {name}: missing value")
    return matrix, problems


def raw_values(features: dict[str, pa.Array | list[Any]], row: int) -> dict[str, Any]:
    """A row's feature values as read, for its error row."""
    out = {}
    for name, column in features.items():
        value = column[row] if isinstance(column, list) else column[row].as_py()
        if isinstance(value, float) and not math.isfinite(value):
            value = str(value)  # JSON has no NaN or infinity
        out[name] = value
    return out


def prediction_array(values: Any, rows: int) -> pa.Array:
    """One prediction per row: a scalar column for a [N] or [N, 1] output, a fixed-size list per row
    for [N, K]. Anything else is a model error."""
    values = np.asarray(values)
    if values.ndim == 0 or values.shape[0] != rows:
        raise ValueError(f"the model returned {values.shape[0] if values.ndim else 'a scalar'} predictions "
                         f"for {rows} rows")  # fmt: skip
    width = math.prod(values.shape[1:])
    if width == 1:
        return pa.array(values.reshape(rows))
    flat = pa.array(values.reshape(-1))
    return pa.FixedSizeListArray.from_arrays(flat, width)


def declared_prediction_type(model: Model) -> pa.DataType:
    """The prediction column's type from the model's declared output, for a part with no rows."""
    name = model.default_outputs[0]
    spec = next((o for o in model.outputs if o.name == name), None)
    if spec is None or spec.datatype == "BYTES":
        return pa.string()
    scalar = pa.from_numpy_dtype(np.dtype(DATATYPES[spec.datatype]))
    width = math.prod(spec.shape[1:]) if len(spec.shape) > 1 else 1
    if width == 1:
        return scalar
    return pa.list_(scalar, width) if width > 0 else pa.list_(scalar)
