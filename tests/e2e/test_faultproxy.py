"""The fault-injecting proxy (tests/e2e/harness/faultproxy.py) against a local upstream; one test
goes through it to the test bed's API server."""

from __future__ import annotations

import http.server
import json
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from tests.e2e.harness.faultproxy import Fault, FaultProxy
from tests.e2e.support import ClusterHandle, wait_for


class Upstream(http.server.BaseHTTPRequestHandler):
    """/echo answers with what it got (status from ?status=); /stream sends a line every 0.1 s
    (?n=, 0 for ever) as chunks."""

    protocol_version = "HTTP/1.1"
    seen: list[dict[str, Any]]

    def log_message(self, *args: Any) -> None:
        pass

    def _reply(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
        got = {"method": self.command, "path": url.path, "query": url.query, "body": body,
               "authorization": self.headers.get("Authorization")}
        self.server.seen.append(got)  # type: ignore[attr-defined]
        if url.path == "/stream":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("X-Upstream", "yes")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            n, i = int(query.get("n", ["5"])[0]), 0
            try:
                while n == 0 or i < n:
                    line = json.dumps({"type": "ADDED", "i": i}).encode() + b"\n"
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
                    self.wfile.flush()
                    i += 1
                    time.sleep(0.1)
                self.wfile.write(b"0\r\n\r\n")
            except OSError:
                pass
            return
        payload = json.dumps(got).encode()
        self.send_response(int(query.get("status", ["200"])[0]))
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PATCH = do_DELETE = _reply


@pytest.fixture
def upstream() -> Iterator[http.server.ThreadingHTTPServer]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    server.daemon_threads = True
    server.seen = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def proxy(upstream: http.server.ThreadingHTTPServer) -> Iterator[FaultProxy]:
    with FaultProxy(f"http://127.0.0.1:{upstream.server_address[1]}",
                    upstream_headers={"Authorization": "Bearer upstream"}) as proxy:
        yield proxy


class Reader(threading.Thread):
    """Reads a streamed response in the background: `chunks` as they come, then `ended` (EOF or error)."""

    def __init__(self, url: str, timeout: float = 30) -> None:
        super().__init__(daemon=True)
        self.url, self.timeout = url, timeout
        self.status: int | None = None
        self.headers: dict[str, str] = {}
        self.chunks: list[tuple[float, bytes]] = []
        self.error: Exception | None = None
        self.ended = threading.Event()
        self.start()

    def run(self) -> None:
        try:
            with requests.get(self.url, stream=True, timeout=(5, self.timeout)) as response:
                self.status, self.headers = response.status_code, dict(response.headers)
                for chunk in response.iter_content(chunk_size=None):
                    self.chunks.append((time.monotonic(), chunk))
        except Exception as e:
            self.error = e
        finally:
            self.ended.set()


# ------------------------------------------------------------------------------------------ tests

def test_forwards_methods_bodies_queries_and_statuses(proxy: FaultProxy,
                                                      upstream: http.server.ThreadingHTTPServer) -> None:
    got = requests.get(f"{proxy.url}/echo?a=1&b=x%20y", headers={"Authorization": "Bearer client"}, timeout=10)
    assert got.status_code == 200
    assert got.json() == {"method": "GET", "path": "/echo", "query": "a=1&b=x%20y", "body": "",
                          "authorization": "Bearer upstream"}  # the client's credential is replaced
    posted = requests.post(f"{proxy.url}/echo?status=201", json={"k": "v"}, timeout=10)
    assert posted.status_code == 201
    assert json.loads(posted.json()["body"]) == {"k": "v"}
    assert requests.delete(f"{proxy.url}/echo?status=404", timeout=10).status_code == 404
    assert [(s.method, s.path, s.query, s.status, s.fault) for s in proxy.seen()] == [
        ("GET", "/echo", "a=1&b=x y", 200, False), ("POST", "/echo", "status=201", 201, False),
        ("DELETE", "/echo", "status=404", 404, False)]
    assert [s.method for s in proxy.seen(method="post", path="^/echo$")] == ["POST"]


def test_status_fault_answers_times_then_forwarding_resumes(proxy: FaultProxy,
                                                            upstream: http.server.ThreadingHTTPServer) -> None:
    fault = proxy.inject(Fault(method="GET", path="^/echo", status=429, headers={"Retry-After": "3"}, times=2))
    answers = [requests.get(f"{proxy.url}/echo", timeout=10) for _ in range(3)]
    assert [a.status_code for a in answers] == [429, 429, 200]
    assert [a.headers.get("Retry-After") for a in answers] == ["3", "3", None]
    assert fault.hits == 2 and fault.exhausted
    assert len(upstream.seen) == 1  # type: ignore[attr-defined]
    assert [(s.status, s.fault) for s in proxy.seen()] == [(429, True), (429, True), (200, False)]
    assert requests.post(f"{proxy.url}/echo", timeout=10).status_code == 200  # method did not match

    proxy.inject(Fault.kube_status(409, "Conflict", "the object has been modified", method="PATCH", times=1))
    conflict = requests.patch(f"{proxy.url}/apis/x/v1/things/a", json={}, timeout=10)
    assert conflict.status_code == 409 and conflict.headers["Content-Type"] == "application/json"
    assert conflict.json() == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                               "message": "the object has been modified", "reason": "Conflict", "code": 409}
    proxy.inject(Fault.prometheus_error("parse error", path="^/api/v1/query$", query="query=bad"))
    assert requests.get(f"{proxy.url}/api/v1/query?query=good", timeout=10).status_code == 200
    bad = requests.get(f"{proxy.url}/api/v1/query?query=bad", timeout=10)
    assert (bad.status_code, bad.json()["errorType"]) == (400, "bad_data")
    proxy.clear()
    assert requests.get(f"{proxy.url}/api/v1/query?query=bad", timeout=10).status_code == 200


