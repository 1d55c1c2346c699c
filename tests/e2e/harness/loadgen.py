"""LoadGenerator: Open Inference Protocol v2 traffic split the way the cluster says.

It stands in for the gateway and the Service, and reads the split only from the API server:

- gatewayAPI mode (an HTTPRoute `<name>` exists, gateway.networking.k8s.io/v1): the first rule
  with backendRefs; a backend Service is chosen by weight (a missing weight is 1, as in the Gateway
  API), then a pod uniformly among the pods that Service's live `spec.selector` matches;
- replicas mode (no such HTTPRoute): a pod uniformly among the pods the Service `<name>` selects.

Only pods that are Ready in the API *and* whose process answers its readiness probe take
traffic, as with Service endpoints; the routing is re-read every `poll_interval` seconds, and a
pod whose process the bridge stops leaves at once. A chosen backend without any such pod gives
the outcome `no-endpoints` (a real gateway answers 5xx), and the request is not sent.

Requests are released open-loop at `rate` per second to `workers` threads (keep-alive
connections) and routed when a worker sends them. When `max_in_flight` requests are queued or
running, the next one is `dropped` (still routed, to name the track that lost it) rather than
queued without bound behind a slow model. Every routed request is recorded with its time,
track, pod and outcome: an HTTP status code, `no-endpoints`, `dropped`, or
`error:<ExceptionName>` (connection errors and timeouts are counted, never raised).
"""

from __future__ import annotations

import http.client
import json
import random
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.e2e.harness.bridge import PodProcessBridge, PodView, matches

GATEWAY_GROUP, GATEWAY_VERSION, HTTPROUTES = "gateway.networking.k8s.io", "v1", "httproutes"
TRACK_LABEL = "modelpilot.io/track"

Outcome = int | str
Payload = Callable[[list[dict[str, Any]]], dict[str, Any]]
DEFAULT_INPUTS = [{"name": "input-0", "datatype": "FP64", "shape": [1, 4]}]


@dataclass
class Backend:
    """One backend of the current routing: a Service, its weight and the pods that may serve."""

    service: str
    weight: int
    track: str  # the track its selector names, else the Service name
    pods: list[PodView]


@dataclass
class Routing:
    mode: str  # "gatewayAPI" | "replicas" | "none"
    backends: list[Backend]
    read_at: float
    error: str | None = None

    def weights(self) -> dict[str, int]:
        """Backend track -> weight (gatewayAPI) or -> serving pod count (replicas)."""
        if self.mode == "gatewayAPI":
            return {b.track: b.weight for b in self.backends}
        out: Counter[str] = Counter()
        for backend in self.backends:
            out.update(p.track for p in backend.pods)
        return dict(out)


@dataclass
class Request:
    sent_at: float  # time.monotonic()
    track: str
    pod: str | None
    outcome: Outcome | None = None  # None while in flight
    seconds: float | None = None


@dataclass
class _Inputs:
    specs: list[dict[str, Any]] = field(default_factory=lambda: list(DEFAULT_INPUTS))


def iris_payload(inputs: list[dict[str, Any]]) -> dict[str, Any]:
    """Random positive iris-like features for every declared input (-1 in a shape becomes 1)."""
    tensors = []
    for spec in inputs:
        shape = [1 if d is None or int(d) < 0 else int(d) for d in spec.get("shape") or [1, 4]]
        size = 1
        for d in shape:
            size *= d
        datatype = spec.get("datatype", "FP64")
        if datatype.startswith("FP"):
            data: list[Any] = [round(random.uniform(0.1, 7.9), 2) for _ in range(size)]
        elif datatype.startswith(("INT", "UINT")):
            data = [random.randint(0, 5) for _ in range(size)]
        elif datatype == "BOOL":
            data = [random.random() < 0.5 for _ in range(size)]
        else:
            data = ["x"] * size
        tensors.append({"name": spec.get("name", "input-0"), "shape": shape, "datatype": datatype, "data": data})
    return {"inputs": tensors}


