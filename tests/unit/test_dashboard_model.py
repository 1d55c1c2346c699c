"""The plain data behind the plugin's views and the dashboard (cli/viewmodel.py, the sections'
`*_data` functions, cli/dashboard_model.py): table-driven, and checked against what the terminal
view prints, so the two cannot drift apart."""

from __future__ import annotations

import copy
import datetime as dt
import io
import json
import re
from typing import Any

import pytest
from rich.console import Console, RenderableType

from modelpilot.analysis.evaluate import threshold_text
from modelpilot.api.models import Metric
from modelpilot.cli import plugin, viewmodel
from modelpilot.cli.dashboard_model import History, detail, list_entry, metric_points
from modelpilot.cli.drift_view import drift_data, drift_output
from modelpilot.cli.edge_view import fleet
from modelpilot.cli.experiment_view import comparisons
from modelpilot.cli.serverless_view import serverless_data

NOW = dt.datetime(2026, 11, 2, 12, 0, tzinfo=dt.UTC)

ANALYSES = [
    {"time": "2026-11-02T11:55:00Z", "metric": "error-rate", "value": 2.5, "threshold": "<= 1", "verdict": "Fail",
     "detail": "2.5 > 1"},
    {"time": "2026-11-02T11:56:00Z", "metric": "error-rate", "value": 0.1, "threshold": "<= 1", "verdict": "Pass"},
    {"time": "2026-11-02T11:56:00Z", "metric": "latency-p99", "threshold": "<= 500", "verdict": "Inconclusive",
     "detail": "canary: no data"},
    {"time": "2026-11-02T11:56:00Z", "metric": "slower", "value": 40.0, "threshold": "ratio to stable <= 1.2",
     "verdict": "Pass"},
]


def mdep(canary: dict[str, Any] | None = None, name: str = "fraud", **status: Any) -> dict[str, Any]:
    """A ModelDeployment with steps 10/25/50 and, unless `canary` is None, a canary at 25% (step 2/3)."""
    md: dict[str, Any] = {
        "metadata": {"namespace": "ml", "name": name, "generation": 3, "creationTimestamp": "2026-11-02T10:00:00Z"},
        "spec": {"model": {"version": "v8"}, "rollout": {"canary": {"steps": [10, 25, 50], "analysis": {"metrics": [
            {"name": "error-rate", "max": 1}, {"name": "throughput", "min": 5},
            {"name": "slower", "template": "latency-p99", "compareToStable": {"maxRatio": 1.2}}]}}}},
        "status": {"phase": "Progressing", "observedGeneration": 3, "stable": {"version": "v7", "readyReplicas": 2,
                                                                               "replicas": 2},
                   "conditions": [{"type": "Ready", "status": "True", "reason": "Serving", "message": "ok"}],
                   **status},
    }
    if canary is not None:
        md["status"]["canary"] = {"version": "v8", "state": "Progressing", "step": 1, "weight": 25, "stage": "steps",
                                  "failedChecks": 1, "analyses": copy.deepcopy(ANALYSES), **canary}
    return md


