"""`kubectl modelpilot batch list|status [--watch]` without a cluster: rows of the list, the status
panel, the shard bar and the --watch line, table-driven over BatchPredictions in every phase
(rendered into a fixed-width rich Console); the watch's exit codes against a fake cluster; the
parser wiring; and the API errors that name batchpredictions.modelpilot.io."""

from __future__ import annotations

import copy
import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console, RenderableType

from modelpilot.cli import batch_cmd, plugin
from modelpilot.cli.batch_view import batch_row, shard_bar, status_view, watch_line
from modelpilot.cli.kube import BATCH_PREDICTIONS, MODEL_DEPLOYMENTS, CliError, Cluster, Kind, Target, explain
from tests.unit.test_plugin import NOW, _api_error, kubeconfig

MODEL = {"name": "fraud", "version": "v8", "revision": "3f9c2a1b", "uri": "s3://models/fraud/v8", "format": "onnx"}
OOM = {"shard": 5, "pod": "score-tx-1-5-x7k2p", "reason": "OOMKilled",
       "message": "container batch used 2Gi of its 2Gi limit", "time": "2026-11-02T11:55:10Z"}
BAD_ROWS = {"shard": 2, "pod": "score-tx-1-2-9qwer", "reason": "TooManyFailedRows",
            "message": "412 of 20000 rows failed (2.06% > 1%): column amount: not a number",
            "time": "2026-11-02T11:58:00Z"}


def bp(status: dict[str, Any] | None, name: str = "score-tx", **spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "model": {"modelDeploymentRef": {"name": "fraud"}},
        "input": {"uri": "s3://data/tx/2026-11-01/", "format": "parquet"},
        "output": {"uri": "s3://scores/fraud/2026-11-01/", "format": "parquet", "mode": "failIfExists"},
        "parallelism": 4, "shards": 8, **spec}
    obj: dict[str, Any] = {"metadata": {"name": name, "namespace": "ml", "generation": 1,
                                        "creationTimestamp": "2026-11-02T11:00:00Z"}, "spec": base}
    if status is not None:
        obj["status"] = {"observedGeneration": 1, **status}
    return obj


def _run(phase: str, shards: tuple[int, int, int, int], rows: tuple[int, int, int] | None = None,
         **extra: Any) -> dict[str, Any]:
    total, succeeded, failed, running = shards
    status: dict[str, Any] = {"phase": phase, "model": MODEL, "job": "score-tx-1", "progress": f"{succeeded}/{total}",
                              "shards": {"total": total, "succeeded": succeeded, "failed": failed, "running": running},
                              "startedAt": "2026-11-02T11:50:00Z", **extra}
    if rows is not None:
        status["rows"] = {"in": rows[0], "out": rows[1], "failed": rows[2]}
    return status


COMPLETE = {"type": "Complete", "status": "True", "reason": "AllShardsSucceeded",
            "message": "8 shards, 4000000 rows out", "lastTransitionTime": "2026-11-02T12:00:00Z"}
FAILED = {"type": "Failed", "status": "True", "reason": "ShardsFailed",
          "message": "shard 2: TooManyFailedRows", "lastTransitionTime": "2026-11-02T12:00:00Z"}
MANIFEST = "s3://scores/fraud/2026-11-01/_manifest.json"

BPS: dict[str, dict[str, Any]] = {
    "new": bp(None),
    "pending-inline": bp({"phase": "Pending"}, name="score-inline",
                         model={"version": "v3", "uri": "s3://models/iris/v3", "format": "sklearn"}),
    "running": bp(_run("Running", (8, 3, 1, 4), (1_500_000, 1_499_988, 12), failures=[OOM])),
    "succeeded": bp(_run("Succeeded", (8, 8, 0, 0), (4_000_000, 3_999_600, 400), completedAt="2026-11-02T12:00:00Z",
                         outputManifest=MANIFEST, conditions=[COMPLETE])),
    "failed": bp(_run("Failed", (8, 6, 2, 0), (3_000_000, 2_999_000, 1000), completedAt="2026-11-02T12:00:00Z",
                      failures=[OOM, BAD_ROWS], conditions=[FAILED])),
    "scheduled": bp(_run("Succeeded", (8, 8, 0, 0), (500, 500, 0), completedAt="2026-11-02T11:51:40Z",
                         lastScheduleTime="2026-11-02T11:50:00Z", runsSucceeded=12, runsFailed=1,
                         outputManifest=MANIFEST), name="nightly", schedule="0 2 * * *"),
}


