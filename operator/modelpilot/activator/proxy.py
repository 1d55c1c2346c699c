"""The activator's request handler: check the routing headers, read the body, hold the request
until its upstream accepts a connection, forward it, stream the answer back.

Every connect failure is retried with backoff until the hold deadline (a Service without a ready
endpoint refuses connections; a SYN to one can also go unanswered, hence a per-attempt connect
timeout). A connection that breaks before any response byte (a pod going away, a stale pooled
connection) sends the request back to holding, under the same deadline. Once response headers
have arrived there is no retry: they are relayed as they are, and the body streamed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import aiohttp
from aiohttp import web
from yarl import URL

from modelpilot.activator.activations import Activations, Ticket
from modelpilot.activator.backoff import delays, pause
from modelpilot.activator.headers import request_headers, response_headers
from modelpilot.activator.metrics import CLIENT_GONE, NO_TARGET, ActivatorMetrics, TargetMetrics
from modelpilot.activator.settings import ActivatorSettings
from modelpilot.activator.target import (
    TARGET_HEADER,
    UPSTREAM_HEADER,
    HeaderError,
    Target,
    Upstream,
    parse_target,
    parse_upstream,
)

log = logging.getLogger("modelpilot.activator")

# Per connect attempt: a SYN that is dropped rather than refused must not use up the hold.
CONNECT_TIMEOUT = 2.0
_CHUNK = 64 * 1024


def decision(target: Target, event: str, **fields: Any) -> None:
    """One structured log line per decision, always naming the target."""
    detail = "".join(f" {key}={_value(value)}" for key, value in fields.items())
    log.info("target=%s event=%s%s", target if target != NO_TARGET else "-", event, detail)


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    text = str(value)
    return json.dumps(text) if not text or any(c in text for c in ' "=') else text


class Answer(Exception):
    """An error answered with the protocol's error object."""

    def __init__(self, status: int, message: str, close: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.close = close

    def response(self) -> web.Response:
        response = web.Response(status=self.status, text=json.dumps({"error": self.message}),
                                 content_type="application/json")  # fmt: skip
        if self.close:
            response.force_close()  # the body was not read: the connection cannot carry another request
        return response


def on_connected(trace_request_ctx: Any, fresh: bool) -> None:
    """Called by the session's trace hooks (server.trace_config) when a request gets a connection,
    a `fresh` one or one from the pool."""
    if callable(trace_request_ctx):
        trace_request_ctx(fresh)


class Proxy:
    def __init__(
        self,
        settings: ActivatorSettings,
        session: aiohttp.ClientSession,
        metrics: ActivatorMetrics,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.session = session
        self.metrics = metrics
        self.clock = clock
        self.activations = Activations(clock)

    async def __call__(self, request: web.BaseRequest) -> web.StreamResponse:
        target = NO_TARGET
        code = CLIENT_GONE  # unless answered: the handler is cancelled when its client goes away
        try:
            target = parse_target(request.headers.get(TARGET_HEADER))
            self.metrics.target(target).last_request.set(time.time())
            upstream = parse_upstream(request.headers.get(UPSTREAM_HEADER), self.settings.allowed)
            response = await self._hold_and_forward(request, target, upstream)
            code = response.status
            return response
        except HeaderError as err:
            code = 400
            decision(target, "rejected", status=400, reason=str(err))
            return Answer(400, str(err)).response()
        except Answer as answer:
            code = answer.status
            return answer.response()
        finally:
            self.metrics.answered(target, code)

    async def _hold_and_forward(
        self, request: web.BaseRequest, target: Target, upstream: Upstream
    ) -> web.StreamResponse:
        if not request.raw_path.startswith("/"):
            decision(target, "rejected", status=400, reason="not origin-form")
            raise Answer(400, f"the request target must be a path, got {request.raw_path[:80]!r}")
        body = await self._read_body(request, target)
        series = self.metrics.target(target)
        ticket = self.activations.arrive(target)
        series.waiting.inc()
        try:
            return await self._forward(request, body, upstream, ticket, series)
        except asyncio.CancelledError:
            if ticket.held:
                decision(target, "client-gone", waited=self.clock() - ticket.arrived)
            raise
        finally:
            if ticket.held:
                series.waiting.dec()
            if self.activations.leave(ticket):
                decision(target, "activation-abandoned", reason="no request for it is held any more")
            series.hold.observe(ticket.waited)

    async def _read_body(self, request: web.BaseRequest, target: Target) -> bytes:
        limit = self.settings.max_body_bytes
        too_large = Answer(413, f"request body larger than {limit} bytes (--max-body-bytes)", close=True)
        declared = request.content_length
        if declared is not None and declared > limit:
            decision(target, "rejected", status=413, declared=declared)
            raise too_large  # refused before reading it
        if request.headers.get("Expect", "").lower() == "100-continue" and request.writer is not None:
            # What aiohttp's Application does for its routes: let the client send the body.
            await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        chunks: list[bytes] = []
        size = 0
        try:
            # Bounded in time too: a client that stops sending (or sends a broken chunk, which
            # aiohttp never reports to the reader) must not keep a handler for ever.
            async with asyncio.timeout(self.settings.hold_timeout):
                while chunk := await request.content.read(_CHUNK):
                    size += len(chunk)
                    if size > limit:
                        decision(target, "rejected", status=413, read=size)
                        raise too_large
                    chunks.append(chunk)
        except TimeoutError:
            decision(target, "rejected", status=408, read=size)
            raise Answer(408, f"the request body did not arrive within {self.settings.hold_timeout:g} s",
                         close=True) from None  # fmt: skip
        return b"".join(chunks)

    async def _forward(
        self, request: web.BaseRequest, body: bytes, upstream: Upstream, ticket: Ticket, series: TargetMetrics
    ) -> web.StreamResponse:
        target = ticket.target
        deadline = ticket.arrived + self.settings.hold_timeout
        schedule = delays()
        url = _upstream_url(request.raw_path, upstream)
        headers = request_headers(request.headers.items())
        while (remaining := deadline - self.clock()) > 0:
            try:
                answer = await self.session.request(
                    request.method, url, headers=headers, data=body or None, allow_redirects=False,
                    timeout=aiohttp.ClientTimeout(total=None, connect=remaining,
                                                  sock_connect=min(CONNECT_TIMEOUT, remaining)),
                    trace_request_ctx=lambda fresh: self._connected(ticket, series, upstream, fresh),
                )  # fmt: skip
            except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as err:
                self._refused(ticket, series, upstream, err)
            except aiohttp.ClientConnectionError as err:  # closed or reset before the response
                self._lost(ticket, series, upstream, err)
            except aiohttp.ClientError as err:  # e.g. a malformed response: the upstream's fault
                decision(target, "bad-gateway", upstream=upstream, error=_error(err))
                raise Answer(502, f"the upstream of {target} ({upstream}) failed: {_error(err)}") from None
            else:
                async with answer:
                    return await self._relay(request, answer, target, upstream)
            await asyncio.sleep(pause(next(schedule), deadline - self.clock()))
        waited = self.clock() - ticket.arrived
        decision(target, "timed-out", upstream=upstream, waited=waited)
        raise Answer(504, f"no ready endpoint for {target} at {upstream} after {waited:.1f} s (hold timeout)")

    def _connected(self, ticket: Ticket, series: TargetMetrics, upstream: Upstream, fresh: bool) -> None:
        was_held = ticket.held
        if was_held:
            series.waiting.dec()
        cold_start = self.activations.connected(ticket, fresh)
        if cold_start is not None:
            self.metrics.cold_start(ticket.target, cold_start)
            decision(ticket.target, "activated", upstream=upstream, cold_start=cold_start)
        if was_held and ticket.failures:
            decision(ticket.target, "forwarded", upstream=upstream, waited=ticket.waited, refused=ticket.failures)

    def _refused(self, ticket: Ticket, series: TargetMetrics, upstream: Upstream, err: Exception) -> None:
        if not ticket.held:  # a pooled connection was stale, and aiohttp's own retry could not connect
            self.activations.rehold(ticket)
            series.waiting.inc()
        if self.activations.refused(ticket):
            series.activations.inc()
            decision(ticket.target, "activation-started", upstream=upstream)
        if ticket.failures == 1:
            decision(ticket.target, "held", upstream=upstream, error=_error(err))

    def _lost(self, ticket: Ticket, series: TargetMetrics, upstream: Upstream, err: Exception) -> None:
        if not ticket.held:
            self.activations.rehold(ticket)
            series.waiting.inc()
        decision(ticket.target, "held", upstream=upstream, reason="connection lost before the response",
                 error=_error(err))  # fmt: skip

    async def _relay(
        self, request: web.BaseRequest, answer: aiohttp.ClientResponse, target: Target, upstream: Upstream
    ) -> web.StreamResponse:
        response = web.StreamResponse(status=answer.status, reason=answer.reason)
        for name, value in response_headers(answer.headers.items()):
            response.headers.add(name, value)
        await response.prepare(request)
        while True:
            try:
                chunk = await answer.content.readany()
            except aiohttp.ClientError as err:
                # Too late for an error answer: cut the client's connection, so it sees a broken
                # response rather than a short one that looks complete.
                decision(target, "upstream-broke", upstream=upstream, error=_error(err))
                if request.transport is not None:
                    request.transport.abort()
                return response
            if not chunk:
                break
            try:
                await response.write(chunk)
            except ConnectionError:  # the client went away mid-response (aiohttp then skips write_eof)
                decision(target, "client-gone", upstream=upstream, status=answer.status)
                return response
        await response.write_eof()
        return response


def _upstream_url(raw_path: str, upstream: Upstream) -> URL:
    """The upstream URL with the client's path and query exactly as sent (still percent-encoded)."""
    path, _, query = raw_path.partition("?")
    return URL.build(scheme="http", host=upstream.host, port=upstream.port, path=path, query_string=query,
                     encoded=True)  # fmt: skip


def _error(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
