"""The operator/runtime contract: the pod template the operator generates runs this runtime as is.

Also the `serve` flag/environment resolution that the contract relies on.
"""

from __future__ import annotations

import hashlib
import http.server
import subprocess
import sys
import tarfile
import threading
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from modelpilot.api.models import parse_spec
from modelpilot.cli.main import build_parser
from modelpilot.resources.common import MODEL_DIR, BuildSettings
from modelpilot.resources.deployment import FETCH_CONTAINER, SERVER_CONTAINER, build_pod_template
from modelpilot.server.serve import ConfigError, resolve_config
from tests.support import testmodels
from tests.support.testing import RuntimeProcess, iris_request


def _serve_args(*argv: str) -> object:
    return build_parser().parse_args(["serve", *argv])


def test_pod_template_runs_this_runtime(tmp_path: Path) -> None:
    files = tmp_path / "files"
    testmodels.write_iris(files / "iris")
    archive = files / "iris.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        tf.add(files / "iris" / testmodels.MODEL_FILE, testmodels.MODEL_FILE)
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), partial(http.server.SimpleHTTPRequestHandler, directory=str(files))
    )
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        uri = f"http://127.0.0.1:{httpd.server_address[1]}/iris.tar.gz#sha256={digest}"
        spec = parse_spec({"model": {"version": "2026-11-02", "uri": uri, "format": "sklearn"}})
        pod = build_pod_template(spec, name="fraud", namespace="ml", track="canary", settings=BuildSettings())
        [init] = pod["spec"]["initContainers"]
        [server] = pod["spec"]["containers"]
        assert (init["name"], server["name"]) == (FETCH_CONTAINER, SERVER_CONTAINER)
        model_dir = tmp_path / "mnt-models"

        # The init container, exactly as specified but with the emptyDir swapped for a local folder.
        args = [str(model_dir) if a == MODEL_DIR else a for a in init["args"]]
        env = {e["name"]: str(model_dir) if e.get("value") == MODEL_DIR else e.get("value", "") for e in init["env"]}
        fetched = subprocess.run(
            [sys.executable, "-m", "modelpilot.cli.main", *args],
            env={"PATH": "/usr/bin:/bin", **env},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert init["command"] == ["modelpilot"]
        assert fetched.returncode == 0, fetched.stderr

        with RuntimeProcess.from_container(server, model_dir=model_dir) as runtime:
            runtime.wait_ready()
            status, body = runtime.post_json("/v2/models/fraud/infer", iris_request())
            assert status == 200, body
            assert body["model_version"] == "2026-11-02"
            families = {f.name: f for f in text_string_to_metric_families(runtime.metrics_text())}
            [sample] = families["modelpilot_requests"].samples[:1]
            assert sample.labels == {
                "model_deployment": "fraud",
                "model": "fraud",
                "version": "2026-11-02",
                # The serving revision from the pod template: analyses select a canary by it.
                "revision": server_env(server)["MODELPILOT_REVISION"],
                "track": "canary",
                "code": "200",
            }
    finally:
        httpd.shutdown()
        httpd.server_close()


def server_env(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container.get("env", [])}


def test_flags_win_over_environment(tmp_path: Path) -> None:
    env = {
        "MODELPILOT_MODEL_DIR": "/env/dir",
        "MODELPILOT_MODEL_NAME": "env-name",
        "MODELPILOT_PORT": "9000",
        "MODELPILOT_MODEL_FORMAT": "onnx",
        "MODELPILOT_TRACK": "canary",
        "MODELPILOT_MODEL_VERSION": "v2",
        "MODELPILOT_MODEL_DEPLOYMENT": "dep",
    }
    config = resolve_config(_serve_args("--model-dir", "/flag/dir", "--name", "flag", "--port", "8081"), env)
    assert (config.model_dir, config.name, config.port) == (Path("/flag/dir"), "flag", 8081)
    assert (config.format, config.track, config.version, config.deployment) == ("onnx", "canary", "v2", "dep")
    config = resolve_config(_serve_args(), env)
    assert (config.model_dir, config.name, config.port, config.host) == (Path("/env/dir"), "env-name", 9000, "0.0.0.0")


def test_model_flag_takes_a_path_or_a_uri() -> None:
    config = resolve_config(_serve_args("--model", "file:///models/iris"), {})
    assert (config.model_dir, config.model_uri) == (Path("/models/iris"), None)
    config = resolve_config(_serve_args("--model", "s3://bucket/iris", "--model-dir", "/mnt/models"), {})
    assert (config.model_dir, config.model_uri) == (Path("/mnt/models"), "s3://bucket/iris")
    # In a pod, the URI in the environment was already fetched by the init container into the dir.
    env = {"MODELPILOT_MODEL_URI": "s3://bucket/iris", "MODELPILOT_MODEL_DIR": "/mnt/models"}
    config = resolve_config(_serve_args(), env)
    assert (config.model_dir, config.model_uri) == (Path("/mnt/models"), None)
    config = resolve_config(_serve_args(), {"MODELPILOT_MODEL_URI": "https://host/model.joblib"})
    assert config.model_uri == "https://host/model.joblib"
    assert config.name == "model"
    assert config.deployment == "model"


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        ((), {}, "no model"),
        (("--model", "/a", "--model-dir", "/b"), {}, "either --model PATH or --model-dir"),
        (("--model-dir", "/a", "--format", "custom"), {}, "format 'custom' is not served"),
        (("--model-dir", "/a"), {"MODELPILOT_PORT": "http"}, "the port must be a number"),
        (("--model-dir", "/a"), {"MODELPILOT_PREDICT_MODE": "fast"}, "predict mode 'fast'"),
        (("--model-dir", "/a"), {"MODELPILOT_MAX_BODY_BYTES": "lots"}, "MODELPILOT_MAX_BODY_BYTES must be a number"),
        (("--model-dir", "/a"), {"MODELPILOT_MAX_DECODED_BYTES": "0"}, "MODELPILOT_MAX_DECODED_BYTES must be positive"),
    ],
)
def test_config_errors(argv: tuple[str, ...], env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        resolve_config(_serve_args(*argv), env)


def test_cli_keeps_the_operator_subcommand_and_reports_config_errors() -> None:
    help_text = subprocess.run(
        [sys.executable, "-m", "modelpilot.cli.main", "operator", "--help"], capture_output=True, text=True
    )
    assert help_text.returncode == 0
    assert "--prometheus-url" in help_text.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "modelpilot.cli.main", "serve"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert bad.returncode == 2
    assert "modelpilot serve: no model" in bad.stderr


def test_the_operator_cli_does_not_import_the_runtime() -> None:
    # The operator image has no [server] extra: its CLI must not touch the runtime's packages.
    code = (
        "import sys, modelpilot.cli.main as m; m.build_parser().parse_args(['operator']); "
        "print(sorted(x for x in ('uvicorn', 'numpy', 'orjson', 'fsspec', 'sklearn', 'modelpilot.server') "
        "if x in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_model_volume_size_limit_is_the_fetch_limit() -> None:
    # The fetch step refuses a model past its limit with a clear error before the volume's
    # sizeLimit would get the pod evicted: both are the same 20 GiB by default.
    from modelpilot.server import storage

    spec = parse_spec({"model": {"version": "v1", "uri": "s3://bucket/model.joblib", "format": "sklearn"}})
    pod = build_pod_template(spec, name="fraud", namespace="ml", track="stable", settings=BuildSettings())
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes["model"]["emptyDir"] == {"sizeLimit": "20Gi"}
    assert storage.parse_size(volumes["model"]["emptyDir"]["sizeLimit"]) == storage.DEFAULT_MAX_BYTES


@pytest.mark.parametrize(("max_bytes", "allow"), [(50 * 2**30, True), (5 * 10**9, False), (20 * 2**30, False)])
def test_fetch_settings_the_operator_sets_are_the_ones_fetch_reads(max_bytes: int, allow: bool) -> None:
    from modelpilot.server import netguard, storage

    spec = parse_spec({"model": {"version": "v1", "uri": "s3://bucket/model.joblib", "format": "sklearn"}})
    settings = BuildSettings(max_model_bytes=max_bytes, allow_link_local=allow)
    pod = build_pod_template(spec, name="fraud", namespace="ml", track="stable", settings=settings)
    fetch = next(c for c in pod["spec"]["initContainers"] if c["name"] == FETCH_CONTAINER)
    env = {e["name"]: e["value"] for e in fetch["env"] if "value" in e}
    # What `modelpilot fetch` would apply, from exactly this environment.
    name = storage.MAX_BYTES_ENV
    limit = storage.parse_size(env[name]) if name in env else storage.DEFAULT_MAX_BYTES
    assert limit == max_bytes
    assert netguard.allowed(env) is allow
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert storage.parse_size(volumes["model"]["emptyDir"]["sizeLimit"]) == max_bytes