def _text(renderable: RenderableType, width: int = 130) -> str:
    console = Console(width=width, no_color=True, highlight=False, record=True, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


# --------------------------------------------------------------------------------------- list


@pytest.mark.parametrize(("fixture", "cells", "style"), [
    ("new", ["score-tx", "fraud", "-", "-", "-", "-", "-", "60m"], ""),
    ("pending-inline", ["score-inline", "inline", "v3", "-", "-", "Pending", "-", "60m"], "yellow"),
    ("running", ["score-tx", "fraud", "v8", "3/8", "1.5M (12 failed)", "Running", "-", "60m"], "cyan"),
    ("succeeded", ["score-tx", "fraud", "v8", "8/8", "4M (400 failed)", "Succeeded", "-", "60m"], "green"),
    ("failed", ["score-tx", "fraud", "v8", "6/8", "3M (1000 failed)", "Failed", "-", "60m"], "bold red"),
    ("scheduled", ["nightly", "fraud", "v8", "8/8", "500", "Succeeded", "0 2 * * *", "60m"], "green"),
])
def test_list_row(fixture: str, cells: list[str], style: str) -> None:
    row = batch_row(BPS[fixture], with_namespace=False, now=NOW)
    assert [str(c) for c in row] == cells and getattr(row[5], "style", None) == style  # PHASE coloured
    assert [str(c) for c in batch_row(BPS[fixture], with_namespace=True, now=NOW)] == ["ml", *cells]


def test_list_row_falls_back_to_the_shard_counts_without_progress() -> None:
    obj = copy.deepcopy(BPS["running"])
    del obj["status"]["progress"]
    assert str(batch_row(obj, with_namespace=False, now=NOW)[3]) == "3/8"


# --------------------------------------------------------------------------------------- shard bar


def test_shard_bar_text() -> None:
    assert shard_bar(8, 3, 1, 4).plain == "█" * 15 + "▓" * 5 + "▒" * 20 + \
        "  3/8 shards succeeded (37%), 4 running, 1 failed"
    assert shard_bar(8, 8, 0, 0).plain == "█" * 40 + "  8/8 shards succeeded (100%), 0 running, 0 failed"
    assert shard_bar(0, 0, 0, 0).plain == "░" * 40 + "  no shards yet"


@pytest.mark.parametrize(("total", "succeeded", "failed", "running"), [
    (80, 79, 0, 0), (1000, 998, 1, 1), (3, 1, 1, 0), (10000, 0, 0, 1), (7, 2, 0, 5), (1, 0, 1, 0),
])
def test_shard_bar_is_always_full_width_and_shows_every_nonzero_part(
        total: int, succeeded: int, failed: int, running: int) -> None:
    bar = shard_bar(total, succeeded, failed, running, width=40).plain.split("  ")[0]
    waiting = total - succeeded - failed - running
    assert len(bar) == 40
    for char, count in (("█", succeeded), ("▓", failed), ("▒", running), ("░", waiting)):
        assert (char in bar) == (count > 0), (char, bar)
    assert bar != "█" * 40 or succeeded == total  # all green only when every shard succeeded


# --------------------------------------------------------------------------------------- status


@pytest.mark.parametrize(("fixture", "present", "absent"), [
    ("new", ["ml/score-tx  phase -",
             "model   the stable version of ModelDeployment fraud (fixed when the run starts)",
             "data    s3://data/tx/2026-11-01/ (parquet) -> s3://scores/fraud/2026-11-01/ (parquet, failIfExists)",
             "job     -", "time    not started", "rows    none counted yet", "no shards yet",
             "no status yet: waiting for the operator"],
     ["conditions", "latest failures", "output manifest", "rows/s"]),
    ("pending-inline", ["ml/score-inline  phase Pending", "model   v3  sklearn  s3://models/iris/v3"],
     ["no status yet", "schedule"]),
    ("running", ["phase Running", "model   fraud  v8  revision 3f9c2a1b  onnx  s3://models/fraud/v8",
                 "job     score-tx-1", "time    started 2026-11-02T11:50:00Z  running for 10m",
                 "rows    in 1,500,000  out 1,499,988  failed 12  (of the 3 succeeded shards)",
                 "3/8 shards succeeded (37%), 4 running, 1 failed", "latest failures (1)",
                 "│ 11:55:10 │     5 │ score-tx-1-5-x7k2p │ OOMKilled │ container batch used 2Gi of its 2Gi limit │"],
     ["rows/s", "completed", "output manifest", "conditions"]),
    ("succeeded", ["phase Succeeded",
                   "time    started 2026-11-02T11:50:00Z  completed 2026-11-02T12:00:00Z  took 10m",
                   "rows    in 4,000,000  out 3,999,600  failed 400  (6,667 rows/s)",
                   "8/8 shards succeeded (100%), 0 running, 0 failed",
                   "Complete │ True   │ AllShardsSucceeded │ 8 shards, 4000000 rows out",
                   f"output manifest: {MANIFEST}"],
     ["running for", "latest failures", "succeeded shards)"]),
    ("failed", ["phase Failed", "took 10m", "(5,000 rows/s)  (of the 6 succeeded shards)",
                "6/8 shards succeeded (75%), 0 running, 2 failed", "Failed │ True   │ ShardsFailed",
                "latest failures (2)", "TooManyFailedRows", "412 of 20000 rows failed (2.06% > 1%)"],
     ["output manifest", "running for"]),
    ("scheduled", ["ml/nightly  phase Succeeded",
                   "schedule  0 2 * * *  last run 2026-11-02T11:50:00Z (10m ago)  runs 12 succeeded, 1 failed",
                   "took 1m40s", "(5 rows/s)", f"output manifest: {MANIFEST}"],
     ["running for"]),
])
def test_status_view(fixture: str, present: list[str], absent: list[str]) -> None:
    text = _text(status_view(BPS[fixture], now=NOW))
    for part in present:
        assert part in text, text
    for part in absent:
        assert part not in text, text


def test_status_view_keeps_the_latest_ten_failures_and_notes_a_stale_status() -> None:
    obj = copy.deepcopy(BPS["failed"])
    obj["status"]["failures"] = [{**BAD_ROWS, "shard": index, "pod": f"pod-{index}"} for index in range(20)]
    obj["metadata"]["generation"] = 2
    text = _text(status_view(obj, now=NOW))
    assert "latest failures (10)" in text and "pod-19" in text and "pod-10" in text and "pod-9 " not in text
    assert "the operator has not observed generation 2 yet (status is of 1)" in text


def test_status_view_of_a_garbled_status_does_not_crash() -> None:
    obj = bp({"phase": "Running", "shards": "eight", "rows": {"in": "many"}, "model": None, "failures": [{}],
              "startedAt": "yesterday"})
    text = _text(status_view(obj, now=NOW))
    assert "phase Running" in text and "started yesterday" in text and "in 0  out 0  failed 0" in text


# --------------------------------------------------------------------------------------- watch line


@pytest.mark.parametrize(("fixture", "line"), [
    ("new", "phase=- model=fraud@- progress=-"),
    ("pending-inline", "phase=Pending model=inline@v3 progress=-"),
    ("running", "phase=Running model=fraud@v8 job=score-tx-1 progress=3/8 running=4 failed=1 rows.in=1500000 "
                "rows.out=1499988 rows.failed=12"),
    ("succeeded", "phase=Succeeded model=fraud@v8 job=score-tx-1 progress=8/8 running=0 failed=0 rows.in=4000000 "
                  f"rows.out=3999600 rows.failed=400 took=10m manifest={MANIFEST}"),
    ("failed", "phase=Failed model=fraud@v8 job=score-tx-1 progress=6/8 running=0 failed=2 rows.in=3000000 "
               "rows.out=2999000 rows.failed=1000 took=10m"),
])
def test_watch_line(fixture: str, line: str) -> None:
    assert watch_line(BPS[fixture]) == line


# --------------------------------------------------------------------------------------- watch against a fake cluster


class FakeBatches:
    """A BatchPrediction that moves through `states`: the first is what get() answers, each watch
    window then reports the next one (a window after the last reports nothing)."""

    def __init__(self, *states: dict[str, Any], deleted: bool = False) -> None:
        self.states = list(states)
        self.current = self.states.pop(0)
        self.deleted = deleted
        self.windows = 0
        self.kinds: list[Kind] = []

    def of(self, kind: Kind) -> FakeBatches:
        self.kinds.append(kind)
        return self

    def get(self, namespace: str, name: str) -> dict[str, Any]:
        return self.current

    def list(self, namespace: str | None) -> list[dict[str, Any]]:
        if namespace not in (None, "ml"):
            return []
        items = []
        for fixture, name in (("running", "score-b"), ("scheduled", "nightly"), ("failed", "score-a")):
            item = copy.deepcopy(BPS[fixture])
            item["metadata"]["name"] = name
            items.append(item)
        return items

    def watch(self, namespace: str, name: str, seconds: int) -> Iterator[tuple[str, dict[str, Any]]]:
        self.windows += 1
        assert self.windows < 20, "the watch did not stop"
        if self.deleted:
            yield "DELETED", self.current
        if self.states:
            self.current = self.states.pop(0)
            yield "MODIFIED", self.current


LINE = re.compile(r"^\d\d:\d\d:\d\d ml/score-tx ")


OOM_LINE = "failure shard=5 pod=score-tx-1-5-x7k2p reason=OOMKilled: container batch used 2Gi of its 2Gi limit"
BAD_ROWS_LINE = ("failure shard=2 pod=score-tx-1-2-9qwer reason=TooManyFailedRows: 412 of 20000 rows failed "
                 "(2.06% > 1%): column amount: not a number")


@pytest.mark.parametrize(("states", "code", "lines"), [
    # the state lines are watch_line's (tested above); a repeated state prints nothing, a failure once
    (("new", "running", "running", "succeeded"), 0, ["new", "running", OOM_LINE, "succeeded"]),
    (("running", "failed"), 1, ["running", OOM_LINE, "failed", BAD_ROWS_LINE]),
])
def test_watch_without_a_terminal_prints_one_line_per_change_and_exits_with_the_run(
        states: tuple[str, ...], code: int, lines: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    fake = FakeBatches(*(copy.deepcopy(BPS[name]) for name in states))
    console = Console(file=io.StringIO())
    assert batch_cmd.watch_status(fake, "ml", "score-tx", console, interval=1) == code
    out = capsys.readouterr().out.splitlines()
    assert all(LINE.match(line) for line in out), out
    assert [LINE.sub("", line) for line in out] == [watch_line(BPS[x]) if x in BPS else x for x in lines]
    assert console.file.getvalue() == ""  # type: ignore[attr-defined]


@pytest.mark.parametrize(("last", "code"), [("succeeded", 0), ("failed", 1)])
def test_watch_on_a_terminal_redraws_until_the_run_ends(last: str, code: int) -> None:
    fake = FakeBatches(BPS["new"], BPS["running"], BPS[last])
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=130, color_system=None)
    assert batch_cmd.watch_status(fake, "ml", "score-tx", console, interval=1) == code
    assert fake.windows == 2 and f"phase {last.capitalize()}" in out.getvalue()


@pytest.mark.parametrize("terminal", [True, False])
def test_watch_of_a_finished_run_returns_at_once(terminal: bool, capsys: pytest.CaptureFixture[str]) -> None:
    fake = FakeBatches(BPS["failed"])
    console = Console(file=io.StringIO(), force_terminal=terminal)
    assert batch_cmd.watch_status(fake, "ml", "score-tx", console) == 1
    assert fake.windows == 0


def test_watch_of_a_deleted_object_is_an_error() -> None:
    fake = FakeBatches(BPS["running"], deleted=True)
    with pytest.raises(CliError, match=r"^batchprediction ml/score-tx was deleted$"):
        batch_cmd.watch_status(fake, "ml", "score-tx", Console(file=io.StringIO()))


# --------------------------------------------------------------------------------------- commands and parser


def test_parser_wiring() -> None:
    parser = plugin.build_parser()
    args = parser.parse_args(["batch", "status", "x", "--watch"])
    assert (args.func, args.name, args.watch, args.interval, args.namespace) == (
        batch_cmd.cmd_status, "x", True, batch_cmd.WATCH_INTERVAL, None)
    for argv in (["batch", "status", "x", "-n", "ml"], ["-n", "ml", "batch", "status", "x"],
                 ["batch", "-n", "ml", "status", "x"]):
        args = parser.parse_args(argv)
        assert (args.func, args.name, args.watch, args.namespace) == (batch_cmd.cmd_status, "x", False, "ml")
    for argv in (["batch", "list", "-A"], ["batch", "ls", "--all-namespaces"]):
        args = parser.parse_args(argv)
        assert (args.func, args.all_namespaces, args.batch_command) == (batch_cmd.cmd_list, True, "list")
    assert parser.parse_args(["status", "x", "--watch"]).func is plugin.cmd_status  # ModelDeployments unchanged


@pytest.mark.parametrize("argv", [["batch"], ["batch", "status"], ["batch", "promote", "x"]])
def test_parser_rejects_incomplete_batch_commands(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        plugin.build_parser().parse_args(argv)
    assert exit_info.value.code == 2


def test_cmd_status_watch_returns_the_runs_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    fake = FakeBatches(BPS["running"], BPS["failed"])
    args = plugin.build_parser().parse_args(["batch", "status", "score-tx", "--watch", "--interval", "1"])
    assert args.func(fake, args, "ml") == 1
    assert fake.kinds == [BATCH_PREDICTIONS]
    assert "phase=Failed" in capsys.readouterr().out


def test_cmd_status_prints_the_view_once(capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "130")
    args = plugin.build_parser().parse_args(["batch", "status", "score-tx"])
    assert args.func(FakeBatches(BPS["succeeded"]), args, "ml") == 0
    out = capsys.readouterr().out
    assert "phase Succeeded" in out and f"output manifest: {MANIFEST}" in out


@pytest.mark.parametrize(("argv", "columns"), [
    (["batch", "list"], ["NAME", "MODEL", "VERSION", "PROGRESS", "ROWS", "PHASE", "SCHEDULE", "AGE"]),
    (["batch", "list", "-A"], ["NAMESPACE", "NAME", "MODEL", "VERSION", "PROGRESS", "ROWS", "PHASE", "SCHEDULE",
                               "AGE"]),
])
def test_cmd_list(argv: list[str], columns: list[str], capsys: pytest.CaptureFixture[str],
                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # the width of a pipe, whatever the terminal running the tests
    args = plugin.build_parser().parse_args(argv)
    assert args.func(FakeBatches(BPS["new"]), args, "ml") == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == columns
    names = [line.split()[columns.index("NAME")] for line in out[1:]]
    assert names == ["nightly", "score-a", "score-b"]  # sorted by namespace and name
    assert "1.5M (12 failed)" in out[3] and "0 2 * * *" in out[1]


def test_cmd_list_of_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    args = plugin.build_parser().parse_args(["batch", "list"])
    assert args.func(FakeBatches(BPS["new"]), args, "team") == 0
    assert capsys.readouterr().err == "No batchpredictions found in team namespace.\n"


# --------------------------------------------------------------------------------------- the API


class FakeCustom:
    """CustomObjectsApi's namespaced reads, recording the plural asked for and failing with `error`."""

    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.plurals: list[str] = []

    def _read(self, group: str, version: str, namespace: str, plural: str, *name: str, **_: Any) -> dict[str, Any]:
        self.plurals.append(plural)
        if self.error:
            raise self.error
        return {"items": []}

    get_namespaced_custom_object = list_namespaced_custom_object = _read


TARGET = Target(api=None, namespace="ml", context="dev", server="https://10.0.0.1:6443")  # type: ignore[arg-type]


def test_cluster_reads_the_kind_it_is_given_and_a_missing_crd_names_batchpredictions() -> None:
    cluster = Cluster(TARGET)
    assert cluster.kind is MODEL_DEPLOYMENTS
    batches = cluster.of(BATCH_PREDICTIONS)
    assert (batches.kind, batches.target) == (BATCH_PREDICTIONS, TARGET)
    for each, plural in ((cluster, "modeldeployments"), (batches, "batchpredictions")):
        each.custom = FakeCustom()  # type: ignore[assignment]
        each.get("ml", "x")
        each.list("ml")
        assert each.custom.plurals == [plural, plural]  # type: ignore[attr-defined]
    batches.custom = FakeCustom(_api_error(404, "404 page not found", "Not Found"))  # type: ignore[assignment]
    with pytest.raises(CliError) as info:
        batches.list("ml")
    assert info.value.message == ("the BatchPrediction CRD (batchpredictions.modelpilot.io) is not installed in the "
                                  "cluster at https://10.0.0.1:6443: install the Helm chart, or `kubectl apply -f "
                                  "crds/` from the modelpilot repository")


def test_unknown_batchprediction_and_forbidden() -> None:
    missing = _api_error(404, {"kind": "Status", "reason": "NotFound", "message": "not found",
                               "details": {"name": "x", "group": "modelpilot.io", "kind": "batchpredictions"}})
    assert explain(missing, TARGET, "get", BATCH_PREDICTIONS.resource, namespace="ml", name="x").message == \
        "batchprediction ml/x not found"
    forbidden = _api_error(403, {"kind": "Status", "message": 'batchpredictions.modelpilot.io is forbidden: User '
                                 '"alice" cannot list resource "batchpredictions"'})
    assert explain(forbidden, TARGET, "list", BATCH_PREDICTIONS.resource, namespace="ml").message.startswith(
        "not allowed to list batchpredictions.modelpilot.io in namespace ml (context dev): User \"alice\"")


def test_main_batch_against_a_dead_server(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = kubeconfig(tmp_path / "config", {"dev": "ml"}, "dev", server="https://127.0.0.1:1")
    assert plugin.main(["batch", "list", "--kubeconfig", str(path)]) == 1
    assert capsys.readouterr().err == \
        "error: cannot reach the cluster at https://127.0.0.1:1 (context dev): connection refused\n"
