"""The generated CRD: structural-schema rewrites, metadata, CEL rules, and the committed file."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

import pytest
import yaml
from pydantic import BaseModel, Field

from modelpilot.api import crd
from modelpilot.api.crd import SchemaError, to_structural
from tests.unit.crd_eval import compile_rule, iter_rules, validate
from tests.unit.spec_cases import INVALID, INVALID_SCHEMA, VALID

REPO = Path(__file__).resolve().parents[2]
CRD_FILE = REPO / "crds" / "modeldeployments.modelpilot.io.yaml"


@pytest.fixture(scope="module")
def generated() -> dict[str, Any]:
    return crd.build_crd()


@pytest.fixture(scope="module")
def version(generated: dict[str, Any]) -> dict[str, Any]:
    return generated["spec"]["versions"][0]


@pytest.fixture(scope="module")
def root(version: dict[str, Any]) -> dict[str, Any]:
    return version["schema"]["openAPIV3Schema"]


def nodes(schema: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema node with its path."""
    if not isinstance(schema, Mapping):
        return
    yield path, dict(schema)
    for key, prop in schema.get("properties", {}).items():
        yield from nodes(prop, f"{path}.{key}")
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), Mapping):
            yield from nodes(schema[key], f"{path}.{'[]' if key == 'items' else '*'}")
    for i, branch in enumerate(schema.get("anyOf", [])):
        yield from nodes(branch, f"{path}|{i}")


# ------------------------------------------------------------------------------ the committed file


def test_committed_crd_is_up_to_date() -> None:
    assert CRD_FILE.read_text() == crd.render_crd(), "crds/ is stale: run `python -m modelpilot.api.crd`"


def test_rendering_is_deterministic() -> None:
    assert crd.render_crd() == crd.render_crd()
    assert yaml.safe_load(crd.render_crd()) == crd.build_crd()


def test_check_and_output_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "chart" / "crds"
    assert crd.main(["--check", str(target)]) == 1  # missing
    assert crd.main(["--output", str(target)]) == 0
    assert sorted(p.name for p in target.iterdir()) == ["batchpredictions.modelpilot.io.yaml",
                                                        "modeldeployments.modelpilot.io.yaml"]
    assert crd.main(["--check", str(target)]) == 0
    for name, short in (("modeldeployments", "mdep"), ("batchpredictions", "bp")):
        path = target / f"{name}.modelpilot.io.yaml"
        good = path.read_text()
        path.write_text(good.replace(f"- {short}\n", "- other\n"))
        assert crd.main(["--check", str(target)]) == 1
        assert f"{path} is stale" in capsys.readouterr().err
        path.write_text(good)


# --------------------------------------------------------------------------------- CRD metadata


def test_names_scope_and_version(generated: dict[str, Any], version: dict[str, Any]) -> None:
    assert generated["apiVersion"] == "apiextensions.k8s.io/v1"
    assert generated["metadata"]["name"] == "modeldeployments.modelpilot.io"
    spec = generated["spec"]
    assert spec["group"] == "modelpilot.io" and spec["scope"] == "Namespaced"
    assert spec["names"]["kind"] == "ModelDeployment" and spec["names"]["plural"] == "modeldeployments"
    assert spec["names"]["shortNames"] == ["mdep"]
    assert len(spec["versions"]) == 1
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)


def test_subresources(version: dict[str, Any]) -> None:
    assert version["subresources"]["status"] == {}
    assert version["subresources"]["scale"] == {
        "specReplicasPath": ".spec.replicas",
        "statusReplicasPath": ".status.stable.replicas",
        "labelSelectorPath": ".status.selector",
    }


def test_printer_columns(version: dict[str, Any]) -> None:
    columns = {c["name"]: c for c in version["additionalPrinterColumns"]}
    assert [c["name"] for c in version["additionalPrinterColumns"] if not c.get("priority")] == [
        "Model",
        "Stable",
        "Canary",
        "Weight",
        "Phase",
        "Age",
    ]
    assert columns["Stable"]["jsonPath"] == ".status.stable.version"
    assert columns["Canary"]["jsonPath"] == ".status.canary.version"
    assert columns["Weight"]["jsonPath"] == ".status.canary.weight" and columns["Weight"]["type"] == "integer"
    assert columns["Phase"]["jsonPath"] == ".status.phase"
    assert columns["Age"] == {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}


# ------------------------------------------------------------------------------ schema rewrites


FORBIDDEN = (
    "$ref",
    "$defs",
    "title",
    "default",
    "const",
    "uniqueItems",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "nullable",
    "oneOf",
    "allOf",
    "prefixItems",
)


@pytest.mark.parametrize("key", FORBIDDEN)
def test_no_forbidden_keys(root: dict[str, Any], key: str) -> None:
    offenders = [path for path, node in nodes(root) if key in node]
    assert not offenders, f"{key} at {offenders}"


