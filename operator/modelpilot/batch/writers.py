"""The shard's part (predictions, Parquet or JSON lines) and its errors (JSON lines), streamed.

A part is one ParquetWriter over a Sink: each predicted batch becomes row groups as it comes, so
memory stays at one batch whatever the shard's size. Output rows: the key columns (or `_file` and
`_row`), then `prediction`.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pyarrow as pa

from modelpilot.batch.storage import Sink

PREDICTION = "prediction"
FILE_COLUMN = "_file"
ROW_COLUMN = "_row"
WRITE_BUFFER = 4 << 20


def output_table(
    name: str, keys: dict[str, Any], rows: np.ndarray | None, keep: np.ndarray | None, predictions: pa.Array
) -> pa.Table:
    """The output rows of a batch: `keep` picks the predicted rows (None: all of them)."""
    take = None if keep is None else pa.array(keep, pa.int64())
    columns: dict[str, pa.Array] = {}
    if keys:
        for key, column in keys.items():
            columns[key] = column if take is None else column.take(take)
    else:
        assert rows is not None, "rows are numbered when there are no key columns"
        columns[FILE_COLUMN] = pa.repeat(pa.scalar(name, pa.string()), len(predictions))
        columns[ROW_COLUMN] = pa.array(rows if keep is None else rows[keep], pa.int64())
    columns[PREDICTION] = predictions
    return pa.table(columns)


def empty_schema(keys: dict[str, pa.DataType | None], prediction: pa.DataType) -> pa.Schema:
    """The schema of a part with no rows (keys whose type comes from the files: strings)."""
    if keys:
        fields = [pa.field(k, kind or pa.string()) for k, kind in keys.items()]
    else:
        fields = [pa.field(FILE_COLUMN, pa.string()), pa.field(ROW_COLUMN, pa.int64())]
    return pa.schema([*fields, pa.field(PREDICTION, prediction)])


class PartWriter:
    """Streams output tables into a Sink as Parquet or JSON lines."""

    def __init__(self, sink: Sink, fmt: str, fallback: pa.Schema) -> None:
        self.sink = sink
        self.fmt = fmt
        self.fallback = fallback
        self.rows = 0
        self._parquet: Any = None
        self._stream: Any = None

    def write(self, table: pa.Table) -> None:
        if not table.num_rows:
            return
        self.rows += table.num_rows
        if self.fmt == "jsonl":
            _write_json_lines(self.sink, table.to_pylist())
            return
        if self._parquet is None:
            self._open(table.schema)
        elif table.schema != self._parquet.schema:
            # e.g. a key column that is all null in one batch: one schema for the whole part
            table = table.cast(self._parquet.schema)
        self._parquet.write_table(table)

    def finish(self) -> None:
        """Write the footer (a part with no rows is still a valid, empty Parquet file)."""
        if self.fmt == "jsonl":
            return
        if self._parquet is None:
            self._open(self.fallback)
        self._parquet.close()
        self._stream.close()  # flushes into the sink (whose close() leaves publishing to its owner)

    def _open(self, schema: pa.Schema) -> None:
        import pyarrow.parquet as pq

        # Buffered in Arrow: a few large writes into the (Python) sink instead of one per page.
        self._stream = pa.output_stream(self.sink, buffer_size=WRITE_BUFFER)
        # Dictionary encoding only where values repeat (predicted classes, the file name): on
        # unique keys or scores it costs more time than predicting. Integer keys and row numbers
        # are mostly ascending: delta encoding makes them small and is fast.
        dictionary = [c for c in (PREDICTION, FILE_COLUMN) if c in schema.names and _repeats(schema.field(c).type)]
        delta = {f.name: "DELTA_BINARY_PACKED" for f in schema
                 if f.name not in dictionary and pa.types.is_integer(f.type)}  # fmt: skip
        self._parquet = pq.ParquetWriter(self._stream, schema, use_dictionary=dictionary, column_encoding=delta or None)


def _repeats(kind: pa.DataType) -> bool:
    """Whether a column of this type is likely to repeat values: labels and names, not floats."""
    return pa.types.is_integer(kind) or pa.types.is_string(kind) or pa.types.is_boolean(kind)


def _write_json_lines(sink: Sink, rows: list[dict[str, Any]]) -> None:
    import orjson

    # orjson writes NaN and infinity as null: JSON has neither.
    sink.write(b"".join(orjson.dumps(row, default=str) + b"\n" for row in rows))


class ErrorWriter:
    """Streams error rows (JSON lines) into a Sink and counts their reasons."""

    TOP_REASONS = 10

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.rows = 0
        self.summaries: Counter[str] = Counter()

    def write(self, rows: list[tuple[dict[str, Any], str]]) -> None:
        """(error row, summary of its reason) pairs."""
        if not rows:
            return
        self.rows += len(rows)
        self.summaries.update(summary for _, summary in rows)
        _write_json_lines(self.sink, [row for row, _ in rows])

    def top_reasons(self) -> list[dict[str, Any]]:
        return [{"reason": r, "rows": n} for r, n in self.summaries.most_common(self.TOP_REASONS)]
