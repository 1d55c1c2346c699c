"""The runtime's ASGI app driven in-process (no sockets), and its /metrics parsed: for the drift and
feedback tests, which need an injected clock and many requests fast."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from prometheus_client.parser import text_string_to_metric_families

from modelpilot.server.app import InferenceApp

Samples = dict[str, list[tuple[dict[str, str], float]]]


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


def call(
    app: InferenceApp, method: str, path: str, body: Any = b"", headers: Sequence[tuple[str, str]] = ()
) -> Answer:
    """One request through the app; a body that is not bytes is sent as JSON."""
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": raw, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": method, "path": path,
             "headers": [(k.lower().encode(), v.encode()) for k, v in headers]}  # fmt: skip
    asyncio.run(app(scope, receive, send))
    answer_headers = {k.decode(): v.decode() for k, v in sent[0].get("headers", [])}
    return Answer(sent[0]["status"], answer_headers, b"".join(m.get("body", b"") for m in sent[1:]))


def samples(app: InferenceApp) -> Samples:
    """/metrics as {sample name: [(labels, value)]}."""
    answer = call(app, "GET", "/metrics")
    assert answer.status == 200
    out: Samples = defaultdict(list)
    for family in text_string_to_metric_families(answer.body.decode()):
        for sample in family.samples:
            out[sample.name].append((dict(sample.labels), sample.value))
    return out


def by_label(series: list[tuple[dict[str, str], float]], *keys: str) -> dict[Any, float]:
    """{label value (or tuple of values): sample value} of one metric's series."""
    out: dict[Any, float] = {}
    for labels, value in series:
        key = tuple(labels[k] for k in keys)
        out[key[0] if len(keys) == 1 else key] = value
    return out


def single(series: list[tuple[dict[str, str], float]]) -> float:
    assert len(series) == 1, series
    return series[0][1]


class FakeClock:
    """A monotonic clock the test moves by hand (`clock.now = ...`)."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
