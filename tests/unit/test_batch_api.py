"""The BatchPrediction API: the parser and the CRD's schema and CEL rules agree on one table."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from modelpilot.api import crd
from modelpilot.api.batch import BATCH_NAME_MESSAGE, BatchPredictionStatus, parse_batch_spec
from modelpilot.api.common import SpecError
from tests.unit.batch_cases import INVALID, INVALID_SCHEMA, VALID, batch_spec
from tests.unit.crd_eval import compile_rule, iter_rules, validate


@pytest.fixture(scope="module")
def root() -> dict[str, Any]:
    return crd.openapi_schema(crd.BATCH_PREDICTION)


def _object(spec: dict[str, Any], name: str = "score") -> dict[str, Any]:
    return {"apiVersion": "modelpilot.io/v1alpha1", "kind": "BatchPrediction", "metadata": {"name": name},
            "spec": spec}


@pytest.mark.parametrize(("case", "raw"), VALID, ids=[c[0] for c in VALID])
def test_valid_specs_pass_parser_schema_and_rules(root: dict[str, Any], case: str, raw: dict[str, Any]) -> None:
    assert validate(root, _object(raw)) == []
    parse_batch_spec(raw)


@pytest.mark.parametrize(("case", "raw", "message"), INVALID, ids=[c[0] for c in INVALID])
def test_invalid_specs_fail_with_the_same_message(root: dict[str, Any], case: str, raw: dict[str, Any],
                                                   message: str) -> None:
    problems = validate(root, _object(raw))
    assert any(message in text for _, text in problems), problems
    with pytest.raises(SpecError) as err:
        parse_batch_spec(raw)
    assert message in str(err.value)


@pytest.mark.parametrize(("case", "raw", "path"), INVALID_SCHEMA, ids=[c[0] for c in INVALID_SCHEMA])
def test_schema_rejects(root: dict[str, Any], case: str, raw: dict[str, Any], path: str) -> None:
    problems = validate(root, _object(raw))
    assert any(where.startswith("." + path) for where, _ in problems), problems
    with pytest.raises(SpecError):
        parse_batch_spec(raw)


@pytest.mark.parametrize("name", ["1score", "a.b", "a" * 53])
def test_name_rule(root: dict[str, Any], name: str) -> None:
    assert [m for _, m in validate(root, _object(batch_spec(), name))] == [BATCH_NAME_MESSAGE]


def test_rules_compile(root: dict[str, Any]) -> None:
    for path, rule in iter_rules(root):
        assert "\\" not in rule["rule"], path
        compile_rule(rule["rule"])


def test_defaults_filled_by_the_parser_not_the_schema(root: dict[str, Any]) -> None:
    spec = parse_batch_spec(batch_spec())
    assert (spec.parallelism, spec.shard_count, spec.output.format, spec.output.mode) == (4, 4, "parquet",
                                                                                          "failIfExists")
    assert (spec.max_failed_rows_percent, spec.backoff_limit_per_shard, spec.batch_size) == (1.0, 3, 50000)
    assert "\ndefault:" not in yaml.safe_dump(root) and " default:" not in yaml.safe_dump(root)


def test_printer_columns_and_short_name() -> None:
    version = crd.build_crd(crd.BATCH_PREDICTION)["spec"]["versions"][0]
    names = [c["name"] for c in version["additionalPrinterColumns"] if not c.get("priority")]
    assert names == ["Model", "Version", "Progress", "Rows", "Phase", "Age"]
    assert crd.build_crd(crd.BATCH_PREDICTION)["spec"]["names"]["shortNames"] == ["bp"]
    assert version["subresources"] == {"status": {}}


def test_status_example_validates(root: dict[str, Any]) -> None:
    status = BatchPredictionStatus.model_validate({
        "phase": "Running", "model": {"name": "iris", "version": "v1", "revision": "abc", "format": "sklearn"},
        "shards": {"total": 4, "succeeded": 1, "running": 3}, "progress": "1/4",
        "rows": {"in": 10, "out": 9, "failed": 1}, "startedAt": "2026-12-03T10:00:00Z",
        "failures": [{"shard": 2, "pod": "score-2-abcde", "reason": "Error", "time": "2026-12-03T10:01:00Z"}],
        "conditions": [{"type": "Complete", "status": "False", "reason": "Running", "message": "1/4",
                        "lastTransitionTime": "2026-12-03T10:00:00Z"}]})
    body = _object(batch_spec())
    body["status"] = status.model_dump(mode="json", by_alias=True, exclude_none=True)
    assert body["status"]["rows"] == {"in": 10, "out": 9, "failed": 1}
    assert validate(root, body) == []
