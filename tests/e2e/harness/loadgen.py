"""LoadGenerator: Open Inference Protocol v2 traffic through the cluster's real data plane.

It routes nothing itself. Like a client, it only picks its entry point, re-resolved every
`poll_interval` seconds (a DNS lookup's stand-in):

- gateway: when the ModelDeployment publishes an HTTPRoute `<name>`, requests go to the
  gateway's listener (Envoy Gateway, `gateway=(host, port)`) with the route's first hostname as
  the Host header, on kept-alive connections (envoy splits by weight per request);
- service: otherwise to the ClusterIP of the Service `<name>` (kube-proxy's rules pick an
  endpoint), on a new connection per request, since kube-proxy balances connections;
- local (`local=True`, for edge targets): each pod's own local clients. Edge devices are reached
  by clients on the device itself, not through a gateway or Service: every request goes straight
  to one serving pod's `podIP:port`, round robin over the pods the bridge runs whose process
  answers its readiness probe (re-read every `poll_interval`), so each pod gets an even share.
  Pods on a node that is not Ready (cut off, harness.edgenodes) still answer, as a disconnected
  device serves its local clients; `include_partitioned=False` leaves them out.

Which pod answered comes back in the runtime's `x-modelpilot-pod` response header; its track
and version come from the pod's labels (the bridge remembers every pod it has seen). A request
that no pod answered (the gateway's own 503 when a backend has no endpoint, a refused
connection) has the track `none`.

Requests are released open-loop at `rate` per second to `workers` threads. When `max_in_flight`
requests are queued or running, the next one is `dropped` (track `none`) rather than queued
without bound behind a slow model. Every request is recorded with its time, track, pod and
outcome: an HTTP status code, `dropped`, `no-entry` (nothing to send to yet) or
`error:<ExceptionName>` (connection errors and timeouts are counted, never raised).

Per-request headers: `headers(seq)` gives the extra headers of the request with sequence number
`seq` (0, 1, 2, ... in release order, dropped ones included); `set_headers()` swaps it mid-run.
A payload object with a `body(inputs, request)` method builds each request's body knowing the
request (its seq and headers), e.g. an id to send feedback for, or a segment's own data.
Each Request keeps the headers and the `user` that `user_of(headers)` names (e.g. the value of a
sticky header or cookie). `on_answer(request)` is called once for every request a pod answered,
when its outcome is known (e.g. ConversionReporter.record).
"""

from __future__ import annotations

import http.client
import itertools
import json
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from modelpilot.resources.labels import ANNOTATION_REVISION, LABEL_NAME, LABEL_TRACK, LABEL_VERSION
from tests.e2e.harness.bridge import PodProcessBridge
from tests.e2e.harness.payload import DEFAULT_INPUTS, Payload, iris_payload
from tests.e2e.harness.transport import Entry, HttpClient

GATEWAY_GROUP, GATEWAY_VERSION, HTTPROUTES = "gateway.networking.k8s.io", "v1", "httproutes"
POD_HEADER = "x-modelpilot-pod"
NO_TRACK = "none"

REVISION_ENV = "MODELPILOT_REVISION"  # what the runtime labels its metrics' `revision` with

Outcome = int | str
Headers = Callable[[int], dict[str, str]]  # seq -> extra request headers
UserOf = Callable[[dict[str, str]], str | None]  # request headers -> user


@dataclass
class Request:
    sent_at: float  # time.monotonic()
    entry: str  # Entry.kind it went to
    track: str = NO_TRACK  # of the pod that answered
    pod: str | None = None
    version: str | None = None
    outcome: Outcome | None = None  # None while in flight
    seconds: float | None = None
    seq: int = -1  # release order (0, 1, 2, ...)
    headers: dict[str, str] = field(default_factory=dict)  # the extra headers it was sent with
    user: str | None = None  # user_of(headers)
    revision: str | None = None  # of the pod that answered (its MODELPILOT_REVISION / annotation)


