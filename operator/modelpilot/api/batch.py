"""pydantic v2 models of the `BatchPrediction` API (modelpilot.io/v1alpha1, short name `bp`):
score a dataset in bulk with the same model spec a ModelDeployment serves, on an Indexed Job.

Same rules as the ModelDeployment models: defaults live here, not in the CRD, and every CEL rule
has a parser-side twin with the same message.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from modelpilot.api.common import (
    DNS1123_SUBDOMAIN,
    PVC_URI_PATTERN,
    ModelFormat,
    SpecModel,
    StatusModel,
    cel_rules,
)
from modelpilot.api.models import read_lenient, validate_spec
from modelpilot.api.serving import Accelerator, EnvVar, Resources, SecretRef
from modelpilot.api.status import Condition
from modelpilot.batch.contract import InputFormat, OutputFormat, OutputMode

BATCH_KIND = "BatchPrediction"
BATCH_PLURAL = "batchpredictions"
BATCH_SINGULAR = "batchprediction"
BATCH_SHORT_NAMES = ("bp",)

# A CronJob's name is at most 52 characters (its Jobs append a timestamp); the Job and CronJob are
# named after the BatchPrediction.
MAX_BATCH_NAME_LENGTH = 52
BATCH_NAME_MESSAGE = (
    f"metadata.name must be a DNS-1035 label (lowercase letters, digits and '-', starting with a letter) "
    f"of at most {MAX_BATCH_NAME_LENGTH} characters: its Job and CronJob are named after it"
)

DATA_URI_PATTERN = r"^(file|s3|gs|pvc)://.+$"
DATA_URI_MESSAGE = "must start with file://, s3://, gs:// or pvc://"
# Kubernetes cron syntax: five fields, or one of the @ macros the CronJob controller knows (no
# backslashes: the pattern goes into a CEL string literal).
CRON_PATTERN = r"^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|[^ ]+( +[^ ]+){4})$"
CRON_MESSAGE = "schedule must be a cron expression of five fields (e.g. '0 2 * * *') or @hourly, @daily, @weekly, ..."
COLUMN = Annotated[str, Field(min_length=1, max_length=256)]

BatchPhase = Literal["Pending", "Running", "Succeeded", "Failed"]


def _uri_rules(path: str) -> dict[str, Any]:
    return cel_rules(
        (f"self.matches('{DATA_URI_PATTERN}')", f"{path} {DATA_URI_MESSAGE}"),
        (
            f"!self.startsWith('pvc://') || self.matches('{PVC_URI_PATTERN}')",
            f"{path} pvc:// must name a PersistentVolumeClaim: pvc://<claim-name>/<path>",
        ),
    )


def _data_uri_field(path: str, description: str) -> Any:
    """A data URI field: its CEL rules here, their parser-side twin in `_check_data_uri`."""
    return Field(description=description, min_length=1, max_length=2048, json_schema_extra=_uri_rules(path))


def _check_data_uri(path: str, uri: str) -> str:
    if not re.match(DATA_URI_PATTERN, uri):
        raise ValueError(f"{path} {DATA_URI_MESSAGE}")
    if uri.startswith("pvc://") and not re.match(PVC_URI_PATTERN, uri):
        raise ValueError(f"{path} pvc:// must name a PersistentVolumeClaim: pvc://<claim-name>/<path>")
    return uri


# -------------------------------------------------------------------------------------------- spec


class ModelDeploymentRef(SpecModel):
    """A ModelDeployment in the same namespace."""

    name: str = Field(description="Name of the ModelDeployment.", min_length=1, max_length=253,
                      pattern=DNS1123_SUBDOMAIN)


_MODEL_ONE_OF = "model needs either modelDeploymentRef or an inline model (version, uri and format), not both"


class BatchModel(SpecModel):
    """Which model scores the data: the stable version of a ModelDeployment at the start of each
    run, or a model written inline as in a ModelDeployment's `spec.model`."""

    model_config = ConfigDict(
        json_schema_extra=cel_rules(
            (
                "has(self.modelDeploymentRef) ? !(has(self.version) || has(self.uri) || has(self.format) || "
                "has(self.storageSecretRef)) : (has(self.version) && has(self.uri) && has(self.format))",
                _MODEL_ONE_OF,
            ),
        )
    )

    model_deployment_ref: ModelDeploymentRef | None = Field(
        default=None,
        description="Use the version the ModelDeployment's stable track serves when a run starts (a canary in "
        "flight does not count). Its runtime image is used too unless `runtime.image` is set.",
    )
    version: str | None = Field(default=None, description="Inline model: free-form version label.", min_length=1,
                                max_length=128)
    uri: str | None = Field(
        default=None,
        description="Inline model: where the files are (file://, http://, https://, s3://, gs:// or pvc://).",
        min_length=1,
        max_length=2048,
    )
    format: ModelFormat | None = Field(default=None, description="Inline model: sklearn, xgboost, onnx or custom.")
    storage_secret_ref: SecretRef | None = Field(
        default=None, description="Inline model: Secret with the credentials to fetch it (as in a ModelDeployment)."
    )

    @model_validator(mode="after")
    def _check_one_of(self) -> BatchModel:
        inline = (self.version, self.uri, self.format)
        if self.model_deployment_ref is not None:
            if any(v is not None for v in inline) or self.storage_secret_ref is not None:
                raise ValueError(_MODEL_ONE_OF)
        elif any(v is None for v in inline):
            raise ValueError(_MODEL_ONE_OF)
        return self


