"""`modelpilot activator`: the sub-command's flags (standard library only: the operator's CLI
loads this without the `[server]` extra; aiohttp is imported when the command runs)."""

from __future__ import annotations

import argparse
import sys

from modelpilot.activator import settings as s


def add_activator_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    env = s.ENV_PREFIX
    parser = sub.add_parser(
        "activator",
        help="hold requests for models at zero replicas until they can serve, then forward them (needs the "
        "[server] extra)",
        description=f"Every flag falls back to {env}<FLAG> (e.g. {env}HOLD_TIMEOUT); flags win.",
    )
    parser.add_argument("--host", help=f"address to bind (env {env}HOST; default {s.DEFAULT_HOST})")
    parser.add_argument("--port", type=int, help=f"proxy port (env {env}PORT; default {s.DEFAULT_PORT})")
    parser.add_argument("--metrics-host", help=f"address of /metrics and /healthz (env {env}METRICS_HOST; "
                        "default: --host)")  # fmt: skip
    parser.add_argument("--metrics-port", type=int, help=f"port of /metrics and /healthz (env {env}METRICS_PORT; "
                        f"default {s.DEFAULT_METRICS_PORT})")  # fmt: skip
    parser.add_argument("--hold-timeout", type=float, help=f"seconds a request is held at most before a 504 (env "
                        f"{env}HOLD_TIMEOUT; default {s.DEFAULT_HOLD_TIMEOUT:g})")  # fmt: skip
    parser.add_argument("--max-body-bytes", help=f"largest request body, bytes or a quantity such as 16Mi; larger "
                        f"is a 413 (env {env}MAX_BODY_BYTES; default 64Mi)")  # fmt: skip
    parser.add_argument("--allow-upstream", nargs="+", action="extend", metavar="CIDR",
                        help=f"networks upstream addresses may be in, replacing the default (env {env}ALLOW_UPSTREAM, "
                        "comma-separated; default 10.0.0.0/8 172.16.0.0/12 192.168.0.0/16 fc00::/7)")  # fmt: skip
    parser.add_argument("--graceful-timeout", type=float, help="seconds requests in flight get after SIGTERM (env "
                        f"{env}GRACEFUL_TIMEOUT; default {s.DEFAULT_GRACEFUL_TIMEOUT:g})")  # fmt: skip
    parser.add_argument("--log-level", choices=s.LOG_LEVELS, help="env MODELPILOT_LOG_LEVEL; default info")
    parser.set_defaults(func=run_activator)


def run_activator(args: argparse.Namespace) -> int:
    try:
        settings = s.resolve(args)
    except s.ConfigError as err:
        print(f"modelpilot activator: {err}", file=sys.stderr)
        return 2
    try:
        from modelpilot.activator.server import main
    except ImportError as err:
        print(f"modelpilot activator needs the [server] extra: {err}", file=sys.stderr)
        return 2
    return main(settings)
