"""`modelpilot batch` on s3:// (a real MinIO): input listing, shards, completion, and uploads that
are aborted (never completed) when a shard fails or is stopped."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from modelpilot.batch import contract
from modelpilot.batch.storage import Location
from tests.server.batchkit import cli_args, cli_env, expected_predictions, iris_like, run_cli, settings
from tests.server.minio import MinioServer


@pytest.fixture
def s3(minio: MinioServer) -> Iterator[tuple[Any, str]]:
    """An s3fs client and a fresh bucket."""
    import s3fs

    fs = s3fs.S3FileSystem(key=minio.access_key, secret=minio.secret_key, skip_instance_cache=True,
                           client_kwargs={"endpoint_url": minio.endpoint, "region_name": "us-east-1"})  # fmt: skip
    bucket = f"batch-{uuid.uuid4().hex[:8]}"
    fs.mkdir(bucket)
    yield fs, bucket
    fs.rm(bucket, recursive=True)


def _upload_parquet(fs: Any, key: str, table: pa.Table, row_group_size: int = 2000) -> None:
    buffer = io.BytesIO()
    pq.write_table(table, buffer, row_group_size=row_group_size)
    fs.pipe_file(key, buffer.getvalue())


def _read_parts(fs: Any, prefix: str) -> pa.Table:
    parts = sorted(p for p in fs.find(prefix) if p.rsplit("/", 1)[-1].startswith("part-"))
    return pa.concat_tables([pq.read_table(io.BytesIO(fs.cat_file(p))) for p in parts])


def test_eight_parquet_files_in_three_shards(
    minio: MinioServer, s3: tuple[Any, str], models: dict[str, Path], tmp_path: Path
) -> None:
    fs, bucket = s3
    tables = [iris_like(1500, seed=i, start_id=1500 * i) for i in range(8)]
    for i, table in enumerate(tables):
        _upload_parquet(fs, f"{bucket}/in/part-{i}.parquet", table)
    fs.pipe_file(f"{bucket}/in/_SUCCESS", b"")  # not data
    config = settings(f"s3://{bucket}/in", f"s3://{bucket}/out", keys=["id"], shards=3, batch_size=1000)
    reports = [run_cli(config, shard, models["iris"], tmp_path, extra_env=minio.env()) for shard in range(3)]
    assert [r.code for r in reports] == [0, 0, 0], [r.stderr[-2000:] for r in reports]
    assert sum(r.report["rowsOut"] for r in reports) == 12_000
    fs.invalidate_cache()
    names = sorted(p.split("/", 2)[2] for p in fs.find(f"{bucket}/out"))
    assert names == [
        "_SUCCESS", "_manifest.json",
        "_manifests/claim-00000.run-1", "_manifests/claim-00001.run-1", "_manifests/claim-00002.run-1",
        "_manifests/shard-00000.json", "_manifests/shard-00001.json", "_manifests/shard-00002.json",
        "part-00000.parquet", "part-00001.parquet", "part-00002.parquet",
    ]  # fmt: skip
    run = json.loads(fs.cat_file(f"{bucket}/out/_manifest.json"))
    assert (run["rowsIn"], run["rowsOut"], run["rowsFailed"]) == (12_000, 12_000, 0)
    assert json.loads(fs.cat_file(f"{bucket}/out/_SUCCESS"))["runId"] == "run-1"
    units = [json.loads(fs.cat_file(f"{bucket}/out/{contract.manifest_file(k)}"))["units"] for k in range(3)]
    assert [len(u) for u in units] == [3, 2, 3]  # whole files, in name order, balanced by size
    assert [u["file"] for shard in units for u in shard] == [f"part-{i}.parquet" for i in range(8)]
    out = _read_parts(fs, f"{bucket}/out").sort_by("id")
    everything = pa.concat_tables(tables)
    assert out.column("id").to_pylist() == list(range(12_000))
    assert np.array_equal(out.column("prediction").to_numpy(), expected_predictions(models["iris"], everything))
    # another run into the same output is refused, and leaves it as it was
    again = run_cli(config, 0, models["iris"], tmp_path, run_id="run-2", extra_env=minio.env())
    assert (again.code, again.report["reason"]) == (contract.EXIT_INVALID_RUN, "OutputExists")
    fs.invalidate_cache()
    assert sorted(p.split("/", 2)[2] for p in fs.find(f"{bucket}/out")) == names


def test_one_file_cut_into_row_groups(
    minio: MinioServer, s3: tuple[Any, str], models: dict[str, Path], tmp_path: Path
) -> None:
    fs, bucket = s3
    _upload_parquet(fs, f"{bucket}/data.parquet", iris_like(5000), row_group_size=500)
    config = settings(f"s3://{bucket}/data.parquet", f"s3://{bucket}/out/", shards=4, columns=[
        "sepal_length", "sepal_width", "petal_length", "petal_width"])  # fmt: skip
    for shard in range(4):
        result = run_cli(config, shard, models["iris"], tmp_path, extra_env=minio.env())
        assert result.code == 0, result.stderr[-2000:]
    out = _read_parts(fs, f"{bucket}/out")
    assert sorted(out.column("_row").to_pylist()) == list(range(5000))
    assert set(out.column("_file").to_pylist()) == {"data.parquet"}


def test_an_aborted_upload_leaves_no_object(minio: MinioServer, s3: tuple[Any, str]) -> None:
    fs, bucket = s3
    out = Location(f"s3://{bucket}/out", minio.env())
    big = b"x" * (12 << 20)  # over the 8 MiB upload block: a multipart upload is under way
    sink = out.create("part-00000.parquet", "run-1")
    sink.write(big)
    uploads = fs.call_s3("list_multipart_uploads", Bucket=bucket).get("Uploads", [])
    assert [u["Key"] for u in uploads] == ["out/part-00000.parquet"]
    sink.abort()
    small = out.create("part-00001.parquet", "run-1")
    small.write(b"tiny")  # still in the buffer: nothing was sent
    small.abort()
    del sink, small  # a collected file must not complete its upload either
    assert out.list() == []
    uploads = fs.call_s3("list_multipart_uploads", Bucket=bucket).get("Uploads", [])
    assert uploads == []
    done = out.create("part-00002.parquet", "run-1")
    done.write(big)
    done.publish()
    assert out.list() == ["part-00002.parquet"]
    assert fs.info(f"{bucket}/out/part-00002.parquet")["size"] == len(big)


def test_a_stopped_shard_aborts_its_upload(
    minio: MinioServer, s3: tuple[Any, str], models: dict[str, Path], tmp_path: Path
) -> None:
    fs, bucket = s3
    for i in range(2):
        _upload_parquet(fs, f"{bucket}/in/f{i}.parquet", iris_like(200_000, seed=i), row_group_size=5000)
    # JSON lines out (~40 bytes a row): the part outgrows the 8 MiB upload block, a multipart upload starts
    config = settings(f"s3://{bucket}/in", f"s3://{bucket}/out", keys=["id"], batch_size=100, output_format="jsonl")
    log = tmp_path / "termination"
    proc = subprocess.Popen(cli_args(models["iris"], 0, log), env=cli_env(config, extra=minio.env()),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 120
    try:
        while not fs.call_s3("list_multipart_uploads", Bucket=bucket).get("Uploads"):
            assert proc.poll() is None, "the shard ended before it could be stopped"
            assert time.monotonic() < deadline
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)  # mid-upload
        proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == contract.EXIT_RETRY
    report = contract.ShardReport.model_validate_json(log.read_text())
    assert "SIGTERM" in str(report.message)
    fs.invalidate_cache()
    assert [p.split("/", 2)[2] for p in fs.find(f"{bucket}/out")] == ["_manifests/claim-00000.run-1"]
    assert fs.call_s3("list_multipart_uploads", Bucket=bucket).get("Uploads", []) == []  # aborted, not completed
