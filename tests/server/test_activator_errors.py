"""`modelpilot activator` as a real process: its error answers (400, 413, 504, each the protocol's
error object) and what crosses it (hop-by-hop and routing headers dropped, Host, path and query kept).
The process and upstream helpers are in test_activator.py."""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import threading
from collections.abc import Iterator

import pytest

from tests.server.test_activator import TIMEOUT, WAITING, Activator, Upstream

LIMIT = 1024


@pytest.fixture(scope="module")
def short() -> Iterator[Activator]:
    """Holds for one second at most, takes bodies of up to 1 KiB."""
    with Activator("--hold-timeout", "1", "--max-body-bytes", "1Ki") as running:
        yield running


def _error(answer: tuple[int, dict[str, str], bytes]) -> tuple[int, str]:
    status, headers, body = answer
    assert headers["content-type"].startswith("application/json"), headers
    parsed = json.loads(body)
    assert list(parsed) == ["error"], parsed
    return status, parsed["error"]


@pytest.mark.parametrize(
    ("target", "upstream", "message"),
    [
        (None, "127.0.0.1:9", "missing header x-modelpilot-target"),
        ("ml/bad/stable", None, "missing header x-modelpilot-upstream"),
        ("ml/bad", "127.0.0.1:9", "x-modelpilot-target must be namespace/modeldeployment/track"),
        ("ml/bad/blue", "127.0.0.1:9", "track 'blue' is not one of stable, canary"),
        ("ml/Bad/stable", "127.0.0.1:9", "modeldeployment 'Bad' is not a DNS label"),
        ("ml/bad/stable", "127.0.0.1", "x-modelpilot-upstream must be IP:port or [IPv6]:port"),
        ("ml/bad/stable", "localhost:80", "'localhost' is not an IP address"),
        # Inside the defaults, but this activator allows loopback only.
        ("ml/bad/stable", "10.0.0.1:80", "10.0.0.1 is outside the allowed upstream networks"),
        ("ml/bad/stable", "[fe80::1]:80", "fe80::1 is outside the allowed upstream networks"),
    ],
)
def test_bad_routing_headers_are_a_400(short: Activator, target: str | None, upstream: str | None,
                                       message: str) -> None:  # fmt: skip
    status, text = _error(short.send(target, upstream, body=b"{}"))
    assert status == 400 and message in text, text


def test_400s_are_counted_with_the_labels_they_have(short: Activator) -> None:
    before = short.value("modelpilot_activator_requests_total", "//", code="400") or 0
    assert short.send(None, "127.0.0.1:9")[0] == 400
    assert short.send("ml/counted/stable", "8.8.8.8:80")[0] == 400
    assert short.value("modelpilot_activator_requests_total", "//", code="400") == before + 1
    assert short.value("modelpilot_activator_requests_total", "ml/counted/stable", code="400") == 1
    assert short.value("modelpilot_activator_hold_seconds_count", "ml/counted/stable") == 0  # never held


def test_an_absolute_form_request_target_is_a_400(short: Activator) -> None:
    status, message = _error(short.send("ml/abs/stable", "127.0.0.1:9", method="GET", path="http://evil.example/x"))
    assert status == 400 and "the request target must be a path" in message


def test_a_body_over_the_limit_is_a_413(short: Activator) -> None:
    with Upstream() as upstream:
        upstream.start()
        # Refused from its Content-Length, before it is read.
        answer = short.send("ml/big/stable", upstream.header, body=b"x" * (LIMIT + 1))
        assert _error(answer) == (413, f"request body larger than {LIMIT} bytes (--max-body-bytes)")
        assert answer[1]["connection"] == "close"
        # Without a Content-Length (chunked): refused once it passes the limit.
        chunks = iter([b"y" * 600, b"y" * 600])
        answer = short.send("ml/big/stable", upstream.header, body=chunks)
        assert _error(answer)[0] == 413
        # Exactly at the limit: forwarded.
        assert short.send("ml/big/stable", upstream.header, body=b"z" * LIMIT)[::2] == (200, b"z" * LIMIT)
    assert len(upstream.seen) == 1
    assert short.value("modelpilot_activator_requests_total", "ml/big/stable", code="413") == 2


def test_holding_past_the_timeout_is_a_504_naming_the_target(short: Activator) -> None:
    target = "ml/late/canary"
    upstream = Upstream()  # never listens
    status, message = _error(short.send(target, upstream.header, body=b"{}"))
    assert status == 504
    assert message.startswith(f"no ready endpoint for {target} at {upstream.header} after 1.")
    assert message.endswith(" s (hold timeout)")
    assert short.value(WAITING, target) == 0
    assert short.value("modelpilot_activator_requests_total", target, code="504") == 1
    assert short.value("modelpilot_activator_hold_seconds_count", target) == 1
    assert short.value("modelpilot_activator_activations_total", target) == 1
    assert short.value("modelpilot_activator_cold_start_seconds", target) is None  # it never ended
    assert f"target={target} event=timed-out upstream={upstream.header} waited=1." in short.log()


