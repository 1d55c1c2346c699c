"""Shared tables of valid and invalid ModelDeployment specs with the message each must produce.

Used by the parser tests, by the CRD rule tests (evaluated with cel-python) and reusable by the
e2e admission tests, so the three agree on one wording.
"""

from __future__ import annotations

import copy
from typing import Any

BASE: dict[str, Any] = {"model": {"version": "v1", "uri": "s3://models/fraud/v1", "format": "sklearn"}}


def spec(**changes: Any) -> dict[str, Any]:
    """BASE with top-level keys replaced; `model_*` keys patch spec.model."""
    out = copy.deepcopy(BASE)
    for key, value in changes.items():
        if key.startswith("model_"):
            out["model"][key.removeprefix("model_")] = value
        else:
            out[key] = value
    return out


def canary(**fields: Any) -> dict[str, Any]:
    return spec(rollout={"canary": fields})


def metrics(*items: dict[str, Any]) -> dict[str, Any]:
    return canary(analysis={"metrics": list(items)})


GATEWAY = {"gatewayAPI": {"parentRefs": [{"name": "gw"}]}}
CONVERSIONS = {"name": "conversion", "successes": "sum(increase(conv{track=\"{{track}}\"}[{{window}}]))",
               "trials": "sum(increase(trials{track=\"{{track}}\"}[{{window}}]))"}


