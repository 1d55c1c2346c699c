"""`kubectl modelpilot batch list|status NAME [--watch]`: the BatchPrediction commands and their
parser (plugin.py adds them with `add_parser`); the rendering is in batch_view.py.

`batch status NAME --watch` follows the latest run until its phase is Succeeded (exit 0) or Failed
(exit 1): redrawn live on a terminal, one plain line per change (and per new shard failure)
otherwise. Ctrl-C stops it with 130, like any interrupted command.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from rich.console import Console
from rich.live import Live

from modelpilot.cli.batch_view import (
    LIST_COLUMNS,
    exit_code,
    failure_key,
    failure_line,
    status_view,
    watch_line,
)
from modelpilot.cli.batch_view import batch_row as row
from modelpilot.cli.kube import BATCH_PREDICTIONS, Kind, follow
from modelpilot.cli.view import plain_table

WATCH_INTERVAL = 5.0  # seconds: each watch window ends this often, and the view is redrawn (its clock moves)


class Batches(Protocol):
    """What the commands read: `Cluster.of(BATCH_PREDICTIONS)`, or a fake in the tests."""

    def get(self, namespace: str, name: str) -> dict[str, Any]: ...

    def list(self, namespace: str | None) -> list[dict[str, Any]]: ...

    def watch(self, namespace: str, name: str, seconds: int) -> Iterator[tuple[str, dict[str, Any]]]: ...


class Kinds(Protocol):
    """What the commands are given: a `Cluster` (of ModelDeployments) that can read another kind."""

    def of(self, kind: Kind) -> Batches: ...


def console_for(width: int) -> Console:
    """A terminal gets colours and its own width; a pipe gets plain text `width` wide (as in plugin.py)."""
    probe = Console()
    if probe.is_terminal:
        return probe
    return Console(width=int(os.environ.get("COLUMNS") or width), no_color=True, highlight=False)


# ------------------------------------------------------------------------------------ commands


def cmd_list(cluster: Kinds, args: argparse.Namespace, namespace: str) -> int:
    scope = None if args.all_namespaces else namespace
    items = sorted(cluster.of(BATCH_PREDICTIONS).list(scope),
                   key=lambda bp: (bp["metadata"].get("namespace", ""), bp["metadata"]["name"]))
    if not items:
        where = "any namespace" if scope is None else f"{scope} namespace"
        print(f"No {BATCH_PREDICTIONS.plural} found in {where}.", file=sys.stderr)
        return 0
    table = plain_table(*(["NAMESPACE", *LIST_COLUMNS] if scope is None else LIST_COLUMNS))
    for bp in items:
        table.add_row(*row(bp, scope is None))
    console_for(250).print(table)
    return 0


def cmd_status(cluster: Kinds, args: argparse.Namespace, namespace: str) -> int:
    batches = cluster.of(BATCH_PREDICTIONS)
    if not args.watch:
        console_for(120).print(status_view(batches.get(namespace, args.name)))
        return 0
    return watch_status(batches, namespace, args.name, Console(), interval=args.interval)


def watch_status(batches: Batches, namespace: str, name: str, console: Console,
                 interval: float = WATCH_INTERVAL) -> int:
    """Follow the run until it is done: 0 when it Succeeded, 1 when it Failed."""
    states = itertools.chain([batches.get(namespace, name)],
                             follow(batches, namespace, name, max(1, int(interval)), BATCH_PREDICTIONS.singular))
    if console.is_terminal:
        return _watch_live(states, console)
    return _watch_plain(states, namespace, name)


def _watch_live(states: Iterator[dict[str, Any]], console: Console) -> int:
    bp = next(states)
    with Live(status_view(bp), console=console, auto_refresh=False) as live:
        while True:
            code = exit_code(bp)
            if code is not None:
                return code
            bp = next(states)
            live.update(status_view(bp), refresh=True)


def _watch_plain(states: Iterator[dict[str, Any]], namespace: str, name: str,
                 clock: Callable[[], str] = lambda: time.strftime("%H:%M:%S")) -> int:
    """One line per change of the run and per shard failure not printed yet, for logs and pipes."""
    last_line = ""
    printed: set[tuple[str, ...]] = set()
    for bp in states:
        stamp, line = clock(), watch_line(bp)
        if line != last_line:
            print(f"{stamp} {namespace}/{name} {line}", flush=True)
            last_line = line
        for failure in (bp.get("status") or {}).get("failures") or []:
            if failure_key(failure) not in printed:
                printed.add(failure_key(failure))
                print(f"{stamp} {namespace}/{name} {failure_line(failure)}", flush=True)
        code = exit_code(bp)
        if code is not None:
            return code
    return 1  # not reached: follow() never ends


# ------------------------------------------------------------------------------------ parser


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser],
               common: Callable[[argparse.ArgumentParser, bool], None]) -> None:
    """`batch list [-A]` and `batch status NAME [--watch]` under the plugin's subcommands `sub`;
    `common` adds -n/--kubeconfig/--context (suppressed defaults, so they go anywhere)."""
    batch = sub.add_parser("batch", help="BatchPredictions: list them, or a run's shards, rows and failures")
    common(batch, True)
    batch.set_defaults(command="batch")
    commands = batch.add_subparsers(dest="batch_command", required=True, metavar="COMMAND")

    ls = commands.add_parser("list", aliases=["ls"], help="BatchPredictions with model, progress, rows, phase")
    common(ls, True)
    ls.add_argument("-A", "--all-namespaces", action="store_true", help="list across all namespaces")
    ls.set_defaults(func=cmd_list, batch_command="list")

    st = commands.add_parser("status", help="model, data, job, times, rows, shards, conditions, failures, manifest")
    common(st, True)
    st.add_argument("name")
    st.add_argument("-w", "--watch", action="store_true",
                    help="follow the run until it Succeeded (exit 0) or Failed (exit 1)")
    st.add_argument("--interval", type=float, default=WATCH_INTERVAL,
                    help=f"with --watch: redraw at least every N seconds ({WATCH_INTERVAL:g})")
    st.set_defaults(func=cmd_status)
