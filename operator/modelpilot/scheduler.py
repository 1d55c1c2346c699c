"""One operator-wide work queue and timer wheel over the known ModelDeployments.

Kopf puts a finalizer on every object served by a per-object timer or daemon, and a finalizer
makes deletion hang while the operator is down. So periodic work (safety resync, later canary
analyses) is scheduled here instead: each key has at most one pending due time, a key is never
reconciled by two workers at once, and a key re-queued while being processed runs again after.
Pure asyncio: no kubernetes or kopf imports.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)

# A reconcile returns the delay until it wants to run again (None: only the resync period).
Reconcile = Callable[[K], Awaitable[float | None]]

log = logging.getLogger("modelpilot.scheduler")


class Scheduler(Generic[K]):
    def __init__(self, reconcile: Reconcile[K], resync_seconds: float, workers: int = 4,
                 clock: Callable[[], float] = time.monotonic,
                 error_backoff: tuple[float, ...] = (0.2, 1, 2, 5, 10, 30)) -> None:
        self._reconcile = reconcile
        self._resync = resync_seconds
        self._workers = workers
        self._clock = clock
        self._backoff = error_backoff
        self._due: dict[K, float] = {}        # key -> earliest due time
        self._heap: list[tuple[float, int, K]] = []
        self._seq = 0
        self._processing: set[K] = set()
        self._dirty: set[K] = set()           # re-queued while processing
        self._failures: dict[K, int] = {}
        self._known: set[K] = set()
        self._wakeup = asyncio.Event()
        self._ready: asyncio.Queue[K] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self.reconciles = 0

    def __contains__(self, key: object) -> bool:
        return key in self._known

    def known(self) -> list[K]:
        """Every key known (tracked and not forgotten)."""
        return list(self._known)

    def track(self, key: K) -> None:
        """A key exists (seen on the watch): reconcile it now and on every resync."""
        self._known.add(key)
        self.enqueue(key)

    def forget(self, key: K) -> None:
        self._known.discard(key)
        self._due.pop(key, None)
        self._failures.pop(key, None)

    def enqueue(self, key: K, delay: float = 0.0) -> None:
        """Run `key` after `delay` seconds, or sooner if it is already due sooner."""
        when = self._clock() + max(0.0, delay)
        if key in self._due and self._due[key] <= when:
            return
        self._due[key] = when
        self._seq += 1
        heapq.heappush(self._heap, (when, self._seq, key))
        self._wakeup.set()

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._timer(), name="modelpilot-timer")]
        self._tasks += [asyncio.create_task(self._worker(i), name=f"modelpilot-worker-{i}")
                        for i in range(self._workers)]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def _timer(self) -> None:
        while True:
            now = self._clock()
            while self._heap and self._heap[0][0] <= now:
                when, _, key = heapq.heappop(self._heap)
                if self._due.get(key) != when:
                    continue  # superseded by an earlier enqueue, or forgotten
                del self._due[key]
                if key in self._processing:
                    self._dirty.add(key)
                else:
                    self._processing.add(key)
                    self._ready.put_nowait(key)
            self._wakeup.clear()
            timeout = (self._heap[0][0] - now) if self._heap else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), timeout=timeout)

    async def _worker(self, index: int) -> None:
        while True:
            key = await self._ready.get()
            next_run: float
            try:
                delay = await self._reconcile(key)
                self._failures.pop(key, None)
                next_run = self._resync if delay is None else min(delay, self._resync)
            except asyncio.CancelledError:
                raise
            except Exception:
                # A failing key backs off (never faster than the backoff, whatever the resync).
                failures = self._failures.get(key, 0)
                self._failures[key] = failures + 1
                next_run = self._backoff[min(failures, len(self._backoff) - 1)]
                log.exception("reconcile of %s failed; retrying in %.2fs", key, next_run)
            finally:
                self.reconciles += 1
                self._processing.discard(key)
            if key in self._dirty:
                self._dirty.discard(key)
                self.enqueue(key)
            if key in self._known:
                self.enqueue(key, next_run)
