"""Run a model (as the runtime loaded it) on the validation rows: its predictions, and how long a
single-row call and a whole-batch call take.

Every model goes through the runtime's `Model.predict` with inputs built by `loaders.model_inputs`
(the same datatype conversion a request gets), so the timings compare what a server would spend
on the model, not a framework's bare call.
"""

from __future__ import annotations

import time

import numpy as np

from modelpilot.optimize.errors import ConversionError, UsageError, first_line
from modelpilot.optimize.report import Latency
from modelpilot.server.loaders import Model, model_inputs

BATCH_ROWS = 10_000  # rows per predict call when predicting every row, and the latency batch's size
ROW_SAMPLES = 200  # rows timed one by one
ROW_REPEATS = 3  # passes over those rows
BATCH_REPEATS = 5  # timed whole-batch calls
WARMUP_CALLS = 3


def _inputs(model: Model, batch: np.ndarray) -> dict[str, np.ndarray]:
    try:
        return model_inputs(model, batch)
    except ValueError as err:
        raise UsageError(f"the feature columns do not fit the model: {first_line(err)}") from None


def _call(model: Model, inputs: dict[str, np.ndarray], output: str, name: str) -> np.ndarray:
    try:
        return np.asarray(model.predict(inputs, [output])[output])
    except Exception as err:  # any framework error on these rows
        raise ConversionError(f"the {name} model failed to predict: {type(err).__name__}: {first_line(err)}") from err


def predict_all(model: Model, matrix: np.ndarray, output: str, name: str) -> np.ndarray:
    """`output` of `model` on every row, predicted in batches of BATCH_ROWS."""
    parts = [_call(model, _inputs(model, matrix[start : start + BATCH_ROWS]), output, name)
             for start in range(0, matrix.shape[0], BATCH_ROWS)]  # fmt: skip
    return np.concatenate(parts, axis=0)


def time_model(model: Model, matrix: np.ndarray, output: str, name: str) -> Latency:
    """Seconds per single-row call (the first ROW_SAMPLES rows, ROW_REPEATS times) and per call
    on the first BATCH_ROWS rows at once (BATCH_REPEATS times), after a few untimed calls."""
    singles = [_inputs(model, matrix[i : i + 1]) for i in range(min(ROW_SAMPLES, matrix.shape[0]))]
    batch = _inputs(model, matrix[:BATCH_ROWS])
    for inputs in singles[:WARMUP_CALLS]:
        _call(model, inputs, output, name)
    _call(model, batch, output, name)
    row_seconds = []
    for _ in range(ROW_REPEATS):
        for inputs in singles:
            start = time.perf_counter()
            _call(model, inputs, output, name)
            row_seconds.append(time.perf_counter() - start)
    batch_seconds = []
    for _ in range(BATCH_REPEATS):
        start = time.perf_counter()
        _call(model, batch, output, name)
        batch_seconds.append(time.perf_counter() - start)
    return Latency(tuple(row_seconds), tuple(batch_seconds), int(min(BATCH_ROWS, matrix.shape[0])))
