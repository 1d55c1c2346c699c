"""One shard of a batch run, start to end: the steps and every decision, logged as JSON lines.

    check the output (mode) and claim the shard -> plan -> score its units into a part and an
    errors file (both streamed) -> publish errors, part, then the shard manifest -> complete the
    run when every shard's manifest is there

A shard whose manifest for this run already exists (a retry after the pod died late) does no
work again. On any exit the shard's ShardReport goes to the termination log.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from modelpilot.batch import contract, output
from modelpilot.batch.errors import ShardError, invalid_run
from modelpilot.batch.plan import InputFile, needs_row_groups, plan_shard
from modelpilot.batch.storage import InvalidLocation, Location, list_inputs

REASON_ERROR = "Error"


def log(event: str, **fields: Any) -> None:
    """One structured line per decision, on stderr (the container log)."""
    line = {"time": datetime.now(UTC).isoformat(timespec="milliseconds"), "event": event, **fields}
    print(json.dumps(line, default=str), file=sys.stderr, flush=True)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass
class Shard:
    """What one shard is: the run's settings, its index and identity, and where the model is."""

    config: contract.RunConfig
    index: int
    run_id: str
    job: str
    model_dir: Path
    env: Mapping[str, str]

    @property
    def tag(self) -> str:
        return contract.safe_run_id(self.run_id)


def run_shard(shard: Shard) -> tuple[int, contract.ShardReport]:
    """Score the shard; (exit code, report). Never raises."""
    report = contract.ShardReport(shard=shard.index)
    try:
        return contract.EXIT_OK, _run(shard, report)
    except ShardError as err:
        report.reason, report.message = err.reason, err.message
        log("failed", shard=shard.index, reason=err.reason, message=err.message, exitCode=err.exit_code)
        return err.exit_code, report
    except Exception as err:  # storage hiccups and the like: the Job retries the shard
        report.reason, report.message = REASON_ERROR, f"{type(err).__name__}: {err}"
        log("failed", shard=shard.index, reason=REASON_ERROR, message=report.message, exitCode=contract.EXIT_RETRY)
        return contract.EXIT_RETRY, report


def _run(shard: Shard, report: contract.ShardReport) -> contract.ShardReport:
    config = shard.config
    if not 0 <= shard.index < config.shards:
        raise invalid_run("InvalidShard", f"shard {shard.index} is not within 0..{config.shards - 1}")
    started, clock = _now(), time.monotonic()
    log("start", shard=shard.index, shards=config.shards, runId=shard.run_id, job=shard.job,
        input=config.input.uri, output=config.output.uri, mode=config.output.mode)  # fmt: skip
    out = Location(config.output.uri, shard.env)
    done = out.read_json(contract.manifest_file(shard.index))
    if done is not None and done.get("runId") == shard.run_id:
        log("already-done", shard=shard.index, manifest=contract.manifest_file(shard.index))
        _fill(report, done)
        _complete(out, shard)
        return report
    fs, files = _inputs(shard)
    from modelpilot.batch import readers

    keys, features = _columns(config.input, readers.source_columns(fs, files[0], config.input.format), files[0])
    typed = {k: readers.key_types(fs, files[0], config.input.format, keys).get(k) for k in keys}
    model = _load_model(shard, len(features))
    _prepare_output(out, shard)
    if config.input.format == "parquet" and needs_row_groups(len(files), config.shards):
        files = [readers.row_groups(fs, f) for f in files]
    units = plan_shard(files, config.shards, shard.index)
    log("plan", shard=shard.index, files=len(files), unitCount=len(units), units=[u.describe() for u in units[:20]],
        keys={k: str(t or "as in the files") for k, t in typed.items()}, features=features)  # fmt: skip
    from modelpilot.batch.publish import score_and_publish

    manifest = score_and_publish(shard, out, fs, units, model, typed, features, report)
    manifest.update(startedAt=started, completedAt=_now(), durationSeconds=round(time.monotonic() - clock, 3))
    out.write_json(contract.manifest_file(shard.index), manifest, shard.tag)
    log("manifest", shard=shard.index, name=contract.manifest_file(shard.index), rowsIn=report.rows_in,
        rowsOut=report.rows_out, rowsFailed=report.rows_failed)  # fmt: skip
    _complete(out, shard)
    return report


