"""Query templating: validated substitution and PromQL syntax checks."""

from __future__ import annotations

import pytest

from modelpilot.analysis.queries import QueryError, check_confined, check_syntax, render

VALUES = {"namespace": "ml", "name": "fraud", "track": "canary", "window": "30s"}


def test_render_substitutes_every_placeholder() -> None:
    template = 'sum(rate(x{namespace="{{namespace}}", md="{{ name }}", track="{{track}}"}[{{window}}]))'
    assert render(template, VALUES) == 'sum(rate(x{namespace="ml", md="fraud", track="canary"}[30s]))'


@pytest.mark.parametrize(("key", "value"), [
    ("namespace", 'ml"} or vector(1) #'),
    ("name", "Fraud"),
    ("name", "a b"),
    ("track", "primary"),
    ("window", "30"),
    ("window", "1m]) or vector(1"),
])
def test_render_refuses_injection(key: str, value: str) -> None:
    with pytest.raises(QueryError, match=f"refusing to substitute {key}"):
        render("x", {**VALUES, key: value})


@pytest.mark.parametrize(("template", "message"), [
    ("rate(x[{{interval}}])", "unknown placeholder"),
    ("sum(rate(x{a=\"b\"[1m]))", "invalid PromQL"),
    ("sum(", "invalid PromQL"),
])
def test_check_syntax_rejects(template: str, message: str) -> None:
    with pytest.raises(QueryError, match=message):
        check_syntax(template)


@pytest.mark.parametrize("template", [
    'sum(rate(modelpilot_requests_total{namespace="{{namespace}}", track="{{track}}"}[{{window}}]))',
    "histogram_quantile(0.99, sum by (le) (rate(d_bucket[{{window}}])))",
    "vector(1)",
])
def test_check_syntax_accepts(template: str) -> None:
    check_syntax(template)


def test_missing_value_is_an_error() -> None:
    with pytest.raises(QueryError, match="no value for placeholder"):
        render("x[{{window}}]", {"namespace": "ml"})


CONFINED = [
    ('sum(rate(x{namespace="{{namespace}}", model_deployment="{{name}}"}[{{window}}]))', True),
    ('sum(rate(x{namespace="{{namespace}}"}[1m])) / sum(rate(y{namespace="{{namespace}}"}[1m]))', True),
    ("vector(1)", True),
    ("sum(rate(x[1m]))", False),                                              # no namespace at all
    ('x{namespace="payments"}', False),                                       # another namespace
    ('x{namespace=~".+"}', False),                                            # every namespace
    ('x{namespace="{{namespace}}"} / y{namespace="payments"}', False),         # one selector escapes
    ('x{namespace="{{namespace}}"} or y', False),
]


@pytest.mark.parametrize(("query", "confined"), CONFINED)
def test_confined_queries_select_only_their_own_namespace(query: str, confined: bool) -> None:
    if confined:
        check_confined(query)
    else:
        with pytest.raises(QueryError, match="must be confined"):
            check_confined(query)
