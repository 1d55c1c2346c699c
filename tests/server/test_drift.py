"""Drift monitoring in the runtime (docs/runtime.md, Drift monitoring): the gauges through the real
ASGI app with the iris model and its profile, shifted and unshifted traffic, no profile, the
settings, and the real `modelpilot serve` process."""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path

import numpy as np
import pytest

from modelpilot.cli.main import build_parser
from modelpilot.monitoring import contract as c
from modelpilot.monitoring.profile import build_profile, write_profile
from modelpilot.server.app import InferenceApp
from modelpilot.server.drift import DriftMonitor, DriftSettings, LiveCounts
from modelpilot.server.inference import ModelState
from modelpilot.server.loaders import load_model
from modelpilot.server.metrics import MetricLabels, RequestMetrics
from modelpilot.server.serve import ConfigError, build_app, resolve_config
from tests.server.inprocess import FakeClock, Samples, by_label, call, samples, single
from tests.support import testmodels
from tests.support.testing import RuntimeProcess, iris_request

BASE = {"model_deployment": "iris-prod", "model": "iris", "version": "v1", "revision": "r1", "track": "canary"}
FEATURES = list(testmodels.IRIS_FEATURES)
INFER = "/v2/models/iris/infer"




def make_app(
    model_dir: Path, settings: DriftSettings | None = None, clock: FakeClock | None = None
) -> tuple[InferenceApp, DriftMonitor]:
    labels = MetricLabels(**BASE)
    metrics = RequestMetrics(labels)
    model = load_model(model_dir)
    drift = DriftMonitor(labels, settings or DriftSettings(), metrics.registry, clock or time.monotonic)
    drift.load(model, model_dir)
    return InferenceApp(ModelState("iris", "v1", model), metrics, drift=drift), drift


def send_rows(app: InferenceApp, rows: np.ndarray, per_request: int = 10) -> None:
    for start in range(0, len(rows), per_request):
        answer = call(app, "POST", INFER, iris_request(rows[start : start + per_request].tolist()))
        assert answer.status == 200, answer.body


def features_psi(found: Samples) -> dict[str, float]:
    return by_label(found[c.FEATURE_PSI], c.FEATURE)


def bootstrap(rows: int, seed: int = 11) -> np.ndarray:
    """Rows drawn from the iris data with replacement: in-distribution traffic."""
    x, _ = testmodels.iris()
    return x[np.random.default_rng(seed).integers(0, len(x), rows)]


def test_the_training_data_itself_shows_no_drift(profiled: Path) -> None:
    app, _ = make_app(profiled)
    x, _ = testmodels.iris()
    send_rows(app, x)
    found = samples(app)
    for name in (c.PROFILE_LOADED, c.WINDOW_ROWS, c.FEATURE_PSI, c.FEATURE_BIN_RATIO, c.PREDICTION_PSI):
        for labels, _value in found[name]:
            assert {k: labels[k] for k in BASE} == BASE, name
    assert single(found[c.PROFILE_LOADED]) == 1
    assert single(found[c.WINDOW_ROWS]) == 150
    assert single(found[c.PREDICTION_ROWS]) == 150
    # Live equals reference: PSI 0, p-value 1, the same shares bin by bin.
    assert features_psi(found) == pytest.approx(dict.fromkeys(FEATURES, 0.0), abs=1e-12)
    assert by_label(found[c.FEATURE_P_VALUE], c.FEATURE) == pytest.approx(dict.fromkeys(FEATURES, 1.0))
    shares = by_label(found[c.FEATURE_BIN_RATIO], c.FEATURE, c.BIN, c.DISTRIBUTION)
    reference = {k[:2]: v for k, v in shares.items() if k[2] == "reference"}
    assert {k[:2]: v for k, v in shares.items() if k[2] == "live"} == pytest.approx(reference)
    assert len(reference) == 11 + 10 + 11 + 10  # every bin of every feature, "missing" included
    assert single(found[c.PREDICTION_PSI]) == pytest.approx(0.0, abs=1e-12)
    assert single(found[c.UNEXPORTED_FEATURES]) == 0
    assert c.UNEXPORTED_PSI_MAX not in found
    assert single(found[c.REFERENCE_ACCURACY]) == pytest.approx(0.9733, abs=1e-4)
    assert single(found[c.FEEDBACK_ROWS]) == 0 and c.FEEDBACK_ACCURACY not in found


