"""Where the load generator's requests go (Entry) and its HTTP/1.1 client: one connection per
thread and address, kept alive through a gateway, a new one per request to a ClusterIP."""

from __future__ import annotations

import http.client
import threading
from dataclasses import dataclass


@dataclass(frozen=True)
class Entry:
    """Where requests go now."""

    kind: str  # "gateway" | "service" | "none"
    host: str = ""  # address to connect to
    port: int = 0
    host_header: str | None = None
    keepalive: bool = False
    read_at: float = 0.0
    error: str | None = None

    def describe(self) -> str:
        if self.kind == "none":
            return f"no entry ({self.error})"
        header = f" Host: {self.host_header}" if self.host_header else ""
        return f"{self.kind} {self.host}:{self.port}{header}"


class HttpClient:
    """Requests to an Entry on per-thread connections (one per address)."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._local = threading.local()

    def _connection(self, entry: Entry) -> http.client.HTTPConnection:
        conns: dict[tuple[str, int], http.client.HTTPConnection] = getattr(self._local, "conns", None) or {}
        self._local.conns = conns
        key = (entry.host, entry.port)
        conn = conns.get(key)
        if conn is None:
            conn = conns[key] = http.client.HTTPConnection(entry.host, entry.port, timeout=self.timeout)
        return conn

    def _drop_connection(self, entry: Entry) -> None:
        conn = getattr(self._local, "conns", {}).pop((entry.host, entry.port), None)
        if conn is not None:
            conn.close()

    def request(self, entry: Entry, method: str, path: str, body: bytes | None,
                extra: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        """(status, response headers with lower-case names, body). `extra` headers are sent too,
        except where the entry decides (Host through a gateway, Connection, Content-Type)."""
        own = {"Content-Type": "application/json"} if body is not None else {}
        if entry.host_header:
            own["Host"] = entry.host_header
        if not entry.keepalive:
            own["Connection"] = "close"
        taken = {k.lower() for k in own}
        headers = {k: v for k, v in (extra or {}).items() if k.lower() not in taken} | own
        for attempt in (0, 1):
            conn = self._connection(entry)
            try:
                conn.request(method, path, body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
                found = {k.lower(): v for k, v in response.getheaders()}
                if not entry.keepalive:
                    self._drop_connection(entry)
                return response.status, found, data
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                # A kept-alive connection the server closed meanwhile: retry once on a new one.
                self._drop_connection(entry)
                if attempt or not entry.keepalive:
                    raise
            except Exception:
                self._drop_connection(entry)
                raise
        raise AssertionError("unreachable")
