"""Prometheus scraping the bridged model-server processes through file-based service discovery.

`PrometheusHub` runs Debian's Prometheus (hack.testbed.start_prometheus) with one job that reads
every `<workdir>/targets/*.json`. Each bridge writes its own file there, with the labels the
chart's PodMonitor gives in a real cluster (`namespace`, `pod`); other exporters (the harness's
ConversionReporter) add their own files. The job honours the labels a target exposes
(`honor_labels`): an exporter that labels its series itself (`namespace`, `track`) keeps them,
and the model servers, whose series carry neither `namespace` nor `pod`, get the target's
labels as before. One hub per test isolates everything; one hub per xdist worker (the operator
fixture can get its URL before it starts) works too, since every query of the operator filters
by namespace.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from hack import testbed

Target = tuple[str, dict[str, str]]  # ("podIP:port", target labels)


def write_targets(path: Path, targets: list[Target]) -> None:
    """Atomically replace a file_sd file (Prometheus must never read half a file)."""
    groups = [{"targets": [address], "labels": labels} for address, labels in sorted(targets)]
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(groups, indent=1))
    os.replace(tmp, path)


class PrometheusHub:
    """One Prometheus whose targets come from the files in `targets_dir`.

    `stop()` and `start()` again keep the port and the TSDB, like a restarted Prometheus
    (`restart()` does both); tests of provider errors use that.
    """

    def __init__(self, workdir: Path | None = None, *, scrape_interval: str = "1s",
                 refresh_interval: str = "1s", job: str = "modelpilot") -> None:
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="modelpilot-prom-"))
        self.targets_dir = self.workdir / "targets"
        self.targets_dir.mkdir(parents=True, exist_ok=True)
        self.scrape_interval = scrape_interval
        self.refresh_interval = refresh_interval
        self.job = job
        self.port: int | None = None
        self._prometheus: testbed.Prometheus | None = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("the hub has not been started")
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._prometheus is not None and self._prometheus.process.poll() is None

    def config(self) -> dict[str, Any]:
        return {
            "global": {"scrape_interval": self.scrape_interval, "evaluation_interval": self.scrape_interval,
                       "scrape_timeout": self.scrape_interval},
            "scrape_configs": [{
                "job_name": self.job,
                "scrape_interval": self.scrape_interval,
                "scrape_timeout": self.scrape_interval,
                "honor_labels": True,
                "file_sd_configs": [{"files": [str(self.targets_dir / "*.json")],
                                     "refresh_interval": self.refresh_interval}],
            }],
        }

    def target_file(self, key: str) -> Path:
        """The file_sd file for one bridge or exporter (created empty)."""
        path = self.targets_dir / f"{key}.json"
        if not path.exists():
            write_targets(path, [])
        return path

    def start(self) -> PrometheusHub:
        if self.running:
            return self
        self._prometheus = testbed.start_prometheus(self.config(), self.workdir, port=self.port)
        self.port = self._prometheus.port
        return self

    def stop(self) -> None:
        if self._prometheus is not None:
            self._prometheus.stop()

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> PrometheusHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---------------------------------------------------------------------------------------

    def _get(self, path: str, params: dict[str, str]) -> Any:
        url = f"{self.url}{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=5) as response:
            body = json.load(response)
        if body.get("status") != "success":
            raise RuntimeError(f"{path} {params} failed: {body}")
        return body["data"]

    def query(self, promql: str) -> list[dict[str, Any]]:
        """An instant query: the result vector."""
        return list(self._get("/api/v1/query", {"query": promql})["result"])

    def value(self, promql: str) -> float | None:
        """The single value of an instant query (None when empty; error when several series)."""
        result = self.query(promql)
        if not result:
            return None
        if len(result) > 1:
            raise AssertionError(f"{promql} returned {len(result)} series: {result}")
        return float(result[0]["value"][1])

    def active_targets(self) -> list[dict[str, Any]]:
        """Prometheus's view of its targets (labels, health, last error)."""
        data = self._get("/api/v1/targets", {"state": "active"})
        return [t for t in data["activeTargets"] if t.get("scrapePool") == self.job]

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        raise AssertionError(f"prometheus at {self.url} not ready within {timeout}s")