def _fill(report: contract.ShardReport, manifest: Mapping[str, Any]) -> None:
    report.rows_in = int(manifest.get("rowsIn", 0))
    report.rows_out = int(manifest.get("rowsOut", 0))
    report.rows_failed = int(manifest.get("rowsFailed", 0))


def _inputs(shard: Shard) -> tuple[Any, list[InputFile]]:
    try:
        fs, files = list_inputs(shard.config.input.uri, shard.env)
    except InvalidLocation as err:
        raise invalid_run("NoInput", str(err)) from None
    log("inputs", shard=shard.index, files=len(files), bytes=sum(f.size for f in files), first=files[0].name)
    return fs, files


def _columns(spec: contract.RunInput, names: list[str], first: InputFile) -> tuple[list[str], list[str]]:
    """(key columns, feature columns): the features are input.columns, or every column of the
    first input file (all shards read the same one) but the keys, in file order."""
    keys = list(spec.key_columns)
    features = list(spec.columns) or [n for n in names if n not in set(keys)]
    unknown = [n for n in dict.fromkeys([*keys, *features]) if n not in set(names)]
    if unknown:
        raise invalid_run("MissingColumn", f"{first.name} has no column {', '.join(map(repr, unknown))} "
                          f"(columns: {', '.join(names[:50])})")  # fmt: skip
    if not features:
        raise invalid_run("MissingColumn", f"no feature columns: {first.name} has only the key columns")
    return keys, features


def _load_model(shard: Shard, feature_count: int) -> Any:
    from modelpilot.server.loaders import FORMATS, ModelLoadError, load_model, model_columns

    fmt = shard.config.model.format if shard.config.model.format in FORMATS else None
    try:
        model = load_model(shard.model_dir, fmt)
    except ModelLoadError as err:
        raise invalid_run("ModelLoadFailed", str(err)) from None
    expected = model_columns(model)
    if expected is not None and expected != feature_count:
        raise invalid_run("ColumnMismatch", f"the model takes {expected} feature columns; the input gives "
                          f"{feature_count}")  # fmt: skip
    log("model", shard=shard.index, platform=model.platform, output=model.default_outputs[0])
    return model


def _prepare_output(out: Location, shard: Shard) -> None:
    """Apply the output mode, then claim the shard (before writing anything else)."""
    if shard.config.output.mode == "failIfExists":
        foreign = output.foreign_files(out, shard.run_id)
        if foreign:
            shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
            raise invalid_run("OutputExists", f"{out.uri} holds files of another run ({shown}); output mode "
                              "failIfExists refuses it (use overwrite, or another output)")  # fmt: skip
        stale = output.own_leftovers(out, shard.index)
    else:
        stale = output.stale_files(out, shard.run_id, shard.index, shard.config.shards)
    if stale:
        log("delete", shard=shard.index, mode=shard.config.output.mode, files=stale[:20], count=len(stale))
        out.delete(stale)
    out.write_json(contract.claim_file(shard.index, shard.run_id), {"runId": shard.run_id, "job": shard.job},
                   shard.tag)  # fmt: skip


def _complete(out: Location, shard: Shard) -> None:
    if output.complete(out, shard.run_id, shard.job, shard.config.shards):
        log("run-complete", shard=shard.index, manifest=out.uri_of(contract.RUN_MANIFEST))
    else:
        log("run-incomplete", shard=shard.index)


def write_report(report: contract.ShardReport, path: str) -> None:
    """The ShardReport as the container's termination message (cut to the kubelet's limit)."""
    data = report.model_dump_json(by_alias=True).encode()
    while len(data) > contract.TERMINATION_LOG_LIMIT and report.message:
        report.message = report.message[: max(len(report.message) - (len(data) - contract.TERMINATION_LOG_LIMIT)
                                              - 8, 0)] + "..."  # fmt: skip
        data = report.model_dump_json(by_alias=True).encode()
    try:
        Path(path).write_bytes(data)
    except OSError as err:  # e.g. run outside a pod: /dev/termination-log is not writable
        log("termination-log-unwritable", path=path, error=str(err))
