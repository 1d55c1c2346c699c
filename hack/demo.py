"""`make demo`: a canary rollout on the local cluster, end to end, by itself.

1. The cluster, the CRD and the operator; the examples/ applied in the namespace `examples`.
2. In the namespace `demo`: real model servers for every pod (started from the pod templates the
   operator generates), a Prometheus scraping them and traffic split the way the API server says.
3. ModelDeployment `fraud` at v1; then v2, whose model raises on predict for a share of the
   inputs (rolled back automatically); then v3, a good model (promoted).

A live view shows weight, error rate and p99 of both tracks against the thresholds (plain
progress lines when stdout is not a terminal). Everything stays up for exploring; the last line
states the outcome. `make cluster-down` stops it all.

`make demo` runs it from the repository root, inside the test bed's network namespace:
`python hack/testbed.py exec -- python -m hack.demo`.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from rich.console import Console, Group
from rich.live import Live
from rich.text import Text

from hack import dataplane, testbed
from modelpilot.analysis.builtin import BUILTIN
from modelpilot.analysis.provider import PrometheusProvider, ProviderError
from modelpilot.analysis.queries import render
from modelpilot.api.crd import KINDS
from modelpilot.api.models import API_VERSION, GROUP, KIND, PLURAL, VERSION
from modelpilot.cli.view import plain_line
from modelpilot.cli.view import render as render_view
from tests.support import testmodels

ROOT = Path(__file__).resolve().parent.parent
NAMESPACE, EXAMPLES_NAMESPACE, NAME = "demo", "examples", "fraud"
HOSTNAME = f"{NAME}.{NAMESPACE}.test"
PHASE_TIMEOUT = 240.0
console = Console(soft_wrap=True)


def say(message: str) -> None:
    console.print(f"[bold cyan]==>[/] {message}")


def manifest(version: str, uri: str) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION, "kind": KIND,
        "metadata": {"name": NAME, "namespace": NAMESPACE},
        "spec": {
            "model": {"version": version, "uri": uri, "format": "sklearn"},
            "replicas": 2,
            # Pods the harness runs as real processes, on a port clear of the gateway's own.
            "runtime": dataplane.bridged_runtime(),
            "rollout": {"strategy": "Canary", "canary": {
                # Through the test bed's real gateway: envoy applies the weights per request.
                "trafficRouting": {"gatewayAPI": {"parentRefs": [dataplane.gateway_parent_ref()],
                                                  "hostnames": [HOSTNAME]}},
                "steps": [20, 50], "interval": "5s", "initialDelay": "5s", "failureThreshold": 2,
                "progressDeadline": "2m",
                "analysis": {"minRequests": 10, "metrics": [
                    {"name": "error-rate", "max": 1},
                    {"name": "latency-p99", "max": 250},
                ]},
            }},
        },
    }


class Demo:
    def __init__(self) -> None:
        self.cluster = testbed.Cluster(workdir=Path(os.environ.get("MODELPILOT_CLUSTER_DIR",
                                                                   ROOT / ".cluster")).resolve())
        self.work = self.cluster.workdir / "demo"
        self.custom: client.CustomObjectsApi
        self.prometheus_url = ""

    # -- set-up --------------------------------------------------------------------------------
    def setup(self) -> None:
        self.cluster.up()
        say("installing the ModelDeployment CRD")
        self.cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
        self.cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                             *(f"crd/{kind.crd_name}" for kind in KINDS))
        api = config.new_client_from_config(config_file=str(self.cluster.kubeconfig))
        self.custom = client.CustomObjectsApi(api)
        for ns in (NAMESPACE, EXAMPLES_NAMESPACE):
            self.cluster.kubectl("create", "namespace", ns, check=False)
        self._fresh_start()

        say("starting model servers, Prometheus and traffic for namespace demo (hack.world)")
        world_dir = self.work / "world"
        (world_dir / "world.json").unlink(missing_ok=True)
        testbed.start_background(self.cluster.workdir, "world", [
            # A module of the package, like this one: the child inherits the working directory
            # (the root) or PYTHONPATH that made `hack` importable here.
            sys.executable, "-m", "hack.world", "--namespace", NAMESPACE, "--name", NAME,
            "--kubeconfig", str(self.cluster.kubeconfig), "--workdir", str(world_dir)])
        deadline = time.monotonic() + 60
        while not (world_dir / "world.json").exists():
            if time.monotonic() > deadline:
                raise RuntimeError(f"the world did not start; see {self.cluster.workdir / 'world.log'}")
            time.sleep(0.2)
        self.prometheus_url = json.loads((world_dir / "world.json").read_text())["prometheus"]

        say(f"starting the operator (log {self.cluster.workdir / 'operator.log'})")
        env = dict(os.environ, KUBECONFIG=str(self.cluster.kubeconfig), MODELPILOT_PROMETHEUS_URL=self.prometheus_url,
                   MODELPILOT_SCRAPE_INTERVAL="1", MODELPILOT_RESYNC_SECONDS="10", MODELPILOT_METRICS_PORT="0")
        testbed.start_background(self.cluster.workdir, "operator", [
            str(ROOT / ".venv" / "bin" / "modelpilot"), "operator", "--log-format", "plain",
            "--namespace", NAMESPACE, "--namespace", EXAMPLES_NAMESPACE], env=env)

        say(f"applying examples/ in namespace {EXAMPLES_NAMESPACE}")
        console.print(self.cluster.kubectl("apply", "-n", EXAMPLES_NAMESPACE, "-f", str(ROOT / "examples")).stdout,
                      end="")

    def _fresh_start(self) -> None:
        try:
            self.custom.delete_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, NAME)
            say("removing the previous demo's ModelDeployment")
        except ApiException as err:
            if err.status != 404:
                raise
        deadline = time.monotonic() + 60
        while self._get() is not None and time.monotonic() < deadline:
            time.sleep(0.5)

    def models(self) -> dict[str, str]:
        directory = self.work / "models"
        uris = {
            "v1": testmodels.write_iris(directory / "v1"),
            "v2": testmodels.write_failing(directory / "v2", error_ratio=0.3),
            "v3": testmodels.write_iris(directory / "v3"),
        }
        return {version: f"file://{path}" for version, path in uris.items()}

    # -- observing -----------------------------------------------------------------------------
    def _get(self) -> dict[str, Any] | None:
        try:
            return dict(self.custom.get_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, NAME))
        except ApiException as err:
            if err.status == 404:
                return None
            raise

    def live_metrics(self, obj: dict[str, Any]) -> dict[str, dict[str, float | None]]:
        """Each track's built-in metrics over 10 s, selected by the track's revision (from status)."""
        provider = PrometheusProvider(self.prometheus_url, timeout=2)
        status = obj.get("status") or {}
        values: dict[str, dict[str, float | None]] = {}
        for track in ("stable", "canary"):
            values[track] = {}
            revision = (status.get(track) or {}).get("revision")
            for metric, template in BUILTIN.items():
                if not revision:
                    values[track][metric] = None
                    continue
                query = render(template, {"namespace": NAMESPACE, "name": NAME, "track": track, "revision": revision,
                                          "window": "10s"})
                try:
                    values[track][metric] = provider.query(query)
                except ProviderError:
                    values[track][metric] = None
        return values

    def measured(self, obj: dict[str, Any]) -> str:
        """The split measured at the client (answering pods, last 5 s) beside the operator's weight."""
        try:
            body = json.loads((self.work / "world" / "split.json").read_text())
        except (OSError, ValueError):
            return "measured: (no traffic yet)"
        weight = int(((obj.get("status") or {}).get("canary") or {}).get("weight") or 0)
        split = body.get("split") or {}
        parts = ", ".join(f"{track} {share * 100:.1f}%" for track, share in sorted(split.items()))
        return f"weight {weight}% -> measured through {body.get('entry')}: {parts} of {body.get('requests')} requests"

    def watch(self, title: str, done: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        """Show the rollout live until `done(obj)`; plain lines when stdout is not a terminal."""
        say(title)
        deadline = time.monotonic() + PHASE_TIMEOUT
        obj: dict[str, Any] | None = None
        if console.is_terminal:
            with Live(console=console, refresh_per_second=2) as live:
                while time.monotonic() < deadline:
                    obj = self._get() or {}
                    live.update(Group(render_view(obj, self.live_metrics(obj)), Text(self.measured(obj))))
                    if done(obj):
                        return obj
                    time.sleep(1)
        else:
            last = ""
            while time.monotonic() < deadline:
                obj = self._get() or {}
                line = plain_line(obj, self.live_metrics(obj))
                status_part = line.split(" stable.")[0]
                if status_part != last:
                    print(f"    {time.strftime('%H:%M:%S')} {line}", flush=True)
                    print(f"             {self.measured(obj)}", flush=True)
                    last = status_part
                if done(obj):
                    return obj
                time.sleep(1)
        raise TimeoutError(f"{title}: not done within {PHASE_TIMEOUT:.0f}s; last status: {(obj or {}).get('status')}")

    # -- the story -----------------------------------------------------------------------------
    def run(self) -> bool:
        self.setup()
        uris = self.models()

        def stable_is(version: str) -> Callable[[dict[str, Any]], bool]:
            def check(obj: dict[str, Any]) -> bool:
                status = obj.get("status") or {}
                return (status.get("stable") or {}).get("version") == version and not status.get("canary") \
                    and status.get("phase") == "Ready"
            return check

        def rolled_back(obj: dict[str, Any]) -> bool:
            return ((obj.get("status") or {}).get("canary") or {}).get("state") == "RolledBack"

        say("v1: a good iris model, 2 replicas")
        self.custom.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, manifest("v1", uris["v1"]))
        self.watch("waiting for v1 to serve", stable_is("v1"))

        say("v2: a model that raises on predict for 30% of the inputs")
        self.custom.patch_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, NAME,
                                                   {"spec": {"model": {"version": "v2", "uri": uris["v2"]}}})
        failed = self.watch("canary v2: expect an automatic rollback", rolled_back)
        message = next((c["message"] for c in failed["status"]["conditions"] if c["type"] == "Degraded"), "")
        console.print(f"    [red]rolled back:[/] {message}")

        say("v3: a good model")
        self.custom.patch_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, NAME,
                                                   {"spec": {"model": {"version": "v3", "uri": uris["v3"]}}})
        self.watch("canary v3: expect promotion through 20% and 50%", stable_is("v3"))
        console.print("    [green]promoted:[/] v3 is stable, the canary is at zero")
        self.wait_measured("stable", 1.0)
        console.print(f"    {self.measured(self._get() or {})}")
        return True

    def wait_measured(self, track: str, share: float, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if json.loads((self.work / "world" / "split.json").read_text())["split"].get(track) == share:
                    return
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.5)

    def epilogue(self) -> None:
        kubeconfig = self.cluster.kubeconfig
        selector = f'namespace="{NAMESPACE}", model_deployment="{NAME}"'
        console.print()
        console.print("Explore:  make shell   (inside the test bed's network namespace, KUBECONFIG set), then")
        console.print(f"          curl -H 'Host: {HOSTNAME}' http://127.0.0.1:{dataplane.GATEWAY_PORT}/v2/models/{NAME}"
                      f"  (through the gateway; kubeconfig {kubeconfig})")
        console.print(f"          kubectl -n {NAMESPACE} get mdep,deploy,pods; kubectl -n {NAMESPACE} describe mdep "
                      f"{NAME}; kubectl -n {EXAMPLES_NAMESPACE} get mdep")
        console.print(f"Prometheus: {self.prometheus_url}  (queries to copy:)")
        console.print(f"  sum by (track, code) (rate(modelpilot_requests_total{{{selector}}}[30s]))")
        console.print(f"  1000 * histogram_quantile(0.99, sum by (le, track) "
                      f"(rate(modelpilot_request_duration_seconds_bucket{{{selector}}}[30s])))")
        console.print("Stop everything: make cluster-down")


def main() -> int:
    demo = Demo()
    try:
        ok = demo.run()
    except Exception as err:  # the demo must end with a one-line outcome, whatever happened
        console.print(f"[red]{type(err).__name__}: {err}[/]")
        demo.epilogue() if demo.prometheus_url else None
        print("Demo outcome: FAILED (see above; logs in .cluster/operator.log and .cluster/world.log)")
        return 1
    demo.epilogue()
    print("Demo outcome: v2 was rolled back automatically and v3 was promoted." if ok else "Demo outcome: FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
