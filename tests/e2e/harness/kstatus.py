"""Go's kstatus (sigs.k8s.io/cli-utils/pkg/kstatus/status, what Flux, kpt and Helm's --wait use),
as a small command built from tests/tools/kstatus with the Go module proxy.

The binary is built once per source hash into ~/.cache/modelpilot/tools/kstatus-<hash>/ (under a
file lock, so parallel workers build it once; about a minute cold on 2 cores) and run on live
objects: a Kubernetes List on stdin, one verdict per object out.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SOURCE = Path(__file__).resolve().parents[2] / "tools" / "kstatus"
CACHE = Path(os.environ.get("MODELPILOT_CACHE", Path.home() / ".cache" / "modelpilot"))


@dataclass(frozen=True)
class Verdict:
    status: str  # InProgress | Failed | Current | Terminating | NotFound | Unknown
    message: str


def binary() -> Path:
    digest = hashlib.sha256(b"".join((SOURCE / f).read_bytes() for f in ("go.mod", "go.sum", "main.go")))
    bin_dir = CACHE / "tools" / f"kstatus-{digest.hexdigest()[:12]}"
    built = bin_dir / "kstatus"
    if built.is_file():
        return built
    go = shutil.which("go")
    if go is None:
        raise RuntimeError("the Go toolchain (`go`) is not on PATH, so the kstatus tool cannot be built")
    bin_dir.mkdir(parents=True, exist_ok=True)
    with (bin_dir / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if built.is_file():
            return built
        env = {**os.environ, "GOTOOLCHAIN": "local", "GOWORK": "off", "CGO_ENABLED": "0",
               "GOFLAGS": "-buildvcs=false -mod=readonly"}
        result = subprocess.run([go, "build", "-trimpath", "-ldflags", "-s -w", "-o", str(built) + ".tmp", "."],
                                cwd=SOURCE, env=env, capture_output=True, text=True, timeout=1200)
        if result.returncode != 0:
            raise RuntimeError(f"building the kstatus tool failed ({result.returncode}):\n{result.stderr[-4000:]}")
        os.replace(str(built) + ".tmp", built)
    return built


def compute(*objects: dict[str, Any]) -> list[Verdict]:
    """kstatus's verdict for each object, as the Go library computes it."""
    listing = {"apiVersion": "v1", "kind": "List", "items": list(objects)}
    result = subprocess.run([str(binary())], input=json.dumps(listing), capture_output=True, text=True,
                            timeout=60, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"kstatus failed: {result.stderr}")
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    return [Verdict(line["status"], line["message"]) for line in lines]


def of(obj: dict[str, Any]) -> Verdict:
    (verdict,) = compute(obj)
    return verdict
