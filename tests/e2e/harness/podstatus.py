"""What a kubelet writes in a pod's status: Ready conditions from the readiness probe, and the
terminal status when a Job pod's container ends (pure)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from tests.e2e.harness.process import PodProcess

Obj = dict[str, Any]
MESSAGE_LIMIT = 4096  # bytes of a termination message the kubelet keeps


def condition(pod: Obj, kind: str) -> str | None:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind:
            return str(cond.get("status"))
    return None


def is_running(pod: Obj) -> bool:
    return (not (pod.get("metadata") or {}).get("deletionTimestamp")
            and (pod.get("status") or {}).get("phase") == "Running")


def is_ready(pod: Obj) -> bool:
    """Ready in the API: Running, not terminating, condition Ready=True (what a Service uses)."""
    return is_running(pod) and condition(pod, "Ready") == "True"


def ready_status(pod: Obj, process: PodProcess) -> Obj | None:
    """The status patch making the pod's Ready/ContainersReady say what the readiness probe says;
    None when they already do."""
    ready = process.ready
    want = "True" if ready else "False"
    if condition(pod, "Ready") == want and condition(pod, "ContainersReady") == want:
        return None
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    server = process.plan.server.name if process.plan.server else None
    status = pod.get("status") or {}
    conditions = []
    for kind in ("ContainersReady", "Ready"):
        cond: Obj = {"type": kind, "status": want, "lastTransitionTime": now}
        if not ready:
            cond["reason"] = "ContainersNotReady"
            cond["message"] = f"containers with unready status: [{server}] ({process.reason[:200]})"
        else:
            cond["reason"] = None
            cond["message"] = None
        conditions.append(cond)
    body: Obj = {"status": {"conditions": conditions}}
    if status.get("containerStatuses"):
        body["status"]["containerStatuses"] = [
            {**cs, "ready": ready} if cs.get("name") == server else cs for cs in status["containerStatuses"]]
    return body


def exit_code(returncode: int | None) -> int:
    """A process return code as the kubelet reports it: killed by signal N -> 128 + N."""
    if returncode is None:
        return 1
    return 128 - returncode if returncode < 0 else returncode


def terminal_status(pod: Obj, process: PodProcess, message_file: Path) -> Obj:
    """The status patch of a Job pod whose process ended: phase Succeeded (exit 0) or Failed, the
    container terminated with its exit code and termination message (the log's tail when the file
    is empty and the container failed: terminationMessagePolicy FallbackToLogsOnError)."""
    code = exit_code(process.returncode)
    ok = code == 0 and process.state == "exited"
    message = message_file.read_bytes()[:MESSAGE_LIMIT].decode(errors="replace") if message_file.exists() else ""
    if not message and not ok:
        message = "\n".join(process.log_text().splitlines()[-40:])[-2048:]
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    container = ((pod.get("spec") or {}).get("containers") or [{}])[0]
    terminated: Obj = {"exitCode": code, "reason": "Completed" if ok else "Error", "startedAt": now,
                       "finishedAt": now}
    if process.state == "failed":  # an init container failed, or nothing could run
        terminated["reason"] = "Init:Error" if process.plan.server is not None else "ContainerCannotRun"
    if message:
        terminated["message"] = message
    status = {"name": container.get("name"), "image": container.get("image", ""), "imageID": "",
              "ready": False, "restartCount": 0, "started": False, "state": {"terminated": terminated}}
    conditions = [{"type": kind, "status": "False", "reason": "PodCompleted" if ok else "PodFailed",
                   "lastTransitionTime": now} for kind in ("ContainersReady", "Ready")]
    return {"status": {"phase": "Succeeded" if ok else "Failed", "conditions": conditions,
                       "containerStatuses": [status]}}