def test_what_crosses_the_activator(short: Activator) -> None:
    sent = {"Host": "fraud.ml.example", "X-End-To-End": "kept", "Connection": "X-Client-Hop",
            "X-Client-Hop": "dropped", "Keep-Alive": "timeout=5", "TE": "trailers", "Proxy-Authorization": "Basic eA==",
            "Content-Type": "application/json"}  # fmt: skip
    path = "/v2/models/fraud/infer?a=%20b&c=%2F&d"
    with Upstream() as upstream:
        upstream.start()
        status, headers, body = short.send("ml/headers/stable", upstream.header, path=path, body=b"{}", headers=sent)
        assert (status, body) == (200, b"{}")
        for method in ("GET", "PUT", "DELETE"):
            assert short.send("ml/headers/stable", upstream.header, method=method, body=b"m")[::2] == (200, b"m")
        head = short.send("ml/headers/stable", upstream.header, method="HEAD", body=None)
    method, seen_path, seen, seen_body = upstream.seen[0]
    assert (method, seen_path, seen_body) == ("POST", path, b"{}")  # path and query byte for byte
    names = {name for name, _ in seen}
    assert ("host", "fraud.ml.example") in seen and ("x-end-to-end", "kept") in seen
    assert ("content-type", "application/json") in seen
    assert not names & {"x-client-hop", "keep-alive", "te", "proxy-authorization", "x-modelpilot-target",
                        "x-modelpilot-upstream"}, seen  # fmt: skip
    assert "user-agent" not in names  # nothing the client did not send
    assert [m for m, *_ in upstream.seen[1:]] == ["GET", "PUT", "DELETE", "HEAD"]
    assert "x-upstream-hop" not in headers and "keep-alive" not in headers
    assert headers["content-length"] == "2"
    assert head[0] == 200 and head[2] == b"" and head[1]["content-length"] == "0"


def test_set_cookie_headers_are_all_relayed(short: Activator) -> None:
    with Upstream() as upstream:
        upstream.start()
        conn = http.client.HTTPConnection("127.0.0.1", short.port, timeout=TIMEOUT)
        conn.request("POST", "/", body=b"c", headers={"x-modelpilot-target": "ml/cookies/stable",
                                                      "x-modelpilot-upstream": upstream.header})  # fmt: skip
        response = conn.getresponse()
        assert response.headers.get_all("Set-Cookie") == ["a=1", "b=2"]
        response.read()
        conn.close()


def test_expect_100_continue(short: Activator) -> None:
    with Upstream() as upstream, socket.create_connection(("127.0.0.1", short.port), timeout=TIMEOUT) as client:
        upstream.start()
        client.sendall(f"POST /x HTTP/1.1\r\nHost: h\r\nx-modelpilot-target: ml/expect/stable\r\n"
                       f"x-modelpilot-upstream: {upstream.header}\r\nContent-Length: 5\r\n"
                       "Expect: 100-continue\r\n\r\n".encode())  # fmt: skip
        assert client.recv(100).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        client.sendall(b"hello")
        reply = b""
        while not reply.endswith(b"hello"):
            chunk = client.recv(4096)
            assert chunk, reply
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 200 ")
    assert "expect" not in {name for name, _ in upstream.seen[0][2]}


class RawUpstream:
    """Answers each connection with canned bytes once it has read a request, then closes it."""

    def __init__(self, reply: bytes) -> None:
        self.reply = reply
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.header = f"127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        with contextlib.suppress(OSError):  # closed at the end of the test
            while True:
                connection, _ = self.listener.accept()
                with connection:
                    received = b""
                    while b"\r\n\r\n" not in received:
                        received += connection.recv(4096)
                    connection.sendall(self.reply)

    def close(self) -> None:
        self.listener.close()


def test_a_malformed_upstream_response_is_a_502(short: Activator) -> None:
    upstream = RawUpstream(b"HTTP/1.1 two hundred\r\n\r\n")
    try:
        status, message = _error(short.send("ml/garbled/stable", upstream.header, body=b"{}"))
    finally:
        upstream.close()
    assert status == 502 and message.startswith(f"the upstream of ml/garbled/stable ({upstream.header}) failed: ")


def test_a_response_cut_short_is_cut_short_for_the_client(short: Activator) -> None:
    upstream = RawUpstream(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
    try:
        with pytest.raises(http.client.IncompleteRead) as err:
            short.send("ml/cut/stable", upstream.header, body=b"{}")
    finally:
        upstream.close()
    assert err.value.partial == b"abc"
    short.process.wait_until(lambda: "target=ml/cut/stable event=upstream-broke" in short.log(), TIMEOUT, "logged")
    assert short.value("modelpilot_activator_requests_total", "ml/cut/stable", code="200") == 1


def test_a_body_that_never_arrives_is_a_408(short: Activator) -> None:
    with socket.create_connection(("127.0.0.1", short.port), timeout=TIMEOUT) as client:
        client.sendall(b"POST /x HTTP/1.1\r\nHost: h\r\nx-modelpilot-target: ml/slow/stable\r\n"
                       b"x-modelpilot-upstream: 127.0.0.1:9\r\nContent-Length: 10\r\n\r\nab")  # fmt: skip
        response = http.client.HTTPResponse(client)
        response.begin()
        answer = (response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    assert _error(answer) == (408, "the request body did not arrive within 1 s")
    assert answer[1]["connection"] == "close"
    assert short.value(WAITING, "ml/slow/stable") == 0