def experiment(canary_fields: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    return spec(rollout={"strategy": "Experiment", "canary": canary_fields or {"trafficRouting": GATEWAY},
                         "experiment": {"metrics": [CONVERSIONS], **fields}})


SLACK_TARGET = {"name": "ops", "type": "Slack", "urlKey": "slack"}
CLOUDEVENTS_TARGET = {"name": "events", "type": "CloudEvents", "urlKey": "cloudevents.url"}

# (id, spec, message expected in the error)
INVALID: list[tuple[str, dict[str, Any], str]] = [
    (
        "min-over-max",
        spec(autoscaling={"minReplicas": 5, "maxReplicas": 2}),
        "autoscaling.minReplicas must be <= maxReplicas",
    ),
    (
        "scale-to-zero-without-gateway",
        spec(autoscaling={"minReplicas": 0, "maxReplicas": 3}),
        "autoscaling.minReplicas 0 needs rollout.canary.trafficRouting.gatewayAPI",
    ),
    (
        "cpu-target-over-100",
        spec(autoscaling={"maxReplicas": 3, "target": 150}),
        "autoscaling.target of metric cpu is a percentage of the CPU request (1-100)",
    ),
    (
        "scale-to-zero-after-too-short",
        spec(autoscaling={"maxReplicas": 3, "scaleToZeroAfter": "5s"}),
        "autoscaling.scaleToZeroAfter must be at least 10s",
    ),
    (
        "scale-to-zero-after-no-unit",
        spec(autoscaling={"maxReplicas": 3, "scaleToZeroAfter": "20"}),
        "autoscaling.scaleToZeroAfter must be a duration with a unit",
    ),
    ("steps-descending", canary(steps=[50, 10]), "rollout.canary.steps must be strictly ascending"),
    ("steps-duplicate", canary(steps=[10, 10, 50]), "rollout.canary.steps must be strictly ascending"),
    ("steps-zero", canary(steps=[0, 50]), "rollout.canary.steps must each be between 1 and 99"),
    ("steps-hundred", canary(steps=[50, 100]), "rollout.canary.steps must each be between 1 and 99"),
    (
        "uri-scheme",
        spec(model_uri="ftp://host/model"),
        "model.uri must start with file://, http://, https://, s3://, gs:// or pvc://",
    ),
    ("uri-pvc-claim", spec(model_uri="pvc://Bad_Claim/x"), "model.uri pvc:// must name a PersistentVolumeClaim"),
    ("interval-no-unit", canary(interval="30"), "rollout.canary.interval must be a duration with a unit"),
    ("interval-short", canary(interval="3s"), "rollout.canary.interval must be at least 5s"),
    ("interval-long", canary(interval="200h"), "rollout.canary.interval must be at most 168h"),
    ("initial-delay-no-unit", canary(initialDelay="10"), "rollout.canary.initialDelay must be a duration with a unit"),
    ("deadline-short", canary(progressDeadline="10s"), "rollout.canary.progressDeadline must be at least 30s"),
    (
        "metric-no-threshold",
        metrics({"name": "error-rate"}),
        "a metric needs at least one of max, min or compareToStable",
    ),
    (
        "metric-query-and-template",
        metrics({"name": "x", "query": "up", "template": "error-rate", "max": 1}),
        "a metric may set query or template, not both",
    ),
    (
        "metric-custom-no-query",
        metrics({"name": "custom-x", "max": 1}),
        "a metric that is not built in (error-rate, latency-p99, prediction-shift, input-drift) needs a query or a "
        "template",
    ),
    ("metric-min-over-max", metrics({"name": "error-rate", "min": 5, "max": 1}), "a metric's min must be <= its max"),
    (
        "compare-empty",
        metrics({"name": "slow", "template": "latency-p99", "compareToStable": {}}),
        "compareToStable needs maxRatio or maxIncrease",
    ),
    (
        "routing-both",
        canary(trafficRouting={"replicas": {}, "gatewayAPI": {"parentRefs": [{"name": "gw"}]}}),
        "trafficRouting must set either replicas or gatewayAPI, not both",
    ),
    ("custom-no-image", spec(model_format="custom"), "runtime.image is required when model.format is custom"),
    (
        "reserved-env",
        spec(runtime={"env": [{"name": "MODELPILOT_TRACK", "value": "x"}]}),
        "runtime.env must not set variables the operator sets",
    ),
    (
        "toleration-exists-value",
        spec(accelerator={"vendor": "nvidia", "tolerations": [{"key": "k", "operator": "Exists", "value": "v"}]}),
        "toleration value must be empty when operator is Exists",
    ),
    (
        "shadow-replicas-router",
        canary(shadow={"percent": 10}),
        "rollout.canary shadow and match: gatewayAPI routing is required",
    ),
    (
        "match-replicas-router",
        canary(match=[{"headers": [{"name": "x-cohort", "value": "beta"}]}], trafficRouting={"replicas": {}}),
        "rollout.canary shadow and match: gatewayAPI routing is required",
    ),
    ("shadow-short", canary(shadow={"duration": "5s"}, trafficRouting=GATEWAY),
     "rollout.canary.shadow.duration must be at least 10s"),
    ("steps-empty-no-match", canary(steps=[]), "rollout.canary.steps may be empty only with match"),
    ("match-empty-condition", canary(match=[{}], trafficRouting=GATEWAY),
     "a match needs at least one header or a cookie"),
    (
        "match-cookie-and-cookie-header",
        canary(match=[{"cookie": {"name": "c", "value": "v"}, "headers": [{"name": "Cookie", "value": "x"}]}],
               trafficRouting=GATEWAY),
        "a match with a cookie may not also match the Cookie header",
    ),
    ("experiment-missing", spec(rollout={"strategy": "Experiment", "canary": {"trafficRouting": GATEWAY}}),
     "strategy Experiment needs rollout.experiment"),
    ("experiment-replicas-router", experiment({"trafficRouting": {"replicas": {}}}),
     "strategy Experiment: gatewayAPI routing is required"),
    ("experiment-with-match",
     experiment({"trafficRouting": GATEWAY, "match": [{"headers": [{"name": "x-cohort", "value": "beta"}]}]}),
     "rollout.canary.match applies to strategy Canary only"),
    ("experiment-proportion-no-trials", experiment(metrics=[{"name": "c", "successes": "up"}]),
     "a Proportion metric needs successes and trials"),
    ("experiment-mean-no-squares", experiment(metrics=[{"name": "m", "type": "Mean", "sum": "a", "count": "b"}]),
     "a Mean metric needs sum, count and sumOfSquares"),
    ("sticky-both", experiment(sticky={"header": "x-user", "cookie": "user"}),
     "sticky needs exactly one of header or cookie"),
    ("experiment-short", experiment(duration="5s"), "rollout.experiment.duration must be at least 10s"),
    ("drift-window-short", spec(monitoring={"drift": {"window": "5s"}}),
     "monitoring.drift.window must be at least 10s"),
    ("input-drift-query", metrics({"name": "input-drift", "query": "up", "max": 1}),
     "prediction-shift and input-drift compare distributions themselves"),
    ("prediction-shift-compare", metrics({"name": "prediction-shift", "compareToStable": {"maxRatio": 2}}),
     "prediction-shift and input-drift compare distributions themselves"),
    (
        "toleration-exists-every-taint",
        spec(accelerator={"vendor": "nvidia", "tolerations": [{"operator": "Exists"}]}),
        "toleration with operator Exists needs a key: without one it tolerates every taint",
    ),
    # target Edge: what does not apply to a fleet, and spec.edge's own rules
    ("edge-with-replicas", spec(target="Edge", replicas=3), "replicas does not apply to target Edge"),
    ("edge-with-autoscaling", spec(target="Edge", autoscaling={"maxReplicas": 3}),
     "autoscaling does not apply to target Edge"),
    ("edge-with-traffic-routing", spec(target="Edge", rollout={"canary": {"trafficRouting": GATEWAY}}),
     "rollout.canary.trafficRouting does not apply to target Edge"),
    ("edge-with-steps", spec(target="Edge", rollout={"canary": {"steps": [10, 50]}}),
     "rollout.canary.steps does not apply to target Edge"),
    ("edge-with-canary-interval", spec(target="Edge", rollout={"canary": {"interval": "10s"}}),
     "rollout.canary.interval does not apply to target Edge"),
    ("edge-without-target-edge", spec(edge={"rollout": {"batches": [10, 100]}}),
     "spec.edge applies to target Edge only"),
    ("edge-batches-descending", spec(target="Edge", edge={"rollout": {"batches": [50, 10]}}),
     "edge.rollout.batches must be strictly ascending"),
    ("edge-batch-over-100", spec(target="Edge", edge={"rollout": {"batches": [5, 150]}}),
     "edge.rollout.batches must each be between 1 and 100"),
    ("edge-max-unavailable-zero", spec(target="Edge", edge={"rollout": {"maxUnavailable": 0}}),
     "edge.rollout.maxUnavailable must be a node count (>= 1) or a percentage such as 25%"),
    ("edge-max-unavailable-not-a-percent", spec(target="Edge", edge={"rollout": {"maxUnavailable": "150%"}}),
     "edge.rollout.maxUnavailable must be a node count (>= 1) or a percentage such as 25%"),
    ("edge-empty-node-selector", spec(target="Edge", edge={"nodeSelector": {}}),
     "edge.nodeSelector must name at least one label"),
    ("edge-interval-too-short", spec(target="Edge", edge={"rollout": {"interval": "1s"}}),
     "edge.rollout.interval must be at least 5s"),
    # spec.notifications
    ("notifications-duplicate-names", spec(notifications=[SLACK_TARGET, {**CLOUDEVENTS_TARGET, "name": "ops"}]),
     "notifications names must be unique"),
    ("notifications-repeated-event", spec(notifications=[{**SLACK_TARGET, "events": ["Promoted", "Promoted"]}]),
     "notifications events must not repeat an event"),
    # spec.runtime.protocol and grpcPort
    ("grpc-on-http-port", spec(runtime={"protocol": "grpc", "grpcPort": 8080}),
     "runtime.grpcPort must differ from runtime.port when the protocol includes grpc"),
    ("both-http-on-grpc-default", spec(runtime={"protocol": "both", "port": 8081}),
     "runtime.grpcPort must differ from runtime.port when the protocol includes grpc"),
    ("both-same-explicit", spec(runtime={"protocol": "both", "port": 9000, "grpcPort": 9000}),
     "runtime.grpcPort must differ from runtime.port when the protocol includes grpc"),
]

# Invalid specs the *schema* (not CEL) rejects: (id, spec, JSON path of the bad field).
INVALID_SCHEMA: list[tuple[str, dict[str, Any], str]] = [
    ("format-unknown", spec(model_format="pytorch"), "spec.model.format"),
    ("gpu-negative", spec(accelerator={"vendor": "nvidia", "count": -1}), "spec.accelerator.count"),
    ("gpu-zero", spec(accelerator={"vendor": "nvidia", "count": 0}), "spec.accelerator.count"),
    ("vendor-unknown", spec(accelerator={"vendor": "acme"}), "spec.accelerator.vendor"),
    ("metric-name", metrics({"name": "Error_Rate", "max": 1}), "spec.rollout.canary.analysis.metrics[0].name"),
    ("secret-name", spec(model_storageSecretRef={"name": "Bad_Name"}), "spec.model.storageSecretRef.name"),
    ("quantity", spec(resources={"requests": {"cpu": "lots"}}), "spec.resources.requests.cpu"),
    ("replicas-negative", spec(replicas=-1), "spec.replicas"),
    ("scaling-metric", spec(autoscaling={"maxReplicas": 3, "metric": "gpu"}), "spec.autoscaling.metric"),
    ("min-replicas-negative", spec(autoscaling={"minReplicas": -1, "maxReplicas": 3}), "spec.autoscaling.minReplicas"),
    ("strategy", spec(rollout={"strategy": "BlueGreen"}), "spec.rollout.strategy"),
    ("shadow-percent", canary(shadow={"percent": 0}, trafficRouting=GATEWAY), "spec.rollout.canary.shadow.percent"),
    ("split-hundred", experiment(split=100), "spec.rollout.experiment.split"),
    ("confidence-one", experiment(confidence=1), "spec.rollout.experiment.confidence"),
    ("cookie-value-semicolon", canary(match=[{"cookie": {"name": "c", "value": "a;b"}}], trafficRouting=GATEWAY),
     "spec.rollout.canary.match[0].cookie.value"),
    (
        "inconclusive-policy",
        canary(analysis={"onInconclusive": "Ignore"}),
        "spec.rollout.canary.analysis.onInconclusive",
    ),
    ("notification-type", spec(notifications=[{**SLACK_TARGET, "type": "Teams"}]), "spec.notifications[0].type"),
    ("notification-event", spec(notifications=[{**SLACK_TARGET, "events": ["Deployed"]}]),
     "spec.notifications[0].events[0]"),
    ("notification-no-events", spec(notifications=[{**SLACK_TARGET, "events": []}]), "spec.notifications[0].events"),
    ("notification-name", spec(notifications=[{**SLACK_TARGET, "name": "Ops_1"}]), "spec.notifications[0].name"),
    ("notification-url-key", spec(notifications=[{**SLACK_TARGET, "urlKey": "a/b"}]),
     "spec.notifications[0].urlKey"),
    ("notification-url-inline", spec(notifications=[{**SLACK_TARGET, "url": "https://hooks.example.com/x"}]),
     "spec.notifications[0].url"),
    ("notifications-too-many", spec(notifications=[{**SLACK_TARGET, "name": f"t{i}"} for i in range(9)]),
     "spec.notifications"),
    ("protocol-unknown", spec(runtime={"protocol": "http2"}), "spec.runtime.protocol"),
]

VALID: list[tuple[str, dict[str, Any]]] = [
    ("minimal", spec()),
    (
        "everything",
        {
            "model": {
                "version": "2026-11-02",
                "uri": "s3://models/fraud/v7",
                "format": "xgboost",
                "storageSecretRef": {"name": "s3-creds"},
            },
            "runtime": {
                "image": "example.com/rt:1",
                "port": 9000,
                "env": [{"name": "LOG_LEVEL", "value": "debug"}],
                "args": ["--workers", "2"],
            },
            "replicas": 2,
            "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "2Gi", "cpu": 2}},
            "accelerator": {
                "vendor": "nvidia",
                "count": 2,
                "product": "NVIDIA-A100-SXM4-80GB",
                "resourceName": "nvidia.com/mig-1g.10gb",
                "nodeSelector": {"zone": "a"},
                "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}],
            },
            "autoscaling": {"minReplicas": 2, "maxReplicas": 10, "targetCPUUtilization": 70},
            "rollout": {
                "strategy": "Canary",
                "canary": {
                    "steps": [5, 20, 60, 99],
                    "interval": "1m",
                    "initialDelay": "0s",
                    "failureThreshold": 3,
                    "progressDeadline": "1h30m",
                    "analysis": {
                        "minRequests": 50,
                        "onInconclusive": "Pause",
                        "onProviderError": "Pause",
                        "maxProviderErrors": 2,
                        "metrics": [
                            {"name": "error-rate", "max": 1},
                            {"name": "latency-p99", "max": 500},
                            {
                                "name": "slower-than-stable",
                                "template": "latency-p99",
                                "compareToStable": {"maxRatio": 1.2},
                            },
                            {"name": "custom-x", "query": "sum(up{namespace={{namespace}}})", "min": 1, "max": 3},
                        ],
                    },
                    "trafficRouting": {
                        "gatewayAPI": {
                            "parentRefs": [{"name": "gw", "namespace": "infra", "sectionName": "https"}],
                            "hostnames": ["fraud.example.com"],
                        }
                    },
                },
            },
            "paused": True,
        },
    ),
    ("pvc", spec(model_uri="pvc://models-claim/fraud/v1")),
    ("pvc-no-path", spec(model_uri="pvc://models-claim")),
    ("custom-with-image", spec(model_format="custom", runtime={"image": "example.com/custom:2"})),
    ("routing-replicas", canary(trafficRouting={"replicas": {}})),
    ("amd", spec(accelerator={"vendor": "amd"})),
    ("durations", canary(interval="5s", initialDelay="1h30m", progressDeadline="500ms30s")),
    ("shadow", canary(shadow={"percent": 20, "duration": "2m", "maxPredictionShift": 0.2}, trafficRouting=GATEWAY)),
    ("segment-only", canary(steps=[], match=[{"headers": [{"name": "x-cohort", "value": "beta"}]},
                                             {"cookie": {"name": "cohort", "value": "beta"}}],
                            matchDuration="30s", trafficRouting=GATEWAY)),
    ("shadow-and-segment", canary(shadow={"percent": 50}, match=[{"headers": [
        {"name": "x-cohort", "value": "be.*", "type": "RegularExpression"}]}], trafficRouting=GATEWAY)),
    ("experiment", experiment(split=30, sticky={"cookie": "user"}, duration="2h", minSamples=500,
                              confidence=0.99, onConclusion="Promote",
                              metrics=[CONVERSIONS, {"name": "basket", "type": "Mean", "sum": "a", "count": "b",
                                                     "sumOfSquares": "c", "higherIsBetter": True}])),
    ("experiment-with-shadow", experiment({"trafficRouting": GATEWAY, "shadow": {"percent": 10}})),
    ("prediction-shift-metric", metrics({"name": "prediction-shift", "max": 0.2})),
    ("drift-monitoring", spec(monitoring={"drift": {
        "window": "20s", "minSamples": 50, "maxFeatures": 10, "onDrift": "Pause",
        "thresholds": {"featurePSI": 0.25, "predictionPSI": 0.3, "accuracyDrop": 0.1, "errorIncrease": 0.5}}})),
    ("input-drift-metric", metrics({"name": "input-drift", "max": 0.2})),
    ("scale-to-zero", spec(autoscaling={"minReplicas": 0, "maxReplicas": 4, "metric": "requests", "target": 5,
                                        "scaleToZeroAfter": "20s"}, rollout={"canary": {"trafficRouting": GATEWAY}})),
    ("concurrency", spec(autoscaling={"minReplicas": 1, "maxReplicas": 4, "metric": "concurrency", "target": 2})),
    ("cpu-target", spec(autoscaling={"maxReplicas": 4, "metric": "cpu", "target": 60})),
    ("edge-defaults", spec(target="Edge", model_format="onnx", model_uri="s3://models/fraud/v1/model.onnx")),
    (
        "edge-everything",
        spec(target="Edge", resources={"requests": {"cpu": "100m", "memory": "128Mi"}},
             edge={"nodeSelector": {"node-role.kubernetes.io/edge": "", "kubernetes.io/arch": "arm64"},
                   "tolerations": [{"key": "site", "operator": "Equal", "value": "store", "effect": "NoSchedule"}],
                   "rollout": {"batches": [1, 10, 50, 100], "interval": "2m", "maxUnavailable": 2, "minNodes": 3}},
             rollout={"canary": {"failureThreshold": 1, "analysis": {"minRequests": 20}}}),
    ),
    ("edge-max-unavailable-percent", spec(target="Edge", edge={"rollout": {"maxUnavailable": "100%"}})),
    ("notifications", spec(notifications=[{**SLACK_TARGET, "events": ["Promoted", "RolledBack", "Aborted"]},
                                          CLOUDEVENTS_TARGET])),
    ("notifications-eight", spec(notifications=[{**CLOUDEVENTS_TARGET, "name": f"t{i}"} for i in range(8)])),
    # spec.runtime.protocol and grpcPort
    ("protocol-rest", spec(runtime={"protocol": "rest"})),
    ("protocol-both", spec(runtime={"protocol": "both"})),
    ("grpc-own-port", spec(runtime={"protocol": "grpc", "grpcPort": 9000})),
    ("rest-same-ports", spec(runtime={"protocol": "rest", "port": 9000, "grpcPort": 9000})),  # grpcPort unused
    ("grpc-moved-http", spec(runtime={"protocol": "grpc", "port": 8000})),
]
