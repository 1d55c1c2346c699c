"""The dashboard's JSON API and HTTP server (cli/dashboard_api.py, cli/dashboard.py) with a fake
reader in place of the cluster: what each GET answers, what is kept between polls, every other
method refused, and the page's assets self-contained."""

from __future__ import annotations

import datetime as dt
import http.client
import re
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from modelpilot.cli import plugin
from modelpilot.cli.dashboard import DashboardServer, allowed_hosts, cmd_dashboard, poll, poll_once
from modelpilot.cli.dashboard_api import API, STATIC, Dashboard
from modelpilot.cli.kube import CliError
from tests.unit.test_dashboard_model import ANALYSES, DRIFT, mdep

START = dt.datetime(2026, 11, 2, 12, 0, tzinfo=dt.UTC)


class FakeReader:
    """ModelDeployments set by the test; every call recorded (a reader has no way to write)."""

    def __init__(self, *items: dict[str, Any]) -> None:
        self.items = list(items)
        self.calls: list[tuple[str, Any]] = []
        self.list_error: CliError | None = None
        self.events_error: CliError | None = None

    def list(self, namespace: str | None) -> list[dict[str, Any]]:
        self.calls.append(("list", namespace))
        if self.list_error:
            raise self.list_error
        return [dict(md) for md in self.items]

    def events(self, md: dict[str, Any]) -> list[dict[str, Any]]:
        self.calls.append(("events", md["metadata"]["name"]))
        if self.events_error:
            raise self.events_error
        return [{"time": "2026-11-02T11:40:00Z", "type": "Normal", "reason": "CanaryStarted", "message": "started",
                 "count": 1}]


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> dt.datetime:
        return self.now

    def tick(self, seconds: int = 2) -> None:
        self.now += dt.timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def board(reader: FakeReader, clock: Clock, namespace: str | None = "ml") -> Dashboard:
    dashboard = Dashboard(reader, namespace, clock=clock)
    dashboard.refresh()
    return dashboard


# ------------------------------------------------------------------------------------ the API


def test_list_is_sorted_and_says_when_it_was_read(clock: Clock) -> None:
    reader = FakeReader(mdep({}, name="zeta"), mdep(None, name="alpha"))
    answer = board(reader, clock, namespace=None).get(API)
    assert answer.status == 200 and answer.content_type == "application/json" and answer.cache == "no-store"
    body = answer.json()
    assert [i["name"] for i in body["items"]] == ["alpha", "zeta"]
    assert body["items"][1]["weight"] == 25 and body["items"][1]["step"] == "2/3"
    assert body["items"][0]["weight"] is None and body["items"][0]["age"] == "120m"
    assert (body["namespace"], body["updated"], body["error"]) == (None, "2026-11-02T12:00:00Z", None)
    assert reader.calls == [("list", None)]


def test_detail_has_the_weights_seen_over_polls(clock: Clock) -> None:
    md = mdep({"weight": 10, "step": 0, "analyses": ANALYSES[:1]})
    reader = FakeReader(md)
    dashboard = board(reader, clock)
    for weight, step in ((10, 0), (25, 1), (50, 2)):
        md["status"]["canary"].update(weight=weight, step=step)
        clock.tick()
        dashboard.refresh()
    md["status"]["canary"]["analyses"] = ANALYSES[1:]
    clock.tick()
    dashboard.refresh()
    body = dashboard.get(f"{API}/ml/fraud").json()
    assert [s["weight"] for s in body["series"]["weight"]] == [10, 25, 50]
    assert [s["time"] for s in body["series"]["weight"]] == ["2026-11-02T12:00:00Z", "2026-11-02T12:00:04Z",
                                                            "2026-11-02T12:00:06Z"]
    error_rate = next(m for m in body["series"]["metrics"] if m["metric"] == "error-rate")
    assert [p["value"] for p in error_rate["points"]] == [2.5, 0.1]
    assert body["head"]["canary"]["weight"] == 50 and body["now"] == "2026-11-02T12:00:08Z"
    assert body["events"][0]["reason"] == "CanaryStarted"
    assert {call[0] for call in reader.calls} == {"list", "events"}  # reads only


