"""The canary scenario's shared parts: a namespace with its own world (bridge, Prometheus, load
generator), its own operator process(es), real model files, and the helpers the tests read the
ModelDeployment with."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from hack import dataplane
from modelpilot.api.models import API_VERSION, GROUP, KIND, PLURAL, VERSION
from modelpilot.resources.labels import ANNOTATION_ACTION
from tests.e2e import mdep
from tests.e2e.harness.world import CanaryWorld
from tests.e2e.operator import OperatorProcess
from tests.e2e.support import ClusterHandle, wait_for
from tests.support import testmodels

NAME = "fraud"
INTERVAL = 5  # seconds: short, as the suite must stay fast
SCRAPE = 1  # the harness Prometheus scrapes every second


def _profiled_iris(directory: Path) -> Path:
    model = testmodels.write_iris(directory)
    testmodels.write_profile(directory)
    return model


@dataclass
class Env:
    namespace: str
    world: CanaryWorld
    operator: OperatorProcess
    custom: client.CustomObjectsApi
    apps: client.AppsV1Api
    core: client.CoreV1Api
    models: Path

    # -- models --------------------------------------------------------------------------------
    def model(self, kind: str, **kw: Any) -> str:
        """A real model file of `kind` (good, good2, failing, slow, corrupt, shifted, or profiled: the
        good iris model with its drift profile beside it) as a file:// URI."""
        directory = self.models / f"{kind}-{len(list(self.models.iterdir()))}"
        writer: Callable[..., Path] = {
            "good": testmodels.write_iris, "good2": testmodels.write_iris, "failing": testmodels.write_failing,
            "slow": testmodels.write_slow, "corrupt": testmodels.write_corrupt, "shifted": testmodels.write_shifted,
            "profiled": _profiled_iris,
        }[kind]
        return f"file://{writer(directory, **kw)}"

    # -- the object ----------------------------------------------------------------------------
    def get(self) -> dict[str, Any]:
        obj = mdep.get(self.custom, self.namespace, NAME)
        assert obj is not None
        return obj

    def canary(self) -> dict[str, Any]:
        return dict((self.get().get("status") or {}).get("canary") or {})

    def set_version(self, version: str, uri: str) -> None:
        mdep.patch_spec(self.custom, self.namespace, NAME, {"model": {"version": version, "uri": uri}})

    def annotate(self, action: str) -> None:
        self.custom.patch_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, NAME,
                                                   {"metadata": {"annotations": {ANNOTATION_ACTION: action}}})

    def wait_canary(self, probe: Callable[[dict[str, Any]], bool], what: str, timeout: float = 120) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            canary = self.canary()
            return canary if canary and probe(canary) else None
        try:
            return wait_for(check, timeout=timeout, interval=0.3, what=what)
        except AssertionError as err:
            raise AssertionError(f"{err}\n{self.debug()}") from None

    def wait_stable(self, version: str, timeout: float = 150) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            obj = self.get()
            status = obj.get("status") or {}
            ready = mdep.condition(obj, "Ready")
            if (status.get("stable") or {}).get("version") == version and not status.get("canary") and \
                    ready and ready["status"] == "True":
                return obj
            return None
        try:
            return wait_for(check, timeout=timeout, interval=0.3, what=f"stable {version}, no canary, Ready")
        except AssertionError as err:
            raise AssertionError(f"{err}\n{self.debug()}") from None

    def events(self) -> list[client.CoreV1Event]:
        items = self.core.list_namespaced_event(self.namespace, field_selector=f"involvedObject.name={NAME}").items
        return sorted(items, key=lambda e: (e.first_timestamp or e.event_time or dt.datetime.min.replace(
            tzinfo=dt.UTC)))

    def reasons(self) -> list[str]:
        return [e.reason for e in self.events()]

    def wait_reasons(self, *wanted: str, timeout: float = 30) -> list[str]:
        """Events are posted after the status write they follow: wait for them, never race them."""
        return wait_for(lambda: (r := self.reasons()) and all(w in r for w in wanted) and r, timeout=timeout,
                        what=f"events {wanted}")

    def deployment(self, name: str) -> client.V1Deployment:
        return self.apps.read_namespaced_deployment(name, self.namespace)

    def debug(self) -> str:
        status = (mdep.get(self.custom, self.namespace, NAME) or {}).get("status")
        tail = "\n".join(self.operator.logs().splitlines()[-40:])
        return f"status: {status}\nevents: {[(e.reason, e.message) for e in self.events()]}\n" \
               f"operator log tail:\n{tail}\n{self.world.describe()}"


