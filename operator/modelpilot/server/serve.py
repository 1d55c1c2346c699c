"""`modelpilot serve`: resolve flags and environment, then run the app on uvicorn, and with
`--grpc-port N` the gRPC service (`modelpilot.server.grpc_service`) on the same event loop.

Every flag falls back to the environment variable the operator sets in the pod (flags win), so
the pod's `serve --model-dir DIR --port PORT` and a bare `modelpilot serve` in a pod both work.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import uvicorn

from modelpilot.fetch_settings import parse_size
from modelpilot.monitoring import contract
from modelpilot.server.app import InferenceApp
from modelpilot.server.codec import DEFAULT_MAX_BODY_BYTES
from modelpilot.server.drift import DriftMonitor, DriftSettings
from modelpilot.server.inference import ModelState
from modelpilot.server.loaders import FORMATS, Model, load_model
from modelpilot.server.metrics import MetricLabels, RequestMetrics
from modelpilot.server.protocol import DEFAULT_MAX_DECODED_BYTES
from modelpilot.server.redact import install_log_redaction, redact_uri
from modelpilot.server.runner import PREDICT_MODES

if TYPE_CHECKING:
    from modelpilot.server.grpc_service import GrpcServer

log = logging.getLogger("modelpilot.server")

DEFAULT_PORT = 8080
DEFAULT_HOST = "0.0.0.0"
_FALSE = ("false", "0", "no", "off")


@dataclass(frozen=True)
class ServeConfig:
    model_dir: Path
    model_uri: str | None  # fetched into model_dir before loading, when set
    format: str | None
    name: str
    version: str
    deployment: str
    track: str
    revision: str
    host: str
    port: int
    graceful_timeout: float
    drain_seconds: float
    log_level: str
    access_log: bool
    predict_mode: str = "auto"
    pod_name: str = ""  # sent back in x-modelpilot-pod
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_decoded_bytes: int = DEFAULT_MAX_DECODED_BYTES
    drift: DriftSettings = field(default_factory=DriftSettings)
    grpc_port: int = 0  # 0: no gRPC server


class ConfigError(ValueError):
    """Flags and environment do not describe a model to serve."""


def _is_remote(value: str) -> bool:
    return "://" in value and not value.startswith("file://")


def resolve_config(args: Any, environ: Mapping[str, str] | None = None) -> ServeConfig:
    """argparse namespace + environment -> ServeConfig. Precedence: --model, --model-dir,
    MODELPILOT_MODEL_DIR, MODELPILOT_MODEL_URI (the last one is fetched first)."""
    env = os.environ if environ is None else environ

    def pick(flag: Any, name: str, default: str = "") -> str:
        return str(flag) if flag is not None else env.get(name, default)

    model_dir, model_uri = _model_location(args, env)
    model_format = pick(args.format, "MODELPILOT_MODEL_FORMAT") or None
    if model_format is not None and model_format not in FORMATS:
        raise ConfigError(f"format {model_format!r} is not served by this runtime ({', '.join(FORMATS)})")
    name = pick(args.name, "MODELPILOT_MODEL_NAME") or "model"
    port = _port(pick(args.port, "MODELPILOT_PORT", str(DEFAULT_PORT)), "the port")
    grpc_port = _port(pick(args.grpc_port, "MODELPILOT_GRPC_PORT", "0") or "0", "the gRPC port")
    if grpc_port and grpc_port == port:
        raise ConfigError(f"the gRPC port must differ from the HTTP port ({port})")
    return ServeConfig(
        model_dir=model_dir,
        model_uri=model_uri,
        format=model_format,
        name=name,
        version=pick(args.model_version, "MODELPILOT_MODEL_VERSION"),
        deployment=pick(args.deployment, "MODELPILOT_MODEL_DEPLOYMENT") or name,
        track=pick(args.track, "MODELPILOT_TRACK"),
        revision=pick(None, "MODELPILOT_REVISION"),
        host=pick(args.host, "MODELPILOT_HOST", DEFAULT_HOST),
        port=port,
        graceful_timeout=float(pick(args.graceful_timeout, "MODELPILOT_GRACEFUL_TIMEOUT", "25")),
        drain_seconds=float(pick(args.drain_seconds, "MODELPILOT_DRAIN_SECONDS", "0")),
        log_level=pick(args.log_level, "MODELPILOT_LOG_LEVEL", "info").lower(),
        access_log=bool(args.access_log),
        predict_mode=_predict_mode(pick(args.predict_mode, "MODELPILOT_PREDICT_MODE", "auto")),
        # In a pod the hostname is the pod name; the downward API variable wins where they differ.
        pod_name=pick(None, "MODELPILOT_POD_NAME") or socket.gethostname(),
        max_body_bytes=_size(env, "MODELPILOT_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES),
        max_decoded_bytes=_size(env, "MODELPILOT_MAX_DECODED_BYTES", DEFAULT_MAX_DECODED_BYTES),
        drift=_drift_settings(args, env),
        grpc_port=grpc_port,
    )


def _port(text: str, what: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise ConfigError(f"{what} must be a number") from None
    if not 0 <= port <= 65535:
        raise ConfigError(f"{what} {port} is out of range")
    return port


def _drift_settings(args: Any, env: Mapping[str, str]) -> DriftSettings:
    """--no-drift / MODELPILOT_DRIFT, --drift-window / MODELPILOT_DRIFT_WINDOW (seconds) and
    MODELPILOT_DRIFT_MAX_FEATURES."""
    off = getattr(args, "no_drift", False) or env.get(contract.ENV_ENABLED, "").strip().lower() in _FALSE
    flag = getattr(args, "drift_window", None)
    default_window = str(contract.DEFAULT_WINDOW_SECONDS)
    window_text = str(flag) if flag is not None else env.get(contract.ENV_WINDOW) or default_window
    try:
        window = float(window_text)
    except ValueError:
        window = math.nan
    if not 0 < window < math.inf:
        raise ConfigError(f"the drift window must be a positive number of seconds ({contract.ENV_WINDOW}), got "
                          f"{window_text!r}")
    features_text = env.get(contract.ENV_MAX_FEATURES) or str(contract.DEFAULT_MAX_FEATURES)
    if not features_text.strip().isdigit():
        raise ConfigError(f"{contract.ENV_MAX_FEATURES} must be a non-negative integer, got {features_text!r}")
    return DriftSettings(enabled=not off, window_seconds=window, max_features=int(features_text))


def _model_location(args: Any, env: Mapping[str, str]) -> tuple[Path, str | None]:
    """(model directory, URI to fetch into it or None)."""
    model_uri: str | None = None
    model_dir: Path | None = None
    if args.model:
        if _is_remote(args.model):
            model_uri = args.model
        else:
            model_dir = Path(args.model.removeprefix("file://"))
    if args.model_dir:
        if model_dir is not None:
            raise ConfigError("give either --model PATH or --model-dir, not both")
        model_dir = Path(args.model_dir)
    if model_dir is None and model_uri is None:
        if env.get("MODELPILOT_MODEL_DIR"):
            model_dir = Path(env["MODELPILOT_MODEL_DIR"])
        elif env.get("MODELPILOT_MODEL_URI"):
            uri = env["MODELPILOT_MODEL_URI"]
            if _is_remote(uri):
                model_uri = uri
            else:
                model_dir = Path(uri.removeprefix("file://"))
        else:
            raise ConfigError("no model: pass --model DIR_OR_URI or --model-dir DIR (or set MODELPILOT_MODEL_DIR)")
    if model_dir is None:
        model_dir = Path(tempfile.mkdtemp(prefix="modelpilot-model-"))
    return model_dir, model_uri


def _size(env: Mapping[str, str], name: str, default: int) -> int:
    if not env.get(name):
        return default
    try:
        return parse_size(env[name], name)
    except ValueError as err:
        raise ConfigError(str(err)) from None


def _predict_mode(value: str) -> str:
    if value not in PREDICT_MODES:
        raise ConfigError(f"predict mode {value!r} is not one of {', '.join(PREDICT_MODES)}")
    return value


class GracefulServer(uvicorn.Server):
    """uvicorn's server with two changes to SIGTERM/SIGINT handling:

    - readiness turns false at once and, with `drain_seconds`, the server keeps serving that long
      before it stops accepting (endpoints take a moment to drop a terminating pod);
    - the signal is not re-raised after the graceful shutdown (uvicorn does that, and the default
      SIGTERM action would end the process with 143 instead of 0 after a clean drain).
    """

    def __init__(self, config: uvicorn.Config, state: ModelState, metrics: RequestMetrics, drain_seconds: float,
                 grpc: GrpcServer | None = None):
        super().__init__(config)
        self._state = state
        self._metrics = metrics
        self._drain_seconds = drain_seconds
        self._exit_at: float | None = None
        self._grpc = grpc
        self.failed = False  # started, but a part (the gRPC port) could not

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self._grpc is None or self.should_exit:
            return
        try:
            port = await self._grpc.start()
        except OSError as err:
            log.error("%s", err)
            self.failed = self.should_exit = True
            return
        log.info("gRPC (inference.GRPCInferenceService) on %s:%d", self._grpc.host, port)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self._grpc is not None:
            # At the same time as the HTTP listener closes: clients on long-lived HTTP/2
            # connections get GOAWAY now; the app's lifespan shutdown waits for running calls.
            self._grpc.begin_stop()
        await super().shutdown(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._exit_at is not None or self.should_exit:
            # A second signal: stop draining now; a second Ctrl-C also skips waiting for requests.
            if self.should_exit and sig == signal.SIGINT:
                self.force_exit = True
            self.should_exit = True
            return
        self._state.draining = True
        self._metrics.set_ready(False)
        if self._drain_seconds > 0:
            self._exit_at = time.monotonic() + self._drain_seconds
        else:
            self.should_exit = True

    async def on_tick(self, counter: int) -> bool:
        if self._exit_at is not None and time.monotonic() >= self._exit_at:
            self.should_exit = True
        return await super().on_tick(counter)


def build_app(config: ServeConfig) -> tuple[InferenceApp, ModelState, RequestMetrics]:
    state = ModelState(name=config.name, version=config.version)
    labels = MetricLabels(
        model_deployment=config.deployment, model=config.name, version=config.version, track=config.track,
        revision=config.revision,
    )
    metrics = RequestMetrics(labels)
    drift = DriftMonitor(labels, config.drift, metrics.registry) if config.drift.enabled else None

    def loader() -> Model:
        if config.model_uri is not None:
            from modelpilot.server.storage import fetch

            state.reason = f"fetching {redact_uri(config.model_uri)}"
            fetch(config.model_uri, config.model_dir)
            state.reason = "loading the model"
        model = load_model(config.model_dir, config.format)
        if drift is not None:
            drift.load(model, config.model_dir, config.format)  # the profile beside the model, if any
        return model

    app = InferenceApp(
        state,
        metrics,
        loader,
        max_body_bytes=config.max_body_bytes,
        max_decoded_bytes=config.max_decoded_bytes,
        predict_mode=config.predict_mode,
        pod_name=config.pod_name,
        drift=drift,
    )
    return app, state, metrics


def _grpc_server(config: ServeConfig, app: InferenceApp) -> GrpcServer | None:
    """The gRPC server when `grpc_port` is set; its stop is awaited before the app closes, and
    running calls have the same grace as HTTP requests."""
    if not config.grpc_port:
        return None
    from modelpilot.server.grpc_service import GrpcServer

    grpc = GrpcServer(app, config.host, config.grpc_port, config.max_body_bytes, config.pod_name,
                      grace=config.graceful_timeout)  # fmt: skip
    app.before_close.append(grpc.stopped)
    return grpc


def _event_loop() -> str:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"


def _http_impl() -> str:
    try:
        import httptools  # noqa: F401
    except ImportError:
        return "h11"
    return "httptools"


def serve(config: ServeConfig) -> int:
    logging.basicConfig(
        level=config.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True
    )
    install_log_redaction()
    app, state, metrics = build_app(config)
    uv_config = uvicorn.Config(
        app,
        host=config.host,
        port=config.port,
        loop=_event_loop(),
        http=_http_impl(),
        lifespan="on",
        access_log=config.access_log,
        log_config=None,
        log_level=config.log_level,
        server_header=False,
        timeout_graceful_shutdown=config.graceful_timeout,
        # Clients such as load balancers keep connections open; close idle ones after a while.
        timeout_keep_alive=30,
    )
    log.info(
        "serving %s (deployment %s, version %s, track %s) from %s on %s:%d",
        config.name,
        config.deployment,
        config.version or "-",
        config.track or "-",
        redact_uri(config.model_uri) if config.model_uri else config.model_dir,
        config.host,
        config.port,
    )
    server = GracefulServer(uv_config, state, metrics, config.drain_seconds, _grpc_server(config, app))
    server.run()
    # Not started or failed: e.g. a port was taken; uvicorn or startup logged why.
    code = 0 if server.started and not server.failed else 1
    others = [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon]
    deadline = time.monotonic() + 2.0  # idle pool threads end on their own right after shutdown
    for thread in others:
        thread.join(max(0.0, deadline - time.monotonic()))
    busy = [t.name for t in others if t.is_alive()]
    if busy:
        # A predict() still running past the graceful timeout would keep the interpreter waiting
        # for its pool thread at exit (and the pod until SIGKILL): leave now, logs flushed.
        log.warning("exiting with busy threads: %s", ", ".join(busy))
        logging.shutdown()
        os._exit(code)
    return code
