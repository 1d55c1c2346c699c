"""Which headers cross the activator (pure): everything end-to-end, Host included; not the
hop-by-hop ones (RFC 9110 7.6.1, plus those a Connection header names) nor the routing headers.
"""

from __future__ import annotations

from collections.abc import Iterable

from modelpilot.activator.target import TARGET_HEADER, UPSTREAM_HEADER

HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization",
    "te", "trailer", "transfer-encoding", "upgrade",
})  # fmt: skip
# Recomputed for the body as forwarded; and the body is already read, so nothing waits for a
# 100 Continue any more.
_REQUEST_ONLY = frozenset({"content-length", "expect", UPSTREAM_HEADER, TARGET_HEADER})


def connection_tokens(headers: Iterable[tuple[str, str]]) -> set[str]:
    """The header names the Connection headers list (they are hop-by-hop for this connection)."""
    tokens: set[str] = set()
    for name, value in headers:
        if name.lower() == "connection":
            tokens.update(t.strip().lower() for t in value.split(",") if t.strip())
    return tokens


def request_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The client's headers as forwarded upstream, in order, repeated ones kept."""
    items = list(headers)
    drop = HOP_BY_HOP | _REQUEST_ONLY | connection_tokens(items)
    return [(name, value) for name, value in items if name.lower() not in drop]


def response_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The upstream's response headers as sent back (Content-Length kept: the body is relayed as is)."""
    items = list(headers)
    drop = HOP_BY_HOP | connection_tokens(items)
    return [(name, value) for name, value in items if name.lower() not in drop]
