"""A work unit's rows in batches of at most `batch_size`, whatever the file size (bounded memory).

Parquet: `ParquetFile.iter_batches` over the unit's row groups and only the needed columns.
CSV: the unit's lines in chunks (lines.py), each parsed by pyarrow's CSV parser with every column
as a string, so one bad value fails its row, not the read; rows with the wrong number of fields
are found by parsing the chunk again line by line (only chunks that have such rows).
JSON lines: each line parsed on its own (orjson), so one bad line fails only itself.

`_row` is the row's 0-based number in its file: the row index in Parquet, the line number in CSV
(not counting the header) and JSON lines; blank lines are skipped but keep their number.
"""

from __future__ import annotations

import contextlib
import csv
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv

from modelpilot.batch import keys as key_typing
from modelpilot.batch import lines
from modelpilot.batch.errors import invalid_run
from modelpilot.batch.plan import InputFile, WorkUnit
from modelpilot.batch.storage import open_input

RAW_LIMIT = 1000  # characters of an unparsable line kept in its error row


@dataclass
class Rejected:
    """A row that could not be parsed into columns."""

    row: int | None
    reason: str
    summary: str
    raw: str


@dataclass
class RowBatch:
    """Rows of one file: key and feature columns as read (Arrow arrays, or Python lists for JSON
    lines), their row numbers when wanted, and the rows that did not parse."""

    name: str
    size: int
    keys: dict[str, pa.Array | list[Any]]
    features: dict[str, pa.Array | list[Any]]
    rows: np.ndarray | None = None
    rejected: list[Rejected] = field(default_factory=list)


def _missing(file: str, wanted: Sequence[str], names: Sequence[str]) -> None:
    known = set(names)
    unknown = [n for n in dict.fromkeys(wanted) if n not in known]
    if unknown:
        shown = ", ".join(names[:50]) + (", ..." if len(names) > 50 else "")
        raise invalid_run("MissingColumn", f"{file} has no column {', '.join(map(repr, unknown))} (columns: {shown})")


@contextlib.contextmanager
def _parquet_file(fs: Any, path: str) -> Iterator[Any]:
    """An open ParquetFile. pre_buffer stays off: it would read every requested row group into
    memory up front (pyarrow's default is on), which is exactly the unbounded memory to avoid."""
    import pyarrow.parquet as pq

    # Local files through Arrow's own file reader (no Python in the read path); others through fsspec.
    with pa.OSFile(path) if _local(fs) else open_input(fs, path) as stream:
        try:
            parquet = pq.ParquetFile(stream, pre_buffer=False)
        except pa.ArrowInvalid as err:
            raise invalid_run("UnreadableInput", f"{path} is not a Parquet file: {err}") from None
        yield parquet


def _local(fs: Any) -> bool:
    return "file" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,))


def row_groups(fs: Any, file: InputFile) -> InputFile:
    """The file with its row groups' row counts (from its footer), for a plan that cuts files."""
    with _parquet_file(fs, file.path) as parquet:
        meta = parquet.metadata
        counts = tuple(meta.row_group(i).num_rows for i in range(meta.num_row_groups))
    return InputFile(file.path, file.name, file.size, counts)


def _csv_names(header: bytes) -> list[str]:
    text = header.decode("utf-8-sig", errors="replace").rstrip("\r\n")
    return next(csv.reader([text]), [])


def source_columns(fs: Any, file: InputFile, fmt: str) -> list[str]:
    """The columns of a file in file order: the Parquet schema, the CSV header, or the keys of the
    first object of a JSON-lines file."""
    if fmt == "parquet":
        with _parquet_file(fs, file.path) as parquet:
            return list(parquet.schema_arrow.names)
    if fmt == "csv":
        with open_input(fs, file.path) as stream:
            return _csv_names(lines.first_line(stream))
    return list(_first_object(fs, file))


def key_types(fs: Any, file: InputFile, fmt: str, keys: list[str]) -> dict[str, pa.DataType]:
    """The key columns' types for the whole run, from the first input file (text formats; Parquet
    keys keep the file's types)."""
    if not keys or fmt == "parquet":
        return {}
    if fmt == "jsonl":
        return key_typing.json_key_types(_first_object(fs, file), keys)
    with open_input(fs, file.path) as stream:
        header = lines.first_line(stream)
        stream.seek(len(header))
        return key_typing.csv_key_types(header, stream.read(key_typing.SAMPLE_BYTES), keys)


