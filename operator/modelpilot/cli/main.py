"""`modelpilot` command: `operator` runs the operator; `serve`, `fetch` and `profile` are the
model-server runtime and `activator` holds requests for models at zero (they need the `[server]`
extra, imported only inside those subcommands)."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from modelpilot.activator.command import add_activator_command
from modelpilot.cli.batch import add_batch_command
from modelpilot.cli.profile import add_profile_command
from modelpilot.optimize.command import add_optimize_command
from modelpilot.settings import ENV_PREFIX, OperatorSettings


def _operator(args: argparse.Namespace) -> int:
    # Flags win over the environment; the operator reads its settings from the environment.
    flag_env = {
        "PROMETHEUS_URL": args.prometheus_url,
        "GPU_PRODUCT_LABEL": args.gpu_product_label,
        "RUNTIME_IMAGE": args.runtime_image,
        "RESYNC_SECONDS": args.resync_seconds,
        "METRICS_PORT": args.metrics_port,
        "MAX_MODEL_BYTES": args.max_model_bytes,
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
    elector = None
    if settings.leader_election:
        from modelpilot.k8s.client import Kube
        from modelpilot.leader.elector import elect

        # One attempt per look: the election has its own rhythm and deadlines.
        elector = elect(Kube.from_environment(max_attempts=1), settings.leader_election_namespace,
                        settings.leader_election_id, settings.leader_election_lease_seconds, args.liveness)
        if elector is None:
            return 0
    try:
        kopf.run(standalone=True, clusterwide=not settings.namespaces, namespaces=list(settings.namespaces),
                 liveness_endpoint=args.liveness)
    finally:
        if elector is not None:
            elector.release()
    return 0


def _serve(args: argparse.Namespace) -> int:
    try:
        from modelpilot.server.serve import ConfigError, resolve_config, serve
    except ImportError as err:
        print(f"modelpilot serve needs the [server] extra: {err}", file=sys.stderr)
        return 2
    try:
        config = resolve_config(args)
    except ConfigError as err:
        print(f"modelpilot serve: {err}", file=sys.stderr)
        return 2
    return serve(config)


def _fetch(args: argparse.Namespace) -> int:
    import logging
    from pathlib import Path

    try:
        from modelpilot.server.storage import FetchError, fetch
    except ImportError as err:
        print(f"modelpilot fetch needs the [server] extra: {err}", file=sys.stderr)
        return 2
    uri = args.uri or os.environ.get("MODELPILOT_MODEL_URI")
    target = args.dir or os.environ.get("MODELPILOT_MODEL_DIR")
    if not uri or not target:
        print("modelpilot fetch: give URI and DIR (or MODELPILOT_MODEL_URI and MODELPILOT_MODEL_DIR)", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        fetch(uri, Path(target), sha256=args.sha256, force=args.force)
    except FetchError as err:
        print(f"modelpilot fetch: {err}", file=sys.stderr)
        return 1
    return 0


def _add_runtime(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    _add_serve(sub)
    _add_fetch(sub)
    add_profile_command(sub)
    add_batch_command(sub)
    add_optimize_command(sub)
    add_activator_command(sub)


def _add_serve(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = sub.add_parser(
        "serve",
        help="serve a model over Open Inference Protocol v2 (needs the [server] extra)",
        description="Every flag falls back to the MODELPILOT_* variable the operator sets in the pod.",
    )
    serve.add_argument("--model", help="model directory or file, or a URI fetched first (s3://, https://, ...)")
    serve.add_argument("--model-dir", help="directory holding the model (env MODELPILOT_MODEL_DIR)")
    serve.add_argument("--format", help="sklearn | xgboost | onnx (env MODELPILOT_MODEL_FORMAT; default: by file name)")
    serve.add_argument("--name", help="model name in the URL and metrics (env MODELPILOT_MODEL_NAME; default model)")
    serve.add_argument("--model-version", help="model version label (env MODELPILOT_MODEL_VERSION)")
    serve.add_argument("--deployment", help="model_deployment metric label (env MODELPILOT_MODEL_DEPLOYMENT)")
    serve.add_argument("--track", help="track metric label: stable | canary (env MODELPILOT_TRACK)")
    serve.add_argument("--host", help="address to bind (env MODELPILOT_HOST; default 0.0.0.0)")
    serve.add_argument("--port", type=int, help="port (env MODELPILOT_PORT; default 8080)")
    serve.add_argument(
        "--grpc-port",
        type=int,
        help="also serve Open Inference Protocol v2 over gRPC on this port (env MODELPILOT_GRPC_PORT; default 0: "
        "no gRPC; the HTTP port keeps serving health and /metrics)",
    )
    serve.add_argument(
        "--graceful-timeout",
        type=float,
        help="seconds to let in-flight requests finish after SIGTERM (env MODELPILOT_GRACEFUL_TIMEOUT; default 25)",
    )
    serve.add_argument(
        "--drain-seconds",
        type=float,
        help="after SIGTERM, report not-ready but keep serving this long first (env MODELPILOT_DRAIN_SECONDS; "
        "default 0)",
    )
    serve.add_argument("--log-level", choices=["debug", "info", "warning", "error"], help="env MODELPILOT_LOG_LEVEL")
    serve.add_argument(
        "--predict-mode",
        choices=["auto", "inline", "thread"],
        help="run predict() on the event loop, on a worker thread, or choose by its speed (env "
        "MODELPILOT_PREDICT_MODE; default auto)",
    )
    serve.add_argument("--access-log", action="store_true", help="log every request (slower)")
    serve.add_argument(
        "--drift-window",
        type=float,
        help="seconds of the drift and feedback sliding window (env MODELPILOT_DRIFT_WINDOW; default 3600)",
    )
    serve.add_argument(
        "--no-drift",
        action="store_true",
        help="no drift monitoring and no feedback endpoint (env MODELPILOT_DRIFT=false)",
    )
    serve.set_defaults(func=_serve)


def _add_fetch(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    fetch = sub.add_parser(
        "fetch",
        help="download a model URI into a directory (the pods' init container; needs the [server] extra)",
        description="Schemes: file, pvc, http(s), s3, gs. Verify with URI#sha256=<hex>, --sha256 or "
        "MODELPILOT_MODEL_SHA256. Archives (.tar.gz, .zip, ...) are extracted.",
    )
    fetch.add_argument("uri", nargs="?", help="model URI (env MODELPILOT_MODEL_URI)")
    fetch.add_argument("dir", nargs="?", help="target directory (env MODELPILOT_MODEL_DIR)")
    fetch.add_argument("--sha256", help="expected sha256 of the downloaded file (env MODELPILOT_MODEL_SHA256)")
    fetch.add_argument("--force", action="store_true", help="replace whatever the directory holds")
    fetch.set_defaults(func=_fetch)


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
    op.add_argument("--max-model-bytes", help="most a model pod's fetch step may write, e.g. 20Gi; also the size "
                    f"limit of its model volume (env {ENV_PREFIX}MAX_MODEL_BYTES)")
    op.add_argument("--liveness", default=None, help="Kopf liveness endpoint, e.g. http://0.0.0.0:8080/healthz")
    op.add_argument("--log-format", choices=["plain", "full", "json"], default="full")
    op.add_argument("-v", "--verbose", action="store_true")
    op.set_defaults(func=_operator)
    _add_runtime(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
