"""The operator at scale on the local test bed: latency, memory and API requests per N.

    make bench-operator                          (N = 100, 1000, 3000)
    make bench-operator BENCH_ARGS="--counts 100"
    python hack/testbed.py exec -- .venv/bin/python -m bench.operator.run --counts 100   (from the root)

Runs inside the test bed's network namespace (the Makefile target enters it). For each N, in a
fresh namespace `bench-op-<N>`: a watcher process watches Deployments and ModelDeployments, the
operator starts (`modelpilot operator`, restricted to that namespace, as a ServiceAccount whose
reads the test bed's audit policy logs), N ModelDeployments are created from a pool of threads,
and the bench times create -> Deployment ADDED and create -> Ready=True per object, the
operator's RSS (idle, peak, steady) and its API requests in a steady window (audit log). Then
the floor: in `bench-floor-<N>`, without the operator, the same children (built by the operator's
own builders) are applied directly at the same concurrency. Each namespace is deleted afterwards.
Numbers are printed, never asserted; the raw figures go to bench/operator/results/<time>/.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from rich.console import Console

import modelpilot
from bench.operator.audit import policy_audits_reads
from bench.operator.kube import Api, apply_crds, operator_kubeconfig
from bench.operator.report import print_table, write_json
from bench.operator.scenario import Context, run_floor, run_operator
from hack import netns, testbed

ROOT = Path(__file__).resolve().parents[2]
RESULTS = Path(__file__).resolve().parent / "results"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counts", default="100,1000,3000", help="ModelDeployments per run, comma-separated")
    parser.add_argument("--concurrency", type=int, default=16, help="create requests in flight")
    parser.add_argument("--floor", choices=["each", "largest", "none"], default="each",
                        help="run the floor (no operator) for each N, for the largest only, or not at all")
    parser.add_argument("--resync-seconds", type=float, default=60, help="MODELPILOT_RESYNC_SECONDS")
    parser.add_argument("--idle-seconds", type=float, default=10, help="idle before the creates (idle RSS)")
    parser.add_argument("--settle-seconds", type=float, default=60, help="idle after all Ready (steady RSS)")
    parser.add_argument("--window-seconds", type=float, default=60, help="steady window counting API requests")
    parser.add_argument("--timeout", type=float, help="seconds to wait for all Ready (default 300 + N/2)")
    parser.add_argument("--cleanup-timeout", type=float, default=900, help="seconds to wait for namespace deletion")
    parser.add_argument("--keep", action="store_true", help="keep the namespaces (for a look afterwards)")
    parser.add_argument("--output", type=Path, help="results directory (default bench/operator/results/<time>)")
    args = parser.parse_args(argv)
    args.counts = [int(c) for c in args.counts.split(",") if c.strip()]
    return args


def _git_head() -> str:
    result = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"], capture_output=True,
                            text=True, check=False)
    return result.stdout.strip()


def _context(args: argparse.Namespace, cluster: testbed.Cluster, api: Api, operator_config: Path,
             results_dir: Path, console: Console) -> Context:
    user = testbed.BENCH_OPERATOR_USER
    # The copy kwokctl gave the API server (the test bed's own file as a fallback).
    policy = next((p for p in (cluster.cluster_dir / "audit.yaml", cluster.workdir / "audit-policy.yaml")
                   if p.exists()), cluster.cluster_dir / "audit.yaml")
    audits_reads = policy_audits_reads(policy, user)
    if not audits_reads:
        console.print("[yellow]the running test bed's audit policy does not log the bench operator's reads "
                      "(it was started before that rule existed): reads and watches are not counted. "
                      "`make cluster-down cluster-up` fixes it.")
    return Context(api=api, operator_kubeconfig=operator_config, audit_log=cluster.audit_log, audit_user=user,
                   audits_reads=audits_reads, results_dir=results_dir, console=console,
                   concurrency=args.concurrency, resync_seconds=args.resync_seconds, idle_seconds=args.idle_seconds,
                   settle_seconds=args.settle_seconds, window_seconds=args.window_seconds, timeout=args.timeout,
                   cleanup_timeout=args.cleanup_timeout, keep=args.keep)


def run_all(ctx: Context, args: argparse.Namespace, meta: dict[str, Any], output: Path) -> list[dict[str, Any]]:
    """Every run in order; the JSON file is rewritten after each, so an interrupted bench keeps
    what it measured."""
    results: list[dict[str, Any]] = []
    for count in args.counts:
        ctx.log(f"[bold]operator, N={count}")
        results.append(run_operator(ctx, count))
        write_json(output, meta, results)
        if args.floor == "each" or (args.floor == "largest" and count == max(args.counts)):
            ctx.log(f"[bold]floor, N={count}")
            results.append(run_floor(ctx, count))
            write_json(output, meta, results)
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console(log_path=False)
    if not console.is_terminal:  # a log file or a pipe: room for the whole table
        console = Console(log_path=False, width=200)
    cluster = testbed.Cluster(workdir=Path(os.environ.get("MODELPILOT_CLUSTER_DIR", testbed.DEFAULT_WORKDIR)))
    if not netns.inside(cluster.netns) or not os.environ.get("KUBECONFIG"):
        console.print("run it inside the test bed: `make bench-operator` "
                      "(or `python hack/testbed.py exec -- .venv/bin/python -m bench.operator.run`)")
        return 2
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    results_dir = args.output or RESULTS / stamp
    results_dir.mkdir(parents=True, exist_ok=True)
    output = results_dir / "results.json"
    api = Api(pool=args.concurrency + 8)
    apply_crds(api, ROOT / "crds")
    source = str(Path(modelpilot.__file__).resolve().parent)
    console.print(f"modelpilot from {source}; results in {results_dir}")
    meta = {"started": stamp, "git": _git_head(), "modelpilot_source": source, "cpus": os.cpu_count(), "args": {
        k: v if not isinstance(v, Path) else str(v) for k, v in vars(args).items()}}
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="modelpilot-bench-") as tmp:
        operator_config = operator_kubeconfig(api, Path(os.environ["KUBECONFIG"]), testbed.BENCH_OPERATOR_NAMESPACE,
                                              testbed.BENCH_OPERATOR_SA, Path(tmp) / "operator.kubeconfig")
        ctx = _context(args, cluster, api, operator_config, results_dir, console)
        try:
            results = run_all(ctx, args, meta, output)
        except KeyboardInterrupt:
            console.print("[yellow]interrupted: the table shows the runs that finished")
            results, code = _finished(output), 130
        except Exception:
            console.print_exception()
            console.print("[red]a run failed: the table shows the runs that finished")
            results, code = _finished(output), 1
        else:
            code = 0
    print_table(results, console)
    console.print(f"raw figures: {output}")
    return code


def _finished(output: Path) -> list[dict[str, Any]]:
    return list(json.loads(output.read_text())["results"]) if output.exists() else []


if __name__ == "__main__":
    sys.exit(main())
