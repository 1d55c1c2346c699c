"""ConversionReporter: a business metric for the canary experiments, from the harness's traffic.

For every request a pod answered with HTTP 200 (LoadGenerator.on_answer -> `record`) it draws a
conversion with the rate of the answering pod's track (seeded, so a run is reproducible) and
counts

    modelpilot_harness_trials_total{namespace, model_deployment, track, revision}
    modelpilot_harness_conversions_total{namespace, model_deployment, track, revision}

in a registry of its own, served on http://127.0.0.1:<free port>/metrics for a Prometheus to
scrape (CanaryWorld.add_reporter registers it as a file_sd target). A series appears with its
first trial: like any counter, increase() over a window misses what it counted before its first
scrape (about one scrape interval's worth).
"""

from __future__ import annotations

import random
import threading
from collections.abc import Mapping
from http.server import ThreadingHTTPServer
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.exposition import MetricsHandler

if TYPE_CHECKING:
    from tests.e2e.harness.loadgen import Request

LABELS = ("namespace", "model_deployment", "track", "revision")
TRIALS = "modelpilot_harness_trials_total"
CONVERSIONS = "modelpilot_harness_conversions_total"


class ConversionReporter:
    """Conversions per track at `rates` (track -> probability in [0, 1]; a track without a rate
    converts with `default_rate`) for ModelDeployment `model_deployment` in `namespace`."""

    def __init__(self, namespace: str, model_deployment: str, rates: Mapping[str, float], seed: int = 0, *,
                 default_rate: float = 0.0, spread: bool = False) -> None:
        """`spread`: instead of random draws, trial n of a track converts when
        floor((n + 1) x rate) > floor(n x rate): every window's observed rate is the rate itself,
        so a statistical test sees exactly the difference it is given (no sampling luck)."""
        self.namespace = namespace
        self.model_deployment = model_deployment
        self.default_rate = default_rate
        self._rates = self._checked(rates)
        self._random = random.Random(seed)
        self.spread = spread
        self._seen: dict[str, int] = {}  # track -> trials so far (spread mode)
        self._lock = threading.Lock()
        self._totals: dict[tuple[str, str], list[int]] = {}  # (track, revision) -> [trials, conversions]
        self.registry = CollectorRegistry()
        self._trials = Counter(TRIALS, "Requests answered with 200 (harness conversion trials).", LABELS,
                               registry=self.registry)
        self._conversions = Counter(CONVERSIONS, "Trials that converted (drawn at the track's rate).", LABELS,
                                    registry=self.registry)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @staticmethod
    def _checked(rates: Mapping[str, float]) -> dict[str, float]:
        bad = {track: rate for track, rate in rates.items() if not 0.0 <= rate <= 1.0}
        if bad:
            raise ValueError(f"conversion rates must be within [0, 1]: {bad}")
        return dict(rates)

    # ------------------------------------------------------------------------------- counting

    @property
    def rates(self) -> dict[str, float]:
        with self._lock:
            return dict(self._rates)

    def set_rates(self, rates: Mapping[str, float]) -> None:
        """Replace the rates (from the next trial on)."""
        checked = self._checked(rates)
        with self._lock:
            self._rates = checked

    def record(self, request: Request) -> bool | None:
        """Count one finished request. Only a request a pod answered with 200 is a trial; returns
        whether it converted (None: not a trial)."""
        if request.pod is None or request.outcome != 200:
            return None
        track, revision = request.track, request.revision or ""
        with self._lock:
            rate = self._rates.get(track, self.default_rate)
            if self.spread:
                n = self._seen.get(track, 0)
                self._seen[track] = n + 1
                converted = int((n + 1) * rate + 1e-9) > int(n * rate + 1e-9)
            else:
                converted = self._random.random() < rate
            counts = self._totals.setdefault((track, revision), [0, 0])
            counts[0] += 1
            counts[1] += int(converted)
            # Under the lock too: a scrape sees trials and conversions of the same moment.
            labels = (self.namespace, self.model_deployment, track, revision)
            self._trials.labels(*labels).inc()
            if converted:
                self._conversions.labels(*labels).inc()
            else:
                self._conversions.labels(*labels)  # the series exists (at 0) from the first trial
        return converted

    def totals(self) -> dict[str, tuple[int, int]]:
        """Track -> (trials, conversions) since start, over all revisions."""
        out: dict[str, tuple[int, int]] = {}
        with self._lock:
            for (track, _), (trials, conversions) in sorted(self._totals.items()):
                before = out.get(track, (0, 0))
                out[track] = (before[0] + trials, before[1] + conversions)
        return out

    def totals_by_revision(self) -> dict[tuple[str, str], tuple[int, int]]:
        """(track, revision) -> (trials, conversions) since start."""
        with self._lock:
            return {key: (c[0], c[1]) for key, c in sorted(self._totals.items())}

    # ------------------------------------------------------------------------------- serving

    def start(self) -> ConversionReporter:
        """Serve /metrics on 127.0.0.1 on a free port (idempotent)."""
        if self._server is None:
            self._server = ThreadingHTTPServer(("127.0.0.1", 0), MetricsHandler.factory(self.registry))
            self._server.daemon_threads = True
            self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                            name=f"conversions-{self.namespace}", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving (the counts stay readable)."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the reporter is not serving: start() it")
        return int(self._server.server_address[1])

    @property
    def address(self) -> str:
        """host:port of its /metrics (a Prometheus target)."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}/metrics"

    def target_labels(self) -> dict[str, str]:
        """The labels of its scrape target (the same values its series carry)."""
        return {"namespace": self.namespace, "model_deployment": self.model_deployment}

    def __enter__(self) -> ConversionReporter:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
