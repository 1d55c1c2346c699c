"""Test tools built from the Go module proxy once, into ~/.cache/modelpilot/tools/<key>/ (outside
the repo, so a clean clone reuses them), under a file lock so parallel test workers build once."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from pathlib import Path

CACHE = Path(os.environ.get("MODELPILOT_CACHE", Path.home() / ".cache" / "modelpilot"))


class ToolchainMissing(RuntimeError):
    """No Go toolchain on PATH: the tool cannot be built."""


def go_tool(key: str, name: str, go_args: list[str], *, cwd: Path | None = None, what: str = "") -> Path:
    """`~/.cache/modelpilot/tools/<key>/<name>`, made by `go <go_args>` on first use. GOBIN is the
    tool's directory, so `go install MODULE@VERSION` lands there; a `go build` passes `-o`
    (`output_path(key, name)`)."""
    bin_dir = CACHE / "tools" / key
    binary = bin_dir / name
    if binary.is_file():
        return binary
    what = what or name
    go = shutil.which("go")
    if go is None:
        raise ToolchainMissing(f"the Go toolchain (`go`) is not on PATH, so {what} cannot be built")
    bin_dir.mkdir(parents=True, exist_ok=True)
    with (bin_dir / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if binary.is_file():
            return binary
        env = {**os.environ, "GOTOOLCHAIN": "local", "GOWORK": "off", "CGO_ENABLED": "0",
               "GOFLAGS": "-buildvcs=false", "GOBIN": str(bin_dir)}
        result = subprocess.run([go, *go_args], cwd=cwd, env=env, capture_output=True, text=True, timeout=1800)
        if result.returncode != 0 or not binary.is_file():
            raise RuntimeError(f"building {what} failed ({result.returncode}):\n{result.stderr[-4000:]}")
    return binary


def output_path(key: str, name: str) -> Path:
    return CACHE / "tools" / key / name