def spec(uri: str, version: str = "v1", *, replicas: int = 2, steps: tuple[int, ...] = (20, 50),
         failure_threshold: int = 2, progress_deadline: str = "60s", min_requests: int = 10,
         metrics: list[dict[str, Any]] | None = None, gateway: str | None = None,
         canary_fields: dict[str, Any] | None = None, rollout_fields: dict[str, Any] | None = None,
         **analysis: Any) -> dict[str, Any]:
    """`gateway`: the hostname of an HTTPRoute on the test bed's shared Gateway (gatewayAPI mode).
    `canary_fields` / `rollout_fields`: more of spec.rollout.canary / spec.rollout (shadow, match,
    strategy, experiment, ...)."""
    canary: dict[str, Any] = {
        "steps": list(steps), "interval": f"{INTERVAL}s", "initialDelay": f"{INTERVAL}s",
        "failureThreshold": failure_threshold, "progressDeadline": progress_deadline,
        "analysis": {"minRequests": min_requests, **analysis},
    }
    if metrics is not None:
        canary["analysis"]["metrics"] = metrics
    if gateway:
        canary["trafficRouting"] = {"gatewayAPI": {"parentRefs": [dataplane.gateway_parent_ref()],
                                                   "hostnames": [gateway]}}
    canary.update(canary_fields or {})
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": NAME},
            "spec": {"model": {"version": version, "uri": uri, "format": "sklearn"}, "replicas": replicas,
                     "runtime": dataplane.bridged_runtime(),
                     "rollout": {"strategy": "Canary", "canary": canary, **(rollout_fields or {})}}}


def open_env(local_cluster: ClusterHandle, world: CanaryWorld, custom: client.CustomObjectsApi,
             apps: client.AppsV1Api, core: client.CoreV1Api, namespace: str, tmp_path: Path) -> Iterator[Env]:
    """An Env around `world`: its own operator process for `namespace`, stopped at the end."""
    operator = OperatorProcess(kubeconfig=local_cluster.kubeconfig, namespaces=[namespace],
                               log_path=tmp_path / "operator.log", resync_seconds=5,
                               extra_env={**world.operator_env(), "MODELPILOT_SCRAPE_INTERVAL": str(SCRAPE),
                                          "MODELPILOT_QUERY_TIMEOUT": "2"}).start()
    models = tmp_path / "models"
    models.mkdir()
    yield Env(namespace, world, operator, custom, apps, core, models)
    operator.stop()


@pytest.fixture
def env(local_cluster: ClusterHandle, crd: str, canary_world: Callable[..., CanaryWorld],
        custom: client.CustomObjectsApi, apps: client.AppsV1Api, core: client.CoreV1Api, solo_namespace: str,
        tmp_path: Path) -> Iterator[Env]:
    world = canary_world(solo_namespace, NAME, rate=50.0)
    yield from open_env(local_cluster, world, custom, apps, core, solo_namespace, tmp_path)


def start_v1(env: Env, **kw: Any) -> None:
    mdep.create(env.custom, env.namespace, spec(env.model("good"), "v1", **kw))
    mdep.wait_condition(env.custom, env.namespace, NAME, "Ready", "True", timeout=90)
    env.world.wait_serving(stable=kw.get("replicas", 2))
