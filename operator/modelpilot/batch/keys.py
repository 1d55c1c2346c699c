"""Types of the key columns of CSV and JSON-lines inputs, decided once per run.

Every shard reads the first input file to decide (the same file for all shards, as for the feature
names), so all parts of a run share one schema however their own rows look. CSV: the type pyarrow
infers from the first rows, kept only when it is an integer (zero-padded values such as 007 stay
text); anything else is text. JSON lines: the type of the first object's value (integer, float,
boolean, else text). A later value that does not fit its column's type fails its row, with the
reason, rather than changing the column or being dropped. Parquet keys keep the file's own types.
"""

from __future__ import annotations

import io
import re
from typing import Any

import pyarrow as pa

SAMPLE_BYTES = 256 << 10  # of the first file, for CSV type inference
_ZERO_PADDED = re.compile(r"^[+-]?0\d")


def csv_key_types(header: bytes, sample: bytes, keys: list[str]) -> dict[str, pa.DataType]:
    """int64 for a key pyarrow reads as integers in the sample lines, string otherwise."""
    import pyarrow.csv as pa_csv

    sample = sample[: sample.rfind(b"\n") + 1]  # whole lines only
    try:
        table = pa_csv.read_csv(
            io.BytesIO(header + sample),
            parse_options=pa_csv.ParseOptions(invalid_row_handler=lambda row: "skip"),
            convert_options=pa_csv.ConvertOptions(include_columns=keys),
        )
    except (pa.ArrowInvalid, UnicodeDecodeError):
        return {k: pa.string() for k in keys}
    types = {}
    for key in keys:
        column = table.column(key)
        integer = pa.types.is_integer(column.type) and column.null_count < len(column)
        if integer:
            text = pa_csv.read_csv(io.BytesIO(header + sample), convert_options=pa_csv.ConvertOptions(
                include_columns=[key], column_types={key: pa.string()})).column(key)  # fmt: skip
            integer = not any(_ZERO_PADDED.match(v) for v in text.to_pylist() if v)
        types[key] = pa.int64() if integer else pa.string()
    return types


def json_key_types(first: dict[str, Any], keys: list[str]) -> dict[str, pa.DataType]:
    def kind(value: Any) -> pa.DataType:
        if isinstance(value, bool):
            return pa.bool_()
        if isinstance(value, int):
            return pa.int64()
        if isinstance(value, float):
            return pa.float64()
        return pa.string()

    return {k: kind(first.get(k)) for k in keys}


def _type_name(kind: pa.DataType) -> str:
    return {"int64": "an integer", "double": "a number", "bool": "true or false"}.get(str(kind), str(kind))


def json_key(name: str, value: Any, kind: pa.DataType) -> tuple[Any, str | None]:
    """(the value for a key column of type `kind`, or why it does not fit)."""
    if value is None:
        return None, None
    if pa.types.is_string(kind):
        return (value if isinstance(value, str) else _json_text(value)), None
    fits = (
        (pa.types.is_boolean(kind) and isinstance(value, bool))
        or (pa.types.is_int64(kind) and isinstance(value, int) and not isinstance(value, bool)
            and -(2**63) <= value < 2**63)
        or (pa.types.is_float64(kind) and isinstance(value, int | float) and not isinstance(value, bool))
    )  # fmt: skip
    if fits:
        return (float(value) if pa.types.is_float64(kind) else value), None
    return None, f"key column {name}: {value!r} is not {_type_name(kind)} like the first row's"


def csv_key(name: str, text: str, kind: pa.DataType, nulls: frozenset[str]) -> tuple[Any, str | None]:
    """(a CSV field as the key column's type, or why it does not fit), as pyarrow converts."""
    if pa.types.is_string(kind):
        return text, None
    if text in nulls:
        return None, None
    try:
        value = int(text.strip())
    except ValueError:
        value = None
    if value is None or not -(2**63) <= value < 2**63 or "_" in text:
        return None, f"key column {name}: {text!r} is not {_type_name(kind)} like the first rows'"
    return value, None


def _json_text(value: Any) -> str:
    import orjson

    return orjson.dumps(value).decode()


def summary(reason: str) -> str:
    """The reason without the value, for the manifest's counts."""
    return reason.split(":", 1)[0] + ": does not fit the key's type"