class LoadGenerator:
    """Sends inference requests for ModelDeployment `name` in `namespace` at `rate` per second.

    model_name: the model in the URL, /v2/models/{model_name}/infer; defaults to `name`, the name a
        client of the ModelDeployment uses (a server that calls its model otherwise answers 404).
    wait_for_endpoints: send nothing until some pod serves for the first time.
    payload: builds a request body from the model's declared inputs (from /v2/models/{model_name},
        read once per pod; the iris default [1,4] FP64 `input-0` when that fails).
    """

    def __init__(self, api_client: client.ApiClient, namespace: str, name: str, bridge: PodProcessBridge, *,
                 rate: float = 50.0, model_name: str | None = None, workers: int = 16, max_in_flight: int = 64,
                 timeout: float = 10.0, poll_interval: float = 0.5, payload: Payload = iris_payload,
                 history_seconds: float = 900.0, wait_for_endpoints: bool = True) -> None:
        self.core = client.CoreV1Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)
        self.namespace = namespace
        self.name = name
        self.bridge = bridge
        self.rate = rate
        self.model_name = model_name or name
        self.workers = workers
        self.max_in_flight = max_in_flight
        self.timeout = timeout
        self.poll_interval = poll_interval
        self.payload = payload
        self.history_seconds = history_seconds
        self.wait_for_endpoints = wait_for_endpoints
        self.routing = Routing(mode="none", backends=[], read_at=0.0, error="not read yet")
        self.sent: Counter[str] = Counter()  # track -> requests routed to it
        self.responses: dict[str, Counter[Outcome]] = {}  # track -> outcome -> count
        self._history: deque[Request] = deque()
        self._lock = threading.Lock()
        self._in_flight = 0
        self._paused = threading.Event()
        self._stop = threading.Event()
        self._routed = threading.Event()
        self._threads: list[threading.Thread] = []
        self._executor: ThreadPoolExecutor | None = None
        self._local = threading.local()
        self._inputs: dict[str, _Inputs] = {}  # pod uid -> declared inputs

    # ------------------------------------------------------------------------------- control

    def start(self) -> LoadGenerator:
        self._executor = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix=f"load-{self.name}")
        for target, label in ((self._route_loop, "route"), (self._dispatch_loop, "dispatch")):
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

    def __enter__(self) -> LoadGenerator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------------------- results

    def requests(self, seconds: float | None = None, track: str | None = None) -> list[Request]:
        """Routed requests of the last `seconds` (all kept history when None), oldest first."""
        since = time.monotonic() - seconds if seconds is not None else float("-inf")
        with self._lock:
            return [r for r in self._history if r.sent_at >= since and (track is None or r.track == track)]

    def traffic_split(self, seconds: float = 10.0, *, answered_only: bool = False) -> dict[str, float]:
        """Share of the requests routed to each track in the last `seconds` (sums to 1; {} when
        none). `answered_only` counts only requests that got an HTTP response."""
        picked = [r for r in self.requests(seconds)
                  if not answered_only or isinstance(r.outcome, int)]
        counts = Counter(r.track for r in picked)
        total = sum(counts.values())
        return {track: n / total for track, n in sorted(counts.items())} if total else {}

    def outcomes(self, seconds: float | None = None, track: str | None = None) -> Counter[Outcome]:
        """Outcome -> count (HTTP codes as ints; no-endpoints, dropped, error:...) of finished requests."""
        return Counter(r.outcome for r in self.requests(seconds, track) if r.outcome is not None)

    def error_ratio(self, seconds: float, track: str) -> float | None:
        """5xx responses / HTTP responses for `track` in the window (None without responses)."""
        codes = [r.outcome for r in self.requests(seconds, track) if isinstance(r.outcome, int)]
        return sum(1 for c in codes if c >= 500) / len(codes) if codes else None

    def totals(self) -> dict[str, dict[str, Any]]:
        """Since start: per track, requests routed and outcome counts."""
        with self._lock:
            return {track: {"sent": self.sent[track], "outcomes": dict(self.responses.get(track, {}))}
                    for track in sorted(self.sent)}

    def wait_routed(self, timeout: float = 30.0) -> Routing:
        """Wait until the routing has been read once; returns it."""
        self._routed.wait(timeout)
        return self.routing

    def describe(self) -> str:
        routing = self.routing
        backends = ", ".join(f"{b.service}(w={b.weight}, serving={[p.name for p in b.pods]})"
                             for b in routing.backends)
        return (f"loadgen {self.namespace}/{self.name} rate={self.rate}/s mode={routing.mode} [{backends}]"
                f"{' error=' + routing.error if routing.error else ''}\n  totals: {self.totals()}")

    # ------------------------------------------------------------------------------- routing

    def read_routing(self) -> Routing:
        """The split as the API server says now (exposed for tests)."""
        pods = [p for p in self.bridge.pods() if p.serving]
        try:
            route = self.custom.get_namespaced_custom_object(GATEWAY_GROUP, GATEWAY_VERSION, self.namespace,
                                                              HTTPROUTES, self.name)
        except ApiException as err:
            if err.status != 404:
                raise
            route = None
        if route is None:
            service = self._service(self.name)
            if service is None:
                return Routing("none", [], time.monotonic(), error=f"no Service {self.name} and no HTTPRoute")
            return Routing("replicas", [self._backend(service, 1, pods)], time.monotonic())
        rules = [r for r in (route.get("spec") or {}).get("rules") or [] if r.get("backendRefs")]
        backends = []
        for ref in rules[0]["backendRefs"] if rules else []:
            weight = int(ref.get("weight", 1))
            if ref.get("kind", "Service") != "Service" or ref.get("group", "") not in ("", "core"):
                backends.append(Backend(ref.get("name", "?"), weight, ref.get("name", "?"), []))
                continue
            service = self._service(ref["name"]) if ref.get("namespace", self.namespace) == self.namespace else None
            if service is None:
                backends.append(Backend(ref["name"], weight, ref["name"], []))
            else:
                backends.append(self._backend(service, weight, pods))
        return Routing("gatewayAPI", backends, time.monotonic(),
                       error=None if backends else f"HTTPRoute {self.name} has no backendRefs")

    def _service(self, name: str) -> dict[str, Any] | None:
        try:
            service = self.core.read_namespaced_service(name, self.namespace)
        except ApiException as err:
            if err.status == 404:
                return None
            raise
        return dict(self.core.api_client.sanitize_for_serialization(service))

    @staticmethod
    def _backend(service: dict[str, Any], weight: int, pods: Iterable[PodView]) -> Backend:
        selector = (service.get("spec") or {}).get("selector") or {}
        name = service["metadata"]["name"]
        return Backend(service=name, weight=weight, track=selector.get(TRACK_LABEL, name),
                       pods=[p for p in pods if matches(selector, p.labels)])

    def _route_loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.routing = self.read_routing()
            except Exception as err:  # keep the last routing; say why it is stale
                self.routing = Routing(self.routing.mode, self.routing.backends, self.routing.read_at,
                                       error=f"reading the routing: {err!r}")
            self._routed.set()
            self._stop.wait(self.poll_interval)

    # ------------------------------------------------------------------------------- sending

    def _live(self, pods: list[PodView]) -> list[tuple[PodView, int]]:
        """The pods whose process is ready right now, with its port: a pod the bridge is stopping
        leaves at once, not at the next routing read."""
        live = []
        for pod in pods:
            process = self.bridge.process(pod.name)
            if process is not None and process.ready and process.plan.uid == pod.uid:
                live.append((pod, process.port))
        return live

    def _choose(self) -> tuple[str, PodView | None, int]:
        """(track, pod, port) for the next request; pod None when the backend has no endpoint."""
        routing = self.routing
        backends = [b for b in routing.backends if b.weight > 0]
        if not backends:
            return "none", None, 0
        backend = backends[0] if routing.mode == "replicas" else \
            random.choices(backends, weights=[b.weight for b in backends])[0]
        live = self._live(backend.pods)
        if not live:
            return ("none" if routing.mode == "replicas" else backend.track), None, 0
        pod, port = random.choice(live)
        return pod.track or backend.track, pod, port

    def _record(self, request: Request) -> None:
        with self._lock:
            self._history.append(request)
            self.sent[request.track] += 1
            horizon = request.sent_at - self.history_seconds
            while self._history and self._history[0].sent_at < horizon:
                self._history.popleft()

    def _finish(self, request: Request, outcome: Outcome) -> None:
        with self._lock:
            request.outcome = outcome
            self.responses.setdefault(request.track, Counter())[outcome] += 1

    def _dispatch_loop(self) -> None:
        # Like clients that start calling once the model is up: nothing is sent (or counted as
        # no-endpoints) before the first pod serves; after that, every routing gap counts.
        while self.wait_for_endpoints and not any(self._live(b.pods) for b in self.routing.backends):
            if self._stop.wait(0.1):
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
                full = self._in_flight >= self.max_in_flight
                if not full:
                    self._in_flight += 1
            if full:  # routed now only to say which track lost it
                track, pod, _ = self._choose()
                request = Request(sent_at=now, track=track, pod=pod.name if pod else None)
                self._record(request)
                self._finish(request, "dropped")
                continue
            assert self._executor is not None
            try:
                self._executor.submit(self._send)
            except RuntimeError:  # shut down meanwhile
                return

    def _send(self) -> None:
        """Route (at send time, so a queued request never goes to a pod gone meanwhile) and send."""
        try:
            track, pod, port = self._choose()
            started = time.monotonic()
            request = Request(sent_at=started, track=track, pod=pod.name if pod else None)
            self._record(request)
            if pod is None:
                outcome: Outcome = "no-endpoints"
            else:
                try:
                    body = json.dumps(self.payload(self._inputs_of(pod, port))).encode()
                    status, _ = self._http(port, "POST", f"/v2/models/{self.model_name}/infer", body)
                    outcome = status
                except Exception as err:
                    outcome = f"error:{type(err).__name__}"
                request.seconds = time.monotonic() - started
            self._finish(request, outcome)
        finally:
            with self._lock:
                self._in_flight -= 1

    def _connection(self, port: int) -> http.client.HTTPConnection:
        conns: dict[int, http.client.HTTPConnection] = getattr(self._local, "conns", None) or {}
        self._local.conns = conns
        conn = conns.get(port)
        if conn is None:
            conn = conns[port] = http.client.HTTPConnection("127.0.0.1", port, timeout=self.timeout)
        return conn

    def _drop_connection(self, port: int) -> None:
        conns = getattr(self._local, "conns", {})
        conn = conns.pop(port, None)
        if conn is not None:
            conn.close()

    def _inputs_of(self, pod: PodView, port: int) -> list[dict[str, Any]]:
        known = self._inputs.get(pod.uid)
        if known is None:
            known = _Inputs()
            try:
                status, body = self._http(port, "GET", f"/v2/models/{self.model_name}", None)
                if status == 200:
                    declared = json.loads(body).get("inputs")
                    if declared:
                        known.specs = declared
            except (OSError, http.client.HTTPException, ValueError):
                pass
            self._inputs[pod.uid] = known
        return known.specs

    def _http(self, port: int, method: str, path: str, body: bytes | None) -> tuple[int, bytes]:
        for attempt in (0, 1):
            conn = self._connection(port)
            try:
                headers = {"Content-Type": "application/json"} if body is not None else {}
                conn.request(method, path, body=body, headers=headers)
                response = conn.getresponse()
                return response.status, response.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                # A kept-alive connection the server closed meanwhile: retry once on a new one.
                self._drop_connection(port)
                if attempt:
                    raise
            except Exception:
                self._drop_connection(port)
                raise
        raise AssertionError("unreachable")