@pytest.mark.parametrize(("path", "status", "message"), [
    (f"{API}/ml/nope", 404, "modeldeployment ml/nope not found"),
    (f"{API}/other/fraud", 404, "modeldeployment other/fraud not found (the dashboard shows namespace ml)"),
    (f"{API}/ml", 404, "no such page: /api/modeldeployments/ml"),
    (f"{API}/ml/fraud/x", 404, "no such page: /api/modeldeployments/ml/fraud/x"),
    (f"{API}//fraud", 404, "no such page: /api/modeldeployments//fraud"),
    ("/api", 404, "no such page: /api"),
    ("/static/../kube.py", 404, "no such file: ../kube.py"),
    ("/static/%2e%2e/kube.py", 404, "no such file: %2e%2e/kube.py"),
    ("/static/", 404, "no such file: "),
])
def test_unknown_paths_are_404_with_a_reason(clock: Clock, path: str, status: int, message: str) -> None:
    answer = board(FakeReader(mdep({})), clock).get(path)
    assert (answer.status, answer.json()) == (status, {"error": message})


@pytest.mark.parametrize(("path", "content_type", "needle"), [
    ("/", "text/html; charset=utf-8", b'<script type="module" src="/static/dashboard.js">'),
    ("/index.html?x=1", "text/html; charset=utf-8", b"<title>modelpilot dashboard</title>"),
    ("/static/dashboard.js", "text/javascript; charset=utf-8", b'const API = "/api/modeldeployments";'),
    ("/static/dashboard.css", "text/css; charset=utf-8", b"#weight-value"),
    (f"{API}/ml/fraud?cache=1", "application/json", b'"name":"fraud"'),
])
def test_page_and_assets(clock: Clock, path: str, content_type: str, needle: bytes) -> None:
    answer = board(FakeReader(mdep({})), clock).get(path)
    assert answer.status == 200 and answer.content_type == content_type and needle in answer.body


def test_assets_are_self_contained() -> None:
    """No CDN, no web font, no inline script or style: the page must work without internet and
    under its Content-Security-Policy."""
    files = {p.name: p.read_text() for p in STATIC.iterdir()}
    assert set(files) == {"index.html", "dashboard.js", "dashboard.css"}
    urls = {url for text in files.values() for url in re.findall(r"https?://[^\s\"')]+", text)}
    assert urls == {"http://www.w3.org/2000/svg"}  # the SVG namespace, never fetched
    html = files["index.html"]
    assert re.findall(r'(?:src|href)="([^"]+)"', html) == ["data:,", "/static/dashboard.css", "/static/dashboard.js"]
    assert "<style" not in html and "style=" not in html and re.search(r"<script(?![^>]*src=)", html) is None
    assert "@import" not in files["dashboard.css"] and "url(" not in files["dashboard.css"]
    assert "innerHTML" not in files["dashboard.js"] and "eval(" not in files["dashboard.js"]


def test_a_failed_poll_keeps_the_last_objects_and_says_why(clock: Clock) -> None:
    reader = FakeReader(mdep({}))
    dashboard = board(reader, clock)
    reader.list_error = CliError("cannot reach the cluster at https://10.0.0.1:6443: connection refused")
    clock.tick()
    poll_once(dashboard)
    body = dashboard.get(API).json()
    assert body["error"] == "cannot reach the cluster at https://10.0.0.1:6443: connection refused"
    assert [i["name"] for i in body["items"]] == ["fraud"] and body["updated"] == "2026-11-02T12:00:00Z"
    reader.list_error = None
    poll_once(dashboard)
    assert dashboard.get(API).json()["error"] is None


def test_the_first_poll_fails_loudly(clock: Clock) -> None:
    reader = FakeReader()
    reader.list_error = CliError("the ModelDeployment CRD is not installed")
    with pytest.raises(CliError, match="CRD"):
        Dashboard(reader, "ml", clock=clock).refresh()


