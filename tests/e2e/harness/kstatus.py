"""Go's kstatus (sigs.k8s.io/cli-utils/pkg/kstatus/status, what Flux, kpt and Helm's --wait use),
as a small command built from tests/tools/kstatus with the Go module proxy.

The binary is built once per source hash into ~/.cache/modelpilot/tools/kstatus-<hash>/ (about a
minute cold on 2 cores) and run on live objects: a Kubernetes List on stdin, one verdict per object out.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.gotools import go_tool, output_path

SOURCE = Path(__file__).resolve().parents[2] / "tools" / "kstatus"


@dataclass(frozen=True)
class Verdict:
    status: str  # InProgress | Failed | Current | Terminating | NotFound | Unknown
    message: str


def binary() -> Path:
    """Built per source hash, so a change to the tool rebuilds it."""
    digest = hashlib.sha256(b"".join((SOURCE / f).read_bytes() for f in ("go.mod", "go.sum", "main.go")))
    key = f"kstatus-{digest.hexdigest()[:12]}"
    return go_tool(key, "kstatus", ["build", "-mod=readonly", "-trimpath", "-ldflags", "-s -w", "-o",
                                    str(output_path(key, "kstatus")), "."], cwd=SOURCE, what="the kstatus tool")


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
