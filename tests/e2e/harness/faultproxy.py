"""A fault-injecting HTTP reverse proxy for the e2e tests.

Put it between the operator and the Kubernetes API server (`FaultProxy.for_kubeconfig`, then hand the
operator `proxy.write_kubeconfig(...)`) or a Prometheus (`FaultProxy(prometheus_url)`), then
`inject(Fault(...))`: canned answers (429 + Retry-After, 409 with a Kubernetes Status, ...), delays,
and stalls (a watch that stops delivering data but never closes). It relays responses chunk by chunk
(watches last minutes; nothing is buffered whole) and records every request in `requests`.

Its aiohttp event loop runs in a daemon thread, so synchronous tests use it directly:

    with FaultProxy.for_kubeconfig(cluster.kubeconfig) as proxy:
        proxy.inject(Fault(method="PATCH", status=429, headers={"Retry-After": "1"}, times=2))
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import ssl
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp
import yaml
from aiohttp import web
from yarl import URL

HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer", "trailers",
              "transfer-encoding", "upgrade", "content-length", "host", "authorization"}
POLL = 0.05  # how often a held connection looks for its end


@dataclass(eq=False)
class Fault:
    """What to do to matching requests. `path`/`query` are regexes searched in the path and the
    (percent-decoded) query string. With `status`, the proxy answers itself (a dict `body` as JSON);
    with `delay`, it waits first; with `stall`, it relays the upstream headers and then nothing,
    holding the connection (streams already running stop at their next chunk). `times` limits how many
    requests it affects (None: until cleared); `hits` counts them. The first matching fault wins."""

    method: str | None = None
    path: str = ".*"
    query: str | None = None
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] | str | None = None
    times: int | None = None
    delay: float = 0.0
    stall: bool = False
    hits: int = 0

    @classmethod
    def kube_status(cls, code: int, reason: str, message: str = "", **kw: Any) -> Fault:
        """A Kubernetes `Status` failure, e.g. `Fault.kube_status(409, "Conflict", "...", method="PATCH")`."""
        body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": message, "reason": reason, "code": code}
        return cls(status=code, body=body, **kw)

    @classmethod
    def prometheus_error(cls, message: str, error_type: str = "bad_data", status: int = 400, **kw: Any) -> Fault:
        """A Prometheus HTTP API error (`{"status": "error", ...}`)."""
        return cls(status=status, body={"status": "error", "errorType": error_type, "error": message}, **kw)

    def matches(self, method: str, path: str, query: str) -> bool:
        return ((self.method is None or self.method.upper() == method.upper())
                and re.search(self.path, path) is not None
                and (self.query is None or re.search(self.query, query) is not None))

    @property
    def exhausted(self) -> bool:
        return self.times is not None and self.hits >= self.times


@dataclass
class Seen:
    """One request the proxy received (`query` percent-decoded). `status` is what the client got
    (None while undecided); `fault` whether a fault answered or affected it."""

    at: float
    method: str
    path: str
    query: str
    status: int | None = None
    fault: bool = False
    watch: bool = False


class FaultProxy:
    def __init__(self, upstream: str, ssl_context: ssl.SSLContext | None = None, *,
                 upstream_headers: dict[str, str] | None = None, server_hostname: str | None = None) -> None:
        self.upstream = upstream.rstrip("/")
        self.ssl_context = ssl_context
        self.upstream_headers = dict(upstream_headers or {})
        self.server_hostname = server_hostname
        self.requests: list[Seen] = []
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self._port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.ServerRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._handlers: set[asyncio.Task[Any]] = set()
        self._stopping = False

    @classmethod
    def for_kubeconfig(cls, kubeconfig: Path) -> FaultProxy:
        """A proxy to the current context's API server, authenticating as its user (client
        certificate or token)."""
        config = yaml.safe_load(Path(kubeconfig).read_text())
        base = Path(kubeconfig).resolve().parent

        def named(kind: str, name: str) -> dict[str, Any]:
            return next((item[kind[:-1]] for item in config.get(kind) or [] if item["name"] == name), {})

        context = named("contexts", config["current-context"])
        cluster, user = named("clusters", context["cluster"]), named("users", context.get("user", ""))
        server: str = cluster["server"]
        if not server.startswith("https"):
            return cls(server, upstream_headers=_token_header(user))
        ctx = ssl.create_default_context()
        if cluster.get("insecure-skip-tls-verify"):
            ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        elif "certificate-authority-data" in cluster:
            ctx.load_verify_locations(cadata=base64.b64decode(cluster["certificate-authority-data"]).decode())
        elif "certificate-authority" in cluster:
            ctx.load_verify_locations(cafile=str(base / cluster["certificate-authority"]))
        if "client-certificate-data" in user or "client-certificate" in user:
            with tempfile.TemporaryDirectory(prefix="faultproxy-") as tmp:  # read at once, then removed

                def pem(key: str) -> str:
                    if f"{key}-data" not in user:
                        return str(base / user[key])
                    (Path(tmp) / key).write_bytes(base64.b64decode(user[f"{key}-data"]))
                    return str(Path(tmp) / key)

                ctx.load_cert_chain(pem("client-certificate"), pem("client-key"))
        return cls(server, ctx, upstream_headers=_token_header(user), server_hostname=cluster.get("tls-server-name"))

    # ------------------------------------------------------------------------------ life cycle

    @property
    def url(self) -> str:
        if self._port is None:
            raise RuntimeError("the proxy is not started")
        return f"http://127.0.0.1:{self._port}"

    def start(self) -> FaultProxy:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="faultproxy", daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=30)
        return self

    def stop(self) -> None:
        loop, self._loop, self._port = self._loop, None, None
        if loop is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._stop(), loop).result(timeout=30)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            if self._thread is not None:
                self._thread.join(timeout=10)
            loop.close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    async def _start(self) -> None:
        self._stopping = False
        connector = aiohttp.TCPConnector(ssl=self.ssl_context if self.ssl_context is not None else True)
        self._session = aiohttp.ClientSession(connector=connector, auto_decompress=False,
                                              timeout=aiohttp.ClientTimeout(total=None, sock_connect=15))
        self._runner = web.ServerRunner(web.Server(self._handle, handler_cancellation=True), shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self._port = int(self._runner.addresses[0][1])

    async def _stop(self) -> None:
        self._stopping = True
        for task in list(self._handlers):
            task.cancel()
        if self._handlers:  # stalled, delayed and streaming requests
            await asyncio.wait(list(self._handlers), timeout=5)
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    # ------------------------------------------------------------------------------ faults, records

    def inject(self, fault: Fault) -> Fault:
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self, fault: Fault | None = None) -> None:
        """Remove one fault (or all); connections it holds stalled are then closed."""
        with self._lock:
            self._faults = [f for f in self._faults if fault is not None and f is not fault]

    def seen(self, method: str | None = None, path: str | None = None) -> list[Seen]:
        with self._lock:
            return [s for s in self.requests if (method is None or s.method == method.upper())
                    and (path is None or re.search(path, s.path))]

    def write_kubeconfig(self, path: Path) -> Path:
        """A kubeconfig for clients of the proxy (plain http; a dummy token the proxy drops)."""
        config = {"apiVersion": "v1", "kind": "Config", "current-context": "faultproxy",
                  "clusters": [{"name": "faultproxy", "cluster": {"server": self.url}}],
                  "users": [{"name": "faultproxy", "user": {"token": "faultproxy-dummy-token"}}],
                  "contexts": [{"name": "faultproxy", "context": {"cluster": "faultproxy", "user": "faultproxy"}}]}
        path.write_text(yaml.safe_dump(config))
        return path

    def _claim(self, method: str, path: str, query: str, stall_only: bool = False) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if stall_only and not (fault.stall and fault.status is None):
                    continue
                if not fault.exhausted and fault.matches(method, path, query):
                    fault.hits += 1
                    return fault
        return None

    def _active(self, fault: Fault) -> bool:
        with self._lock:
            return not self._stopping and any(f is fault for f in self._faults)

    # ------------------------------------------------------------------------------ the handler

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        method, path, query = request.method, request.path, request.query_string
        seen = Seen(at=time.monotonic(), method=method, path=path, query=query,
                    watch=request.query.get("watch", "").lower() in ("true", "1"))
        with self._lock:
            self.requests.append(seen)
        try:
            fault = self._claim(method, path, query)
            seen.fault = fault is not None
            if fault is not None and fault.delay:
                await asyncio.sleep(fault.delay)
            if fault is not None and fault.status is not None:
                seen.status = fault.status
                return _canned(fault)
            return await self._forward(request, seen, fault if fault is not None and fault.stall else None)
        finally:
            self._handlers.discard(task)

    async def _forward(self, request: web.BaseRequest, seen: Seen, stall: Fault | None) -> web.StreamResponse:
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        headers.update(self.upstream_headers)
        data = await request.read() if request.body_exists else None
        try:
            upstream = await self._session.request(
                request.method, URL(self.upstream + request.raw_path, encoded=True), headers=headers, data=data,
                allow_redirects=False, server_hostname=self.server_hostname)
        except (aiohttp.ClientError, OSError) as e:
            seen.status = 502
            return web.Response(status=502, text=f"faultproxy: upstream {self.upstream} failed: {e!r}")
        async with upstream:
            response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
            for key, value in upstream.headers.items():
                if key.lower() not in HOP_BY_HOP:
                    response.headers.add(key, value)
            seen.status = upstream.status
            try:
                await response.prepare(request)
                await self._relay(request, upstream, response, seen, stall)
            except ConnectionResetError:  # the client left
                pass
            return response

    async def _relay(self, request: web.BaseRequest, upstream: aiohttp.ClientResponse, response: web.StreamResponse,
                     seen: Seen, stall: Fault | None) -> None:
        pending = b""  # watches are relayed whole lines at a time, so a stall cuts between events
        while stall is None:
            chunk = await upstream.content.readany()
            if not chunk:
                break
            stall = self._claim(request.method, request.path, request.query_string, stall_only=True)
            if stall is not None:  # injected while this response streams: relay nothing more
                seen.fault = True
                break
            if seen.watch:
                buffer = pending + chunk
                cut = buffer.rfind(b"\n") + 1
                chunk, pending = buffer[:cut], buffer[cut:]
            if chunk:
                await response.write(chunk)
        if stall is not None:
            await self._hold(request, stall)
            response.force_close()
        elif pending:
            await response.write(pending)
        await response.write_eof()

    async def _hold(self, request: web.BaseRequest, fault: Fault) -> None:
        """Keep a stalled connection open until the fault is cleared, the client leaves or we stop."""
        while self._active(fault) and request.transport is not None and not request.transport.is_closing():
            await asyncio.sleep(POLL)


def _token_header(user: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {user['token']}"} if user.get("token") else {}


def _canned(fault: Fault) -> web.Response:
    headers = dict(fault.headers)
    if isinstance(fault.body, dict):
        headers.setdefault("Content-Type", "application/json")
        body = json.dumps(fault.body).encode()
    else:
        headers.setdefault("Content-Type", "text/plain; charset=utf-8")
        body = (fault.body or "").encode()
    return web.Response(status=fault.status or 500, headers=headers, body=body)
