"""Parsing ModelDeployment specs: operator defaults, camelCase, readable errors."""

from __future__ import annotations

from typing import Any

import pytest

from modelpilot.api.models import (
    ModelDeployment,
    ModelDeploymentSpec,
    ModelDeploymentStatus,
    SpecError,
    check_name,
    parse_spec,
    parse_status,
)
from tests.unit.spec_cases import INVALID, INVALID_SCHEMA, VALID, spec


def test_defaults_are_filled_by_the_parser() -> None:
    parsed = parse_spec(spec())
    assert parsed.replicas == 1
    assert parsed.paused is False
    assert parsed.runtime.port == 8080
    assert parsed.runtime.image is None  # resolved per format from operator settings
    assert parsed.rollout.strategy == "Canary"
    canary = parsed.rollout.canary
    assert canary.steps == [10, 25, 50]
    assert (canary.interval, canary.initial_delay, canary.progress_deadline) == ("30s", "30s", "10m")
    assert (canary.interval_seconds, canary.initial_delay_seconds, canary.progress_deadline_seconds) == (30, 30, 600)
    assert canary.failure_threshold == 2
    analysis = canary.analysis
    assert (analysis.min_requests, analysis.on_inconclusive, analysis.on_provider_error) == (20, "Wait", "Rollback")
    assert analysis.max_provider_errors == 4
    assert [(m.name, m.max) for m in analysis.metrics] == [("error-rate", 1), ("latency-p99", 500)]
    assert canary.traffic_routing.mode == "replicas"
    assert parsed.accelerator is None and parsed.autoscaling is None


def test_mutable_defaults_are_not_shared() -> None:
    first, second = parse_spec(spec()), parse_spec(spec())
    first.rollout.canary.steps.append(75)
    first.rollout.canary.analysis.metrics.pop()
    assert second.rollout.canary.steps == [10, 25, 50]
    assert len(second.rollout.canary.analysis.metrics) == 2


def test_camel_case_round_trip() -> None:
    raw = dict(VALID[1][1])
    parsed = parse_spec(raw)
    assert parsed.model.storage_secret_ref is not None and parsed.model.storage_secret_ref.name == "s3-creds"
    assert parsed.autoscaling is not None and parsed.autoscaling.target_cpu_utilization == 70
    assert parsed.rollout.canary.traffic_routing.mode == "gatewayAPI"
    dumped = parsed.model_dump(mode="json", by_alias=True, exclude_defaults=True, exclude_none=True)
    assert dumped["autoscaling"]["targetCPUUtilization"] == 70
    assert dumped["rollout"]["canary"]["trafficRouting"]["gatewayAPI"]["parentRefs"][0]["sectionName"] == "https"
    assert parse_spec(dumped) == parsed


@pytest.mark.parametrize(("case", "raw"), VALID, ids=[c[0] for c in VALID])
def test_valid_specs_parse(case: str, raw: dict[str, Any]) -> None:
    assert isinstance(ModelDeploymentSpec.from_dict(raw), ModelDeploymentSpec)


@pytest.mark.parametrize(("case", "raw", "message"), INVALID, ids=[c[0] for c in INVALID])
def test_invalid_specs_give_the_crd_message(case: str, raw: dict[str, Any], message: str) -> None:
    """The parser's messages are the CEL messages, so the operator and admission agree."""
    with pytest.raises(SpecError) as info:
        parse_spec(raw)
    assert message in str(info.value)
    assert str(info.value).startswith("invalid ModelDeployment spec: spec")