@pytest.mark.parametrize(("broken", "reason"), [
    (mdep({"weight": "a lot"}, name="broken"), "ValueError: invalid literal for int() with base 10: 'a lot'"),
    # The list row can be made, the detail cannot: left out all the same.
    (mdep(None, name="broken", drift={**DRIFT, "features": [{"name": "x", "bins": [{"reference": "most"}]}]}),
     "ValueError: could not convert string to float: 'most'"),
])
def test_an_object_no_view_can_read_is_left_out_with_the_reason(clock: Clock, broken: dict[str, Any],
                                                                 reason: str) -> None:
    reader = FakeReader(mdep({}), broken)
    dashboard = board(reader, clock)
    body = dashboard.get(API).json()
    assert [i["name"] for i in body["items"]] == ["fraud"]
    assert body["error"] == f"cannot show ml/broken: {reason}"
    assert dashboard.get(f"{API}/ml/broken").status == 404 and dashboard.get(f"{API}/ml/fraud").status == 200


def test_polling_goes_on_after_any_failure(clock: Clock) -> None:
    reader = FakeReader(mdep({}))
    dashboard = board(reader, clock)
    stop = threading.Event()

    def list_once(namespace: str | None) -> list[dict[str, Any]]:
        stop.set()  # this poll is the last
        raise RuntimeError("unexpected")
    reader.list = list_once  # type: ignore[method-assign]
    poll(dashboard, 0, stop)
    body = dashboard.get(API).json()
    assert body["error"] == "RuntimeError: unexpected" and body["items"][0]["weight"] == 25


def test_a_deleted_object_is_gone_with_its_history(clock: Clock) -> None:
    reader = FakeReader(mdep({}), mdep({}, name="other"))
    dashboard = board(reader, clock)
    reader.items = reader.items[1:]
    dashboard.refresh()
    assert dashboard.get(f"{API}/ml/fraud").status == 404
    assert dashboard.history.series(("ml", "fraud"))["weight"] == []


@pytest.mark.parametrize(("error", "events_error", "note"), [
    ("not allowed to list events in namespace ml (context dev): forbidden", None,
     "events: not allowed to list events in this namespace"),
    ("cannot reach the cluster at https://x: timed out", "cannot reach the cluster at https://x: timed out", None),
])
def test_events_that_cannot_be_read(clock: Clock, error: str, events_error: str | None, note: str | None) -> None:
    reader = FakeReader(mdep({}))
    reader.events_error = CliError(error)
    body = board(reader, clock).get(f"{API}/ml/fraud").json()
    assert body["events"] is None and body["eventsError"] == events_error
    assert (note in body["notes"]) if note else not any(n.startswith("events:") for n in body["notes"])


def test_events_are_read_again_only_once_they_are_an_interval_old(clock: Clock) -> None:
    reader = FakeReader(mdep({}), mdep({}, name="other"))
    dashboard = Dashboard(reader, "ml", clock=clock, events_max_age=2)
    dashboard.refresh()

    def events_read() -> list[Any]:
        return [name for call, name in reader.calls if call == "events"]
    for _ in range(3):  # pages polling the same object
        assert dashboard.get(f"{API}/ml/fraud").json()["events"][0]["reason"] == "CanaryStarted"
    assert events_read() == ["fraud"]
    dashboard.get(f"{API}/ml/other")
    clock.tick(1)
    dashboard.get(f"{API}/ml/fraud")
    assert events_read() == ["fraud", "other"]
    clock.tick(1)
    dashboard.get(f"{API}/ml/fraud")
    assert events_read() == ["fraud", "other", "fraud"]
    reader.events_error = CliError("cannot reach the cluster at https://x: timed out")  # a failure is kept as long
    clock.tick(2)
    assert dashboard.get(f"{API}/ml/fraud").json()["eventsError"] == "cannot reach the cluster at https://x: timed out"
    reader.events_error = None
    assert dashboard.get(f"{API}/ml/fraud").json()["events"] is None
    assert events_read() == ["fraud", "other", "fraud", "fraud"]


def test_a_deleted_object_is_read_afresh_when_it_comes_back(clock: Clock) -> None:
    reader = FakeReader(mdep({}))
    dashboard = board(reader, clock)
    dashboard.get(f"{API}/ml/fraud")
    reader.items = []
    dashboard.refresh()
    reader.items = [mdep({})]
    dashboard.refresh()
    dashboard.get(f"{API}/ml/fraud")
    assert [name for call, name in reader.calls if call == "events"] == ["fraud", "fraud"]


