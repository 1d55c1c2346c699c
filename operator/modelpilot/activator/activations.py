"""Which requests are held and when a target is being activated (pure, with an injected clock).

A request is *held* from its arrival until it has an upstream connection (and again if that
connection breaks before any response byte). An *activation* starts when a request for a target
arrives while no other request for that target is held, and its first connect is refused: the
model is at zero. It ends with the first new upstream connection for that target after that, and its
cold start is the time from that first request's arrival. That first connection is normally the
first request's own (every held request retries on the same schedule); when that request gives up
or its client goes away first, the activation carries on with the requests still held, so a cold
start longer than a client's patience is still measured. When no request for the target is held
any more the activation is abandoned: nothing is measured.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from modelpilot.activator.target import Target

Clock = Callable[[], float]


@dataclass
class Ticket:
    """One request's hold state. `waited` adds up the seconds it was held."""

    target: Target
    arrived: float
    held_since: float | None
    may_activate: bool  # nothing else for the target was held when it arrived, and no connect failed yet
    waited: float = 0.0
    failures: int = 0  # connect attempts refused (or timed out)

    @property
    def held(self) -> bool:
        return self.held_since is not None


class Activations:
    """Held requests per target and the activations in progress. Entries go when their count
    reaches zero, so memory follows the requests held now, not every target ever seen."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._held: dict[Target, int] = {}
        self._started: dict[Target, float] = {}  # target -> arrival of the request that started it

    def held(self, target: Target) -> int:
        return self._held.get(target, 0)

    def activating(self, target: Target) -> bool:
        return target in self._started

    def arrive(self, target: Target) -> Ticket:
        now = self.clock()
        first = self._held.get(target, 0) == 0
        self._held[target] = self._held.get(target, 0) + 1
        return Ticket(target, arrived=now, held_since=now, may_activate=first)

    def refused(self, ticket: Ticket) -> bool:
        """A connect attempt failed. True when this starts an activation (the ticket's first failure,
        nothing else was held at its arrival, and no activation of the target is under way)."""
        starts = ticket.may_activate and ticket.target not in self._started
        ticket.may_activate = False
        ticket.failures += 1
        if starts:
            self._started[ticket.target] = ticket.arrived
        return starts

    def connected(self, ticket: Ticket, fresh: bool = True) -> float | None:
        """The ticket has an upstream connection: a `fresh` one, or one reused from the pool. The
        cold start in seconds when this ends an activation, else None.

        Only a fresh connection proves the upstream is back: a pooled one may be stale (it then
        fails, and the request is held again, still able to start an activation) or lead to a pod
        that is draining while the Service has no ready endpoint."""
        self._unhold(ticket)
        if not fresh:
            return None
        ticket.may_activate = False
        started = self._started.pop(ticket.target, None)
        return None if started is None else self.clock() - started

    def rehold(self, ticket: Ticket) -> None:
        """The connection broke before any response byte, or a connect failed after a pooled
        connection turned out stale: held again until the next connection."""
        if not ticket.held:
            ticket.held_since = self.clock()
            self._held[ticket.target] = self._held.get(ticket.target, 0) + 1

    def leave(self, ticket: Ticket) -> bool:
        """The request is done (answered, timed out, its client gone). True when that abandons an
        activation: it was the last request held for a target being activated."""
        if not ticket.held:
            return False
        self._unhold(ticket)
        if self._held.get(ticket.target, 0) == 0 and ticket.target in self._started:
            del self._started[ticket.target]
            return True
        return False

    def _unhold(self, ticket: Ticket) -> None:
        if ticket.held_since is None:
            return
        ticket.waited += self.clock() - ticket.held_since
        ticket.held_since = None
        count = self._held.get(ticket.target, 0) - 1
        if count > 0:
            self._held[ticket.target] = count
        else:
            self._held.pop(ticket.target, None)
