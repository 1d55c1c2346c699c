"""docs/api.md is generated from the models and must be current and complete; every example
in examples/ is a valid ModelDeployment; docs/rollouts.md quotes the admission messages as they are."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from modelpilot.analysis.queries import check_syntax
from modelpilot.api import batch, crd, docs, models
from tests.unit.crd_eval import validate

API_MD = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def test_docs_are_up_to_date() -> None:
    assert API_MD.read_text() == docs.render_docs(), "docs/api.md is stale: run `python -m modelpilot.api.docs`"


def _paths(schema: dict, prefix: str) -> list[str]:
    found = []
    for key, prop in schema.get("properties", {}).items():
        found.append(f"{prefix}.{key}")
        target = prop.get("items", prop) if prop.get("type") == "array" else prop
        found += _paths(target, f"{prefix}.{key}")
    return found


def test_every_field_is_documented() -> None:
    text = docs.render_docs()
    for model, prefix in ((models.ModelDeploymentSpec, "spec"), (models.ModelDeploymentStatus, "status")):
        for path in _paths(crd.model_schema(model), prefix):
            field = path.rsplit(".", 1)[1]
            assert f"| `{field}` |" in text, path
    for message in (
        "autoscaling.minReplicas must be <= maxReplicas",
        "rollout.canary.steps must be strictly ascending",
    ):
        assert message in text


def test_check_flag(tmp_path: Path) -> None:
    target = tmp_path / "api.md"
    assert docs.main(["--check", "--output", str(target)]) == 1
    assert docs.main(["--output", str(target)]) == 0
    assert docs.main(["--check", "--output", str(target)]) == 0


# ------------------------------------------------------------------------------ examples/ and docs/rollouts.md

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
ROLLOUTS_MD = ROOT / "docs" / "rollouts.md"


def _documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def _custom_queries(spec: models.ModelDeploymentSpec) -> list[tuple[str, str]]:
    """(where, template) of every PromQL template the spec carries."""
    found = [(f"analysis {m.name}", m.query) for m in spec.rollout.canary.analysis.metrics if m.query]
    if spec.rollout.experiment is not None:
        found += [(f"experiment {m.name}.{role}", query) for m in spec.rollout.experiment.metrics
                  for role, query in m.queries().items()]
    return found


def test_examples_exist() -> None:
    names = {path.stem for path in EXAMPLES}
    assert {"shadow", "segment", "experiment", "batchprediction"} <= names, names


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_is_valid(path: Path) -> None:
    """What the API server (schema and CEL rules) and the operator's parser both accept, with
    custom queries that parse as PromQL."""
    schema = crd.build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    batch_schema = crd.openapi_schema(crd.BATCH_PREDICTION)
    for obj in _documents(path):
        assert obj["apiVersion"] == models.API_VERSION
        if obj["kind"] == batch.BATCH_KIND:
            assert validate(batch_schema, obj) == []
            batch.parse_batch_spec(obj["spec"])
            continue
        assert obj["kind"] == models.KIND
        models.check_name(obj["metadata"]["name"])
        assert validate(schema, obj) == []
        spec = models.parse_spec(obj["spec"])
        for where, template in _custom_queries(spec):
            check_syntax(template)  # raises QueryError naming the problem
            assert "{{track}}" in template, f"{path.name} {where}: a per-track query needs {{{{track}}}}"


def test_example_names_are_unique() -> None:
    """examples/ is applied into one namespace."""
    names = [obj["metadata"]["name"] for path in EXAMPLES for obj in _documents(path)]
    assert len(names) == len(set(names)), names


@pytest.mark.parametrize(
    "rollout",
    [
        {"canary": {"shadow": {}}},
        {"canary": {"match": [{"headers": [{"name": "x-cohort", "value": "beta"}]}]}},
        {"strategy": "Experiment", "experiment": {"metrics": [{"name": "c", "successes": "s", "trials": "t"}]}},
    ],
    ids=["shadow", "match", "experiment"],
)
def test_rollouts_md_quotes_the_admission_messages(rollout: dict[str, Any]) -> None:
    spec = {"model": {"version": "v1", "uri": "file:///models/m", "format": "sklearn"}, "rollout": rollout}
    with pytest.raises(models.SpecError) as err:
        models.parse_spec(spec)
    text = ROLLOUTS_MD.read_text()
    for problem in err.value.problems:
        message = problem.split(": ", 1)[1]  # without the field path
        assert message in text, message
