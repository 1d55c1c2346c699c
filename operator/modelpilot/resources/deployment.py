"""The serving Deployments: `<name>` (stable) and `<name>-canary`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modelpilot.api.models import ModelDeploymentSpec, SecretRef, Track
from modelpilot.api.serving import Runtime
from modelpilot.fetch_settings import ALLOW_LINK_LOCAL_ENV, DEFAULT_MAX_MODEL_BYTES, MAX_MODEL_BYTES_ENV, format_size
from modelpilot.monitoring import contract
from modelpilot.resources.common import MODEL_DIR, PVC_MOUNT, TMP_DIR, BuildSettings, Obj, object_meta, quantity
from modelpilot.resources.labels import (
    ANNOTATION_REVISION,
    LABEL_TRACK,
    LABEL_VERSION,
    common_labels,
    label_value,
    pod_labels,
    selector_labels,
)
from modelpilot.resources.placement import placement
from modelpilot.resources.revision import serving_revision

SERVER_CONTAINER = "server"
FETCH_CONTAINER = "fetch-model"
PORT_NAME = "http"
# With spec.runtime.protocol grpc or both: the gRPC server's container port (and the Services' port).
GRPC_PORT_NAME = "grpc"
READY_PATH = "/v2/health/ready"
LIVE_PATH = "/v2/health/live"

DRAIN_SECONDS = 5
# The model emptyDir's sizeLimit is BuildSettings.max_model_bytes (20 GiB by default), the same cap
# the fetch step (`modelpilot fetch`) enforces on a download or an archive expanding: a model too
# large fails the init container with a clear error instead of getting the pod evicted; without a
# limit a model (or an archive bomb) could fill the node's disk.

# Secret keys passed to the fetch init container as env variables of the same name. All are
# optional except the two S3 keys for s3:// URIs, whose absence should fail visibly at pod start
# (CreateContainerConfigError naming the key) rather than as an anonymous-access error.
STORAGE_SECRET_KEYS = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_ENDPOINT_URL",
    "GOOGLE_APPLICATION_CREDENTIALS_JSON",
    "HTTP_AUTHORIZATION",
)
_S3_REQUIRED = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")


def deployment_name(name: str, track: Track) -> str:
    return name if track == "stable" else f"{name}-canary"


def desired_replicas(spec: ModelDeploymentSpec) -> int | None:
    """Replicas to apply on the stable Deployment: None (leave the field to the HPA) when
    autoscaling is set, else spec.replicas."""
    return None if spec.autoscaling is not None else spec.replicas


def split_pvc_uri(uri: str) -> tuple[str, str]:
    """`pvc://claim/some/path` -> ("claim", "some/path")."""
    rest = uri.removeprefix("pvc://")
    claim, _, path = rest.partition("/")
    return claim, path.strip("/")


def model_dir(spec: ModelDeploymentSpec) -> str:
    """Where the server finds the model: the downloaded copy, or the path inside the claim."""
    if spec.model.uri.startswith("pvc://"):
        _, path = split_pvc_uri(spec.model.uri)
        return f"{PVC_MOUNT}/{path}" if path else PVC_MOUNT
    return MODEL_DIR


def container_security() -> Obj:
    # Pod Security "restricted", stated per container as well so that it holds for any pod
    # template the containers are copied into.
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def resource_requirements(requests: Mapping[str, Any], limits: Mapping[str, Any]) -> Obj:
    out: Obj = {}
    if limits:
        out["limits"] = {k: quantity(v) for k, v in sorted(limits.items())}
    if requests:
        out["requests"] = {k: quantity(v) for k, v in sorted(requests.items())}
    return out


def env_var(name: str, value: str) -> Obj:
    # The API server drops an empty value (omitempty); leaving it out keeps drift checks quiet.
    return {"name": name, "value": value} if value else {"name": name}


def _storage_env(spec: ModelDeploymentSpec) -> list[Obj]:
    return storage_secret_env(spec.model.storage_secret_ref, s3=spec.model.uri.startswith("s3://"))


def storage_secret_env(ref: SecretRef | None, *, s3: bool) -> list[Obj]:
    """The storage Secret's keys as env variables (secretKeyRef); the two AWS keys are required for s3."""
    if ref is None:
        return []
    return [
        {
            "name": key,
            "valueFrom": {
                "secretKeyRef": {"name": ref.name, "key": key, "optional": not (s3 and key in _S3_REQUIRED)}
            },
        }
        for key in STORAGE_SECRET_KEYS
    ]


def _fetch_settings_env(settings: BuildSettings) -> list[Obj]:
    # Only what differs from the fetch step's own defaults: default settings keep the pod template
    # (and so every existing pod) exactly as it was.
    env: list[Obj] = []
    if settings.max_model_bytes != DEFAULT_MAX_MODEL_BYTES:
        env.append(env_var(MAX_MODEL_BYTES_ENV, format_size(settings.max_model_bytes)))
    if settings.allow_link_local:
        env.append(env_var(ALLOW_LINK_LOCAL_ENV, "true"))
    return env


