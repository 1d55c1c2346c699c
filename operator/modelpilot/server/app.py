"""The HTTP application: a minimal ASGI app (no framework) serving Open Inference Protocol v2.

Routing is a dictionary lookup and JSON goes through orjson: per request the server spends its
time in the model, not in the web layer. Inference requests (`modelpilot.server.inference`) are
counted and timed in `RequestMetrics`; health, metadata, /metrics and feedback requests
(`modelpilot.server.feedback`) are not, so probes, scrapes and a client's feedback never dilute
the error rate the canary analysis computes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from modelpilot import __version__
from modelpilot.server.asgi import Message, Receive, Scope, Send, send_json, send_parts
from modelpilot.server.codec import DEFAULT_MAX_BODY_BYTES, Limits
from modelpilot.server.drift import DriftMonitor
from modelpilot.server.feedback import FeedbackHandler
from modelpilot.server.inference import InferHandler, ModelState
from modelpilot.server.loaders import Model, ModelLoadError
from modelpilot.server.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from modelpilot.server.metrics import RequestMetrics
from modelpilot.server.protocol import DEFAULT_MAX_DECODED_BYTES

log = logging.getLogger("modelpilot.server")

T = TypeVar("T")
# Every response names the pod that answered, so a client behind a gateway or a Service can
# tell which backend (and so which track) served it.
POD_HEADER = b"x-modelpilot-pod"
# Protocol extensions this server implements (server metadata).
EXTENSIONS = ["binary_tensor_data"]
# The server metadata body (REST's JSON, the fields of gRPC's ServerMetadataResponse).
SERVER_METADATA: dict[str, Any] = {"name": "modelpilot", "version": __version__, "extensions": EXTENSIONS}
_GET_ONLY = [(b"allow", b"GET, HEAD")]
Loader = Callable[[], Model]
Route = Callable[[Send], Awaitable[None]]


def model_metadata(state: ModelState, model: Model) -> dict[str, Any]:
    """The model metadata body (REST's JSON, the fields of gRPC's ModelMetadataResponse)."""
    return {
        "name": state.name,
        "versions": [state.version] if state.version else [],
        "platform": model.platform,
        "inputs": [spec.to_json() for spec in model.inputs],
        "outputs": [spec.to_json() for spec in model.outputs],
    }


class InferenceApp:
    """ASGI app. `loader` runs in a thread after startup, so the port answers (live, not ready)
    while a large model loads; its exception message becomes the not-ready reason."""

    def __init__(
        self,
        state: ModelState,
        metrics: RequestMetrics,
        loader: Loader | None = None,
        *,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        max_decoded_bytes: int = DEFAULT_MAX_DECODED_BYTES,
        predict_mode: str = "auto",
        pod_name: str = "",
        drift: DriftMonitor | None = None,
    ) -> None:
        self.state = state
        self._identity = [(POD_HEADER, pod_name.encode("latin-1", "replace"))] if pod_name else []
        self.metrics = metrics
        self.loader = loader
        self.drift = drift
        self._infer = InferHandler(state, metrics, Limits(max_body_bytes, max_decoded_bytes), predict_mode, drift)
        # Without drift monitoring (MODELPILOT_DRIFT=false) there is no feedback endpoint either.
        self._feedback = None if drift is None else FeedbackHandler(state, drift, max_body_bytes)
        self._load_task: asyncio.Task[None] | None = None
        # Awaited at lifespan shutdown before the infer handler closes: the gRPC server's stop, so
        # calls still running there finish on an open runner.
        self.before_close: list[Callable[[], Awaitable[None]]] = []
        prefix = f"/v2/models/{state.name}"
        self._infer_paths = {f"{prefix}/infer"}
        self._feedback_paths = {f"{prefix}/feedback"}
        self._routes: dict[str, Route] = {
            "/v2/health/live": self._live,
            "/v2/health/ready": self._readiness,
            "/metrics": self._metrics,
            "/v2": self._server_metadata,
            "/v2/": self._server_metadata,
            prefix: self._metadata,
            f"{prefix}/ready": self._readiness,
        }
        if state.version:
            versioned = f"{prefix}/versions/{state.version}"
            self._infer_paths.add(f"{versioned}/infer")
            self._feedback_paths.add(f"{versioned}/feedback")
            self._routes[versioned] = self._metadata
            self._routes[f"{versioned}/ready"] = self._readiness

    @property
    def infer_handler(self) -> InferHandler:
        """The infer steps, shared with the gRPC service."""
        return self._infer

    # --- ASGI entry ---------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if self.loader is not None:
                    self._load_task = asyncio.get_running_loop().create_task(self._load())
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._load_task is not None:
                    self._load_task.cancel()
                for hook in self.before_close:
                    await hook()
                self._infer.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _load(self) -> None:
        assert self.loader is not None
        started = time.perf_counter()
        self.state.reason = "loading the model"
        try:
            model = await _in_daemon_thread(self.loader)
        except ModelLoadError as err:
            self.state.reason = f"model failed to load: {err}"
            log.error("%s", self.state.reason)
        except Exception as err:  # e.g. a FetchError for `serve --model URI`
            self.state.reason = f"model failed to load: {type(err).__name__}: {err}"
            log.error("%s", self.state.reason)
        else:
            self.state.model = model
            self.state.reason = ""
            if not self.state.draining:
                self.metrics.set_ready(True)
            log.info("model %s loaded in %.2fs (%s)", self.state.name, time.perf_counter() - started, model.platform)

    # --- routing ------------------------------------------------------------------------------
    def _identified(self, send: Send) -> Send:
        identity = self._identity

        async def send_identified(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), *identity]}
            await send(message)

        return send_identified

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._identity:
            send = self._identified(send)
        path: str = scope["path"]
        if path in self._infer_paths:
            await self._infer(scope, receive, send)
            return
        if self._feedback is not None and path in self._feedback_paths:
            await self._feedback(scope, receive, send)  # not counted as inference traffic
            return
        if path.startswith("/v2/models/") and path.endswith("/infer"):
            # Counted: a client sending inference traffic to the wrong model name is an error.
            self.metrics.request_started()
            try:
                await self._infer.error(send, time.perf_counter(), 404, self._unknown_model(path))
            finally:
                self.metrics.request_finished()
            return
        route = self._routes.get(path)
        if route is None:
            missing = self._unknown_model(path) if path.startswith("/v2/models/") else f"no such endpoint: {path}"
            await send_json(send, 404, {"error": missing})
        elif scope["method"] not in ("GET", "HEAD"):
            await send_json(send, 405, {"error": f"method {scope['method']} not allowed on {path}"}, _GET_ONLY)
        else:
            await route(send)

    async def _live(self, send: Send) -> None:
        await send_json(send, 200, {"live": True})

    async def _metrics(self, send: Send) -> None:
        await send_parts(send, 200, [(b"content-type", METRICS_CONTENT_TYPE.encode())], [self.metrics.exposition()])

    async def _server_metadata(self, send: Send) -> None:
        await send_json(send, 200, SERVER_METADATA)

    def _unknown_model(self, path: str) -> str:
        parts = path.split("/")
        name = parts[3] if len(parts) > 3 else ""
        version = parts[5] if len(parts) > 5 and parts[4] == "versions" else None
        return self.state.unknown(name, version) or f"no such endpoint: {path}"

    async def _readiness(self, send: Send) -> None:
        if self.state.ready:
            await send_json(send, 200, {"ready": True})
        else:
            reason = "shutting down" if self.state.draining else self.state.reason
            await send_json(send, 503, {"ready": False, "reason": reason})

    async def _metadata(self, send: Send) -> None:
        model = self.state.model
        if model is None:
            await send_json(send, 503, {"error": f"model not ready: {self.state.reason}"})
            return
        await send_json(send, 200, model_metadata(self.state, model))


async def _in_daemon_thread(fn: Callable[[], T]) -> T:
    """Run `fn` on a daemon thread: unlike asyncio.to_thread's pool, it cannot hold the process
    open when SIGTERM arrives in the middle of a long download or load."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def deliver(value: T | None, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)  # type: ignore[arg-type]

    def work() -> None:
        try:
            value, error = fn(), None
        except BaseException as err:
            value, error = None, err
        with contextlib.suppress(RuntimeError):  # the loop is already closed: nobody waits
            loop.call_soon_threadsafe(deliver, value, error)

    threading.Thread(target=work, name="load-model", daemon=True).start()
    return await future
