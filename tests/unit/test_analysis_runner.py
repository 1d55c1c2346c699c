"""The analysis runner: analyses beside the reconciles, one per key, results kept for `take`."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading

from modelpilot.analysis.runner import AnalysisRunner
from modelpilot.rollout.machine import AnalysisResult

T0 = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC)


def test_a_result_waits_for_take_and_wakes_the_key() -> None:
    async def scenario() -> None:
        woken: list[str] = []
        release = threading.Event()
        runner = AnalysisRunner(2, done=woken.append, clock=lambda: T0)

        def job(start: dt.datetime) -> AnalysisResult:
            release.wait(5)
            return AnalysisResult("Pass", reason=f"started {start:%H:%M}")

        runner.submit("a", "rev1", T0, T0, job)
        runner.submit("a", "rev1", T0, T0, job)  # one at a time per key: ignored
        assert runner.busy("a") and runner.take("a") is None
        release.set()
        while not woken:
            await asyncio.sleep(0.01)
        assert woken == ["a"] and not runner.busy("a")
        finished = runner.take("a")
        assert finished is not None and (finished.revision, finished.started_at) == ("rev1", T0)
        assert finished.result.verdict == "Pass" and finished.result.reason == "started 12:00"
        assert runner.take("a") is None  # taken once
        await runner.stop()

    asyncio.run(scenario())


def test_a_failing_job_is_an_error_result_not_a_lost_analysis() -> None:
    async def scenario() -> None:
        woken: list[str] = []
        runner = AnalysisRunner(1, done=woken.append, clock=lambda: T0)

        def job(start: dt.datetime) -> AnalysisResult:
            raise RuntimeError("provider bug")

        runner.submit("b", "rev1", T0, T0, job)
        while not woken:
            await asyncio.sleep(0.01)
        finished = runner.take("b")
        assert finished is not None and finished.result.verdict == "Error"
        assert "RuntimeError: provider bug" in finished.result.measurements[0].detail
        await runner.stop()

    asyncio.run(scenario())


def test_a_forgotten_key_keeps_no_result() -> None:
    async def scenario() -> None:
        release = threading.Event()
        runner = AnalysisRunner(1, done=lambda key: None, clock=lambda: T0)
        runner.submit("c", "rev1", T0, T0, lambda start: (release.wait(5), AnalysisResult("Pass"))[1])
        runner.forget("c")
        release.set()
        await asyncio.sleep(0.05)
        assert not runner.busy("c") and runner.take("c") is None
        await runner.stop()

    asyncio.run(scenario())
