"""Score a shard's units into its part and errors file, then publish them or leave nothing.

Both files stream into Sinks (storage.py) that only appear when published: an exception anywhere
aborts both, so a killed or failed attempt never leaves a partial part behind. Over
maxFailedRowsPercent the errors are still published (to see why) but the part is not, and the
shard fails with TooManyFailedRows (EXIT_SHARD_FAILED: not retried, the same rows would fail again).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pyarrow as pa

from modelpilot.batch import contract
from modelpilot.batch.convert import declared_prediction_type
from modelpilot.batch.errors import ShardError
from modelpilot.batch.plan import WorkUnit
from modelpilot.batch.readers import read_unit
from modelpilot.batch.score import Counts, Scorer
from modelpilot.batch.storage import Location, Sink
from modelpilot.batch.writers import ErrorWriter, PartWriter, empty_schema

if TYPE_CHECKING:
    from modelpilot.batch.runner import Shard
    from modelpilot.server.loaders import Model


def score_and_publish(
    shard: Shard, out: Location, fs: Any, units: list[WorkUnit], model: Model, keys: dict[str, pa.DataType | None],
    features: list[str], report: contract.ShardReport,
) -> dict[str, Any]:  # fmt: skip
    """Score and publish; the shard manifest (without its times), or ShardError when too many rows
    failed. `keys`: key columns and their types (None: as in the files). `report` gets the row
    counts either way."""
    from modelpilot.batch.runner import log

    config = shard.config
    part_name = contract.part_file(shard.index, config.output.format)
    errors_name = contract.errors_file(shard.index)
    part_sink, errors_sink = out.create(part_name, shard.tag), out.create(errors_name, shard.tag)
    try:
        part = PartWriter(part_sink, config.output.format, empty_schema(keys, declared_prediction_type(model)))
        errors = ErrorWriter(errors_sink)
        scorer = Scorer(model, list(keys), part, errors)
        read_keys = {k: kind or pa.string() for k, kind in keys.items()}  # Parquet ignores the types
        for unit in units:
            log("unit", shard=shard.index, **unit.describe())
            for batch in read_unit(fs, unit, config.input.format, read_keys, features, config.batch_size,
                                   number=not keys):  # fmt: skip
                scorer.score(batch)
        part.finish()
        _count(report, scorer.counts)
        over = _over_limit(scorer.counts, config.max_failed_rows_percent)
        _publish_errors(out, errors_sink, errors.rows, errors_name)
    except BaseException:
        part_sink.abort()
        errors_sink.abort()
        raise
    if over:
        part_sink.abort()
        out.delete([part_name])  # an earlier attempt's part must not look like a result
        reasons = "; ".join(f"{r['reason']} ({r['rows']})" for r in errors.top_reasons()[:3])
        message = (f"{report.rows_failed} of {report.rows_in} rows failed, over maxFailedRowsPercent "
                   f"{config.max_failed_rows_percent:g}; see {out.uri_of(errors_name)}: {reasons}")  # fmt: skip
        log("too-many-failed-rows", shard=shard.index, rowsIn=report.rows_in, rowsFailed=report.rows_failed,
            errors=errors_name, reasons=errors.top_reasons())  # fmt: skip
        raise ShardError(contract.EXIT_SHARD_FAILED, "TooManyFailedRows", message)
    part_sink.publish()
    log("part", shard=shard.index, name=part_name, rows=report.rows_out, bytes=part_sink.size,
        sha256=part_sink.sha256)  # fmt: skip
    return _manifest(shard, units, report, part_sink, errors)


def _manifest(
    shard: Shard, units: list[WorkUnit], report: contract.ShardReport, part: Sink, errors: ErrorWriter
) -> dict[str, Any]:
    config = shard.config
    return {
        "runId": shard.run_id,
        "job": shard.job,
        "name": config.name,
        "namespace": config.namespace,
        "shard": shard.index,
        "shards": config.shards,
        "format": config.output.format,
        "units": [u.describe() for u in units],
        "rowsIn": report.rows_in,
        "rowsOut": report.rows_out,
        "rowsFailed": report.rows_failed,
        "failureReasons": errors.top_reasons(),
        "part": part.name,
        "partSha256": part.sha256,
        "partBytes": part.size,
        "errors": errors.sink.name if errors.rows else None,
        "model": {"name": config.model.name, "version": config.model.version, "revision": config.model.revision},
    }


def _count(report: contract.ShardReport, counts: Counts) -> None:
    report.rows_in, report.rows_out, report.rows_failed = counts.rows_in, counts.rows_out, counts.rows_failed


def _over_limit(counts: Counts, max_percent: float) -> bool:
    return counts.rows_failed * 100 > max_percent * counts.rows_in


def _publish_errors(out: Location, sink: Sink, rows: int, name: str) -> None:
    """Publish the errors file when there are errors; otherwise drop it and any earlier one."""
    if rows:
        sink.publish()
        return
    sink.abort()
    out.delete([name])
