"""SlidingCounts: counts expire with the (injected) clock, memory stays fixed whatever the traffic."""

from __future__ import annotations

import threading
import tracemalloc

import numpy as np
import pytest

from modelpilot.monitoring.window import SlidingCounts


class FakeClock:
    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_counts_expire_slot_by_slot() -> None:
    clock = FakeClock()
    window = SlidingCounts((2,), window_seconds=60, slots=6, clock=clock)  # slots of 10 s
    window.add(np.asarray([1, 0]))  # t=0: slot 0
    clock.now = 15
    window.add(np.asarray([0, 2]))  # slot 1
    clock.now = 59.9
    assert window.total().tolist() == [1, 2]  # slots 0..5 are the window
    clock.now = 60  # slot 6: the window is slots 1..6, slot 0 expired
    assert window.total().tolist() == [0, 2]
    window.add(np.asarray([5, 5]))  # slot 6 takes slot 0's place in the ring, cleared first
    assert window.total().tolist() == [5, 7]
    clock.now = 75  # slot 7: slot 1 expired
    assert window.total().tolist() == [5, 5]
    clock.now = 1000
    assert window.total().tolist() == [0, 0]


def test_held_back_counts_go_to_their_slot_or_are_dropped() -> None:
    clock = FakeClock()
    window = SlidingCounts((1,), window_seconds=40, slots=4, clock=clock)
    clock.now = 25  # slot 2
    window.add(np.asarray([1]), slot=1)  # rows held back since slot 1: still inside the window
    assert window.total().tolist() == [1]
    clock.now = 45  # slot 4 is current; slot 1 leaves the window at slot 5
    window.add(np.asarray([3]))  # slot 4 takes slot 0's place
    window.add(np.asarray([7]), slot=0)  # slot 0 has been replaced by slot 4 in the ring: dropped
    assert window.total().tolist() == [4]
    clock.now = 50  # slot 5: slot 1 expired
    assert window.total().tolist() == [3]


def test_a_million_observations_take_no_more_memory() -> None:
    clock = FakeClock()
    window = SlidingCounts((4, 11), window_seconds=3600, clock=clock)
    nbytes = window.nbytes
    batch = np.ones((4, 11), dtype=np.int64)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(100_000):  # 10 observations per add: 10**6 in all, over 10 hours
            clock.now = i * 0.36
            window.add(batch * 10)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert window.nbytes == nbytes == 12 * 4 * 11 * 8 + 12 * 8
    assert grown < 10_000  # nothing is kept per observation
    # The last hour (slots of 300 s: the current one and the 11 before it) holds what arrived in it.
    arrived_in_window = sum(1 for i in range(100_000) if i * 0.36 // 300 > clock.now // 300 - 12)
    assert window.total()[0, 0] == 10 * arrived_in_window


def test_adds_from_many_threads_are_all_counted() -> None:
    window = SlidingCounts((3,), window_seconds=3600)
    one = np.asarray([1, 2, 3])

    def work() -> None:
        for _ in range(5_000):
            window.add(one)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert window.total().tolist() == [20_000, 40_000, 60_000]


@pytest.mark.parametrize(("seconds", "slots"), [(0, 12), (-1, 12), (60, 0)])
def test_bad_arguments(seconds: float, slots: int) -> None:
    with pytest.raises(ValueError, match="window_seconds must be positive"):
        SlidingCounts((1,), seconds, slots)
