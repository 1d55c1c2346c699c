"""The pause between connect attempts while a request is held (pure).

Short at first, so a model that comes up quickly is reached quickly; growing, so hundreds of held
requests do not hammer a Service that has no endpoint; capped, so a request is forwarded at most
about half a second after its model became reachable.
"""

from __future__ import annotations

from collections.abc import Iterator

FIRST_DELAY = 0.05
FACTOR = 1.5
MAX_DELAY = 0.5


def delays(first: float = FIRST_DELAY, factor: float = FACTOR, cap: float = MAX_DELAY) -> Iterator[float]:
    """Endless: first, first*factor, ... up to `cap`, then `cap` for ever."""
    if first <= 0 or factor < 1 or cap < first:
        raise ValueError(f"bad backoff: first {first}, factor {factor}, cap {cap}")
    delay = first
    while True:
        yield delay
        delay = min(delay * factor, cap)


def pause(delay: float, remaining: float) -> float:
    """How long to wait before the next attempt: `delay`, but never past the deadline (`remaining`
    seconds away), so the last attempt happens right at it rather than a pause after it."""
    return max(0.0, min(delay, remaining))