def test_delay_fault_delays_then_forwards(proxy: FaultProxy) -> None:
    proxy.inject(Fault(path="^/echo", delay=0.6, times=1))
    started = time.monotonic()
    assert requests.get(f"{proxy.url}/echo", timeout=10).status_code == 200
    assert time.monotonic() - started >= 0.6
    proxy.inject(Fault(delay=0.3, status=503))
    started = time.monotonic()
    assert requests.get(f"{proxy.url}/echo", timeout=10).status_code == 503
    assert time.monotonic() - started >= 0.3


def test_streams_are_relayed_chunk_by_chunk(proxy: FaultProxy) -> None:
    reader = Reader(f"{proxy.url}/stream?n=6&watch=true")
    assert reader.ended.wait(10) and reader.error is None
    lines = b"".join(c for _, c in reader.chunks).splitlines()
    assert [json.loads(line)["i"] for line in lines] == list(range(6))
    assert len(reader.chunks) >= 4  # not one buffered body
    assert reader.chunks[-1][0] - reader.chunks[0][0] >= 0.3
    [seen] = proxy.seen(path="^/stream")
    assert seen.watch and seen.status == 200 and not seen.fault


def test_stall_on_a_new_stream_sends_headers_then_nothing_until_cleared(
        proxy: FaultProxy, upstream: http.server.ThreadingHTTPServer) -> None:
    fault = proxy.inject(Fault(path="^/stream", stall=True))
    with (pytest.raises(requests.ConnectionError, match="timed out"),
          requests.get(f"{proxy.url}/stream?n=0", stream=True, timeout=(5, 0.5)) as response):
        assert response.status_code == 200 and response.headers["X-Upstream"] == "yes"
        next(response.iter_content(chunk_size=None))
    reader = Reader(f"{proxy.url}/stream?n=0&watch=true")
    wait_for(lambda: reader.status, timeout=10, interval=0.05, what="the stalled response's headers")
    assert not reader.ended.wait(0.7) and reader.chunks == []  # held open, silent
    assert len(upstream.seen) == 2  # type: ignore[attr-defined]  # both went upstream
    proxy.clear(fault)
    assert reader.ended.wait(5) and reader.chunks == []
    assert all(s.fault and s.status == 200 for s in proxy.seen())


def test_stall_injected_mid_stream_stops_relaying(proxy: FaultProxy) -> None:
    reader = Reader(f"{proxy.url}/stream?n=0&watch=true")
    wait_for(lambda: len(reader.chunks) >= 3, timeout=10, interval=0.02, what="three lines")
    fault = proxy.inject(Fault(path="^/stream", stall=True))
    before = len(reader.chunks)
    wait_for(lambda: fault.hits, timeout=5, interval=0.02, what="the stream to stall")
    assert not reader.ended.wait(0.7)
    assert len(reader.chunks) <= before + 1  # at most one already on its way
    assert proxy.seen()[0].fault
    proxy.clear(fault)
    assert reader.ended.wait(5)
    assert all(line.endswith(b"}") for line in b"".join(c for _, c in reader.chunks).splitlines())


def test_stop_closes_held_connections(upstream: http.server.ThreadingHTTPServer) -> None:
    proxy = FaultProxy(f"http://127.0.0.1:{upstream.server_address[1]}").start()
    proxy.inject(Fault(stall=True))
    reader = Reader(f"{proxy.url}/stream?n=0")
    wait_for(lambda: reader.status, timeout=10, interval=0.05, what="the stalled response's headers")
    started = time.monotonic()
    proxy.stop()
    assert time.monotonic() - started < 3
    assert reader.ended.wait(5)


def test_kubernetes_api_through_the_proxy_cluster(cluster: ClusterHandle, tmp_path: Path) -> None:
    with FaultProxy.for_kubeconfig(cluster.kubeconfig) as proxy:
        core = client.CoreV1Api(config.new_client_from_config(
            config_file=str(proxy.write_kubeconfig(tmp_path / "kubeconfig"))))
        names = {ns.metadata.name for ns in core.list_namespace().items}
        assert {"default", "kube-system"} <= names
        event = next(iter(watch.Watch().stream(core.list_namespace, timeout_seconds=30)))
        assert event["type"] == "ADDED" and event["object"].metadata.name in names
        assert [s.watch for s in proxy.seen("GET", "^/api/v1/namespaces$")] == [False, True]

        # urllib3 (under the official client) itself retries a 429 that has a Retry-After:
        proxy.inject(Fault.kube_status(429, "TooManyRequests", "slow down", headers={"Retry-After": "1"}, times=1))
        assert core.list_namespace().items
        assert [(s.status, s.fault) for s in proxy.seen("GET", "^/api/v1/namespaces$")[-2:]] == [(429, True),
                                                                                                 (200, False)]
        proxy.inject(Fault.kube_status(409, "AlreadyExists", "no", method="POST", path="^/api/v1/namespaces$"))
        with pytest.raises(ApiException) as raised:
            core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="faultproxy-never")))
        assert (raised.value.status, json.loads(raised.value.body)["reason"]) == (409, "AlreadyExists")
