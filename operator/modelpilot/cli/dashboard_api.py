"""The dashboard's JSON API and static files, without HTTP: `Dashboard.get(path)` answers a GET
with a `Response`; `Dashboard.refresh()` polls the cluster through a `Reader` (the plugin's
`Cluster`, or a fake in the tests) and records what it saw. Read-only: a Reader only lists.

    GET /                                     the page (static/index.html)
    GET /static/NAME                          its script and style sheet
    GET /api/modeldeployments                 the list, as `kubectl modelpilot list` has it
    GET /api/modeldeployments/NS/NAME         one object: head, analyses with their history,
                                              conditions, events, drift, fleet, scale to zero, experiment
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

from modelpilot.api.models import PLURAL, SINGULAR
from modelpilot.cli import dashboard_model, viewmodel
from modelpilot.cli.kube import CliError, events_or_none
from modelpilot.times import stamp

STATIC = Path(__file__).with_name("static")
CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                 ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml", ".png": "image/png"}
# Only this origin's script and style, no inline code, no frames: the page shows cluster data.
SECURITY_HEADERS = (
    ("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                                "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
)
API = f"/api/{PLURAL}"
EVENTS_MAX_AGE = 2.0  # seconds an object's Events are reused for (the plugin's --interval)
NO_SERIES: dict[str, Any] = {"weight": [], "metrics": []}


class Reader(Protocol):
    """What the dashboard reads: ModelDeployments (None: every namespace) and their Events."""

    def list(self, namespace: str | None) -> list[dict[str, Any]]: ...

    def events(self, md: dict[str, Any]) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    content_type: str
    cache: str = "no-store"

    def json(self) -> Any:
        return json.loads(self.body)


def json_response(body: Any, status: int = 200) -> Response:
    # A status holds no NaN or infinity (JSON has none); should one appear, this fails (a 500) rather
    # than send JavaScript-only tokens.
    return Response(status, json.dumps(body, separators=(",", ":"), allow_nan=False).encode(), "application/json")


def error(status: int, message: str) -> Response:
    return json_response({"error": message}, status)


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class Shown:
    """An object of the last poll, with its viewmodel.list_item (computed once per poll)."""

    md: dict[str, Any]
    item: dict[str, Any]


@dataclass(frozen=True)
class ReadEvents:
    """An object's Events as last read: None and no error when not allowed, None and the reason
    when they could not be read."""

    at: dt.datetime
    events: list[dict[str, Any]] | None
    error: str | None


class Dashboard:
    """The objects of the last poll, what was seen over time, and the GET handlers. An object's
    Events are read on a GET of it, at most once per `events_max_age` seconds."""

    def __init__(self, reader: Reader, namespace: str | None, clock: Callable[[], dt.datetime] = utc_now,
                 static: Path = STATIC, events_max_age: float = EVENTS_MAX_AGE) -> None:
        self.reader, self.namespace, self.clock = reader, namespace, clock
        self.static = {p.name: p for p in static.iterdir() if p.is_file()} if static.is_dir() else {}
        self.history = dashboard_model.History()
        self.events_max_age = events_max_age
        self._lock = threading.Lock()
        self._shown: dict[dashboard_model.Key, Shown] = {}
        self._events: dict[dashboard_model.Key, ReadEvents] = {}
        self._updated: dt.datetime | None = None
        self._error: str | None = None

    # -- polling ---------------------------------------------------------------------------------
    def refresh(self) -> None:
        """List the objects and record them. A failure to list is raised (`dashboard.poll` keeps it
        for the page; the first poll's ends the command). An object whose list row or detail
        cannot be made (a status of another release?) is left out, and the page says why."""
        items = self.reader.list(self.namespace)
        now = self.clock()
        shown: dict[dashboard_model.Key, Shown] = {}
        unreadable = []
        for md in items:
            try:
                item = viewmodel.list_item(md)
                dashboard_model.detail(md, None, NO_SERIES, now, item=item)  # what a GET of it would make
            except Exception as err:
                unreadable.append(f"cannot show {'/'.join(viewmodel.ref(md))}: {type(err).__name__}: {err}")
            else:
                shown[viewmodel.ref(md)] = Shown(md, item)
        with self._lock:
            self._shown = shown
            for entry in shown.values():
                self.history.record(entry.md, entry.item, now)
            self.history.forget(set(shown))
            self._events = {key: read for key, read in self._events.items() if key in shown}
            self._updated, self._error = now, "; ".join(unreadable) or None

    def fail(self, message: str) -> None:
        """Keep the objects of the last good poll; the page shows why this one failed."""
        with self._lock:
            self._error = message

    # -- GET ---------------------------------------------------------------------------------------
    def get(self, target: str) -> Response:
        path = urlsplit(target).path
        if path in ("/", "/index.html"):
            return self._file("index.html")
        if path.startswith("/static/"):
            return self._file(path.removeprefix("/static/"))
        if path == API:
            return self.list_response()
        if path.startswith(API + "/"):
            parts = [unquote(p) for p in path.removeprefix(API + "/").split("/")]
            if len(parts) == 2 and all(parts):
                return self.detail_response(parts[0], parts[1])
        return error(404, f"no such page: {path}")

    def _file(self, name: str) -> Response:
        file = self.static.get(name)  # only the files shipped beside the package: no path is ever joined
        if file is None:
            return error(404, f"no such file: {name}")
        return Response(200, file.read_bytes(), CONTENT_TYPES.get(file.suffix, "application/octet-stream"),
                        cache="no-cache")

    def _state(self) -> dict[str, Any]:
        now = self.clock()
        return {"namespace": self.namespace, "now": stamp(now), "error": self._error,
                "updated": None if self._updated is None else stamp(self._updated)}

    def list_response(self) -> Response:
        with self._lock:
            now = self.clock()
            items = [dashboard_model.list_entry(entry.item, now) for entry in self._shown.values()]
            state = self._state()
        items.sort(key=lambda item: (item["namespace"], item["name"]))
        return json_response({**state, "items": items})

    def detail_response(self, namespace: str, name: str) -> Response:
        with self._lock:
            entry = self._shown.get((namespace, name))
            series = self.history.series((namespace, name))
            state = self._state()
        if entry is None:
            where = "" if self.namespace in (None, namespace) else f" (the dashboard shows namespace {self.namespace})"
            return error(404, f"{SINGULAR} {namespace}/{name} not found{where}")
        read = self._read_events((namespace, name), entry.md)
        body = dashboard_model.detail(entry.md, read.events, series, self.clock(), read.error, item=entry.item)
        return json_response({**state, **body})

    def _read_events(self, key: dashboard_model.Key, md: dict[str, Any]) -> ReadEvents:
        """The object's Events, read again once the last read is `events_max_age` old: every open
        page asks every couple of seconds."""
        now = self.clock()
        with self._lock:
            last = self._events.get(key)
        if last is not None and (now - last.at).total_seconds() < self.events_max_age:
            return last
        try:
            read = ReadEvents(now, events_or_none(self.reader, md), None)
        except CliError as err:
            read = ReadEvents(now, None, err.message)
        with self._lock:
            if key in self._shown:  # still there: a deleted object's Events are not kept
                self._events[key] = read
        return read