def test_a_feature_shifted_by_two_standard_deviations_stands_out(profiled: Path) -> None:
    rows = bootstrap(3000)
    steady, _ = make_app(profiled)
    send_rows(steady, rows, per_request=25)
    in_distribution = features_psi(samples(steady))
    assert max(in_distribution.values()) < 0.1, in_distribution
    assert min(by_label(samples(steady)[c.FEATURE_P_VALUE], c.FEATURE).values()) > 0.001

    x, _ = testmodels.iris()
    shifted_rows = rows.copy()
    shifted_rows[:, 1] += 2 * x[:, 1].std()  # sepal_width
    shifted, _ = make_app(profiled)
    send_rows(shifted, shifted_rows, per_request=25)
    found = samples(shifted)
    scores = features_psi(found)
    assert max(scores, key=scores.__getitem__) == "sepal_width"
    assert scores["sepal_width"] > 0.2
    assert all(scores[f] < 0.1 for f in FEATURES if f != "sepal_width"), scores
    assert by_label(found[c.FEATURE_P_VALUE], c.FEATURE)["sepal_width"] < 1e-6


def test_a_few_rows_do_not_look_like_drift(profiled: Path) -> None:
    app, _ = make_app(profiled)
    send_rows(app, bootstrap(5))
    found = samples(app)
    # Five rows cannot fill ten bins: PSI is high, the p-value says it means nothing.
    assert max(features_psi(found).values()) > 0.2
    assert min(by_label(found[c.FEATURE_P_VALUE], c.FEATURE).values()) > 0.05


def test_features_past_max_features_are_summarised(profiled: Path) -> None:
    app, _ = make_app(profiled, DriftSettings(max_features=1))
    rows = bootstrap(2000)
    rows[:, 2] += 2 * testmodels.iris()[0][:, 2].std()  # petal_length, not exported
    send_rows(app, rows, per_request=50)
    found = samples(app)
    assert list(features_psi(found)) == ["sepal_length"]
    assert {k[0] for k in by_label(found[c.FEATURE_BIN_RATIO], c.FEATURE, c.BIN)} == {"sepal_length"}
    assert single(found[c.UNEXPORTED_FEATURES]) == 3
    assert single(found[c.UNEXPORTED_PSI_MAX]) > 0.2
    assert single(found[c.UNEXPORTED_OVER]) >= 1


def test_counts_leave_the_window_with_the_clock(profiled: Path) -> None:
    clock = FakeClock(1000.0)
    app, _ = make_app(profiled, DriftSettings(window_seconds=60), clock)
    send_rows(app, bootstrap(40))
    assert single(samples(app)[c.WINDOW_ROWS]) == 40
    clock.now += 61
    found = samples(app)
    assert single(found[c.WINDOW_ROWS]) == 0 and single(found[c.PREDICTION_ROWS]) == 0
    assert c.FEATURE_PSI not in found and c.PREDICTION_P_VALUE not in found
    assert {k[1] for k in by_label(found[c.FEATURE_BIN_RATIO], c.FEATURE, c.DISTRIBUTION)} == {"reference"}


def test_large_requests_and_held_back_rows_all_count(profiled: Path) -> None:
    app, _ = make_app(profiled)
    send_rows(app, bootstrap(7), per_request=1)  # held back until the scrape
    send_rows(app, bootstrap(5000), per_request=5000)  # 20,000 values: binned at once, off the loop
    assert single(samples(app)[c.WINDOW_ROWS]) == 5007


def test_several_inputs_are_concatenated_like_the_model_sees_them(tmp_path: Path) -> None:
    testmodels.write_iris(tmp_path, two_inputs=True)
    testmodels.write_profile(tmp_path)
    app, _ = make_app(tmp_path)
    x, _ = testmodels.iris()
    request = {"inputs": [
        {"name": "sepal", "shape": [150, 2], "datatype": "FP64", "data": x[:, :2].ravel().tolist()},
        {"name": "petal", "shape": [150, 2], "datatype": "FP64", "data": x[:, 2:].ravel().tolist()},
    ]}  # fmt: skip
    assert call(app, "POST", INFER, request).status == 200
    found = samples(app)
    assert single(found[c.WINDOW_ROWS]) == 150
    assert features_psi(found) == pytest.approx(dict.fromkeys(FEATURES, 0.0), abs=1e-12)


def test_without_a_profile_the_model_serves_and_drift_is_off(models: dict[str, Path]) -> None:
    app, drift = make_app(models["iris"])
    assert drift.live is None
    send_rows(app, bootstrap(20))
    found = samples(app)
    assert single(found[c.PROFILE_LOADED]) == 0
    for name in (c.WINDOW_ROWS, c.FEATURE_PSI, c.FEATURE_BIN_RATIO, c.PREDICTION_ROWS, c.REFERENCE_ACCURACY):
        assert name not in found
    assert single(found[c.FEEDBACK_ROWS]) == 0  # feedback needs no profile


