"""Held requests and activations, with an injected clock (pure).

Each case is a script of steps on tickets named by letters, for one or two targets; after every
step the expected outcome is checked (True: an activation starts / is abandoned; a number: the
cold start an activation ended with; None: nothing)."""

from __future__ import annotations

from typing import Any

import pytest

from modelpilot.activator.activations import Activations, Ticket
from modelpilot.activator.target import Target

A = Target("ml", "fraud", "stable")
B = Target("ml", "fraud", "canary")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


# (clock, action, ticket, target for "arrive" | None, expected)
Step = tuple[float, str, str, Any]

CASES: dict[str, list[Step]] = {
    "cold start of one request": [
        (100.0, "arrive", "a", A),
        (100.1, "refused", "a", True),  # nothing else held, first connect refused: activation
        (100.6, "refused", "a", False),  # later refusals of the same request start nothing
        (103.0, "connected", "a", 3.0),  # cold start from its arrival
        (103.5, "leave", "a", False),
    ],
    "warm: the first connect succeeds": [
        (100.0, "arrive", "a", A),
        (100.01, "connected", "a", None),
        (100.02, "leave", "a", False),
    ],
    "requests behind the first one join its activation": [
        (100.0, "arrive", "a", A),
        (100.1, "arrive", "b", A),  # a is held: b can never start one
        (100.1, "refused", "b", False),
        (100.2, "refused", "a", True),
        (100.3, "arrive", "c", A),
        (100.3, "refused", "c", False),
        (102.0, "connected", "a", 2.0),
        (102.1, "connected", "b", None),  # over: measured once
        (102.1, "connected", "c", None),
        (103.0, "leave", "a", False), (103.0, "leave", "b", False), (103.0, "leave", "c", False),
    ],
    "another request connecting first ends it, from the first arrival": [
        (100.0, "arrive", "a", A),
        (100.0, "refused", "a", True),
        (100.5, "arrive", "b", A),
        (100.5, "refused", "b", False),
        (101.5, "connected", "b", 1.5),
        (101.6, "connected", "a", None),
    ],
    "the first request gives up: the activation carries on with the others": [
        (100.0, "arrive", "a", A),
        (100.0, "refused", "a", True),
        (101.0, "arrive", "b", A),
        (101.0, "refused", "b", False),
        (130.0, "leave", "a", False),  # a timed out (or its client left) while b is still held
        (140.0, "connected", "b", 40.0),
    ],
    "the last held request gives up: abandoned, and the next request starts a new one": [
        (100.0, "arrive", "a", A),
        (100.0, "refused", "a", True),
        (400.0, "leave", "a", True),
        (500.0, "arrive", "b", A),
        (500.0, "refused", "b", True),
        (502.0, "connected", "b", 2.0),
    ],
    "a request arriving after the first one connected but while it was still held: none": [
        (100.0, "arrive", "a", A),
        (100.0, "refused", "a", True),
        (100.4, "arrive", "b", A),
        (101.0, "connected", "a", 1.0),
        (101.0, "refused", "b", False),  # b arrived while a was held: never eligible
        (101.2, "connected", "b", None),
    ],
    "the pod goes away under a connected request: the next arrival can activate": [
        (100.0, "arrive", "a", A),
        (100.0, "connected", "a", None),
        (100.5, "arrive", "b", A),  # a is connected, not held: b may start one
        (100.5, "refused", "b", True),
        (101.0, "rehold", "a", None),  # a's connection broke before its response
        (103.0, "connected", "a", 2.5),  # a connects first: ends b's activation, from b's arrival
        (103.0, "connected", "b", None),
    ],
    "targets are independent": [
        (100.0, "arrive", "a", A),
        (100.0, "arrive", "b", B),
        (100.0, "refused", "a", True),
        (100.0, "refused", "b", True),
        (101.0, "connected", "b", 1.0),
        (104.0, "connected", "a", 4.0),
    ],
    "a pooled connection does not end an activation (it may lead to a draining pod)": [
        (100.0, "arrive", "a", A),
        (100.0, "refused", "a", True),
        (100.5, "arrive", "b", A),
        (100.6, "reused", "b", None),
        (101.0, "connected", "a", 1.0),  # only a new connection shows the Service has an endpoint again
    ],
    "a stale pooled connection: the request is held again and can still start the activation": [
        (100.0, "arrive", "a", A),
        (100.0, "reused", "a", None),
        (100.01, "rehold", "a", None),
        (100.01, "refused", "a", True),
        (102.0, "connected", "a", 2.0),
    ],
    "a timed-out connect attempt counts as refused": [
        (100.0, "arrive", "a", A),
        (102.0, "refused", "a", True),
        (102.5, "connected", "a", 2.5),
    ],
}


def _run(steps: list[Step]) -> tuple[Activations, dict[str, Ticket]]:
    clock = Clock()
    book = Activations(clock)
    tickets: dict[str, Ticket] = {}
    for index, (at, action, name, expected) in enumerate(steps):
        clock.now = at
        if action == "arrive":
            tickets[name] = book.arrive(expected)
            continue
        if action == "reused":
            result = book.connected(tickets[name], fresh=False)
        else:
            result = getattr(book, action)(tickets[name])
        if isinstance(expected, float):
            assert result == pytest.approx(expected), (index, action, name)
        else:
            assert result is expected, (index, action, name, result)
    return book, tickets


@pytest.mark.parametrize("steps", CASES.values(), ids=CASES.keys())
def test_activations(steps: list[Step]) -> None:
    _run(steps)


def test_held_counts_and_waits() -> None:
    book, tickets = _run([
        (100.0, "arrive", "a", A),
        (100.0, "arrive", "b", A),
        (100.0, "refused", "a", True),
        (101.0, "connected", "a", 1.0),
        (102.0, "rehold", "a", None),
        (102.5, "connected", "a", None),
        (103.0, "leave", "b", False),
    ])  # fmt: skip
    a, b = tickets["a"], tickets["b"]
    assert a.waited == pytest.approx(1.5)  # held twice: 1 s, then 0.5 s
    assert b.waited == pytest.approx(3.0)
    assert a.failures == 1 and b.failures == 0
    assert not a.held and not b.held
    assert book.held(A) == 0 and not book.activating(A)
    assert book._held == {} and book._started == {}  # nothing kept once nothing is held


def test_leave_twice_and_connected_after_leaving_change_nothing() -> None:
    clock = Clock()
    book = Activations(clock)
    a = book.arrive(A)
    b = book.arrive(A)
    assert book.held(A) == 2
    book.connected(a)
    book.connected(a)  # the trace hook of a pooled retry: still one connection's worth
    assert book.held(A) == 1
    assert book.leave(a) is False
    assert book.leave(b) is False
    assert book.leave(b) is False
    assert book.held(A) == 0
