"""`modelpilot batch`: score one shard of a BatchPrediction's input inside a Job pod.

    modelpilot batch --model-dir /models [--shard N] [--termination-log PATH]

The run's settings come from MODELPILOT_BATCH (contract.RunConfig as JSON), the shard from --shard
or JOB_COMPLETION_INDEX, the run id and Job name from MODELPILOT_BATCH_RUN_ID and
MODELPILOT_BATCH_JOB. Run by hand, the run id defaults to a hash of the settings (running the same
settings again is a retry of the same run) and the Job name to the BatchPrediction's name. Exit
codes and the termination message follow modelpilot.batch.contract. Needs the `[server]` extra;
its imports happen inside the command, so the operator never loads pyarrow.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from collections.abc import Mapping

from modelpilot.batch import contract


def add_batch_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "batch",
        help="score one shard of a batch prediction run (a BatchPrediction's Job pod; needs the [server] extra)",
        description=f"Settings: {contract.CONFIG_ENV} (the run's JSON). Exit codes: {contract.EXIT_OK} done, "
        f"{contract.EXIT_RETRY} retry, {contract.EXIT_INVALID_RUN} the run cannot work as configured, "
        f"{contract.EXIT_SHARD_FAILED} too many failed rows.",
    )
    parser.add_argument("--model-dir", required=True, help="directory holding the model (as `modelpilot serve`)")
    parser.add_argument("--shard", type=int, help=f"shard index (default: env {contract.SHARD_INDEX_ENV}; 0 when "
                        "the run has one shard)")  # fmt: skip
    parser.add_argument("--termination-log", default=contract.TERMINATION_LOG,
                        help=f"where to write the ShardReport (default {contract.TERMINATION_LOG})")  # fmt: skip
    parser.set_defaults(func=run_batch)


def local_run_id(raw_config: str) -> str:
    """Run id outside a Job: the same settings give the same run (a re-run is a retry of it)."""
    return "local-" + hashlib.sha256(raw_config.encode()).hexdigest()[:12]


def _shard_index(flag: int | None, env: Mapping[str, str], shards: int) -> int:
    if flag is not None:
        return flag
    raw = env.get(contract.SHARD_INDEX_ENV)
    if raw is None:
        if shards == 1:
            return 0
        raise ValueError(f"no shard index: pass --shard or set {contract.SHARD_INDEX_ENV} (the run has {shards} "
                         "shards)")  # fmt: skip
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{contract.SHARD_INDEX_ENV}={raw!r} is not a shard index") from None


def run_batch(args: argparse.Namespace) -> int:
    from pathlib import Path

    try:
        import pyarrow  # noqa: F401

        from modelpilot.batch.runner import Shard, log, run_shard, write_report
    except ImportError as err:
        print(f"modelpilot batch needs the [server] extra: {err}", file=sys.stderr)
        return contract.EXIT_INVALID_RUN
    env = dict(os.environ)
    raw = env.get(contract.CONFIG_ENV, "")
    try:
        if not raw:
            raise ValueError(f"{contract.CONFIG_ENV} is not set (the run's settings as JSON)")
        config = contract.RunConfig.model_validate_json(raw)
        index = _shard_index(args.shard, env, config.shards)
    except ValueError as err:  # pydantic's ValidationError is a ValueError
        shard = args.shard if args.shard is not None else _int_or_zero(env.get(contract.SHARD_INDEX_ENV))
        report = contract.ShardReport(shard=shard, reason="InvalidConfig", message=str(err))
        log("failed", shard=shard, reason="InvalidConfig", message=str(err), exitCode=contract.EXIT_INVALID_RUN)
        write_report(report, args.termination_log)
        return contract.EXIT_INVALID_RUN
    if env.get(contract.SHARD_INDEX_ENV) and not env.get(contract.RUN_ID_ENV):
        # In a Job the run id must be the Job's own: a settings hash would make two scheduled runs
        # with the same settings "the same run" (Kubernetes before 1.27 lacks the label).
        message = f"{contract.RUN_ID_ENV} is empty in an Indexed Job (label {contract.RUN_ID_LABEL} missing)"
        log("failed", shard=index, reason="InvalidConfig", message=message, exitCode=contract.EXIT_INVALID_RUN)
        write_report(contract.ShardReport(shard=index, reason="InvalidConfig", message=message), args.termination_log)
        return contract.EXIT_INVALID_RUN
    job = env.get(contract.JOB_NAME_ENV) or config.name
    # `{job}` in output.uri: each run of a schedule writes under its own Job's name.
    config = config.model_copy(update={"output": config.output.model_copy(
        update={"uri": contract.output_uri(config.output.uri, job)})})
    shard = Shard(
        config=config,
        index=index,
        run_id=env.get(contract.RUN_ID_ENV) or local_run_id(raw),
        job=job,
        model_dir=Path(args.model_dir),
        env=env,
    )
    _terminate_cleanly()
    code, report = run_shard(shard)
    write_report(report, args.termination_log)
    return code


def _int_or_zero(raw: str | None) -> int:
    try:
        return int(raw or 0)
    except ValueError:
        return 0


class Terminated(Exception):
    """SIGTERM (the pod is being deleted): unwind, so open uploads are aborted and the report written."""


def _terminate_cleanly() -> None:
    import signal

    def on_term(signum: int, frame: object) -> None:
        raise Terminated("terminated by SIGTERM")

    signal.signal(signal.SIGTERM, on_term)
