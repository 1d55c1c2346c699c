"""Helpers shared by the e2e tests: waiting, kubectl, and the cluster handle."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def wait_for(probe: Callable[[], T | None], timeout: float = 60.0, interval: float = 0.5,
             what: str = "condition") -> T:
    """Poll `probe` until it returns something truthy; fail with `what` and the last value."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; last value: {last!r}")


@dataclass
class ClusterHandle:
    """The cluster the e2e suite runs against."""

    kubeconfig: Path
    kubectl_binary: str
    helm_binary: str | None
    local: bool  # True for the repo's own test bed (pinned versions, KWOK GPU nodes)
    audit_log: Path | None = None
    gateway: tuple[str, int] | None = None  # the shared Gateway's listener (the test bed's data plane)

    def kubectl(self, *args: str, input: str | None = None, check: bool = True,
                timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run([self.kubectl_binary, "--kubeconfig", str(self.kubeconfig), *args],
                              input=input, check=check, text=True, capture_output=True, timeout=timeout)
