"""The generated CRD on a real API server: accepted, explained, and rejecting bad specs at admission."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from modelpilot.api.models import API_VERSION, KIND, SHORT_NAMES, SINGULAR
from tests.e2e.support import ClusterHandle
from tests.unit import batch_cases, spec_cases

VALID: dict[str, Any] = {
    "apiVersion": API_VERSION,
    "kind": KIND,
    "metadata": {"name": "probe"},
    "spec": {
        "model": {"version": "v1", "uri": "file:///models/iris", "format": "sklearn"},
        "replicas": 1,
    },
}


def with_spec(**changes: Any) -> dict[str, Any]:
    obj = copy.deepcopy(VALID)
    obj["spec"].update(changes)
    return obj


def with_canary(**canary: Any) -> dict[str, Any]:
    return with_spec(rollout={"canary": canary})


def with_model(**model: Any) -> dict[str, Any]:
    return with_spec(model={**VALID["spec"]["model"], **model})


def server_create(cluster: ClusterHandle, namespace: str, obj: dict[str, Any]) -> tuple[int, str]:
    result = cluster.kubectl("create", "--dry-run=server", "-n", namespace, "-f", "-",
                             input=yaml.safe_dump(obj), check=False)
    return result.returncode, result.stderr + result.stdout


REJECTED = [
    ("min-above-max", with_spec(autoscaling={"minReplicas": 5, "maxReplicas": 2}),
     "autoscaling.minReplicas must be <= maxReplicas"),
    ("steps-not-ascending", with_canary(steps=[10, 50, 25]), "rollout.canary.steps must be strictly ascending"),
    ("steps-repeated", with_canary(steps=[10, 10]), "rollout.canary.steps must be strictly ascending"),
    ("step-100", with_canary(steps=[50, 100]), "rollout.canary.steps must each be between 1 and 99"),
    ("step-0", with_canary(steps=[0, 50]), "rollout.canary.steps must each be between 1 and 99"),
    ("unknown-format", with_model(format="pytorch"), 'Unsupported value: "pytorch"'),
    ("unsupported-scheme", with_model(uri="ftp://models/iris"),
     "model.uri must start with file://, http://, https://, s3://, gs:// or pvc://"),
    ("negative-gpus", with_spec(accelerator={"vendor": "nvidia", "count": -1}),
     "spec.accelerator.count: Invalid value: -1"),
    ("interval-without-unit", with_canary(interval="30"),
     "rollout.canary.interval must be a duration with a unit"),
    ("interval-under-5s", with_canary(interval="2s"), "rollout.canary.interval must be at least 5s"),
    ("metric-without-limit", with_canary(analysis={"metrics": [{"name": "error-rate"}]}),
     "a metric needs at least one of max, min or compareToStable"),
    ("compare-without-limit", with_canary(analysis={"metrics": [{"name": "slow", "template": "latency-p99",
                                                                  "compareToStable": {}}]}),
     "compareToStable needs maxRatio or maxIncrease"),
    ("custom-without-image", with_model(format="custom"), "runtime.image is required when model.format is custom"),
    ("unknown-field", with_spec(replicaz=2), 'unknown field "spec.replicaz"'),
]


@pytest.mark.parametrize(("case", "obj", "message"), REJECTED, ids=[c[0] for c in REJECTED])
def test_invalid_spec_rejected_at_admission(cluster: ClusterHandle, crd: str, namespace: str, case: str,
                                            obj: dict[str, Any], message: str) -> None:
    code, output = server_create(cluster, namespace, obj)
    assert code != 0, f"{case} was accepted"
    assert message in output, output


@pytest.mark.parametrize(("case", "spec", "message"), spec_cases.INVALID, ids=[c[0] for c in spec_cases.INVALID])
def test_shared_invalid_cases_rejected_at_admission(cluster: ClusterHandle, crd: str, namespace: str, case: str,
                                                    spec: dict[str, Any], message: str) -> None:
    """The table the parser and the CEL unit tests share (among them: shadow, match and the
    Experiment strategy with the replicas router, which cannot mirror or match requests)."""
    code, output = server_create(cluster, namespace, {**VALID, "spec": spec})
    assert code != 0, f"{case} was accepted"
    assert message in output, output


@pytest.mark.parametrize(("case", "spec"), spec_cases.VALID, ids=[c[0] for c in spec_cases.VALID])
def test_shared_valid_cases_accepted(cluster: ClusterHandle, crd: str, namespace: str, case: str,
                                     spec: dict[str, Any]) -> None:
    code, output = server_create(cluster, namespace, {**VALID, "spec": spec})
    assert code == 0, f"{case}: {output}"


def test_valid_spec_and_examples_accepted(cluster: ClusterHandle, crd: str, namespace: str) -> None:
    from tests.e2e.conftest import ROOT

    assert server_create(cluster, namespace, VALID)[0] == 0
    for example in sorted((ROOT / "examples").glob("*.yaml")):
        for doc in yaml.safe_load_all(example.read_text()):
            code, output = server_create(cluster, namespace, doc)
            assert code == 0, f"{example.name}: {output}"


def test_explain_shows_documented_fields(cluster: ClusterHandle, crd: str) -> None:
    out = cluster.kubectl("explain", f"{SINGULAR}.spec.rollout.canary.analysis").stdout
    for field in ("minRequests", "onInconclusive", "onProviderError", "maxProviderErrors", "metrics"):
        assert field in out
    assert "Inconclusive" in out and "enum: Wait, Pause, Fail" in out
    for short in SHORT_NAMES:
        assert cluster.kubectl("get", short, "-A").returncode == 0


@pytest.mark.parametrize("hostile", ['fraud"} or vector(1) #', "fraud}", "Fraud", "a b"])
def test_hostile_name_never_reaches_a_query(cluster: ClusterHandle, crd: str, namespace: str, hostile: str) -> None:
    """Query templates get {{name}} and {{namespace}}: values the API server validates first, so a
    value that could close a PromQL string or add an expression is rejected before any query (the
    renderer refuses it too: tests/unit/test_analysis.py)."""
    obj = copy.deepcopy(VALID)
    obj["metadata"]["name"] = hostile
    obj["spec"]["rollout"] = {"canary": {"analysis": {"metrics": [
        {"name": "custom-x", "query": 'sum(rate(x{app="{{name}}"}[{{window}}]))', "max": 1}]}}}
    code, output = server_create(cluster, namespace, obj)
    assert code != 0 and ("metadata.name" in output or "invalid" in output.lower()), output


# ------------------------------------------------------------------------------- BatchPrediction

BATCH = {"apiVersion": API_VERSION, "kind": "BatchPrediction", "metadata": {"name": "score"}}


@pytest.mark.parametrize(("case", "spec", "message"), batch_cases.INVALID, ids=[c[0] for c in batch_cases.INVALID])
def test_batch_invalid_cases_rejected_at_admission(cluster: ClusterHandle, crd: str, namespace: str, case: str,
                                                   spec: dict[str, Any], message: str) -> None:
    """The BatchPrediction table the parser and the CEL unit tests share."""
    code, output = server_create(cluster, namespace, {**BATCH, "spec": spec})
    assert code != 0, f"{case} was accepted"
    assert message in output, output


@pytest.mark.parametrize(("case", "spec"), batch_cases.VALID, ids=[c[0] for c in batch_cases.VALID])
def test_batch_valid_cases_accepted(cluster: ClusterHandle, crd: str, namespace: str, case: str,
                                    spec: dict[str, Any]) -> None:
    code, output = server_create(cluster, namespace, {**BATCH, "spec": spec})
    assert code == 0, f"{case}: {output}"
    assert cluster.kubectl("get", "bp", "-n", namespace).returncode == 0
