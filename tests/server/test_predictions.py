"""The prediction histogram (docs/runtime.md, Metrics): bins per output datatype, the class bound,
and modelpilot_predictions_total counted through the real ASGI app on successful inferences only."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from modelpilot.server.app import InferenceApp
from modelpilot.server.inference import ModelState
from modelpilot.server.loaders import load_model
from modelpilot.server.metrics import MetricLabels, RequestMetrics
from modelpilot.server.predictions import FLOAT_BINS, MAX_CLASS_BINS, OTHER, PREDICTION_EDGES, PredictionBinner
from tests.support.testing import iris_request

NAN = math.nan
INF = math.inf

# (id, output as the model returns it, {bin: rows})
CASES: list[tuple[str, Any, dict[str, int]]] = [
    ("int64-classes", np.array([0, 1, 1, 2, 2, 2]), {"0": 1, "1": 2, "2": 3}),
    ("uint8-classes", np.array([3, 3, 250], dtype=np.uint8), {"3": 2, "250": 1}),
    ("negative-int", np.array([-1, -1, 7], dtype=np.int32), {"-1": 2, "7": 1}),
    ("unicode-classes", np.array(["setosa", "virginica", "setosa"]), {"setosa": 2, "virginica": 1}),
    ("object-strings", np.array(["setosa", "versicolor"], dtype=object), {"setosa": 1, "versicolor": 1}),
    ("bytes-classes", np.array([b"yes", b"no", b"yes"]), {"yes": 2, "no": 1}),
    ("object-bytes", np.array([b"caf\xc3\xa9"], dtype=object), {"café": 1}),
    ("bool", np.array([True, False, True, True]), {"true": 3, "false": 1}),
    ("column-[N,1]", np.array([[0], [1], [1]]), {"0": 1, "1": 2}),
    ("column-[N,1,1]", np.array([[[2.5]], [[0.05]]]), {"[1,10)": 1, "[0,0.1)": 1}),
    ("floats", np.array([0.5, 0.05, -0.05, 3.0, 42.0, -7.0, 5e3, -5e3]),
     {"[0.1,1)": 1, "[0,0.1)": 1, "[-0.1,0)": 1, "[1,10)": 1, "[10,100)": 1, "[-10,-1)": 1,
      "[1000,+inf)": 1, "[-inf,-1000)": 1}),
    # Each bin is [lo, hi): an edge belongs to the bin above it; -0.0 is 0.
    ("float-edges", np.array([0.0, -0.0, 0.1, 1.0, 10.0, 1e3, -0.1, -1.0, -1e3]),
     {"[0,0.1)": 2, "[0.1,1)": 1, "[1,10)": 1, "[10,100)": 1, "[1000,+inf)": 1, "[-0.1,0)": 1,
      "[-1,-0.1)": 1, "[-1000,-100)": 1}),
    ("infinities", np.array([INF, -INF, INF]), {"[1000,+inf)": 2, "[-inf,-1000)": 1}),
    ("nan", np.array([NAN, 1.5, NAN]), {"nan": 2, "[1,10)": 1}),
    ("float32", np.array([0.5, 200.0], dtype=np.float32), {"[0.1,1)": 1, "[100,1000)": 1}),
    ("float16", np.array([-0.5], dtype=np.float16), {"[-1,-0.1)": 1}),
    # Not one value per row, or not a class or a number: not counted, never an error.
    ("probabilities-[N,3]", np.array([[0.1, 0.2, 0.7], [0.3, 0.3, 0.4]]), {}),
    ("scalar", np.array(1.0), {}),
    ("empty", np.zeros((0,), dtype=np.int64), {}),
    ("empty-[0,1]", np.zeros((0, 1)), {}),
    ("[N,0]", np.zeros((3, 0)), {}),
    ("complex", np.array([1 + 2j]), {}),
    ("datetime", np.array(["2026-01-01"], dtype="datetime64[D]"), {}),
    ("mixed-objects", np.array([1, "a", None], dtype=object), {}),
    ("not-an-array", [0, 1, 2], {}),
    ("none", None, {}),
]


@pytest.mark.parametrize(("output", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bins(output: Any, expected: dict[str, int]) -> None:
    assert PredictionBinner().count(output) == expected


def test_float_bins_are_the_contract() -> None:
    assert PREDICTION_EDGES == (-INF, -1e3, -1e2, -1e1, -1, -0.1, 0, 0.1, 1, 1e1, 1e2, 1e3, INF)
    assert FLOAT_BINS == (
        "[-inf,-1000)", "[-1000,-100)", "[-100,-10)", "[-10,-1)", "[-1,-0.1)", "[-0.1,0)",
        "[0,0.1)", "[0.1,1)", "[1,10)", "[10,100)", "[100,1000)", "[1000,+inf)",
    )  # fmt: skip
    # Every float lands in exactly one bin: a large random batch keeps its row count.
    values = np.random.default_rng(7).standard_cauchy(100_000) * 50
    assert sum(PredictionBinner().count(values).values()) == values.size


def test_the_33rd_class_goes_to_other_for_the_rest_of_the_process() -> None:
    binner = PredictionBinner()
    assert MAX_CLASS_BINS == 32
    # 32 labels in the first batch (in order of first appearance), then a 33rd and a 34th.
    first = np.array([f"c{i}" for i in range(MAX_CLASS_BINS)] * 2)
    assert binner.count(first) == {f"c{i}": 2 for i in range(MAX_CLASS_BINS)}
    assert binner.count(np.array(["c32", "c0", "c33", "c32"])) == {"c0": 1, OTHER: 3}
    # Within one batch the earliest new labels win the remaining bins.
    binner = PredictionBinner()
    batch = np.arange(40, 0, -1)  # 40, 39, ..., 1
    counts = binner.count(batch)
    assert counts == {**{str(v): 1 for v in range(40, 8, -1)}, OTHER: 8}
    assert binner.count(np.array([40, 8, 1])) == {"40": 1, OTHER: 2}


def test_a_large_batch_is_counted_without_a_python_loop_per_row() -> None:
    # 2 million rows, 1000 distinct labels: exact totals; the loop is per bin (33), not per row.
    values = np.random.default_rng(1).integers(0, 1000, size=2_000_000)
    counts = PredictionBinner().count(values)
    assert len(counts) == MAX_CLASS_BINS + 1
    assert sum(counts.values()) == values.size


# --- through the ASGI app --------------------------------------------------------------------------
IRIS_ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5], [5.0, 3.4, 1.5, 0.2]]


def _call(app: InferenceApp, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": method, "path": path, "headers": []}
    asyncio.run(app(scope, receive, send))
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


def _predictions(exposition: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name == "modelpilot_predictions_total":
                labels = dict(sample.labels)
                assert labels.pop("bin") not in out
                assert labels == {"model_deployment": "iris-prod", "model": "iris", "version": "v1",
                                  "revision": "r1", "track": "canary"}
                out[sample.labels["bin"]] = sample.value
    return out


def test_an_inference_counts_its_predicted_rows_by_class(models: dict[str, Path]) -> None:
    labels = MetricLabels(model_deployment="iris-prod", model="iris", version="v1", track="canary", revision="r1")
    metrics = RequestMetrics(labels)
    app = InferenceApp(ModelState(name="iris", version="v1", model=load_model(models["iris"])), metrics)
    path = "/v2/models/iris/infer"
    status, body = _call(app, "POST", path, orjson.dumps(iris_request(IRIS_ROWS)))
    assert status == 200, body
    assert orjson.loads(body)["outputs"][0]["data"] == [0, 2, 1, 0]
    expected = {"0": 2.0, "2": 1.0, "1": 1.0}
    assert _predictions(_call(app, "GET", "/metrics")[1].decode()) == expected
    # Errors count nothing; neither does a first output with several values per row.
    assert _call(app, "POST", path, b"{not json")[0] == 400
    assert _call(app, "POST", path, orjson.dumps(iris_request([[1.0, 2.0]])))[0] == 400
    proba_first = {**iris_request(IRIS_ROWS), "outputs": [{"name": "predict_proba"}, {"name": "predict"}]}
    assert _call(app, "POST", path, orjson.dumps(proba_first))[0] == 200
    assert _predictions(_call(app, "GET", "/metrics")[1].decode()) == expected
    # The binary extension decodes the same rows: counted the same way.
    binary = {**iris_request(IRIS_ROWS[:1]), "parameters": {"binary_data_output": True}}
    assert _call(app, "POST", path, orjson.dumps(binary))[0] == 200
    assert _predictions(_call(app, "GET", "/metrics")[1].decode()) == {**expected, "0": 3.0}
