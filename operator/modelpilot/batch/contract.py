"""What the operator and `modelpilot batch` agree on: how a run's settings reach the pod, which
shard a pod scores, what it reports when it ends, and where its results go.

Imports neither kubernetes nor the runtime's libraries, so both sides import it.

Output layout under `output.uri` (shard numbers zero-padded to SHARD_WIDTH digits):

    part-00003.parquet            the shard's predictions (or .jsonl)
    errors/part-00003.jsonl       rows that failed to parse or predict, each with its reason
    _manifests/shard-00003.json   the shard's manifest, written last (its presence = shard done)
    _manifests/claim-00003.<run>  written first: shard 3's files belong to run <run> (failIfExists)
    _manifest.json, _SUCCESS      written by the shard that completes the run (all manifests present)
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

# The run's settings, as the JSON of RunConfig, in the batch container's environment.
CONFIG_ENV = "MODELPILOT_BATCH"
# Set by the Job controller on every pod of an Indexed Job (downward API on the pod annotation).
SHARD_INDEX_ENV = "JOB_COMPLETION_INDEX"
# The run id (the Job's uid) and the Job name, from the pod's labels (downward API).
RUN_ID_ENV = "MODELPILOT_BATCH_RUN_ID"
JOB_NAME_ENV = "MODELPILOT_BATCH_JOB"
RUN_ID_LABEL = "batch.kubernetes.io/controller-uid"
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
COMPLETION_INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"
# Where the container writes its ShardReport (the Kubernetes default terminationMessagePath).
TERMINATION_LOG = "/dev/termination-log"
TERMINATION_LOG_LIMIT = 4096  # bytes the kubelet keeps of a termination message

# Exit codes the Job's podFailurePolicy acts on: a shard that fails on its data is not retried
# (the same rows fail again), a run that cannot start fails the whole Job at once.
EXIT_OK = 0
EXIT_RETRY = 1  # anything else (storage hiccup, killed): the shard is retried up to backoffLimitPerShard
EXIT_INVALID_RUN = 2  # the output exists with mode failIfExists, no input matches, bad columns
EXIT_SHARD_FAILED = 3  # more failed rows than maxFailedRowsPercent

SHARD_WIDTH = 5
MANIFEST_DIR = "_manifests"
ERRORS_DIR = "errors"
RUN_MANIFEST = "_manifest.json"
SUCCESS_MARKER = "_SUCCESS"

InputFormat = Literal["parquet", "csv", "jsonl"]
OutputFormat = Literal["parquet", "jsonl"]
OutputMode = Literal["overwrite", "failIfExists"]


JOB_PLACEHOLDER = "{job}"


def output_uri(uri: str, job: str) -> str:
    """output.uri with `{job}` replaced by the run's Job name (a scheduled run's own prefix)."""
    return uri.replace(JOB_PLACEHOLDER, job)


def shard_name(shard: int) -> str:
    return f"{shard:0{SHARD_WIDTH}d}"


def part_file(shard: int, output_format: OutputFormat) -> str:
    return f"part-{shard_name(shard)}.{output_format}"


def errors_file(shard: int) -> str:
    return f"{ERRORS_DIR}/part-{shard_name(shard)}.jsonl"


def manifest_file(shard: int) -> str:
    return f"{MANIFEST_DIR}/shard-{shard_name(shard)}.json"


def safe_run_id(run_id: str) -> str:
    """The run id as it appears in file names."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", run_id)


def claim_file(shard: int, run_id: str) -> str:
    return f"{MANIFEST_DIR}/claim-{shard_name(shard)}.{safe_run_id(run_id)}"


class _Wire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class RunInput(_Wire):
    uri: str = Field(description="A file, a prefix (directory) or a glob.")
    format: InputFormat
    columns: list[str] = Field(default_factory=list,
                               description="Feature columns in model order; all but the keys when empty.")
    key_columns: list[str] = Field(default_factory=list, description="Copied to every output row.")


class RunOutput(_Wire):
    uri: str
    format: OutputFormat = "parquet"
    mode: OutputMode = "failIfExists"


class RunModel(_Wire):
    name: str
    version: str
    revision: str
    format: str


class RunConfig(_Wire):
    """Everything a shard needs besides the model files and its index."""

    name: str = Field(description="The BatchPrediction's name.")
    namespace: str
    model: RunModel
    input: RunInput
    output: RunOutput
    shards: int = Field(ge=1)
    max_failed_rows_percent: float = Field(ge=0, le=100)
    batch_size: int = Field(ge=1)


class ShardReport(_Wire):
    """The termination message of a shard's container (JSON, under TERMINATION_LOG_LIMIT bytes):
    the operator sums the row counts of the succeeded shards into the BatchPrediction's status."""

    shard: int
    rows_in: int = 0
    rows_out: int = 0
    rows_failed: int = 0
    reason: str | None = Field(default=None, description="Why the shard failed (a CamelCase word).")
    message: str | None = Field(default=None, description="The failure in words (truncated).")
