"""`kubectl modelpilot dashboard`: a local, read-only web page of the rollouts.

A ThreadingHTTPServer on 127.0.0.1 (by default) serves the page and its JSON API
(dashboard_api.py); a thread polls the cluster every `--interval` seconds so the page's charts
have what the dashboard has seen since it started. Only GET is answered (any other method: 405),
and the only requests made to the cluster are lists of ModelDeployments and Events: no writes.
"""

from __future__ import annotations

import argparse
import ipaddress
import sys
import threading
import webbrowser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from modelpilot.cli.dashboard_api import SECURITY_HEADERS, Dashboard, Response, error
from modelpilot.cli.kube import CliError, Cluster

DEFAULT_PORT = 8089
DEFAULT_INTERVAL = 2.0


def loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return address == "localhost"


def _host(address: str) -> str:
    """An address as a URL or Host header names it: an IPv6 one in brackets."""
    return f"[{address}]" if ":" in address else address


def allowed_hosts(address: str, port: int) -> set[str] | None:
    """The Host headers accepted on a loopback address (a page of another site that rebinds its
    name to 127.0.0.1 sends its own name and is refused); None (any) on another address."""
    if not loopback(address):
        return None
    return {f"{host}:{port}" for host in ("127.0.0.1", "localhost", "[::1]", _host(address))}


class Handler(BaseHTTPRequestHandler):
    """GET only; the answers come from the server's Dashboard."""

    server: DashboardServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        hosts = self.server.hosts
        if hosts is not None and self.headers.get("Host") not in hosts:
            self._send(error(403, "unexpected Host header: open the dashboard by the address it printed"))
            return
        try:
            self._send(self.server.dashboard.get(self.path))
        except Exception as err:  # a bug must not take the server down; the page shows the reason
            self._send(error(500, f"{type(err).__name__}: {err}"))

    def _not_allowed(self) -> None:
        # The request's body is never read: close the connection rather than parse it as the next request.
        self.close_connection = True
        self._send(error(405, f"{self.command} is not allowed: the dashboard is read-only"), allow=True)

    def __getattr__(self, name: str) -> Any:
        # http.server looks up do_<METHOD>; every method but GET is answered 405 (not 501).
        if name.startswith("do_"):
            return self._not_allowed
        raise AttributeError(name)

    def _send(self, response: Response, allow: bool = False) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        self.send_header("Cache-Control", response.cache)
        for name, value in SECURITY_HEADERS:
            self.send_header(name, value)
        if allow:
            self.send_header("Allow", "GET")
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(response.body)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Quiet: the page polls every few seconds; only server errors reach stderr."""
        if str(code).startswith("5"):
            super().log_request(code, size)


class DashboardServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: str, port: int, dashboard: Dashboard) -> None:
        super().__init__((address, port), Handler)
        self.dashboard = dashboard
        self.hosts = allowed_hosts(address, self.server_address[1])

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{_host(str(host))}:{port}/"


def poll_once(dashboard: Dashboard) -> None:
    """One poll; a failure is kept for the page (the objects of the last good poll stay)."""
    try:
        dashboard.refresh()
    except CliError as err:
        dashboard.fail(err.message)
    except Exception as err:  # whatever else went wrong must not stop the polling
        dashboard.fail(f"{type(err).__name__}: {err}")


def poll(dashboard: Dashboard, interval: float, stop: threading.Event) -> None:
    while not stop.wait(interval):
        poll_once(dashboard)


def cmd_dashboard(cluster: Cluster, args: argparse.Namespace, namespace: str) -> int:
    scope = None if args.all_namespaces else namespace
    interval = max(0.5, args.interval)
    dashboard = Dashboard(cluster, scope, events_max_age=interval)
    dashboard.refresh()  # the first poll's failure ends the command with the reason
    try:
        server = DashboardServer(args.address, args.port, dashboard)
    except OSError as err:
        raise CliError(f"cannot listen on {args.address}:{args.port}: {err.strerror or err}") from None
    stop = threading.Event()
    poller = threading.Thread(target=poll, args=(dashboard, interval, stop), daemon=True,
                              name="dashboard-poll")
    poller.start()
    where = "all namespaces" if scope is None else f"namespace {scope}"
    print(f"dashboard of {where} at {server.url} (read-only; Ctrl-C stops)", flush=True)
    if not loopback(args.address):
        print(f"warning: listening on {args.address}: anyone who reaches it sees the rollouts", file=sys.stderr)
    if args.open:
        webbrowser.open(server.url)
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        server.server_close()
    return 0


def add_parser(sub: Any, common: Any) -> None:
    """`dashboard` under the plugin's subcommands; `common` adds -n/--kubeconfig/--context."""
    board = sub.add_parser("dashboard", help="a local read-only web page of the rollouts: weights, analyses "
                           "over time, events, drift, fleet, scale to zero")
    common(board, True)
    board.add_argument("-A", "--all-namespaces", action="store_true", help="every namespace")
    board.add_argument("--port", type=int, default=DEFAULT_PORT,
                       help=f"port to listen on ({DEFAULT_PORT}; 0 picks a free one)")
    board.add_argument("--address", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    board.add_argument("--interval", type=float, default=DEFAULT_INTERVAL,
                       help=f"poll the cluster every N seconds ({DEFAULT_INTERVAL:g})")
    board.add_argument("--open", action="store_true", help="open the page in the default browser")
    board.set_defaults(func=cmd_dashboard)
