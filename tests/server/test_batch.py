"""`modelpilot batch`: a shard's predictions equal the model's own predict(), every row lands in
exactly one shard (or in errors/ with its reason), and the output layout follows the contract."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from modelpilot.batch import contract
from tests.server.batchkit import (
    FEATURES,
    expected_predictions,
    files_under,
    read_errors,
    read_parts,
    run_all,
    run_cli,
    run_in_process,
    settings,
    write_inputs,
)


def test_one_shard_reproduces_predict(models: dict[str, Path], tmp_path: Path) -> None:
    table = write_inputs(tmp_path / "in", "parquet", [3000, 2000], row_group_size=700)
    config = settings(f"file://{tmp_path}/in", f"file://{tmp_path}/out", keys=["id"], batch_size=512)
    result = run_cli(config, None, models["iris"], tmp_path)  # one shard: the index defaults to 0
    assert result.code == contract.EXIT_OK, result.stderr
    assert result.report == {"shard": 0, "rowsIn": 5000, "rowsOut": 5000, "rowsFailed": 0, "reason": None,
                             "message": None}  # fmt: skip
    out = read_parts(tmp_path / "out").sort_by("id")
    assert out.column_names == ["id", "prediction"]
    assert out.column("id").to_pylist() == list(range(5000))
    assert np.array_equal(out.column("prediction").to_numpy(), expected_predictions(models["iris"], table))
    assert files_under(tmp_path / "out") == [
        "_SUCCESS", "_manifest.json", "_manifests/claim-00000.run-1", "_manifests/shard-00000.json",
        "part-00000.parquet",
    ]  # fmt: skip
    events = [json.loads(line)["event"] for line in result.stderr.splitlines() if line.startswith("{")]
    assert events[:4] == ["start", "inputs", "model", "plan"] and "run-complete" in events


def test_manifests(models: dict[str, Path], tmp_path: Path) -> None:
    write_inputs(tmp_path / "in", "parquet", [100, 100, 100])
    run_all(settings(f"file://{tmp_path}/in", f"file://{tmp_path}/out", shards=2, keys=["id"]), models["iris"])
    out = tmp_path / "out"
    shard = json.loads((out / contract.manifest_file(1)).read_text())
    part = out / contract.part_file(1, "parquet")
    import hashlib

    assert shard["partSha256"] == hashlib.sha256(part.read_bytes()).hexdigest()
    assert shard["units"] == [{"file": "f2.parquet"}]
    assert (shard["runId"], shard["job"], shard["shard"], shard["shards"]) == ("run-1", "job-1", 1, 2)
    assert (shard["rowsIn"], shard["rowsOut"], shard["rowsFailed"], shard["errors"]) == (100, 100, 0, None)
    assert shard["model"] == {"name": "iris", "version": "v1", "revision": "rev1"}
    assert shard["durationSeconds"] >= 0 and shard["startedAt"] <= shard["completedAt"]
    run = json.loads((out / contract.RUN_MANIFEST).read_text())
    assert (run["rowsIn"], run["rowsOut"], run["shards"]) == (300, 300, 2)
    assert [p["part"] for p in run["parts"]] == ["part-00000.parquet", "part-00001.parquet"]
    assert [p["rows"] for p in run["parts"]] == [200, 100]
    assert json.loads((out / contract.SUCCESS_MARKER).read_text())["runId"] == "run-1"


@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl"])
@pytest.mark.parametrize(("sizes", "shards"), [([700], 1), ([700], 4), ([500, 300], 5), ([200, 10, 90, 300], 3)])
def test_every_row_scored_exactly_once(
    models: dict[str, Path], tmp_path: Path, fmt: str, sizes: list[int], shards: int
) -> None:
    table = write_inputs(tmp_path / "in", fmt, sizes, row_group_size=64)
    config = settings(f"file://{tmp_path}/in", f"file://{tmp_path}/out", fmt, shards=shards, columns=FEATURES,
                      batch_size=50)  # fmt: skip
    reports = run_all(config, models["iris"])
    assert sum(r.rows_in for r in reports) == sum(sizes)
    out = read_parts(tmp_path / "out")
    # no key columns: each output row says where it came from
    assert out.column_names == ["_file", "_row", "prediction"]
    seen = sorted(zip(out.column("_file").to_pylist(), out.column("_row").to_pylist(), strict=True))
    expected = sorted((f"f{i}.{fmt}", row) for i, n in enumerate(sizes) for row in range(n))
    assert seen == expected
    by_row = {(f, r): p for f, r, p in zip(out.column("_file").to_pylist(), out.column("_row").to_pylist(),
                                            out.column("prediction").to_pylist(), strict=True)}  # fmt: skip
    truth = expected_predictions(models["iris"], table)
    files, ids = table.column("_file").to_pylist(), table.column("id").to_pylist()
    starts = {f"f{i}.{fmt}": sum(sizes[:i]) for i in range(len(sizes))}
    assert [by_row[(f, i - starts[f])] for f, i in zip(files, ids, strict=True)] == truth.tolist()
    assert (tmp_path / "out" / contract.SUCCESS_MARKER).exists()


def test_jsonl_output_and_explicit_columns(models: dict[str, Path], tmp_path: Path) -> None:
    table = write_inputs(tmp_path / "in", "csv", [300])
    # a single file named as the input; the id as key (an integer: that is what the first rows hold)
    config = settings(f"file://{tmp_path}/in/f0.csv", f"file://{tmp_path}/out", "csv", keys=["id"],
                      columns=FEATURES, output_format="jsonl", shards=2)  # fmt: skip
    run_all(config, models["iris"])
    rows = [json.loads(line) for p in sorted((tmp_path / "out").glob("part-*.jsonl"))
            for line in p.read_text().splitlines()]  # fmt: skip
    assert [r["id"] for r in rows] == list(range(300))
    assert [r["prediction"] for r in rows] == expected_predictions(models["iris"], table).tolist()


def test_multi_column_output_is_a_list_per_row(models: dict[str, Path], tmp_path: Path) -> None:
    table = write_inputs(tmp_path / "in", "parquet", [50])
    config = settings(f"file://{tmp_path}/in", f"file://{tmp_path}/out", keys=["id"], model_format="xgboost")
    run_all(config, models["xgboost-json"])
    out = read_parts(tmp_path / "out")
    assert out.schema.field("prediction").type == pa.list_(pa.float32(), 3)
    from modelpilot.server.loaders import load_model

    model = load_model(models["xgboost-json"])
    x = np.column_stack([table.column(c).to_numpy() for c in table.column_names[1:5]])
    expected = model.predict({"input-0": x.astype(np.float32)}, ["predict"])["predict"]
    assert np.array_equal(np.array(out.column("prediction").to_pylist(), dtype=np.float32), expected)


BAD_CSV = """id,sepal_length,sepal_width,petal_length,petal_width
0,5.1,3.5,1.4,0.2
1,abc,3.0,1.4,0.2
2,6.3,,4.9,1.5

