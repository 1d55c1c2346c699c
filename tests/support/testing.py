"""Run the real runtime as a local process, for tests (tests/server and the e2e canary tests).

    with RuntimeProcess.serve(model_dir, name="iris", env={"MODELPILOT_TRACK": "canary"}) as server:
        server.wait_ready()
        status, body = server.post_json("/v2/models/iris/infer", {...})

`RuntimeProcess.from_container(container, model_dir=...)` starts exactly what the operator's pod
template says (command, args, env), with the in-pod model path and port swapped for local ones.
Only the standard library is used for HTTP, so any test can import this. The child gets the
repository root on its PYTHONPATH, so it can unpickle the models of `tests.support.testmodels`.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tests.support import REPO_ROOT


def free_port(host: str = "127.0.0.1") -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class RuntimeProcess:
    """A `modelpilot serve` (or any `modelpilot` subcommand) child process on loopback."""

    def __init__(
        self,
        args: Sequence[str],
        *,
        port: int,
        env: Mapping[str, str] | None = None,
        host: str = "127.0.0.1",
        inherit_env: bool = True,
    ) -> None:
        self.args = list(args)
        self.port = port
        self.host = host
        base = dict(os.environ) if inherit_env else {"PATH": os.environ.get("PATH", "")}
        # The runtime must see only the MODELPILOT_* variables this test gives it.
        for key in [k for k in base if k.startswith("MODELPILOT_")]:
            del base[key]
        # The test models' classes live in tests.support.testmodels, outside the installed package.
        base["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), base.get("PYTHONPATH")) if p)
        self.env = {**base, **(env or {})}
        self.log_path = Path(tempfile.mkstemp(prefix="modelpilot-serve-", suffix=".log")[1])
        self.proc: subprocess.Popen[bytes] | None = None

    # --- construction -------------------------------------------------------------------------
    @classmethod
    def serve(
        cls,
        model: Path | str,
        *,
        name: str = "model",
        port: int | None = None,
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> RuntimeProcess:
        port = port or free_port()
        args = ["serve", "--model", str(model), "--name", name, "--host", "127.0.0.1", "--port", str(port)]
        return cls([*args, *extra_args], port=port, env=env)

    @classmethod
    def from_container(
        cls,
        container: Mapping[str, Any],
        *,
        model_dir: Path,
        port: int | None = None,
        pod_model_dir: str = "/mnt/models",
        extra_env: Mapping[str, str] | None = None,
    ) -> RuntimeProcess:
        """The server container of a generated pod template, as a local process: its args and env
        as they are, except the model directory (-> `model_dir`), the port (-> a free one) and
        the bind address (loopback)."""
        if list(container.get("command", [])) != ["modelpilot"]:
            raise ValueError(f"not a modelpilot runtime container: command {container.get('command')}")
        port = port or free_port()
        env_names = {e["name"] for e in container.get("env", [])}

        def local(value: str) -> str:
            if value == pod_model_dir or value.startswith(pod_model_dir + "/"):
                return str(model_dir) + value[len(pod_model_dir) :]
            return value

        args = [local(a) for a in container.get("args", [])]
        for i, arg in enumerate(args[:-1]):
            if arg == "--port":
                args[i + 1] = str(port)
        env = {e["name"]: local(str(e.get("value", ""))) for e in container.get("env", []) if "valueFrom" not in e}
        if "MODELPILOT_PORT" in env_names:
            env["MODELPILOT_PORT"] = str(port)
        env["MODELPILOT_HOST"] = "127.0.0.1"
        env.update(extra_env or {})
        return cls(args, port=port, env=env)

    # --- lifecycle ----------------------------------------------------------------------------
    def start(self) -> RuntimeProcess:
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "modelpilot.cli.main", *self.args],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        return self

    def __enter__(self) -> RuntimeProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def _check_alive(self) -> None:
        assert self.proc is not None, "not started"
        if self.proc.poll() is not None:
            raise RuntimeError(f"the runtime exited with {self.proc.returncode}:\n{self.log()[-4000:]}")

    def wait_live(self, timeout: float = 60.0) -> None:
        self.wait_until(lambda: self.get("/v2/health/live")[0] == 200, timeout, "live")

    def wait_ready(self, timeout: float = 120.0) -> None:
        self.wait_until(lambda: self.get("/v2/health/ready")[0] == 200, timeout, "ready")

    def wait_until(self, check: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while True:
            self._check_alive()
            try:
                if check():
                    return
            except OSError:
                pass  # not listening yet
            if time.monotonic() > deadline:
                raise TimeoutError(f"the runtime was not {what} within {timeout}s:\n{self.log()[-4000:]}")
            time.sleep(0.05)

    def terminate(self, timeout: float = 60.0) -> int:
        """SIGTERM, then wait for the exit code."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(15)

    # --- HTTP ---------------------------------------------------------------------------------
    def exchange(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 60.0,
    ) -> tuple[int, dict[str, str], bytes]:
        """One request with the given headers: (status, response headers lower-cased, raw body)."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=dict(headers or {}))
            response = conn.getresponse()
            answer = {k.lower(): v for k, v in response.getheaders()}
            return response.status, answer, response.read()
        finally:
            conn.close()

    def request(self, method: str, path: str, body: bytes | None = None, timeout: float = 60.0) -> tuple[int, bytes]:
        """(status, raw body); a body is sent as JSON."""
        headers = {"Content-Type": "application/json"} if body is not None else {}
        status, _, raw = self.exchange(method, path, body, headers, timeout)
        return status, raw

    def get(self, path: str, timeout: float = 60.0) -> tuple[int, Any]:
        status, raw = self.request("GET", path, timeout=timeout)
        return status, _maybe_json(raw)

    def post_json(self, path: str, payload: Any, timeout: float = 60.0) -> tuple[int, Any]:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        status, raw = self.request("POST", path, body, timeout=timeout)
        return status, _maybe_json(raw)

    def metrics_text(self) -> str:
        status, raw = self.request("GET", "/metrics")
        if status != 200:
            raise RuntimeError(f"/metrics answered {status}")
        return raw.decode()


def _maybe_json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")


def iris_request(rows: Sequence[Sequence[float]] = ((5.1, 3.5, 1.4, 0.2),), name: str = "input-0") -> dict[str, Any]:
    """An infer request for the iris models of `tests.support.testmodels`."""
    flat = [float(v) for row in rows for v in row]
    return {"inputs": [{"name": name, "shape": [len(rows), 4], "datatype": "FP64", "data": flat}]}


def request_codes(server: RuntimeProcess) -> dict[str, float]:
    """The runtime's modelpilot_requests_total, summed by response code."""
    return codes_in(server.metrics_text())


def codes_in(exposition: str) -> dict[str, float]:
    """modelpilot_requests_total in a Prometheus text exposition, summed by response code."""
    return sample_sums(exposition, "modelpilot_requests_total", "code")


def sample_sums(exposition: str, name: str, label: str = "") -> dict[str, float]:
    """The samples called `name` in a Prometheus text exposition, summed by the value of `label`
    (without a label: one sum, under "")."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, float] = {}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name == name:
                key = sample.labels[label] if label else ""
                out[key] = out.get(key, 0.0) + sample.value
    return out


def fetch_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`modelpilot fetch ARGS` as the init container runs it, with only `env` (and a PATH)."""
    return subprocess.run([sys.executable, "-m", "modelpilot.cli.main", "fetch", *args],
                          env={"PATH": "/usr/bin:/bin", **env}, capture_output=True, text=True, timeout=120)
