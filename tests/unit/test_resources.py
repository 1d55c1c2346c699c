"""Builders: golden children for every variant, plus the properties every child must have.

Regenerate the goldens after an intended change with

    MODELPILOT_UPDATE_GOLDEN=1 .venv/bin/pytest tests/unit/test_resources.py

and review the diff of tests/unit/golden/.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelpilot.api.models import ModelDeploymentSpec, parse_spec
from modelpilot.resources import (
    BuildSettings,
    accelerator_resource,
    build_deployment,
    build_hpa,
    build_services,
    describe_accelerator,
    desired_children,
    desired_replicas,
    label_value,
    owner_reference,
    placement,
    scale_selector,
    service_url,
    serving_revision,
    unwanted_children,
)
from tests.unit.spec_cases import spec

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("MODELPILOT_UPDATE_GOLDEN") == "1"
OWNER = {
    "apiVersion": "modelpilot.io/v1alpha1",
    "kind": "ModelDeployment",
    "name": "fraud",
    "uid": "6f1f0ad3-3c55-4b4b-9a43-2d7a4f0e9a11",
}
SETTINGS = BuildSettings()
A100 = "NVIDIA-A100-SXM4-80GB"


def cpu_sklearn() -> dict[str, Any]:
    return spec(
        model_version="2026-11-02",
        replicas=2,
        resources={"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "2Gi"}},
    )


# (case, raw spec, track, settings)
CASES: list[tuple[str, dict[str, Any], str, BuildSettings]] = [
    ("cpu-sklearn", cpu_sklearn(), "stable", SETTINGS),
    (
        "gpu-a100",
        spec(
            model_format="onnx",
            model_uri="gs://models/fraud/v7",
            resources={"requests": {"cpu": 2, "memory": "8Gi"}, "limits": {"memory": "16Gi"}},
            accelerator={"vendor": "nvidia", "count": 1, "product": A100},
        ),
        "stable",
        SETTINGS,
    ),
    (
        "amd",
        spec(accelerator={"vendor": "amd", "count": 2, "product": "Instinct-MI300X"}),
        "stable",
        BuildSettings(gpu_product_label="amd.com/gpu.product-name"),
    ),
    ("intel", spec(accelerator={"vendor": "intel"}), "stable", SETTINGS),
    (
        "mig",
        spec(accelerator={"vendor": "nvidia", "resourceName": "nvidia.com/mig-1g.10gb", "product": A100}),
        "stable",
        SETTINGS,
    ),
    (
        "autoscaled",
        spec(
            resources={"requests": {"cpu": "250m"}},
            replicas=3,
            autoscaling={"minReplicas": 2, "maxReplicas": 8, "targetCPUUtilization": 70},
        ),
        "stable",
        SETTINGS,
    ),
    ("pvc", spec(model_uri="pvc://model-store/fraud/v7"), "stable", SETTINGS),
    ("storage-secret", spec(model_storageSecretRef={"name": "s3-creds"}), "stable", SETTINGS),
    (
        "http-secret",
        spec(model_uri="https://example.com/m.onnx", model_format="onnx", model_storageSecretRef={"name": "token"}),
        "stable",
        SETTINGS,
    ),
    (
        "user-placement",
        spec(
            accelerator={
                "vendor": "nvidia",
                "product": A100,
                "nodeSelector": {"topology.kubernetes.io/zone": "eu-west-1a", "nvidia.com/gpu.product": "ignored"},
                "tolerations": [
                    {"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"},
                    {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
                    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute",
                     "tolerationSeconds": 30},
                ],
            }
        ),
        "stable",
        SETTINGS,
    ),
    ("canary-track", cpu_sklearn(), "canary", SETTINGS),
    (
        "gateway-api",
        spec(rollout={"canary": {"trafficRouting": {"gatewayAPI": {"parentRefs": [{"name": "gw"}]}}}}),
        "stable",
        SETTINGS,
    ),
    (
        "custom-runtime",
        spec(
            model_format="custom",
            runtime={
                "image": "example.com/my-server:2",
                "port": 9000,
                "args": ["--workers", "2"],
                "env": [{"name": "LOG_LEVEL", "value": "debug"}, {"name": "EMPTY"}],
            },
        ),
        "stable",
        BuildSettings(fetch_image="ghcr.io/modelpilot/fetch:0.1.0"),
    ),
    (
        "runtime-override",
        spec(runtime={"image": "ghcr.io/modelpilot/runtime:0.2.0", "args": ["--log-json"]}),
        "stable",
        SETTINGS,
    ),
    (
        "format-image",
        spec(model_format="xgboost"),
        "stable",
        BuildSettings(runtime_images={"xgboost": "ghcr.io/modelpilot/runtime-xgb:0.1.0"}),
    ),
    (
        "fetch-settings",
        spec(model_storageSecretRef={"name": "s3-creds"}),
        "stable",
        BuildSettings(max_model_bytes=50 * 2**30, allow_link_local=True),
    ),
    ("grpc-both", spec(runtime={"protocol": "both", "args": ["--log-json"]}), "stable", SETTINGS),
    (
        "grpc-custom-runtime",
        spec(model_format="custom", runtime={"image": "example.com/my-server:2", "protocol": "grpc", "grpcPort": 9001}),
        "stable",
        SETTINGS,
    ),
]


def children_for(raw: dict[str, Any], track: str, settings: BuildSettings) -> list[dict[str, Any]]:
    parsed = parse_spec(raw)
    if track == "canary":
        return [
            build_deployment(
                parsed, name="fraud", namespace="ml", owner=OWNER, settings=settings, track="canary", replicas=1
            )
        ]
    return desired_children(parsed, name="fraud", namespace="ml", owner=OWNER, settings=settings)


@pytest.mark.parametrize(("case", "raw", "track", "settings"), CASES, ids=[c[0] for c in CASES])
def test_golden(case: str, raw: dict[str, Any], track: str, settings: BuildSettings) -> None:
    children = children_for(raw, track, settings)
    text = yaml.safe_dump_all(children, sort_keys=True, width=120)
    path = GOLDEN / f"{case}.yaml"
    if UPDATE or not path.exists():
        if not UPDATE and os.environ.get("CI"):
            pytest.fail(f"golden file {path.name} is missing (generate it with MODELPILOT_UPDATE_GOLDEN=1)")
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(text)
    assert text == path.read_text(), f"{path.name} differs; rerun with MODELPILOT_UPDATE_GOLDEN=1 if intended"


# ------------------------------------------------------------------- properties of every child


def walk(value: Any) -> Iterator[Any]:
    yield value
    if isinstance(value, dict):
        for item in value.values():
            yield from walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from walk(item)


ALL_CHILDREN = [(case, child) for case, raw, track, settings in CASES for child in children_for(raw, track, settings)]


@pytest.mark.parametrize(
    ("case", "child"), ALL_CHILDREN, ids=[f"{c}-{o['kind']}-{o['metadata']['name']}" for c, o in ALL_CHILDREN]
)
def test_every_child(case: str, child: dict[str, Any]) -> None:
    assert set(child) == {"apiVersion", "kind", "metadata", "spec"}  # no status
    assert None not in list(walk(child))
    meta = child["metadata"]
    assert meta["namespace"] == "ml"
    assert meta["labels"]["app.kubernetes.io/name"] == "fraud"
    assert meta["labels"]["app.kubernetes.io/managed-by"] == "modelpilot"
    assert meta["ownerReferences"] == [{**OWNER, "controller": True, "blockOwnerDeletion": True}]


DEPLOYMENTS = [(case, c) for case, c in ALL_CHILDREN if c["kind"] == "Deployment"]


@pytest.mark.parametrize(("case", "deployment"), DEPLOYMENTS, ids=[c for c, _ in DEPLOYMENTS])
def test_pod_security_restricted(case: str, deployment: dict[str, Any]) -> None:
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    for container in pod.get("initContainers", []) + pod["containers"]:
        ctx = container["securityContext"]
        assert ctx["allowPrivilegeEscalation"] is False
        assert ctx["capabilities"] == {"drop": ["ALL"]}
        assert ctx["readOnlyRootFilesystem"] is True
        assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    for volume in pod["volumes"]:
        assert set(volume) & {"emptyDir", "persistentVolumeClaim"}, volume  # no hostPath & co.


@pytest.mark.parametrize(("case", "deployment"), DEPLOYMENTS, ids=[c for c, _ in DEPLOYMENTS])
def test_selector_is_immutable_safe(case: str, deployment: dict[str, Any]) -> None:
    selector = deployment["spec"]["selector"]["matchLabels"]
    track = deployment["metadata"]["labels"]["modelpilot.io/track"]
    assert selector == {
        "app.kubernetes.io/name": "fraud",
        "app.kubernetes.io/managed-by": "modelpilot",
        "modelpilot.io/track": track,
    }
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= labels.items()
    assert "modelpilot.io/version" in labels
    strategy = deployment["spec"]["strategy"]
    assert strategy == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}


# ------------------------------------------------------------------------------- builder behaviour


def parsed(**changes: Any) -> ModelDeploymentSpec:
    return parse_spec(spec(**changes))


def server(deployment: dict[str, Any]) -> dict[str, Any]:
    return deployment["spec"]["template"]["spec"]["containers"][0]


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def stable(parsed_spec: ModelDeploymentSpec, settings: BuildSettings = SETTINGS) -> dict[str, Any]:
    return build_deployment(
        parsed_spec,
        name="fraud",
        namespace="ml",
        owner=OWNER,
        settings=settings,
        replicas=desired_replicas(parsed_spec),
    )


def test_autoscaling_leaves_replicas_to_the_hpa() -> None:
    scaled = parsed(replicas=4, autoscaling={"maxReplicas": 6})
    assert "replicas" not in stable(scaled)["spec"]
    hpa = build_hpa(scaled, name="fraud", namespace="ml", owner=OWNER)
    assert hpa is not None and hpa["spec"]["scaleTargetRef"]["name"] == "fraud"
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (1, 6)
    assert hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 80
    assert stable(parsed(replicas=4))["spec"]["replicas"] == 4
    assert stable(parsed(replicas=0))["spec"]["replicas"] == 0
    assert build_hpa(parsed(), name="fraud", namespace="ml", owner=OWNER) is None
    assert unwanted_children(parsed(), name="fraud") == [("autoscaling/v2", "HorizontalPodAutoscaler", "fraud"),
                                                         ("keda.sh/v1alpha1", "ScaledObject", "fraud")]
    assert unwanted_children(scaled, name="fraud") == [("keda.sh/v1alpha1", "ScaledObject", "fraud")]
    on_requests = parsed(autoscaling={"maxReplicas": 6, "metric": "requests"})
    assert build_hpa(on_requests, name="fraud", namespace="ml", owner=OWNER) is None
    assert unwanted_children(on_requests, name="fraud") == [("autoscaling/v2", "HorizontalPodAutoscaler", "fraud")]


def test_children_order_and_names() -> None:
    kids = desired_children(parsed(autoscaling={"maxReplicas": 3}), name="fraud", namespace="ml", owner=OWNER)
    assert [(c["kind"], c["metadata"]["name"]) for c in kids] == [
        ("Deployment", "fraud"),
        ("Service", "fraud"),
        ("Service", "fraud-stable"),
        ("Service", "fraud-canary"),
        ("HorizontalPodAutoscaler", "fraud"),
    ]


def test_canary_deployment() -> None:
    canary = build_deployment(
        parsed(), name="fraud", namespace="ml", owner=OWNER, settings=SETTINGS, track="canary", replicas=2
    )
    assert canary["metadata"]["name"] == "fraud-canary"
    assert canary["spec"]["replicas"] == 2
    assert canary["spec"]["selector"]["matchLabels"]["modelpilot.io/track"] == "canary"
    assert env_of(server(canary))["MODELPILOT_TRACK"] == "canary"
    with pytest.raises(ValueError, match="negative"):
        build_deployment(parsed(), name="fraud", namespace="ml", owner=OWNER, settings=SETTINGS, replicas=-1)


def test_server_env_and_probes() -> None:
    spec = parsed(model_version="v 7+build", runtime={"port": 9090})
    container = server(stable(spec))
    env = env_of(container)
    assert env == {
        "MODELPILOT_MODEL_DEPLOYMENT": "fraud",
        "MODELPILOT_MODEL_NAME": "fraud",
        "MODELPILOT_MODEL_VERSION": "v 7+build",
        "MODELPILOT_MODEL_URI": "s3://models/fraud/v1",
        "MODELPILOT_MODEL_FORMAT": "sklearn",
        "MODELPILOT_MODEL_DIR": "/mnt/models",
        "MODELPILOT_NAMESPACE": "ml",
        "MODELPILOT_PORT": "9090",
        "MODELPILOT_TRACK": "stable",
        "MODELPILOT_REVISION": serving_revision(spec),  # the runtime's metric label analyses select
        "MODELPILOT_DRAIN_SECONDS": "5",
        "MODELPILOT_POD_NAME": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}},
    }
    assert container["ports"] == [{"name": "http", "containerPort": 9090, "protocol": "TCP"}]
    assert container["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": "http"}
    assert container["args"][:5] == ["serve", "--model-dir", "/mnt/models", "--port", "9090"]


def test_version_label_is_sanitised() -> None:
    deployment = stable(parsed(model_version="v 7+build"))
    assert deployment["spec"]["template"]["metadata"]["labels"]["modelpilot.io/version"] == "v-7-build"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-02", "2026-11-02"),
        ("v1.2.3", "v1.2.3"),
        ("v1+build/7", "v1-build-7"),
        ("-v1-", "v1"),
        ("__x__", "x"),
    ],
)
def test_label_value(text: str, expected: str) -> None:
    assert label_value(text) == expected


def test_label_value_long_and_empty() -> None:
    long_a, long_b = "a" * 100, "a" * 99 + "b"
    assert len(label_value(long_a)) == 63 and label_value(long_a) != label_value(long_b)
    assert label_value("+++").isalnum()
    import re

    for text in (long_a, long_b, "+++", "x" * 62 + "-y"):
        assert re.fullmatch(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?", label_value(text))


def test_storage_secret_only_on_the_init_container() -> None:
    deployment = stable(parsed(model_storageSecretRef={"name": "creds"}))
    pod = deployment["spec"]["template"]["spec"]
    fetch = env_of(pod["initContainers"][0])
    assert fetch["AWS_ACCESS_KEY_ID"] == {
        "secretKeyRef": {"name": "creds", "key": "AWS_ACCESS_KEY_ID", "optional": False}
    }
    assert fetch["AWS_ENDPOINT_URL"]["secretKeyRef"]["optional"] is True
    assert not any("secretKeyRef" in e.get("valueFrom", {}) for e in server(deployment)["env"])


def test_pvc_mounts_the_claim_read_only_without_download() -> None:
    pod = stable(parsed(model_uri="pvc://store/a/b"))["spec"]["template"]["spec"]
    assert "initContainers" not in pod
    assert {"name": "model-pvc", "persistentVolumeClaim": {"claimName": "store", "readOnly": True}} in pod["volumes"]
    container = pod["containers"][0]
    assert {"name": "model-pvc", "mountPath": "/mnt/pvc", "readOnly": True} in container["volumeMounts"]
    assert env_of(container)["MODELPILOT_MODEL_DIR"] == "/mnt/pvc/a/b"
    no_path = stable(parsed(model_uri="pvc://store"))["spec"]["template"]["spec"]
    assert env_of(no_path["containers"][0])["MODELPILOT_MODEL_DIR"] == "/mnt/pvc"


def test_gpu_placement() -> None:
    accel = parsed(
        accelerator={"vendor": "nvidia", "count": 2, "product": A100, "nodeSelector": {"zone": "a"}}
    ).accelerator
    assert accel is not None
    result = placement(accel, BuildSettings(gpu_product_label="example.com/gpu"))
    assert result.resources == {"nvidia.com/gpu": "2"}
    assert result.node_selector == {"zone": "a", "example.com/gpu": A100}
    assert result.tolerations == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert describe_accelerator(accel, SETTINGS) == f"2 x nvidia.com/gpu on nodes with nvidia.com/gpu.product={A100}"
    assert placement(None, SETTINGS).resources == {}


@pytest.mark.parametrize(
    ("accelerator", "resource"),
    [
        ({"vendor": "nvidia"}, "nvidia.com/gpu"),
        ({"vendor": "amd"}, "amd.com/gpu"),
        ({"vendor": "intel"}, "gpu.intel.com/i915"),
        ({"vendor": "nvidia", "resourceName": "nvidia.com/mig-3g.40gb"}, "nvidia.com/mig-3g.40gb"),
    ],
)
def test_accelerator_resource(accelerator: dict[str, Any], resource: str) -> None:
    accel = parsed(accelerator=accelerator).accelerator
    assert accel is not None and accelerator_resource(accel) == resource
    resources = server(stable(parsed(accelerator=accelerator)))["resources"]
    assert resources["limits"][resource] == resources["requests"][resource] == "1"


def test_gpu_resources_merge_with_cpu_and_memory() -> None:
    deployment = stable(
        parsed(
            resources={"requests": {"cpu": 1}, "limits": {"memory": "4Gi"}},
            accelerator={"vendor": "nvidia", "count": 4},
        )
    )
    assert server(deployment)["resources"] == {
        "limits": {"memory": "4Gi", "nvidia.com/gpu": "4"},
        "requests": {"cpu": "1", "nvidia.com/gpu": "4"},
    }
    init = deployment["spec"]["template"]["spec"]["initContainers"][0]
    assert init["resources"] == {"limits": {"memory": "4Gi"}, "requests": {"cpu": "1"}}  # no GPU for the download


def test_services_select_by_routing_mode() -> None:
    replicas = build_services(parsed(), name="fraud", namespace="ml", owner=OWNER)
    assert replicas[0]["spec"]["selector"] == {
        "app.kubernetes.io/name": "fraud",
        "app.kubernetes.io/managed-by": "modelpilot",
    }
    assert replicas[1]["spec"]["selector"]["modelpilot.io/track"] == "stable"
    assert replicas[2]["spec"]["selector"]["modelpilot.io/track"] == "canary"
    gateway = build_services(
        parsed(rollout={"canary": {"trafficRouting": {"gatewayAPI": {"parentRefs": [{"name": "gw"}]}}}}),
        name="fraud",
        namespace="ml",
        owner=OWNER,
    )
    assert gateway[0]["spec"]["selector"]["modelpilot.io/track"] == "stable"
    for service in replicas:
        assert service["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]


def test_service_url_and_scale_selector() -> None:
    assert service_url("fraud", "ml") == "http://fraud.ml.svc.cluster.local"
    assert service_url("fraud", "ml", "corp.local") == "http://fraud.ml.svc.corp.local"
    assert scale_selector("fraud") == (
        "app.kubernetes.io/managed-by=modelpilot,app.kubernetes.io/name=fraud,modelpilot.io/track=stable"
    )


def test_owner_reference_requires_uid() -> None:
    with pytest.raises(ValueError, match="uid"):
        owner_reference({**OWNER, "uid": ""})


def test_builders_do_not_mutate_or_share_state() -> None:
    parsed_spec = parsed(accelerator={"vendor": "nvidia", "tolerations": [{"key": "a", "operator": "Exists"}]})
    before = parsed_spec.model_dump()
    first = desired_children(parsed_spec, name="fraud", namespace="ml", owner=OWNER)
    first[0]["spec"]["template"]["spec"]["tolerations"].append({"key": "mutated"})
    second = desired_children(parsed_spec, name="fraud", namespace="ml", owner=OWNER)
    assert {"key": "mutated"} not in second[0]["spec"]["template"]["spec"]["tolerations"]
    assert parsed_spec.model_dump() == before
