"""Throughput and latency of the modelpilot runtime vs MLServer on the same sklearn model.

    make bench-server            (or, from the root: .venv/bin/python -m bench.server.run [--duration 8])

Both servers load the same iris LogisticRegression file and get the same V2 request from wrk
(Debian's package) with a Lua POST script, at several concurrencies, interleaved so background
load on the machine hits both alike. MLServer runs from its own venv under the bench cache
(~/.cache/modelpilot/bench/mlserver-venv, created on first use from PyPI), twice: with its
defaults (inference in one worker process) and with parallel_workers=0 (in the HTTP process).
The raw predict() rate of the model, in-process with no HTTP, is printed as the ceiling.

The model directory holds the model's drift profile, so the `modelpilot` column is the runtime
as it serves by default, with drift monitoring on; a second runtime with MODELPILOT_DRIFT=false
gets the same load, and the drift table compares the two (each measured `--drift-repeats` times
in alternating order, the better run of each kept, as for the ceiling). The in-process cost of
counting one request for drift is printed too.
Numbers are printed, never asserted: they depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import sklearn

from modelpilot.server.loaders import load_model
from modelpilot.server.protocol import conform, decode_request, infer_response
from tests.support import testmodels
from tests.support.testing import free_port

CACHE = Path(os.environ.get("MODELPILOT_CACHE", Path.home() / ".cache" / "modelpilot")) / "bench"
MLSERVER_VENV = CACHE / "mlserver-venv"
# MLServer 1.7.1 (June 2025) predates uvloop 0.22, whose get_event_loop() raises in its worker
# processes ("There is no current event loop"), so its uvloop is pinned to the release of its time.
# scikit-learn is pinned to ours so both servers unpickle the very same model file.
MLSERVER_PACKAGES = [
    "mlserver==1.7.1",
    "mlserver-sklearn==1.7.1",
    "uvloop==0.21.0",
    f"scikit-learn=={sklearn.__version__}",
]
ROW = [5.1, 3.5, 1.4, 0.2]
BODY = json.dumps({"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": ROW}]})
LUA = f"""wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{BODY}'
"""


@dataclass
class Result:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int


def ensure_mlserver() -> Path:
    python = MLSERVER_VENV / "bin" / "python"
    stamp = MLSERVER_VENV / ".packages"
    if python.exists() and stamp.exists() and stamp.read_text() == "\n".join(MLSERVER_PACKAGES):
        return MLSERVER_VENV / "bin" / "mlserver"
    print(f"installing {', '.join(MLSERVER_PACKAGES)} into {MLSERVER_VENV} ...", flush=True)
    shutil.rmtree(MLSERVER_VENV, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(MLSERVER_VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", *MLSERVER_PACKAGES], check=True)
    stamp.write_text("\n".join(MLSERVER_PACKAGES))
    return MLSERVER_VENV / "bin" / "mlserver"


def wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} not ready after {timeout}s:\n{log.read_text()[-3000:]}")


@contextmanager
def process(cmd: list[str], cwd: Path, log: Path, ready_url: str, env: dict[str, str] | None = None) -> Iterator[None]:
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        wait_ready(ready_url, proc, log)
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def wrk(url: str, script: Path, connections: int, seconds: float) -> Result:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = (int(non2xx.group(1)) if non2xx else 0) + (sum(int(g) for g in sock.groups()) if sock else 0)
    return Result(rps, p50, p99, errors)


def raw_rates(model_dir: Path, windows: int = 8, window_seconds: float = 0.4) -> tuple[float, float]:
    """predict() alone, and predict() plus this runtime's decode/validate/encode, per second: the
    best of several short windows, so other work on the machine does not drag the ceiling down."""
    import joblib
    import orjson

    estimator = joblib.load(model_dir / testmodels.MODEL_FILE)
    x = np.asarray([ROW])
    model = load_model(model_dir)
    body = BODY.encode()

    def protocol() -> None:
        request = decode_request(orjson.loads(body))
        inputs = conform(request, model.inputs)
        out = model.predict(inputs, model.default_outputs)
        orjson.dumps(infer_response("iris", "", out, None), option=orjson.OPT_SERIALIZE_NUMPY)

    rates = []
    for fn in (lambda: estimator.predict(x), protocol):
        for _ in range(200):
            fn()
        best = 0.0
        for _ in range(windows):
            n, started = 0, time.perf_counter()
            while time.perf_counter() - started < window_seconds:
                for _ in range(50):
                    fn()
                n += 50
            best = max(best, n / (time.perf_counter() - started))
        rates.append(best)
    return rates[0], rates[1]


def drift_cost_us(model_dir: Path, calls: int = 100_000) -> tuple[float, float]:
    """Microseconds DriftMonitor.observe adds to one iris request (inputs [1, 4], one prediction),
    without and with a request id to remember: the best of three rounds."""
    from prometheus_client import CollectorRegistry

    from modelpilot.server.drift import DriftMonitor, DriftSettings
    from modelpilot.server.metrics import MetricLabels

    monitor = DriftMonitor(MetricLabels("iris", "iris", "", ""), DriftSettings(), CollectorRegistry())
    monitor.load(load_model(model_dir), model_dir)
    inputs = {"input-0": np.asarray([ROW])}
    output = np.asarray([0])
    costs = []
    for with_id in (False, True):
        best = float("inf")
        for round_ in range(3):
            ids = [f"{round_}-{i}" if with_id else None for i in range(calls)]
            started = time.perf_counter()
            for request_id in ids:
                monitor.remember(output, request_id)
                monitor.observe(inputs, output)
            best = min(best, (time.perf_counter() - started) / calls * 1e6)
        costs.append(best)
    return costs[0], costs[1]


def runtime_env(drift: bool) -> dict[str, str]:
    """This process's environment without MODELPILOT_* settings, plus MODELPILOT_DRIFT=false when off."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELPILOT_")}
    return env if drift else {**env, "MODELPILOT_DRIFT": "false"}


