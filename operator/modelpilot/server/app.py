"""The HTTP application: a minimal ASGI app (no framework) serving Open Inference Protocol v2.

Routing is a handful of string checks and JSON goes through orjson: per request the server spends
its time in the model, not in the web layer. Inference requests are counted and timed in
`RequestMetrics`; health, metadata and /metrics requests are not, so probes and scrapes never
dilute the error rate the canary analysis computes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson

from modelpilot import __version__
from modelpilot.server.loaders import Model, ModelLoadError
from modelpilot.server.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from modelpilot.server.metrics import RequestMetrics
from modelpilot.server.protocol import ProtocolError, conform, decode_request, infer_response

log = logging.getLogger("modelpilot.server")

T = TypeVar("T")
Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

JSON_HEADERS = [(b"content-type", b"application/json")]
# Every response names the pod that answered, so a client behind a gateway or a Service can
# tell which backend (and so which track) served it.
POD_HEADER = b"x-modelpilot-pod"
_DUMPS_OPTIONS = orjson.OPT_SERIALIZE_NUMPY


@dataclass
class ModelState:
    """Where loading stands: `reason` is what /v2/health/ready says while not ready."""

    name: str
    version: str
    model: Model | None = None
    reason: str = "model not loaded yet"
    draining: bool = False

    @property
    def ready(self) -> bool:
        return self.model is not None and not self.draining


Loader = Callable[[], Model]
PREDICT_MODES = ("auto", "inline", "thread")


class PredictRunner:
    """Where predict() runs: on the event loop (inline) or on one worker thread.

    Inline is the fastest for quick models: handing a call to a thread and back costs more than
    a small sklearn predict, and two threads contending for the GIL inflate the tail latency
    (measured on iris at 32 connections: 1.6x the throughput and a 2.5x lower p99 inline). But
    a slow predict inline stalls probes and /metrics. So "auto" times predict() inline and moves
    to the thread once the moving average passes 2 ms. Timings taken on the thread include GIL
    waits, so they cannot tell when to come back: instead every Nth call (N = 64, doubling up to
    4096 while the model stays slow) runs inline once as a probe and returns inline when it took
    under 1 ms. Either way model calls are serialised, as if single-threaded.
    """

    ENTER_THREAD = 0.002
    LEAVE_THREAD = 0.001
    ALPHA = 0.05  # a single preempted call must not flip the mode
    FIRST_PROBE = 64
    LAST_PROBE = 4096

    def __init__(self, mode: str = "auto", clock: Callable[[], float] = time.perf_counter) -> None:
        if mode not in PREDICT_MODES:
            raise ValueError(f"predict mode must be one of {', '.join(PREDICT_MODES)}")
        self.mode = mode
        self.clock = clock
        self.average: float | None = None
        self.threaded = mode == "thread"
        self._probe_every = self.FIRST_PROBE
        self._until_probe = self.FIRST_PROBE
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="predict")

    def _inline(self, fn: Callable[..., T], *args: Any) -> tuple[T, float]:
        started = self.clock()
        result = fn(*args)
        return result, self.clock() - started

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        if self.mode == "inline":
            return fn(*args)
        if self.mode == "thread":
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)
        if self.threaded:
            self._until_probe -= 1
            if self._until_probe > 0:
                return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)
            try:
                result, seconds = self._inline(fn, *args)
            finally:
                self._until_probe = self._probe_every
            if seconds < self.LEAVE_THREAD:
                self.threaded, self.average, self._probe_every = False, seconds, self.FIRST_PROBE
            else:
                self._probe_every = min(2 * self._probe_every, self.LAST_PROBE)
                self._until_probe = self._probe_every
            return result
        started = self.clock()
        try:
            return fn(*args)
        finally:
            seconds = self.clock() - started
            self.average = seconds if self.average is None else self.average + self.ALPHA * (seconds - self.average)
            if self.average > self.ENTER_THREAD:
                self.threaded = True
                self._until_probe = self._probe_every

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


class InferenceApp:
    """ASGI app. `loader` runs in a thread after startup, so the port answers (live, not ready)
    while a large model loads; its exception message becomes the not-ready reason."""

    def __init__(
        self,
        state: ModelState,
        metrics: RequestMetrics,
        loader: Loader | None = None,
        *,
        max_body_bytes: int = 64 * 1024 * 1024,
        predict_mode: str = "auto",
        pod_name: str = "",
    ) -> None:
        self.state = state
        self._identity = [(POD_HEADER, pod_name.encode("latin-1", "replace"))] if pod_name else []
        self.metrics = metrics
        self.loader = loader
        self.max_body_bytes = max_body_bytes
        self._runner = PredictRunner(predict_mode)
        self._load_task: asyncio.Task[None] | None = None
        prefix = f"/v2/models/{state.name}"
        self._infer_paths = {f"{prefix}/infer"}
        self._model_paths = {prefix}
        self._ready_paths = {f"{prefix}/ready"}
        if state.version:
            versioned = f"{prefix}/versions/{state.version}"
            self._infer_paths.add(f"{versioned}/infer")
            self._model_paths.add(versioned)
            self._ready_paths.add(f"{versioned}/ready")

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
                self._runner.close()
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
        method: str = scope["method"]
        if path in self._infer_paths:
            await self._infer(receive, send, method)
        elif path.startswith("/v2/models/") and path.endswith("/infer"):
            await self._counted_error(send, time.perf_counter(), 404, self._unknown_model(path))
        elif method not in ("GET", "HEAD"):
            await _json(send, 405, {"error": f"method {method} not allowed on {path}"})
        elif path == "/v2/health/live":
            await _json(send, 200, {"live": True})
        elif path == "/v2/health/ready":
            await self._readiness(send)
        elif path == "/metrics":
            body = self.metrics.exposition()
            await _send(send, 200, [(b"content-type", METRICS_CONTENT_TYPE.encode())], body)
        elif path in self._model_paths:
            await self._metadata(send)
        elif path in self._ready_paths:
            await self._readiness(send)
        elif path in ("/v2", "/v2/"):
            await _json(send, 200, {"name": "modelpilot", "version": __version__, "extensions": []})
        elif path.startswith("/v2/models/"):
            await _json(send, 404, {"error": self._unknown_model(path)})
        else:
            await _json(send, 404, {"error": f"no such endpoint: {path}"})

    def _unknown_model(self, path: str) -> str:
        parts = path.split("/")
        name = parts[3] if len(parts) > 3 else ""
        served = self.state.name + (f" version {self.state.version}" if self.state.version else "")
        if name != self.state.name:
            return f"unknown model '{name}'; this server serves {served}"
        if len(parts) > 5 and parts[4] == "versions" and parts[5] != self.state.version:
            return f"unknown version '{parts[5]}' of model '{name}'; this server serves {served}"
        return f"no such endpoint: {path}"

    async def _readiness(self, send: Send) -> None:
        if self.state.ready:
            await _json(send, 200, {"ready": True})
        else:
            reason = "shutting down" if self.state.draining else self.state.reason
            await _json(send, 503, {"ready": False, "reason": reason})

    async def _metadata(self, send: Send) -> None:
        model = self.state.model
        if model is None:
            await _json(send, 503, {"error": f"model not ready: {self.state.reason}"})
            return
        body = {
            "name": self.state.name,
            "versions": [self.state.version] if self.state.version else [],
            "platform": model.platform,
            "inputs": [spec.to_json() for spec in model.inputs],
            "outputs": [spec.to_json() for spec in model.outputs],
        }
        await _json(send, 200, body)

    # --- inference ----------------------------------------------------------------------------
    async def _infer(self, receive: Receive, send: Send, method: str) -> None:
        started = time.perf_counter()
        if method != "POST":
            await self._counted_error(send, started, 405, f"method {method} not allowed; POST an infer request")
            return
        model = self.state.model
        if model is None:
            await self._counted_error(send, started, 503, f"model not ready: {self.state.reason}")
            return
        body = await self._read_body(receive)
        if body is None:
            await self._counted_error(send, started, 413, f"request body larger than {self.max_body_bytes} bytes")
            return
        try:
            try:
                parsed = orjson.loads(body)
            except orjson.JSONDecodeError as err:
                raise ProtocolError(f"malformed JSON: {err}") from None
            request = decode_request(parsed)
            inputs = conform(request, model.inputs)
            outputs = model.select_outputs(request.outputs)
        except ProtocolError as err:
            await self._counted_error(send, started, err.status, err.message)
            return
        try:
            result = await self._runner.run(model.predict, inputs, outputs)
        except ProtocolError as err:  # raised by input assembly inside predict
            await self._counted_error(send, started, err.status, err.message)
            return
        except Exception as err:
            # A failure inside the model is the 5xx signal the canary analysis looks for.
            log.warning("predict failed: %s: %s", type(err).__name__, err)
            await self._counted_error(send, started, 500, f"model predict failed: {type(err).__name__}: {err}")
            return
        try:
            payload = orjson.dumps(
                infer_response(self.state.name, self.state.version, result, request.id), option=_DUMPS_OPTIONS
            )
        except (TypeError, ValueError) as err:
            await self._counted_error(send, started, 500, f"model output cannot be encoded: {err}")
            return
        await _send(send, 200, JSON_HEADERS, payload)
        self.metrics.observe(200, time.perf_counter() - started)

    async def _read_body(self, receive: Receive) -> bytes | None:
        message = await receive()
        body: bytes = message.get("body", b"")
        if not message.get("more_body"):
            return body
        chunks = [body]
        size = len(body)
        while message.get("more_body"):
            message = await receive()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return None
            chunks.append(chunk)
        return b"".join(chunks)

    async def _counted_error(self, send: Send, started: float, status: int, message: str) -> None:
        await _json(send, status, {"error": message})
        self.metrics.observe(status, time.perf_counter() - started)


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


async def _json(send: Send, status: int, body: dict[str, Any]) -> None:
    await _send(send, status, JSON_HEADERS, orjson.dumps(body))


async def _send(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
