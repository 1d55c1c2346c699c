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
from typing import TYPE_CHECKING, Any

import grpc

from modelpilot.server.app import POD_HEADER, SERVER_METADATA, InferenceApp, model_metadata
from modelpilot.server.grpc_codec import encode_response, payload_bytes, prepare
from modelpilot.server.inference import INLINE_BODY_BYTES, REQUEST_ID_HEADER
from modelpilot.server.proto import grpc_predict_v2_pb2 as pb
from modelpilot.server.proto import grpc_predict_v2_pb2_grpc as pb_grpc
from modelpilot.server.protocol import ProtocolError

if TYPE_CHECKING:
    from modelpilot.server.codec import Prepared

log = logging.getLogger("modelpilot.server")

# The HTTP status of an answer -> the gRPC status of the call.
STATUS_CODES: dict[int, grpc.StatusCode] = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    404: grpc.StatusCode.NOT_FOUND,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    500: grpc.StatusCode.INTERNAL,
    503: grpc.StatusCode.UNAVAILABLE,
}
POD_METADATA = POD_HEADER.decode()


def grpc_status(http_status: int) -> grpc.StatusCode:
    if http_status in STATUS_CODES:
        return STATUS_CODES[http_status]
    return grpc.StatusCode.INVALID_ARGUMENT if 400 <= http_status < 500 else grpc.StatusCode.INTERNAL


class InferenceServicer(pb_grpc.GRPCInferenceServiceServicer):
    """The six RPCs of the service over one InferenceApp."""

    def __init__(self, app: InferenceApp, pod_name: str = "") -> None:
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
        return pb.ServerMetadataResponse(**SERVER_METADATA)

    async def ModelMetadata(self, request: pb.ModelMetadataRequest, context: Any) -> pb.ModelMetadataResponse:
        await self._identify(context)
        await self._known(request.name, request.version, context)
        model = self.state.model
        if model is None:
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"model not ready: {self.state.reason}")
        return pb.ModelMetadataResponse(**model_metadata(self.state, model))

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
            await context.abort(grpc_status(err.status), err.message)  # raises: the call ends with that status
        except Exception as err:
            # A bug of ours: still counted, still a status with a message.
            log.exception("gRPC infer request failed")
            metrics.observe(500, time.perf_counter() - started)
            await context.abort(grpc.StatusCode.INTERNAL, f"internal error: {type(err).__name__}: {err}")
        else:
            metrics.observe(200, time.perf_counter() - started)
            # Counted once the answer is on its way, as REST does after sending.
            task = asyncio.get_running_loop().create_task(self.handler.count_predictions(prepared, result))
            self._counting.add(task)
            task.add_done_callback(self._counting.discard)
            return response
        finally:
            metrics.request_finished()

    async def _infer(
        self, request: pb.ModelInferRequest, context: Any
    ) -> tuple[pb.ModelInferResponse, Prepared, dict[str, Any]]:
        unknown = self._unknown(request.model_name, request.model_version)
        if unknown:
            raise ProtocolError(unknown, 404)
        handler = self.handler
        model = handler.ready_model()
        prepared = await handler.decode(payload_bytes(request) > INLINE_BODY_BYTES, prepare, request, model,
                                        handler.limits)  # fmt: skip
        request_id = prepared.request.id or _metadata(context, REQUEST_ID_HEADER.decode())
        response, result = await handler.respond(model, prepared, encode_response, request_id)
        return response, prepared, result

    # --- helpers ------------------------------------------------------------------------------
    def _unknown(self, name: str, version: str) -> str | None:
        """Why a call for `name` and `version` is not for this server (None when it is); an empty
        version names none, as the request fields have no unset state."""
        return self.state.unknown(name, version or None)

    async def _known(self, name: str, version: str, context: Any) -> None:
        unknown = self._unknown(name, version)
        if unknown:
            await context.abort(grpc.StatusCode.NOT_FOUND, unknown)

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
    it cannot), `begin_stop` stops taking calls and lets running ones finish within `grace`
    seconds, `stopped` waits for that."""

    def __init__(self, app: InferenceApp, host: str, port: int, max_message_bytes: int, pod_name: str = "",
                 grace: float = 0.0) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.max_message_bytes = max_message_bytes
        self.pod_name = pod_name
        self.grace = grace
        self._server: grpc.aio.Server | None = None
        self._stopping: asyncio.Task[None] | None = None

    async def start(self) -> int:
        """Bind and start; returns the bound port (the chosen one when `port` is 0)."""
        options = [
            ("grpc.max_receive_message_length", self.max_message_bytes),
            ("grpc.max_send_message_length", -1),
            ("grpc.so_reuseport", 0),  # a second server on the same port must fail, not share it
        ]
        server = grpc.aio.server(options=options)
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

    def begin_stop(self) -> None:
        if self._server is not None and self._stopping is None:
            self._stopping = asyncio.get_running_loop().create_task(self._server.stop(self.grace))

    async def stopped(self) -> None:
        self.begin_stop()
        if self._stopping is not None:
            await self._stopping
