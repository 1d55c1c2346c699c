"""Analysis: judging values, reading Prometheus results, and one whole analysis against a fake provider."""

from __future__ import annotations

import datetime as dt
import http.server
import json
import math
import threading
import time
from typing import Any

import pytest

from modelpilot.analysis.builtin import BUILTIN, REQUESTS
from modelpilot.analysis.evaluate import judge, threshold_text
from modelpilot.analysis.provider import PrometheusProvider, ProviderError, QueryRejected, single_value
from modelpilot.analysis.queries import QueryError, check_syntax, render
from modelpilot.analysis.run import run_analysis, window_seconds
from modelpilot.api.models import Analysis, Metric
from modelpilot.settings import OperatorSettings

NOW = dt.datetime(2026, 11, 25, tzinfo=dt.UTC)


def metric(**kw: Any) -> Metric:
    return Metric.model_validate({"name": "error-rate", **kw})


JUDGE_CASES = [
    # metric, canary, stable, verdict, detail fragment
    ("under-max", metric(max=1), 0.5, None, "Pass", ""),
    ("over-max", metric(max=1), 2.0, None, "Fail", "2 > 1"),
    ("at-max", metric(max=1), 1.0, None, "Pass", ""),
    ("under-min", metric(name="success", query="vector(1)", min=99), 98.0, None, "Fail", "98 < 99"),
    ("no-data", metric(max=1), None, None, "Inconclusive", "no data"),
    ("nan", metric(max=1), math.nan, None, "Inconclusive", "NaN"),
    ("plus-inf-is-a-value", metric(name="latency-p99", max=500), math.inf, None, "Fail", "inf > 500"),
    ("ratio-ok", metric(name="slow", template="latency-p99", compareToStable={"maxRatio": 1.5}), 12.0, 10.0,
     "Pass", "ratio 1.2"),
    ("ratio-fail", metric(name="slow", template="latency-p99", compareToStable={"maxRatio": 1.5}), 20.0, 10.0,
     "Fail", "ratio 2 > 1.5"),
    ("increase-fail", metric(compareToStable={"maxIncrease": 1}), 3.0, 1.0, "Fail", "increase 2 > 1"),
    ("stable-no-data", metric(compareToStable={"maxIncrease": 1}), 3.0, None, "Inconclusive", "stable: no data"),
    ("stable-zero-canary-positive", metric(compareToStable={"maxRatio": 2}), 0.1, 0.0, "Fail", "ratio inf"),
    ("both-zero", metric(compareToStable={"maxRatio": 2}), 0.0, 0.0, "Pass", "ratio 1"),
    # Both tracks beyond the largest bucket: no comparison is possible, and that must never pass.
    ("both-plus-inf-ratio", metric(name="slow", template="latency-p99", compareToStable={"maxRatio": 1.5}),
     math.inf, math.inf, "Fail", "ratio undefined"),
    ("both-plus-inf-increase", metric(name="slow", template="latency-p99", compareToStable={"maxIncrease": 50}),
     math.inf, math.inf, "Fail", "increase undefined"),
    ("absolute-fails-even-without-stable", metric(max=1, compareToStable={"maxRatio": 2}), 5.0, None, "Fail",
     "5 > 1"),
]


@pytest.mark.parametrize(("case", "m", "canary", "stable", "verdict", "detail"), JUDGE_CASES,
                         ids=[c[0] for c in JUDGE_CASES])
def test_judge(case: str, m: Metric, canary: float | None, stable: float | None, verdict: str, detail: str) -> None:
    result = judge(m, canary, stable, NOW)
    assert result.verdict == verdict
    assert detail in result.detail
    assert result.metric == m.name


def test_threshold_text() -> None:
    assert threshold_text(metric(max=1)) == "<= 1"
    assert threshold_text(metric(min=1, max=2, compareToStable={"maxRatio": 1.2, "maxIncrease": 3})) == \
        ">= 1, <= 2, ratio to stable <= 1.2, increase over stable <= 3"


SERIES = {"metric": {}, "value": [1700000000.0, "1.5"]}


