"""spec.runtime.protocol and grpcPort: what the builders make of it (container args and ports,
Services, the edge Service, probes, the serving revision). What the API accepts (pydantic and the
CRD's CEL rules alike) is in the shared tables of tests/unit/spec_cases.py."""

from __future__ import annotations

from typing import Any

import pytest

from modelpilot.api.models import parse_spec
from modelpilot.resources import BuildSettings, build_deployment, build_services, serving_revision
from modelpilot.resources.daemonset import build_daemonset, build_edge_service
from tests.unit.spec_cases import spec

OWNER = {"apiVersion": "modelpilot.io/v1alpha1", "kind": "ModelDeployment", "name": "fraud", "uid": "u-1"}
SETTINGS = BuildSettings()
CUSTOM = {"model_format": "custom"}


def _runtime(**runtime: Any) -> dict[str, Any]:
    return spec(runtime=runtime)


# -------------------------------------------------------------------------------------- builders


def _server(raw: dict[str, Any]) -> dict[str, Any]:
    deployment = build_deployment(parse_spec(raw), name="fraud", namespace="ml", owner=OWNER, settings=SETTINGS,
                                  replicas=1)
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    return container


def _ports(ports: list[dict[str, Any]], key: str) -> list[tuple[str, Any]]:
    return [(p["name"], p[key]) for p in ports]


# (case, raw spec, args after `serve --model-dir DIR`, container ports)
CONTAINERS: list[tuple[str, dict[str, Any], list[str] | None, list[tuple[str, int]]]] = [
    ("default", spec(), ["--port", "8080"], [("http", 8080)]),
    ("rest", _runtime(protocol="rest", grpcPort=9000), ["--port", "8080"], [("http", 8080)]),
    ("grpc", _runtime(protocol="grpc"), ["--port", "8080", "--grpc-port", "8081"], [("http", 8080), ("grpc", 8081)]),
    ("both-ports-args", _runtime(protocol="both", port=8000, grpcPort=8001, args=["--log-json"]),
     ["--port", "8000", "--grpc-port", "8001", "--log-json"], [("http", 8000), ("grpc", 8001)]),
    ("custom-image", spec(**CUSTOM, runtime={"image": "x/y:1", "protocol": "both", "args": ["--grpc", "9001"],
                                             "grpcPort": 9001}),
     ["--grpc", "9001"], [("http", 8080), ("grpc", 9001)]),  # its own args: no flag added
]


@pytest.mark.parametrize(("case", "raw", "args", "ports"), CONTAINERS, ids=[c[0] for c in CONTAINERS])
def test_server_container(case: str, raw: dict[str, Any], args: list[str], ports: list[tuple[str, int]]) -> None:
    container = _server(raw)
    given = container["args"]
    assert (given[3:] if given[:1] == ["serve"] else given) == args
    assert _ports(container["ports"], "containerPort") == ports
    assert all(p["protocol"] == "TCP" for p in container["ports"])
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert container[probe]["httpGet"]["port"] == "http"  # health stays on REST whatever the protocol


@pytest.mark.parametrize(("raw", "ports"), [
    (spec(), [("http", 80)]),
    (_runtime(protocol="rest"), [("http", 80)]),
    (_runtime(protocol="grpc", grpcPort=9000), [("http", 80), ("grpc", 8081)]),
    (_runtime(protocol="both"), [("http", 80), ("grpc", 8081)]),
], ids=["default", "rest", "grpc", "both"])
def test_services(raw: dict[str, Any], ports: list[tuple[str, int]]) -> None:
    services = build_services(parse_spec(raw), name="fraud", namespace="ml", owner=OWNER)
    assert [s["metadata"]["name"] for s in services] == ["fraud", "fraud-stable", "fraud-canary"]
    for service in services:
        assert _ports(service["spec"]["ports"], "port") == ports
        assert _ports(service["spec"]["ports"], "targetPort") == [(name, name) for name, _ in ports]
        grpc = [p for p in service["spec"]["ports"] if p["name"] == "grpc"]
        assert all(p["appProtocol"] == "kubernetes.io/h2c" for p in grpc)
        assert all("appProtocol" not in p for p in service["spec"]["ports"] if p["name"] == "http")


def test_edge_service_and_daemonset() -> None:
    both = parse_spec({**_runtime(protocol="both"), "target": "Edge"})
    assert _ports(build_edge_service("fraud", "ml", OWNER)["spec"]["ports"], "port") == [("http", 80)]
    rest = parse_spec(spec(target="Edge"))
    assert _ports(build_edge_service("fraud", "ml", OWNER, rest.runtime.serves_grpc)["spec"]["ports"],
                  "port") == [("http", 80)]  # fmt: skip
    assert _ports(build_edge_service("fraud", "ml", OWNER, both.runtime.serves_grpc)["spec"]["ports"], "port") == [
        ("http", 80), ("grpc", 8081)]
    daemonset = build_daemonset(both, name="fraud", namespace="ml", owner=OWNER, settings=SETTINGS, track="stable",
                                canary_nodes=[])
    [container] = daemonset["spec"]["template"]["spec"]["containers"]
    assert _ports(container["ports"], "containerPort") == [("http", 8080), ("grpc", 8081)]
    assert "--grpc-port" in container["args"]


@pytest.mark.parametrize(("raw", "same"), [
    (_runtime(protocol="rest"), True),  # the default written out: no rollout
    (_runtime(grpcPort=8081), True),
    (_runtime(protocol="both"), False),  # a pod template change: a rollout
    (_runtime(protocol="rest", grpcPort=9000), False),
], ids=["explicit-rest", "explicit-grpc-port", "both", "rest-other-grpc-port"])
def test_serving_revision(raw: dict[str, Any], same: bool) -> None:
    assert (serving_revision(parse_spec(raw)) == serving_revision(parse_spec(spec()))) == same