def _first_object(fs: Any, file: InputFile) -> dict[str, Any]:
    import orjson

    with open_input(fs, file.path) as stream:
        for chunk in lines.iter_lines(stream, 0, None, 100, number=False):
            for line in chunk.lines():
                if not line.strip():
                    continue
                try:
                    first = orjson.loads(line)
                except orjson.JSONDecodeError as err:
                    raise invalid_run("UnreadableInput", f"{file.name}: the first line is not valid JSON ({err})") \
                        from None  # fmt: skip
                if not isinstance(first, dict):
                    raise invalid_run("UnreadableInput", f"{file.name}: the first line is not a JSON object")
                return first
    raise invalid_run("UnreadableInput", f"{file.name} has no rows to take the column names from")


def read_unit(
    fs: Any, unit: WorkUnit, fmt: str, keys: dict[str, pa.DataType], features: list[str], batch_size: int, *,
    number: bool,
) -> Iterator[RowBatch]:  # fmt: skip
    """The unit's rows in batches. `keys`: key columns and their types (from key_types; Parquet's
    as in the file); `number`: give each row its row number in the file."""
    if fmt == "parquet":
        yield from _parquet(fs, unit, list(keys), features, batch_size, number)
        return
    with open_input(fs, unit.path) as stream:
        start, stop = (unit.start, unit.stop) if unit.kind == "bytes" else (0, None)
        if fmt == "csv":
            yield from _csv(stream, unit, keys, features, (start, stop), batch_size, number)
        else:
            for chunk in lines.iter_lines(stream, start, stop, batch_size, number=number):
                yield _json_batch(chunk, unit.name, keys, features)


def _parquet(
    fs: Any, unit: WorkUnit, keys: list[str], features: list[str], batch_size: int, number: bool
) -> Iterator[RowBatch]:
    with _parquet_file(fs, unit.path) as parquet:
        _missing(unit.name, [*keys, *features], parquet.schema_arrow.names)
        groups = list(range(unit.start, unit.stop) if unit.kind == "rowGroups" else range(parquet.num_row_groups))
        if not groups:
            return
        columns = list(dict.fromkeys([*keys, *features]))
        row = unit.first_row
        # One thread: a shard is sized as one core, and Arrow's pool only adds hand-offs here.
        for batch in parquet.iter_batches(batch_size=batch_size, row_groups=groups, columns=columns,
                                          use_threads=False):  # fmt: skip
            count = batch.num_rows
            yield RowBatch(
                unit.name,
                count,
                {k: batch.column(k) for k in keys},
                {c: batch.column(c) for c in features},
                np.arange(row, row + count, dtype=np.int64) if number else None,
            )
            row += count


# -------------------------------------------------------------------------------------------- CSV


def _csv(
    stream: Any, unit: WorkUnit, keys: dict[str, pa.DataType], features: list[str], span: tuple[int, int | None],
    batch_size: int, number: bool,
) -> Iterator[RowBatch]:  # fmt: skip
    header = lines.first_line(stream)
    names = _csv_names(header)
    _missing(unit.name, [*keys, *features], names)
    wanted = {c: keys.get(c, pa.string()) for c in dict.fromkeys([*keys, *features])}
    header_pending = span[0] == 0
    for chunk in lines.iter_lines(stream, span[0], span[1], batch_size, number=number):
        if header_pending:  # the range that starts the file owns the header line: not a row
            header_pending = False
            chunk = lines.LineChunk(chunk.data[len(header) :], None if chunk.first_line is None else 1,
                                    chunk.count - 1)  # fmt: skip
            if not chunk.count:
                continue
        table, row_lines, rejected = _parse_csv(chunk, header, names, wanted)
        rows = None if row_lines is None else row_lines - 1  # the header is line 0
        yield RowBatch(
            unit.name,
            table.num_rows + len(rejected),
            {k: table.column(k) for k in keys},
            {c: table.column(c) for c in features},
            rows,
            rejected,
        )


def _blank_lines(chunk: lines.LineChunk) -> np.ndarray:
    data = np.frombuffer(chunk.data, dtype=np.uint8)
    ends = chunk.line_ends()
    starts = np.concatenate(([0], ends[:-1])).astype(np.int64)
    length = ends - starts
    first = data[np.minimum(starts, len(data) - 1)]  # a chunk is never empty: it has a line
    return (length == 0) | ((length == 1) & (first == lines.NEWLINE)) | ((length == 2) & (first == 13))


