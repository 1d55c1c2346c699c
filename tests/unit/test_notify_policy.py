"""Delivery rules (pure): what an HTTP answer means, the backoff schedule, the per-target FIFO and
the rate of Warning Events."""

from __future__ import annotations

import pytest

from modelpilot.notify.policy import Lane, Limiter, RetryPolicy, classify


@pytest.mark.parametrize(("status", "verdict"), [
    (200, "delivered"), (201, "delivered"), (202, "delivered"), (204, "delivered"), (299, "delivered"),
    (500, "retry"), (502, "retry"), (503, "retry"), (504, "retry"), (408, "retry"), (429, "retry"),
    (400, "failed"), (401, "failed"), (403, "failed"), (404, "failed"), (410, "failed"), (413, "failed"),
    (301, "failed"), (302, "failed"), (307, "failed"), (100, "failed"),
])
def test_classify(status: int, verdict: str) -> None:
    assert classify(status) == verdict


def test_backoff_doubles_from_one_second_to_thirty() -> None:
    policy = RetryPolicy()
    assert [policy.delay(n) for n in range(1, 9)] == [1, 2, 4, 8, 16, 30, 30, 30]


@pytest.mark.parametrize(("attempts", "first_at", "now", "expected"), [
    (1, 0.0, 0.0, 1.0),  # first failure: again in 1 s
    (3, 0.0, 10.0, 14.0),
    (10, 0.0, 500.0, 530.0),
    (10, 0.0, 570.0, 600.0),  # exactly at the budget: still tried
    (10, 0.0, 571.0, None),  # past it: given up
    (1, 100.0, 700.0, None),
])
def test_next_try_gives_up_after_ten_minutes(attempts: int, first_at: float, now: float,
                                             expected: float | None) -> None:
    assert RetryPolicy().next_try(attempts, first_at, now) == expected


def test_a_ten_minute_budget_is_about_two_dozen_attempts() -> None:
    policy, now, attempts = RetryPolicy(), 0.0, 1
    while (at := policy.next_try(attempts, 0.0, now)) is not None:
        now, attempts = at, attempts + 1
    assert 20 <= attempts <= 26 and 570 <= now <= 600


def test_lane_sends_only_its_head_in_order() -> None:
    lane: Lane[str] = Lane(bound=10)
    for item in "abc":
        lane.push(item)
    assert lane.ready(0.0)
    head = lane.take(now=5.0)
    assert (head.item, head.attempts, head.first_at) == ("a", 1, 5.0)
    assert not lane.ready(6.0) and lane.wake_at() is None  # one attempt at a time
    lane.later(at=7.0)
    assert not lane.ready(6.9) and lane.ready(7.0) and lane.wake_at() == 7.0
    again = lane.take(now=7.0)
    assert again is head and (again.attempts, again.first_at) == (2, 5.0)
    lane.finish(again)
    assert lane.ready(7.0) and lane.take(7.0).item == "b"  # the next goes at once


@pytest.mark.parametrize(("bound", "in_flight", "pushed", "dropped", "left"), [
    (3, False, "abc", [], "abc"),
    (3, False, "abcd", ["a"], "bcd"),  # the oldest goes
    (3, False, "abcdef", ["a", "b", "c"], "def"),
    (3, True, "abcd", ["b"], "acd"),  # the head being sent stays: the oldest waiting one goes
    (1, True, "ab", ["b"], "a"),
])
def test_lane_over_its_bound_drops_the_oldest_waiting(bound: int, in_flight: bool, pushed: str, dropped: list[str],
                                                       left: str) -> None:
    lane: Lane[str] = Lane(bound)
    out = [lane.push(pushed[0])]
    if in_flight:
        lane.take(0.0)
    out += [lane.push(item) for item in pushed[1:]]
    assert [d for d in out if d is not None] == dropped
    assert "".join(p.item for p in lane.items) == left


def test_finishing_a_head_that_is_gone_removes_nothing_else() -> None:
    lane: Lane[str] = Lane(bound=2)
    lane.push("a")
    head = lane.take(0.0)
    lane.later(1.0)
    lane.push("b")
    lane.push("c")  # over the bound while "a" waits for its retry: "a" is dropped
    assert [p.item for p in lane.items] == ["b", "c"]
    lane.finish(head)
    assert [p.item for p in lane.items] == ["b", "c"]


def test_limiter_allows_once_per_key_per_hour() -> None:
    limiter: Limiter[str] = Limiter(every=3600)
    assert [limiter.allow("a", t) for t in (0, 10, 3599)] == [True, False, False]
    assert limiter.allow("b", 10)
    assert limiter.allow("a", 3600) and not limiter.allow("a", 3601)
