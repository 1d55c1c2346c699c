"""The operator-wide scheduler: dedup, no concurrent runs of one key, resync, backoff."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from modelpilot.scheduler import Scheduler


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def test_tracked_key_runs_now_and_on_every_resync() -> None:
    calls: list[str] = []

    async def reconcile(key: str) -> float | None:
        calls.append(key)
        return None

    async def scenario() -> None:
        s: Scheduler[str] = Scheduler(reconcile, resync_seconds=0.05, workers=2)
        s.start()
        s.track("a")
        await asyncio.sleep(0.28)
        await s.stop()

    run(scenario())
    assert 4 <= calls.count("a") <= 7


def test_burst_of_enqueues_is_deduplicated() -> None:
    calls: Counter[str] = Counter()

    async def reconcile(key: str) -> float | None:
        calls[key] += 1
        return None

    async def scenario() -> None:
        s: Scheduler[str] = Scheduler(reconcile, resync_seconds=60, workers=4)
        for _ in range(50):
            s.track("a")
            s.enqueue("b")
        s.start()
        await asyncio.sleep(0.1)
        await s.stop()

    run(scenario())
    assert calls == {"a": 1, "b": 1}


def test_one_key_never_runs_twice_at_once_and_reruns_when_dirty() -> None:
    running: set[str] = set()
    overlaps = 0
    calls = 0

    async def scenario() -> None:
        first_started, release_first, second_done = asyncio.Event(), asyncio.Event(), asyncio.Event()

        async def reconcile(key: str) -> float | None:
            nonlocal overlaps, calls
            calls += 1
            if key in running:
                overlaps += 1
            running.add(key)
            if calls == 1:
                first_started.set()
                await release_first.wait()  # held until every enqueue below has arrived
            running.discard(key)
            if calls == 2:
                second_done.set()
            return None

        s: Scheduler[str] = Scheduler(reconcile, resync_seconds=60, workers=4)
        s.start()
        s.track("a")
        await asyncio.wait_for(first_started.wait(), 10)
        for _ in range(10):  # all arrive while the first run is in progress
            s.enqueue("a")
            await asyncio.sleep(0)
        release_first.set()
        await asyncio.wait_for(second_done.wait(), 10)
        for _ in range(20):  # let a (wrong) third run start, if one was queued
            await asyncio.sleep(0)
        await s.stop()

    run(scenario())
    assert overlaps == 0
    assert calls == 2  # the first run, then exactly one more for everything that came meanwhile


def test_returned_delay_schedules_sooner_than_resync() -> None:
    calls = 0

    async def reconcile(key: str) -> float | None:
        nonlocal calls
        calls += 1
        return 0.02

    async def scenario() -> None:
        s: Scheduler[str] = Scheduler(reconcile, resync_seconds=60, workers=1)
        s.start()
        s.track("a")
        await asyncio.sleep(0.15)
        await s.stop()

    run(scenario())
    assert calls >= 4


def test_failures_back_off_and_forgotten_keys_stop() -> None:
    calls = 0

    async def reconcile(key: str) -> float | None:
        nonlocal calls
        calls += 1
        raise RuntimeError("boom")

    async def scenario() -> Scheduler[str]:
        s: Scheduler[str] = Scheduler(reconcile, resync_seconds=0.01, workers=1, error_backoff=(0.05, 10))
        s.start()
        s.track("a")
        await asyncio.sleep(0.03)
        await asyncio.sleep(0.05)
        s.forget("a")
        await asyncio.sleep(0.1)
        await s.stop()
        return s

    s = run(scenario())
    assert calls == 2  # first failure, then one retry after 0.05 s; the next would be in 10 s
    assert "a" not in s


@pytest.mark.parametrize("workers", [1, 3])
def test_many_keys_all_reconciled(workers: int) -> None:
    seen: set[int] = set()

    async def reconcile(key: int) -> float | None:
        seen.add(key)
        await asyncio.sleep(0)
        return None

    async def scenario() -> None:
        s: Scheduler[int] = Scheduler(reconcile, resync_seconds=60, workers=workers)
        s.start()
        for i in range(100):
            s.track(i)
        await asyncio.sleep(0.1)
        await s.stop()

    run(scenario())
    assert seen == set(range(100))