class BatchInput(SpecModel):
    """The dataset to score."""

    uri: str = _data_uri_field("input.uri", "A file, a prefix (every file under it, in name order) or a glob "
                               "(`*`, `**`) on file://, s3://, gs:// or pvc://CLAIM/PATH.")
    format: InputFormat = Field(description="parquet, csv (with a header row) or jsonl (one JSON object per line).")
    columns: list[COLUMN] = Field(
        default_factory=list,
        description="Feature columns, in the order the model expects. Default: every column except `keyColumns`, "
        "in file order.",
        max_length=4096,
    )
    key_columns: list[COLUMN] = Field(
        default_factory=list,
        description="Columns copied to every output (and error) row so results join back to the input. Default: "
        "none; each output row then carries `_file` and `_row` (its file and row number).",
        max_length=16,
    )

    @field_validator("uri")
    @classmethod
    def _check_uri(cls, uri: str) -> str:
        return _check_data_uri("input.uri", uri)


class BatchOutput(SpecModel):
    """Where the predictions go."""

    uri: str = _data_uri_field("output.uri", "A prefix (directory) on file://, s3://, gs:// or pvc://CLAIM/PATH. "
                               "`{job}` is replaced by the run's Job name (for a schedule: a prefix per run).")
    format: OutputFormat = Field(default="parquet", description="parquet (default) or jsonl.")
    mode: OutputMode = Field(
        default="failIfExists",
        description="failIfExists (default): a run refuses an output that holds another run's results. "
        "overwrite: each shard replaces its own part, and stale parts of an earlier, larger run are removed.",
    )

    @field_validator("uri")
    @classmethod
    def _check_uri(cls, uri: str) -> str:
        return _check_data_uri("output.uri", uri)


class BatchRuntime(SpecModel):
    """The batch container (optional)."""

    image: str | None = Field(
        default=None,
        description="Container image. Default: the referenced ModelDeployment's runtime image, else the operator's "
        "runtime image for the model format.",
        min_length=1,
        max_length=512,
    )
    env: list[EnvVar] = Field(
        default_factory=list,
        description="Extra environment variables for the batch container.",
        max_length=64,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )


class BatchPredictionSpec(SpecModel):
    """A dataset scored in shards by an Indexed Job (once, or on a schedule by a CronJob)."""

    model_config = ConfigDict(
        json_schema_extra=cel_rules(
            ("!has(self.shards) || !has(self.parallelism) || self.parallelism <= self.shards",
             "parallelism must be <= shards"),
        )
    )

    model: BatchModel = Field(description="The model that scores the data.")
    input: BatchInput = Field(description="The dataset.")
    output: BatchOutput = Field(description="Where the predictions go.")
    storage_secret_ref: SecretRef | None = Field(
        default=None,
        description="Secret with the credentials for the input and output storage (same keys as a model's "
        "storageSecretRef), passed to the batch container.",
    )
    parallelism: int = Field(default=4, description="Shards scored at the same time (default 4).", ge=1, le=1000)
    shards: int | None = Field(
        default=None,
        description="How many shards the input is cut into (default: `parallelism`). Files are assigned whole, "
        "balanced by size, when there are at least as many files as shards; otherwise files are cut into row "
        "ranges (Parquet row groups, byte ranges of CSV and JSON lines).",
        ge=1,
        le=10000,
    )
    max_failed_rows_percent: float = Field(
        default=1.0,
        description="A shard fails when more than this percent of its rows fail to parse or predict (default 1). "
        "Failed rows always go to errors/ with their reason.",
        ge=0,
        le=100,
    )
    batch_size: int = Field(default=50000, description="Rows per predict call (default 50000).", ge=1, le=10000000)
    backoff_limit_per_shard: int = Field(
        default=3, description="Retries of a shard whose pod fails (default 3; a shard over its failed-row limit is "
        "not retried).", ge=0, le=100
    )
    ttl_seconds_after_finished: int | None = Field(
        default=None,
        description="Delete a finished run's Job (and its pods) this long after it ended. The status keeps the "
        "results. Default: kept until the BatchPrediction is deleted.",
        ge=0,
    )
    schedule: str | None = Field(
        default=None,
        description="Cron schedule (e.g. '0 2 * * *'): a CronJob starts a run each time, never two at once "
        "(concurrencyPolicy Forbid). Omit for a single run.",
        min_length=1,
        max_length=128,
        json_schema_extra=cel_rules((f"self.matches('{CRON_PATTERN}')", CRON_MESSAGE)),
    )
    runtime: BatchRuntime = Field(default_factory=BatchRuntime, description="The batch container (optional).")
    resources: Resources = Field(default_factory=Resources, description="CPU and memory of each shard's container.")
    accelerator: Accelerator | None = Field(default=None, description="GPU placement, as for a ModelDeployment.")

    @field_validator("schedule")
    @classmethod
    def _check_schedule(cls, schedule: str | None) -> str | None:
        if schedule is not None and not re.match(CRON_PATTERN, schedule):
            raise ValueError(CRON_MESSAGE)
        return schedule

    @model_validator(mode="after")
    def _check_parallelism(self) -> BatchPredictionSpec:
        if self.shards is not None and self.parallelism > self.shards:
            raise ValueError("parallelism must be <= shards")
        return self

    @property
    def shard_count(self) -> int:
        return self.shards if self.shards is not None else self.parallelism


