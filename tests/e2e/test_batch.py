"""Batch prediction end to end: a BatchPrediction on the real control plane becomes an Indexed
Job (or a CronJob); the e2e bridge runs each shard pod as a real `modelpilot batch` process that
reads from and writes to a real S3 (MinIO); the test reads the output back as a user would."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from hack import dataplane
from modelpilot.api.batch import BATCH_PLURAL
from modelpilot.api.models import API_VERSION, GROUP, VERSION
from modelpilot.resources.labels import LABEL_BATCH
from tests.e2e import mdep
from tests.e2e import plugin_cli as plugin
from tests.e2e.harness.batchdata import (
    FEATURES,
    iris_like,
    read_errors,
    read_json,
    read_output,
    s3fs_for,
    write_parquet_files,
)
from tests.e2e.harness.bridge import PodProcessBridge
from tests.e2e.operator import OperatorProcess
from tests.e2e.support import ClusterHandle, wait_for
from tests.server.minio import MinioServer, run_minio
from tests.support import testmodels

pytestmark = pytest.mark.usefixtures("crd")
SECRET = "data"


@pytest.fixture(scope="module")
def minio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MinioServer]:
    with run_minio(tmp_path_factory.mktemp("minio")) as server:
        yield server


@dataclass
class BatchEnv:
    namespace: str
    custom: client.CustomObjectsApi
    core: client.CoreV1Api
    batch: client.BatchV1Api
    bridge: PodProcessBridge
    operator: OperatorProcess
    fs: Any
    bucket: str
    tmp: Path

    def model(self, writer: Any = testmodels.write_iris, **kw: Any) -> tuple[str, Path]:
        directory = self.tmp / f"model-{len(list(self.tmp.glob('model-*')))}"
        path = writer(directory, **kw)
        return f"file://{path}", path

    def create(self, name: str, model: dict[str, Any], input_: dict[str, Any], output: dict[str, Any],
               **spec: Any) -> None:
        body = {"apiVersion": API_VERSION, "kind": "BatchPrediction", "metadata": {"name": name},
                "spec": {"model": model, "input": input_, "output": output, "storageSecretRef": {"name": SECRET},
                         # Marks the pods for the bridge (the test bed's KWOK leaves them to it).
                         "runtime": {"env": [{"name": dataplane.READINESS_ENV, "value": "process"}]}, **spec}}
        self.custom.create_namespaced_custom_object(GROUP, VERSION, self.namespace, BATCH_PLURAL, body)

    def get(self, name: str) -> dict[str, Any]:
        return dict(self.custom.get_namespaced_custom_object(GROUP, VERSION, self.namespace, BATCH_PLURAL, name))

    def wait_phase(self, name: str, phase: str, timeout: float = 240) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            obj = self.get(name)
            now = (obj.get("status") or {}).get("phase")
            if now in ("Succeeded", "Failed") and now != phase:
                raise AssertionError(f"{name} ended {now}, not {phase}\n{self.debug(name)}")
            return obj if now == phase else None
        try:
            return wait_for(probe, timeout=timeout, interval=0.5, what=f"{name} {phase}")
        except AssertionError as err:
            raise AssertionError(f"{err}\n{self.debug(name)}") from None

    def events(self, name: str, reason: str, timeout: float = 30) -> list[client.CoreV1Event]:
        return mdep.wait_events(self.core, self.namespace, name, reason, timeout=timeout)

    def pods(self, name: str) -> list[client.V1Pod]:
        return self.core.list_namespaced_pod(self.namespace, label_selector=f"{LABEL_BATCH}={name}").items

    def debug(self, name: str) -> str:
        status = self.get(name).get("status")
        tail = "\n".join(self.operator.logs().splitlines()[-30:])
        logs = "\n".join(f"--- {log}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-15:])
                         for log in sorted(self.bridge.workdir.glob(f"{name}-*/logs/batch.log")))
        return f"status: {status}\noperator log tail:\n{tail}\n{self.bridge.describe()}\nshard logs:\n{logs}"


@pytest.fixture
def benv(local_cluster: ClusterHandle, api_client: client.ApiClient, custom: client.CustomObjectsApi,
         core: client.CoreV1Api, solo_namespace: str, tmp_path: Path, minio: MinioServer) -> Iterator[BatchEnv]:
    core.create_namespaced_secret(solo_namespace, client.V1Secret(metadata=client.V1ObjectMeta(name=SECRET),
                                                                   string_data=minio.env()))
    fs = s3fs_for(minio.env())
    bucket = solo_namespace.replace("_", "-")[:63]
    fs.mkdir(bucket)
    bridge = PodProcessBridge(api_client, solo_namespace, workdir=tmp_path / "bridge").start()
    operator = OperatorProcess(kubeconfig=local_cluster.kubeconfig, namespaces=[solo_namespace],
                               log_path=tmp_path / "operator.log", resync_seconds=5).start()
    try:
        yield BatchEnv(solo_namespace, custom, core, client.BatchV1Api(api_client), bridge, operator, fs, bucket,
                       tmp_path)
    finally:
        operator.stop()
        bridge.stop()


def s3(env: BatchEnv, path: str) -> str:
    return f"s3://{env.bucket}/{path}"


def _predict(model_path: Path, table: Any) -> np.ndarray:
    estimator = joblib.load(model_path)
    return np.asarray(estimator.predict(np.column_stack([table.column(f).to_numpy() for f in FEATURES])))


def test_a_million_rows_in_four_shards_match_the_models_own_predictions(benv: BatchEnv,
                                                                         cluster: ClusterHandle) -> None:
    env = benv
    total = 1_000_000
    write_parquet_files(env.fs, f"{env.bucket}/in", total, files=8)
    uri, model_path = env.model()
    env.create("million", {"version": "v1", "uri": uri, "format": "sklearn"},
               {"uri": s3(env, "in/"), "format": "parquet", "keyColumns": ["id"]}, {"uri": s3(env, "out/")},
               parallelism=4)
    done = env.wait_phase("million", "Succeeded", timeout=300)
    status = done["status"]
    assert status["rows"] == {"in": total, "out": total, "failed": 0}
    assert (status["progress"], status["shards"]["total"], status["model"]["version"]) == ("4/4", 4, "v1")
    assert status["outputManifest"] == s3(env, "out/_manifest.json")

    out = read_output(env.fs, f"{env.bucket}/out")
    ids = out.column("id").to_numpy()
    assert len(ids) == total and np.array_equal(np.sort(ids), np.arange(total))  # no gap, no duplicate
    sample = np.random.default_rng(1).choice(total, 10_000, replace=False)
    position = np.argsort(ids)[sample]
    inputs = read_output_inputs(env, sample)
    expected = _predict(model_path, inputs)
    assert np.array_equal(out.column("prediction").to_numpy()[position], expected)

    manifest = read_json(env.fs, f"{env.bucket}/out/_manifest.json")
    assert (manifest["rowsIn"], manifest["rowsOut"], manifest["rowsFailed"]) == (total, total, 0)
    assert env.fs.exists(f"{env.bucket}/out/_SUCCESS")
    listing = cluster.kubectl("get", "bp", "-n", env.namespace).stdout
    assert "4/4" in listing and "Succeeded" in listing and str(total) in listing
    env.events("million", "Succeeded")
    # The plugin, as a user runs it: the list, the status, and --watch of a finished run exits 0.
    listed = plugin.ok(plugin.run(cluster, "batch", "list", "-n", env.namespace))
    assert "million" in listed and "4/4" in listed and "Succeeded" in listed, listed
    shown = plugin.ok(plugin.run(cluster, "batch", "status", "million", "-n", env.namespace))
    assert "1,000,000" in shown and "_manifest.json" in shown and "Succeeded" in shown, shown
    watched = plugin.ok(plugin.run(cluster, "batch", "status", "million", "-n", env.namespace, "--watch"))
    assert "phase=Succeeded" in watched and f"rows.out={total}" in watched, watched


def read_output_inputs(env: BatchEnv, ids: np.ndarray) -> Any:
    """The input rows with these ids (the generator is deterministic: regenerate, then pick)."""
    import pyarrow as pa

    per = 1_000_000 // 8
    tables = [iris_like(per, start_id=i * per) for i in range(8)]
    whole = pa.concat_tables(tables)
    return whole.take(pa.array(ids))


def test_a_shard_killed_mid_way_is_retried_without_duplicates_or_gaps(benv: BatchEnv) -> None:
    env = benv
    total = 40_000
    write_parquet_files(env.fs, f"{env.bucket}/in", total, files=2)
    started, release = env.tmp / "started", env.tmp / "release"
    # Each shard predicts its first batch, writes it, then holds at its second batch.
    uri, _ = env.model(testmodels.write_pausing, after_calls=1, started_file=started, release_file=release)
    env.create("killed", {"version": "v1", "uri": uri, "format": "sklearn"},
               {"uri": s3(env, "in/"), "format": "parquet", "keyColumns": ["id"]}, {"uri": s3(env, "out/")},
               parallelism=2, batchSize=2000, backoffLimitPerShard=2)
    marker = wait_for(lambda: next(iter(env.tmp.glob("started.*")), None), timeout=120, what="a shard mid-way")
    pid = int(marker.name.split(".")[1])
    victim = wait_for(lambda: next((name for name, info in env.bridge.registry().items() if info.pid == pid), None),
                      timeout=10, what=f"the pod of process {pid}")
    assert env.bridge.kill(victim)
    release.touch()

    done = env.wait_phase("killed", "Succeeded", timeout=240)
    assert done["status"]["rows"] == {"in": total, "out": total, "failed": 0}
    assert [f["pod"] for f in done["status"]["failures"]] == [victim]
    ids = read_output(env.fs, f"{env.bucket}/out").column("id").to_numpy()
    assert len(ids) == total and np.array_equal(np.sort(ids), np.arange(total))
    assert sorted(p.rsplit("/", 1)[-1] for p in env.fs.ls(f"{env.bucket}/out") if "part-" in p) == [
        "part-00000.parquet", "part-00001.parquet"]
    assert any(victim in (e.message or "") for e in env.events("killed", "ShardFailed"))


def _csv_with_bad_rows(env: BatchEnv, rows: int, bad: set[int]) -> None:
    """A CSV file whose `bad` rows have a word where a number belongs (sepal_width)."""
    table = iris_like(rows)
    lines = [",".join(table.column_names)]
    for row in table.to_pylist():
        values = [str(row[name]) for name in table.column_names]
        if row["id"] in bad:
            values[table.column_names.index("sepal_width")] = "abc"
        lines.append(",".join(values))
    with env.fs.open(f"{env.bucket}/csv/data.csv", "wb") as f:
        f.write(("\n".join(lines) + "\n").encode())


def test_bad_rows_go_to_errors_and_too_many_fail_the_run(benv: BatchEnv) -> None:
    env = benv
    bad = set(range(5, 1000, 33))  # 31 rows of 1,000: 3.1 %
    _csv_with_bad_rows(env, 1000, bad)
    uri, _ = env.model()
    model = {"version": "v1", "uri": uri, "format": "sklearn"}
    source = {"uri": s3(env, "csv/data.csv"), "format": "csv", "columns": list(FEATURES), "keyColumns": ["id"]}
    env.create("lenient", model, source, {"uri": s3(env, "lenient/")}, parallelism=1, maxFailedRowsPercent=5)
    env.create("strict", model, source, {"uri": s3(env, "strict/")}, parallelism=1, maxFailedRowsPercent=1)

    lenient = env.wait_phase("lenient", "Succeeded")
    assert lenient["status"]["rows"] == {"in": 1000, "out": 1000 - len(bad), "failed": len(bad)}
    errors = read_errors(env.fs, f"{env.bucket}/lenient")
    assert sorted(e["id"] for e in errors) == sorted(bad)
    assert all("sepal_width" in e["reason"] for e in errors), errors[:3]

    strict = env.wait_phase("strict", "Failed")
    failed = next(c for c in strict["status"]["conditions"] if c["type"] == "Failed")
    assert failed["status"] == "True" and "TooManyFailedRows" in failed["message"], failed
    assert len(read_errors(env.fs, f"{env.bucket}/strict")) == len(bad)  # kept for diagnosis
    assert not env.fs.exists(f"{env.bucket}/strict/part-00000.parquet")
    assert len(env.pods("strict")) == 1  # a data failure is not retried
    env.events("strict", "ShardFailed")


def test_model_deployment_ref_uses_the_stable_version_at_start(benv: BatchEnv) -> None:
    env = benv
    v1_uri, v1_path = env.model()
    v2_uri, v2_path = env.model(testmodels.write_shifted, shift_ratio=1.0)
    md = mdep.simple("iris", "v1", replicas=1, runtime=dataplane.bridged_runtime(),
                     rollout={"canary": {"steps": [50], "interval": "1h", "initialDelay": "1h"}})
    md["spec"]["model"]["uri"] = v1_uri
    mdep.create(env.custom, env.namespace, md)
    mdep.wait_condition(env.custom, env.namespace, "iris", "Ready", "True", timeout=120)
    mdep.patch_spec(env.custom, env.namespace, "iris", {"model": {"version": "v2", "uri": v2_uri}})
    wait_for(lambda: ((mdep.get(env.custom, env.namespace, "iris") or {}).get("status") or {}).get("canary"),
             timeout=60, what="the v2 canary in flight")
    stable = mdep.get(env.custom, env.namespace, "iris")["status"]["stable"]  # type: ignore[index]

    write_parquet_files(env.fs, f"{env.bucket}/in", 5000, files=1)
    env.create("by-ref", {"modelDeploymentRef": {"name": "iris"}},
               {"uri": s3(env, "in/"), "format": "parquet", "keyColumns": ["id"]}, {"uri": s3(env, "out/")},
               parallelism=1)
    done = env.wait_phase("by-ref", "Succeeded")
    assert done["status"]["model"]["version"] == "v1" and done["status"]["model"]["revision"] == stable["revision"]
    out = read_output(env.fs, f"{env.bucket}/out").sort_by("id")
    inputs = iris_like(5000)
    assert np.array_equal(out.column("prediction").to_numpy(), _predict(v1_path, inputs))
    assert not np.array_equal(out.column("prediction").to_numpy(), _predict(v2_path, inputs))
    manifest = read_json(env.fs, f"{env.bucket}/out/_manifest.json")
    assert manifest["model"]["version"] == "v1"


def test_a_schedule_starts_runs_one_at_a_time(benv: BatchEnv) -> None:
    env = benv
    write_parquet_files(env.fs, f"{env.bucket}/in", 2000, files=1)
    started, release = env.tmp / "started", env.tmp / "release"
    uri, _ = env.model(testmodels.write_pausing, after_calls=0, started_file=started, release_file=release)
    env.create("nightly", {"version": "v1", "uri": uri, "format": "sklearn"},
               {"uri": s3(env, "in/"), "format": "parquet", "keyColumns": ["id"]}, {"uri": s3(env, "out/{job}/")},
               parallelism=1, schedule="* * * * *")
    # The first run holds in predict(): the next tick must not start a second one.
    wait_for(lambda: next(iter(env.tmp.glob("started.*")), None), timeout=150, what="the first run")
    skipped = wait_for(lambda: [e for e in env.core.list_namespaced_event(
        env.namespace, field_selector="involvedObject.kind=CronJob,involvedObject.name=nightly").items
        if e.reason == "JobAlreadyActive"], timeout=150, what="a tick skipped (concurrencyPolicy Forbid)")
    assert skipped
    jobs = env.batch.list_namespaced_job(env.namespace, label_selector=f"{LABEL_BATCH}=nightly").items
    assert len(jobs) == 1
    release.touch()
    try:
        done = wait_for(lambda: (s := env.get("nightly").get("status") or {}).get("runsSucceeded", 0) >= 2 and s,
                        timeout=200, what="two runs succeeded")
    except AssertionError as err:
        raise AssertionError(f"{err}\n{env.debug('nightly')}") from None
    jobs = sorted(env.batch.list_namespaced_job(env.namespace, label_selector=f"{LABEL_BATCH}=nightly").items,
                  key=lambda j: j.metadata.creation_timestamp)
    assert jobs[1].metadata.creation_timestamp >= jobs[0].status.completion_time  # never two at once
    assert done["lastScheduleTime"] and done["model"]["version"] == "v1"
    for job in jobs[:2]:
        assert env.fs.exists(f"{env.bucket}/out/{job.metadata.name}/_SUCCESS")


def test_deleting_the_batch_prediction_removes_its_job(benv: BatchEnv) -> None:
    env = benv
    write_parquet_files(env.fs, f"{env.bucket}/in", 1000, files=1)
    uri, _ = env.model()
    env.create("short", {"version": "v1", "uri": uri, "format": "sklearn"},
               {"uri": s3(env, "in/"), "format": "parquet", "keyColumns": ["id"]}, {"uri": s3(env, "out/")},
               parallelism=1)
    env.wait_phase("short", "Succeeded")
    env.custom.delete_namespaced_custom_object(GROUP, VERSION, env.namespace, BATCH_PLURAL, "short")

    def gone() -> bool:
        try:
            env.batch.read_namespaced_job("short", env.namespace)
            return False
        except ApiException as err:
            return err.status == 404
    wait_for(gone, timeout=60, what="the Job garbage-collected")