def test_no_additional_properties_beside_properties(root: dict[str, Any]) -> None:
    for path, node in nodes(root):
        if "properties" in node:
            assert "additionalProperties" not in node, path
        assert node.get("additionalProperties") is not False, path


def test_every_node_has_a_type(root: dict[str, Any]) -> None:
    for path, node in nodes(root):
        if "|" in path.rsplit(".", 1)[-1]:
            continue  # the two int-or-string branches
        assert node.get("type") or node.get("x-kubernetes-int-or-string"), path


def test_every_field_has_a_description(root: dict[str, Any]) -> None:
    for part in ("spec", "status"):
        assert crd.check_descriptions(root["properties"][part]) == []
    missing = [
        path
        for path, node in nodes(root["properties"]["spec"])
        if path.count("|") == 0 and not path.endswith((".*", "[]")) and not node.get("description")
    ]
    assert missing == []


def test_quantities_are_int_or_string(root: dict[str, Any]) -> None:
    for kind in ("requests", "limits"):
        value = root["properties"]["spec"]["properties"]["resources"]["properties"][kind]["additionalProperties"]
        assert value["x-kubernetes-int-or-string"] is True
        assert value["anyOf"] == [{"type": "integer"}, {"type": "string"}]
        assert "pattern" in value and "type" not in value


def test_camel_case_and_literal_enums(root: dict[str, Any]) -> None:
    spec = root["properties"]["spec"]["properties"]
    assert "storageSecretRef" in spec["model"]["properties"]
    assert "targetCPUUtilization" in spec["autoscaling"]["properties"]
    routing = spec["rollout"]["properties"]["canary"]["properties"]["trafficRouting"]["properties"]
    assert set(routing) == {"replicas", "gatewayAPI"}
    assert spec["model"]["properties"]["format"]["enum"] == ["sklearn", "xgboost", "onnx", "custom"]
    assert not [p for p, node in nodes(root) if any("_" in k for k in node.get("properties", {}))]


def test_optional_fields_are_not_required(root: dict[str, Any]) -> None:
    spec = root["properties"]["spec"]
    assert spec["required"] == ["model"]
    assert spec["properties"]["model"]["required"] == ["version", "uri", "format"]
    assert "required" not in root["properties"]["status"]


def test_list_types(root: dict[str, Any]) -> None:
    conditions = root["properties"]["status"]["properties"]["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map" and conditions["x-kubernetes-list-map-keys"] == ["type"]
    canary = root["properties"]["spec"]["properties"]["rollout"]["properties"]["canary"]["properties"]
    metrics = canary["analysis"]["properties"]["metrics"]
    assert metrics["x-kubernetes-list-type"] == "map" and metrics["x-kubernetes-list-map-keys"] == ["name"]
    assert "name" in metrics["items"]["required"]


def test_cel_cost_bounds(root: dict[str, Any]) -> None:
    """The API server estimates CEL cost from maxItems/maxLength: every list and every free string
    is bounded (strings with an enum or a date-time format are bounded by those)."""
    for path, node in nodes(root):
        if path.startswith((".metadata", ".apiVersion", ".kind")) or "|" in path:
            continue
        if node.get("type") == "array":
            assert "maxItems" in node, path
        if node.get("type") == "string" and "enum" not in node and node.get("format") != "date-time":
            assert "maxLength" in node, path
        if node.get("type") == "object" and isinstance(node.get("additionalProperties"), Mapping):
            assert "maxProperties" in node, path


def test_status_analyses_bounded(root: dict[str, Any]) -> None:
    analyses = root["properties"]["status"]["properties"]["canary"]["properties"]["analyses"]
    assert analyses["maxItems"] == 10


# ------------------------------------------------------------------------------------ CEL rules


EXPECTED_RULE_MESSAGES = [
    "autoscaling.minReplicas must be <= maxReplicas",
    "rollout.canary.steps must be strictly ascending",
    "rollout.canary.steps must each be between 1 and 99",
    "rollout.canary.interval must be at least 5s",
    "rollout.canary.interval must be a duration with a unit, e.g. 30s, 5m or 1h30m",
    "model.uri must start with file://, http://, https://, s3://, gs:// or pvc://",
    "a metric needs at least one of max, min or compareToStable",
    "a metric may set query or template, not both",
    "compareToStable needs maxRatio or maxIncrease",
    "runtime.image is required when model.format is custom",
]


def test_rules_present_and_compile(root: dict[str, Any]) -> None:
    rules = iter_rules(root)
    messages = {rule["message"] for _, rule in rules}
    for message in EXPECTED_RULE_MESSAGES:
        assert message in messages
    for path, rule in rules:
        assert set(rule) == {"rule", "message"}, path
        assert "\\" not in rule["rule"], f"{path}: backslashes need CEL escaping; keep regexes without them"
        compile_rule(rule["rule"])


def _object(spec: dict[str, Any], name: str = "fraud") -> dict[str, Any]:
    return {"apiVersion": "modelpilot.io/v1alpha1", "kind": "ModelDeployment", "metadata": {"name": name}, "spec": spec}


@pytest.mark.parametrize(("case", "raw"), VALID, ids=[c[0] for c in VALID])
def test_valid_specs_pass_schema_and_rules(root: dict[str, Any], case: str, raw: dict[str, Any]) -> None:
    assert validate(root, _object(raw)) == []


@pytest.mark.parametrize(("case", "raw", "message"), INVALID, ids=[c[0] for c in INVALID])
def test_invalid_specs_fail_with_their_message(
    root: dict[str, Any], case: str, raw: dict[str, Any], message: str
) -> None:
    problems = validate(root, _object(raw))
    assert any(message in text for _, text in problems), problems


@pytest.mark.parametrize(("case", "raw", "path"), INVALID_SCHEMA, ids=[c[0] for c in INVALID_SCHEMA])
def test_schema_rejects(root: dict[str, Any], case: str, raw: dict[str, Any], path: str) -> None:
    problems = validate(root, _object(raw))
    assert any(where == "." + path for where, _ in problems), problems


@pytest.mark.parametrize("name", ["1fraud", "a.b", "a" * 57])
def test_name_rule(root: dict[str, Any], name: str) -> None:
    assert [m for _, m in validate(root, _object(VALID[0][1], name))] == [crd.NAME_MESSAGE]


def test_status_example_validates(root: dict[str, Any]) -> None:
    status = {
        "observedGeneration": 4,
        "phase": "Progressing",
        "stable": {"version": "v1", "revision": "0123456789", "replicas": 2, "readyReplicas": 2},
        "canary": {
            "version": "v2",
            "revision": "abcdefabcd",
            "weight": 25,
            "step": 1,
            "failedChecks": 0,
            "providerErrors": 0,
            "startedAt": "2026-11-02T10:00:00Z",
            "analyses": [
                {
                    "time": "2026-11-02T10:00:30Z",
                    "metric": "error-rate",
                    "value": 0.2,
                    "threshold": "<= 1",
                    "verdict": "Pass",
                }
            ],
        },
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "Ready",
                "message": "",
                "lastTransitionTime": "2026-11-02T10:00:00Z",
                "observedGeneration": 4,
            }
        ],
        "url": "http://fraud.ml.svc.cluster.local",
        "selector": "app.kubernetes.io/name=fraud",
    }
    assert validate(root, {**_object(VALID[0][1]), "status": status}) == []


