"""`modelpilot batch` scores a file far larger than the memory it uses: the shard's peak RSS on a
large file with a small batch size stays near its peak on a tiny file, far below the file's size
in memory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from modelpilot.batch import contract
from tests.server.batchkit import FEATURES, cli_args, cli_env, iris_like, settings, write_table

ROWS = 4_000_000
# Runs the shard and reports its peak RSS (getrusage of the waited child, in KiB). Through this
# small launcher rather than from the test process: a child started with vfork+exec inherits the
# high-water mark of the process that started it, which would count pytest's own memory.
LAUNCHER = (
    "import os, subprocess, sys\n"
    "child = subprocess.Popen(sys.argv[1:], stderr=subprocess.DEVNULL)\n"
    "_, status, usage = os.wait4(child.pid, 0)\n"
    "print(os.waitstatus_to_exitcode(status), usage.ru_maxrss)\n"
)


def _peak_rss(model_dir: Path, folder: Path, fmt: str, tmp: Path, out: str) -> int:
    """Bytes: the shard's peak RSS scoring `folder` with batches of 5,000 rows."""
    config = settings(f"file://{folder}", f"file://{tmp}/{out}", fmt, columns=FEATURES, batch_size=5000)
    result = subprocess.run([sys.executable, "-c", LAUNCHER, *cli_args(model_dir, 0, tmp / f"{out}.log")],
                            env=cli_env(config), capture_output=True, text=True, timeout=600)  # fmt: skip
    code, maxrss = map(int, result.stdout.split())
    assert code == contract.EXIT_OK, result.stderr
    return maxrss * 1024


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_peak_memory_does_not_grow_with_the_file(models: dict[str, Path], tmp_path: Path, fmt: str) -> None:
    # Parquet: full-precision values, so the file does not compress (~ its size in memory).
    large = iris_like(ROWS, decimals=None if fmt == "parquet" else 3)
    in_memory = large.nbytes  # 4M rows x 5 float64/int64 columns: 160 MB
    write_table(large, tmp_path / "large" / f"x.{fmt}", fmt, row_group_size=50_000)
    del large
    write_table(iris_like(1000), tmp_path / "small" / f"x.{fmt}", fmt)
    baseline = _peak_rss(models["iris"], tmp_path / "small", fmt, tmp_path, "out-small")
    peak = _peak_rss(models["iris"], tmp_path / "large", fmt, tmp_path, "out-large")
    import pyarrow.parquet as pq

    assert pq.read_metadata(tmp_path / "out-large" / "part-00000.parquet").num_rows == ROWS
    # Measured about +10 MB (Parquet) and +30 MB (CSV) over the tiny file; reading the whole file
    # would add its 160 MB and more.
    assert peak - baseline < in_memory / 3, f"peak {peak >> 20} MiB vs {baseline >> 20} MiB on a tiny file"