def measure_drift(urls: dict[str, str], script: Path, levels: list[int], seconds: float,
                  repeats: int) -> dict[tuple[str, int], Result]:  # fmt: skip
    """On and off at each concurrency, `repeats` times in alternating order; the better run of each."""
    best: dict[tuple[str, int], Result] = {}
    for c in levels:
        for rep in range(repeats):
            for name in (urls if rep % 2 == 0 else reversed(urls)):
                result = wrk(urls[name], script, c, seconds)
                if (name, c) not in best or result.rps > best[(name, c)].rps:
                    best[(name, c)] = result
    return best


def print_drift(results: dict[tuple[str, int], Result], levels: list[int], cost: tuple[float, float]) -> None:
    print()
    print(f"drift monitoring, in-process: {cost[0]:.1f} us per request counted, {cost[1]:.1f} us with a request id "
          "remembered for feedback")  # fmt: skip
    header = f"{'conc':>4} | {'drift on req/s':>14} {'p99 ms':>7} | {'drift off req/s':>15} {'p99 ms':>7} | " \
             f"{'throughput cost':>15} {'p99 cost':>8}"  # fmt: skip
    print(header)
    print("-" * len(header))
    for c in levels:
        on, off = results[("modelpilot", c)], results[("modelpilot-off", c)]
        print(f"{c:>4} | {on.rps:>14,.0f} {on.p99_ms:>7.2f} | {off.rps:>15,.0f} {off.p99_ms:>7.2f} | "
              f"{1 - on.rps / off.rps:>14.1%} {on.p99_ms / off.p99_ms - 1:>+8.0%}")  # fmt: skip
    print("throughput cost = 1 - on/off (negative: on was faster, i.e. noise); p99 cost = on/off - 1")


def start_servers(stack: ExitStack, root: Path, model_dir: Path, mlserver: Path) -> dict[str, str]:
    """Both runtimes (drift monitoring on and off) and both MLServers on `model_dir`: {name: infer URL}."""
    servers: dict[str, str] = {}
    for label, drift in (("modelpilot", True), ("modelpilot-off", False)):
        port = free_port()
        stack.enter_context(
            process(
                [sys.executable, "-m", "modelpilot.cli.main", "serve", "--model", str(model_dir), "--name", "iris",
                 "--host", "127.0.0.1", "--port", str(port)],
                root, root / f"{label}.log", f"http://127.0.0.1:{port}/v2/health/ready", runtime_env(drift),
            )
        )  # fmt: skip
        servers[label] = f"http://127.0.0.1:{port}/v2/models/iris/infer"
    for label, workers in (("mlserver", None), ("mlserver-inproc", 0)):
        repo = root / label
        (repo / "iris").mkdir(parents=True)
        shutil.copy(model_dir / testmodels.MODEL_FILE, repo / "iris" / testmodels.MODEL_FILE)
        (repo / "iris" / "model-settings.json").write_text(
            json.dumps({"name": "iris", "implementation": "mlserver_sklearn.SKLearnModel",
                        "parameters": {"uri": f"./{testmodels.MODEL_FILE}"}})
        )  # fmt: skip
        http_port = free_port()
        settings = {"host": "127.0.0.1", "http_port": http_port, "grpc_port": free_port(),
                    "metrics_port": free_port()}  # fmt: skip
        if workers is not None:
            settings["parallel_workers"] = workers
        (repo / "settings.json").write_text(json.dumps(settings))
        stack.enter_context(
            process([str(mlserver), "start", "."], repo, root / f"{label}.log",
                    f"http://127.0.0.1:{http_port}/v2/models/iris/ready")
        )  # fmt: skip
        servers[label] = f"http://127.0.0.1:{http_port}/v2/models/iris/infer"
    return servers