def text_of(renderable: RenderableType) -> str:
    console = Console(width=200, no_color=True, highlight=False, record=True, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


# ------------------------------------------------------------------------------------ list and head


@pytest.mark.parametrize(("md", "expected"), [
    (mdep({}), {"stable": "v7", "canary": "v8", "state": "Progressing", "step": "2/3", "weight": 25,
                "verdict": "Inconclusive", "verdictMetric": "latency-p99", "stage": "steps", "ready": "True"}),
    (mdep(None), {"stable": "v7", "canary": None, "state": None, "step": "-", "weight": None, "verdict": "",
                  "verdictMetric": "", "stage": "-", "ready": "True"}),
    (mdep({"analyses": ANALYSES[:1], "stage": "shadow", "weight": 0}),
     {"step": "-", "weight": 0, "verdict": "Fail", "verdictMetric": "error-rate", "stage": "shadow"}),
    (mdep({"analyses": ANALYSES[1:2]}), {"verdict": "Pass", "verdictMetric": ""}),
    (mdep({"step": -1, "weight": None, "stage": None, "analyses": []}),
     {"step": "0/3", "weight": 0, "verdict": "", "stage": "-"}),
    ({"metadata": {"namespace": "ml", "name": "new"}, "spec": {"model": {"version": "v1"}}},
     {"model": "v1", "stable": None, "canary": None, "phase": "", "ready": None, "created": None}),
])
def test_list_item(md: dict[str, Any], expected: dict[str, Any]) -> None:
    item = viewmodel.list_item(md)
    assert {key: item[key] for key in expected} == expected


def test_list_row_of_the_terminal_is_the_list_item() -> None:
    md = mdep({})
    item = viewmodel.list_item(md)
    cells = [str(c) for c in plugin.row(md, with_namespace=True)]
    assert cells[:11] == [item["namespace"], item["name"], item["model"], item["stable"], item["canary"],
                          item["state"], item["step"], f"{item['weight']}%",
                          f"{item['verdict']} ({item['verdictMetric']})", item["phase"], item["stage"]]
    assert (item["weightText"], item["verdictText"]) == ("25%", "Inconclusive (latency-p99)")
    plain = viewmodel.list_item(mdep(None))
    assert (plain["weightText"], plain["verdictText"]) == ("-", "-") == tuple(
        str(c) for c in plugin.row(mdep(None), with_namespace=False)[6:8])


@pytest.mark.parametrize(("canary", "expected"), [
    ({}, {"step": "2/3", "weight": 25, "stage": "steps: 2/3 at 25%", "weightNote": "", "failedChecks": 1}),
    ({"stage": "shadow", "weight": 0}, {"step": "-", "weight": 0, "weightNote": "  (+100% mirrored to the canary)"}),
    ({"stage": "segment", "weight": 0}, {"weightNote": "  (+ the matching requests go to the canary)"}),
    ({"message": "analysis passed"}, {"message": "analysis passed", "providerErrors": 0}),
])
def test_head_of_a_canary(canary: dict[str, Any], expected: dict[str, Any]) -> None:
    data = viewmodel.head(mdep(canary), NOW)
    assert data["specVersion"] == "v8" and data["stable"] == {"version": "v7", "readyReplicas": 2, "replicas": 2}
    assert {key: data["canary"][key] for key in expected} == expected


def test_head_and_the_status_panel_say_the_same() -> None:
    md = mdep({"message": "analysis passed: weight 25% (step 2/3)"})
    canary = viewmodel.head(md, NOW)["canary"]
    text = text_of(plugin.status_view(md, []))
    for shown in (canary["stage"], canary["message"], f"step {canary['step']}", "stable 75% / canary 25%"):
        assert shown in text
    assert canary["line"] == "v8  state Progressing  step 2/3  failed checks 1  provider errors 0"
    assert canary["weightText"] == "stable 75% / canary 25%"
    data = viewmodel.head(md, NOW)
    for shown in (data["title"], data["stableText"], canary["line"], canary["weightText"]):
        assert shown in text
    assert viewmodel.head(mdep(None), NOW)["canary"] is None


@pytest.mark.parametrize(("stable", "text"), [
    ({"version": "v7", "readyReplicas": 1, "replicas": 2}, "v7 (1/2 ready)"),
    ({}, "— (0/0 ready)"),
    ({"version": "", "replicas": 1}, " (0/1 ready)"),  # as `status` always printed it
])
def test_head_stable_text(stable: dict[str, Any], text: str) -> None:
    md = mdep(None, stable=stable)
    assert viewmodel.head(md, NOW)["stableText"] == text
    assert re.search(rf"│ stable\s+{re.escape(text)}", text_of(plugin.status_view(md, [])))


@pytest.mark.parametrize(("value", "unit", "text"), [
    (None, "", "—"), (float("nan"), "", "NaN"), (float("inf"), "", "+Inf"), (0.1, "", "0.1"), (500.0, " ms", "500 ms"),
    (1234.5, "", "1.23e+03"), (41.25, "%", "41.2%"), (1.234e-7, "", "1.23e-07"),
])
def test_number_text(value: float | None, unit: str, text: str) -> None:
    assert viewmodel.number_text(value, unit) == text


@pytest.mark.parametrize(("metric", "limits"), [
    ({"max": 1}, {"max": 1.0}),
    ({"min": 5}, {"min": 5.0}),
    ({"min": 5, "max": 10}, {"min": 5.0, "max": 10.0}),
    ({"max": 0.0025}, {"max": 0.0025}),
    ({"compareToStable": {"maxRatio": 1.2}}, {}),
    ({"max": 500, "compareToStable": {"maxIncrease": 50}}, {"max": 500.0}),
])
def test_threshold_limits(metric: dict[str, Any], limits: dict[str, float]) -> None:
    """Read from the threshold as the analysis words it in the records."""
    threshold = threshold_text(Metric.model_validate({"name": "latency-p99", **metric}))
    assert viewmodel.threshold_limits(threshold) == limits


@pytest.mark.parametrize("threshold", ["<= x", "", None])
def test_threshold_limits_of_no_limit(threshold: str | None) -> None:
    assert viewmodel.threshold_limits(threshold) == {}


@pytest.mark.parametrize(("spec", "limits"), [
    ({}, {"error-rate": "<= 1", "latency-p99": "<= 500"}),
    ({"rollout": {"canary": {"analysis": {"metrics": [{"name": "a", "max": 2.5}, {"name": "b", "min": 1, "max": 3},
                                                       {"name": "c", "compareToStable": {"maxRatio": 2}}]}}}},
     {"a": "<= 2.5", "b": "<= 3, >= 1", "c": "vs stable"}),
])
def test_metric_limits(spec: dict[str, Any], limits: dict[str, str]) -> None:
    assert viewmodel.metric_limits({"spec": spec}) == limits


def test_last_round_and_analysis_rows() -> None:
    rows = viewmodel.analysis_rows(viewmodel.last_round(ANALYSES))
    assert [r["metric"] for r in rows] == ["error-rate", "latency-p99", "slower"]
    assert rows[1] == {"time": "2026-11-02T11:56:00Z", "metric": "latency-p99", "value": None, "valueText": "—",
                       "threshold": "<= 500", "verdict": "Inconclusive", "detail": "canary: no data"}
    assert [r["valueText"] for r in rows] == ["0.1", "—", "40"]
    assert viewmodel.last_round([]) == []


@pytest.mark.parametrize(("change", "events_listed", "drift", "expected"), [
    ({}, True, None, []),
    ({}, False, None, ["events: not allowed to list events in this namespace"]),
    ({"annotations": {"modelpilot.io/action": "promote"}}, True, None,
     ["pending action: promote (waiting for the operator)"]),
    ({"paused": True}, True, None, ["spec.paused: true (kubectl modelpilot resume to continue)"]),
    ({"observedGeneration": None}, True, None,
     ["no status yet: waiting for the operator (is it running and watching this namespace?)"]),
    ({"observedGeneration": 2}, True, "drift: DataDrift False",
     ["the operator has not observed generation 3 yet (status is of 2)", "drift: DataDrift False"]),
    ({"url": "http://x"}, True, None, ["url: http://x"]),
])
def test_notes(change: dict[str, Any], events_listed: bool, drift: str | None, expected: list[str]) -> None:
    md = mdep(None)
    if "annotations" in change:
        md["metadata"]["annotations"] = change["annotations"]
    if "paused" in change:
        md["spec"]["paused"] = True
    if "observedGeneration" in change:
        md["status"]["observedGeneration"] = change["observedGeneration"]
    if "url" in change:
        md["status"]["url"] = change["url"]
    assert viewmodel.notes(md, events_listed, drift) == expected
    text = text_of(plugin.status_view(md, [] if events_listed else None))
    assert all(note in text for note in expected if not note.startswith("drift"))


# ------------------------------------------------------------------------------------ sections


def test_fleet_counts_states_and_marks_the_canary_nodes() -> None:
    edge = {"nodes": 5, "batch": 2, "batchNodes": 3, "reporting": 1, "canaryNodes": ["e3", "e4"],
            "servingStable": ["e1", "e2"], "servingCanary": ["e3"], "unreachable": ["e4"], "pending": ["e0"]}
    data = fleet(edge)
    assert data["summary"] == "5 nodes, canary batch 2: 2/3 nodes, 1 reporting"
    assert data["counts"] == [{"state": "stable", "legend": "serving stable", "count": 2},
                              {"state": "canary", "legend": "serving canary", "count": 1},
                              {"state": "pending", "legend": "pending", "count": 1},
                              {"state": "unreachable", "legend": "unreachable", "count": 1}]
    assert [(n["name"], n["state"], n["canary"]) for n in data["nodes"]] == [
        ("e0", "pending", False), ("e1", "stable", False), ("e2", "stable", False), ("e3", "canary", True),
        ("e4", "unreachable", True)]
    assert fleet({})["summary"] == "0 nodes" and fleet({})["nodes"] == []


@pytest.mark.parametrize(("serverless", "rows"), [
    ({"scaledToZero": True, "lastScaledToZeroTime": "2026-11-02T11:48:00Z", "lastRequestTime": "2026-11-02T11:40:00Z",
      "coldStarts": [2.0, 4.0], "lastColdStartSeconds": 4.0, "p50ColdStartSeconds": 3.0,
      "replicaHistory": [{"time": "2026-11-02T10:00:00Z", "replicas": 1}, {"time": "2026-11-02T11:00:00Z",
                                                                          "replicas": 0}]},
     [["scaled to zero", "yes, for 12m"], ["last request", "2026-11-02T11:40:00Z (20m ago)"],
      ["idle since", "20m"], ["cold starts", "last 4s · p50 3s · 2 measured"],
      ["pod time, 2h", "3,600 pod-s (1.0 pod-h) used vs 7,200 pod-s (2.0 pod-h) with minReplicas: 1: 50% saved"]]),
    ({"scaledToZero": False},
     [["scaled to zero", "no"], ["last request", "none seen"], ["idle since", "—"],
      ["cold starts", "none measured yet"], ["pod time, 24h", "no pod history yet"]]),
])
def test_serverless_rows_are_what_status_prints(serverless: dict[str, Any], rows: list[list[str]]) -> None:
    md = mdep(None, serverless=serverless)
    data = serverless_data(md, NOW)
    assert data is not None and data["rows"] == rows
    assert data["scaledToZero"] is serverless["scaledToZero"]
    assert serverless_data(mdep(None), NOW) is None


def test_comparisons_in_words() -> None:
    experiment = {"final": True, "verdict": "Winner", "results": [
        {"metric": "ctr", "verdict": "Winner", "canary": 0.0412, "stable": 0.0371, "difference": 0.0041,
         "ciLow": 0.0012, "ciHigh": 0.007, "pValue": 0.0004, "samplesCanary": 12000, "samplesStable": 28000},
        {"metric": "basket", "verdict": "Inconclusive", "samplesCanary": 640, "detail": "too few"}]}
    assert comparisons(experiment) == [
        {"metric": "ctr", "canary": "0.0412", "stable": "0.0371", "difference": "+0.0041 [+0.0012, +0.007]",
         "pValue": "<0.001", "samples": "12000/28000", "verdict": "Winner", "detail": ""},
        {"metric": "basket", "canary": "—", "stable": "—", "difference": "—", "pValue": "—", "samples": "640/?",
         "verdict": "Inconclusive", "detail": "too few"}]
    assert comparisons({}) == []


DRIFT = {"window": "20s", "rows": 812, "lastEvaluated": "2026-11-02T11:59:00Z", "profile": True,
         "features": [{"name": "calm", "psi": 0.04, "pValue": 0.41, "drifted": False, "bins": []},
                      {"name": "moved", "psi": 2.31, "pValue": 0.0001, "drifted": True,
                       "bins": [{"bin": "(-inf,1.5]", "reference": 0.25, "live": 0.0},
                                {"bin": "missing", "reference": 0.0}]}],
         "accuracy": {"metric": "accuracy", "live": 0.68, "reference": 0.97, "samples": 540}}
CONCEPT = [{"type": "DataDrift", "status": "True", "reason": "FeatureDrift", "message": "feature moved PSI 2.31"},
           {"type": "ConceptDrift", "status": "True", "reason": "AccuracyDrop", "message": "dropped"}]


def test_drift_data_worst_feature_first_with_bins_and_accuracy() -> None:
    md = mdep(None, drift=DRIFT, conditions=CONCEPT)
    data = drift_data(md, NOW)
    assert data["notShown"] is None
    assert data["summary"] == "drift: DataDrift True (feature moved PSI 2.31) · ConceptDrift True (accuracy 0.680 " \
                              "vs reference 0.970)"
    assert [f["name"] for f in data["features"]] == ["moved", "calm"]
    assert data["features"][0] == {"name": "moved", "psi": "2.31", "pValue": "<0.001", "drifted": True, "bins": [
        {"bin": "(-inf,1.5]", "reference": 0.25, "live": 0.0, "referenceText": "25.0%", "liveText": "0.0%"},
        {"bin": "missing", "reference": 0.0, "live": None, "referenceText": "0.0%", "liveText": "—"}]}
    assert data["facts"][:3] == [{"label": "window", "text": "20s", "warn": False},
                                 {"label": "rows", "text": "812", "warn": False},
                                 {"label": "last evaluated", "text": "2026-11-02T11:59:00Z (1m ago)", "warn": False}]
    accuracy = data["accuracy"]
    assert accuracy == {"before": "accuracy: live ", "live": "0.680",
                        "after": " vs reference 0.970 (-0.290) over 540 labelled rows", "drifted": True}
    assert data["unexported"] == {"text": "unexported features: none past maxFeatures", "over": False}
    text = text_of(drift_output(md, NOW))
    assert accuracy["before"] + accuracy["live"] + accuracy["after"] in text


@pytest.mark.parametrize(("spec", "drift", "not_shown", "warned"), [
    ({"monitoring": {"drift": {"enabled": False}}}, DRIFT,
     "ml/fraud: drift monitoring is off (spec.monitoring.drift.enabled: false)", []),
    ({}, None, "ml/fraud: drift not evaluated yet", ["profile"]),
    ({}, {"profile": False, "message": "metrics provider: timeout"}, None, ["profile", "note"]),
])
def test_drift_data_says_why_nothing_is_shown(spec: dict[str, Any], drift: dict[str, Any] | None,
                                              not_shown: str | None, warned: list[str]) -> None:
    md = mdep(None, **({"drift": drift} if drift else {}))
    md["spec"].update(spec)
    data = drift_data(md, NOW)
    assert data["notShown"] == not_shown
    assert [f["label"] for f in data["facts"] if f["warn"]] == warned


# ------------------------------------------------------------------------------------ history and detail


def at(seconds: int) -> dt.datetime:
    return NOW + dt.timedelta(seconds=seconds)


def record(history: History, md: dict[str, Any], now: dt.datetime) -> None:
    history.record(md, viewmodel.list_item(md), now)


def test_history_keeps_weight_changes_and_every_analysis_seen() -> None:
    history = History()
    first = mdep({"weight": 10, "step": 0, "analyses": ANALYSES[:1]})
    record(history, first, at(0))
    record(history, first, at(2))  # nothing changed: no new sample
    later = mdep({"weight": 25, "step": 1, "analyses": ANALYSES[1:]})  # status keeps the last 10 only
    record(history, later, at(4))
    record(history, mdep(None), at(6))  # promoted: the canary is gone
    series = history.series(("ml", "fraud"))
    assert [(s["time"], s["weight"], s["step"], s["state"]) for s in series["weight"]] == [
        ("2026-11-02T12:00:00Z", 10, "1/3", "Progressing"), ("2026-11-02T12:00:04Z", 25, "2/3", "Progressing"),
        ("2026-11-02T12:00:06Z", None, "-", None)]
    by_metric = {m["metric"]: m["points"] for m in series["metrics"]}
    assert [p["value"] for p in by_metric["error-rate"]] == [2.5, 0.1]  # the first came from an earlier poll
    assert by_metric["error-rate"][0]["max"] == 1.0 and by_metric["error-rate"][0]["min"] is None
    assert by_metric["slower"][0]["max"] is None  # a ratio is no line on the value's scale
    assert history.series(("ml", "other")) == {"weight": [], "metrics": []}
    history.forget({("ml", "other")})
    assert history.series(("ml", "fraud"))["weight"] == []


def test_history_is_bounded() -> None:
    history = History(weight_points=3, metric_points=2)
    for second in range(10):
        record(history, mdep({"weight": second, "analyses": ANALYSES}), at(second))
    series = history.series(("ml", "fraud"))
    assert [s["weight"] for s in series["weight"]] == [7, 8, 9]
    assert sum(len(m["points"]) for m in series["metrics"]) == 2


def test_metric_points_carry_the_canary_version() -> None:
    points = metric_points(mdep({"version": "v9"}))
    assert {p["version"] for p in points} == {"v9"} and len(points) == len(ANALYSES)


def test_detail_is_json_and_has_every_section() -> None:
    md = mdep({"experiment": {"final": False, "verdict": "Inconclusive", "results": []}}, drift=DRIFT,
              edge={"nodes": 1, "servingStable": ["e1"]}, serverless={"scaledToZero": False})
    events = [{"time": "2026-11-02T11:40:00Z", "type": "Normal", "reason": "CanaryStarted", "message": "started"}]
    body = detail(md, events, History().series(("ml", "fraud")), NOW)
    json.dumps(body, allow_nan=False)
    assert body["item"] == list_entry(viewmodel.list_item(md), NOW) and body["item"]["age"] == "120m"
    assert body["head"]["canary"]["weight"] == 25
    assert [r["metric"] for r in body["lastAnalysis"]] == ["error-rate", "latency-p99", "slower"]
    assert body["events"] == events and body["eventsError"] is None
    assert body["experiment"]["title"].startswith("experiment (interim): Inconclusive")
    assert body["edge"]["summary"] == "1 nodes" and body["serverless"]["rows"][0] == ["scaled to zero", "no"]
    assert body["drift"]["summary"] is None  # no drift conditions written yet
    plain = detail(mdep(None), None, {"weight": [], "metrics": []}, NOW)
    assert plain["experiment"] is None and plain["edge"] is None and plain["serverless"] is None
    assert plain["events"] is None and "events: not allowed to list events in this namespace" in plain["notes"]
