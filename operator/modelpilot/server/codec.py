"""An infer request's body -> the model's inputs, and the model's outputs -> the response body.

Both are plain functions over bytes and arrays, so the HTTP layer can run them inline for small
bodies and on its codec thread for large ones. A body is JSON, or, with the binary tensor data
extension, a JSON header of `Inference-Header-Content-Length` bytes followed by raw tensors.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import orjson

from modelpilot.server.asgi import JSON_HEADERS, Headers
from modelpilot.server.loaders import Model
from modelpilot.server.protocol import (
    DEFAULT_MAX_DECODED_BYTES,
    InferRequest,
    ProtocolError,
    binary_response,
    conform,
    decode_request,
)

HEADER_LENGTH = b"inference-header-content-length"
DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024
_DUMPS_OPTIONS = orjson.OPT_SERIALIZE_NUMPY


@dataclass(frozen=True)
class Limits:
    """Per-request memory caps: the body as received, and its tensors once decoded."""

    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_decoded_bytes: int = DEFAULT_MAX_DECODED_BYTES


@dataclass
class Prepared:
    """A decoded request, checked against the model: what predict() gets."""

    request: InferRequest
    inputs: dict[str, np.ndarray]
    outputs: list[str]


def split_body(body: bytes | bytearray, header_length: bytes | None) -> tuple[memoryview, memoryview | None]:
    """(the JSON part, the binary part or None when the request does not use the extension)."""
    view = memoryview(body)
    if header_length is None:
        return view, None
    text = header_length.decode("latin-1").strip()
    if not text.isdigit():
        raise ProtocolError(f"Inference-Header-Content-Length must be a non-negative integer, got {text[:40]!r}")
    size = int(text)
    if size > len(view):
        raise ProtocolError(f"Inference-Header-Content-Length {size} is larger than the body ({len(view)} bytes)")
    return view[:size], view[size:]


def prepare(body: bytes | bytearray, header_length: bytes | None, model: Model, limits: Limits) -> Prepared:
    """Parse, decode and check an infer request; raises ProtocolError for anything the client got wrong."""
    head, binary = split_body(body, header_length)
    try:
        parsed = orjson.loads(head)
    except orjson.JSONDecodeError as err:
        raise ProtocolError(f"malformed JSON: {err}") from None
    return checked(decode_request(parsed, binary, limits.max_decoded_bytes), model)


def checked(request: InferRequest, model: Model) -> Prepared:
    """A decoded request (REST or gRPC) checked against the model's inputs and outputs."""
    inputs = conform(request, model.inputs)
    return Prepared(request, inputs, model.select_outputs(request.outputs))


def encode(model_name: str, model_version: str, result: Mapping[str, np.ndarray], request: InferRequest) -> tuple[
    Headers, list[bytes]
]:
    """The response's headers and body parts; raises TypeError/ValueError for outputs that cannot be encoded."""
    response, blobs = binary_response(model_name, model_version, result, request)
    head = orjson.dumps(response, option=_DUMPS_OPTIONS)
    if not blobs:
        return JSON_HEADERS, [head]
    headers = [(b"content-type", b"application/octet-stream"), (HEADER_LENGTH, str(len(head)).encode())]
    return headers, [head, *blobs]


def output_elements(result: Mapping[str, np.ndarray]) -> int:
    return sum(int(np.size(array)) for array in result.values())
