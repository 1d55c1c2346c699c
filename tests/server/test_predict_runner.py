"""Where predict() runs (PredictRunner), driven by an injected clock: no real timings."""

from __future__ import annotations

import asyncio
import threading

import pytest

from modelpilot.server.runner import PredictRunner


class FakeModel:
    """predict() advances the fake clock by `cost` and records the thread it ran on."""

    def __init__(self) -> None:
        self.now = 0.0
        self.cost = 0.0001
        self.threads: list[str] = []

    def clock(self) -> float:
        return self.now

    def predict(self) -> int:
        self.now += self.cost
        self.threads.append(threading.current_thread().name)
        return len(self.threads)


def _run(runner: PredictRunner, model: FakeModel, calls: int) -> list[str]:
    async def go() -> None:
        for _ in range(calls):
            await runner.run(model.predict)

    start = len(model.threads)
    asyncio.run(go())
    return ["loop" if t == threading.main_thread().name else "thread" for t in model.threads[start:]]


def test_fast_model_stays_on_the_event_loop() -> None:
    model = FakeModel()
    runner = PredictRunner("auto", clock=model.clock)
    assert _run(runner, model, 200) == ["loop"] * 200
    assert runner.threaded is False


def test_slow_model_moves_to_the_thread_and_probes_back() -> None:
    model = FakeModel()
    runner = PredictRunner("auto", clock=model.clock)
    model.cost = 0.5
    assert _run(runner, model, 1) == ["loop"]  # the first slow call is measured inline
    assert runner.threaded is True
    # 63 calls on the thread, then the 64th runs inline once as a probe: still slow, so the next
    # probe comes after 128 calls.
    assert _run(runner, model, 64) == ["thread"] * 63 + ["loop"]
    assert _run(runner, model, 128) == ["thread"] * 127 + ["loop"]
    # The model got fast: the next probe brings it back to the loop for good.
    model.cost = 0.0001
    assert _run(runner, model, 256) == ["thread"] * 255 + ["loop"]
    assert runner.threaded is False
    assert _run(runner, model, 10) == ["loop"] * 10


def test_one_slow_call_does_not_flip_a_fast_model() -> None:
    model = FakeModel()
    runner = PredictRunner("auto", clock=model.clock)
    _run(runner, model, 10)
    model.cost = 0.02  # a single 20 ms hiccup (preemption, GC)
    _run(runner, model, 1)
    model.cost = 0.0001
    assert runner.threaded is False
    assert _run(runner, model, 5) == ["loop"] * 5


@pytest.mark.parametrize(("mode", "where"), [("inline", "loop"), ("thread", "thread")])
def test_forced_modes(mode: str, where: str) -> None:
    model = FakeModel()
    model.cost = 0.5 if mode == "inline" else 0.0
    runner = PredictRunner(mode, clock=model.clock)
    assert _run(runner, model, 70) == [where] * 70


def test_unknown_mode() -> None:
    with pytest.raises(ValueError, match="predict mode must be one of auto, inline, thread"):
        PredictRunner("fast")
