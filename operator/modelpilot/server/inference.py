"""The infer endpoint: read the body, decode, predict, encode, and count every answer.

The steps after reading (`ready_model`, `decode`, `respond`: predict, encode and remember, and
`count_predictions`) do not depend on the transport: the gRPC service (`modelpilot.server.grpc_service`)
runs its requests through the same ones, so both protocols share the model, its runner, the
codec thread, the metrics and the drift monitor. Each raises `ProtocolError` with the HTTP status
of the answer (the metrics' `code`); the gRPC service maps that status to a gRPC one.

Decoding and encoding are pure CPU work on the request's data. Small bodies (the usual online
request) are handled on the event loop, where a thread hand-off would cost more than the work;
larger ones go to one codec thread, so the loop keeps answering probes and /metrics while a big
request is parsed (the loop's thread gets the GIL at least every switch interval, 5 ms, except
during a single long C call such as orjson parsing one large body). One codec thread also means
at most one large request is being decoded at a time, which bounds the memory decoding takes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import numpy as np

from modelpilot.server.asgi import Headers, Receive, Scope, Send, header, read_body, send_json, send_parts
from modelpilot.server.codec import HEADER_LENGTH, Limits, Prepared, encode, output_elements, prepare
from modelpilot.server.loaders import Model
from modelpilot.server.metrics import RequestMetrics
from modelpilot.server.protocol import ProtocolError
from modelpilot.server.runner import PredictRunner

if TYPE_CHECKING:
    from modelpilot.server.drift import DriftMonitor

log = logging.getLogger("modelpilot.server")

T = TypeVar("T")
INLINE_BODY_BYTES = 16 * 1024  # decoded on the loop up to this size: about a millisecond at worst
INLINE_OUTPUT_ELEMENTS = 16 * 1024  # encoded on the loop up to this many output values
_CLOSE = [(b"connection", b"close")]
REQUEST_ID_HEADER = b"x-request-id"  # identifies a request for feedback when its body has no `id`


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

    def unknown(self, name: str, version: str | None) -> str | None:
        """Why a request for model `name` (and `version`, when the request names one) is not for
        this server; None when it is."""
        served = self.name + (f" version {self.version}" if self.version else "")
        if name != self.name:
            return f"unknown model '{name}'; this server serves {served}"
        if version is not None and version != self.version:
            return f"unknown version '{version}' of model '{name}'; this server serves {served}"
        return None


class _Answered(Exception):
    """The request has been answered (an error); stops the handler."""


class InferHandler:
    """Answers infer requests; each answer is counted in `metrics` with its status code, and each
    successful one in `drift` (when drift monitoring is on)."""

    def __init__(
        self,
        state: ModelState,
        metrics: RequestMetrics,
        limits: Limits,
        predict_mode: str,
        drift: DriftMonitor | None = None,
    ) -> None:
        self.state = state
        self.metrics = metrics
        self.drift = drift
        self.limits = limits
        self.runner = PredictRunner(predict_mode)
        self._codec = ThreadPoolExecutor(max_workers=1, thread_name_prefix="codec")

    def close(self) -> None:
        self.runner.close()
        self._codec.shutdown(wait=False, cancel_futures=True)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        self.metrics.request_started()
        try:
            await self._answer(scope, receive, send, started)
        finally:
            self.metrics.request_finished()

    async def _answer(self, scope: Scope, receive: Receive, send: Send, started: float) -> None:
        sent: list[int] = []

        async def tracked(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                sent.append(message["status"])
            await send(message)

        try:
            await self._handle(scope, receive, tracked, started)
        except _Answered:
            pass
        except Exception as err:
            # A bug of ours: still a JSON error object, still counted.
            log.exception("infer request failed")
            if not sent:
                await self.error(tracked, started, 500, f"internal error: {type(err).__name__}: {err}")

    async def error(
        self, send: Send, started: float, status: int, message: str, headers: Headers | None = None
    ) -> None:
        """An error object answered and counted with its status (the request arrived at `started`)."""
        await send_json(send, status, {"error": message}, headers or [])
        self.metrics.observe(status, time.perf_counter() - started)

    async def _fail(
        self, send: Send, started: float, status: int, message: str, headers: Headers | None = None
    ) -> NoReturn:
        await self.error(send, started, status, message, headers)
        raise _Answered

    async def _off_loop(self, heavy: bool, fn: Callable[..., T], *args: Any) -> T:
        if not heavy:
            return fn(*args)
        return await asyncio.get_running_loop().run_in_executor(self._codec, fn, *args)

    async def _handle(self, scope: Scope, receive: Receive, send: Send, started: float) -> None:
        method = scope["method"]
        if method != "POST":
            message = f"method {method} not allowed; POST an infer request"
            await self._fail(send, started, 405, message, [(b"allow", b"POST")])
        try:
            model = self.ready_model()
            body = await self._body(scope, receive, send, started)
            prepared = await self.decode(len(body) > INLINE_BODY_BYTES, prepare, body, header(scope, HEADER_LENGTH),
                                         model, self.limits)  # fmt: skip
            (headers, parts), result = await self.respond(model, prepared, encode, self._request_id(prepared, scope))
        except ProtocolError as err:
            await self._fail(send, started, err.status, err.message)
        await send_parts(send, 200, headers, parts)
        self.metrics.observe(200, time.perf_counter() - started)
        await self.count_predictions(prepared, result)

    # --- the transport-independent steps ------------------------------------------------------
    def ready_model(self) -> Model:
        model = self.state.model
        if model is None:
            raise ProtocolError(f"model not ready: {self.state.reason}", 503)
        return model

    async def decode(self, heavy: bool, fn: Callable[..., Prepared], *args: Any) -> Prepared:
        """`fn(*args)` decodes a request (on the codec thread when `heavy`); whatever fails there,
        the client's data caused it (a 4xx)."""
        try:
            return await self._off_loop(heavy, fn, *args)
        except ProtocolError:
            raise
        except MemoryError:
            raise ProtocolError("the request is too large to decode in this server's memory", 413) from None
        except Exception as err:
            log.warning("cannot decode a request: %s: %s", type(err).__name__, err, exc_info=True)
            raise ProtocolError(f"cannot decode the request: {type(err).__name__}: {err}") from None

    async def respond(
        self, model: Model, prepared: Prepared, encoder: Callable[..., T], request_id: str | None
    ) -> tuple[T, dict[str, np.ndarray]]:
        """Predict, encode the answer with `encoder(name, version, outputs, request)` (on the codec
        thread when the outputs are large) and remember the prediction under `request_id`:
        returns (the answer, the model's outputs)."""
        result = await self._predict(model, prepared)
        answer = await self._encode(output_elements(result) > INLINE_OUTPUT_ELEMENTS, encoder,
                                    self.state.name, self.state.version, result, prepared.request)  # fmt: skip
        self._remember(prepared, result, request_id)
        return answer, result

    async def _predict(self, model: Model, prepared: Prepared) -> dict[str, np.ndarray]:
        try:
            return await self.runner.run(model.predict, prepared.inputs, prepared.outputs)
        except ProtocolError:  # raised by input assembly inside predict
            raise
        except Exception as err:
            # A failure inside the model is the 5xx signal the canary analysis looks for.
            log.warning("predict failed: %s: %s", type(err).__name__, err)
            raise ProtocolError(f"model predict failed: {type(err).__name__}: {err}", 500) from None

    async def _encode(self, heavy: bool, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` encodes the outputs (on the codec thread when `heavy`)."""
        try:
            return await self._off_loop(heavy, fn, *args)
        except (TypeError, ValueError) as err:
            raise ProtocolError(f"model output cannot be encoded: {err}", 500) from None

    def _remember(self, prepared: Prepared, result: Mapping[str, Any], request_id: str | None) -> None:
        """Before the answer leaves: a client that posts feedback as soon as it has the answer must
        find the prediction remembered."""
        if self.drift is not None:
            self.drift.remember(next(iter(result.values()), None), request_id)

    @staticmethod
    def _request_id(prepared: Prepared, scope: Scope) -> str | None:
        """The request's OIP `id`, else its x-request-id header: what feedback names it by."""
        if prepared.request.id is not None:
            return prepared.request.id
        given = header(scope, REQUEST_ID_HEADER)
        return given.decode("latin-1") if given else None

    async def count_predictions(self, prepared: Prepared, result: Mapping[str, Any]) -> None:
        """The first output's rows into modelpilot_predictions_total, and the request into the drift
        monitor, after the answer has been sent; never an error (both skip what they cannot count)."""
        try:
            output = next(iter(result.values()), None)
            elements = int(np.size(output))
            if self.drift is not None:
                elements = max(elements, sum(int(a.size) for a in prepared.inputs.values()))
            await self._off_loop(elements > INLINE_OUTPUT_ELEMENTS, self._count, prepared.inputs, output)
        except Exception as err:  # e.g. the codec thread already shut down: the request still succeeded
            log.debug("predictions not counted: %s: %s", type(err).__name__, err)

    def _count(self, inputs: dict[str, np.ndarray], output: Any) -> None:
        self.metrics.observe_predictions(output)
        if self.drift is not None:
            self.drift.observe(inputs, output)

    async def _body(self, scope: Scope, receive: Receive, send: Send, started: float) -> bytes | bytearray:
        encoding = (header(scope, b"content-encoding") or b"identity").decode("latin-1").strip().lower()
        if encoding not in ("", "identity"):
            await self._fail(send, started, 415, f"Content-Encoding {encoding} is not supported; send the body as is")
        limit = self.limits.max_body_bytes
        too_large = f"request body larger than {limit} bytes (MODELPILOT_MAX_BODY_BYTES)"
        declared = (header(scope, b"content-length") or b"").decode("latin-1").strip()
        if declared.isdigit() and int(declared) > limit:
            await self._fail(send, started, 413, too_large, _CLOSE)  # refused before reading it
        body = await read_body(receive, limit, writable=header(scope, HEADER_LENGTH) is not None)
        if body is None:
            await self._fail(send, started, 413, too_large, _CLOSE)
        return body