# ------------------------------------------------------------------- to_structural on synthetic models


class _Leaf(BaseModel):
    """A leaf."""

    size: int = Field(default=1, ge=0, le=9, description="A size.")


class _Synthetic(BaseModel):
    """Synthetic."""

    leaf: _Leaf | None = Field(default=None, description="Optional nested model.")
    leaves: list[_Leaf] = Field(default_factory=list, description="Nested list.")
    qty: int | str = Field(default=1, description="Int or string.")
    anything: dict[str, Any] = Field(default_factory=dict, description="Free-form.")
    only: Literal["one"] = Field(default="one", description="A single literal.")
    maybe: str | None = Field(default=None, max_length=5, description="Optional string.")


def test_synthetic_rewrites() -> None:
    schema = to_structural(_Synthetic.model_json_schema(by_alias=True))
    props = schema["properties"]
    assert props["leaf"] == {
        "description": "Optional nested model.",
        "type": "object",
        "properties": {"size": {"description": "A size.", "maximum": 9, "minimum": 0, "type": "integer"}},
    }
    assert props["leaves"]["items"]["description"] == "A leaf."
    assert props["qty"]["x-kubernetes-int-or-string"] is True
    assert props["anything"] == {
        "description": "Free-form.",
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": True,
    }
    assert props["only"]["enum"] == ["one"] and "const" not in props["only"]
    assert props["maybe"] == {"description": "Optional string.", "maxLength": 5, "type": "string"}
    assert "required" not in schema and "title" not in schema


class _Node(BaseModel):
    child: _Node | None = None


class _WithSet(BaseModel):
    tags: set[str] = Field(default_factory=set)


class _WithGt(BaseModel):
    count: int = Field(default=1, gt=0)


class _WithUnion(BaseModel):
    value: int | list[int] = 1


@pytest.mark.parametrize(
    ("model", "message"),
    [
        (_Node, "recursive"),
        (_WithSet, "uniqueItems"),
        (_WithGt, "exclusiveMinimum"),
        (_WithUnion, "unions"),
    ],
)
def test_unstructural_models_are_refused(model: type[BaseModel], message: str) -> None:
    with pytest.raises(SchemaError, match=message):
        to_structural(model.model_json_schema(by_alias=True))


def test_missing_description_is_refused() -> None:
    class Bare(BaseModel):
        """Bare."""

        x: int = 1

    with pytest.raises(SchemaError, match="without a description: x"):
        crd.model_schema(Bare)
