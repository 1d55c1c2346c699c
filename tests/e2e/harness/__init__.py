"""The e2e canary harness: real model-server processes for KWOK pods (bound to their pod IPs),
Prometheus scraping them, and traffic through the real data plane (Envoy Gateway, kube-proxy).

    from tests.e2e.harness.fixtures import canary_world  # noqa: F401  (fixture)

    def test_x(canary_world, solo_namespace, cluster, tmp_path):
        world = canary_world(solo_namespace, "fraud", rate=50)       # Prometheus, bridge, load
        op = OperatorProcess(..., extra_env=world.operator_env()).start()   # MODELPILOT_PROMETHEUS_URL
        ...create the ModelDeployment...
        world.wait_serving(stable=2)                  # processes ready, load generator routing to them
        world.wait_split({"stable": 0.8, "canary": 0.2}, tolerance=0.07)
        world.loadgen.outcomes(track="canary")        # Counter of HTTP codes / dropped / errors

Parts, usable alone: PodProcessBridge (kubelet stand-in: runs the pod template's containers,
owns pod readiness, writes file_sd targets), PrometheusHub (Prometheus over file_sd; stop/start
keep port and data), LoadGenerator (OIP v2 traffic to the gateway or the Service's ClusterIP,
counted per track of the answering pod; per-request headers), ConversionReporter (a seeded
conversion per 200 answer at its track's rate, as Prometheus counters; CanaryWorld.add_reporter
has the world's Prometheus scrape it). Fixtures: tests.e2e.harness.fixtures (canary_world, worker_prometheus).

Known limits: KWOK marks a new pod Ready an instant before the bridge can say otherwise;
Prometheus applies target changes at most every 5 s; the harness runs pods only on KWOK nodes.
"""

from tests.e2e.harness.bridge import PodProcessBridge, PodView, wait_serving
from tests.e2e.harness.conversions import ConversionReporter
from tests.e2e.harness.loadgen import LoadGenerator, Request
from tests.e2e.harness.payload import iris_payload
from tests.e2e.harness.process import PodProcess, ProcessInfo
from tests.e2e.harness.prometheus import PrometheusHub, write_targets
from tests.e2e.harness.template import ProcessPlan, plan_pod
from tests.e2e.harness.transport import Entry
from tests.e2e.harness.world import CanaryWorld

__all__ = [
    "CanaryWorld",
    "ConversionReporter",
    "Entry",
    "LoadGenerator",
    "PodProcess",
    "PodProcessBridge",
    "PodView",
    "ProcessInfo",
    "ProcessPlan",
    "PrometheusHub",
    "Request",
    "iris_payload",
    "plan_pod",
    "wait_serving",
    "write_targets",
]