@pytest.mark.parametrize(("result", "expected"), [
    ([], None),
    ([SERIES], 1.5),
    ([{"metric": {}, "value": [1, "NaN"]}], "nan"),
    ([{"metric": {}, "value": [1, "+Inf"]}], math.inf),
    ([1700000000.0, "2"], 2.0),  # scalar
])
def test_single_value(result: Any, expected: Any) -> None:
    value = single_value(result)
    if expected == "nan":
        assert value is not None and math.isnan(value)
    else:
        assert value == expected


@pytest.mark.parametrize(("result", "message"), [
    ([SERIES, SERIES], "returned 2 series"),
    ([{"metric": {}, "values": [[1, "1"]]}], "range vector"),
    ([{"metric": {}, "value": [1, "abc"]}], "non-numeric"),
    ({"oops": 1}, "unexpected result"),
])
def test_single_value_errors(result: Any, message: str) -> None:
    with pytest.raises(ProviderError, match=message):
        single_value(result)


class FakeProvider:
    """Answers by substring of the query; records every query."""

    def __init__(self, answers: dict[str, float | Exception | None]) -> None:
        self.answers = answers
        self.queries: list[str] = []

    def query(self, promql: str) -> float | None:
        self.queries.append(promql)
        for key, answer in self.answers.items():
            if key in promql:
                if isinstance(answer, Exception):
                    raise answer
                return answer
        return None


REVISIONS = {"canary": "c0ffee0001", "stable": "5ab1e00001"}


def analysis(**kw: Any) -> Analysis:
    return Analysis.model_validate({"minRequests": 20, **kw})


def test_too_few_requests_is_inconclusive_and_skips_metrics() -> None:
    provider = FakeProvider({"increase(": 5.0})
    result = run_analysis(analysis(), namespace="ml", name="fraud", window=30, provider=provider,
                          now=NOW, revisions=REVISIONS)
    assert result.verdict == "Inconclusive"
    assert "5 canary requests in 30s < minRequests 20" in result.summary()
    assert len(provider.queries) == 1


def test_no_requests_at_all_is_inconclusive() -> None:
    result = run_analysis(analysis(), namespace="ml", name="fraud", window=30, provider=FakeProvider({}),
                          now=NOW, revisions=REVISIONS)
    assert result.verdict == "Inconclusive"


def test_pass_and_fail_and_precedence() -> None:
    good = FakeProvider({"increase(": 100.0, 'code=~"5.."': 0.0, "histogram_quantile": 12.0})
    result = run_analysis(analysis(), namespace="ml", name="fraud", window=30, provider=good,
                          now=NOW, revisions=REVISIONS)
    assert result.verdict == "Pass"
    assert [m.metric for m in result.measurements] == ["error-rate", "latency-p99"]
    assert all('namespace="ml", model_deployment="fraud", track="canary"' in q for q in good.queries)
    assert all("[30s]" in q for q in good.queries)

    bad = FakeProvider({"increase(": 100.0, 'code=~"5.."': 25.0, "histogram_quantile": ProviderError("down")})
    result = run_analysis(analysis(), namespace="ml", name="fraud", window=30, provider=bad,
                          now=NOW, revisions=REVISIONS)
    assert result.verdict == "Fail"  # a failure beats a provider error
    assert [m.verdict for m in result.measurements] == ["Fail", "Error"]


def test_provider_down_is_an_error_never_a_pass() -> None:
    down = FakeProvider({"": ProviderError("prometheus unreachable")})
    result = run_analysis(analysis(), namespace="ml", name="fraud", window=30, provider=down,
                          now=NOW, revisions=REVISIONS)
    assert result.verdict == "Error"
    assert "unreachable" in result.summary()


