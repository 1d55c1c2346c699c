"""A real S3-compatible server for the storage tests: MinIO, built from the Go module proxy.

The binary is built once into ~/.cache/modelpilot/tools/minio-<version>/ (about 4 minutes cold
on 2 cores, then reused) and started as a plain process on loopback with a temporary data dir.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.support.gotools import go_tool
from tests.support.testing import free_port

# github.com/minio/minio publishes no semver tags, so the proxy serves pseudo-versions; its go.mod
# has no replace directives, so `go install` builds it as it is.
MINIO_MODULE = "github.com/minio/minio"
MINIO_VERSION = "v0.0.0-20260212201848-7aac2a2c5b7c"
ACCESS_KEY = "modelpilot-test"
SECRET_KEY = "modelpilot-test-secret"


def minio_binary() -> Path:
    """The pinned MinIO binary, built with `go install` on first use (about 4 minutes cold)."""
    return go_tool(f"minio-{MINIO_VERSION}", "minio",
                   ["install", "-trimpath", "-ldflags", "-s -w", f"{MINIO_MODULE}@{MINIO_VERSION}"], what="MinIO")


@dataclass
class MinioServer:
    endpoint: str
    access_key: str
    secret_key: str

    def env(self) -> dict[str, str]:
        """The variables the operator maps from a storage Secret into the fetch container."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_REGION": "us-east-1",
        }


@contextlib.contextmanager
def run_minio(data_dir: Path) -> Iterator[MinioServer]:
    binary = minio_binary()
    port, console = free_port(), free_port()
    env = {
        **os.environ,
        "MINIO_ROOT_USER": ACCESS_KEY,
        "MINIO_ROOT_PASSWORD": SECRET_KEY,
        "MINIO_BROWSER": "off",
        "MINIO_UPDATE": "off",
        "HOME": str(data_dir),  # MinIO writes ~/.minio; keep it out of the real home
    }
    log = (data_dir / "minio.log").open("wb")
    proc = subprocess.Popen(
        [binary, "server", str(data_dir / "data"), "--address", f"127.0.0.1:{port}",
         "--console-address", f"127.0.0.1:{console}", "--quiet"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"MinIO exited with {proc.returncode}: {(data_dir / 'minio.log').read_text()}")
            try:
                with urllib.request.urlopen(f"{endpoint}/minio/health/ready", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("MinIO did not become ready within 60s")
            time.sleep(0.1)
        yield MinioServer(endpoint=endpoint, access_key=ACCESS_KEY, secret_key=SECRET_KEY)
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(15)
        log.close()
