"""Datasets for the batch e2e tests: iris-like rows with an `id` key, written to a real S3 (MinIO)
or a directory, and the scored output read back (pyarrow + s3fs, as any user would)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tests.support import testmodels

FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")


def iris_like(rows: int, start_id: int = 0, seed: int = 7) -> pa.Table:
    """`rows` rows: iris samples with a little noise, and a unique int64 `id` from `start_id`."""
    x, _ = testmodels.iris()
    rng = np.random.default_rng(seed + start_id)
    picked = x[rng.integers(0, len(x), rows)] + rng.normal(0, 0.05, (rows, x.shape[1]))
    columns = {"id": pa.array(np.arange(start_id, start_id + rows, dtype=np.int64))}
    columns.update({name: pa.array(picked[:, i]) for i, name in enumerate(FEATURES)})
    return pa.table(columns)


def s3fs_for(env: Mapping[str, str]) -> Any:
    import s3fs

    return s3fs.S3FileSystem(key=env["AWS_ACCESS_KEY_ID"], secret=env["AWS_SECRET_ACCESS_KEY"],
                             client_kwargs={"endpoint_url": env["AWS_ENDPOINT_URL"], "region_name": "us-east-1"},
                             skip_instance_cache=True)


def write_parquet_files(fs: Any, prefix: str, total: int, files: int) -> None:
    """`total` rows in `files` parquet files under `prefix` (no scheme), ids 0..total-1 in order."""
    per = total // files
    for i in range(files):
        rows = per if i < files - 1 else total - per * (files - 1)
        with fs.open(f"{prefix}/part-{i:03d}.parquet", "wb") as f:
            pq.write_table(iris_like(rows, start_id=i * per), f, row_group_size=50_000)


def read_output(fs: Any, prefix: str) -> pa.Table:
    """Every part-* file under `prefix`, concatenated (what a reader of the output sees)."""
    parts = sorted(p for p in fs.ls(prefix) if p.rsplit("/", 1)[-1].startswith("part-"))
    tables = []
    for path in parts:
        with fs.open(path, "rb") as f:
            tables.append(pq.read_table(f))
    return pa.concat_tables(tables) if tables else pa.table({})


def read_json(fs: Any, path: str) -> Any:
    with fs.open(path, "rb") as f:
        return json.loads(f.read())


def read_errors(fs: Any, prefix: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    if not fs.exists(f"{prefix}/errors"):
        return rows
    for path in sorted(fs.ls(f"{prefix}/errors")):
        with fs.open(path, "rb") as f:
            rows += [json.loads(line) for line in f.read().splitlines() if line.strip()]
    return rows