3,6.3,2.9
4, 5.8 ,2.7,5.1,1.9
5,7.1,3.0,5.9,2.1,9
6,6.0,x,y,1.0
7,5.0,3.4,1.5,0.2
"""


def test_csv_bad_rows_go_to_errors_with_reasons(models: dict[str, Path], tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "bad.csv").write_text(BAD_CSV)
    config = settings(f"file://{tmp_path}/in", f"file://{tmp_path}/out", "csv", columns=FEATURES, max_failed=100)
    [report] = run_all(config, models["iris"])
    assert (report.rows_in, report.rows_out, report.rows_failed) == (8, 3, 5)
    out = read_parts(tmp_path / "out")
    assert out.column("_row").to_pylist() == [0, 5, 8]  # line numbers without the header; the blank line counts
    errors = {e["_row"]: e for e in read_errors(tmp_path / "out")}
    assert errors[1]["reason"] == "column sepal_length: 'abc' is not a number"
    assert errors[1]["values"] == {"sepal_length": "abc", "sepal_width": "3.0", "petal_length": "1.4",
                                   "petal_width": "0.2"}  # fmt: skip
    assert errors[2]["reason"] == "column sepal_width: missing value"
    assert errors[4]["reason"] == "expected 5 columns, got 3" and errors[4]["line"] == "3,6.3,2.9"
    assert errors[6]["reason"] == "expected 5 columns, got 6"
    assert errors[7]["reason"] == "column sepal_width: 'x' is not a number; column petal_length: 'y' is not a number"
    assert sorted(errors) == [1, 2, 4, 6, 7]
    assert all(e["_file"] == "bad.csv" for e in errors.values())
    manifest = json.loads((tmp_path / "out" / contract.manifest_file(0)).read_text())
    assert {r["reason"]: r["rows"] for r in manifest["failureReasons"]} == {
        "wrong number of columns": 2, "column sepal_length: not a number": 1,
        "column sepal_width: missing value": 1, "column sepal_width: not a number": 1,
    }  # fmt: skip


BAD_JSONL = """{"id": 0, "sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
{"id": 1, "sepal_length": "5.1", "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
{"id": 2, "sepal_length": 6.3, "sepal_width": null, "petal_length": 4.9, "petal_width": 1.5}
{"id": 3, "sepal_length": 6.3, "petal_length": 4.9, "petal_width": 1.5}
{"id": 4, "sepal_length": true, "sepal_width": 2.7, "petal_length": 5.1, "petal_width": 1.9}
{"id": 5, "sepal_length": 7.1, "sepal_width": 3.0, "petal_length
[1, 2, 3]

{"id": 7, "sepal_length": 5, "sepal_width": 3, "petal_length": 1, "petal_width": 0}
"""


def test_jsonl_bad_rows_go_to_errors_with_reasons(models: dict[str, Path], tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "bad.jsonl").write_text(BAD_JSONL)
    config = settings(f"file://{tmp_path}/in", f"file://{tmp_path}/out", "jsonl", keys=["id"], max_failed=100)
    [report] = run_all(config, models["iris"])
    assert (report.rows_in, report.rows_out, report.rows_failed) == (8, 2, 6)
    assert read_parts(tmp_path / "out").column("id").to_pylist() == [0, 7]
    errors = read_errors(tmp_path / "out")
    reasons = {e["id"]: e["reason"] for e in errors if e["id"] is not None}
    assert reasons == {
        1: "column sepal_length: '5.1' is not a number",
        2: "column sepal_width: missing value",
        3: "column sepal_width: missing value",
        4: "column sepal_length: True is not a number",
    }
    unparsed = [e for e in errors if e["id"] is None]
    assert [e["reason"].split(":")[0] for e in unparsed] == ["not valid JSON", "not a JSON object"]
    assert unparsed[1]["line"] == "[1, 2, 3]"


def test_parquet_nulls_and_strings(models: dict[str, Path], tmp_path: Path) -> None:
    table = pa.table({
        "id": [0, 1, 2, 3],
        "sepal_length": pa.array(["5.1", "n/a", "6.3", "5.0"]),
        "sepal_width": [3.5, None, 2.9, 3.4],
        "petal_length": [1.4, 1.4, 5.6, 1.5],
        "petal_width": pa.array([0.2, 0.2, 1.8, 0.2], pa.float32()),
    })  # fmt: skip
    (tmp_path / "in").mkdir()
    pq.write_table(table, tmp_path / "in" / "x.parquet")
    config = settings(f"file://{tmp_path}/in", f"file://{tmp_path}/out", keys=["id"], max_failed=100)
    run_all(config, models["iris"])
    assert read_parts(tmp_path / "out").column("id").to_pylist() == [0, 2, 3]
    [error] = read_errors(tmp_path / "out")
    assert error["id"] == 1
    assert error["reason"] == "column sepal_length: 'n/a' is not a number; column sepal_width: missing value"


def test_only_the_rows_predict_fails_on_go_to_errors(models: dict[str, Path], tmp_path: Path) -> None:
    from tests.support import testmodels

    testmodels.write_failing(tmp_path / "model", error_ratio=0.0, fail_negative=True)
    table = write_inputs(tmp_path / "in", "parquet", [1000])
    lengths = table.column("sepal_length").to_numpy().copy()
    lengths[[3, 500, 501, 999]] = -1.0  # the model raises for any batch with a negative first feature
    table = table.set_column(1, "sepal_length", pa.array(lengths)).drop_columns(["_file"])
    pq.write_table(table, tmp_path / "in" / "f0.parquet")
    config = settings(f"file://{tmp_path}/in", f"file://{tmp_path}/out", keys=["id"], batch_size=256)
    [report] = run_all(config, tmp_path / "model")
    assert (report.rows_out, report.rows_failed) == (996, 4)
    errors = read_errors(tmp_path / "out")
    assert [e["id"] for e in errors] == [3, 500, 501, 999]
    assert errors[0]["reason"] == "predict failed: ValueError: injected failure: negative first feature"
    out = read_parts(tmp_path / "out")
    good = np.ones(1000, bool)
    good[[3, 500, 501, 999]] = False
    assert out.column("id").to_pylist() == np.flatnonzero(good).tolist()


def test_invalid_runs_exit_2(models: dict[str, Path], tmp_path: Path) -> None:
    write_inputs(tmp_path / "in", "parquet", [10])
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "_SUCCESS").write_text("")  # names starting with _ are not data
    cases = {
        "NoInput": settings(f"file://{tmp_path}/empty", f"file://{tmp_path}/o1"),
        "MissingColumn": settings(f"file://{tmp_path}/in", f"file://{tmp_path}/o2", keys=["customer"]),
        "ColumnMismatch": settings(f"file://{tmp_path}/in", f"file://{tmp_path}/o3"),  # id is a feature: 5 columns
    }
    for reason, config in cases.items():
        code, report = run_in_process(config, 0, models["iris"])
        assert (code, report.reason) == (contract.EXIT_INVALID_RUN, reason), report
    result = run_cli(settings(f"file://{tmp_path}/in", f"file://{tmp_path}/o4", shards=2), None, models["iris"],
                     tmp_path)  # fmt: skip
    assert result.code == contract.EXIT_INVALID_RUN
    assert result.report["reason"] == "InvalidConfig" and "JOB_COMPLETION_INDEX" in result.report["message"]
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o3").exists()


def test_glob_and_hidden_files(models: dict[str, Path], tmp_path: Path) -> None:
    write_inputs(tmp_path / "in" / "day=1", "csv", [20, 30])
    write_inputs(tmp_path / "in" / "day=2", "csv", [40])
    (tmp_path / "in" / "day=1" / ".f9.csv.crc").write_text("junk")
    (tmp_path / "in" / "_tmp").mkdir()
    (tmp_path / "in" / "_tmp" / "f0.csv").write_text("junk")
    config = settings(f"file://{tmp_path}/in/day=*/*.csv", f"file://{tmp_path}/out", "csv", shards=2, columns=FEATURES)
    run_all(config, models["iris"])
    files = set(read_parts(tmp_path / "out").column("_file").to_pylist())
    assert files == {"day=1/f0.csv", "day=1/f1.csv", "day=2/f0.csv"}
    run_all({**config, "input": {**config["input"], "uri": f"file://{tmp_path}/in"},
             "output": {**config["output"], "uri": f"file://{tmp_path}/out2"}}, models["iris"])  # fmt: skip
    assert read_parts(tmp_path / "out2").num_rows == 90


def test_key_types_are_decided_once_from_the_first_file(models: dict[str, Path], tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    row = "5.1,3.5,1.4,0.2"
    header = "id,code,sepal_length,sepal_width,petal_length,petal_width\n"
    # ids are integers in the first file, so everywhere; a zero-padded code stays text
    (tmp_path / "in" / "a.csv").write_text(header + "".join(f"{i},00{i},{row}\n" for i in range(50)))
    (tmp_path / "in" / "b.csv").write_text(header + f"50,0050,{row}\nx51,0051,{row}\n,0052,{row}\n")
    config = settings(f"file://{tmp_path}/in", f"file://{tmp_path}/out", "csv", keys=["id", "code"], shards=2,
                      columns=FEATURES, max_failed=100)  # fmt: skip
    run_all(config, models["iris"])
    parts = [pq.read_table(p) for p in sorted((tmp_path / "out").glob("part-*.parquet"))]
    assert [t.schema.field("id").type for t in parts] == [pa.int64(), pa.int64()]
    assert [t.schema.field("code").type for t in parts] == [pa.string(), pa.string()]
    assert parts[1].column("id").to_pylist() == [50, None]  # an empty key is a null key
    [error] = read_errors(tmp_path / "out")
    assert error["reason"] == "key column id: 'x51' is not an integer like the first rows'"
    assert error["line"] == f"x51,0051,{row}"
    # JSON lines: the first object's types
    lines = ['{"id": 1, "sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}',
             '{"id": "2", "sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}']
    (tmp_path / "json").mkdir()
    (tmp_path / "json" / "x.jsonl").write_text("\n".join(lines) + "\n")
    config = settings(f"file://{tmp_path}/json", f"file://{tmp_path}/out-json", "jsonl", keys=["id"], max_failed=100)
    run_all(config, models["iris"])
    assert read_parts(tmp_path / "out-json").column("id").to_pylist() == [1]
    assert [e["reason"] for e in read_errors(tmp_path / "out-json")] == [
        "key column id: '2' is not an integer like the first row's"]