def _fetch_container(spec: ModelDeploymentSpec, image: str, resources: Obj, settings: BuildSettings) -> Obj:
    container: Obj = {
        "name": FETCH_CONTAINER,
        "image": image,
        "command": ["modelpilot"],
        "args": ["fetch", spec.model.uri, MODEL_DIR],
        "env": [
            env_var("MODELPILOT_MODEL_URI", spec.model.uri),
            env_var("MODELPILOT_MODEL_DIR", MODEL_DIR),
            *_fetch_settings_env(settings),
            *_storage_env(spec),
        ],
    }
    if resources:
        container["resources"] = resources
    container["securityContext"] = container_security()
    container["volumeMounts"] = [
        {"name": "tmp", "mountPath": TMP_DIR},
        {"name": "model", "mountPath": MODEL_DIR},
    ]
    return container


def _drift_env(spec: ModelDeploymentSpec) -> list[Obj]:
    """What the runtime must know of spec.monitoring.drift, only where it differs from the runtime's
    defaults: pods of a spec that leaves monitoring alone stay exactly as they were."""
    drift = spec.monitoring.drift
    if not drift.enabled:
        return [env_var(contract.ENV_ENABLED, "false")]
    env = []
    if drift.window_seconds != contract.DEFAULT_WINDOW_SECONDS:
        env.append(env_var(contract.ENV_WINDOW, f"{drift.window_seconds:g}"))
    if drift.max_features != contract.DEFAULT_MAX_FEATURES:
        env.append(env_var(contract.ENV_MAX_FEATURES, str(drift.max_features)))
    return env


def server_ports(runtime: Runtime) -> list[Obj]:
    """The serving container's ports: http, and grpc when the runtime serves gRPC."""
    ports: list[Obj] = [{"name": PORT_NAME, "containerPort": runtime.port, "protocol": "TCP"}]
    if runtime.serves_grpc:
        ports.append({"name": GRPC_PORT_NAME, "containerPort": runtime.grpc_port, "protocol": "TCP"})
    return ports


def _server_entrypoint(spec: ModelDeploymentSpec, directory: str) -> Obj:
    """command/args: the runtime's `modelpilot serve`, or a custom server's own entrypoint."""
    runtime = spec.runtime
    if spec.model.format == "custom":
        # A custom server keeps its own entrypoint; it gets the same env and the user's args.
        return {"args": list(runtime.args)} if runtime.args else {}
    grpc = ["--grpc-port", str(runtime.grpc_port)] if runtime.serves_grpc else []
    return {"command": ["modelpilot"],
            "args": ["serve", "--model-dir", directory, "--port", str(runtime.port), *grpc, *runtime.args]}


