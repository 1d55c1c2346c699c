"""`modelpilot activator`: the proxy on one port, /metrics and /healthz on another, one client
session for every upstream connection, and a graceful stop on SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import aiohttp
from aiohttp import web

from modelpilot.activator.metrics import CONTENT_TYPE, ActivatorMetrics
from modelpilot.activator.proxy import Proxy, on_connected
from modelpilot.activator.settings import ActivatorSettings

log = logging.getLogger("modelpilot.activator")

# Upstream connections open at once, over all targets (file descriptors and memory stay bounded).
# No per-host cap: a model's Service is one host, and a cap would only queue its own requests.
MAX_CONNECTIONS = 1024
# Below the model server's 30 s keep-alive, so the activator closes an idle connection before the
# server does and never writes a request into one that is being closed.
KEEPALIVE_SECONDS = 15.0


def trace_config() -> aiohttp.TraceConfig:
    """Tells a request the moment it has an upstream connection (new or pooled): it stops waiting."""

    async def created(session: aiohttp.ClientSession, ctx: SimpleNamespace, params: Any) -> None:
        on_connected(ctx.trace_request_ctx, fresh=True)

    async def reused(session: aiohttp.ClientSession, ctx: SimpleNamespace, params: Any) -> None:
        on_connected(ctx.trace_request_ctx, fresh=False)

    config = aiohttp.TraceConfig()
    config.on_connection_create_end.append(created)
    config.on_connection_reuseconn.append(reused)
    return config


def client_session() -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=MAX_CONNECTIONS, limit_per_host=0, keepalive_timeout=KEEPALIVE_SECONDS)
    return aiohttp.ClientSession(
        connector=connector,
        trace_configs=[trace_config()],
        # A proxy relays bytes: no decompression, no cookies kept between clients, no headers the
        # client did not send (Host, when the client sent one, is its own).
        auto_decompress=False,
        cookie_jar=aiohttp.DummyCookieJar(),
        skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
        timeout=aiohttp.ClientTimeout(total=None),
    )


def metrics_app(metrics: ActivatorMetrics) -> web.Application:
    async def exposition(request: web.Request) -> web.Response:
        return web.Response(body=metrics.exposition(), headers={"Content-Type": CONTENT_TYPE})

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text=json.dumps({"ok": True}), content_type="application/json")

    app = web.Application()
    app.router.add_get("/metrics", exposition)
    app.router.add_get("/healthz", healthz)
    return app


async def run(settings: ActivatorSettings, stop: asyncio.Event | None = None) -> int:
    """Serve until SIGTERM/SIGINT (or `stop`); then stop accepting, give requests in flight up to
    the graceful timeout, and return the exit code."""
    stop = stop or asyncio.Event()
    metrics = ActivatorMetrics()
    async with client_session() as session:
        proxy = Proxy(settings, session, metrics)
        # handler_cancellation: a client that goes away stops its held request (and its gauge).
        proxy_runner = web.ServerRunner(web.Server(proxy, handler_cancellation=True, access_log=None),
                                        shutdown_timeout=settings.graceful_timeout)  # fmt: skip
        metrics_runner = web.AppRunner(metrics_app(metrics), access_log=None, shutdown_timeout=1.0)
        try:
            await proxy_runner.setup()
            await metrics_runner.setup()
            await web.TCPSite(proxy_runner, settings.host, settings.port).start()
            await web.TCPSite(metrics_runner, settings.metrics_host, settings.metrics_port).start()
        except OSError as err:
            log.error("cannot listen: %s", err)
            await proxy_runner.cleanup()
            await metrics_runner.cleanup()
            return 1
        _on_signals(stop.set)
        log.info("activator listening on %s:%d, metrics on %s:%d; hold timeout %gs, body limit %d bytes, "
                 "upstreams in %s", settings.host, settings.port, settings.metrics_host, settings.metrics_port,
                 settings.hold_timeout, settings.max_body_bytes, ", ".join(map(str, settings.allowed)))  # fmt: skip
        await stop.wait()
        log.info("shutting down: no new connections; requests in flight get up to %gs", settings.graceful_timeout)
        await proxy_runner.cleanup()
        await metrics_runner.cleanup()
    return 0


def _on_signals(callback: Callable[[], None]) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):  # not on Windows
            loop.add_signal_handler(sig, callback)


def main(settings: ActivatorSettings) -> int:
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        force=True)  # fmt: skip
    try:
        import uvloop
    except ImportError:
        return asyncio.run(run(settings))
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(run(settings))