def test_compare_to_stable_queries_both_tracks() -> None:
    spec = analysis(metrics=[{"name": "slower-than-stable", "template": "latency-p99",
                              "compareToStable": {"maxRatio": 1.5}}])
    provider = FakeProvider({"increase(": 50.0, 'track="canary"': 40.0, 'track="stable"': 10.0})
    result = run_analysis(spec, namespace="ml", name="fraud", window=30, provider=provider,
                          now=NOW, revisions=REVISIONS)
    assert result.verdict == "Fail"
    assert any('track="stable"' in q for q in provider.queries)
    assert "ratio 4 > 1.5" in result.measurements[0].detail
    # Each track is selected by its own revision: never an earlier canary's traffic.
    assert all('revision="c0ffee0001"' in q for q in provider.queries if 'track="canary"' in q)
    assert all('revision="5ab1e00001"' in q for q in provider.queries if 'track="stable"' in q)


@pytest.mark.parametrize("revision", ['c0ffee"} or vector(1) #', "C0FFEE", "", "x" * 65])
def test_a_revision_that_is_not_a_hash_is_never_substituted(revision: str) -> None:
    with pytest.raises(QueryError):
        render(BUILTIN["error-rate"], {"namespace": "ml", "name": "fraud", "track": "canary", "revision": revision,
                                       "window": "30s"})


def test_builtin_queries_are_valid_promql() -> None:
    for template in (*BUILTIN.values(), REQUESTS):
        check_syntax(template)


@pytest.mark.parametrize("hostile", ['fraud"} or vector(1) #', "fraud}", "a\\\"b", "x or vector(1)"])
def test_hostile_value_cannot_change_a_custom_query(hostile: str) -> None:
    template = 'sum(rate(x{model_deployment="{{name}}"}[{{window}}]))'
    with pytest.raises(ValueError, match="refusing to substitute name"):
        render(template, {"name": hostile, "window": "30s"})


@pytest.mark.parametrize(("interval", "scrape", "window"), [(30, 15, 60), (60, 15, 60), (5, 1, 5), (5, 2, 8)])
def test_window(interval: float, scrape: float, window: int) -> None:
    assert window_seconds(interval, scrape) == window


class _Prometheus(http.server.BaseHTTPRequestHandler):
    status = 400
    delay = 0.0

    def do_GET(self) -> None:
        time.sleep(self.delay)
        body = json.dumps({"status": "error", "errorType": "bad_data", "error": "parse error"}).encode()
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.mark.parametrize(("status", "rejected"), [(400, True), (422, False), (503, False)])
def test_a_query_prometheus_refuses_is_rejected_not_an_outage(status: int, rejected: bool) -> None:
    handler = type("Handler", (_Prometheus,), {"status": status})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        provider = PrometheusProvider(f"http://127.0.0.1:{server.server_address[1]}", timeout=5)
        with pytest.raises(ProviderError) as raised:
            provider.query("sum(x)")
        assert isinstance(raised.value, QueryRejected) is rejected
    finally:
        server.shutdown()


def test_a_prometheus_too_slow_is_reported_as_a_timeout() -> None:
    handler = type("Handler", (_Prometheus,), {"status": 200, "delay": 1.0})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        provider = PrometheusProvider(f"http://127.0.0.1:{server.server_address[1]}", timeout=0.2)
        with pytest.raises(ProviderError, match=r"timed out after 0.2s"):
            provider.query("sum(x)")
    finally:
        server.shutdown()


def test_a_rejected_custom_query_is_reported_with_the_result() -> None:
    class Rejecting:
        def query(self, promql: str) -> float | None:
            if promql.startswith("sum(increase"):
                return 100.0
            raise QueryRejected("prometheus rejected the query: HTTP Status Code 400")

    analysis = Analysis.model_validate({"metrics": [{"name": "custom-x", "query": "sum(y)", "max": 1}]})
    result = run_analysis(analysis, namespace="ml", name="fraud", window=60, provider=Rejecting(),
                          now=NOW, revisions=REVISIONS)
    assert result.verdict == "Error" and result.rejected == (("sum(y)", "prometheus rejected the query: "
                                                                         "HTTP Status Code 400"),)


def test_prometheus_tls_certificates_are_verified_unless_told_otherwise() -> None:
    assert PrometheusProvider("https://prometheus:9090")._client._session.verify is True
    assert PrometheusProvider("https://prometheus:9090", insecure_skip_verify=True)._client._session.verify is False
    assert OperatorSettings().prometheus_insecure_skip_verify is False