def _parse_csv(
    chunk: lines.LineChunk, header: bytes, names: list[str], wanted: dict[str, pa.DataType]
) -> tuple[pa.Table, np.ndarray | None, list[Rejected]]:
    """The chunk's rows (features as strings, keys as their type), the line number of each, and the
    lines that are not rows."""
    blank = _blank_lines(chunk)
    numbers = None if chunk.first_line is None else chunk.first_line + np.arange(chunk.count, dtype=np.int64)
    invalid: list[str] = []

    def on_invalid(row: Any) -> str:
        invalid.append(row.text)
        return "skip"

    try:
        table = pa_csv.read_csv(
            io.BytesIO(header + chunk.data),
            read_options=pa_csv.ReadOptions(use_threads=False, block_size=max(len(chunk.data) + len(header), 1 << 20)),
            parse_options=pa_csv.ParseOptions(invalid_row_handler=on_invalid),
            convert_options=pa_csv.ConvertOptions(
                column_types=wanted, include_columns=list(wanted), strings_can_be_null=False
            ),
        )
    except (pa.ArrowInvalid, UnicodeDecodeError):
        invalid.append("")  # e.g. a key that is not an integer, bytes that are not UTF-8: line by line
        table = None
    if table is not None and not invalid and table.num_rows == int((~blank).sum()):
        return table, None if numbers is None else numbers[~blank], []
    return _parse_csv_lines(chunk, blank, numbers, names, wanted)


def _parse_csv_lines(
    chunk: lines.LineChunk, blank: np.ndarray, numbers: np.ndarray | None, names: list[str],
    wanted: dict[str, pa.DataType],
) -> tuple[pa.Table, np.ndarray | None, list[Rejected]]:  # fmt: skip
    """The slow path, for a chunk with malformed lines: one line at a time (Python's csv module,
    the same dialect), so each bad line is found and reported with its number."""
    index = [(names.index(c), c, kind) for c, kind in wanted.items()]
    good: list[list[Any]] = []
    kept: list[int] = []
    rejected = []
    for i, line in enumerate(chunk.lines()):
        if blank[i]:
            continue
        text = line.decode("utf-8", errors="replace").rstrip("\r\n")
        fields = next(csv.reader([text]), [])
        row = None if numbers is None else int(numbers[i]) - 1
        if len(fields) != len(names):
            reason = f"expected {len(names)} columns, got {len(fields)}"
            rejected.append(Rejected(row, reason, "wrong number of columns", text[:RAW_LIMIT]))
            continue
        values, problem = _csv_values(fields, index)
        if problem is not None:
            rejected.append(Rejected(row, problem, key_typing.summary(problem), text[:RAW_LIMIT]))
            continue
        good.append(values)
        kept.append(i)
    table = pa.table({c: pa.array([v[j] for v in good], kind) for j, (_, c, kind) in enumerate(index)})
    kept_numbers = None if numbers is None else numbers[np.asarray(kept, dtype=np.int64)]
    return table, kept_numbers, rejected


_NULLS = frozenset(pa_csv.ConvertOptions().null_values)  # what pyarrow reads as null in a typed column


def _csv_values(fields: list[str], index: list[tuple[int, str, pa.DataType]]) -> tuple[list[Any], str | None]:
    """A line's wanted fields, keys converted to their type (as pyarrow would), or why one does not fit."""
    values = []
    for j, name, kind in index:
        value, problem = key_typing.csv_key(name, fields[j], kind, _NULLS)
        if problem is not None:
            return [], problem
        values.append(value)
    return values, None


# ------------------------------------------------------------------------------------- JSON lines


def _json_batch(chunk: lines.LineChunk, name: str, keys: dict[str, pa.DataType], features: list[str]) -> RowBatch:
    import orjson

    key_values: dict[str, list[Any]] = {k: [] for k in keys}
    feature_values: dict[str, list[Any]] = {c: [] for c in features}
    rows: list[int] = []
    rejected = []
    first = chunk.first_line
    for i, line in enumerate(chunk.lines()):
        if not line.strip():
            continue
        row = None if first is None else first + i
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError as err:
            rejected.append(Rejected(row, f"not valid JSON: {err}", "not valid JSON", _text(line)))
            continue
        if not isinstance(obj, dict):
            rejected.append(Rejected(row, "not a JSON object", "not a JSON object", _text(line)))
            continue
        typed = [key_typing.json_key(k, obj.get(k), kind) for k, kind in keys.items()]
        problem = next((p for _, p in typed if p is not None), None)
        if problem is not None:
            rejected.append(Rejected(row, problem, key_typing.summary(problem), _text(line)))
            continue
        for values, (value, _) in zip(key_values.values(), typed, strict=True):
            values.append(value)
        for c, values in feature_values.items():
            values.append(obj.get(c))
        if row is not None:
            rows.append(row)
    parsed = len(next(iter(feature_values.values())))
    return RowBatch(
        name,
        parsed + len(rejected),
        {k: pa.array(v, keys[k]) for k, v in key_values.items()},
        dict(feature_values),
        None if first is None else np.asarray(rows, dtype=np.int64),
        rejected,
    )


def _text(line: bytes) -> str:
    return line.decode("utf-8", errors="replace")[:RAW_LIMIT]
