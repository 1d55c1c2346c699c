"""The Grafana dashboard in docs/grafana: current with its generator, every PromQL expression
parses, and every metric it names is one the project exports (the runtime, the operator, the
activator and the drift monitor)."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from typing import Any

import promql_parser
import pytest
from prometheus_client import REGISTRY, CollectorRegistry

import modelpilot.metrics  # noqa: F401  (registers the operator's metrics in the default registry)
from modelpilot.activator.metrics import ActivatorMetrics
from modelpilot.monitoring import contract
from modelpilot.server.metrics import MetricLabels, RequestMetrics

GRAFANA = Path(__file__).resolve().parents[2] / "docs" / "grafana"
_SPEC = importlib.util.spec_from_file_location("grafana_generate", GRAFANA / "generate.py")
assert _SPEC and _SPEC.loader
generate = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(generate)
DASHBOARD = GRAFANA / "modelpilot.json"
# What Grafana substitutes before the query reaches Prometheus.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__range": "1h", "$__interval": "15s",
                     "$namespace": "ns", "$model": "fraud"}
SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created"),
            "gauge": ("",), "summary": ("", "_sum", "_count", "_created")}


def _families(registry: CollectorRegistry) -> set[str]:
    names = set()
    for family in registry.collect():
        names |= {family.name + suffix for suffix in SUFFIXES.get(family.type, ("",))}
    return names


def exported() -> set[str]:
    runtime = CollectorRegistry()
    RequestMetrics(MetricLabels("fraud", "fraud", "v1", "stable"), registry=runtime)
    activator = CollectorRegistry()
    ActivatorMetrics(registry=activator)
    drift = {value for name, value in vars(contract).items()
             if name.isupper() and isinstance(value, str) and value.startswith("modelpilot_")}
    return _families(REGISTRY) | _families(runtime) | _families(activator) | drift


def expressions(dashboard: dict[str, Any]) -> list[str]:
    found = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    for variable in dashboard["templating"]["list"]:
        query = (variable.get("query") or {}).get("query") if isinstance(variable.get("query"), dict) else None
        if query:
            # label_values(<series selector>, <label>): its selector is PromQL.
            match = re.fullmatch(r"label_values\((.*),\s*\w+\)", query)
            assert match, query
            found.append(match.group(1))
    return found


def substituted(expr: str) -> str:
    for variable, value in sorted(GRAFANA_VARIABLES.items(), key=lambda kv: -len(kv[0])):
        expr = expr.replace(variable, value)
    assert "$" not in expr, f"a Grafana variable the test does not know: {expr}"
    return expr


def metric_names(expr: str) -> set[str]:
    names: set[str] = set()

    def visit(node: promql_parser.Expr) -> bool:
        if isinstance(node, promql_parser.VectorSelector):
            assert node.name, f"a selector without a metric name in {expr}"
            names.add(node.name)
        return True

    promql_parser.walk(promql_parser.parse(expr), pre_visit=visit)
    return names


DASHBOARD_EXPRESSIONS = expressions(json.loads(DASHBOARD.read_text()))


def test_dashboard_is_current_with_its_generator() -> None:
    assert DASHBOARD.read_text() == generate.text(), "run python docs/grafana/generate.py"


def test_the_dashboard_covers_serving_and_rollout() -> None:
    names = set().union(*(metric_names(substituted(e)) for e in DASHBOARD_EXPRESSIONS))
    assert {"modelpilot_requests_total", "modelpilot_request_duration_seconds_bucket",
            "modelpilot_canary_weight_percent", "modelpilot_analysis_value"} <= names


@pytest.mark.parametrize("expr", DASHBOARD_EXPRESSIONS)
def test_expression_parses_and_names_only_exported_metrics(expr: str) -> None:
    names = metric_names(substituted(expr))
    assert names, expr
    unknown = names - exported()
    assert not unknown, f"{sorted(unknown)} are not exported by the project"


@pytest.mark.parametrize(("expr", "problem"), [
    ("sum(rate(modelpilot_requests_total[1m])", "parse"),
    ("rate(http_requests_total[1m])", "unknown"),
])
def test_the_checks_catch_mistakes(expr: str, problem: str) -> None:
    if problem == "parse":
        with pytest.raises(ValueError):
            metric_names(expr)
    else:
        assert metric_names(expr) - exported() == {"http_requests_total"}
