"""The operator's side of BatchPrediction (pure): the Job and CronJob builders, the run status
from a Job and its pods, and the plan, driven like the rollout machine with an injected clock."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from modelpilot.api.batch import parse_batch_spec
from modelpilot.batch import contract
from modelpilot.control.batch_plan import BatchObserved, plan_batch
from modelpilot.control.batch_status import count_indexes, indexes
from modelpilot.resources import BuildSettings
from modelpilot.resources.batchjob import ANNOTATION_MODEL, BatchRun, build_cronjob, build_job, run_config
from modelpilot.resources.labels import LABEL_BATCH, LABEL_NAME
from tests.unit.batch_cases import INLINE, batch_spec

NOW = dt.datetime(2026, 12, 3, 10, 0, tzinfo=dt.UTC)
SETTINGS = BuildSettings()
Obj = dict[str, Any]


def bp(spec: Obj | None = None, status: Obj | None = None, name: str = "score") -> Obj:
    return {"apiVersion": "modelpilot.io/v1alpha1", "kind": "BatchPrediction",
            "metadata": {"name": name, "namespace": "ml", "uid": "bp-uid", "generation": 1},
            "spec": spec if spec is not None else batch_spec(), "status": status or {}}


def model_deployment(stable: str | None = "v1", spec_version: str = "v1") -> Obj:
    status: Obj = {}
    if stable is not None:
        status["stable"] = {"version": stable, "revision": f"rev-{stable}", "template": {
            "model": {"version": stable, "uri": f"s3://models/iris/{stable}", "format": "sklearn"}}}
    return {"apiVersion": "modelpilot.io/v1alpha1", "kind": "ModelDeployment",
            "metadata": {"name": "iris", "namespace": "ml", "uid": "md-uid"},
            "spec": {"model": {"version": spec_version, "uri": f"s3://models/iris/{spec_version}",
                               "format": "sklearn"}}, "status": status}


def job(owner_uid: str = "bp-uid", *, completions: int = 4, status: Obj | None = None, name: str = "score",
        model: Obj | None = None, owner_kind: str = "BatchPrediction", created: str = "2026-12-03T10:00:00Z") -> Obj:
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "namespace": "ml", "uid": f"job-{name}", "creationTimestamp": created,
                         "labels": {LABEL_BATCH: "score"},
                         "annotations": {ANNOTATION_MODEL: json.dumps(model or {"name": "iris", "version": "v1"})},
                         "ownerReferences": [{"kind": owner_kind, "name": "score", "uid": owner_uid,
                                              "controller": True}]},
            "spec": {"completions": completions}, "status": status or {}}


def pod(index: int, phase: str, *, report: Obj | None = None, name: str | None = None, job_name: str = "score",
        exit_code: int = 0) -> Obj:
    terminated: Obj = {"exitCode": exit_code, "finishedAt": "2026-12-03T10:01:00Z",
                       "reason": "Completed" if exit_code == 0 else "Error"}
    if report is not None:
        terminated["message"] = json.dumps(report)
    statuses = [{"name": "batch", "state": {"terminated": terminated}}] if phase in ("Succeeded", "Failed") else []
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name or f"{job_name}-{index}-abcde", "namespace": "ml",
                         "annotations": {contract.COMPLETION_INDEX_ANNOTATION: str(index)},
                         "labels": {LABEL_BATCH: "score"},
                         "ownerReferences": [{"kind": "Job", "name": job_name, "uid": f"job-{job_name}",
                                              "controller": True}]},
            "status": {"phase": phase, "containerStatuses": statuses}}


def report(shard: int, rows_in: int, rows_out: int, rows_failed: int = 0, **extra: Any) -> Obj:
    return {"shard": shard, "rowsIn": rows_in, "rowsOut": rows_out, "rowsFailed": rows_failed, **extra}


def applied(status: Obj, patch: Obj | None) -> Obj:
    """`status` with a merge patch applied (what the API server would store)."""
    out = dict(status)
    for key, value in (patch or {}).items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = applied(out[key], value)
        else:
            out[key] = value
    return out


# ------------------------------------------------------------------------------------ builders


def _run(spec: Obj) -> BatchRun:
    from modelpilot.api.batch import ResolvedModel
    from modelpilot.api.models import ModelSource
    source = ModelSource(version="v1", uri="s3://models/iris/v1", format="sklearn", storageSecretRef={"name": "models"})
    return BatchRun("score", "ml", {"apiVersion": "modelpilot.io/v1alpha1", "kind": "BatchPrediction",
                                    "name": "score", "uid": "bp-uid"}, parse_batch_spec(spec),
                    ResolvedModel(name="iris", version="v1", revision="rev1", uri=source.uri, format="sklearn"), source)


def test_job_is_indexed_with_per_shard_retries_and_a_failure_policy() -> None:
    built = build_job(_run(batch_spec(shards=8, parallelism=3, backoffLimitPerShard=2, ttlSecondsAfterFinished=60)),
                      SETTINGS)
    spec = built["spec"]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"], spec["backoffLimitPerIndex"],
            spec["ttlSecondsAfterFinished"]) == ("Indexed", 8, 3, 2, 60)
    rules = {r["onExitCodes"]["values"][0]: r["action"] for r in spec["podFailurePolicy"]["rules"]}
    assert rules == {contract.EXIT_INVALID_RUN: "FailJob", contract.EXIT_SHARD_FAILED: "FailIndex"}
    pod_spec = spec["template"]["spec"]
    assert pod_spec["restartPolicy"] == "Never" and pod_spec["automountServiceAccountToken"] is False
    assert built["metadata"]["ownerReferences"][0]["uid"] == "bp-uid"
    labels = spec["template"]["metadata"]["labels"]
    assert labels[LABEL_BATCH] == "score" and LABEL_NAME not in labels  # never a serving pod


def test_job_pods_are_the_serving_pods_with_the_batch_container() -> None:
    pod_spec = build_job(_run(batch_spec(storageSecretRef={"name": "data"})), SETTINGS)["spec"]["template"]["spec"]
    (fetch,), (batch,) = pod_spec["initContainers"], pod_spec["containers"]
    assert fetch["args"][:2] == ["fetch", "s3://models/iris/v1"]
    assert {e["valueFrom"]["secretKeyRef"]["name"] for e in fetch["env"] if "valueFrom" in e} == {"models"}
    assert batch["args"] == ["batch", "--model-dir", "/mnt/models", "--termination-log", contract.TERMINATION_LOG]
    assert batch["terminationMessagePath"] == contract.TERMINATION_LOG and "ports" not in batch
    assert batch["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod_spec["securityContext"]["runAsNonRoot"] is True
    secrets = {e["valueFrom"]["secretKeyRef"]["name"] for e in batch["env"] if "secretKeyRef" in e.get("valueFrom", {})}
    assert secrets == {"data"}  # the data credentials, never the model's
    env = {e["name"]: e for e in batch["env"]}
    assert env[contract.RUN_ID_ENV]["valueFrom"]["fieldRef"]["fieldPath"].endswith(f"['{contract.RUN_ID_LABEL}']")
    config = contract.RunConfig.model_validate_json(env[contract.CONFIG_ENV]["value"])
    assert (config.shards, config.model.version, config.model.revision, config.output.mode) == (4, "v1", "rev1",
                                                                                               "failIfExists")


def test_pvc_data_is_mounted_and_rewritten() -> None:
    run = _run(batch_spec(input={"uri": "pvc://lake/in", "format": "csv"}, output={"uri": "pvc://scores/out"}))
    pod_spec = build_job(run, SETTINGS)["spec"]["template"]["spec"]
    claims = {v["persistentVolumeClaim"]["claimName"]: v["persistentVolumeClaim"]["readOnly"]
              for v in pod_spec["volumes"] if "persistentVolumeClaim" in v}
    assert claims == {"lake": True, "scores": False}
    config = run_config(run)
    assert (config.input.uri, config.output.uri) == ("file:///mnt/data/lake/in", "file:///mnt/data/scores/out")


def test_gpu_placement_as_for_serving() -> None:
    built = build_job(_run(batch_spec(accelerator={"vendor": "nvidia", "count": 2})), SETTINGS)
    pod_spec = built["spec"]["template"]["spec"]
    assert pod_spec["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert any(t.get("key") == "nvidia.com/gpu" for t in pod_spec["tolerations"])


def test_cronjob_forbids_concurrent_runs_and_carries_the_job() -> None:
    run = _run(batch_spec(schedule="*/5 * * * *"))
    cron = build_cronjob(run, SETTINGS)
    assert (cron["spec"]["schedule"], cron["spec"]["concurrencyPolicy"]) == ("*/5 * * * *", "Forbid")
    assert cron["spec"]["jobTemplate"]["spec"] == build_job(run, SETTINGS)["spec"]
    assert json.loads(cron["spec"]["jobTemplate"]["metadata"]["annotations"][ANNOTATION_MODEL])["version"] == "v1"


@pytest.mark.parametrize(("text", "count", "members"), [
    ("", 0, set()), ("3", 1, {3}), ("0-2,5", 4, {0, 1, 2, 5}), ("1,3-4", 3, {1, 3, 4})])
def test_index_intervals(text: str, count: int, members: set[int]) -> None:
    assert count_indexes(text) == count and indexes(text) == members


# ---------------------------------------------------------------------------------------- plan


def test_a_new_run_resolves_the_stable_version_and_creates_its_job() -> None:
    # A canary of v2 is in flight: spec says v2, stable serves v1. The run uses v1.
    plan = plan_batch(BatchObserved(bp=bp(), model_deployment=model_deployment("v1", spec_version="v2")), NOW,
                      SETTINGS)
    (created,) = plan.apply
    assert created["kind"] == "Job" and created["metadata"]["name"] == "score"
    assert plan.status is not None
    assert plan.status["model"] == {"name": "iris", "version": "v1", "revision": "rev-v1",
                                    "uri": "s3://models/iris/v1", "format": "sklearn"}
    assert (plan.status["phase"], plan.status["job"]) == ("Pending", "score")
    assert [e.reason for e in plan.events] == ["Started"]


@pytest.mark.parametrize(("md", "reason"), [(None, "ModelDeploymentNotFound"),
                                            (model_deployment(stable=None), "NoStableVersion")])
def test_a_run_waits_for_its_model(md: Obj | None, reason: str) -> None:
    plan = plan_batch(BatchObserved(bp=bp(), model_deployment=md), NOW, SETTINGS)
    assert plan.apply == () and plan.requeue is not None
    assert plan.status is not None and plan.status["phase"] == "Pending"
    assert plan.status["conditions"][0]["reason"] == reason
    assert [(e.type, e.reason) for e in plan.events] == [("Warning", reason)]


def test_inline_model_needs_no_model_deployment() -> None:
    plan = plan_batch(BatchObserved(bp=bp(batch_spec(model=INLINE))), NOW, SETTINGS)
    assert plan.status is not None and plan.status["model"]["version"] == "v7" and plan.status["model"]["revision"]
    assert [o["kind"] for o in plan.apply] == ["Job"]


def test_a_job_it_does_not_control_is_a_name_conflict() -> None:
    plan = plan_batch(BatchObserved(bp=bp(), job=job(owner_uid="someone-else"), model_deployment=model_deployment()),
                      NOW, SETTINGS)
    assert plan.apply == () and plan.delete == ()
    assert plan.status is not None and plan.status["conditions"][0]["reason"] == "NameConflict"


def test_progress_and_rows_while_running() -> None:
    running = job(status={"active": 2, "completedIndexes": "0,2", "startTime": "2026-12-03T10:00:05Z"})
    pods = (pod(0, "Succeeded", report=report(0, 100, 99, 1)), pod(2, "Succeeded", report=report(2, 50, 50)),
            pod(1, "Running"), pod(3, "Running"))
    plan = plan_batch(BatchObserved(bp=bp(), job=running, pods=pods), NOW, SETTINGS)
    assert plan.status is not None
    assert (plan.status["phase"], plan.status["progress"]) == ("Running", "2/4")
    assert plan.status["shards"] == {"total": 4, "succeeded": 2, "failed": 0, "running": 2}
    assert plan.status["rows"] == {"in": 150, "out": 149, "failed": 1}


def test_a_retried_shard_counts_once_and_its_failure_is_reported_once() -> None:
    done = job(status={"completedIndexes": "0-3", "succeeded": 4, "failed": 1, "startTime": "2026-12-03T10:00:00Z",
                       "completionTime": "2026-12-03T10:02:00Z",
                       "conditions": [{"type": "Complete", "status": "True"}]})
    pods = (*(pod(i, "Succeeded", report=report(i, 10, 10)) for i in range(4)),
            pod(1, "Failed", name="score-1-first", exit_code=137))
    observed = BatchObserved(bp=bp(), job=done, pods=pods)
    plan = plan_batch(observed, NOW, SETTINGS)
    assert plan.status is not None
    assert plan.status["rows"] == {"in": 40, "out": 40, "failed": 0} and plan.status["phase"] == "Succeeded"
    assert plan.status["outputManifest"] == "s3://data/scores/_manifest.json"
    assert plan.status["failures"][0]["pod"] == "score-1-first"
    assert sorted(e.reason for e in plan.events) == ["ShardFailed", "Succeeded"]
    # The next tick sees its own status: nothing to write, nothing to say.
    again = plan_batch(BatchObserved(bp=bp(status=applied({}, plan.status)), job=done, pods=pods), NOW, SETTINGS)
    assert (again.status, again.events, again.apply) == (None, (), ())


def test_too_many_failed_rows_fails_the_run_with_the_shard_reason() -> None:
    failed = job(status={"completedIndexes": "0-2", "failedIndexes": "3", "conditions": [
        {"type": "Failed", "status": "True", "reason": "FailedIndexes", "message": "Job has failed indexes"}]})
    bad = report(3, 100, 0, 40, reason="TooManyFailedRows", message="40 of 100 rows failed (40% > 1%)")
    pods = (*(pod(i, "Succeeded", report=report(i, 100, 100)) for i in range(3)),
            pod(3, "Failed", report=bad, exit_code=3))
    plan = plan_batch(BatchObserved(bp=bp(), job=failed, pods=pods), NOW, SETTINGS)
    assert plan.status is not None and plan.status["phase"] == "Failed"
    failed_cond = next(c for c in plan.status["conditions"] if c["type"] == "Failed")
    assert failed_cond["status"] == "True" and failed_cond["reason"] == "FailedIndexes"
    assert "shard 3: TooManyFailedRows: 40 of 100 rows failed" in failed_cond["message"]
    assert plan.status["shards"]["failed"] == 1
    assert {(e.type, e.reason) for e in plan.events} == {("Warning", "ShardFailed"), ("Warning", "FailedIndexes")}


@pytest.mark.parametrize(("job_status", "previous", "phase"), [
    ({}, None, "Pending"),
    ({"active": 1}, None, "Running"),
    ({"failed": 1}, None, "Running"),  # an attempt failed; its retry waits for its back-off
    ({}, "Running", "Running"),  # never back to Pending
    ({"conditions": [{"type": "FailureTarget", "status": "True", "reason": "PodFailurePolicy"}]}, "Running",
     "Failed"),
    ({"conditions": [{"type": "Complete", "status": "True"}]}, "Running", "Succeeded"),
])
def test_run_phase(job_status: Obj, previous: str | None, phase: str) -> None:
    status = {"phase": previous, "job": "score"} if previous else {"job": "score"}
    plan = plan_batch(BatchObserved(bp=bp(status=status), job=job(status=job_status)), NOW, SETTINGS)
    assert plan.phase == phase


def test_a_finished_run_whose_job_is_gone_keeps_its_status() -> None:
    status = {"phase": "Succeeded", "job": "score", "model": {"version": "v1"}, "observedGeneration": 1,
              "failures": [], "conditions": [
        {"type": "Complete", "status": "True", "reason": "Succeeded", "message": "m",
         "lastTransitionTime": "2026-12-03T09:00:00Z", "observedGeneration": 1}]}
    plan = plan_batch(BatchObserved(bp=bp(status=status), model_deployment=model_deployment("v2")), NOW, SETTINGS)
    assert (plan.apply, plan.status, plan.events) == ((), None, ())  # never a second run, nothing rewritten


def test_a_run_whose_job_is_deleted_before_it_ended_fails_and_is_not_restarted() -> None:
    status = {"phase": "Running", "job": "score", "model": {"version": "v1"}}
    plan = plan_batch(BatchObserved(bp=bp(status=status), model_deployment=model_deployment()), NOW, SETTINGS)
    assert plan.apply == () and plan.status is not None and plan.status["phase"] == "Failed"
    assert [(e.type, e.reason) for e in plan.events] == [("Warning", "JobDeleted")]


def test_rows_survive_the_pods_and_a_job_being_deleted() -> None:
    done = job(status={"completedIndexes": "0-3", "conditions": [{"type": "Complete", "status": "True"}]})
    pods = tuple(pod(i, "Succeeded", report=report(i, 10, 10)) for i in range(4))
    first = plan_batch(BatchObserved(bp=bp(), job=done, pods=pods), NOW, SETTINGS)
    stored = applied({}, first.status)
    assert stored["rows"] == {"in": 40, "out": 40, "failed": 0}
    without_pods = plan_batch(BatchObserved(bp=bp(status=stored), job=done), NOW, SETTINGS)
    assert without_pods.status is None  # the pods went first (foreground deletion): rows stay
    deleting = {**done, "metadata": {**done["metadata"], "deletionTimestamp": "2026-12-03T10:05:00Z"}}
    assert plan_batch(BatchObserved(bp=bp(status=stored), job=deleting), NOW, SETTINGS).status is None


def test_many_failures_of_pods_that_never_ran_settle() -> None:
    """25 attempts whose init container failed (no batch container end time): the 20 newest are
    kept, and the next tick writes nothing and reports nothing again."""
    failing = job(status={"failed": 25, "active": 1})
    pods = []
    for n in range(25):
        failed = pod(n % 4, "Failed", name=f"score-{n % 4}-{n:05d}")
        failed["status"]["containerStatuses"] = []
        failed["metadata"]["creationTimestamp"] = f"2026-12-03T09:{n:02d}:00Z"
        pods.append(failed)
    first = plan_batch(BatchObserved(bp=bp(), job=failing, pods=tuple(pods)), NOW, SETTINGS)
    stored = applied({}, first.status)
    assert len(stored["failures"]) == 20 and stored["failures"][0]["pod"] == "score-1-00005"
    again = plan_batch(BatchObserved(bp=bp(status=stored), job=failing, pods=tuple(pods)),
                       NOW + dt.timedelta(seconds=5), SETTINGS)
    assert (again.status, again.events) == (None, ())


def test_a_schedule_keeps_following_its_runs_when_the_model_deployment_is_gone() -> None:
    spec = batch_spec(schedule="* * * * *")
    cron = build_cronjob(_run(spec), SETTINGS)
    cron["metadata"]["uid"] = "cron-uid"
    running = job("cron-uid", owner_kind="CronJob", name="score-101", status={"active": 1})
    plan = plan_batch(BatchObserved(bp=bp(spec), cronjob=cron, runs=(running,), model_deployment=None), NOW, SETTINGS)
    assert plan.apply == () and plan.status is not None
    assert (plan.status["phase"], plan.status["job"]) == ("Running", "score-101")


def test_a_cronjob_with_quantities_the_api_server_rewrote_is_not_applied_again() -> None:
    spec = batch_spec(schedule="@daily", resources={"requests": {"cpu": "0.5", "memory": "1024Mi"}})
    (cron,) = plan_batch(BatchObserved(bp=bp(spec), model_deployment=model_deployment()), NOW, SETTINGS).apply
    live = json.loads(json.dumps(cron).replace('"0.5"', '"500m"').replace('"1024Mi"', '"1Gi"'))
    live["metadata"]["uid"] = "cron-uid"
    plan = plan_batch(BatchObserved(bp=bp(spec), cronjob=live, model_deployment=model_deployment()), NOW, SETTINGS)
    assert plan.apply == ()


def test_invalid_spec_is_reported_not_raised() -> None:
    plan = plan_batch(BatchObserved(bp=bp({"model": {}})), NOW, SETTINGS)
    assert plan.apply == () and plan.status is not None and plan.status["phase"] == "Failed"
    assert plan.status["conditions"][1]["reason"] == "InvalidSpec"


def test_schedule_applies_the_cronjob_only_when_it_changes() -> None:
    spec = batch_spec(schedule="0 2 * * *")
    first = plan_batch(BatchObserved(bp=bp(spec), model_deployment=model_deployment("v1")), NOW, SETTINGS)
    (cron,) = first.apply
    assert cron["kind"] == "CronJob" and first.status is not None and first.status["phase"] == "Pending"
    live = {**cron, "metadata": {**cron["metadata"], "uid": "cron-uid", "resourceVersion": "9"},
            "spec": {**cron["spec"], "suspend": False}}  # defaults added by the API server do not count
    same = plan_batch(BatchObserved(bp=bp(spec), cronjob=live, model_deployment=model_deployment("v1")), NOW,
                      SETTINGS)
    assert same.apply == ()
    promoted = plan_batch(BatchObserved(bp=bp(spec), cronjob=live, model_deployment=model_deployment("v2")), NOW,
                          SETTINGS)
    (updated,) = promoted.apply  # the next runs use the new stable version
    assert json.loads(updated["metadata"]["annotations"][ANNOTATION_MODEL])["version"] == "v2"


def test_scheduled_status_follows_the_latest_run() -> None:
    spec = batch_spec(schedule="* * * * *")
    cron = build_cronjob(_run(spec), SETTINGS)
    cron["metadata"]["uid"] = "cron-uid"
    cron["status"] = {"lastScheduleTime": "2026-12-03T10:05:00Z"}
    old = job("cron-uid", owner_kind="CronJob", name="score-100", created="2026-12-03T10:04:00Z",
              status={"completedIndexes": "0-3", "conditions": [{"type": "Complete", "status": "True"}]})
    new = job("cron-uid", owner_kind="CronJob", name="score-101", created="2026-12-03T10:05:00Z",
              model={"name": "iris", "version": "v1"}, status={"active": 4})
    plan = plan_batch(BatchObserved(bp=bp(spec), cronjob=cron, runs=(new, old), model_deployment=model_deployment()),
                      NOW, SETTINGS)
    assert plan.status is not None
    assert (plan.status["job"], plan.status["phase"], plan.status["runsSucceeded"]) == ("score-101", "Running", 1)
    assert plan.status["lastScheduleTime"] == "2026-12-03T10:05:00Z"


def test_removing_the_schedule_deletes_the_cronjob() -> None:
    cron = build_cronjob(_run(batch_spec(schedule="@daily")), SETTINGS)
    cron["metadata"]["ownerReferences"][0]["uid"] = "bp-uid"
    plan = plan_batch(BatchObserved(bp=bp(), cronjob=cron, model_deployment=model_deployment()), NOW, SETTINGS)
    assert plan.delete == (("batch/v1", "CronJob", "score"),) and plan.apply == ()  # nothing new starts
    scheduled = {"lastScheduleTime": "2026-12-03T09:00:00Z", "runsSucceeded": 2, "phase": "Succeeded", "job": "x",
                 "observedGeneration": 1, "failures": [], "conditions": []}
    later = plan_batch(BatchObserved(bp=bp(status=scheduled), model_deployment=model_deployment()), NOW, SETTINGS)
    assert (later.apply, later.status) == ((), None)
