"""Readiness while loading and after a failed load; graceful shutdown on SIGTERM."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from tests.support import testmodels
from tests.support.testing import RuntimeProcess, iris_request


def _wait_for_file(path: Path, server: RuntimeProcess, what: str) -> None:
    # Polls a file the model itself creates: no timing assumption, only a generous bound.
    server.wait_until(path.exists, 60, what)


def test_not_ready_until_loaded(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    testmodels.write_gated(tmp_path / "model", gate)
    with RuntimeProcess.serve(tmp_path / "model", name="iris", env={"MODELPILOT_TRACK": "stable"}) as server:
        server.wait_live()
        # Loading blocks on the gate file: the server answers, but is not ready.
        status, body = server.get("/v2/health/ready")
        assert status == 503
        assert body == {"ready": False, "reason": "loading the model"}
        assert server.get("/v2/models/iris/ready")[0] == 503
        assert server.get("/v2/health/live") == (200, {"live": True})
        status, body = server.post_json("/v2/models/iris/infer", iris_request())
        assert status == 503
        assert body["error"] == "model not ready: loading the model"
        labels = 'model="iris",model_deployment="iris",revision="",track="stable",version=""'
        assert f"modelpilot_model_ready{{{labels}}} 0.0" in server.metrics_text()
        gate.touch()
        server.wait_ready()
        assert server.get("/v2/health/ready") == (200, {"ready": True})
        assert server.post_json("/v2/models/iris/infer", iris_request())[0] == 200
        # The 503 while loading was an inference response too, so it is counted.
        assert 'code="503"' in server.metrics_text()


@pytest.mark.parametrize(
    ("writer", "reason"),
    [
        (testmodels.write_corrupt, "model failed to load: cannot load sklearn model model.joblib: not a readable"),
        (lambda d: d.mkdir(parents=True), "model failed to load: no model file"),
    ],
    ids=["corrupt-file", "empty-dir"],
)
def test_a_model_that_cannot_load_stays_not_ready_with_the_reason(tmp_path: Path, writer: Any, reason: str) -> None:
    writer(tmp_path / "model")
    with RuntimeProcess.serve(tmp_path / "model", name="broken") as server:
        server.wait_live()
        server.wait_until(lambda: "failed" in str(server.get("/v2/health/ready")[1]), 60, "failed")
        for _ in range(2):  # and it stays so
            status, body = server.get("/v2/health/ready")
            assert status == 503
            assert body["ready"] is False
            assert body["reason"].startswith(reason), body
        status, body = server.post_json("/v2/models/broken/infer", iris_request())
        assert status == 503
        assert body["error"].startswith(f"model not ready: {reason}")
        assert server.get("/v2/health/live")[0] == 200
        assert "model failed to load" in server.log()  # and the log says why


@pytest.mark.parametrize("mode", ["auto", "thread"])
def test_sigterm_finishes_the_request_in_flight_then_exits_0(tmp_path: Path, mode: str) -> None:
    started, release = tmp_path / "started", tmp_path / "release"
    testmodels.write_slow(tmp_path / "model", delay_seconds=0.0, started_file=started, release_file=release)
    with RuntimeProcess.serve(tmp_path / "model", name="slow", extra_args=["--predict-mode", mode]) as server:
        server.wait_ready()
        result: dict[str, Any] = {}

        def call() -> None:
            result["response"] = server.post_json("/v2/models/slow/infer", iris_request(), timeout=120)

        client = threading.Thread(target=call)
        client.start()
        _wait_for_file(started, server, "predict started")
        assert server.proc is not None
        server.proc.terminate()  # SIGTERM while predict() is running
        if mode == "thread":
            # The event loop is free: it stops accepting while the request is still in flight.
            def refused() -> bool:
                try:
                    server.get("/v2/health/live", timeout=5)
                except ConnectionError:
                    return True
                return False

            server.wait_until(refused, 60, "refusing new connections")
            assert "response" not in result
        release.touch()
        client.join(120)
        status, body = result["response"]
        assert status == 200, body
        assert body["outputs"][0]["data"] == [0]
        assert server.proc.wait(60) == 0
    assert "Waiting for connections to close" in server.log() or "Shutting down" in server.log()


def test_sigterm_while_loading_exits_0_without_waiting_for_the_load(tmp_path: Path) -> None:
    gate = tmp_path / "gate"  # never created: loading would block for the gate's 120 s timeout
    testmodels.write_gated(tmp_path / "model", gate)
    with RuntimeProcess.serve(tmp_path / "model", name="iris") as server:
        server.wait_live()
        assert server.get("/v2/health/ready")[0] == 503
        assert server.terminate(timeout=60) == 0
    assert not gate.exists()


def test_a_request_beyond_the_graceful_timeout_does_not_hold_the_process(tmp_path: Path) -> None:
    started, release = tmp_path / "started", tmp_path / "release"  # release never comes
    testmodels.write_slow(tmp_path / "model", delay_seconds=0.0, started_file=started, release_file=release)
    args = ["--predict-mode", "thread", "--graceful-timeout", "1"]
    with RuntimeProcess.serve(tmp_path / "model", name="slow", extra_args=args) as server:
        server.wait_ready()
        result: dict[str, Any] = {}

        def call() -> None:
            try:
                result["response"] = server.post_json("/v2/models/slow/infer", iris_request(), timeout=120)
            except OSError as err:  # the connection is closed without a response
                result["error"] = err

        client = threading.Thread(target=call)
        client.start()
        _wait_for_file(started, server, "predict started")
        assert server.terminate(timeout=60) == 0
        client.join(60)
        assert "error" in result or result["response"][0] >= 500
        assert "exiting with busy threads: predict" in server.log()
