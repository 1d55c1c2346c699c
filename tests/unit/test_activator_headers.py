"""Which headers the activator forwards and relays back (pure)."""

from __future__ import annotations

import pytest

from modelpilot.activator.headers import connection_tokens, request_headers, response_headers

Headers = list[tuple[str, str]]


@pytest.mark.parametrize(
    ("given", "forwarded"),
    [
        # End-to-end headers pass as they are, Host included, repeated ones kept in order.
        ([("Host", "fraud.ml.example"), ("Content-Type", "application/json"), ("Accept", "*/*")],
         [("Host", "fraud.ml.example"), ("Content-Type", "application/json"), ("Accept", "*/*")]),
        ([("X-Cohort", "a"), ("Cookie", "x=1"), ("X-Cohort", "b")],
         [("X-Cohort", "a"), ("Cookie", "x=1"), ("X-Cohort", "b")]),
        # The two routing headers, whatever their case.
        ([("X-ModelPilot-Upstream", "10.0.0.1:80"), ("x-modelpilot-target", "ml/fraud/stable"), ("A", "1")],
         [("A", "1")]),
        # Hop-by-hop headers, and the ones a Connection header names.
        ([("Connection", "keep-alive, X-Trace-Hop"), ("Keep-Alive", "timeout=5"), ("X-Trace-Hop", "1"),
          ("TE", "trailers"), ("Trailer", "X-Sum"), ("Transfer-Encoding", "chunked"), ("Upgrade", "h2c"),
          ("Proxy-Authorization", "Basic eA=="), ("Proxy-Connection", "keep-alive"), ("B", "2")],
         [("B", "2")]),
        ([("connection", "X-A"), ("connection", "x-b ,  "), ("X-A", "1"), ("X-B", "2"), ("X-C", "3")],
         [("X-C", "3")]),
        # Recomputed or already done by the activator: the length, and 100-continue.
        ([("Content-Length", "5"), ("Expect", "100-continue"), ("C", "3")], [("C", "3")]),
        ([], []),
    ],
)
def test_request_headers(given: Headers, forwarded: Headers) -> None:
    assert request_headers(given) == forwarded


@pytest.mark.parametrize(
    ("given", "relayed"),
    [
        ([("Content-Type", "application/json"), ("Content-Length", "12"), ("Set-Cookie", "a=1"),
          ("Set-Cookie", "b=2"), ("X-Modelpilot-Pod", "fraud-abc")],
         [("Content-Type", "application/json"), ("Content-Length", "12"), ("Set-Cookie", "a=1"),
          ("Set-Cookie", "b=2"), ("X-Modelpilot-Pod", "fraud-abc")]),
        ([("Transfer-Encoding", "chunked"), ("Connection", "close, X-Hop"), ("X-Hop", "1"), ("Keep-Alive", "t=1"),
          ("Proxy-Authenticate", "Basic"), ("Content-Encoding", "gzip")],
         [("Content-Encoding", "gzip")]),
    ],
)
def test_response_headers(given: Headers, relayed: Headers) -> None:
    assert response_headers(given) == relayed


def test_connection_tokens() -> None:
    assert connection_tokens([("Connection", "Close, X-A"), ("Other", "x-b"), ("CONNECTION", "x-c")]) == {
        "close", "x-a", "x-c"}
