"""The custom resource kinds of the group, defined once: names, models, printer columns and the
rule on metadata.name. `modelpilot.api.crd` and `modelpilot.api.docs` generate from these."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from modelpilot.api import batch, models
from modelpilot.api.models import (
    GROUP,
    KIND,
    MAX_NAME_LENGTH,
    NAME_MESSAGE,
    NAME_PATTERN,
    PLURAL,
    SHORT_NAMES,
    SINGULAR,
)


@dataclass(frozen=True)
class KindDef:
    """One custom resource kind of the group: its names, models, columns and name rule."""

    kind: str
    plural: str
    singular: str
    short_names: tuple[str, ...]
    spec: type[BaseModel]
    status: type[BaseModel]
    description: str
    columns: tuple[dict[str, Any], ...]
    name_rule: tuple[str, str]  # CEL rule on metadata.name, its message
    scale: bool = False

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{GROUP}"

    @property
    def filename(self) -> str:
        return f"{self.crd_name}.yaml"


def _column(name: str, kind: str, path: str, description: str = "", priority: int = 0) -> dict[str, Any]:
    column: dict[str, Any] = {"name": name, "type": kind, "jsonPath": path}
    if description:
        column["description"] = description
    if priority:
        column["priority"] = priority
    return column


PRINTER_COLUMNS: list[dict[str, Any]] = [
    _column("Model", "string", ".spec.model.version", "Desired model version (spec.model.version)."),
    _column("Stable", "string", ".status.stable.version", "Version serving traffic."),
    _column("Canary", "string", ".status.canary.version", "Version being rolled out."),
    _column("Weight", "integer", ".status.canary.weight", "Canary traffic percent."),
    _column("Phase", "string", ".status.phase", "Pending, Progressing, Ready, Degraded or Failed."),
    _column("Format", "string", ".spec.model.format", "Model format.", priority=1),
    _column("URL", "string", ".status.url", "In-cluster URL.", priority=1),
    _column("Age", "date", ".metadata.creationTimestamp"),
]

BATCH_COLUMNS: list[dict[str, Any]] = [
    _column("Model", "string", ".status.model.name", "The ModelDeployment (or inline model) scoring the data."),
    _column("Version", "string", ".status.model.version", "The model version of the run."),
    _column("Progress", "string", ".status.progress", "Succeeded shards of all."),
    _column("Rows", "integer", ".status.rows.out", "Rows predicted and written."),
    _column("Phase", "string", ".status.phase", "Pending, Running, Succeeded or Failed."),
    _column("Schedule", "string", ".spec.schedule", "Cron schedule, if any.", priority=1),
    _column("Failed", "integer", ".status.rows.failed", "Rows written to errors/.", priority=1),
    _column("Age", "date", ".metadata.creationTimestamp"),
]

MODEL_DEPLOYMENT = KindDef(
    kind=KIND, plural=PLURAL, singular=SINGULAR, short_names=SHORT_NAMES, spec=models.ModelDeploymentSpec,
    status=models.ModelDeploymentStatus,
    description="ModelDeployment serves one machine-learning model and rolls every new version out as a "
    "metric-gated canary.",
    columns=tuple(PRINTER_COLUMNS),
    name_rule=(f"self.size() <= {MAX_NAME_LENGTH} && self.matches('{NAME_PATTERN}')", NAME_MESSAGE),
    scale=True,
)
BATCH_PREDICTION = KindDef(
    kind=batch.BATCH_KIND, plural=batch.BATCH_PLURAL, singular=batch.BATCH_SINGULAR,
    short_names=batch.BATCH_SHORT_NAMES, spec=batch.BatchPredictionSpec, status=batch.BatchPredictionStatus,
    description="BatchPrediction scores a dataset in bulk with a model (a ModelDeployment's stable version or an "
    "inline model) on an Indexed Job, once or on a schedule.",
    columns=tuple(BATCH_COLUMNS),
    name_rule=(f"self.size() <= {batch.MAX_BATCH_NAME_LENGTH} && self.matches('{NAME_PATTERN}')",
               batch.BATCH_NAME_MESSAGE),
)
KINDS = (MODEL_DEPLOYMENT, BATCH_PREDICTION)