# ------------------------------------------------------------------------------------------ status


class ResolvedModel(StatusModel):
    """The model a run uses, fixed when it started."""

    name: str | None = Field(default=None, description="The ModelDeployment's name, or the BatchPrediction's for an "
                             "inline model.", max_length=253)
    version: str | None = Field(default=None, description="Model version.", max_length=128)
    revision: str | None = Field(default=None, description="Serving revision (hash of model and runtime).",
                                 max_length=64)
    uri: str | None = Field(default=None, description="Model URI.", max_length=2048)
    format: ModelFormat | None = Field(default=None, description="Model format.")


class ShardCounts(StatusModel):
    """Shards of the current run by state."""

    total: int = Field(default=0, description="Shards in the run.", ge=0)
    succeeded: int = Field(default=0, description="Shards done.", ge=0)
    failed: int = Field(default=0, description="Shards that failed for good (retries exhausted or too many bad "
                        "rows).", ge=0)
    running: int = Field(default=0, description="Shards with a pod running now.", ge=0)


class RowCounts(StatusModel):
    """Rows of the succeeded shards."""

    input: int = Field(default=0, alias="in", description="Rows read.", ge=0)
    output: int = Field(default=0, alias="out", description="Rows predicted and written.", ge=0)
    failed: int = Field(default=0, description="Rows written to errors/ instead.", ge=0)


class ShardFailure(StatusModel):
    """One failed attempt of a shard."""

    shard: int = Field(description="Shard index.", ge=0)
    pod: str = Field(description="The pod that failed.", max_length=253)
    reason: str = Field(description="Why, e.g. TooManyFailedRows, Error or OOMKilled.", max_length=128)
    message: str | None = Field(default=None, description="The failure in words.", max_length=1024)
    time: datetime | None = Field(default=None, description="When it was seen.")


class BatchPredictionStatus(StatusModel):
    """Observed state of a BatchPrediction (of its latest run when it has a schedule)."""

    phase: BatchPhase | None = Field(default=None, description="Pending, Running, Succeeded or Failed.")
    observed_generation: int | None = Field(default=None, description="The generation last acted on.", ge=0)
    model: ResolvedModel | None = Field(default=None, description="The model the run uses.")
    job: str | None = Field(default=None, description="The run's Job.", max_length=253)
    shards: ShardCounts | None = Field(default=None, description="Shards by state.")
    progress: str | None = Field(default=None, description="Succeeded shards of all, e.g. 3/8.", max_length=32)
    rows: RowCounts | None = Field(default=None, description="Rows of the succeeded shards.")
    started_at: datetime | None = Field(default=None, description="When the run started.")
    completed_at: datetime | None = Field(default=None, description="When the run ended.")
    output_manifest: str | None = Field(
        default=None, description="URI of the run's manifest (written when every shard is done).", max_length=2100
    )
    last_schedule_time: datetime | None = Field(default=None, description="When the schedule last started a run.")
    runs_succeeded: int | None = Field(default=None, description="Scheduled runs that succeeded (as far as their "
                                       "Jobs are kept).", ge=0)
    runs_failed: int | None = Field(default=None, description="Scheduled runs that failed (as far as their Jobs are "
                                    "kept).", ge=0)
    failures: list[ShardFailure] = Field(default_factory=list, description="The latest failed shard attempts "
                                         "(at most 20).", max_length=20)
    conditions: list[Condition] = Field(default_factory=list, description="Complete and Failed, with reasons.",
                                        max_length=16)


def parse_batch_spec(spec: Mapping[str, Any] | None) -> BatchPredictionSpec:
    """Parse and validate a BatchPrediction's `.spec` (defaults filled); SpecError names every bad path."""
    return validate_spec(BatchPredictionSpec, spec, BATCH_KIND)


def parse_batch_status(status: Mapping[str, Any] | None) -> BatchPredictionStatus:
    return read_lenient(BatchPredictionStatus, status)
