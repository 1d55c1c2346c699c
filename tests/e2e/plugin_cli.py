"""Running `kubectl modelpilot` as a user does, for the e2e tests: the installed console script
(or `kubectl modelpilot`, found on PATH), KUBECONFIG in the environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.e2e.support import ClusterHandle

BIN = Path(sys.executable).parent
PLUGIN = BIN / "kubectl-modelpilot"


def plugin_env(cluster: ClusterHandle, kubeconfig: Path | str | None = None) -> dict[str, str]:
    """A user's environment for the command: KUBECONFIG (not a flag) points it at the cluster, and
    the console script is on PATH (where `kubectl modelpilot` finds it)."""
    return dict(os.environ, KUBECONFIG=str(kubeconfig or cluster.kubeconfig),
                PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")


def run(cluster: ClusterHandle, *args: str, kubeconfig: Path | str | None = None, via_kubectl: bool = False,
        env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """The command as a user types it, in plugin_env, 220 columns wide."""
    environ = {**plugin_env(cluster, kubeconfig), "COLUMNS": "220", **(env or {})}
    cmd = [cluster.kubectl_binary, "modelpilot", *args] if via_kubectl else [str(PLUGIN), *args]
    return subprocess.run(cmd, env=environ, text=True, capture_output=True, timeout=timeout)


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result.stdout


def fails(result: subprocess.CompletedProcess[str]) -> str:
    """The error: non-zero exit, exactly one line on stderr, nothing on stdout."""
    assert result.returncode != 0, result.stdout
    assert result.stdout == "" and result.stderr.count("\n") == 1 and result.stderr.startswith("error: "), \
        repr(result.stderr)
    return result.stderr.strip()
