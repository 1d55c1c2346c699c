"""Analyses run beside the reconciles, never inside them.

A reconcile that finds an analysis due hands it here and returns at once; the queries run in a
thread pool of `concurrency` threads (the bound on concurrent analyses), each query with the
provider's own timeout. When one finishes, its result is kept for the ModelDeployment and the
`done` callback wakes it, so the next reconcile takes the result and decides. A slow or dead
metric provider only delays the analyses that wait for it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar

from modelpilot import metrics
from modelpilot.rollout.machine import AnalysisResult, Measurement

log = logging.getLogger("modelpilot.analysis")

Key = Hashable
R = TypeVar("R")


@dataclass(frozen=True)
class Finished(Generic[R]):
    """A finished job and what it was for (a canary's revision and start), to match it on take."""

    revision: str
    started_at: dt.datetime
    result: R


# Runs one job, given the time it starts (the measurements' timestamp).
Job = Callable[[dt.datetime], R]


def analysis_error(start: dt.datetime, err: Exception) -> AnalysisResult:
    return AnalysisResult("Error", (Measurement(start, "analysis", None, "", "Error",
                                                f"{type(err).__name__}: {err}"[:300]),))


class AnalysisRunner(Generic[R]):
    """`failed` turns a job's unexpected exception into its result (an analysis: verdict Error)."""

    def __init__(self, concurrency: int, done: Callable[[Key], None],
                 clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
                 failed: Callable[[dt.datetime, Exception], R] = analysis_error,  # type: ignore[assignment]
                 name: str = "analysis") -> None:
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix=f"modelpilot-{name}")
        self._done = done
        self._clock = clock
        self._failed = failed
        self._name = name
        self._running: dict[Key, asyncio.Task[None]] = {}
        self._finished: dict[Key, Finished[R]] = {}

    def busy(self, key: Key) -> bool:
        return key in self._running

    def take(self, key: Key) -> Finished[R] | None:
        return self._finished.pop(key, None)

    def submit(self, key: Key, revision: str, started_at: dt.datetime, due: dt.datetime, job: Job[R]) -> None:
        """Start one analysis for `key` unless one is running; its result waits for `take`."""
        if key in self._running:
            return
        self._running[key] = asyncio.get_running_loop().create_task(
            self._run(key, revision, started_at, due, job), name=f"{self._name} {key}")

    async def _run(self, key: Key, revision: str, started_at: dt.datetime, due: dt.datetime, job: Job[R]) -> None:
        try:
            result = await asyncio.get_running_loop().run_in_executor(self._pool, self._timed, key, job, due)
            self._finished[key] = Finished(revision, started_at, result)
        finally:
            self._running.pop(key, None)
        self._done(key)

    def _timed(self, key: Key, job: Job[R], due: dt.datetime) -> R:
        """In the pool's thread: lateness counts the wait for a free thread too."""
        start = self._clock()
        if self._name == "analysis":
            metrics.ANALYSIS_LATENESS.observe(max(0.0, (start - due).total_seconds()))
        try:
            return job(start)
        except Exception as err:  # a bug in a provider must not stop the rollout's clock
            log.exception("%s of %s failed", self._name, key)
            return self._failed(start, err)

    def forget(self, key: Key) -> None:
        task = self._running.pop(key, None)
        if task is not None:
            task.cancel()
        self._finished.pop(key, None)

    async def stop(self) -> None:
        for task in list(self._running.values()):
            task.cancel()
        await asyncio.gather(*self._running.values(), return_exceptions=True)
        self._pool.shutdown(wait=False, cancel_futures=True)
