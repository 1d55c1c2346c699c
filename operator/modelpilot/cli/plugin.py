"""`kubectl modelpilot`: list, inspect and steer ModelDeployment rollouts from the terminal, and
follow BatchPrediction runs (batch_cmd.py).

Installed as the console script `kubectl-modelpilot`, so kubectl finds it on PATH as a plugin.

    kubectl modelpilot list [-A]
    kubectl modelpilot status NAME [--watch]
    kubectl modelpilot promote|abort|retry|pause|resume NAME
    kubectl modelpilot history NAME
    kubectl modelpilot drift NAME
    kubectl modelpilot dashboard [-A] [--port 8089] [--address 127.0.0.1] [--open]
    kubectl modelpilot batch list [-A]
    kubectl modelpilot batch status NAME [--watch]

Every failure is one line on stderr and a non-zero exit: 1 for errors, 2 for bad usage.
`batch status --watch` ends with the run: 0 when it Succeeded, 1 when it Failed.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.text import Text

from modelpilot.api.models import PLURAL, SINGULAR
from modelpilot.cli import actions, batch_cmd, dashboard
from modelpilot.cli.drift_view import drift_output, drift_summary
from modelpilot.cli.experiment_view import (
    COMPARISON_COLUMNS,
    comparison_rows,
    experiment_title,
    stage_of,
    step_text,
    steps_of,
)
from modelpilot.cli.kube import CliError, Cluster, connect, events_or_none, follow
from modelpilot.cli.view import VERDICT_STYLE, plain_line, plain_table, render
from modelpilot.cli.viewmodel import age, analysis_rows, list_item, notes
from modelpilot.resources.labels import ANNOTATION_ACTION

PROG = "kubectl modelpilot"
PHASE_STYLE = {"Ready": "green", "Progressing": "yellow", "Pending": "yellow", "Degraded": "bold red",
               "Failed": "bold red"}
RECENT_EVENTS = 8

ACTION_HELP = {
    "promote": "promote the canary now (skips the remaining steps and analyses)",
    "abort": "roll the canary back now (stable keeps serving)",
    "retry": "start the canary again from its first step, counters at zero (also after a rollback)",
    "pause": "set spec.paused=true: the canary holds where it is",
    "resume": "set spec.paused=false, and leave a policy pause (onInconclusive/onProviderError: Pause)",
}


# ------------------------------------------------------------------------------------ helpers


def console_for(width: int) -> Console:
    """A terminal gets colours and its own width; a pipe gets plain text `width` wide."""
    probe = Console()
    if probe.is_terminal:
        return probe
    return Console(width=int(os.environ.get("COLUMNS") or width), no_color=True, highlight=False)


def steps(md: Mapping[str, Any]) -> Sequence[int]:
    """spec.rollout.canary.steps (the default when unset; empty with `match` and no steps)."""
    return steps_of(md)


def row(md: Mapping[str, Any], with_namespace: bool) -> list[str | Text]:
    """One line of `list`: kubectl get's columns plus the canary's step, weight, last verdict and
    stage (STAGE comes last before AGE, so the earlier columns keep their places)."""
    item = list_item(md)
    phase = item["phase"]
    cells: list[str | Text] = [
        item["name"], item["model"], item["stable"] or "-", item["canary"] or "-", item["state"] or "-",
        item["step"], item["weightText"], Text(item["verdictText"], style=VERDICT_STYLE.get(item["verdict"], "")),
        Text(phase or "-", style=PHASE_STYLE.get(phase, "")), item["stage"], age(item["created"]),
    ]
    return [item["namespace"], *cells] if with_namespace else cells


def _ref(namespace: str, name: str) -> str:
    return f"{SINGULAR} {namespace}/{name}"


# ------------------------------------------------------------------------------------ commands


def cmd_list(cluster: Cluster, args: argparse.Namespace, namespace: str) -> int:
    scope = None if args.all_namespaces else namespace
    items = sorted(cluster.list(scope), key=lambda m: (m["metadata"].get("namespace", ""), m["metadata"]["name"]))
    if not items:
        where = "any namespace" if scope is None else f"{scope} namespace"
        print(f"No {PLURAL} found in {where}.", file=sys.stderr)
        return 0
    columns = ["NAME", "MODEL", "STABLE", "CANARY", "STATE", "STEP", "WEIGHT", "VERDICT", "PHASE", "STAGE", "AGE"]
    table = plain_table(*(["NAMESPACE", *columns] if scope is None else columns))
    for md in items:
        table.add_row(*row(md, scope is None))
    console_for(250).print(table)
    return 0


def status_view(md: Mapping[str, Any], events: Sequence[Mapping[str, Any]] | None) -> Group:
    parts: list[Any] = [render(md, latest_only=True, events=None if events is None else events[-RECENT_EVENTS:])]
    parts += [Text(note) for note in notes(md, events is not None, drift_summary(md))]
    return Group(*parts)


def cmd_status(cluster: Cluster, args: argparse.Namespace, namespace: str) -> int:
    md = cluster.get(namespace, args.name)
    if not args.watch:
        console_for(120).print(status_view(md, events_or_none(cluster, md)))
        return 0
    console = Console()
    interval = max(1, int(args.interval))
    try:
        if console.is_terminal:
            with Live(status_view(md, events_or_none(cluster, md)), console=console, auto_refresh=False) as live:
                for md in _follow(cluster, namespace, args.name, interval):
                    live.update(status_view(md, events_or_none(cluster, md)), refresh=True)
        else:
            _watch_plain(cluster, md, namespace, args.name, interval)
    except KeyboardInterrupt:
        return 0
    return 0


def _follow(cluster: Cluster, namespace: str, name: str, interval: int) -> Iterator[dict[str, Any]]:
    return follow(cluster, namespace, name, interval, SINGULAR)


def watch_line(obj: Mapping[str, Any]) -> str:
    """The `--watch` line of one state: plain_line (with stage= and a final verdict=), the step
    while the canary is on (or waiting for) its weight steps, and spec.paused."""
    line = plain_line(obj)
    canary = (obj.get("status") or {}).get("canary") or {}
    step = step_text(obj, canary) if canary else "-"
    if step != "-":
        line += f" step={step}"
    if (obj.get("spec") or {}).get("paused") is True:
        line += " spec.paused=true"
    return line


def _watch_plain(cluster: Cluster, md: dict[str, Any], namespace: str, name: str, interval: int) -> None:
    """One line per change of the rollout and per new event, for logs and pipes."""
    last_line = ""
    seen: set[tuple[str, str, str]] = set()
    first = True
    for obj in itertools.chain([md], _follow(cluster, namespace, name, interval)):
        line = watch_line(obj)
        stamp = time.strftime("%H:%M:%S")
        if line != last_line:
            print(f"{stamp} {namespace}/{name} {line}", flush=True)
            last_line = line
        for event in events_or_none(cluster, obj) or []:
            key = (event["time"], event["reason"], event["message"])
            if key in seen:
                continue
            seen.add(key)
            if not first:
                print(f"{stamp} {namespace}/{name} event {event['type']} {event['reason']}: {event['message']}",
                      flush=True)
        first = False


def cmd_history(cluster: Cluster, args: argparse.Namespace, namespace: str) -> int:
    md = cluster.get(namespace, args.name)
    events = cluster.events(md)
    status = md.get("status") or {}
    stable, canary = status.get("stable") or {}, status.get("canary") or {}
    console = console_for(250)
    head = f"{namespace}/{args.name}: stable {stable.get('version') or '-'}"
    if canary:
        stage = f" in stage {stage_of(canary)}" if stage_of(canary) else ""
        head += (f", canary {canary.get('version')} {canary.get('state')}{stage} at {canary.get('weight', 0)}% "
                 f"(started {canary.get('startedAt', '?')})")
    console.print(head)
    console.print()
    console.print("EVENTS (oldest first; the API server keeps events for about an hour)", style="bold")
    if events:
        table = plain_table("TIME", "TYPE", "REASON", "MESSAGE")
        for event in events:
            count = f" (x{event['count']}, last {event['last']})" if int(event.get("count") or 1) > 1 else ""
            table.add_row(event["time"], Text(event["type"], style="yellow" if event["type"] == "Warning" else ""),
                          event["reason"], event["message"] + count)
        console.print(table)
    else:
        console.print("none")
    console.print()
    analyses = canary.get("analyses") or []
    console.print("ANALYSES (status.canary.analyses: the last 10 measurements, oldest first)", style="bold")
    if analyses:
        table = plain_table("TIME", "METRIC", "VALUE", "THRESHOLD", "VERDICT", "DETAIL")
        for record in analysis_rows(analyses):
            # history's own format: four significant digits, "-" without data (status: three, "—")
            value, verdict = record["value"], record["verdict"]
            table.add_row(record["time"], record["metric"], "-" if value is None else f"{value:.4g}",
                          record["threshold"], Text(verdict, style=VERDICT_STYLE.get(verdict, "")), record["detail"])
        console.print(table)
    else:
        console.print("none (no canary in progress)" if not canary else "none yet")
    experiment = canary.get("experiment")
    if experiment:
        console.print()
        console.print(f"EXPERIMENT (status.canary.experiment) {experiment_title(md, experiment)}", style="bold")
        table = plain_table(*(column.upper() for column in COMPARISON_COLUMNS))
        for cells in comparison_rows(experiment, detail_width=200):
            table.add_row(*cells)
        console.print(table)
    return 0


def cmd_drift(cluster: Cluster, args: argparse.Namespace, namespace: str) -> int:
    console_for(120).print(drift_output(cluster.get(namespace, args.name)))
    return 0


def cmd_action(cluster: Cluster, args: argparse.Namespace, namespace: str) -> int:
    action, name = args.command, args.name
    md = cluster.get(namespace, name)
    reason = actions.why_not(md, action)
    if reason and not args.force:
        raise CliError(f"cannot {action} {_ref(namespace, name)}: {reason} (--force sends it anyway)")
    pending = ((md.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_ACTION)
    body = actions.patch(md, action)
    cluster.patch(namespace, name, body)
    canary = (md.get("status") or {}).get("canary") or {}
    version = canary.get("version", "?")
    said = {
        "promote": f"promote requested: the operator promotes canary {version}",
        "abort": f"abort requested: the operator rolls canary {version} back",
        "retry": f"retry requested: the operator restarts canary {version} from its first step",
        "pause": "paused (spec.paused=true)" + (f": canary {version} holds at {canary.get('weight', 0)}%"
                                                if canary else ": the next canary will hold at its start"),
        "resume": "resumed (spec.paused=false)",
    }[action]
    if action == "resume" and "metadata" in body:
        said += f" and the resume action set (the canary was paused by {canary.get('pausedBy')})"
    print(f"{_ref(namespace, name)}: {said}")
    if pending and "metadata" in body:
        print(f"note: replaced the pending action {pending!r} that the operator had not consumed yet",
              file=sys.stderr)
    return 0


# ------------------------------------------------------------------------------------ parser


def _common(parser: argparse.ArgumentParser, suppress: bool) -> None:
    default = argparse.SUPPRESS if suppress else None
    parser.add_argument("-n", "--namespace", default=default,
                        help="namespace (default: the kubeconfig context's namespace, else default)")
    parser.add_argument("--kubeconfig", default=default, help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config)")
    parser.add_argument("--context", default=default, help="kubeconfig context (default: the current context)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Inspect and steer modelpilot ModelDeployment rollouts, "
                                     "and follow BatchPrediction runs.")
    _common(parser, suppress=False)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    ls = sub.add_parser("list", aliases=["ls"],
                        help="ModelDeployments with their canary step, weight, verdict and stage")
    _common(ls, suppress=True)
    ls.add_argument("-A", "--all-namespaces", action="store_true", help="list across all namespaces")
    ls.set_defaults(func=cmd_list, command="list")

    st = sub.add_parser("status",
                        help="versions, stage, weight, last analysis, experiment, conditions and recent events")
    _common(st, suppress=True)
    st.add_argument("name")
    st.add_argument("-w", "--watch", action="store_true", help="keep redrawing as the rollout moves (Ctrl-C stops)")
    st.add_argument("--interval", type=float, default=2, help="with --watch: refresh events every N seconds (2)")
    st.set_defaults(func=cmd_status)

    for action in actions.ACTIONS:
        act = sub.add_parser(action, help=ACTION_HELP[action])
        _common(act, suppress=True)
        act.add_argument("name")
        act.add_argument("--force", action="store_true", help="send it even when the state says it does nothing")
        act.set_defaults(func=cmd_action)

    for command, func, text in (
            ("history", cmd_history, "the rollout's events in time order, and its analyses"),
            ("drift", cmd_drift, "the stable track's data and concept drift: conditions, features, accuracy")):
        one = sub.add_parser(command, help=text)
        _common(one, suppress=True)
        one.add_argument("name")
        one.set_defaults(func=func)
    dashboard.add_parser(sub, _common)
    batch_cmd.add_parser(sub, _common)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        cluster = Cluster(connect(args.kubeconfig, args.context))
        namespace = args.namespace or cluster.target.namespace
        return int(args.func(cluster, args, namespace))
    except CliError as err:
        print(f"error: {err.message}", file=sys.stderr)
        return err.code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # Output piped into `head` and the like: stop quietly.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
