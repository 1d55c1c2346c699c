"""One measured run: N ModelDeployments with the operator, or the floor without it."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from bench.operator import audit
from bench.operator.kube import Api, delete_namespace, free_pod_slots, fresh_namespace
from bench.operator.load import Load, apply_children, create_modeldeployments
from bench.operator.procmon import RssMonitor
from bench.operator.report import latencies, summary
from bench.operator.watcher import Timeline, watching


@dataclass
class Context:
    """What every run shares."""

    api: Api  # as the admin (creates, watches, cleanup)
    operator_kubeconfig: Path  # as the ServiceAccount whose reads the test bed audits
    audit_log: Path
    audit_user: str
    audits_reads: bool
    results_dir: Path
    console: Console
    concurrency: int = 16
    resync_seconds: float = 60
    idle_seconds: float = 10
    settle_seconds: float = 60
    window_seconds: float = 60
    timeout: float | None = None  # for all Ready; default from N
    cleanup_timeout: float = 900
    keep: bool = False
    notes: list[str] = field(default_factory=list)

    def ready_timeout(self, count: int) -> float:
        return self.timeout if self.timeout is not None else 300 + count * 0.5

    def log(self, message: str) -> None:
        self.console.log(message)


class OperatorProcess:
    """`modelpilot operator` restricted to one namespace, as the bench's ServiceAccount."""

    def __init__(self, ctx: Context, namespace: str, log_path: Path) -> None:
        self.ctx, self.namespace, self.log_path = ctx, namespace, log_path
        self.process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        script = Path(sys.executable).with_name("modelpilot")
        base = [str(script)] if script.exists() else [sys.executable, "-m", "modelpilot.cli.main"]
        return [*base, "operator", "--namespace", self.namespace, "--log-format", "full"]

    def start(self, timeout: float = 60) -> int:
        env = {**os.environ, "KUBECONFIG": str(self.ctx.operator_kubeconfig),
               "MODELPILOT_NAMESPACES": self.namespace,
               "MODELPILOT_RESYNC_SECONDS": str(self.ctx.resync_seconds),
               "MODELPILOT_METRICS_PORT": "0"}
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, env=env,
                                            start_new_session=True)
        deadline = time.monotonic() + timeout
        while "modelpilot started" not in self.logs():
            if self.process.poll() is not None:
                raise RuntimeError(f"the operator exited with {self.process.returncode}:\n{self.logs()[-3000:]}")
            if time.monotonic() > deadline:
                self.ctx.log(f"[yellow]no 'modelpilot started' in the operator's log after {timeout}s; going on")
                break
            time.sleep(0.1)
        return self.process.pid

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def error_lines(self) -> int:
        return sum(1 for line in self.logs().splitlines() if "ERROR" in line or line.startswith("Traceback"))

    def stop(self, timeout: float = 20) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@contextlib.contextmanager
def namespace_for(ctx: Context, name: str, count: int) -> Iterator[str]:
    """A fresh namespace, deleted afterwards (and waited for) unless --keep."""
    slots = free_pod_slots(ctx.api)
    if slots < count:
        ctx.notes.append(f"only {slots} free pod slots on untainted nodes for {count} pods "
                         f"(make add-nodes N={-(-(count - slots) // 250)})")
        ctx.log(f"[yellow]{ctx.notes[-1]}")
    fresh_namespace(ctx.api, name)
    try:
        yield name
    finally:
        if not ctx.keep:
            ctx.log(f"deleting namespace {name}")
            took = delete_namespace(ctx.api, name, ctx.cleanup_timeout)
            ctx.log(f"namespace {name} gone after {took:.0f}s" if took is not None
                    else f"[yellow]namespace {name} still terminating after {ctx.cleanup_timeout:.0f}s")


def _progress(ctx: Context, timeline: Timeline, names: list[str], load: Load, what: str) -> None:
    timeline.drain()
    after = time.time() - load.last_created
    mds = "" if what == "floor" else f", {len(timeline.marks['ready'])} ModelDeployments Ready"
    ctx.log(f"{what}: {len(timeline.marks['deploy'])}/{len(names)} Deployments, "
            f"{len(timeline.marks['deploy_ready'])} Deployments ready{mds}; {after:.0f}s after the last create")


def _create(ctx: Context, namespace: str, names: list[str], floor: bool) -> Load:
    what = "children applied" if floor else "ModelDeployments created"
    started = time.monotonic()
    load = (apply_children if floor else create_modeldeployments)(ctx.api, namespace, names, ctx.concurrency)
    took = time.monotonic() - started
    ctx.log(f"{len(load.created)} {what} in {took:.1f}s ({len(load.created) / took:.0f}/s, "
            f"{ctx.concurrency} threads); {len(load.errors)} errors")
    for name, error in list(load.errors.items())[:5]:
        ctx.log(f"[red]{name}: {error}")
    return load


def _load_figures(load: Load, timeline: Timeline, ready_mark: str) -> dict[str, Any]:
    """The latency figures; `ready_mark` is `ready` (ModelDeployments) or `deploy_ready` (floor)."""
    start = load.sent if ready_mark == "deploy_ready" else load.created
    ready = timeline.marks[ready_mark]
    deploy = timeline.marks["deploy"]
    to_deploy, to_ready = latencies(start, deploy), latencies(start, ready)
    last_ready = max((ready[n] for n in load.created if n in ready), default=None)
    span = load.last_finished - load.first_sent
    return {
        "create_errors": load.errors,
        "creates_per_second": len(load.finished) / span if span > 0 else None,
        "create_to_deployment": summary(to_deploy),
        "create_to_ready": summary(to_ready),
        "all_ready_after_last_create": (last_ready - load.last_created)
        if last_ready is not None and len(to_ready) == len(load.created) else None,
        "raw": {"create_to_deployment": [round(v, 4) for v in to_deploy],
                "create_to_ready": [round(v, 4) for v in to_ready],
                "first_sent": load.first_sent, "last_created": load.last_created,
                "last_ready": last_ready},
    }


