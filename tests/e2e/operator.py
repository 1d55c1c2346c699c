"""The operator as a real process (`modelpilot operator`), so tests can stop, kill and restart it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class OperatorProcess:
    kubeconfig: Path
    namespaces: list[str]
    log_path: Path
    resync_seconds: float = 5.0
    extra_env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    def start(self, started: str = "modelpilot started") -> OperatorProcess:
        """Start, and return once the log shows `started` (a standby logs "waiting to lead")."""
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig),
               "MODELPILOT_RESYNC_SECONDS": str(self.resync_seconds), "MODELPILOT_METRICS_PORT": "0",
               "MODELPILOT_WATCH_TIMEOUT": "10", **self.extra_env}
        cmd = [sys.executable, "-m", "modelpilot.cli.main", "operator", "--log-format", "full", "--verbose"]
        for ns in self.namespaces:
            cmd += ["--namespace", ns]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        self._wait_started(started)
        return self

    def _wait_started(self, line: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"operator exited with {self.process.returncode}:\n{self.logs()[-3000:]}")
            if line in self.logs():
                return
            time.sleep(0.1)
        raise RuntimeError(f"operator did not start within {timeout}s:\n{self.logs()[-3000:]}")

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(sig)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def kill(self) -> None:
        self.stop(signal.SIGKILL)
