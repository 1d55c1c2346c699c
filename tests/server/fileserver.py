"""What the fetch tests (test_storage.py, test_fetch_safety.py) share: a local file server and a
listing of what a fetch left in a directory."""

from __future__ import annotations

import http.server
import ssl
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path


def listing(directory: Path) -> list[str]:
    """Every path under `directory`, relative and sorted; [] when it does not exist."""
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*")) if directory.exists() else []


def serve_files(
    handler: type[http.server.SimpleHTTPRequestHandler], files: Path, context: ssl.SSLContext | None = None
) -> Iterator[str]:
    """For a fixture: serves `files` with `handler` on loopback (https with `context`), yields the
    base URL, and stops the server when resumed."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(files)))
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"{'https' if context else 'http'}://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
