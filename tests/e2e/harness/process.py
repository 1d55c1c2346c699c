"""One pod's processes: init containers in order, then the server, watched like a kubelet would.

A `PodProcess` owns a thread that runs the plan's init containers, starts the server, and then
probes it every `probe_interval`: `live` once the port accepts connections, `ready` while the
readiness probe path answers 200 (or, without an HTTP probe, while the port accepts). `stop()`
sends SIGTERM to the process group, then SIGKILL after `grace` seconds.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from modelpilot.resources.labels import LABEL_TRACK
from tests.e2e.harness.template import ContainerPlan, ProcessPlan

# The child gets SIGTERM when the thread that started it dies (e.g. pytest killed), so no model
# server outlives a crashed test run.
_SETPRIV = shutil.which("setpriv")


def _launcher() -> list[str]:
    return [_SETPRIV, "--pdeathsig", "TERM", "--"] if _SETPRIV else []


@dataclass(frozen=True)
class ProcessInfo:
    """A snapshot of one pod's process, for the registry and assertions."""

    pod: str
    uid: str
    track: str
    host: str  # the pod IP the server binds
    port: int
    state: str  # pending | init | starting | running | failed | exited | stopped
    live: bool
    ready: bool
    reason: str
    pid: int | None
    log_dir: Path

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


class PodProcess:
    def __init__(self, plan: ProcessPlan, log_dir: Path, *, grace: float = 10.0, probe_interval: float = 0.5,
                 track_label: str = LABEL_TRACK, on_change: Callable[[], None] | None = None,
                 event_log: Callable[[str], None] | None = None) -> None:
        self.plan = plan
        self.log_dir = log_dir
        self.grace = grace
        self.probe_interval = probe_interval
        self.track = plan.labels.get(track_label, "")
        self._on_change = on_change or (lambda: None)
        self._event_log = event_log or (lambda _msg: None)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"pod-{plan.pod}", daemon=True)
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self.state = "pending"
        self.live = False
        self.ready = False
        self.reason = "not started"
        self.returncode: int | None = None
        log_dir.mkdir(parents=True, exist_ok=True)

    # ---------------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self.plan.port

    @property
    def pod(self) -> str:
        return self.plan.pod

    def info(self) -> ProcessInfo:
        proc = self._proc
        return ProcessInfo(pod=self.plan.pod, uid=self.plan.uid, track=self.track, host=self.plan.host,
                           port=self.plan.port,
                           state=self.state, live=self.live, ready=self.ready, reason=self.reason,
                           pid=proc.pid if proc else None, log_dir=self.log_dir)

    def start(self) -> PodProcess:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Ask the thread to stop (non-blocking): it stops serving traffic at once."""
        self._set(ready=False, reason="stopping")
        self._stop.set()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    @property
    def stopped(self) -> bool:
        return not self._thread.is_alive() and self._stop.is_set()

    def log_text(self, container: str | None = None) -> str:
        name = container or (self.plan.server.name if self.plan.server else "server")
        path = self.log_dir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    # ---------------------------------------------------------------------------------------

    def _set(self, *, state: str | None = None, live: bool | None = None, ready: bool | None = None,
             reason: str | None = None) -> None:
        changed = False
        with self._lock:
            for key, value in (("state", state), ("live", live), ("ready", ready), ("reason", reason)):
                if value is not None and getattr(self, key) != value:
                    setattr(self, key, value)
                    changed = key != "reason" or changed
        if changed:
            self._event_log(f"{self.plan.pod}: state={self.state} live={self.live} ready={self.ready} "
                            f"({self.reason})")
            self._on_change()

    def _spawn(self, container: ContainerPlan) -> subprocess.Popen[bytes]:
        log = (self.log_dir / f"{container.name}.log").open("ab")
        try:
            log.write(f"$ {' '.join(container.argv)}\n".encode())
            log.flush()
            return subprocess.Popen([*_launcher(), *container.argv], env=container.env, cwd=container.cwd,
                                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
        finally:
            log.close()

    def _run(self) -> None:
        try:
            self._run_inner()
        except Exception as err:  # a harness bug must show up, not kill the thread silently
            self._set(state="failed", live=False, ready=False, reason=f"harness error: {err!r}")
        finally:
            self._terminate()
            if self.state not in ("failed", "exited"):
                self._set(state="stopped", live=False, ready=False, reason="stopped")

    def _run_inner(self) -> None:
        plan = self.plan
        if plan.server is None:
            self._set(state="failed", reason="; ".join(plan.problems) or "nothing to run")
            self._stop.wait()
            return
        for container in plan.init:
            self._set(state="init", reason=f"init container {container.name}")
            with self._lock:
                self._proc = self._spawn(container)
            while self._proc.poll() is None:
                if self._stop.wait(0.05):
                    return
            if self._proc.returncode != 0:
                self.returncode = self._proc.returncode
                self._set(state="failed", reason=f"init container {container.name} exited "
                                                 f"{self._proc.returncode} (see {container.name}.log)")
                self._stop.wait()
                return
        if self._stop.is_set():
            return
        self._set(state="starting", reason="server starting")
        with self._lock:
            self._proc = self._spawn(plan.server)
        while not self._stop.is_set():
            code = self._proc.poll()
            if code is not None:
                self.returncode = code
                self._set(state="exited", live=False, ready=False,
                          reason=f"server exited {code} (see {plan.server.name}.log)")
                self._stop.wait()
                return
            live = _port_open(plan.host, plan.port)
            ready, why = self._probe() if live else (False, "port not open")
            if plan.problems:
                ready, why = False, "; ".join(plan.problems)
            self._set(state="running" if live else "starting", live=live, ready=ready, reason=why)
            self._stop.wait(self.probe_interval)

    def _probe(self) -> tuple[bool, str]:
        path = self.plan.ready_path
        if path is None:
            return True, "port open (no HTTP readiness probe)"
        conn = http.client.HTTPConnection(self.plan.host, self.plan.port, timeout=2)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            body = response.read(300).decode(errors="replace").strip()
            return response.status == 200, f"GET {path}: {response.status} {body}"
        except (OSError, http.client.HTTPException) as err:
            return False, f"GET {path}: {err!r}"
        finally:
            conn.close()

    def _terminate(self) -> None:
        proc = self._proc
        if proc is None or proc.poll() is not None:
            if proc is not None:
                self.returncode = proc.returncode
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=self.grace)
        except subprocess.TimeoutExpired:
            self._event_log(f"{self.plan.pod}: no exit {self.grace}s after SIGTERM, SIGKILL")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        self.returncode = proc.returncode


def _port_open(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def wait_stopped(processes: list[PodProcess], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
