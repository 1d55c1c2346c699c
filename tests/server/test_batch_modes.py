"""`modelpilot batch` and what is already under the output: failIfExists and overwrite, retries
(a shard done before, a shard killed mid-way), and a shard with too many failed rows."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from modelpilot.batch import contract
from tests.server.batchkit import (
    FEATURES,
    cli_args,
    cli_env,
    files_under,
    read_errors,
    read_parts,
    run_all,
    run_cli,
    run_in_process,
    settings,
    write_inputs,
)


def _config(tmp: Path, **kwargs: object) -> dict[str, object]:
    return settings(f"file://{tmp}/in", f"file://{tmp}/out", **{"keys": ["id"], **kwargs})  # type: ignore[arg-type]


def test_fail_if_exists_refuses_another_runs_output(models: dict[str, Path], tmp_path: Path) -> None:
    write_inputs(tmp_path / "in", "parquet", [100, 100])
    config = _config(tmp_path, shards=2)
    run_all(config, models["iris"], run_id="run-1")
    before = {name: (tmp_path / "out" / name).read_bytes() for name in files_under(tmp_path / "out")}
    result = run_cli(config, 1, models["iris"], tmp_path, run_id="run-2")
    assert result.code == contract.EXIT_INVALID_RUN, result.stderr
    assert result.report["reason"] == "OutputExists"
    assert "part-00000.parquet" in result.report["message"] or "_SUCCESS" in result.report["message"]
    after = {name: (tmp_path / "out" / name).read_bytes() for name in files_under(tmp_path / "out")}
    assert after == before  # nothing written, nothing deleted


def test_fail_if_exists_refuses_any_other_file(models: dict[str, Path], tmp_path: Path) -> None:
    write_inputs(tmp_path / "in", "parquet", [10])
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("someone else's")
    code, report = run_in_process(_config(tmp_path), 0, models["iris"])
    assert (code, report.reason) == (contract.EXIT_INVALID_RUN, "OutputExists")
    assert "notes.txt" in str(report.message)


def test_shards_of_one_run_are_not_foreign_to_each_other(models: dict[str, Path], tmp_path: Path) -> None:
    """Shard 1 starts after shard 0 published its part and manifest: same run, so it goes on."""
    write_inputs(tmp_path / "in", "parquet", [100, 100, 100])
    config = _config(tmp_path, shards=3)
    for shard in (2, 0, 1):
        code, report = run_in_process(config, shard, models["iris"])
        assert code == contract.EXIT_OK, report
    assert read_parts(tmp_path / "out").num_rows == 300


def test_overwrite_replaces_and_removes_a_larger_runs_extra_shards(models: dict[str, Path], tmp_path: Path) -> None:
    write_inputs(tmp_path / "in", "parquet", [100, 100, 100, 100])
    run_all(_config(tmp_path, shards=4, output_format="jsonl"), models["iris"], run_id="run-1")
    assert len(list((tmp_path / "out").glob("part-*.jsonl"))) == 4
    config = _config(tmp_path, shards=2, mode="overwrite")
    for shard in (1, 0):
        code, report = run_in_process(config, shard, models["iris"], run_id="run-2")
        assert code == contract.EXIT_OK, report
    assert files_under(tmp_path / "out") == [
        "_SUCCESS", "_manifest.json", "_manifests/claim-00000.run-2", "_manifests/claim-00001.run-2",
        "_manifests/shard-00000.json", "_manifests/shard-00001.json", "part-00000.parquet", "part-00001.parquet",
    ]  # fmt: skip
    assert sorted(read_parts(tmp_path / "out").column("id").to_pylist()) == list(range(400))
    assert json.loads((tmp_path / "out" / contract.RUN_MANIFEST).read_text())["runId"] == "run-2"


def test_overwrite_removes_the_old_success_marker_at_once(models: dict[str, Path], tmp_path: Path) -> None:
    write_inputs(tmp_path / "in", "parquet", [100, 100])
    run_all(_config(tmp_path, shards=2), models["iris"], run_id="run-1")
    code, _ = run_in_process(_config(tmp_path, shards=2, mode="overwrite"), 0, models["iris"], run_id="run-2")
    assert code == contract.EXIT_OK
    # shard 1 of run-2 has not run yet: the output must not claim success
    assert not (tmp_path / "out" / contract.SUCCESS_MARKER).exists()
    assert not (tmp_path / "out" / contract.RUN_MANIFEST).exists()
    assert not (tmp_path / "out" / contract.manifest_file(1)).exists() or json.loads(
        (tmp_path / "out" / contract.manifest_file(1)).read_text())["runId"] == "run-1"  # fmt: skip


def test_a_retried_shard_that_finished_does_nothing_again(models: dict[str, Path], tmp_path: Path) -> None:
    write_inputs(tmp_path / "in", "parquet", [100])
    config = _config(tmp_path)
    run_all(config, models["iris"])
    part = tmp_path / "out" / contract.part_file(0, "parquet")
    stamp = part.stat().st_mtime_ns
    code, report = run_in_process(config, 0, models["iris"])
    assert (code, report.rows_in, report.rows_out) == (contract.EXIT_OK, 100, 100)
    assert part.stat().st_mtime_ns == stamp


def test_too_many_failed_rows(models: dict[str, Path], tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    lines = ["id,sepal_length,sepal_width,petal_length,petal_width"]
    lines += [f"{i},5.1,3.5,1.4,0.2" if i % 10 else f"{i},bad,3.5,1.4,0.2" for i in range(200)]
    (tmp_path / "in" / "x.csv").write_text("\n".join(lines) + "\n")
    config = settings(f"file://{tmp_path}/in", f"file://{tmp_path}/out", "csv", keys=["id"], max_failed=5)
    result = run_cli(config, 0, models["iris"], tmp_path)
    assert result.code == contract.EXIT_SHARD_FAILED, result.stderr
    assert result.report["reason"] == "TooManyFailedRows"
    assert (result.report["rowsIn"], result.report["rowsFailed"]) == (200, 20)
    assert "20 of 200 rows failed" in result.report["message"]
    # errors/ is written (for diagnosis), the part and the manifest are not
    assert files_under(tmp_path / "out") == ["_manifests/claim-00000.run-1", "errors/part-00000.jsonl"]
    assert len(read_errors(tmp_path / "out")) == 20
    # 10 % failing rows within a 10 % limit: the shard succeeds
    ok = run_cli({**config, "maxFailedRowsPercent": 10}, 0, models["iris"], tmp_path)
    assert ok.code == contract.EXIT_OK, ok.stderr
    assert read_parts(tmp_path / "out").num_rows == 180


def test_termination_message_fits_the_kubelet_limit(models: dict[str, Path], tmp_path: Path) -> None:
    config = settings("file:///no/such/" + "x" * 6000, f"file://{tmp_path}/out")
    result = run_cli(config, 0, models["iris"], tmp_path)
    assert result.code == contract.EXIT_INVALID_RUN
    log = next(tmp_path.glob("termination-*")).read_bytes()
    assert len(log) <= contract.TERMINATION_LOG_LIMIT
    assert contract.ShardReport.model_validate_json(log).reason == "NoInput"


def test_a_shard_killed_mid_write_leaves_no_part_and_its_retry_one_whole_part(
    models: dict[str, Path], tmp_path: Path
) -> None:
    table = write_inputs(tmp_path / "in", "csv", [150_000])
    # JSON lines out: every batch reaches the part's file at once (Parquet buffers 4 MiB first)
    config = settings(f"file://{tmp_path}/in", f"file://{tmp_path}/out", "csv", columns=FEATURES, batch_size=100,
                      output_format="jsonl")  # fmt: skip
    log = tmp_path / "termination"
    proc = subprocess.Popen(cli_args(models["iris"], 0, log), env=cli_env(config), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    out = tmp_path / "out"
    deadline = time.monotonic() + 120
    try:
        # wait until the part is being written: its hidden temporary file has thousands of rows
        while not [p for p in out.glob(".part-00000.jsonl.*.tmp") if p.stat().st_size > 200_000]:
            assert proc.poll() is None, "the shard ended before it could be killed: make the input larger"
            assert time.monotonic() < deadline
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    visible = [n for n in files_under(out) if not Path(n).name.startswith(".")]
    assert visible == ["_manifests/claim-00000.run-1"]  # no part, no manifest: the shard is not done
    assert list(out.glob(".part-00000.jsonl.run-1.*.tmp"))  # only a hidden leftover
    result = run_cli({**config, "batchSize": 20_000}, 0, models["iris"], tmp_path)
    assert result.code == contract.EXIT_OK, result.stderr
    assert files_under(out) == ["_SUCCESS", "_manifest.json", "_manifests/claim-00000.run-1",
                                "_manifests/shard-00000.json", "part-00000.jsonl"]  # fmt: skip
    rows = [json.loads(line)["_row"] for line in (out / "part-00000.jsonl").read_text().splitlines()]
    assert rows == list(range(table.num_rows))
