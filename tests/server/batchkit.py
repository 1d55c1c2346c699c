"""Helpers for the `modelpilot batch` tests: iris-like inputs in every format, run settings, running
a shard (in this process through run_shard, or as the real CLI in a child process), reading results."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from modelpilot.batch import contract
from tests.support import REPO_ROOT
from tests.support.testmodels import IRIS_FEATURES

FEATURES = list(IRIS_FEATURES)
MEANS = np.array([5.84, 3.06, 3.76, 1.20])
SCALES = np.array([0.83, 0.44, 1.77, 0.76])


def iris_like(rows: int, seed: int = 0, start_id: int = 0, decimals: int | None = 3) -> pa.Table:
    """`id` then the four iris features, drawn around the iris means (full precision, which does
    not compress, with decimals=None)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 4)) * SCALES + MEANS
    x = x if decimals is None else np.round(x, decimals)
    return pa.table({"id": np.arange(start_id, start_id + rows, dtype=np.int64),
                     **{name: x[:, j] for j, name in enumerate(FEATURES)}})  # fmt: skip


def write_table(table: pa.Table, path: Path, fmt: str, row_group_size: int = 10_000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":
        pq.write_table(table, path, row_group_size=row_group_size)
    elif fmt == "csv":
        pa_csv.write_csv(table, path, pa_csv.WriteOptions(quoting_style="none"))
    else:
        path.write_text("".join(json.dumps(row) + "\n" for row in table.to_pylist()))
    return path


def write_inputs(folder: Path, fmt: str, sizes: Sequence[int], *, row_group_size: int = 10_000) -> pa.Table:
    """Files f0.<fmt>, f1.<fmt>, ... with `sizes` rows each (ids continue across files); the whole
    table, with a `_file` column, comes back."""
    tables, start = [], 0
    for i, rows in enumerate(sizes):
        table = iris_like(rows, seed=i, start_id=start)
        write_table(table, folder / f"f{i}.{fmt}", fmt, row_group_size)
        tables.append(table.append_column("_file", pa.array([f"f{i}.{fmt}"] * rows)))
        start += rows
    return pa.concat_tables(tables)


def settings(
    input_uri: str, output_uri: str, fmt: str = "parquet", *, shards: int = 1, keys: Sequence[str] = (),
    columns: Sequence[str] = (), output_format: str = "parquet", mode: str = "failIfExists",
    max_failed: float = 1.0, batch_size: int = 50_000, model_format: str = "sklearn",
) -> dict[str, Any]:  # fmt: skip
    return {
        "name": "score-iris",
        "namespace": "default",
        "model": {"name": "iris", "version": "v1", "revision": "rev1", "format": model_format},
        "input": {"uri": input_uri, "format": fmt, "columns": list(columns), "keyColumns": list(keys)},
        "output": {"uri": output_uri, "format": output_format, "mode": mode},
        "shards": shards,
        "maxFailedRowsPercent": max_failed,
        "batchSize": batch_size,
    }


def run_in_process(
    config: Mapping[str, Any], shard: int, model_dir: Path, *, run_id: str = "run-1", env: Mapping[str, str] = ()
) -> tuple[int, contract.ShardReport]:  # fmt: skip
    from modelpilot.batch.runner import Shard, run_shard

    return run_shard(Shard(contract.RunConfig.model_validate(config), shard, run_id, "job-1", model_dir,
                           dict(env)))  # fmt: skip


def run_all(config: Mapping[str, Any], model_dir: Path, **kwargs: Any) -> list[contract.ShardReport]:
    """Every shard in turn, in this process; each must succeed."""
    reports = []
    for shard in range(config["shards"]):
        code, report = run_in_process(config, shard, model_dir, **kwargs)
        assert code == contract.EXIT_OK, report
        reports.append(report)
    return reports


@dataclass
class CliResult:
    code: int
    report: dict[str, Any]
    stderr: str


def cli_env(config: Mapping[str, Any], run_id: str | None = "run-1", extra: Mapping[str, str] = ()) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MODELPILOT_", "JOB_COMPLETION"))}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    env[contract.CONFIG_ENV] = json.dumps(config)
    if run_id is not None:
        env[contract.RUN_ID_ENV] = run_id
        env[contract.JOB_NAME_ENV] = "job-1"
    env.update(extra)
    return env


def cli_args(model_dir: Path, shard: int | None, termination_log: Path) -> list[str]:
    args = [sys.executable, "-m", "modelpilot.cli.main", "batch", "--model-dir", str(model_dir),
            "--termination-log", str(termination_log)]  # fmt: skip
    return args + ([] if shard is None else ["--shard", str(shard)])


def run_cli(
    config: Mapping[str, Any], shard: int | None, model_dir: Path, tmp: Path, *, run_id: str | None = "run-1",
    extra_env: Mapping[str, str] = (),
) -> CliResult:  # fmt: skip
    """The real `modelpilot batch` in a child process."""
    log = tmp / f"termination-{shard}-{os.urandom(4).hex()}"
    result = subprocess.run(cli_args(model_dir, shard, log), env=cli_env(config, run_id, extra_env),
                            capture_output=True, text=True, timeout=600)  # fmt: skip
    report = json.loads(log.read_text()) if log.exists() else {}
    return CliResult(result.returncode, report, result.stderr)


def read_parts(folder: Path, fmt: str = "parquet") -> pa.Table:
    parts = sorted(folder.glob(f"part-*.{fmt}"))
    if fmt == "parquet":
        return pa.concat_tables([pq.read_table(p) for p in parts])
    rows = [json.loads(line) for p in parts for line in p.read_text().splitlines()]
    return pa.Table.from_pylist(rows)


def read_errors(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for p in sorted((folder / "errors").glob("part-*.jsonl"))
            for line in p.read_text().splitlines()]  # fmt: skip


def expected_predictions(model_dir: Path, table: pa.Table) -> np.ndarray:
    """What the model's own predict() says for the rows (loaded as the runtime loads it)."""
    from modelpilot.server.loaders import load_model

    model = load_model(model_dir, "sklearn")
    x = np.column_stack([table.column(name).to_numpy() for name in FEATURES]).astype(np.float64)
    return np.asarray(model.estimator.predict(x))


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