def print_comparison(results: dict[tuple[str, int], Result], levels: list[int]) -> None:
    header = f"{'conc':>4} | {'modelpilot req/s':>16} {'p50 ms':>7} {'p99 ms':>7} | " \
             f"{'mlserver req/s':>14} {'p50 ms':>7} {'p99 ms':>7} | " \
             f"{'mlserver inproc':>15} {'p50 ms':>7} {'p99 ms':>7} | {'x best':>6} {'p99 vs':>6}"  # fmt: skip
    print(header)
    print("-" * len(header))
    for c in levels:
        ours = results[("modelpilot", c)]
        a, b = results[("mlserver", c)], results[("mlserver-inproc", c)]
        best = max(a, b, key=lambda r: r.rps)
        print(
            f"{c:>4} | {ours.rps:>16,.0f} {ours.p50_ms:>7.2f} {ours.p99_ms:>7.2f} | "
            f"{a.rps:>14,.0f} {a.p50_ms:>7.2f} {a.p99_ms:>7.2f} | "
            f"{b.rps:>15,.0f} {b.p50_ms:>7.2f} {b.p99_ms:>7.2f} | "
            f"{ours.rps / best.rps:>5.2f}x {ours.p99_ms / best.p99_ms:>5.2f}x"
        )
    print()
    print("x best = modelpilot req/s / the faster MLServer's; p99 vs = modelpilot p99 / that server's p99 "
          "(below 1 is better)")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per wrk run (default 8)")
    parser.add_argument("--concurrency", default="1,4,16,64", help="comma-separated connection counts")
    parser.add_argument("--drift-repeats", type=int, default=2, help="runs of drift on and off per concurrency")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is missing: apt-get install wrk", file=sys.stderr)
        return 2
    levels = [int(c) for c in args.concurrency.split(",")]
    mlserver = ensure_mlserver()

    with tempfile.TemporaryDirectory(prefix="modelpilot-bench-") as tmp, ExitStack() as stack:
        root = Path(tmp)
        model_dir = root / "iris"
        testmodels.write_iris(model_dir)
        testmodels.write_profile(model_dir)  # drift monitoring on, as the runtime serves by default
        script = root / "post.lua"
        script.write_text(LUA)
        predict_rate, protocol_rate = raw_rates(model_dir)
        cost = drift_cost_us(model_dir)
        servers = start_servers(stack, root, model_dir, mlserver)
        for url in servers.values():  # warm-up: first requests, lazy imports, caches
            wrk(url, script, 4, 2)
        results: dict[tuple[str, int], Result] = {}
        for c in levels:
            for name in ("modelpilot", "mlserver", "mlserver-inproc"):  # interleaved: background load hits all alike
                results[(name, c)] = wrk(servers[name], script, c, args.duration)
        drift_urls = {name: servers[name] for name in ("modelpilot", "modelpilot-off")}
        drift_results = measure_drift(drift_urls, script, levels, args.duration, args.drift_repeats)

    load = os.getloadavg()[0]
    print()
    print(f"iris LogisticRegression, 1 row per request, wrk -t1, {args.duration:g}s per cell, "
          f"{os.cpu_count()} CPUs, load average {load:.2f} at the end")  # fmt: skip
    print(f"raw model.predict(): {predict_rate:,.0f}/s; with this runtime's JSON decode, checks and encode: "
          f"{protocol_rate:,.0f}/s (in-process, no HTTP: the ceiling for one process)")  # fmt: skip
    print()
    print_comparison(results, levels)
    print_drift(drift_results, levels, cost)
    errors = {k: r.errors for k, r in [*results.items(), *drift_results.items()] if r.errors}
    if errors:
        print(f"non-2xx or socket errors: {errors}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