def run_floor(ctx: Context, count: int) -> dict[str, Any]:
    """Without the operator: apply each object's children directly, as fast as the operator's
    creates; time the Deployments' ADDED events and their pods' readiness."""
    names = [f"md-{i:05d}" for i in range(count)]
    ctx.notes = []
    with namespace_for(ctx, f"bench-floor-{count}", count) as namespace, \
            watching(None, namespace) as timeline:
        load = _create(ctx, namespace, names, floor=True)
        deadline = time.monotonic() + ctx.ready_timeout(count)
        done = timeline.wait("deploy_ready", list(load.created), deadline,
                             lambda: _progress(ctx, timeline, names, load, "floor"))
        if not done:
            ctx.notes.append(f"not every Deployment ready after {ctx.ready_timeout(count):.0f}s")
        figures = _load_figures(load, timeline, "deploy_ready")
    return {"run": "floor", "count": count, "namespace": namespace, **figures, "notes": ctx.notes}


def _idle(ctx: Context, operator: OperatorProcess, namespace: str, monitor: RssMonitor,
          offset: int) -> dict[str, float]:
    """Wait until the operator watches the namespace (seen in the audit log) and `idle_seconds`
    more; returns the idle RSS sample."""
    started = time.monotonic()
    if ctx.audits_reads:
        if audit.wait_for_watch(ctx.audit_log, offset, ctx.audit_user, namespace, "modeldeployments", 180):
            ctx.log(f"the operator watches {namespace} ({time.monotonic() - started:.1f}s after its start line)")
        else:
            ctx.notes.append("no watch on modeldeployments from the operator in the audit log after 180s")
            ctx.log(f"[yellow]{ctx.notes[-1]}")
    time.sleep(ctx.idle_seconds)
    return monitor.sample()


def _steady(ctx: Context, monitor: RssMonitor, count: int) -> dict[str, Any]:
    """`settle_seconds` idle, then the RSS and the operator's requests over `window_seconds`."""
    ctx.log(f"steady state: {ctx.settle_seconds:.0f}s idle, then {ctx.window_seconds:.0f}s counting requests")
    time.sleep(ctx.settle_seconds)
    rss = monitor.sample()
    offset, start = audit.log_offset(ctx.audit_log), time.time()
    time.sleep(ctx.window_seconds)
    end = time.time()
    time.sleep(2)  # every request received in the window has its first audit line by now
    counts = audit.count(ctx.audit_log, offset, ctx.audit_user, start, end)
    per_minute: dict[str, float | None] = {
        "reads": counts.per_minute("reads") if ctx.audits_reads else None,
        "watches": counts.per_minute("watches") if ctx.audits_reads else None,
        "writes": counts.per_minute("writes"),
    }
    reads = per_minute["reads"]
    return {"rss_start": rss, "rss_end": monitor.sample(), "api": counts.as_dict(), "api_per_minute": per_minute,
            "reads_per_md_per_hour": reads * 60 / count if reads is not None else None}


def run_operator(ctx: Context, count: int) -> dict[str, Any]:
    """The operator alone in a fresh namespace: N creates, all Ready, then the steady state."""
    names = [f"md-{i:05d}" for i in range(count)]
    ctx.notes = []
    log_path = ctx.results_dir / f"operator-{count}.log"
    with namespace_for(ctx, f"bench-op-{count}", count) as namespace, \
            watching(None, namespace) as timeline:
        operator = OperatorProcess(ctx, namespace, log_path)
        offset = audit.log_offset(ctx.audit_log)
        monitor: RssMonitor | None = None
        try:
            monitor = RssMonitor(operator.start()).start()
            idle = _idle(ctx, operator, namespace, monitor, offset)
            load = _create(ctx, namespace, names, floor=False)
            deadline = time.monotonic() + ctx.ready_timeout(count)
            if not timeline.wait("ready", list(load.created), deadline,
                                 lambda: _progress(ctx, timeline, names, load, f"operator {count}")):
                ctx.notes.append(f"not every ModelDeployment Ready after {ctx.ready_timeout(count):.0f}s")
            figures = _load_figures(load, timeline, "ready")
            ctx.log(f"all Ready {figures['all_ready_after_last_create'] or float('nan'):.1f}s after the last create")
            steady = _steady(ctx, monitor, count)
            peak = monitor.peak_mb()
        finally:
            if monitor is not None:
                monitor.stop()
            operator.stop()
        if operator.error_lines():
            ctx.notes.append(f"{operator.error_lines()} error lines in the operator's log ({log_path})")
    rss = {"idle_mb": idle["tree_rss_mb"], "peak_mb": peak, "steady_mb": steady["rss_start"]["tree_rss_mb"],
           "samples": {"idle": idle, "steady": steady["rss_start"], "end": steady["rss_end"]}}
    return {"run": "operator", "count": count, "namespace": namespace, **figures, "rss": rss,
            "api_per_minute": steady["api_per_minute"], "api_window": steady["api"],
            "reads_per_md_per_hour": steady["reads_per_md_per_hour"], "operator_log": str(log_path),
            "notes": ctx.notes}
