"""The canary engine end to end: real model servers (the runtime, started from the pod templates the
operator generated), a real Prometheus scraping them, traffic split by what the API server says,
and the operator deciding from real PromQL answers.

Each test has its own namespace, its own operator process (so it can point it at its own
Prometheus, and kill it) and its own world (bridge + Prometheus + load generator).
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from kubernetes import client

from modelpilot.resources.labels import ANNOTATION_ACTION, ANNOTATION_WEIGHT, LABEL_TRACK, LABEL_VERSION
from tests.e2e import mdep
from tests.e2e.canary import INTERVAL, NAME, SCRAPE, Env, start_v1
from tests.e2e.support import wait_for

# ------------------------------------------------------------------------------------ acceptance


def test_good_version_promoted_through_every_step(env: Env) -> None:
    start_v1(env)
    env.set_version("v2", env.model("good2"))
    weights_seen: set[int] = set()
    canary_pods_seen: dict[int, int] = {}

    def progressed(canary: dict[str, Any]) -> bool:
        weight = int(canary.get("weight") or 0)
        weights_seen.add(weight)
        deployment = env.deployment(f"{NAME}-canary")
        sized_for = (deployment.metadata.annotations or {}).get(ANNOTATION_WEIGHT)
        if sized_for and sized_for != "0":
            canary_pods_seen[int(sized_for)] = deployment.spec.replicas
        return canary.get("state") == "Promoting"

    env.wait_canary(progressed, "promotion")
    promoted = env.wait_stable("v2")
    assert {20, 50} <= weights_seen, weights_seen
    # The replicas router: ceil(stable x w / (100 - w)) canary pods, stable never scaled down.
    assert canary_pods_seen.get(20) == 1 and canary_pods_seen.get(50) == 2, canary_pods_seen
    assert env.deployment(NAME).spec.replicas == 2
    assert promoted["status"]["stable"]["version"] == "v2"
    assert env.deployment(f"{NAME}-canary").spec.replicas == 0
    template = env.deployment(NAME).spec.template
    assert template.metadata.labels[LABEL_VERSION] == "v2"
    reasons = env.wait_reasons("Promoting", "Promoted")
    assert reasons.count("StepAdvanced") == 1, reasons
    # Traffic ends 100% on stable (v2), and the stable pods really serve the new model.
    env.world.wait_serving(stable=2, canary=0)
    env.world.wait_split({"stable": 1.0}, tolerance=0.0, seconds=4)
    versions = {p.labels.get(LABEL_VERSION) for p in env.world.serving()}
    assert versions == {"v2"}


def test_faulty_version_rolled_back_by_error_rate(env: Env) -> None:
    start_v1(env)
    env.set_version("v2", env.model("failing", error_ratio=0.5))
    canary = env.wait_canary(lambda c: c.get("state") == "RolledBack", "rollback")
    obj = env.get()
    degraded = mdep.condition(obj, "Degraded")
    assert degraded and degraded["status"] == "True"
    assert "error-rate" in degraded["message"] and "(limit <= 1)" in degraded["message"]
    ready = mdep.condition(obj, "Ready")
    assert ready and ready["status"] == "False" and ready["reason"] == "RolledBack"
    assert canary["failedChecks"] == 2 and canary["weight"] == 0
    fails = [a for a in canary["analyses"] if a["metric"] == "error-rate" and a["verdict"] == "Fail"]
    assert len(fails) == 2 and all(a["value"] > 1 for a in fails), canary["analyses"]
    # Rolled back within interval x failureThreshold + two scrape intervals of the first bad analysis.
    first_bad = dt.datetime.fromisoformat(fails[0]["time"].replace("Z", "+00:00"))
    env.wait_reasons("RolledBack")
    rolled = [e for e in env.events() if e.reason == "RolledBack"]
    assert "error-rate" in rolled[0].message
    rolled_at = rolled[0].first_timestamp
    assert (rolled_at - first_bad).total_seconds() <= INTERVAL * 2 + 2 * SCRAPE + 1  # +1: timestamps in seconds
    # Stable kept serving throughout and takes all traffic again.
    assert obj["status"]["stable"]["version"] == "v1"
    assert env.deployment(f"{NAME}-canary").spec.replicas == 0
    env.world.wait_serving(stable=2, canary=0)
    env.world.wait_split({"stable": 1.0}, tolerance=0.01, seconds=4)
    assert env.world.loadgen.error_ratio(60, "stable") in (0.0, None)


def test_latency_regressions_rolled_back(env: Env) -> None:
    """Absolute: slower than latency-p99.max. Relative: under the limit but slower than stable."""
    # The runtime predicts one request at a time: keep the slow canaries below their capacity.
    env.world.loadgen.set_rate(15)
    # The runtime predicts one request at a time, so a slow model also answers fewer requests.
    start_v1(env, min_requests=3, metrics=[{"name": "error-rate", "max": 1}, {"name": "latency-p99", "max": 250},
                           {"name": "slower-than-stable", "template": "latency-p99",
                            "compareToStable": {"maxRatio": 3}}])
    env.set_version("v2", env.model("slow", delay_seconds=0.5))
    canary = env.wait_canary(lambda c: c.get("state") == "RolledBack", "rollback of the slow version")
    failing = {a["metric"] for a in canary["analyses"] if a["verdict"] == "Fail"}
    assert "latency-p99" in failing, canary["analyses"]

    # Under the absolute limit (raised for this version, so CPU contention on the test machine
    # cannot make it fail), but several times slower than stable.
    mdep.patch_spec(env.custom, env.namespace, NAME, {
        "model": {"version": "v3", "uri": env.model("slow", delay_seconds=0.1)},
        "rollout": {"canary": {"analysis": {"metrics": [
            {"name": "error-rate", "max": 1}, {"name": "latency-p99", "max": 1000},
            {"name": "slower-than-stable", "template": "latency-p99", "compareToStable": {"maxRatio": 2}}]}}}})
    canary = env.wait_canary(lambda c: c.get("version") == "v3" and c.get("state") == "RolledBack",
                             "rollback of the relatively slow version")
    v3 = [a for a in canary["analyses"] if a["time"] >= canary["startedAt"]]
    assert {a["metric"] for a in v3 if a["verdict"] == "Fail"} == {"slower-than-stable"}, v3
    assert all(a["verdict"] == "Pass" for a in v3 if a["metric"] == "latency-p99"), v3


def test_canary_never_ready_rolled_back_at_deadline(env: Env) -> None:
    start_v1(env, progress_deadline="30s")
    stable_before = env.deployment(NAME)
    env.set_version("v2", env.model("corrupt"))
    canary = env.wait_canary(lambda c: c.get("state") == "RolledBack", "rollback at the deadline", timeout=90)
    assert canary["reason"] == "ProgressDeadlineExceeded" and canary["weight"] == 0
    # KWOK marks a pod Ready for the instant before the harness's readiness probe overrides it,
    # so the operator may have seen the canary Ready once (step 0); it never analysed or advanced.
    assert canary["step"] <= 0 and not canary.get("analyses"), canary
    assert "Ready within progressDeadline" in canary["message"]
    assert "StepAdvanced" not in env.reasons()
    stable_after = env.deployment(NAME)
    assert stable_after.metadata.generation == stable_before.metadata.generation  # untouched
    assert env.get()["status"]["stable"]["version"] == "v1"


def test_no_traffic_is_inconclusive_then_deadline(env: Env) -> None:
    start_v1(env, progress_deadline="30s")
    env.world.loadgen.pause()
    env.set_version("v2", env.model("good2"))
    canary = env.wait_canary(lambda c: c.get("state") == "RolledBack", "deadline after inconclusive analyses",
                             timeout=90)
    verdicts = {a["verdict"] for a in canary["analyses"]}
    assert verdicts == {"Inconclusive"}, canary["analyses"]
    assert canary["step"] == 0 and canary["failedChecks"] == 0
    assert canary["reason"] == "ProgressDeadlineExceeded"
    assert "Promoting" not in env.reasons()


def test_no_traffic_with_pause_policy_waits_for_action(env: Env) -> None:
    start_v1(env, onInconclusive="Pause")
    env.world.loadgen.pause()
    env.set_version("v2", env.model("good2"))
    paused = env.wait_canary(lambda c: c.get("state") == "Paused", "policy pause")
    assert paused["pausedBy"] == "inconclusive"
    ready = mdep.condition(env.get(), "Ready")
    assert ready and ready["reason"] == "Paused"
    time.sleep(INTERVAL * 2)
    assert env.canary()["state"] == "Paused"  # waits: no analyses, no deadline
    env.annotate("abort")
    aborted = env.wait_canary(lambda c: c.get("state") == "RolledBack", "abort")
    assert aborted["reason"] == "Aborted"
    wait_for(lambda: ANNOTATION_ACTION not in (env.get()["metadata"].get("annotations") or {}),
             timeout=20, what="the action annotation consumed")


def test_prometheus_down_counts_provider_errors(env: Env) -> None:
    start_v1(env, maxProviderErrors=3, onProviderError="Rollback")
    env.set_version("v2", env.model("good2"))
    env.wait_canary(lambda c: c.get("step", -1) >= 0, "canary Ready")
    env.world.prometheus.stop()
    errored = env.wait_canary(lambda c: c.get("providerErrors", 0) >= 2, "two provider errors")
    assert errored["step"] == 0 and errored["state"] == "Progressing"
    assert all(a["verdict"] == "Error" for a in errored["analyses"][-2:])
    env.world.prometheus.start()  # back before maxProviderErrors: analysis continues
    resumed = env.wait_canary(lambda c: (c.get("providerErrors", 1) == 0 and c.get("step", 0) >= 1)
                              or c.get("state") == "Promoting", "analysis resumed and passed")
    assert resumed["failedChecks"] == 0
    env.wait_stable("v2")

    env.set_version("v3", env.model("good"))
    env.wait_canary(lambda c: c.get("version") == "v3" and c.get("step", -1) >= 0, "v3 canary Ready")
    env.world.prometheus.stop()
    gone = env.wait_canary(lambda c: c.get("version") == "v3" and c.get("state") == "RolledBack",
                           "rollback after maxProviderErrors")
    assert gone["reason"] == "ProviderErrors" and gone["providerErrors"] == 3
    assert "Promoting" not in [e.reason for e in env.events() if "v3" in (e.message or "")]
    env.world.prometheus.start()


def test_newer_revision_restarts_and_revert_ends_without_failure(env: Env) -> None:
    # A threshold v2 cannot reach before v3 replaces it, however slowly this machine runs the test.
    start_v1(env, steps=(20, 40, 60), failure_threshold=100)
    v1_uri = env.get()["spec"]["model"]["uri"]
    env.set_version("v2", env.model("failing", error_ratio=0.5))
    v2 = env.wait_canary(lambda c: c.get("failedChecks", 0) >= 1, "a failed check on v2")
    env.set_version("v3", env.model("good2"))
    restarted = env.wait_canary(lambda c: c.get("version") == "v3", "restart on v3")
    # A restart starts over: its own start time, no failed checks carried over from v2.
    assert restarted["startedAt"] >= v2["startedAt"] and restarted["failedChecks"] == 0
    env.wait_reasons("CanaryRestarted")
    env.wait_canary(lambda c: c.get("version") == "v3" and c.get("step", -1) >= 1, "v3 past its first step")

    env.set_version("v1", v1_uri)  # back to the stable revision
    obj = wait_for(lambda: (o := env.get()) and not (o.get("status") or {}).get("canary") and o, timeout=30,
                   what="canary ended")
    assert obj["status"]["phase"] in ("Ready", "Progressing")
    assert "RolledBack" not in env.wait_reasons("CanaryCancelled")
    degraded = mdep.condition(env.get(), "Degraded")
    assert degraded and degraded["status"] == "False"
    assert env.deployment(f"{NAME}-canary").spec.replicas == 0


def test_operator_killed_mid_canary_resumes_without_double_step(env: Env) -> None:
    start_v1(env, steps=(20, 40, 60))
    env.set_version("v2", env.model("good2"))
    before = env.wait_canary(lambda c: c.get("step", -1) >= 1, "step 1")
    # The step's event follows its status write: a kill between the two would lose the event
    # (events are best effort), and the count below is about steps, not about that window.
    env.wait_reasons("StepAdvanced")
    env.operator.kill()
    frozen = env.canary()
    time.sleep(INTERVAL * 2)  # nothing moves while the operator is down
    assert env.canary() == frozen
    env.operator.start()
    after = env.wait_canary(lambda c: c.get("step", -1) >= frozen["step"] + 1 or c.get("state") == "Promoting",
                            "the next step after the restart")
    assert after["startedAt"] == before["startedAt"] and after["failedChecks"] == frozen["failedChecks"]
    env.wait_stable("v2")
    advanced = [e for e in env.events() if e.reason == "StepAdvanced"]
    assert len(advanced) == 2, [e.message for e in advanced]  # steps 20->40->60: exactly two advances


def test_manual_actions_and_spec_paused(env: Env) -> None:
    start_v1(env, steps=(20, 40, 60))
    env.set_version("v2", env.model("good2"))
    env.wait_canary(lambda c: c.get("step", -1) >= 0, "canary Ready")
    mdep.patch_spec(env.custom, env.namespace, NAME, {"paused": True})
    paused = env.wait_canary(lambda c: c.get("state") == "Paused", "spec.paused")
    time.sleep(INTERVAL * 2)
    assert env.canary()["step"] == paused["step"] and env.canary()["state"] == "Paused"
    mdep.patch_spec(env.custom, env.namespace, NAME, {"paused": False})
    env.wait_canary(lambda c: c.get("state") == "Progressing", "resumed")

    env.annotate("abort")
    env.wait_canary(lambda c: c.get("state") == "RolledBack" and c.get("reason") == "Aborted", "abort")
    env.annotate("retry")
    env.wait_canary(lambda c: c.get("state") == "Progressing" and c.get("step", -1) >= 0, "retry")
    env.wait_reasons("CanaryRetried")
    env.annotate("promote")
    env.wait_stable("v2")
    env.wait_reasons("Promoted")
    annotations = env.get()["metadata"].get("annotations") or {}
    assert ANNOTATION_ACTION not in annotations


def test_gateway_api_weights_follow_steps_exactly(env: Env) -> None:
    # A custom PromQL template beside the built-ins: placeholders filled with validated values.
    custom_errors = ('sum(rate(modelpilot_requests_total{namespace="{{namespace}}", model_deployment="{{name}}", '
                     'track="{{track}}", code=~"5.."}[{{window}}])) or vector(0)')
    start_v1(env, steps=(10, 30, 60), gateway=f"{NAME}.{env.namespace}.test",
             metrics=[{"name": "error-rate", "max": 1},
                      {"name": "errors-per-second", "query": custom_errors, "max": 0.5}])
    routes = client.CustomObjectsApi(env.custom.api_client)

    def weights() -> tuple[int, int] | None:
        try:
            route = routes.get_namespaced_custom_object("gateway.networking.k8s.io", "v1", env.namespace,
                                                        "httproutes", NAME)
        except client.exceptions.ApiException:
            return None
        refs = route["spec"]["rules"][0]["backendRefs"]
        return refs[0]["weight"], refs[1]["weight"]

    assert weights() == (100, 0)
    # The Service <name> selects stable only in this mode.
    selector = env.core.read_namespaced_service(NAME, env.namespace).spec.selector
    assert selector.get(LABEL_TRACK) == "stable"
    env.set_version("v2", env.model("good2"))
    seen: list[tuple[int, int]] = []

    def observe() -> bool:
        current = weights()
        if current and (not seen or seen[-1] != current):
            seen.append(current)
        obj = env.get()
        # The route is read before the status: promotion counts once the route is back at 100/0 too.
        return (obj.get("status") or {}).get("stable", {}).get("version") == "v2" and \
            not (obj.get("status") or {}).get("canary") and current == (100, 0)

    wait_for(observe, timeout=150, interval=0.2, what="promotion through the HTTPRoute")
    assert seen[0] == (100, 0) and seen[-1] == (100, 0)
    assert [w for w in seen if w != (100, 0)] == [(90, 10), (70, 30), (40, 60)], seen
    # The load generator followed the route, and the custom query measured the canary.
    canary_requests = env.world.loadgen.totals().get("canary", {}).get("sent", 0)
    assert canary_requests > 0
    env.wait_reasons("Promoting")
    passed = [e.message for e in env.events() if e.reason in ("StepAdvanced", "Promoting")]
    assert passed and all("errors-per-second=0 (limit <= 0.5)" in m for m in passed), passed
