"""The Helm chart's files against the code, without a cluster (tests/e2e/test_helm.py runs helm)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

import modelpilot
from hack import helm_values_table
from modelpilot.api.crd import CRD_FILENAME, render_crd

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "modelpilot"


def test_chart_crd_is_the_generated_crd() -> None:
    assert (CHART / "crds" / CRD_FILENAME).read_text() == render_crd(), "run `make crds`"


def test_chart_versions_match_the_package() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["appVersion"] == modelpilot.__version__ == "0.1.0"


def test_values_documented_typed_and_table_current() -> None:
    """Every key has a comment above it and a schema entry, every schema object rejects unknown
    keys, and docs/helm.md's table is what the generator prints."""
    assert helm_values_table.main(["--check"]) == 0


def test_schema_rejects_unknown_keys_at_every_object_level() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    open_objects: list[str] = []

    def walk(node: dict[str, Any], path: str) -> None:
        if "properties" in node and node.get("additionalProperties") is not False:
            open_objects.append(path)
        for key, child in (node.get("properties") or {}).items():
            if key != "global":  # Helm's subchart-shared values: accepted, unused
                walk(child, f"{path}.{key}")
        if isinstance(node.get("items"), dict):
            walk(node["items"], f"{path}[]")

    walk(schema, "$")
    for name, definition in schema["definitions"].items():
        walk(definition, f"#/definitions/{name}")
    assert open_objects == []


def test_every_env_variable_of_the_deployment_is_an_operator_setting() -> None:
    template = (CHART / "templates" / "deployment.yaml").read_text()
    chart_env = set(re.findall(r"- name: MODELPILOT_([A-Z_]+)", template))
    settings = (ROOT / "operator" / "modelpilot" / "settings.py").read_text()
    known = set(re.findall(r'_(?:env|float|size)\("([A-Z_]+)"', settings))
    assert chart_env <= known, chart_env - known
    # Every setting the operator has is settable from the chart.
    assert known <= chart_env, known - chart_env


def test_every_rbac_rule_has_a_comment_and_no_wildcard() -> None:
    lines = (CHART / "templates" / "rbac.yaml").read_text().splitlines()
    rules = [i for i, line in enumerate(lines) if line.lstrip().startswith("- apiGroups:")]
    assert len(rules) >= 15
    for i in rules:
        assert lines[i - 1].lstrip().startswith("#"), f"rbac.yaml:{i + 1}: a rule without a comment"
    text = "\n".join(lines)
    assert '"*"' not in text and "'*'" not in text
    assert not re.search(r"resources:.*secrets", text), "the operator never reads Secrets"


def test_operator_dockerfile_shape() -> None:
    text = (ROOT / "docker" / "operator.Dockerfile").read_text()
    stages = re.findall(r"^FROM (\S+)", text, re.MULTILINE)
    assert len(stages) == 2 and stages[-1].startswith("python:3.11-slim")
    final = text.split("\nFROM ")[-1]
    assert re.search(r"^USER \d+:\d+$", final, re.MULTILINE), "numeric, non-root USER"
    assert 'ENTRYPOINT ["modelpilot", "operator"]' in final
    assert "COPY operator" not in final, "no source tree in the final image"
    assert "pip uninstall -y pip setuptools wheel" in final
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    uid = int(re.search(r"^USER (\d+):", final, re.MULTILINE).group(1))  # type: ignore[union-attr]
    assert values["securityContext"]["runAsUser"] == uid
