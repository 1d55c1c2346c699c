"""The e2e canary harness: real model-server processes for KWOK pods, Prometheus scraping them,
and traffic split by what the API server says.

    from tests.e2e.harness import CanaryWorld

    with CanaryWorld(api_client, namespace, "iris", rate=50) as world:
        world.wait_serving(stable=2)
        ...  # the operator moves the canary; world.traffic_split(10) shows where requests go

Parts, usable alone: PodProcessBridge (kubelet stand-in, file_sd targets, pod readiness),
PrometheusHub (Prometheus over file_sd), LoadGenerator (OIP v2 traffic by HTTPRoute weights or
Service endpoints). Fixtures for conftest: tests.e2e.harness.fixtures.
"""

from tests.e2e.harness.bridge import PodProcessBridge, PodView, wait_serving
from tests.e2e.harness.loadgen import Backend, LoadGenerator, Request, Routing, iris_payload
from tests.e2e.harness.process import PodProcess, ProcessInfo
from tests.e2e.harness.prometheus import PrometheusHub, write_targets
from tests.e2e.harness.template import ProcessPlan, plan_pod
from tests.e2e.harness.world import CanaryWorld

__all__ = [
    "Backend",
    "CanaryWorld",
    "LoadGenerator",
    "PodProcess",
    "PodProcessBridge",
    "PodView",
    "ProcessInfo",
    "ProcessPlan",
    "PrometheusHub",
    "Request",
    "Routing",
    "iris_payload",
    "plan_pod",
    "wait_serving",
    "write_targets",
]
