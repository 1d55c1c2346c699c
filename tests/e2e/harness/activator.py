"""The activator as the chart runs it, on the test bed: a real `modelpilot activator` process behind
a Service of its own (no selector; an EndpointSlice with an address of the pod range, which the
network namespace routes to the process), scraped by a world's Prometheus."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from kubernetes import client

from tests.e2e.harness.prometheus import PrometheusHub, write_targets

# Any address of the pod range reaches a process bound to 0.0.0.0 inside the namespace; this one
# belongs to no KWOK node.
ADDRESS = "10.244.251.1"
SERVICE_PORT = 80


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ActivatorProcess:
    namespace: str  # where its Service lives
    workdir: Path
    service: str = "modelpilot-activator"
    port: int = field(default_factory=_free_port)
    metrics_port: int = field(default_factory=_free_port)
    process: subprocess.Popen[bytes] | None = None

    def start(self, core: client.CoreV1Api, discovery: client.DiscoveryV1Api,
              prometheus: PrometheusHub) -> ActivatorProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = (self.workdir / "activator.log").open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "modelpilot.cli.main", "activator", "--host", "0.0.0.0", "--port", str(self.port),
             "--metrics-host", "127.0.0.1", "--metrics-port", str(self.metrics_port), "--hold-timeout", "120"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self._wait_listening()
        self._publish(core, discovery)
        write_targets(prometheus.target_file(f"activator-{self.namespace}"),
                      [(f"127.0.0.1:{self.metrics_port}", {"job": "activator"})])
        return self

    def _wait_listening(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"the activator exited with {self.process.returncode}:\n{self.logs()[-2000:]}")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"the activator never listened:\n{self.logs()[-2000:]}")

    def _publish(self, core: client.CoreV1Api, discovery: client.DiscoveryV1Api) -> None:
        core.create_namespaced_service(self.namespace, {
            "metadata": {"name": self.service},
            "spec": {"ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": self.port}]}})
        discovery.create_namespaced_endpoint_slice(self.namespace, {
            "metadata": {"name": f"{self.service}-1", "labels": {"kubernetes.io/service-name": self.service}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [ADDRESS], "conditions": {"ready": True}}],
            "ports": [{"name": "http", "port": self.port, "protocol": "TCP"}]})

    def operator_env(self) -> dict[str, str]:
        return {"MODELPILOT_ACTIVATOR_NAMESPACE": self.namespace, "MODELPILOT_ACTIVATOR_SERVICE": self.service,
                "MODELPILOT_ACTIVATOR_PORT": str(SERVICE_PORT)}

    def logs(self) -> str:
        path = self.workdir / "activator.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def metrics(self) -> str:
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as response:
            return str(response.read().decode())

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
