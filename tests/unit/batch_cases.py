"""One table of BatchPrediction specs, run by the parser, the CEL rules (unit) and the admission
e2e test: every invalid case is refused with the same message everywhere."""

from __future__ import annotations

import copy
from typing import Any

BASE: dict[str, Any] = {
    "model": {"modelDeploymentRef": {"name": "iris"}},
    "input": {"uri": "s3://data/transactions/", "format": "parquet"},
    "output": {"uri": "s3://data/scores/"},
}


def batch_spec(**changes: Any) -> dict[str, Any]:
    out = copy.deepcopy(BASE)
    out.update(changes)
    return out


INLINE = {"version": "v7", "uri": "s3://models/iris/v7", "format": "sklearn"}

VALID: list[tuple[str, dict[str, Any]]] = [
    ("minimal", batch_spec()),
    ("inline-model", batch_spec(model=dict(INLINE, storageSecretRef={"name": "s3"}))),
    ("csv-with-columns", batch_spec(input={"uri": "file:///data/in/*.csv", "format": "csv",
                                           "columns": ["a", "b"], "keyColumns": ["id"]})),
    ("pvc-jsonl", batch_spec(input={"uri": "pvc://claim/in", "format": "jsonl"},
                             output={"uri": "pvc://claim/out", "format": "jsonl", "mode": "overwrite"})),
    ("schedule", batch_spec(schedule="0 2 * * *")),
    ("schedule-macro", batch_spec(schedule="@hourly")),
    ("shards", batch_spec(shards=8, parallelism=4, backoffLimitPerShard=1, maxFailedRowsPercent=0.5,
                          ttlSecondsAfterFinished=3600)),
    ("gpu", batch_spec(accelerator={"vendor": "nvidia", "count": 1}, resources={"requests": {"cpu": "2"}})),
]

INVALID: list[tuple[str, dict[str, Any], str]] = [
    ("ref-and-inline", batch_spec(model={"modelDeploymentRef": {"name": "iris"}, "version": "v1"}),
     "model needs either modelDeploymentRef or an inline model (version, uri and format), not both"),
    ("inline-without-uri", batch_spec(model={"version": "v1", "format": "sklearn"}),
     "model needs either modelDeploymentRef or an inline model (version, uri and format), not both"),
    ("http-input", batch_spec(input={"uri": "https://example.com/a.csv", "format": "csv"}),
     "input.uri must start with file://, s3://, gs:// or pvc://"),
    ("pvc-without-claim", batch_spec(output={"uri": "pvc:///out"}),
     "output.uri pvc:// must name a PersistentVolumeClaim: pvc://<claim-name>/<path>"),
    ("bad-schedule", batch_spec(schedule="every day"),
     "schedule must be a cron expression of five fields (e.g. '0 2 * * *') or @hourly, @daily, @weekly, ..."),
    ("parallelism-over-shards", batch_spec(shards=2, parallelism=4), "parallelism must be <= shards"),
]

INVALID_SCHEMA: list[tuple[str, dict[str, Any], str]] = [
    ("input-format", batch_spec(input={"uri": "s3://a/b", "format": "xlsx"}), "spec.input.format"),
    ("output-format", batch_spec(output={"uri": "s3://a/b", "format": "csv"}), "spec.output.format"),
    ("mode", batch_spec(output={"uri": "s3://a/b", "mode": "append"}), "spec.output.mode"),
    ("shards-zero", batch_spec(shards=0), "spec.shards"),
    ("failed-percent", batch_spec(maxFailedRowsPercent=101), "spec.maxFailedRowsPercent"),
    ("unknown-field", batch_spec(replicas=3), "spec"),
]
