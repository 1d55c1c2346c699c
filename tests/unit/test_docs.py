"""docs/api.md is generated from the models and must be current and complete."""

from __future__ import annotations

from pathlib import Path

from modelpilot.api import crd, docs, models

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
