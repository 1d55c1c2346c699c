"""A BatchPrediction's children (pure): the Indexed Job of a run, or the CronJob that starts runs.

The pod template is the serving pod template of the same model (the same restricted security,
model-fetch init container, storage secrets and GPU placement), with the server container
replaced by `modelpilot batch`: one pod per shard, the shard index from the Job controller.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from modelpilot.api.batch import BatchPredictionSpec, ResolvedModel
from modelpilot.api.models import ModelDeploymentSpec, ModelSource, Runtime
from modelpilot.batch import contract
from modelpilot.resources.common import BuildSettings, Obj, object_meta
from modelpilot.resources.deployment import (
    build_pod_template,
    container_security,
    env_var,
    model_dir,
    split_pvc_uri,
    storage_secret_env,
)
from modelpilot.resources.labels import (
    ANNOTATION_REVISION,
    LABEL_BATCH,
    LABEL_MANAGED_BY,
    LABEL_VERSION,
    MANAGED_BY,
    label_value,
)

BATCH_CONTAINER = "batch"
DATA_MOUNT = "/mnt/data"  # pvc:// input and output claims are mounted at DATA_MOUNT/<claim>


@dataclass(frozen=True)
class BatchRun:
    """What a run is built from: the BatchPrediction and the model resolved for it."""

    name: str
    namespace: str
    owner: Mapping[str, Any]
    spec: BatchPredictionSpec
    model: ResolvedModel
    model_source: ModelSource  # the full model spec (with its storage secret) the pods fetch
    image: str | None = None  # the referenced ModelDeployment's runtime image, if any


def batch_labels(name: str) -> dict[str, str]:
    """On the Job, the CronJob and every pod. Not app.kubernetes.io/name: batch pods must never be
    counted as a ModelDeployment's serving pods."""
    return {LABEL_MANAGED_BY: MANAGED_BY, LABEL_BATCH: name}


def data_path(uri: str) -> str:
    """pvc://claim/path -> file:///mnt/data/claim/path (where the pod mounts it); others as they are."""
    if not uri.startswith("pvc://"):
        return uri
    claim, path = split_pvc_uri(uri)
    return f"file://{DATA_MOUNT}/{claim}" + (f"/{path}" if path else "")


def run_config(run: BatchRun) -> contract.RunConfig:
    spec = run.spec
    return contract.RunConfig(
        name=run.name, namespace=run.namespace,
        model=contract.RunModel(name=run.model.name or run.name, version=run.model.version or "",
                                revision=run.model.revision or "", format=run.model.format or ""),
        input=contract.RunInput(uri=data_path(spec.input.uri), format=spec.input.format,
                                columns=list(spec.input.columns), key_columns=list(spec.input.key_columns)),
        output=contract.RunOutput(uri=data_path(spec.output.uri), format=spec.output.format, mode=spec.output.mode),
        shards=spec.shard_count, max_failed_rows_percent=spec.max_failed_rows_percent, batch_size=spec.batch_size)


def _data_secret_env(spec: BatchPredictionSpec) -> list[Obj]:
    s3 = spec.input.uri.startswith("s3://") or spec.output.uri.startswith("s3://")
    return storage_secret_env(spec.storage_secret_ref, s3=s3)


def _field_env(name: str, path: str) -> Obj:
    return {"name": name, "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": path}}}


def _data_claims(spec: BatchPredictionSpec) -> dict[str, bool]:
    """claim -> read-only, for pvc:// input and output (one mount when both use the same claim)."""
    claims: dict[str, bool] = {}
    if spec.input.uri.startswith("pvc://"):
        claims[split_pvc_uri(spec.input.uri)[0]] = True
    if spec.output.uri.startswith("pvc://"):
        claims[split_pvc_uri(spec.output.uri)[0]] = False
    return claims


