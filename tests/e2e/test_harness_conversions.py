"""The harness's conversion reporter and per-request headers, without a cluster: the reporter's
draws and exposition, the load generator against a local stand-in model server, and a real
Prometheus (Debian's, as the test bed runs it) scraping the reporter through a world's file_sd."""

from __future__ import annotations

import http.server
import json
import threading
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from kubernetes import client
from prometheus_client.exposition import MetricsHandler
from prometheus_client.parser import text_string_to_metric_families

from hack import testbed
from modelpilot.resources.labels import LABEL_TRACK
from modelpilot.server.metrics import MetricLabels, RequestMetrics
from tests.e2e.harness import CanaryWorld, ConversionReporter, Entry, LoadGenerator, PrometheusHub, Request
from tests.e2e.harness.prometheus import write_targets
from tests.e2e.support import wait_for

RATES = {"stable": 0.10, "canary": 0.12}


def answered(track: str, outcome: Any = 200, pod: str | None = "pod-0", revision: str | None = "r1") -> Request:
    return Request(sent_at=0.0, entry="service", track=track, pod=pod, outcome=outcome, revision=revision)


def scrape(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """(sample name, labels) -> value of an exposition."""
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def serve(handler: type[http.server.BaseHTTPRequestHandler]) -> tuple[http.server.ThreadingHTTPServer, int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
    return server, int(server.server_address[1])


# ------------------------------------------------------------------------------------ reporter


def test_draws_at_the_track_rates_reproducibly() -> None:
    reporter = ConversionReporter("ns", "fraud", RATES, seed=7)
    for _ in range(20000):
        reporter.record(answered("stable"))
        reporter.record(answered("canary"))
    totals = reporter.totals()
    assert set(totals) == {"stable", "canary"}
    for track, rate in RATES.items():
        trials, conversions = totals[track]
        assert trials == 20000
        assert abs(conversions / trials - rate) < 0.01, (track, conversions / trials)

    again = ConversionReporter("ns", "fraud", RATES, seed=7)
    for _ in range(20000):
        again.record(answered("stable"))
        again.record(answered("canary"))
    assert again.totals() == totals  # seeded: the same draws


@pytest.mark.parametrize("trials", [10, 99, 1000, 4321])
def test_spread_conversions_hit_the_rate_in_every_prefix(trials: int) -> None:
    reporter = ConversionReporter("ns", "fraud", RATES, spread=True)
    for _ in range(trials):
        reporter.record(answered("stable"))
        reporter.record(answered("canary"))
    totals = reporter.totals()
    for track, rate in RATES.items():
        assert totals[track] == (trials, int(trials * rate + 1e-9)), (track, totals[track])


def test_set_rates_applies_to_later_trials() -> None:
    reporter = ConversionReporter("ns", "fraud", {"stable": 0.0, "canary": 1.0})
    for _ in range(100):
        reporter.record(answered("stable"))
        reporter.record(answered("canary"))
    assert reporter.totals() == {"stable": (100, 0), "canary": (100, 100)}
    reporter.set_rates({"stable": 1.0})  # replaces: canary now converts at default_rate (0)
    for _ in range(100):
        reporter.record(answered("stable"))
        reporter.record(answered("canary"))
    assert reporter.totals() == {"stable": (200, 100), "canary": (200, 100)}
    with pytest.raises(ValueError):
        reporter.set_rates({"canary": 1.5})


def test_only_answers_of_a_pod_with_200_are_trials() -> None:
    reporter = ConversionReporter("ns", "fraud", {"stable": 1.0, "unknown": 1.0, "none": 1.0})
    not_trials = [answered("stable", 503), answered("stable", 404), answered("stable", "error:TimeoutError"),
                  answered("none", "dropped", pod=None), answered("none", 200, pod=None),
                  answered("stable", None)]
    assert [reporter.record(r) for r in not_trials] == [None] * len(not_trials)
    assert reporter.totals() == {}
    assert reporter.record(answered("stable")) is True
    assert reporter.record(answered("stable", revision="r2")) is True
    assert reporter.totals() == {"stable": (2, 2)}
    assert reporter.totals_by_revision() == {("stable", "r1"): (1, 1), ("stable", "r2"): (1, 1)}


def test_serves_the_counters_with_their_labels() -> None:
    reporter = ConversionReporter("ns", "fraud", {"stable": 0.0, "canary": 1.0})
    with pytest.raises(RuntimeError):
        _ = reporter.address  # not serving yet
    with reporter:
        for _ in range(3):
            reporter.record(answered("stable", revision="aaa"))
            reporter.record(answered("canary", revision="bbb"))
        samples = scrape(reporter.url)
        url = reporter.url

        def labels(track: str, revision: str) -> frozenset[tuple[str, str]]:
            return frozenset({"namespace": "ns", "model_deployment": "fraud", "track": track,
                              "revision": revision}.items())

        assert samples[("modelpilot_harness_trials_total", labels("stable", "aaa"))] == 3
        assert samples[("modelpilot_harness_conversions_total", labels("stable", "aaa"))] == 0
        assert samples[("modelpilot_harness_trials_total", labels("canary", "bbb"))] == 3
        assert samples[("modelpilot_harness_conversions_total", labels("canary", "bbb"))] == 3
        assert reporter.target_labels() == {"namespace": "ns", "model_deployment": "fraud"}
    assert not reporter.running
    with pytest.raises(urllib.error.URLError):
        scrape(url)
    assert reporter.totals() == {"stable": (3, 0), "canary": (3, 3)}  # still readable after stop


# ------------------------------------------------------------------------------------ load generator


class _Model(http.server.BaseHTTPRequestHandler):
    """A stand-in model server: ready, iris inputs, and every inference answered by pod-a or
    pod-b (alternately) with the request's headers recorded."""

    seen: list[dict[str, str]] = []
    lock = threading.Lock()

    def _answer(self, status: int, body: dict[str, Any], pod: str | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if pod:
            self.send_header("x-modelpilot-pod", pod)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path.endswith("/ready"):
            self._answer(200, {})
        else:
            self._answer(200, {"inputs": [{"name": "input-0", "datatype": "FP64", "shape": [1, 4]}]})

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with self.lock:
            self.seen.append(dict(self.headers.items()))
            pod = "pod-a" if len(self.seen) % 2 else "pod-b"
        self._answer(200, {"outputs": []}, pod)

    def log_message(self, *args: object) -> None:
        pass


class _Bridge:
    """What the load generator asks of a bridge: the labels and process plan of a pod."""

    tracks = {"pod-a": "stable", "pod-b": "canary"}

    def labels_of(self, pod: str) -> dict[str, str] | None:
        return {LABEL_TRACK: self.tracks[pod]} if pod in self.tracks else None

    def process(self, pod: str) -> Any:
        env = {"MODELPILOT_REVISION": f"rev-{self.tracks[pod]}"}
        return SimpleNamespace(plan=SimpleNamespace(server=SimpleNamespace(env=env)))


@pytest.fixture
def model_port() -> Iterator[int]:
    _Model.seen = []
    server, port = serve(_Model)
    yield port
    server.shutdown()
    server.server_close()


def test_loadgen_headers_users_and_on_answer(model_port: int) -> None:
    answers: list[Request] = []
    loadgen = LoadGenerator(client.ApiClient(), "ns", "m", _Bridge(), rate=200, workers=4,  # type: ignore[arg-type]
                            headers=lambda seq: {"x-user": f"u{seq % 5}"},
                            user_of=lambda headers: headers.get("x-user"), on_answer=answers.append)
    loadgen.resolve = lambda: Entry("service", "127.0.0.1", model_port, read_at=1.0)  # type: ignore[method-assign]
    with loadgen:
        wait_for(lambda: len(answers) >= 40, timeout=30, what="40 answered requests")
        loadgen.set_headers(lambda seq: {"Cookie": f"user=c{seq}"}, user_of=lambda h: h["Cookie"].split("=")[1])
        switched = len(loadgen.requests())
        wait_for(lambda: len(answers) >= switched + 40, timeout=30, what="40 more answered requests")
    finished = [r for r in loadgen.requests() if r.outcome is not None]
    assert not loadgen.hook_errors
    assert sorted(r.seq for r in finished) == list(range(len(finished)))  # 0, 1, 2, ... none lost
    # Dropped ones (the in-flight bound, on a loaded machine) were never sent: the rest were answered.
    requests = [r for r in finished if r.outcome != "dropped"]
    assert all(r.outcome == 200 and r.pod in ("pod-a", "pod-b") for r in requests), loadgen.outcomes()
    first = [r for r in requests if "x-user" in r.headers]
    later = [r for r in requests if "Cookie" in r.headers]
    assert len(first) >= 40 and len(later) >= 30 and len(first) + len(later) == len(requests)
    assert all(r.headers == {"x-user": f"u{r.seq % 5}"} and r.user == f"u{r.seq % 5}" for r in first)
    assert all(r.user == f"c{r.seq}" for r in later)
    assert max(r.seq for r in first) < min(r.seq for r in later)
    # What the server received is what the requests recorded.
    received = Counter(h.get("x-user") or h.get("Cookie") for h in _Model.seen)
    assert received == Counter(r.headers.get("x-user") or r.headers.get("Cookie") for r in requests)
    # on_answer: once per answered request, with track and revision of the answering pod.
    assert sorted(id(r) for r in answers) == sorted(id(r) for r in requests)
    assert {(r.pod, r.track, r.revision) for r in answers} == {("pod-a", "stable", "rev-stable"),
                                                              ("pod-b", "canary", "rev-canary")}


def test_loadgen_headers_that_fail_become_errors(model_port: int) -> None:
    loadgen = LoadGenerator(client.ApiClient(), "ns", "m", _Bridge(), rate=100, workers=2,  # type: ignore[arg-type]
                            headers=lambda seq: {"x-n": str(1 // (seq % 2))})
    loadgen.resolve = lambda: Entry("service", "127.0.0.1", model_port, read_at=1.0)  # type: ignore[method-assign]
    with loadgen:
        wait_for(lambda: loadgen.outcomes()[200] >= 10, timeout=30, what="10 answered requests")
    outcomes = loadgen.outcomes()
    assert set(outcomes) == {200, "error:headers:ZeroDivisionError"}, outcomes


# ------------------------------------------------------------------------------------ Prometheus


needs_prometheus = pytest.mark.skipif(not Path(testbed.PROMETHEUS_BINARY).exists(),
                                      reason=f"{testbed.PROMETHEUS_BINARY} not installed (hack/build-testbed.sh)")


@needs_prometheus
def test_world_prometheus_scrapes_the_reporter(tmp_path: Path) -> None:
    hub = PrometheusHub(tmp_path / "prometheus").start()
    # A model server's real series (no namespace/pod of their own), as a bridge registers it: the
    # job honours exposed labels, so it must still get the target's namespace and pod.
    metrics = RequestMetrics(MetricLabels(model_deployment="fraud", model="fraud", version="v1", track="stable",
                                          revision="r1"))
    metrics.observe(200, 0.01)
    pod_server, pod_port = serve(MetricsHandler.factory(metrics.registry))
    write_targets(hub.target_file("pods-ns"), [(f"127.0.0.1:{pod_port}", {"namespace": "ns", "pod": "fraud-0"})])
    world = CanaryWorld(client.ApiClient(), "ns", "fraud", workdir=tmp_path / "world", prometheus=hub)
    reporter = ConversionReporter("ns", "fraud", {"stable": 0.0, "canary": 1.0}, seed=3)
    try:
        world.add_reporter(reporter)
        assert world.loadgen.on_answer == reporter.record
        for _ in range(5):
            reporter.record(answered("canary", revision="abc"))
            reporter.record(answered("stable", revision="old"))
        query = 'sum(modelpilot_harness_trials_total{namespace="ns", model_deployment="fraud", track="canary"})'
        wait_for(lambda: hub.value(query) == 5, timeout=60, interval=0.25, what=query)
        series = hub.query('modelpilot_harness_conversions_total{namespace="ns"}')
        labels = {s["metric"]["track"]: s["metric"] for s in series}
        assert set(labels) == {"stable", "canary"}
        assert labels["canary"]["revision"] == "abc" and labels["stable"]["revision"] == "old"
        assert {k for k in labels["canary"] if k.startswith("exported_")} == set()
        assert labels["canary"]["model_deployment"] == "fraud" and labels["canary"]["instance"] == reporter.address
        assert hub.value('sum(modelpilot_harness_conversions_total{namespace="ns", track="canary"})') == 5
        assert hub.value('sum(modelpilot_harness_conversions_total{namespace="ns", track="stable"})') == 0

        pods = wait_for(lambda: hub.query('modelpilot_requests_total{namespace="ns", pod="fraud-0"}'),
                        timeout=60, interval=0.25, what="the model server's series")
        assert pods[0]["metric"]["track"] == "stable" and pods[0]["metric"]["code"] == "200"
        assert not [k for k in pods[0]["metric"] if k.startswith("exported_")]

        world.stop()  # stops and unregisters the reporter (nothing else of the world was started)
        assert not reporter.running and world.reporter is None and world.loadgen.on_answer is None
        assert not list(hub.targets_dir.glob("conversions-*.json"))
    finally:
        world.stop()
        reporter.stop()
        pod_server.shutdown()
        pod_server.server_close()
        hub.stop()