class LoadGenerator:
    """Sends inference requests for ModelDeployment `name` in `namespace` at `rate` per second.

    gateway: (address, port) of the gateway's listener; without it an HTTPRoute is ignored and
        traffic goes to the Service.
    model_name: the model in the URL, /v2/models/{model_name}/infer; defaults to `name`, the name a
        client of the ModelDeployment uses (a server that calls its model otherwise answers 404).
    wait_for_endpoints: send nothing until the model first answers its readiness check through
        the entry point.
    payload: builds a request body from the model's declared inputs (read once through the entry
        from /v2/models/{model_name}; the iris default [1,4] FP64 `input-0` when that fails).
    headers: seq -> extra request headers (see module doc); user_of: headers -> the user (or None).
    on_answer: called with every request a pod answered, once its outcome is known (errors it
        raises are kept in `hook_errors`).
    local: each pod's own local clients (module doc), no gateway or Service; include_partitioned:
        whether pods on nodes that are not Ready still get their share.
    """

    def __init__(self, api_client: client.ApiClient, namespace: str, name: str, bridge: PodProcessBridge, *,
                 gateway: tuple[str, int] | None = None, rate: float = 50.0, model_name: str | None = None,
                 workers: int = 16, max_in_flight: int = 64, timeout: float = 10.0, poll_interval: float = 0.5,
                 payload: Payload = iris_payload, history_seconds: float = 900.0,
                 wait_for_endpoints: bool = True, headers: Headers | None = None,
                 user_of: UserOf | None = None, on_answer: Callable[[Request], None] | None = None,
                 local: bool = False, include_partitioned: bool = True) -> None:
        self.core = client.CoreV1Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)
        self.namespace = namespace
        self.name = name
        self.bridge = bridge
        self.gateway = gateway
        self.rate = rate
        self.model_name = model_name or name
        self.workers = workers
        self.max_in_flight = max_in_flight
        self.timeout = timeout
        self.poll_interval = poll_interval
        self.payload = payload
        self.history_seconds = history_seconds
        self.wait_for_endpoints = wait_for_endpoints
        self._headers = headers
        self.user_of = user_of
        self.on_answer = on_answer
        self.local = local
        self.include_partitioned = include_partitioned
        self.local_targets: list[Entry] = []  # local mode: the pods requests go to, as last resolved
        self._round_robin = itertools.count()
        self.hook_errors: list[str] = []
        self._seq = 0
        self._revisions: dict[str, str | None] = {}  # pod -> revision
        self.entry = Entry("none", error="not resolved yet")
        self.sent: Counter[str] = Counter()  # track -> requests it answered (or none)
        self.responses: dict[str, Counter[Outcome]] = {}  # track -> outcome -> count
        self._history: deque[Request] = deque()
        self._lock = threading.Lock()
        self._in_flight = 0
        self._paused = threading.Event()
        self._stop = threading.Event()
        self._resolved = threading.Event()
        self._threads: list[threading.Thread] = []
        self._executor: ThreadPoolExecutor | None = None
        self._client = HttpClient(timeout)
        self._inputs: list[dict[str, Any]] | None = None

    # ------------------------------------------------------------------------------- control

    def start(self) -> LoadGenerator:
        self._executor = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix=f"load-{self.name}")
        for target, label in ((self._resolve_loop, "resolve"), (self._dispatch_loop, "dispatch")):
            thread = threading.Thread(target=target, name=f"load-{label}-{self.name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(10)
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)

    def pause(self) -> None:
        """Send nothing until resume() (e.g. to prove no traffic gives Inconclusive)."""
        self._paused.set()

    def resume(self) -> None:
        self._paused.clear()

    def set_rate(self, rate: float) -> None:
        self.rate = rate

    def set_headers(self, headers: Headers | None, user_of: UserOf | None = None) -> None:
        """From the next request released on: extra headers from `headers(seq)` (None: none);
        `user_of` too when given."""
        with self._lock:
            self._headers = headers
            if user_of is not None:
                self.user_of = user_of

    def __enter__(self) -> LoadGenerator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def in_flight(self) -> int:
        return self._in_flight

    # ------------------------------------------------------------------------------- results

    def requests(self, seconds: float | None = None, track: str | None = None) -> list[Request]:
        """Requests of the last `seconds` (all kept history when None), oldest first."""
        since = time.monotonic() - seconds if seconds is not None else float("-inf")
        with self._lock:
            return [r for r in self._history if r.sent_at >= since and (track is None or r.track == track)]

    def traffic_split(self, seconds: float = 10.0, *, answered_only: bool = False) -> dict[str, float]:
        """Share of the requests of the last `seconds` per track of the answering pod (`none`:
        no pod answered); sums to 1, {} when none. `answered_only` counts only requests a pod
        answered. Dropped requests never reached the data plane: they say nothing of the split."""
        picked = [r for r in self.requests(seconds)
                  if r.outcome not in (None, "dropped") and (not answered_only or r.pod is not None)]
        counts = Counter(r.track for r in picked)
        total = sum(counts.values())
        return {track: n / total for track, n in sorted(counts.items())} if total else {}

    def outcomes(self, seconds: float | None = None, track: str | None = None) -> Counter[Outcome]:
        """Outcome -> count (HTTP codes as ints; dropped, no-entry, error:...) of finished requests."""
        return Counter(r.outcome for r in self.requests(seconds, track) if r.outcome is not None)

    def error_ratio(self, seconds: float, track: str) -> float | None:
        """5xx responses / HTTP responses for `track` in the window (None without responses)."""
        codes = [r.outcome for r in self.requests(seconds, track) if isinstance(r.outcome, int)]
        return sum(1 for c in codes if c >= 500) / len(codes) if codes else None

    def pods_answering(self, seconds: float) -> Counter[str]:
        """Pod name -> requests it answered in the last `seconds`."""
        return Counter(r.pod for r in self.requests(seconds) if r.pod is not None)

    def totals(self) -> dict[str, dict[str, Any]]:
        """Since start: per track, requests it answered ("sent") and outcome counts."""
        with self._lock:
            return {track: {"sent": self.sent[track], "outcomes": dict(self.responses.get(track, {}))}
                    for track in sorted(self.sent)}

    def wait_resolved(self, timeout: float = 30.0) -> Entry:
        """Wait until the entry point has been resolved once; returns it."""
        self._resolved.wait(timeout)
        return self.entry

    def describe(self) -> str:
        local = f" ({len(self.local_targets)} pods)" if self.local else ""
        return (f"loadgen {self.namespace}/{self.name} rate={self.rate}/s entry={self.entry.describe()}{local}\n"
                f"  totals: {self.totals()}")

    # ------------------------------------------------------------------------------- entry point

    def resolve(self) -> Entry:
        """The entry point as the API server says now (exposed for tests); in local mode, the
        first of the pods requests go to (and the list of them is refreshed)."""
        now = time.monotonic()
        if self.local:
            self.local_targets = self.local_entries()
            if not self.local_targets:
                return Entry("none", read_at=now, error="no pod answers its readiness probe")
            return self.local_targets[0]
        route = self._route() if self.gateway is not None else None
        if route is not None and self.gateway is not None:
            hostnames = (route.get("spec") or {}).get("hostnames") or []
            return Entry("gateway", self.gateway[0], self.gateway[1], host_header=hostnames[0] if hostnames else None,
                         keepalive=True, read_at=now)
        try:
            service = self.core.read_namespaced_service(self.name, self.namespace)
        except ApiException as err:
            if err.status != 404:
                raise
            return Entry("none", read_at=now, error=f"no Service {self.name}")
        ip, ports = service.spec.cluster_ip, service.spec.ports or []
        if not ip or ip == "None" or not ports:
            return Entry("none", read_at=now, error=f"Service {self.name} has no ClusterIP or port")
        return Entry("service", ip, int(ports[0].port), read_at=now)

    def local_entries(self) -> list[Entry]:
        """Local mode: the ModelDeployment's pods a request may go to now, by pod name (module doc)."""
        now = time.monotonic()
        return [Entry("local", view.process.host, view.process.port, keepalive=True, read_at=now)
                for view in sorted(self.bridge.pods(), key=lambda v: v.name)
                if view.labels.get(LABEL_NAME) == self.name and view.process is not None and view.process.ready
                and (self.include_partitioned or not view.partitioned)]

    def _next_entry(self) -> Entry:
        """Where the next request goes: the entry point, or in local mode the next pod in turn."""
        if not self.local:
            return self.entry
        entries = self.local_targets
        return entries[next(self._round_robin) % len(entries)] if entries else self.entry

    def _route(self) -> dict[str, Any] | None:
        try:
            return dict(self.custom.get_namespaced_custom_object(GATEWAY_GROUP, GATEWAY_VERSION, self.namespace,
                                                                 HTTPROUTES, self.name))
        except ApiException as err:
            if err.status == 404:
                return None
            raise

    def _resolve_loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.entry = self.resolve()
            except Exception as err:  # keep the last entry; say why it is stale
                self.entry = Entry(self.entry.kind, self.entry.host, self.entry.port, self.entry.host_header,
                                   self.entry.keepalive, self.entry.read_at, error=f"resolving: {err!r}")
            self._resolved.set()
            self._stop.wait(self.poll_interval)

    # ------------------------------------------------------------------------------- sending

    def _dispatch_loop(self) -> None:
        # Like clients that start calling once the model is up: nothing is sent before the model
        # answers through the entry point; after that, every gap counts.
        while self.wait_for_endpoints and not self._entry_answers():
            if self._stop.wait(0.2):
                return
        next_at = time.monotonic()
        while not self._stop.is_set():
            if self._paused.is_set() or self.rate <= 0:
                self._stop.wait(0.1)
                next_at = time.monotonic()
                continue
            now = time.monotonic()
            if now < next_at:
                self._stop.wait(next_at - now)
                continue
            next_at = max(next_at + 1.0 / self.rate, now - 1.0)  # no burst to catch up after a stall
            with self._lock:
                seq, make_headers, user_of = self._seq, self._headers, self.user_of
                self._seq += 1
            request = Request(sent_at=now, entry=self.entry.kind, seq=seq)
            failed = self._set_headers(request, make_headers, user_of)
            with self._lock:
                full = self._in_flight >= self.max_in_flight
                if not full and failed is None:
                    self._in_flight += 1
            if full or failed is not None:
                self._record(request)
                self._finish(request, failed or "dropped")
                continue
            assert self._executor is not None
            try:
                self._executor.submit(self._send, request)
            except RuntimeError:  # shut down meanwhile
                return

    @staticmethod
    def _set_headers(request: Request, make_headers: Headers | None,
                     user_of: UserOf | None) -> str | None:
        """Fill the request's headers and user; the outcome to give it when that failed."""
        try:
            request.headers = dict(make_headers(request.seq)) if make_headers is not None else {}
            request.user = user_of(request.headers) if user_of is not None else None
        except Exception as err:
            return f"error:headers:{type(err).__name__}"
        return None

    def _record(self, request: Request) -> None:
        with self._lock:
            self._history.append(request)
            horizon = request.sent_at - self.history_seconds
            while self._history and self._history[0].sent_at < horizon:
                self._history.popleft()

    def _finish(self, request: Request, outcome: Outcome, pod: str | None = None) -> None:
        labels = (self.bridge.labels_of(pod) or {}) if pod else {}
        revision = self._revision_of(pod) if pod else None
        with self._lock:
            request.pod = pod
            request.track = labels.get(LABEL_TRACK, "unknown") if pod else NO_TRACK
            request.version = labels.get(LABEL_VERSION)
            request.revision = revision
            request.outcome = outcome
            self.sent[request.track] += 1
            self.responses.setdefault(request.track, Counter())[outcome] += 1
            hook = self.on_answer
        if pod is not None and hook is not None:
            try:
                hook(request)
            except Exception as err:
                self.hook_errors.append(f"on_answer: {err!r}")

    def _revision_of(self, pod: str) -> str | None:
        """The serving revision of a pod: the runtime's MODELPILOT_REVISION in its process plan,
        else the pod's annotation (read once; a draining pod's process is already gone)."""
        if pod in self._revisions:
            return self._revisions[pod]
        process = self.bridge.process(pod)
        revision = process.plan.server.env.get(REVISION_ENV) if process and process.plan.server else None
        if revision is None:
            try:
                meta = self.core.read_namespaced_pod(pod, self.namespace).metadata
                revision = (meta.annotations or {}).get(ANNOTATION_REVISION)
            except ApiException as err:
                if err.status != 404:
                    return None  # ask again next time
            except Exception:
                return None
        self._revisions[pod] = revision
        return revision

    def _send(self, request: Request) -> None:
        try:
            entry = self._next_entry()
            started = time.monotonic()
            request.sent_at, request.entry = started, entry.kind
            self._record(request)
            if entry.kind == "none":
                self._finish(request, "no-entry")
                return
            pod: str | None = None
            try:
                inputs = self._model_inputs(entry)
                payload = self.payload
                # A payload with body(inputs, request) shapes each request (an id, a segment's data).
                made = payload.body(inputs, request) if hasattr(payload, "body") else payload(inputs)
                body = json.dumps(made).encode()
                status, headers, _ = self._http(entry, "POST", f"/v2/models/{self.model_name}/infer", body,
                                                request.headers)
                outcome: Outcome = status
                pod = headers.get(POD_HEADER)
            except Exception as err:
                outcome = f"error:{type(err).__name__}"
            request.seconds = time.monotonic() - started
            self._finish(request, outcome, pod)
        finally:
            with self._lock:
                self._in_flight -= 1

    def post(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any] | None]:
        """POST JSON to `path` through the current entry point, as a client would (e.g. feedback)."""
        status, _, raw = self._http(self.entry, "POST", path, json.dumps(body).encode())
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, None

    def _entry_answers(self) -> bool:
        """Whether the model answers its readiness check through the current entry point."""
        entry = self.entry
        if entry.kind == "none":
            return False
        try:
            status, _, _ = self._http(entry, "GET", f"/v2/models/{self.model_name}/ready", None)
        except (OSError, http.client.HTTPException):
            return False
        return status == 200

    def _model_inputs(self, entry: Entry) -> list[dict[str, Any]]:
        if self._inputs is None:
            try:
                status, _, body = self._http(entry, "GET", f"/v2/models/{self.model_name}", None)
                declared = json.loads(body).get("inputs") if status == 200 else None
            except (OSError, http.client.HTTPException, ValueError):
                declared = None
            if not declared:
                return list(DEFAULT_INPUTS)  # ask again next time
            self._inputs = declared
        return self._inputs

    def _http(self, entry: Entry, method: str, path: str, body: bytes | None,
              extra: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        self._client.timeout = self.timeout
        return self._client.request(entry, method, path, body, extra)
