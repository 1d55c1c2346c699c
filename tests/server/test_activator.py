"""`modelpilot activator` as a real process on loopback, in front of real upstream HTTP servers that
start listening only while requests are held (docs/activator.md).

Tests wait on state (the activator's gauges, the upstream's record) and never sleep as an assertion;
the only time limits are generous timeouts. The error answers, the header rules and the 504 are in
test_activator_errors.py, which shares the helpers here.
"""

from __future__ import annotations

import contextlib
import http.client
import http.server
import re
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.testing import RuntimeProcess, free_port

TIMEOUT = 60.0  # generous: any wait here ends in well under a second on a quiet machine


# ------------------------------------------------------------------------------------ the upstream
class EchoHandler(http.server.BaseHTTPRequestHandler):
    """Answers every request with its own body, and records what it received."""

    protocol_version = "HTTP/1.1"  # keep-alive: the activator pools its connections
    server: Upstream.Server

    def setup(self) -> None:
        super().setup()
        self.server.connections.add(self.connection)

    def finish(self) -> None:
        self.server.connections.discard(self.connection)
        super().finish()

    def _echo(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.seen.append((self.command, self.path, [(k.lower(), v) for k, v in self.headers.items()], body))
        if self.server.drop_next > 0:  # a pod going away: the request is read, no answer comes
            self.server.drop_next -= 1
            self.close_connection = True
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "X-Upstream-Hop")  # names a hop-by-hop header of its own
        self.send_header("X-Upstream-Hop", "1")
        self.send_header("Keep-Alive", "timeout=30")
        self.send_header("Set-Cookie", "a=1")
        self.send_header("Set-Cookie", "b=2")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _echo

    def log_message(self, format: str, *args: Any) -> None:
        pass


class Upstream:
    """A model Service's stand-in on a fixed loopback port that listens only between start() and
    stop(); stop() also cuts the connections the activator keeps open, as a pod going away does."""

    class Server(http.server.ThreadingHTTPServer):
        daemon_threads = True
        seen: list[tuple[str, str, list[tuple[str, str]], bytes]]
        connections: set[socket.socket]
        drop_next: int

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = free_port(host) if host == "127.0.0.1" else _free_port6()
        self.seen: list[tuple[str, str, list[tuple[str, str]], bytes]] = []
        self.drop_next = 0
        self._server: Upstream.Server | None = None

    @property
    def header(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def start(self) -> None:
        server_class = type("Server6", (Upstream.Server,), {"address_family": socket.AF_INET6}) \
            if ":" in self.host else Upstream.Server  # fmt: skip
        server = server_class((self.host, self.port), EchoHandler)
        server.seen, server.connections, server.drop_next = self.seen, set(), self.drop_next
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self._server = server

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        for connection in list(server.connections):
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> Upstream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _free_port6() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET6, socket.SOCK_STREAM)) as s:
        s.bind(("::1", 0))
        return int(s.getsockname()[1])


