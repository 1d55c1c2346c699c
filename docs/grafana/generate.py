"""Writes modelpilot.json, a Grafana dashboard of the runtime's and the operator's metrics
(`--check`: fail when it is stale).

    python docs/grafana/generate.py           # regenerate
    python docs/grafana/generate.py --check   # exit 1 when modelpilot.json differs

tests/unit/test_grafana.py checks that it is current, that every PromQL expression parses and that
it names only metrics the project exports.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OUTPUT = HERE / "modelpilot.json"

# One ModelDeployment, chosen by the dashboard's variables. The runtime's series carry
# model_deployment (Prometheus adds namespace at scrape); the operator's carry namespace and name.
SERVING = 'namespace="$namespace", model_deployment="$model"'
OBJECT = 'namespace="$namespace", name="$model"'
RATE = "$__rate_interval"


def _requests(extra: str = "") -> str:
    return f"sum by (track) (rate(modelpilot_requests_total{{{SERVING}{extra}}}[{RATE}]))"


ERRORS = _requests(', code=~"5.."')

# (title, unit, legend, expressions, panel type); each row's panels share its width.
ROWS: list[tuple[str, list[tuple[str, str, str, list[str], str]]]] = [
    ("Serving, by track (runtime)", [
        ("Request rate", "reqps", "{{track}}", [_requests()], "timeseries"),
        ("Error rate (5xx)", "percent", "{{track}}",
         [f"100 * ({ERRORS} or {_requests()} * 0) / {_requests()}"], "timeseries"),
        ("Latency p99", "ms", "{{track}}",
         [f"1000 * histogram_quantile(0.99, sum by (track, le) "
          f"(rate(modelpilot_request_duration_seconds_bucket{{{SERVING}}}[{RATE}])))"], "timeseries"),
        ("Requests in flight", "short", "{{track}}",
         [f"sum by (track) (modelpilot_requests_in_flight{{{SERVING}}})"], "timeseries"),
        ("Pods with the model ready", "short", "{{track}} {{version}}",
         [f"sum by (track, version) (modelpilot_model_ready{{{SERVING}}})"], "timeseries"),
    ]),
    ("Rollout (operator)", [
        ("Canary weight", "percent", "weight", [f"modelpilot_canary_weight_percent{{{OBJECT}}}"], "timeseries"),
        ("Canary state", "short", "{{state}}", [f"modelpilot_canary_state{{{OBJECT}}} == 1"], "state-timeline"),
        ("Analysis values (last measured)", "short", "{{metric}}",
         [f"modelpilot_analysis_value{{{OBJECT}}}"], "timeseries"),
        ("Analysis verdicts (per interval)", "short", "{{metric}} {{verdict}}",
         [f"sum by (metric, verdict) (increase(modelpilot_analysis_measurements_total{{{OBJECT}}}[{RATE}]))"],
         "timeseries"),
        ("Promotions and rollbacks", "short", "{{event}}",
         [f'label_replace(increase(modelpilot_{event}_total{{{OBJECT}}}[$__range]), "event", "{event}", "", "")'
          for event in ("promotions", "rollbacks")], "stat"),
    ]),
    ("Drift and scale to zero", [
        ("Drift detected", "short", "{{condition}}", [f"modelpilot_drift_detected{{{OBJECT}}}"], "state-timeline"),
        ("Drift PSI (stable)", "short", "{{of}}", [f"modelpilot_drift_psi{{{OBJECT}}}"], "timeseries"),
        ("Scaled to zero", "short", "at zero", [f"modelpilot_serverless_scaled_to_zero{{{OBJECT}}}"],
         "state-timeline"),
        ("Cold starts", "s", "{{statistic}}", [f"modelpilot_serverless_cold_start_seconds{{{OBJECT}}}"],
         "timeseries"),
    ]),
    ("Operator", [
        ("Reconciles", "ops", "{{result}}", [f"sum by (result) (rate(modelpilot_reconciles_total[{RATE}]))"],
         "timeseries"),
        ("Reconcile duration p99", "s", "p99",
         [f"histogram_quantile(0.99, sum by (le) (rate(modelpilot_reconcile_duration_seconds_bucket[{RATE}])))"],
         "timeseries"),
        ("API writes", "ops", "{{write}}", [f"sum by (write) (rate(modelpilot_api_writes_total[{RATE}]))"],
         "timeseries"),
        ("Analysis lateness p99", "s", "p99",
         [f"histogram_quantile(0.99, sum by (le) (rate(modelpilot_analysis_lateness_seconds_bucket[{RATE}])))"],
         "timeseries"),
    ]),
]

# Template variables: label_values() over one metric each (Grafana's Prometheus query syntax).
VARIABLES = [
    ("namespace", "label_values(modelpilot_requests_total, namespace)"),
    ("model", 'label_values(modelpilot_requests_total{namespace="$namespace"}, model_deployment)'),
]

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


def _panel(panel_id: int, title: str, unit: str, legend: str, exprs: list[str], kind: str,
           x: int, y: int, width: int) -> dict[str, Any]:
    return {
        "id": panel_id, "type": kind, "title": title, "datasource": DATASOURCE,
        "gridPos": {"h": 8, "w": width, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True}},
        "targets": [{"refId": chr(ord("A") + i), "datasource": DATASOURCE, "expr": expr, "legendFormat": legend}
                    for i, expr in enumerate(exprs)],
    }


def _variable(name: str, query: str) -> dict[str, Any]:
    return {"name": name, "label": name, "type": "query", "datasource": DATASOURCE, "refresh": 2,
            "query": {"query": query, "refId": f"{name}-values"}, "definition": query, "sort": 1,
            "includeAll": False, "multi": False, "current": {}}


def render() -> dict[str, Any]:
    panels: list[dict[str, Any]] = []
    y, panel_id = 0, 1
    for row_title, row in ROWS:
        panels.append({"id": panel_id, "type": "row", "title": row_title, "collapsed": False,
                       "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []})
        panel_id, y = panel_id + 1, y + 1
        width = 24 // len(row) if len(row) <= 4 else 8
        x = 0
        for title, unit, legend, exprs, kind in row:
            if x + width > 24:
                x, y = 0, y + 8
            panels.append(_panel(panel_id, title, unit, legend, exprs, kind, x, y, width))
            panel_id, x = panel_id + 1, x + width
        y += 8
    datasource = {"name": "datasource", "label": "Prometheus", "type": "datasource", "query": "prometheus",
                  "current": {}, "hide": 0}
    return {
        "title": "modelpilot", "uid": "modelpilot", "tags": ["modelpilot", "mlops"], "editable": True,
        "schemaVersion": 39, "version": 1, "refresh": "10s", "time": {"from": "now-1h", "to": "now"},
        "timezone": "browser",
        "templating": {"list": [datasource, *(_variable(n, q) for n, q in VARIABLES)]},
        "annotations": {"list": []},
        "panels": panels,
    }


def text() -> str:
    return json.dumps(render(), indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when modelpilot.json is stale")
    args = parser.parse_args(argv)
    if args.check:
        if not OUTPUT.exists() or OUTPUT.read_text() != text():
            print(f"{OUTPUT} is stale: run python docs/grafana/generate.py", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text())
    print(f"wrote {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
