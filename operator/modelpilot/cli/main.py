"""`modelpilot` command: `modelpilot operator` runs the operator (later: serve, fetch, the plugin)."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from modelpilot.settings import ENV_PREFIX, OperatorSettings


def _operator(args: argparse.Namespace) -> int:
    # Flags win over the environment; the operator reads its settings from the environment.
    flag_env = {
        "PROMETHEUS_URL": args.prometheus_url,
        "GPU_PRODUCT_LABEL": args.gpu_product_label,
        "RUNTIME_IMAGE": args.runtime_image,
        "RESYNC_SECONDS": args.resync_seconds,
        "METRICS_PORT": args.metrics_port,
        "NAMESPACES": ",".join(args.namespace) if args.namespace else None,
    }
    for key, value in flag_env.items():
        if value is not None:
            os.environ[ENV_PREFIX + key] = str(value)
    try:
        settings = OperatorSettings.from_env()
    except ValueError as err:
        print(f"modelpilot operator: {err}", file=sys.stderr)
        return 2

    import kopf

    import modelpilot.handlers  # noqa: F401  (registers the handlers)

    kopf.configure(verbose=args.verbose, log_format=kopf.LogFormat[args.log_format.upper()])
    if not args.verbose:
        # Kopf logs every handler call at INFO; our own decision lines are what operators read.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    kopf.run(standalone=True, clusterwide=not settings.namespaces, namespaces=list(settings.namespaces),
             liveness_endpoint=args.liveness)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="modelpilot", description="Deploy ML models on Kubernetes.")
    sub = parser.add_subparsers(dest="command", required=True)
    op = sub.add_parser("operator", help="run the operator against the current kubeconfig or in-cluster config")
    op.add_argument("--namespace", action="append", help="watch only this namespace (repeatable); default: all")
    op.add_argument("--prometheus-url", help=f"Prometheus base URL (env {ENV_PREFIX}PROMETHEUS_URL)")
    op.add_argument("--gpu-product-label", help=f"node label with the GPU product (env {ENV_PREFIX}GPU_PRODUCT_LABEL)")
    op.add_argument("--runtime-image", help=f"default model-server image (env {ENV_PREFIX}RUNTIME_IMAGE)")
    op.add_argument("--resync-seconds", type=float, help=f"safety resync period (env {ENV_PREFIX}RESYNC_SECONDS)")
    op.add_argument("--metrics-port", type=int, help=f"port of the operator's /metrics (env {ENV_PREFIX}METRICS_PORT)")
    op.add_argument("--liveness", default=None, help="Kopf liveness endpoint, e.g. http://0.0.0.0:8080/healthz")
    op.add_argument("--log-format", choices=["plain", "full", "json"], default="full")
    op.add_argument("-v", "--verbose", action="store_true")
    op.set_defaults(func=_operator)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