def _batch_container(run: BatchRun, serving: ModelDeploymentSpec, image: str, resources: Obj,
                     template_mounts: list[Obj]) -> Obj:
    config = run_config(run).model_dump_json(by_alias=True)
    env = [
        env_var(contract.CONFIG_ENV, config),
        _field_env(contract.RUN_ID_ENV, f"metadata.labels['{contract.RUN_ID_LABEL}']"),
        _field_env(contract.JOB_NAME_ENV, f"metadata.labels['{contract.JOB_NAME_LABEL}']"),
        env_var("MODELPILOT_MODEL_VERSION", run.model.version or ""),
        env_var("MODELPILOT_REVISION", run.model.revision or ""),
        env_var("MODELPILOT_NAMESPACE", run.namespace),
        *_data_secret_env(run.spec),
        *(env_var(e.name, e.value) for e in run.spec.runtime.env),
    ]
    mounts = [*template_mounts]
    mounts += [{"name": f"data-{i}", "mountPath": f"{DATA_MOUNT}/{claim}", "readOnly": read_only}
               for i, (claim, read_only) in enumerate(_data_claims(run.spec).items())]
    container: Obj = {
        "name": BATCH_CONTAINER,
        "image": image,
        "command": ["modelpilot"],
        "args": ["batch", "--model-dir", model_dir(serving), "--termination-log", contract.TERMINATION_LOG],
        "env": env,
        "terminationMessagePath": contract.TERMINATION_LOG,
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    if resources:
        container["resources"] = resources
    container["securityContext"] = container_security()
    container["volumeMounts"] = mounts
    return container


def serving_spec(run: BatchRun) -> ModelDeploymentSpec:
    """The model part as a serving spec, so the pod template is built by the serving builder."""
    runtime = Runtime(image=run.spec.runtime.image or run.image)
    return ModelDeploymentSpec(model=run.model_source, runtime=runtime, resources=run.spec.resources,
                               accelerator=run.spec.accelerator)


def build_pod_spec(run: BatchRun, settings: BuildSettings) -> Obj:
    serving = serving_spec(run)
    template = build_pod_template(serving, name=run.name, namespace=run.namespace, track="stable",
                                  settings=settings)
    pod = template["spec"]
    server = pod["containers"][0]  # its image, resources (GPUs included) and mounts are the batch container's
    pod["containers"] = [_batch_container(run, serving, server["image"], server.get("resources") or {},
                                          list(server.get("volumeMounts") or []))]
    pod["restartPolicy"] = "Never"
    claims = enumerate(_data_claims(run.spec).items())
    pod["volumes"] = [*pod["volumes"], *({"name": f"data-{i}", "persistentVolumeClaim": {
        "claimName": claim, "readOnly": read_only}} for i, (claim, read_only) in claims)]
    return pod


def job_spec(run: BatchRun, settings: BuildSettings) -> Obj:
    labels = {**batch_labels(run.name), LABEL_VERSION: label_value(run.model.version or "")}
    spec: Obj = {
        "completionMode": "Indexed",
        "completions": run.spec.shard_count,
        "parallelism": min(run.spec.parallelism, run.spec.shard_count),
        "backoffLimitPerIndex": run.spec.backoff_limit_per_shard,
        # A shard over its failed-row limit fails the same way again: no retry. A run that cannot
        # start (output exists, no input) fails for every shard: fail the Job at once.
        "podFailurePolicy": {"rules": [
            {"action": "FailJob", "onExitCodes": {"containerName": BATCH_CONTAINER, "operator": "In",
                                                  "values": [contract.EXIT_INVALID_RUN]}},
            {"action": "FailIndex", "onExitCodes": {"containerName": BATCH_CONTAINER, "operator": "In",
                                                    "values": [contract.EXIT_SHARD_FAILED]}},
        ]},
        "template": {
            "metadata": {"labels": labels, "annotations": {ANNOTATION_REVISION: run.model.revision or ""}},
            "spec": build_pod_spec(run, settings),
        },
    }
    if run.spec.ttl_seconds_after_finished is not None:
        spec["ttlSecondsAfterFinished"] = run.spec.ttl_seconds_after_finished
    return spec


def run_annotations(model: ResolvedModel) -> dict[str, str]:
    """The resolved model on the Job (and on each Job a CronJob creates), so the status of a run
    names the version that produced it."""
    return {ANNOTATION_REVISION: model.revision or "", ANNOTATION_MODEL: json.dumps(
        model.model_dump(mode="json", by_alias=True, exclude_none=True), sort_keys=True)}


ANNOTATION_MODEL = "modelpilot.io/model"


def build_job(run: BatchRun, settings: BuildSettings) -> Obj:
    """The Indexed Job of a one-off run, named after the BatchPrediction."""
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": object_meta(run.name, run.namespace, batch_labels(run.name), run.owner,
                                annotations=run_annotations(run.model)),
        "spec": job_spec(run, settings),
    }


def build_cronjob(run: BatchRun, settings: BuildSettings) -> Obj:
    """The CronJob of a scheduled BatchPrediction: a run at each tick, never two at once."""
    assert run.spec.schedule is not None
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": object_meta(run.name, run.namespace, batch_labels(run.name), run.owner,
                                annotations=run_annotations(run.model)),
        "spec": {
            "schedule": run.spec.schedule,
            "concurrencyPolicy": "Forbid",
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 3,
            "jobTemplate": {
                "metadata": {"labels": batch_labels(run.name), "annotations": run_annotations(run.model)},
                "spec": job_spec(run, settings),
            },
        },
    }