# ------------------------------------------------------------------------------------ HTTP


@pytest.fixture
def server(clock: Clock) -> Iterator[DashboardServer]:
    served = DashboardServer("127.0.0.1", 0, board(FakeReader(mdep({})), clock))
    thread = threading.Thread(target=served.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield served
    served.shutdown()
    served.server_close()
    thread.join()


def request(server: DashboardServer, method: str, path: str, host: str | None = None,
            body: bytes | None = None) -> http.client.HTTPResponse:
    port = server.server_address[1]
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"Host": host or f"127.0.0.1:{port}"}
    connection.request(method, path, body=body, headers=headers)
    return connection.getresponse()


def test_get_over_http_with_security_headers(server: DashboardServer) -> None:
    answer = request(server, "GET", API)
    assert answer.status == 200 and b'"name":"fraud"' in answer.read()
    assert "script-src 'self'" in answer.headers["Content-Security-Policy"]
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    page = request(server, "GET", "/")
    assert page.status == 200 and page.headers["Content-Type"] == "text/html; charset=utf-8"


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE"])
def test_every_other_method_is_405(server: DashboardServer, method: str) -> None:
    answer = request(server, method, f"{API}/ml/fraud", body=b'{"spec": {"paused": true}}')
    assert answer.status == 405 and answer.headers["Allow"] == "GET"
    if method != "HEAD":
        assert b"read-only" in answer.read()


@pytest.mark.parametrize(("host", "status"), [
    ("localhost:{port}", 200), ("127.0.0.1:{port}", 200), ("evil.example:{port}", 403), ("127.0.0.1:1", 403),
])
def test_host_header_is_checked_on_loopback(server: DashboardServer, host: str, status: int) -> None:
    answer = request(server, "GET", API, host=host.format(port=server.server_address[1]))
    assert answer.status == status


def test_a_handler_failure_is_a_500_and_the_server_lives_on(server: DashboardServer, monkeypatch:
                                                            pytest.MonkeyPatch) -> None:
    def broken(path: str) -> Any:
        raise KeyError("boom")
    monkeypatch.setattr(server.dashboard, "get", broken)
    answer = request(server, "GET", API)
    assert answer.status == 500 and b"KeyError" in answer.read()
    monkeypatch.undo()
    assert request(server, "GET", API).status == 200


@pytest.mark.parametrize(("address", "hosts"), [
    ("127.0.0.1", {"127.0.0.1:80", "localhost:80", "[::1]:80"}),
    ("::1", {"127.0.0.1:80", "localhost:80", "[::1]:80"}),
    ("127.0.0.2", {"127.0.0.1:80", "localhost:80", "[::1]:80", "127.0.0.2:80"}),
    ("0.0.0.0", None),
    ("10.1.2.3", None),
])
def test_allowed_hosts(address: str, hosts: set[str] | None) -> None:
    assert allowed_hosts(address, 80) == hosts


# ------------------------------------------------------------------------------------ the command


def test_parser() -> None:
    parser = plugin.build_parser()
    args = parser.parse_args(["dashboard"])
    assert (args.port, args.address, args.interval, args.open, args.all_namespaces) == (8089, "127.0.0.1", 2, False,
                                                                                         False)
    args = parser.parse_args(["dashboard", "-A", "--port", "0", "--address", "::1", "--open", "-n", "ml",
                              "--interval", "1"])
    assert (args.port, args.address, args.interval, args.open, args.all_namespaces, args.namespace) == (
        0, "::1", 1, True, True, "ml")
    assert args.func is cmd_dashboard


def test_command_exits_with_the_reason_when_nothing_can_be_read() -> None:
    reader = FakeReader()
    reader.list_error = CliError("not allowed to list modeldeployments.modelpilot.io in namespace ml")
    args = plugin.build_parser().parse_args(["dashboard", "--port", "0"])
    with pytest.raises(CliError, match="not allowed to list"):
        cmd_dashboard(reader, args, "ml")  # type: ignore[arg-type]
