"""CanaryWorld: bridge + Prometheus + load generator for one ModelDeployment, as one object."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kubernetes import client

from tests.e2e.harness.bridge import PodProcessBridge, PodView, wait_serving
from tests.e2e.harness.conversions import ConversionReporter
from tests.e2e.harness.loadgen import Headers, LoadGenerator, Payload, Request, UserOf, iris_payload
from tests.e2e.harness.prometheus import PrometheusHub, write_targets


class CanaryWorld:
    """Everything a canary e2e test needs around the operator, for ModelDeployment `name` in
    `namespace`: real model-server processes for its pods, a Prometheus scraping them (its own,
    or a shared `prometheus` hub), and traffic sent through the real data plane (the gateway at
    `gateway` when the ModelDeployment has an HTTPRoute, else the Service's ClusterIP).

    `start()` starts Prometheus (when owned), the bridge and the load generator (paused when
    `load=False`); `stop()` stops them in reverse order. Also a context manager.

    `local=True` (edge targets): traffic goes straight to each serving pod's own IP:port, round
    robin, as each device's local clients send it (LoadGenerator, local mode); with
    `include_partitioned=False` pods on nodes that are not Ready get none.

    `headers`/`user_of` go to the load generator. A ConversionReporter (`reporter`, or
    `add_reporter()` later) counts conversions of the requests pods answer, scraped by the
    world's Prometheus (stopped with the world).
    """

    def __init__(self, api_client: client.ApiClient, namespace: str, name: str, *, workdir: Path | None = None,
                 prometheus: PrometheusHub | None = None, rate: float = 50.0, load: bool = True,
                 model_name: str | None = None, reflect_readiness: bool = True,
                 pvc_dirs: Mapping[str, Path] | None = None, payload: Payload = iris_payload,
                 grace: float = 10.0, gateway: tuple[str, int] | None = None, headers: Headers | None = None,
                 user_of: UserOf | None = None, reporter: ConversionReporter | None = None,
                 local: bool = False, include_partitioned: bool = True) -> None:
        self.namespace = namespace
        self.name = name
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix=f"world-{namespace}-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.owns_prometheus = prometheus is None
        self.prometheus = prometheus or PrometheusHub(self.workdir / "prometheus")
        self.bridge = PodProcessBridge(api_client, namespace, workdir=self.workdir / "pods",
                                       prometheus=self.prometheus, reflect_readiness=reflect_readiness,
                                       pvc_dirs=pvc_dirs, grace=grace)
        self.loadgen = LoadGenerator(api_client, namespace, name, self.bridge, gateway=gateway, rate=rate,
                                     model_name=model_name, payload=payload, headers=headers, user_of=user_of,
                                     local=local, include_partitioned=include_partitioned)
        self.discovery = client.DiscoveryV1Api(api_client)
        self._load = load
        self.reporter: ConversionReporter | None = None
        self._reporter_file: Path | None = None
        self._initial_reporter = reporter

    # ------------------------------------------------------------------------------- lifecycle

    def start(self) -> CanaryWorld:
        try:
            if self.owns_prometheus:
                self.prometheus.start()
            self.bridge.start()
            if self._initial_reporter is not None:
                self.add_reporter(self._initial_reporter)
            if not self._load:
                self.loadgen.pause()
            self.loadgen.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        self.loadgen.stop()
        self.remove_reporter()
        self.bridge.stop()
        if self.owns_prometheus:
            self.prometheus.stop()

    def add_reporter(self, reporter: ConversionReporter) -> ConversionReporter:
        """Feed `reporter` every request a pod answers (loadgen.on_answer), serve its /metrics
        (started if needed) and make it a target of the world's Prometheus, labelled with its
        namespace and model_deployment (its own series' labels win: the job honours them).
        Prometheus applies a new target file within ~5 s. One reporter per world."""
        if self.reporter is not None and self.reporter is not reporter:
            raise RuntimeError(f"{self.namespace}/{self.name} already has a conversion reporter")
        reporter.start()
        self.reporter = reporter
        self._reporter_file = self.prometheus.target_file(f"conversions-{self.namespace}-{self.name}")
        write_targets(self._reporter_file, [(reporter.address, reporter.target_labels())])
        self.loadgen.on_answer = reporter.record
        return reporter

    def remove_reporter(self) -> None:
        """Stop feeding, scraping and serving the reporter (its totals stay readable)."""
        reporter, self.reporter = self.reporter, None
        if reporter is None:
            return
        if self.loadgen.on_answer == reporter.record:
            self.loadgen.on_answer = None
        if self._reporter_file is not None:
            self._reporter_file.unlink(missing_ok=True)
            self._reporter_file = None
        reporter.stop()

    def __enter__(self) -> CanaryWorld:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------------------- shortcuts

    @property
    def prometheus_url(self) -> str:
        """For the operator: MODELPILOT_PROMETHEUS_URL."""
        return self.prometheus.url

    def operator_env(self) -> dict[str, str]:
        """Env for an operator that should analyse this world (OperatorProcess(extra_env=...))."""
        return {"MODELPILOT_PROMETHEUS_URL": self.prometheus.url}

    def traffic_split(self, seconds: float = 10.0) -> dict[str, float]:
        """Observed share of routed requests per track over the last `seconds`."""
        return self.loadgen.traffic_split(seconds)

    def serving(self) -> list[PodView]:
        """Pods that take traffic now (API Ready and process ready)."""
        return [p for p in self.bridge.pods() if p.serving]

    def wait_serving(self, timeout: float = 90.0, **counts: int) -> list[PodView]:
        """wait_serving(stable=3, canary=1): until exactly that many pods per track serve, the
        EndpointSlices list each of them as ready (in local mode: the load generator sends to
        each of them), and the load generator has re-resolved its entry point since (so its
        traffic can reach them)."""
        pods = wait_serving(self.bridge, counts, timeout)
        wanted = {p.process.host for p in pods if p.process is not None}
        deadline = time.monotonic() + 30
        while not wanted <= self._reached() and time.monotonic() < deadline:
            time.sleep(0.2)
        since = time.monotonic()
        while self.loadgen.entry.read_at <= since and time.monotonic() < deadline:
            time.sleep(0.1)
        return pods

    def _reached(self) -> set[str]:
        if self.loadgen.local:
            return {entry.host for entry in self.loadgen.local_targets}
        return self.ready_endpoints()

    def ready_endpoints(self) -> set[str]:
        """Addresses the namespace's EndpointSlices list as ready (what the data plane sends to)."""
        slices = self.discovery.list_namespaced_endpoint_slice(self.namespace).items
        return {address for s in slices for e in s.endpoints or []
                if e.conditions is None or e.conditions.ready is not False for address in e.addresses}

    def wait_split(self, expected: Mapping[str, float], *, tolerance: float = 0.1, seconds: float = 8.0,
                   timeout: float = 60.0) -> dict[str, float]:
        """Wait until the split over the last `seconds` is within `tolerance` of `expected` for
        every track in it (tracks not named must get less than `tolerance`); returns it."""
        deadline = time.monotonic() + timeout
        split: dict[str, float] = {}
        while time.monotonic() < deadline:
            split = self.traffic_split(seconds)
            tracks = set(split) | set(expected)
            if split and all(abs(split.get(t, 0.0) - expected.get(t, 0.0)) <= tolerance for t in tracks):
                return split
            time.sleep(0.5)
        raise AssertionError(f"split over {seconds}s never within {tolerance} of {dict(expected)}: last {split}\n"
                             f"{self.describe()}")

    def measure(self, count: int, timeout: float = 120.0) -> list[Request]:
        """The next `count` requests sent from now on, once every one of them has finished."""
        since = time.monotonic()
        deadline = since + timeout
        while True:
            sent = [r for r in self.loadgen.requests() if r.sent_at >= since]
            if len(sent) >= count and all(r.outcome is not None for r in sent[:count]):
                return sent[:count]
            if time.monotonic() > deadline:
                raise AssertionError(f"only {len(sent)} of {count} requests in {timeout:.0f}s\n{self.describe()}")
            time.sleep(0.2)

    def query(self, promql: str) -> list[dict[str, Any]]:
        return self.prometheus.query(promql)

    def requests_seen_by_prometheus(self, track: str | None = None, code: str | None = None) -> float:
        """sum(modelpilot_requests_total) for this namespace/deployment as Prometheus has it now."""
        matchers = [f'namespace="{self.namespace}"', f'model_deployment="{self.name}"']
        if track:
            matchers.append(f'track="{track}"')
        if code:
            matchers.append(f'code="{code}"')
        result = self.prometheus.query(f"sum(modelpilot_requests_total{{{','.join(matchers)}}})")
        return float(result[0]["value"][1]) if result else 0.0

    def describe(self) -> str:
        """Bridge, load generator and Prometheus targets, for assertion messages."""
        parts = [self.bridge.describe(), self.loadgen.describe()]
        try:
            targets = [(t["labels"].get("pod"), t["health"], t.get("lastError") or "")
                       for t in self.prometheus.active_targets()
                       if t["labels"].get("namespace") == self.namespace]
            parts.append(f"prometheus {self.prometheus.url} targets: {targets}")
        except Exception as err:
            parts.append(f"prometheus: {err!r}")
        return "\n".join(parts)
