"""pytest fixtures for the harness. Use them from a test module (import them) or from conftest
(`from tests.e2e.harness.fixtures import canary_world, worker_prometheus  # noqa: F401`).

- `worker_prometheus` (session): one PrometheusHub per xdist worker; a shared operator can get
  `worker_prometheus.url` as MODELPILOT_PROMETHEUS_URL before it starts.
- `canary_world` (function): a factory `canary_world(namespace, name, **kwargs) -> CanaryWorld`
  (started); every world is stopped at teardown, and its state printed (pytest shows it when
  the test failed). By default each world has its own Prometheus; pass
  `prometheus=worker_prometheus` to share the worker's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tests.e2e.harness.prometheus import PrometheusHub
from tests.e2e.harness.world import CanaryWorld
from tests.e2e.support import ClusterHandle

WorldFactory = Callable[..., CanaryWorld]


@pytest.fixture(scope="session")
def worker_prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusHub]:
    hub = PrometheusHub(tmp_path_factory.mktemp("prometheus")).start()
    yield hub
    hub.stop()


@pytest.fixture
def canary_world(api_client: client.ApiClient, cluster: ClusterHandle, tmp_path: Path) -> Iterator[WorldFactory]:
    worlds: list[CanaryWorld] = []

    def make(namespace: str, name: str, **kwargs: Any) -> CanaryWorld:
        kwargs.setdefault("workdir", tmp_path / f"world-{name}-{len(worlds)}")
        kwargs.setdefault("gateway", cluster.gateway)
        world = CanaryWorld(api_client, namespace, name, **kwargs)
        worlds.append(world)
        return world.start()

    yield make
    for world in reversed(worlds):
        try:
            print(world.describe())
        finally:
            world.stop()
