"""Score row batches: validate, predict in one vectorised call per batch, write predictions and errors.

Rows that cannot be predicted never vanish: bad values and unparsable lines go to the errors file
with their reason, and so do rows the model fails on. When predict raises for a batch, the batch
is cut in halves, recursively, so only the rows that fail on their own are left out (with the
exception's text); the others are predicted as usual.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from modelpilot.batch.convert import feature_matrix, prediction_array, raw_values
from modelpilot.batch.readers import Rejected, RowBatch
from modelpilot.batch.writers import FILE_COLUMN, ROW_COLUMN, ErrorWriter, PartWriter, output_table
from modelpilot.server.loaders import Model, model_inputs

MESSAGE_LIMIT = 500  # characters of a predict exception kept in an error row


@dataclass
class Counts:
    rows_in: int = 0
    rows_out: int = 0
    rows_failed: int = 0


@dataclass
class Prediction:
    """Predictions of the rows that succeeded (in row order) and the failures, by row index."""

    rows: np.ndarray
    values: pa.Array | None
    failed: dict[int, str]


def predict_rows(model: Model, matrix: np.ndarray) -> Prediction:
    """Predict every row of `matrix` (one call when nothing fails), halving around failures.

    A loop over a stack of row ranges, not a recursive closure: a closure that calls itself is a
    reference cycle, which would keep every batch's matrix alive until the cyclic GC happens to run."""
    output = model.default_outputs[0]
    segments: list[tuple[int, pa.Array]] = []
    failed: dict[int, str] = {}
    pending = [(0, len(matrix))] if len(matrix) else []
    while pending:
        low, high = pending.pop()
        try:
            result = model.predict(model_inputs(model, matrix[low:high]), [output])
            segments.append((low, prediction_array(result[output], high - low)))
        except Exception as err:  # any model error: find the rows it comes from
            if high - low == 1:
                failed[low] = f"{type(err).__name__}: {err}"[:MESSAGE_LIMIT]
            else:
                middle = (low + high) // 2
                pending += [(middle, high), (low, middle)]  # the lower half next: rows stay in order
    if not failed:
        values = segments[0][1] if segments else None
        return Prediction(np.arange(len(matrix)), values, failed)
    rows = np.concatenate([np.arange(low, low + len(v)) for low, v in segments] or [np.zeros(0, np.int64)])
    values = pa.concat_arrays([v for _, v in segments]) if segments else None
    return Prediction(rows.astype(np.int64), values, failed)


class Scorer:
    """Scores the batches of one shard into its part and errors writers."""

    def __init__(self, model: Model, keys: list[str], part: PartWriter, errors: ErrorWriter) -> None:
        self.model = model
        self.keys = keys
        self.part = part
        self.errors = errors
        self.counts = Counts()

    def _identity(self, batch: RowBatch, row: int, number: int | None) -> dict[str, Any]:
        """Key columns, or _file and _row, of a row (by index in the batch)."""
        if self.keys:
            out: dict[str, Any] = {FILE_COLUMN: batch.name}
            for key, column in batch.keys.items():
                out[key] = column[row].as_py() if isinstance(column, pa.Array | pa.ChunkedArray) else column[row]
            return out
        return {FILE_COLUMN: batch.name, ROW_COLUMN: number}

    def _rejected(self, batch: RowBatch, rejected: Rejected) -> tuple[dict[str, Any], str]:
        identity = {k: None for k in self.keys} if self.keys else {ROW_COLUMN: rejected.row}
        return {FILE_COLUMN: batch.name, **identity, "reason": rejected.reason, "line": rejected.raw}, rejected.summary

    def _failed(self, batch: RowBatch, row: int, reason: str) -> dict[str, Any]:
        number = None if batch.rows is None else int(batch.rows[row])
        return {**self._identity(batch, row, number), "reason": reason, "values": raw_values(batch.features, row)}

    def score(self, batch: RowBatch) -> None:
        parsed = batch.size - len(batch.rejected)
        self.counts.rows_in += batch.size
        errors = [self._rejected(batch, r) for r in batch.rejected]
        matrix, problems = feature_matrix(batch.features, parsed)
        keep: np.ndarray | None = None
        if problems.reasons:
            bad = np.fromiter(problems.reasons, dtype=np.int64)
            keep = np.setdiff1d(np.arange(parsed), bad)
            matrix = matrix[keep]
            for row in sorted(problems.reasons):
                reason = "; ".join(problems.reasons[row])
                errors.append((self._failed(batch, row, reason), problems.summaries[row]))
        prediction = predict_rows(self.model, matrix)
        if prediction.failed:
            for index, message in sorted(prediction.failed.items()):
                row = int(index if keep is None else keep[index])
                reason = f"predict failed: {message}"
                errors.append((self._failed(batch, row, reason), f"predict failed: {message.split(':')[0]}"))
            keep = prediction.rows if keep is None else keep[prediction.rows]
        if prediction.values is not None and len(prediction.values):
            self.part.write(output_table(batch.name, batch.keys, batch.rows, keep, prediction.values))
            self.counts.rows_out += len(prediction.values)
        self.errors.write(errors)
        self.counts.rows_failed += len(errors)