# ---------------------------------------------------------------------------------- the activator
class Activator:
    """`modelpilot activator` on loopback, allowed to forward to loopback upstreams."""

    def __init__(self, *args: str) -> None:
        self.port, self.metrics_port = free_port(), free_port()
        argv = ["activator", "--host", "127.0.0.1", "--port", str(self.port), "--metrics-port", str(self.metrics_port),
                "--allow-upstream", "127.0.0.0/8", "::1/128", *args]  # fmt: skip
        self.process = RuntimeProcess(argv, port=self.port)

    def __enter__(self) -> Activator:
        self.process.start()
        self.process.wait_until(lambda: self.metrics_get("/healthz")[0] == 200, TIMEOUT, "listening")
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.stop()

    def log(self) -> str:
        return self.process.log()

    def metrics_get(self, path: str) -> tuple[int, str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.metrics_port, timeout=TIMEOUT)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            return response.status, response.read().decode()
        finally:
            conn.close()

    def samples(self) -> dict[str, list[tuple[dict[str, str], float]]]:
        status, text = self.metrics_get("/metrics")
        assert status == 200
        out: dict[str, list[tuple[dict[str, str], float]]] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                out.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
        return out

    def value(self, name: str, target: str, **extra: str) -> float | None:
        """One series of `name` for target namespace/deployment/track (None: not exported)."""
        namespace, deployment, track = target.split("/")
        want = {"model_namespace": namespace, "model_deployment": deployment, "track": track, **extra}
        found = [v for labels, v in self.samples().get(name, []) if {k: labels.get(k) for k in want} == want]
        return found[0] if found else None

    def wait_value(self, name: str, target: str, expected: float, **extra: str) -> None:
        self.process.wait_until(lambda: self.value(name, target, **extra) == expected, TIMEOUT,
                                f"showing {name}{{{target}}} == {expected}")  # fmt: skip

    def send(
        self, target: str | None, upstream: str | None, method: str = "POST", path: str = "/v2/models/m/infer",
        body: bytes | Iterable[bytes] | None = b"", headers: Mapping[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        """One request with the routing headers (None: left out); (status, headers lower-cased, body).
        A body that is not bytes is sent chunked."""
        routing = {"x-modelpilot-target": target, "x-modelpilot-upstream": upstream}
        sent = {**{k: v for k, v in routing.items() if v is not None}, **(headers or {})}
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=TIMEOUT * 2)
        try:
            chunked = body is not None and not isinstance(body, bytes)
            conn.request(method, path, body=body, headers=sent, encode_chunked=chunked)
            response = conn.getresponse()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        finally:
            conn.close()


@pytest.fixture(scope="module")
def activator() -> Iterator[Activator]:
    with Activator("--hold-timeout", "120", "--max-body-bytes", "4Ki") as running:
        yield running


def wait_for(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not check():
        assert time.monotonic() < deadline, f"not {what} within {TIMEOUT}s"
        time.sleep(0.02)


WAITING = "modelpilot_activator_requests_waiting"
ACTIVATIONS = "modelpilot_activator_activations_total"
COLD_START = "modelpilot_activator_cold_start_seconds"


# --------------------------------------------------------------------------------------- the tests
def test_fifty_held_requests_are_all_answered_once_the_upstream_listens(activator: Activator) -> None:
    target = "ml/fifty/stable"
    before = time.time()
    with Upstream() as upstream, ThreadPoolExecutor(max_workers=50) as pool:
        calls = [pool.submit(activator.send, target, upstream.header, body=b"request-%d" % i) for i in range(50)]
        activator.wait_value(WAITING, target, 50)  # all held: the gauge KEDA scales on is up
        held = f"target={target} event=held "
        activator.process.wait_until(lambda: activator.log().count(held) == 50, TIMEOUT, "refused 50 times")
        assert activator.value(ACTIVATIONS, target) == 1  # one activation, however many requests
        assert activator.value(COLD_START, target) is None  # not over yet
        assert not any(call.done() for call in calls)
        # The model comes up a few hundred ms later: several rounds of refused connects for each.
        time.sleep(max(0.0, before + 0.3 - time.time()))
        upstream.start()
        answers = [call.result(TIMEOUT * 2) for call in calls]
    assert [(status, body) for status, _, body in answers] == [(200, b"request-%d" % i) for i in range(50)]
    assert activator.value(WAITING, target) == 0
    assert activator.value("modelpilot_activator_requests_total", target, code="200") == 50
    assert activator.value("modelpilot_activator_hold_seconds_count", target) == 50
    assert activator.value(ACTIVATIONS, target) == 1
    cold_start = activator.value(COLD_START, target)
    assert cold_start is not None and cold_start > 0
    last = activator.value("modelpilot_activator_last_request_timestamp_seconds", target)
    assert last is not None and before <= last <= time.time()
    log = activator.log()
    assert log.count(f"target={target} event=activated ") == 1
    assert log.count(f"target={target} event=held ") == 50
    assert log.count(f"target={target} event=forwarded ") == 50


def test_cold_start_is_set_once_per_activation(activator: Activator) -> None:
    target = "ml/twice/canary"
    with Upstream() as upstream:
        cold_starts = []
        for round_ in (1, 2):
            with ThreadPoolExecutor(max_workers=1) as pool:
                call = pool.submit(activator.send, target, upstream.header, body=b"round %d" % round_)
                activator.wait_value(WAITING, target, 1)
                activator.wait_value(ACTIVATIONS, target, round_)
                upstream.start()
                assert call.result(TIMEOUT)[::2] == (200, b"round %d" % round_)
            cold_starts.append(activator.value(COLD_START, target))
            # Warm requests (the upstream answers at once) start no activation and leave the gauge alone.
            for _ in range(3):
                assert activator.send(target, upstream.header, body=b"warm")[::2] == (200, b"warm")
            assert activator.value(ACTIVATIONS, target) == round_
            assert activator.value(COLD_START, target) == cold_starts[-1]
            upstream.stop()  # scaled to zero again: the next request starts the second activation
    # Each activation set the gauge once, to the cold start it logged.
    logged = re.findall(rf"target={target} event=activated .* cold_start=([0-9.]+)", activator.log())
    assert logged == [f"{value:.3f}" for value in cold_starts]
    assert activator.value(WAITING, target) == 0


def test_a_connection_lost_before_the_response_is_retried(activator: Activator) -> None:
    target = "ml/flaky/stable"
    with Upstream() as upstream:
        upstream.drop_next = 2  # two pods going away with the request in hand
        upstream.start()
        assert activator.send(target, upstream.header, body=b"once more")[::2] == (200, b"once more")
    assert [(method, body) for method, _, _, body in upstream.seen] == [("POST", b"once more")] * 3
    assert activator.log().count(f"target={target} event=held ") == 2
    assert "connection lost before the response" in activator.log()
    assert activator.value(WAITING, target) == 0
    assert activator.value(ACTIVATIONS, target) == 0  # it never found the model at zero


def test_a_client_that_goes_away_stops_being_held(activator: Activator) -> None:
    target = "ml/gone/stable"
    upstream = Upstream()  # never listens
    request = (f"POST /v2/models/m/infer HTTP/1.1\r\nHost: x\r\nx-modelpilot-target: {target}\r\n"
               f"x-modelpilot-upstream: {upstream.header}\r\nContent-Length: 2\r\n\r\nhi").encode()  # fmt: skip
    with socket.create_connection(("127.0.0.1", activator.port), timeout=TIMEOUT) as client:
        client.sendall(request)
        activator.wait_value(WAITING, target, 1)
        activator.wait_value(ACTIVATIONS, target, 1)
    activator.wait_value(WAITING, target, 0)
    activator.wait_value("modelpilot_activator_requests_total", target, 1, code="499")
    assert f"target={target} event=client-gone" in activator.log()
    assert f"target={target} event=activation-abandoned" in activator.log()


def test_ipv6_upstream() -> None:
    try:
        upstream = Upstream("::1")
    except OSError:
        pytest.skip("no IPv6 loopback here")
    with Activator() as running, upstream:
        upstream.start()
        answer = running.send("ml/six/stable", upstream.header, path="/v2/models/m/infer?a=%20b", body=b"v6")
        assert answer[::2] == (200, b"v6")
    assert upstream.seen[0][1] == "/v2/models/m/infer?a=%20b"
