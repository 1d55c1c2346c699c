"""How a notification is delivered (pure): what an answer means, when to try again, the bounded
per-target queue, and how often a failure becomes a Warning Event."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

T = TypeVar("T")
Verdict = Literal["delivered", "retry", "failed"]

# Asked to try later: Request Timeout and Too Many Requests; every other 4xx is the request's fault.
RETRY_STATUSES = frozenset({408, 429})


def classify(status: int) -> Verdict:
    """An HTTP answer: 2xx delivered; 5xx, 408 and 429 tried again; anything else (other 4xx, a
    redirect, which is never followed) will not change by sending the same again."""
    if 200 <= status < 300:
        return "delivered"
    if status >= 500 or status in RETRY_STATUSES:
        return "retry"
    return "failed"


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff: `first` seconds doubling up to `cap`; an event still undelivered
    `give_up_after` seconds after its first attempt is dropped."""

    first: float = 1.0
    cap: float = 30.0
    give_up_after: float = 600.0

    def delay(self, attempts: int) -> float:
        """The wait after the `attempts`-th failed attempt (1-based)."""
        return min(self.cap, self.first * 2 ** max(0, attempts - 1))

    def next_try(self, attempts: int, first_at: float, now: float) -> float | None:
        """When to try again after `attempts` failures, or None to give up."""
        at = now + self.delay(attempts)
        return None if at - first_at > self.give_up_after else at


@dataclass
class Pending(Generic[T]):
    item: T
    attempts: int = 0
    first_at: float | None = None


class Lane(Generic[T]):
    """One target's FIFO: only its head is ever sent, one attempt at a time, so the target hears
    of events in order; later events wait behind a head being retried (order beats freshness)."""

    def __init__(self, bound: int) -> None:
        self.bound = max(1, bound)
        self.items: deque[Pending[T]] = deque()
        self.in_flight = False
        self.next_at = 0.0

    def __len__(self) -> int:
        return len(self.items)

    def push(self, item: T) -> T | None:
        """Queue `item`; over the bound, drop and return the oldest event not being sent."""
        self.items.append(Pending(item))
        if len(self.items) <= self.bound:
            return None
        index = 1 if self.in_flight else 0
        dropped = self.items[index]
        del self.items[index]
        return dropped.item

    def ready(self, now: float) -> bool:
        return bool(self.items) and not self.in_flight and now >= self.next_at

    def wake_at(self) -> float | None:
        """When the head may be sent (None: empty or being sent)."""
        return self.next_at if self.items and not self.in_flight else None

    def take(self, now: float) -> Pending[T]:
        """The head, now being sent."""
        head = self.items[0]
        self.in_flight = True
        head.attempts += 1
        if head.first_at is None:
            head.first_at = now
        return head

    def finish(self, head: Pending[T]) -> None:
        """The head was delivered or given up: the next event goes at once."""
        self.in_flight = False
        if self.items and self.items[0] is head:
            self.items.popleft()
        self.next_at = 0.0

    def later(self, at: float) -> None:
        """The head failed and is tried again at `at`."""
        self.in_flight = False
        self.next_at = at


class Limiter(Generic[T]):
    """At most one `allow` per key per `every` seconds."""

    def __init__(self, every: float = 3600.0) -> None:
        self.every = every
        self.last: dict[T, float] = {}

    def allow(self, key: T, now: float) -> bool:
        last = self.last.get(key)
        if last is not None and now - last < self.every:
            return False
        self.last[key] = now
        return True