def _server_env(spec: ModelDeploymentSpec, *, name: str, namespace: str, track: Track, directory: str) -> list[Obj]:
    return [
        env_var("MODELPILOT_MODEL_DEPLOYMENT", name),
        env_var("MODELPILOT_MODEL_NAME", name),
        env_var("MODELPILOT_MODEL_VERSION", spec.model.version),
        env_var("MODELPILOT_MODEL_URI", spec.model.uri),
        env_var("MODELPILOT_MODEL_FORMAT", spec.model.format),
        env_var("MODELPILOT_MODEL_DIR", directory),
        env_var("MODELPILOT_NAMESPACE", namespace),
        env_var("MODELPILOT_PORT", str(spec.runtime.port)),
        env_var("MODELPILOT_TRACK", track),
        env_var("MODELPILOT_REVISION", serving_revision(spec)),
        # After SIGTERM the runtime keeps serving (not ready) this long, so gateways and kube-proxy
        # drop the endpoint before the port closes: no refused connections on scale-down.
        env_var("MODELPILOT_DRAIN_SECONDS", str(DRAIN_SECONDS)),
        # The runtime names the answering pod in a response header (x-modelpilot-pod).
        {"name": "MODELPILOT_POD_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}},
        *_drift_env(spec),
        *(env_var(e.name, e.value) for e in spec.runtime.env),
    ]


def _server_probes() -> Obj:
    """On the REST port whatever the protocol: it serves health and /metrics."""
    return {
        "readinessProbe": {"httpGet": {"path": READY_PATH, "port": PORT_NAME}, "periodSeconds": 5,
                           "failureThreshold": 3},
        "livenessProbe": {"httpGet": {"path": LIVE_PATH, "port": PORT_NAME}, "periodSeconds": 10,
                          "failureThreshold": 3},
        # Large models load slowly: give startup up to 10 minutes before liveness may restart it.
        "startupProbe": {"httpGet": {"path": LIVE_PATH, "port": PORT_NAME}, "periodSeconds": 5,
                         "failureThreshold": 120},
    }


def _server_mounts(spec: ModelDeploymentSpec) -> list[Obj]:
    mounts: list[Obj] = [{"name": "tmp", "mountPath": TMP_DIR}]
    if spec.model.uri.startswith("pvc://"):
        mounts.append({"name": "model-pvc", "mountPath": PVC_MOUNT, "readOnly": True})
    else:
        mounts.append({"name": "model", "mountPath": MODEL_DIR, "readOnly": True})
    return mounts


def _server_container(
    spec: ModelDeploymentSpec, *, name: str, namespace: str, track: Track, image: str, resources: Obj
) -> Obj:
    directory = model_dir(spec)
    container: Obj = {"name": SERVER_CONTAINER, "image": image, **_server_entrypoint(spec, directory)}
    container["env"] = _server_env(spec, name=name, namespace=namespace, track=track, directory=directory)
    container["ports"] = server_ports(spec.runtime)
    container.update(_server_probes())
    if resources:
        container["resources"] = resources
    container["securityContext"] = container_security()
    container["volumeMounts"] = _server_mounts(spec)
    return container


def build_pod_template(
    spec: ModelDeploymentSpec, *, name: str, namespace: str, track: Track, settings: BuildSettings
) -> Obj:
    """The pod template of a serving Deployment (exposed for the rollout engine and tests)."""
    gpu = placement(spec.accelerator, settings)
    cpu_resources = resource_requirements(spec.resources.requests, spec.resources.limits)
    server_resources = resource_requirements(
        {**spec.resources.requests, **gpu.resources}, {**spec.resources.limits, **gpu.resources}
    )
    image = spec.runtime.image or settings.runtime_image_for(spec.model.format)
    pvc = spec.model.uri.startswith("pvc://")

    pod: Obj = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": settings.run_as_user,
            "runAsGroup": settings.run_as_user,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }
    if not pvc:
        fetch_image = image if spec.model.format != "custom" else (settings.fetch_image or settings.runtime_image)
        # The init container gets the server's CPU/memory (not GPUs): the pod's effective request
        # is the max of the two, so this costs no extra capacity and satisfies quotas.
        pod["initContainers"] = [_fetch_container(spec, fetch_image, cpu_resources, settings)]
    pod["containers"] = [
        _server_container(spec, name=name, namespace=namespace, track=track, image=image, resources=server_resources)
    ]
    if gpu.node_selector:
        pod["nodeSelector"] = dict(sorted(gpu.node_selector.items()))
    if gpu.tolerations:
        pod["tolerations"] = gpu.tolerations
    volumes: list[Obj] = [{"name": "tmp", "emptyDir": {}}]
    if pvc:
        claim, _ = split_pvc_uri(spec.model.uri)
        volumes.append({"name": "model-pvc", "persistentVolumeClaim": {"claimName": claim, "readOnly": True}})
    else:
        volumes.append({"name": "model", "emptyDir": {"sizeLimit": format_size(settings.max_model_bytes)}})
    pod["volumes"] = volumes

    return {
        "metadata": {
            "labels": pod_labels(name, track, spec.model.version),
            "annotations": {ANNOTATION_REVISION: serving_revision(spec)},
        },
        "spec": pod,
    }


def build_deployment(
    spec: ModelDeploymentSpec,
    *,
    name: str,
    namespace: str,
    owner: Mapping[str, Any],
    settings: BuildSettings,
    track: Track = "stable",
    replicas: int | None,
) -> Obj:
    """Deployment `<name>` (stable) or `<name>-canary` running `spec`'s serving template.

    `replicas=None` leaves the field out entirely, so server-side apply never takes it from the
    HPA (use `desired_replicas(spec)` for the stable track). Rolling updates surge one pod and
    never take one away first (maxUnavailable 0), so even a single replica upgrades without
    downtime.
    """
    labels = {**common_labels(name), LABEL_TRACK: track, LABEL_VERSION: label_value(spec.model.version)}
    body: Obj = {}
    if replicas is not None:
        if replicas < 0:
            raise ValueError("replicas must not be negative")
        body["replicas"] = replicas
    body["revisionHistoryLimit"] = settings.revision_history_limit
    body["selector"] = {"matchLabels": selector_labels(name, track)}
    body["strategy"] = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    # The Deployment controller marks a rollout that stops moving (pods that never schedule or
    # never get Ready) ProgressDeadlineExceeded; status reports it Stalled instead of in progress.
    body["progressDeadlineSeconds"] = max(1, round(spec.rollout.canary.progress_deadline_seconds))
    body["template"] = build_pod_template(spec, name=name, namespace=namespace, track=track, settings=settings)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": object_meta(
            deployment_name(name, track),
            namespace,
            labels,
            owner,
            annotations={ANNOTATION_REVISION: serving_revision(spec)},
        ),
        "spec": body,
    }
