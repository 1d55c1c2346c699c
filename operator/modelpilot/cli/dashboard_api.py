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
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

from modelpilot.api.models import PLURAL, SINGULAR
from modelpilot.cli import dashboard_model, viewmodel
from modelpilot.cli.kube import CliError

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


def _finite(value: Any) -> Any:
    """JSON has no NaN or infinity: such a float becomes null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def json_response(body: Any, status: int = 200) -> Response:
    return Response(status, json.dumps(_finite(body), separators=(",", ":")).encode(), "application/json")


def error(status: int, message: str) -> Response:
    return json_response({"error": message}, status)


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Dashboard:
    """The objects of the last poll, what was seen over time, and the GET handlers."""

    def __init__(self, reader: Reader, namespace: str | None, clock: Callable[[], dt.datetime] = utc_now,
                 static: Path = STATIC) -> None:
        self.reader, self.namespace, self.clock = reader, namespace, clock
        self.static = {p.name: p for p in static.iterdir() if p.is_file()} if static.is_dir() else {}
        self.history = dashboard_model.History()
        self._lock = threading.Lock()
        self._items: dict[dashboard_model.Key, dict[str, Any]] = {}
        self._updated: dt.datetime | None = None
        self._error: str | None = None

    # -- polling ---------------------------------------------------------------------------------
    def refresh(self, raise_errors: bool = False) -> None:
        """List the objects and record them; a failure is kept for the page (and raised when asked:
        the first poll, so a dashboard that cannot read anything exits with the reason)."""
        try:
            items = self.reader.list(self.namespace)
        except CliError as err:
            self.fail(err.message)
            if raise_errors:
                raise
            return
        now = self.clock()
        shown, unreadable = [], []
        for md in items:
            try:
                dashboard_model.list_entry(md, now)
            except Exception as err:  # a status no view can read (another release's?): leave it out, say so
                unreadable.append(f"cannot show {'/'.join(viewmodel.ref(md))}: {type(err).__name__}: {err}")
            else:
                shown.append(md)
        with self._lock:
            self._items = {viewmodel.ref(md): md for md in shown}
            for md in shown:
                self.history.record(md, now)
            self.history.forget(set(self._items))
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
        return {"namespace": self.namespace, "now": dashboard_model.stamp(now), "error": self._error,
                "updated": None if self._updated is None else dashboard_model.stamp(self._updated)}

    def list_response(self) -> Response:
        with self._lock:
            now = self.clock()
            items = [dashboard_model.list_entry(md, now) for md in self._items.values()]
            state = self._state()
        items.sort(key=lambda item: (item["namespace"], item["name"]))
        return json_response({**state, "items": items})

    def detail_response(self, namespace: str, name: str) -> Response:
        with self._lock:
            md = self._items.get((namespace, name))
            series = self.history.series((namespace, name))
            state = self._state()
        if md is None:
            where = "" if self.namespace in (None, namespace) else f" (the dashboard shows namespace {self.namespace})"
            return error(404, f"{SINGULAR} {namespace}/{name} not found{where}")
        events, events_error = self._events(md)
        body = dashboard_model.detail(md, events, series, self.clock(), events_error)
        return json_response({**state, **body})

    def _events(self, md: dict[str, Any]) -> tuple[list[dict[str, Any]] | None, str | None]:
        """The object's Events; None and no error when not allowed (the notes say so), None and the
        reason when they could not be read."""
        try:
            return self.reader.events(md), None
        except CliError as err:
            return None, None if "not allowed" in err.message else err.message