@pytest.mark.parametrize(("case", "raw", "path"), INVALID_SCHEMA, ids=[c[0] for c in INVALID_SCHEMA])
def test_schema_violations_name_the_field(case: str, raw: dict[str, Any], path: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(raw)
    assert any(problem.startswith(path + ":") for problem in info.value.problems), info.value.problems


def test_error_lists_every_problem_with_its_path() -> None:
    raw = spec(model_format="pytorch", replicas=-1, rollout={"canary": {"steps": [50, 10]}}, replicaz=2)
    with pytest.raises(SpecError) as info:
        parse_spec(raw)
    problems = info.value.problems
    assert "spec.model.format: Input should be 'sklearn', 'xgboost', 'onnx' or 'custom'" in problems
    assert "spec.replicas: Input should be greater than or equal to 0" in problems
    assert "spec.rollout.canary.steps: rollout.canary.steps must be strictly ascending" in problems
    assert "spec.replicaz: unknown field" in problems
    assert str(info.value) == "invalid ModelDeployment spec: " + "; ".join(problems)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, "spec: required field is missing"),
        ([], "spec: must be an object"),
        ({}, "spec.model: required field is missing"),
        ({"model": {"version": "v1", "uri": "s3://b/k"}}, "spec.model.format: required field is missing"),
        (
            spec(rollout={"canary": {"analysis": {"metrics": [{"name": "a", "max": 1, "query": "x"}] * 2}}}),
            "metric names must be unique",
        ),
        (spec(runtime={"env": [{"name": "A"}, {"name": "A"}]}), "runtime.env names must be unique"),
        (spec(resources={"requests": {"cpu": 0.5}}), "spec.resources.requests.cpu: must be a Kubernetes quantity"),
        (spec(resources={"requests": {"cpu": True}}), "spec.resources.requests.cpu: must be a Kubernetes quantity"),
    ],
)
def test_parse_errors(raw: Any, expected: str) -> None:
    with pytest.raises(SpecError, match=None) as info:
        parse_spec(raw)
    assert expected in str(info.value)


def test_quantities_keep_their_spelling() -> None:
    parsed = parse_spec(spec(resources={"requests": {"cpu": 2, "memory": "1Gi"}, "limits": {"cpu": "1500m"}}))
    assert parsed.resources.requests == {"cpu": 2, "memory": "1Gi"}
    assert parsed.resources.limits == {"cpu": "1500m"}


@pytest.mark.parametrize("name", ["fraud", "a", "model-v2", "a" * 56])
def test_names_accepted(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize("name", ["1fraud", "Fraud", "a.b", "a_b", "-a", "a-", "a" * 57, ""])
def test_names_rejected(name: str) -> None:
    with pytest.raises(SpecError, match="DNS-1035"):
        check_name(name)


def test_whole_object() -> None:
    obj = {
        "apiVersion": "modelpilot.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "fraud", "namespace": "ml", "generation": 3},
        "spec": spec(),
        "status": {
            "observedGeneration": 2,
            "phase": "Ready",
            "stable": {"version": "v0", "revision": "abc"},
            "kopf": {"progress": {}},
        },
    }
    md = ModelDeployment.from_dict(obj)
    assert (md.name, md.namespace) == ("fraud", "ml")
    assert md.status.observed_generation == 2 and md.status.stable is not None
    assert md.status.stable.version == "v0"
    with pytest.raises(SpecError, match="DNS-1035"):
        ModelDeployment.from_dict({**obj, "metadata": {"name": "Bad"}})


def test_status_parse_is_lenient() -> None:
    assert parse_status(None) == ModelDeploymentStatus()
    assert parse_status({"phase": "Exploded"}) == ModelDeploymentStatus()
    status = parse_status(
        {
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "Ready",
                    "message": "",
                    "lastTransitionTime": "2026-01-01T00:00:00Z",
                }
            ],
            "canary": {
                "weight": 25,
                "analyses": [{"time": "2026-01-01T00:00:30Z", "metric": "error-rate", "verdict": "Pass"}],
            },
        }
    )
    assert status.conditions[0].last_transition_time.year == 2026
    assert status.canary is not None and status.canary.analyses[0].value is None


def test_status_dump_is_camel_case_and_has_no_nulls() -> None:
    status = parse_status({"stable": {"version": "v1", "readyReplicas": 2}, "url": "http://x"})
    dumped = status.model_dump(mode="json", by_alias=True, exclude_none=True)
    assert dumped == {"stable": {"version": "v1", "readyReplicas": 2}, "conditions": [], "url": "http://x"}
