"""A BatchPrediction run's status from its Job and pods (pure: plain dicts in, models out).

Shards come from the Job's status (completedIndexes, failedIndexes, active); rows from the
termination messages of the succeeded shard pods (the ShardReport each `modelpilot batch` writes),
one per shard index, so a retried shard is never counted twice.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from modelpilot.api.batch import BatchPhase, RowCounts, ShardCounts, ShardFailure
from modelpilot.batch import contract
from modelpilot.resources.batchjob import BATCH_CONTAINER

Obj = dict[str, Any]
MAX_FAILURES = 20


def count_indexes(text: str | None) -> int:
    return len(indexes(text))


def indexes(text: str | None) -> set[int]:
    """The indexes an interval list such as "0-2,5,7-8" names (Job status format)."""
    out: set[int] = set()
    for part in (text or "").split(","):
        part = part.strip()
        if part:
            first, _, last = part.partition("-")
            out.update(range(int(first), int(last or first) + 1))
    return out


def _condition(job: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind and cond.get("status") == "True":
            return cond
    return None


def shard_index(pod: Mapping[str, Any]) -> int | None:
    raw = ((pod.get("metadata") or {}).get("annotations") or {}).get(contract.COMPLETION_INDEX_ANNOTATION)
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        return None


def _terminated(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if status.get("name") == BATCH_CONTAINER:
            return (status.get("state") or {}).get("terminated") or {}
    return {}


def shard_report(pod: Mapping[str, Any]) -> contract.ShardReport | None:
    """The ShardReport in the pod's termination message (None when absent or not ours)."""
    message = _terminated(pod).get("message")
    if not message:
        return None
    try:
        return contract.ShardReport.model_validate_json(message)
    except ValidationError:
        return None


def owned_by(obj: Mapping[str, Any], uid: str) -> bool:
    return any(ref.get("uid") == uid for ref in (obj.get("metadata") or {}).get("ownerReferences") or [])


@dataclass(frozen=True)
class RunView:
    """What one Job says about its run."""

    phase: BatchPhase
    shards: ShardCounts
    rows: RowCounts
    failures: tuple[ShardFailure, ...]
    started_at: str | None
    completed_at: str | None
    failed_reason: str | None = None
    failed_message: str | None = None


def _rows(pods: Iterable[Mapping[str, Any]], done: set[int]) -> RowCounts:
    reports: dict[int, contract.ShardReport] = {}
    for pod in pods:
        index = shard_index(pod)
        if index in done and (pod.get("status") or {}).get("phase") == "Succeeded":
            report = shard_report(pod)
            if report is not None:
                reports[index] = report
    return RowCounts(input=sum(r.rows_in for r in reports.values()), output=sum(r.rows_out for r in reports.values()),
                     failed=sum(r.rows_failed for r in reports.values()))


def pod_failure(pod: Mapping[str, Any], now: dt.datetime) -> ShardFailure | None:
    """A failed shard pod as a status entry (None for a pod that did not fail)."""
    status = pod.get("status") or {}
    if status.get("phase") != "Failed":
        return None
    terminated = _terminated(pod)
    report = shard_report(pod)
    reason = (report.reason if report and report.reason else None) or terminated.get("reason") or \
        status.get("reason") or "Error"
    message = (report.message if report and report.message else None) or status.get("message") or \
        (f"exit code {terminated['exitCode']}" if "exitCode" in terminated else None)
    when = terminated.get("finishedAt") or _pod_end(pod) or now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    index = shard_index(pod)
    return ShardFailure(shard=index if index is not None else 0, pod=str(pod["metadata"]["name"]),
                        reason=str(reason)[:128], message=(str(message)[:1024] if message else None), time=when)


def _failed(job: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The Job's failure: Failed, or FailureTarget (decided; Failed follows once its pods end)."""
    return _condition(job, "Failed") or _condition(job, "FailureTarget")


def _pod_end(pod: Mapping[str, Any]) -> str | None:
    """When a pod whose `batch` container never ran failed: its init container's end, its Ready
    condition's last change, else its creation (always the same answer for the same pod)."""
    status = pod.get("status") or {}
    for init in status.get("initContainerStatuses") or []:
        finished = ((init.get("state") or {}).get("terminated") or {}).get("finishedAt")
        if finished:
            return str(finished)
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Ready" and cond.get("lastTransitionTime"):
            return str(cond["lastTransitionTime"])
    created = (pod.get("metadata") or {}).get("creationTimestamp")
    return str(created) if created else None


def _phase(job: Mapping[str, Any], shards: ShardCounts) -> BatchPhase:
    if _condition(job, "Complete"):
        return "Succeeded"
    if _failed(job):
        return "Failed"
    status = job.get("status") or {}
    started = shards.running or shards.succeeded or shards.failed or status.get("failed") or status.get("ready")
    return "Running" if started else "Pending"


def _failed_because(job: Mapping[str, Any], failures: tuple[ShardFailure, ...]) -> tuple[str | None, str | None]:
    cond = _failed(job)
    if cond is None:
        return None, None
    worst = failures[-1] if failures else None
    detail = f"; shard {worst.shard}: {worst.reason}" + (f": {worst.message}" if worst.message else "") if worst else ""
    return str(cond.get("reason") or "JobFailed"), f"{cond.get('message') or 'the Job failed'}{detail}"


def run_view(job: Mapping[str, Any], pods: Iterable[Mapping[str, Any]], previous: Iterable[ShardFailure],
             now: dt.datetime) -> RunView:
    pods = [p for p in pods if owned_by(p, str(job["metadata"].get("uid", "")))]
    status = job.get("status") or {}
    done = indexes(status.get("completedIndexes"))
    shards = ShardCounts(total=int((job.get("spec") or {}).get("completions") or 0), succeeded=len(done),
                         failed=count_indexes(status.get("failedIndexes")), running=int(status.get("active") or 0))
    known = {f.pod: f for f in previous}
    # A full list keeps the newest: a failure older than all of them was dropped before and must
    # not come back (nor be reported again).
    oldest = min((f.time for f in previous if f.time), default=None) if len(known) >= MAX_FAILURES else None
    for pod in pods:
        failure = pod_failure(pod, now)
        if failure is None or failure.pod in known:
            continue
        if oldest is not None and failure.time is not None and failure.time <= oldest:
            continue
        known[failure.pod] = failure
    failures = tuple(sorted(known.values(), key=lambda f: (f.time or now, f.pod)))[-MAX_FAILURES:]
    terminal = _condition(job, "Complete") or _failed(job)
    reason, message = _failed_because(job, failures)
    return RunView(phase=_phase(job, shards), shards=shards, rows=_rows(pods, done), failures=failures,
                   started_at=status.get("startTime"),
                   completed_at=status.get("completionTime") or (terminal or {}).get("lastTransitionTime"),
                   failed_reason=reason, failed_message=message)
