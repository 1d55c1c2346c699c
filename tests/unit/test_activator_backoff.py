"""The activator's connect backoff: 50 ms, x1.5, at most 500 ms between tries, never past the deadline."""

from __future__ import annotations

from itertools import islice

import pytest

from modelpilot.activator.backoff import delays, pause


def _first(n: int, **kwargs: float) -> list[float]:
    return [round(d, 6) for d in islice(delays(**kwargs), n)]


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, [0.05, 0.075, 0.1125, 0.16875, 0.253125, 0.379688, 0.5, 0.5, 0.5, 0.5]),
        ({"first": 0.1, "factor": 2.0, "cap": 1.0}, [0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]),
        ({"first": 0.2, "factor": 1.0, "cap": 0.2}, [0.2] * 10),
        ({"first": 0.5, "factor": 1.5, "cap": 0.5}, [0.5] * 10),
    ],
)
def test_schedule(kwargs: dict[str, float], expected: list[float]) -> None:
    assert _first(10, **kwargs) == expected


def test_schedule_is_endless_and_capped() -> None:
    many = list(islice(delays(), 10_000))
    assert len(many) == 10_000
    assert max(many) == 0.5
    assert many == sorted(many)


@pytest.mark.parametrize(
    "kwargs",
    [{"first": 0.0}, {"first": -1.0}, {"factor": 0.9}, {"first": 1.0, "cap": 0.5}],
)
def test_bad_schedule(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="bad backoff"):
        next(delays(**kwargs))


@pytest.mark.parametrize(
    ("delay", "remaining", "expected"),
    [
        (0.5, 10.0, 0.5),  # far from the deadline: the schedule's delay
        (0.5, 0.2, 0.2),  # the last try happens at the deadline, not a pause after it
        (0.05, 0.05, 0.05),
        (0.5, 0.0, 0.0),
        (0.5, -1.0, 0.0),  # already past it: no pause at all
    ],
)
def test_pause(delay: float, remaining: float, expected: float) -> None:
    assert pause(delay, remaining) == expected
