"""The few ASGI helpers the runtime needs: sending JSON or raw parts, reading a bounded body."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

import orjson

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

JSON_HEADERS: Headers = [(b"content-type", b"application/json")]


def header(scope: Scope, name: bytes) -> bytes | None:
    """The request header `name` (lower case, as ASGI servers deliver names), or None."""
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value)
    return None


async def send_json(send: Send, status: int, body: dict[str, Any], headers: Iterable[tuple[bytes, bytes]] = ()) -> None:
    await send_parts(send, status, [*JSON_HEADERS, *headers], [orjson.dumps(body)])


async def send_parts(send: Send, status: int, headers: Headers, parts: Sequence[bytes]) -> None:
    """A response whose body is `parts` in order (a binary response: the JSON header, then tensors)."""
    length = sum(len(part) for part in parts)
    await send(
        {"type": "http.response.start", "status": status, "headers": [*headers, (b"content-length", b"%d" % length)]}
    )
    for index, part in enumerate(parts):
        await send({"type": "http.response.body", "body": part, "more_body": index < len(parts) - 1})
    if not parts:
        await send({"type": "http.response.body", "body": b""})


async def read_body(receive: Receive, limit: int, writable: bool = False) -> bytes | bytearray | None:
    """The whole request body, or None once it passes `limit` bytes. `writable` gives a bytearray,
    so arrays viewing it (binary tensors) are writable without a copy."""
    message = await receive()
    body: bytes = message.get("body", b"")
    if len(body) > limit:
        return None
    if not message.get("more_body"):
        return bytearray(body) if writable else body
    chunks = [body]
    size = len(body)
    while message.get("more_body"):
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return bytearray().join(chunks) if writable else b"".join(chunks)
