"""The feedback endpoint (docs/runtime.md, Feedback): every answer through the real ASGI app, the
accuracy gauge after a known share of wrong labels, regression, expiry, and the served process."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from sklearn.linear_model import LinearRegression

from modelpilot.monitoring import contract as c
from modelpilot.monitoring.profile import build_profile, write_profile
from modelpilot.server.app import InferenceApp
from modelpilot.server.drift import DriftMonitor, DriftSettings
from modelpilot.server.inference import ModelState
from modelpilot.server.loaders import load_model
from modelpilot.server.metrics import MetricLabels, RequestMetrics
from tests.server.inprocess import FakeClock, by_label, call, samples, single
from tests.support import testmodels
from tests.support.testing import RuntimeProcess, iris_request

INFER = "/v2/models/iris/infer"
FEEDBACK = "/v2/models/iris/feedback"
LABELS = MetricLabels(model_deployment="iris", model="iris", version="v1", track="stable", revision="r1")




def make_app(
    model_dir: Path, *, loaded: bool = True, clock: FakeClock | None = None, **settings: Any
) -> InferenceApp:
    metrics = RequestMetrics(LABELS)
    model = load_model(model_dir)
    drift = DriftMonitor(LABELS, DriftSettings(**settings), metrics.registry, clock or time.monotonic)
    drift.load(model, model_dir)
    state = ModelState("iris", "v1", model if loaded else None)
    return InferenceApp(state, metrics, drift=drift, max_body_bytes=4096)


def infer(app: InferenceApp, rows: list[list[float]], request_id: str | None = None,
          header: str | None = None) -> list[Any]:  # fmt: skip
    request: dict[str, Any] = iris_request(rows)
    if request_id is not None:
        request["id"] = request_id
    answer = call(app, "POST", INFER, request, [("x-request-id", header)] if header else [])
    assert answer.status == 200, answer.body
    assert answer.json().get("id") == request_id  # the OIP id comes back; none when not sent
    return list(answer.json()["outputs"][0]["data"])


def test_accuracy_after_flipping_30_percent_of_the_labels(profiled: Path) -> None:
    app = make_app(profiled)
    x, _ = testmodels.iris()
    for request in range(15):
        rows = x[request * 10 : request * 10 + 10].tolist()
        predicted = infer(app, rows, f"req-{request}")
        # Rows 0, 1 and 2 of every 10 get a wrong label: 45 of 150.
        truth = [(p + 1) % 3 if i < 3 else p for i, p in enumerate(predicted)]
        answer = call(app, "POST", FEEDBACK, {"id": f"req-{request}", "truth": truth})
        assert (answer.status, answer.json()) == (200, {"id": f"req-{request}", "rows": 10, "correct": 7})
    found = samples(app)
    assert single(found[c.FEEDBACK_ROWS]) == 150
    assert single(found[c.FEEDBACK_ACCURACY]) == pytest.approx(0.7)
    assert single(found[c.REFERENCE_ACCURACY]) == pytest.approx(146 / 150)
    assert c.FEEDBACK_ERROR not in found
    assert by_label(found[c.FEEDBACK_TOTAL], c.RESULT) == {"joined": 15, "unknown": 0, "duplicate": 0, "invalid": 0}


# (id, body (bytes as is, else JSON), status, part of the error)
ANSWERS: list[tuple[str, Any, int, str]] = [
    ("joined", {"id": "known", "truth": 0}, 200, ""),
    ("joined-list", {"id": "known", "truth": ["0"]}, 200, ""),
    ("unknown-id", {"id": "nobody", "truth": 0}, 404, "no prediction with id 'nobody' (unknown or expired)"),
    ("malformed-json", b"{not json", 400, "malformed JSON"),
    ("not-an-object", [1, 2], 400, "must be a JSON object"),
    ("no-id", {"truth": 0}, 400, "'id' must be the non-empty id"),
    ("id-not-text", {"id": 7, "truth": 0}, 400, "'id' must be"),
    ("no-truth", {"id": "known"}, 400, "'truth' is missing"),
    ("null-truth", {"id": "known", "truth": None}, 400, "'truth' is missing"),
    ("wrong-count", {"id": "known", "truth": [0, 1]}, 400, "truth has 2 values; the request had 1 rows"),
    ("unparsable", {"id": "known", "truth": {"label": 0}}, 400, "must be a string, a number or a bool"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "status", "error"), [a[1:] for a in ANSWERS], ids=[a[0] for a in ANSWERS])
def test_answers(profiled: Path, body: Any, status: int, error: str) -> None:
    app = make_app(profiled)
    infer(app, [[5.1, 3.5, 1.4, 0.2]], "known")  # predicted class 0
    answer = call(app, "POST", FEEDBACK, body)
    assert answer.status == status
    assert answer.headers["content-type"] == "application/json"
    if status == 200:
        assert answer.json() == {"id": "known", "rows": 1, "correct": 1}
    else:
        assert error in answer.json()["error"]
    result = {200: "joined", 404: "unknown", 400: "invalid"}[status]
    counted = by_label(samples(app)[c.FEEDBACK_TOTAL], c.RESULT)
    assert counted == {r: float(r == result) for r in ("joined", "unknown", "duplicate", "invalid")}


def test_duplicate_method_size_and_readiness(profiled: Path) -> None:
    app = make_app(profiled)
    infer(app, [[5.1, 3.5, 1.4, 0.2]], "once")
    assert call(app, "POST", FEEDBACK, {"id": "once", "truth": 0}).status == 200
    again = call(app, "POST", FEEDBACK, {"id": "once", "truth": 0})
    assert (again.status, again.json()) == (409, {"error": "feedback for id 'once' was already received"})
    get = call(app, "GET", FEEDBACK)
    assert (get.status, get.headers["allow"]) == (405, "POST")
    large = call(app, "POST", FEEDBACK, {"id": "once", "truth": [0] * 3000})  # over the app's 4,096 bytes
    assert large.status == 413 and "MODELPILOT_MAX_BODY_BYTES" in large.json()["error"]
    versioned = call(app, "POST", "/v2/models/iris/versions/v1/feedback", {"id": "once", "truth": 0})
    assert versioned.status == 409
    other = call(app, "POST", "/v2/models/other/feedback", {"id": "once", "truth": 0})
    assert (other.status, other.json()["error"]) == (404, "unknown model 'other'; this server serves iris version v1")
    found = samples(app)
    assert by_label(found[c.FEEDBACK_TOTAL], c.RESULT) == {"joined": 1, "unknown": 0, "duplicate": 2, "invalid": 2}
    # Feedback is not inference traffic: only the one infer request is in the requests counter.
    assert by_label(found["modelpilot_requests_total"], "code") == {"200": 1}
    not_ready = make_app(profiled, loaded=False)
    answer = call(not_ready, "POST", FEEDBACK, {"id": "once", "truth": 0})
    assert answer.status == 503 and answer.json()["error"].startswith("model not ready")


def test_the_request_id_header_identifies_a_request_without_an_id(profiled: Path) -> None:
    app = make_app(profiled)
    infer(app, [[6.7, 3.0, 5.2, 2.3]], header="from-header")
    infer(app, [[6.7, 3.0, 5.2, 2.3]])  # no id at all: nothing to join feedback to
    infer(app, [[6.7, 3.0, 5.2, 2.3]], request_id="body-wins", header="ignored")
    assert call(app, "POST", FEEDBACK, {"id": "from-header", "truth": 2}).json() == {
        "id": "from-header", "rows": 1, "correct": 1}  # fmt: skip
    assert call(app, "POST", FEEDBACK, {"id": "body-wins", "truth": 2}).status == 200
    assert call(app, "POST", FEEDBACK, {"id": "ignored", "truth": 2}).status == 404


def test_predictions_expire(profiled: Path) -> None:
    clock = FakeClock()
    app = make_app(profiled, clock=clock, feedback_ttl_seconds=60, window_seconds=120)
    infer(app, [[5.1, 3.5, 1.4, 0.2]], "early")
    clock.now = 59
    assert call(app, "POST", FEEDBACK, {"id": "early", "truth": 0}).status == 200
    infer(app, [[5.1, 3.5, 1.4, 0.2]], "late")
    clock.now = 120
    assert call(app, "POST", FEEDBACK, {"id": "late", "truth": 0}).status == 404
    clock.now = 190  # the joined rows left the 120 s window too
    assert single(samples(app)[c.FEEDBACK_ROWS]) == 0


def test_regression_feedback(tmp_path: Path) -> None:
    x, _ = testmodels.iris()
    # petal width from the other three measures: a float output, so regression.
    model = LinearRegression().fit(x[:, :3], x[:, 3])
    joblib.dump(model, tmp_path / testmodels.MODEL_FILE)
    predictions = model.predict(x[:, :3])
    columns = {name: x[:, i] for i, name in enumerate(testmodels.IRIS_FEATURES[:3])}
    write_profile(build_profile(columns, predictions, x[:, 3]), tmp_path / c.PROFILE_FILE)
    app = make_app(tmp_path)
    request = {"id": "r", "inputs": [{"name": "input-0", "shape": [2, 3], "datatype": "FP64",
                                      "data": x[:2, :3].ravel().tolist()}]}  # fmt: skip
    predicted = call(app, "POST", INFER, request).json()["outputs"][0]["data"]
    truth = [predicted[0] + 0.5, predicted[1] - 1.5]
    answer = call(app, "POST", FEEDBACK, {"id": "r", "truth": truth})
    assert answer.status == 200
    assert answer.json() == {"id": "r", "rows": 2, "absoluteError": pytest.approx(2.0)}
    found = samples(app)
    assert single(found[c.FEEDBACK_ERROR]) == pytest.approx(1.0)  # 2.0 over 2 rows
    assert single(found[c.REFERENCE_ERROR]) == pytest.approx(np.abs(predictions - x[:, 3]).mean())
    assert c.FEEDBACK_ACCURACY not in found


def test_feedback_through_the_served_process(profiled: Path) -> None:
    with RuntimeProcess.serve(profiled, name="iris") as server:
        server.wait_ready()
        status, body = server.post_json(INFER, {**iris_request([[5.1, 3.5, 1.4, 0.2]] * 2), "id": "abc"})
        assert (status, body["id"]) == (200, "abc")
        status, body = server.post_json(FEEDBACK, {"id": "abc", "truth": [0, 1]})
        assert (status, body) == (200, {"id": "abc", "rows": 2, "correct": 1})
        assert server.post_json(FEEDBACK, {"id": "abc", "truth": [0, 1]})[0] == 409
        assert 'modelpilot_feedback_accuracy{model="iris"' in server.metrics_text()