@pytest.mark.parametrize(
    ("profile_text", "message"),
    [
        (None, "the profile has 3 features, the model takes 4 input columns"),
        ("{not json", "drift monitoring is off: .*profile.json is not JSON"),
        ('{"schema": "modelpilot.io/profile/v0"}', "drift monitoring is off: .*schema must be"),
    ],
    ids=["other-width", "not-json", "old-schema"],
)
def test_a_profile_that_does_not_fit_turns_drift_off(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, profile_text: str | None, message: str
) -> None:
    testmodels.write_iris(tmp_path)
    if profile_text is None:
        x, _ = testmodels.iris()
        write_profile(build_profile({f: x[:, i] for i, f in enumerate(FEATURES[:3])}, np.zeros(150)),
                      tmp_path / c.PROFILE_FILE)  # fmt: skip
    else:
        (tmp_path / c.PROFILE_FILE).write_text(profile_text)
    with caplog.at_level(logging.INFO, logger="modelpilot.server"):
        app, drift = make_app(tmp_path)
    assert drift.live is None
    assert [r.levelname for r in caplog.records if "drift monitoring is off" in r.getMessage()] == ["WARNING"]
    assert any(re.search(message, r.getMessage()) for r in caplog.records)
    send_rows(app, bootstrap(3))
    assert single(samples(app)[c.PROFILE_LOADED]) == 0


def test_counting_never_fails_a_request(profiled: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app, _ = make_app(profiled)

    def broken(*args: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(LiveCounts, "observe", broken)
    assert call(app, "POST", INFER, iris_request()).status == 200


# --- settings ----------------------------------------------------------------------------------------
def _config(*argv: str, env: dict[str, str] | None = None) -> DriftSettings:
    args = build_parser().parse_args(["serve", "--model-dir", "/m", *argv])
    return resolve_config(args, env or {}).drift


def test_settings_from_flags_and_environment() -> None:
    assert _config() == DriftSettings(enabled=True, window_seconds=3600, max_features=50)
    assert not _config(env={c.ENV_ENABLED: "false"}).enabled
    assert not _config("--no-drift").enabled
    assert _config(env={c.ENV_ENABLED: "true"}).enabled
    assert _config(env={c.ENV_WINDOW: "600"}).window_seconds == 600
    assert _config("--drift-window", "120", env={c.ENV_WINDOW: "600"}).window_seconds == 120  # flags win
    assert _config(env={c.ENV_MAX_FEATURES: "5"}).max_features == 5


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({c.ENV_WINDOW: "an hour"}, "the drift window must be a positive number of seconds"),
        ({c.ENV_WINDOW: "0"}, "the drift window must be a positive number"),
        ({c.ENV_MAX_FEATURES: "-1"}, "MODELPILOT_DRIFT_MAX_FEATURES must be a non-negative integer"),
    ],
)
def test_setting_errors(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _config(env=env)


@pytest.mark.parametrize("off", [False, True], ids=["on", "off"])
def test_build_app_loads_the_profile_unless_monitoring_is_off(profiled: Path, off: bool) -> None:
    args = build_parser().parse_args(["serve", "--model-dir", str(profiled), "--name", "iris"])
    app, state, _ = build_app(resolve_config(args, {c.ENV_ENABLED: "false"} if off else {}))
    assert app.loader is not None
    state.model = app.loader()  # what the app's startup does on its loading thread
    assert call(app, "POST", INFER, iris_request()).status == 200
    found = samples(app)
    if off:
        assert not [name for name in found if name.startswith(("modelpilot_drift", "modelpilot_feedback"))]
        assert call(app, "POST", "/v2/models/iris/feedback", {"id": "x", "truth": 1}).status == 404
    else:
        assert single(found[c.PROFILE_LOADED]) == 1
        assert single(found[c.WINDOW_ROWS]) == 1


def test_the_served_process_finds_the_profile(profiled: Path) -> None:
    with RuntimeProcess.serve(profiled, name="iris", env={"MODELPILOT_TRACK": "stable"}) as server:
        server.wait_ready()
        assert server.post_json(INFER, iris_request())[0] == 200
        text = server.metrics_text()
    assert f'{c.PROFILE_LOADED}{{model="iris",model_deployment="iris",revision="",track="stable",version=""}} 1.0' \
        in text  # fmt: skip
    assert f"{c.WINDOW_ROWS}{{" in text
