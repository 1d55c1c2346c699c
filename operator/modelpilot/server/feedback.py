"""The feedback endpoint: `POST /v2/models/{name}/feedback` with `{"id": ..., "truth": ...}`.

The truth for an earlier identified inference request (its OIP `id`, or its `x-request-id`
header) is joined to the predictions this process made for it (`DriftMonitor.feedback`). Every
answer is counted in modelpilot_feedback_total by outcome; none in modelpilot_requests_total,
whose error rate the canary analysis reads (a client's wrong id is not the model's failure).
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from modelpilot.monitoring.feedback import DUPLICATE, INVALID, JOINED, UNKNOWN, JoinResult
from modelpilot.monitoring.profile import CLASSIFICATION
from modelpilot.server.asgi import Headers, Receive, Scope, Send, header, read_body, send_json
from modelpilot.server.drift import DriftMonitor
from modelpilot.server.inference import INLINE_BODY_BYTES, ModelState

_STATUS = {JOINED: 200, UNKNOWN: 404, DUPLICATE: 409, INVALID: 400}
_CLOSE = [(b"connection", b"close")]


class _Refused(Exception):
    """A feedback request the server refuses before joining it: an HTTP status and a message."""

    def __init__(self, status: int, message: str, headers: Headers | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or []


class FeedbackHandler:
    """Answers feedback requests for the model in `state` (see the module docstring)."""

    def __init__(self, state: ModelState, drift: DriftMonitor, max_body_bytes: int) -> None:
        self.state = state
        self.drift = drift
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            request_id, truth = await self._read(scope, receive)
        except _Refused as refused:
            if refused.status != 503:  # not the client's feedback: the server is not ready
                self.drift.count_feedback(INVALID)
            await send_json(send, refused.status, {"error": refused.message}, refused.headers)
            return
        result = await _maybe_off_loop(truth, self.drift.feedback, request_id, truth)
        await send_json(send, _STATUS[result.result], _answer(request_id, result))

    async def _read(self, scope: Scope, receive: Receive) -> tuple[str, Any]:
        method = scope["method"]
        if method != "POST":
            raise _Refused(405, f"method {method} not allowed; POST feedback", [(b"allow", b"POST")])
        if self.state.model is None:
            raise _Refused(503, f"model not ready: {self.state.reason}")
        limit = self.max_body_bytes
        too_large = f"request body larger than {limit} bytes (MODELPILOT_MAX_BODY_BYTES)"
        declared = (header(scope, b"content-length") or b"").decode("latin-1").strip()
        if declared.isdigit() and int(declared) > limit:
            raise _Refused(413, too_large, _CLOSE)
        body = await read_body(receive, limit)
        if body is None:
            raise _Refused(413, too_large, _CLOSE)
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError as err:
            raise _Refused(400, f"malformed JSON: {err}") from None
        return _fields(parsed)


def _fields(parsed: Any) -> tuple[str, Any]:
    if not isinstance(parsed, dict):
        raise _Refused(400, 'the body must be a JSON object: {"id": "<request id>", "truth": ...}')
    request_id = parsed.get("id")
    if not isinstance(request_id, str) or not request_id:
        raise _Refused(400, "'id' must be the non-empty id of an earlier inference request")
    if parsed.get("truth") is None:
        raise _Refused(400, "'truth' is missing: give one value, or a list with one value per row of that request")
    return request_id, parsed["truth"]


async def _maybe_off_loop(truth: Any, fn: Any, *args: Any) -> JoinResult:
    """Score a long truth list on a thread, so the loop keeps answering meanwhile."""
    if isinstance(truth, list) and len(truth) > INLINE_BODY_BYTES // 8:
        return await asyncio.to_thread(fn, *args)
    result: JoinResult = fn(*args)
    return result


def _answer(request_id: str, result: JoinResult) -> dict[str, Any]:
    if result.result != JOINED:
        return {"error": result.message}
    if result.task == CLASSIFICATION:
        return {"id": request_id, "rows": result.rows, "correct": result.correct}
    return {"id": request_id, "rows": result.rows, "absoluteError": result.absolute_error}
