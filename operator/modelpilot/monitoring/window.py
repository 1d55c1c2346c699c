"""Counts over a sliding time window, in fixed memory whatever the traffic.

The window is a ring of `slots` time slots of `window_seconds / slots` each; counts go into the
slot of the moment they arrive and a slot is cleared when the ring comes round to it again. The
total covers the current slot and the `slots - 1` before it: between `window_seconds` minus one
slot and `window_seconds` of history. Memory is `slots` x the counts' shape, allocated once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np

Clock = Callable[[], float]


class SlidingCounts:
    """`add(counts)` into the current slot, `total()` over the window. Thread-safe."""

    def __init__(
        self,
        shape: tuple[int, ...],
        window_seconds: float,
        slots: int = 12,
        clock: Clock = time.monotonic,
        dtype: type = np.int64,
    ) -> None:
        if window_seconds <= 0 or slots < 1:
            raise ValueError("window_seconds must be positive and slots at least 1")
        self.shape = tuple(shape)
        self.window_seconds = float(window_seconds)
        self.slots = slots
        self.slot_seconds = self.window_seconds / slots
        self.clock = clock
        self._counts = np.zeros((slots, *self.shape), dtype=dtype)
        self._slot_ids = np.full(slots, -(2**62), dtype=np.int64)  # no slot is current at first
        self._lock = threading.Lock()

    @property
    def nbytes(self) -> int:
        return int(self._counts.nbytes + self._slot_ids.nbytes)

    def current_slot(self) -> int:
        """The number of the time slot `clock()` is in (consecutive slots have consecutive numbers)."""
        return int(self.clock() // self.slot_seconds)

    def add(self, counts: np.ndarray, slot: int | None = None) -> None:
        """Add `counts` to the current slot, or to `slot` (counts that were held back since then);
        counts for a slot that has already left the window are dropped."""
        if slot is None:
            slot = self.current_slot()
        position = slot % self.slots
        with self._lock:
            held = int(self._slot_ids[position])
            if held > slot:  # the ring already came round past it: expired
                return
            if held != slot:  # the ring came round: that position's older counts expired
                self._counts[position] = 0
                self._slot_ids[position] = slot
            self._counts[position] += counts

    def total(self) -> np.ndarray:
        """The counts of the slots still inside the window, summed."""
        slot = self.current_slot()
        with self._lock:
            live = (self._slot_ids > slot - self.slots) & (self._slot_ids <= slot)
            return self._counts[live].sum(axis=0)
