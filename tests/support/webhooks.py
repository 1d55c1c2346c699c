"""A real webhook receiver for tests: a ThreadingHTTPServer on loopback that records every POST
and answers from a script, optionally holding requests until the test lets them go."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Received:
    path: str
    content_type: str
    body: bytes
    status: int  # what the receiver answered

    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    """`answer(path, n)` gives the status of the n-th request (0-based) to `path`; default 200.
    While held, requests wait (counted in `waiting`) until `release()`; `received` lists the
    answered ones, in the order they were answered."""

    def __init__(self, answer: Callable[[str, int], int] | None = None) -> None:
        self.answer = answer or (lambda path, n: 200)
        self.received: list[Received] = []
        self.cond = threading.Condition()
        self.held = False
        self.waiting = 0  # requests being held right now
        self._counts: dict[str, int] = {}
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status = receiver._record(self.path, self.headers.get("Content-Type", ""), body)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def _record(self, path: str, content_type: str, body: bytes) -> int:
        with self.cond:
            n = self._counts.get(path, 0)
            self._counts[path] = n + 1
            status = self.answer(path, n)
            self.waiting += 1
            self.cond.notify_all()
            self.cond.wait_for(lambda: not self.held)
            self.waiting -= 1
            self.received.append(Received(path, content_type, body, status))
            self.cond.notify_all()
            return status

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def hold(self) -> None:
        with self.cond:
            self.held = True

    def release(self) -> None:
        with self.cond:
            self.held = False
            self.cond.notify_all()

    def wait(self, probe: Callable[[Receiver], bool], timeout: float = 30) -> None:
        """Wait until `probe(self)` holds (under the receiver's lock)."""
        with self.cond:
            if not self.cond.wait_for(lambda: probe(self), timeout=timeout):
                raise AssertionError(f"receiver: condition not met within {timeout}s; got {self.received}")

    def answered(self, path: str | None = None) -> list[Received]:
        with self.cond:
            return [r for r in self.received if path is None or r.path == path]


@contextmanager
def receiver(answer: Callable[[str, int], int] | None = None) -> Iterator[Receiver]:
    server = Receiver(answer)
    server.thread.start()
    try:
        yield server
    finally:
        server.release()
        server.server.shutdown()
        server.server.server_close()
