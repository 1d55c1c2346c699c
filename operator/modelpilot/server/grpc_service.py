"""Open Inference Protocol v2 over gRPC: KServe's `inference.GRPCInferenceService`, served by
grpcio's asyncio server on the REST server's event loop.

It answers from the same `InferenceApp` as REST: the same model state, and inference through the
same `InferHandler` steps (decode, predict on the shared runner, encode, drift, metrics). Every
ModelInfer call is counted in `modelpilot_requests_total` / `_duration_seconds` like a REST infer
request, with the HTTP status REST would have answered as `code` (so the canary analysis's
5xx error rate covers both protocols); the call's gRPC status follows from that status
(`STATUS_CODES`). Health and metadata calls are not counted, as on REST.

The generated messages register the `inference.*` names in protobuf's process-wide pool, so a
process that imports this module cannot also import tritonclient.grpc (it defines the same names):
tests drive the service from another process.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import grpc

from modelpilot import __version__
from modelpilot.server.app import EXTENSIONS, InferenceApp
from modelpilot.server.codec import output_elements
from modelpilot.server.grpc_codec import encode_response, payload_bytes, prepare
from modelpilot.server.inference import INLINE_BODY_BYTES, INLINE_OUTPUT_ELEMENTS, REQUEST_ID_HEADER
from modelpilot.server.proto import grpc_predict_v2_pb2 as pb
from modelpilot.server.proto import grpc_predict_v2_pb2_grpc as pb_grpc
from modelpilot.server.protocol import ProtocolError

if TYPE_CHECKING:
    from modelpilot.server.codec import Prepared

log = logging.getLogger("modelpilot.server")

DEFAULT_GRPC_PORT = 8081  # KServe's
# The HTTP status of an answer -> the gRPC status of the call.
STATUS_CODES: dict[int, grpc.StatusCode] = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    404: grpc.StatusCode.NOT_FOUND,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    500: grpc.StatusCode.INTERNAL,
    503: grpc.StatusCode.UNAVAILABLE,
}
POD_METADATA = "x-modelpilot-pod"


def grpc_status(http_status: int) -> grpc.StatusCode:
    if http_status in STATUS_CODES:
        return STATUS_CODES[http_status]
    return grpc.StatusCode.INVALID_ARGUMENT if 400 <= http_status < 500 else grpc.StatusCode.INTERNAL


class InferenceServicer(pb_grpc.GRPCInferenceServiceServicer):
    """The six RPCs of the service over one InferenceApp."""

    def __init__(self, app: InferenceApp, pod_name: str = "") -> None:
        self.app = app
        self.state = app.state
        self.handler = app.infer_handler
        self._identity = ((POD_METADATA, pod_name),) if pod_name else ()
        self._counting: set[asyncio.Task[None]] = set()  # referenced until done (the loop keeps weak refs)

    # --- health and metadata (not counted) ----------------------------------------------------
    async def ServerLive(self, request: pb.ServerLiveRequest, context: Any) -> pb.ServerLiveResponse:
        await self._identify(context)
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request: pb.ServerReadyRequest, context: Any) -> pb.ServerReadyResponse:
        await self._identify(context)
        return pb.ServerReadyResponse(ready=self.state.ready)

    async def ModelReady(self, request: pb.ModelReadyRequest, context: Any) -> pb.ModelReadyResponse:
        await self._identify(context)
        await self._known(request.name, request.version, context)
        return pb.ModelReadyResponse(ready=self.state.ready)

    async def ServerMetadata(self, request: pb.ServerMetadataRequest, context: Any) -> pb.ServerMetadataResponse:
        await self._identify(context)
        return pb.ServerMetadataResponse(name="modelpilot", version=__version__, extensions=EXTENSIONS)

    async def ModelMetadata(self, request: pb.ModelMetadataRequest, context: Any) -> pb.ModelMetadataResponse:
        await self._identify(context)
        await self._known(request.name, request.version, context)
        model = self.state.model
        if model is None:
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"model not ready: {self.state.reason}")
        tensor = pb.ModelMetadataResponse.TensorMetadata
        return pb.ModelMetadataResponse(
            name=self.state.name,
            versions=[self.state.version] if self.state.version else [],
            platform=model.platform,
            inputs=[tensor(name=s.name, datatype=s.datatype, shape=s.shape) for s in model.inputs],
            outputs=[tensor(name=s.name, datatype=s.datatype, shape=s.shape) for s in model.outputs],
        )

    # --- inference (counted) ------------------------------------------------------------------
    async def ModelInfer(self, request: pb.ModelInferRequest, context: Any) -> pb.ModelInferResponse:
        started = time.perf_counter()
        metrics = self.handler.metrics
        metrics.request_started()
        try:
            await self._identify(context)
            response, prepared, result = await self._infer(request, context)
        except ProtocolError as err:
            metrics.observe(err.status, time.perf_counter() - started)
            failure: tuple[grpc.StatusCode, str] = (grpc_status(err.status), err.message)
        except Exception as err:
            # A bug of ours: still counted, still a status with a message.
            log.exception("gRPC infer request failed")
            metrics.observe(500, time.perf_counter() - started)
            failure = (grpc.StatusCode.INTERNAL, f"internal error: {type(err).__name__}: {err}")
        else:
            metrics.observe(200, time.perf_counter() - started)
            # Counted once the answer is on its way, as REST does after sending.
            task = asyncio.get_running_loop().create_task(self.handler.count_predictions(prepared, result))
            self._counting.add(task)
            task.add_done_callback(self._counting.discard)
            return response
        finally:
            metrics.request_finished()
        await context.abort(*failure)  # raises: the call ends with that status
        raise AssertionError("unreachable")

    async def _infer(
        self, request: pb.ModelInferRequest, context: Any
    ) -> tuple[pb.ModelInferResponse, Prepared, dict[str, Any]]:
        self._check_model(request.model_name, request.model_version)
        handler = self.handler
        model = handler.ready_model()
        prepared = await handler.decode(payload_bytes(request) > INLINE_BODY_BYTES, prepare, request, model,
                                        handler.limits)  # fmt: skip
        result = await handler.predict(model, prepared)
        response = await handler.encode(output_elements(result) > INLINE_OUTPUT_ELEMENTS, encode_response,
                                        self.state.name, self.state.version, result, prepared.request)  # fmt: skip
        handler.remember(prepared, result, prepared.request.id or _metadata(context, REQUEST_ID_HEADER.decode()))
        return response, prepared, result

    # --- helpers ------------------------------------------------------------------------------
    def _check_model(self, name: str, version: str) -> None:
        """ProtocolError 404 unless `name` (and `version`, when given) is what this server serves."""
        served = self.state.name + (f" version {self.state.version}" if self.state.version else "")
        if name != self.state.name:
            raise ProtocolError(f"unknown model '{name}'; this server serves {served}", 404)
        if version and version != self.state.version:
            raise ProtocolError(f"unknown version '{version}' of model '{name}'; this server serves {served}", 404)

    async def _known(self, name: str, version: str, context: Any) -> None:
        try:
            self._check_model(name, version)
        except ProtocolError as err:
            await context.abort(grpc.StatusCode.NOT_FOUND, err.message)

    async def _identify(self, context: Any) -> None:
        if self._identity:
            await context.send_initial_metadata(self._identity)


def _metadata(context: Any, key: str) -> str | None:
    for item in context.invocation_metadata() or ():
        if item.key == key:
            return str(item.value)
    return None


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class GrpcServer:
    """The asyncio gRPC server's lifecycle beside uvicorn's: `start` binds the port (raising when
    it cannot), `begin_stop` stops taking calls and lets running ones finish within a grace period,
    `stopped` waits for that."""

    def __init__(self, app: InferenceApp, host: str, port: int, max_message_bytes: int, pod_name: str = "") -> None:
        self.app = app
        self.host = host
        self.port = port
        self.max_message_bytes = max_message_bytes
        self.pod_name = pod_name
        self._server: grpc.aio.Server | None = None
        self._stopping: asyncio.Task[None] | None = None

    async def start(self) -> int:
        """Bind and start; returns the bound port (the chosen one when `port` is 0)."""
        options: Iterable[tuple[str, Any]] = [
            ("grpc.max_receive_message_length", self.max_message_bytes),
            ("grpc.max_send_message_length", -1),
            ("grpc.so_reuseport", 0),  # a second server on the same port must fail, not share it
        ]
        server = grpc.aio.server(options=list(options))
        pb_grpc.add_GRPCInferenceServiceServicer_to_server(InferenceServicer(self.app, self.pod_name), server)
        address = _address(self.host, self.port)
        try:
            bound = server.add_insecure_port(address)
        except RuntimeError as err:
            raise OSError(f"cannot bind the gRPC port {address}: {err}") from None
        if not bound:
            raise OSError(f"cannot bind the gRPC port {address}")
        await server.start()
        self._server = server
        self.port = bound
        return bound

    def begin_stop(self, grace: float) -> None:
        if self._server is not None and self._stopping is None:
            self._stopping = asyncio.get_running_loop().create_task(self._server.stop(grace))

    async def stopped(self, grace: float) -> None:
        self.begin_stop(grace)
        if self._stopping is not None:
            await self._stopping
