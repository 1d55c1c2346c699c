"""The pure leader-election rules, and the elector against an in-memory Lease API (one clock)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import urllib3
from kubernetes.client.exceptions import ApiException

from modelpilot.leader.elector import LeaderElector
from modelpilot.leader.lease import (
    LeaseRecord,
    Observed,
    Timing,
    claim,
    decide,
    from_object,
    observe,
    released,
    to_object,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
HELD = LeaseRecord("other", 10, T0, T0, 3, "7")


@pytest.mark.parametrize(("observed", "now", "step"), [
    (None, 0.0, "create"),
    (Observed(HELD, since=100.0), 105.0, "wait"),  # renewed 5 s ago, lease 10 s
    (Observed(HELD, since=100.0), 109.9, "wait"),
    (Observed(HELD, since=100.0), 110.0, "acquire"),  # unchanged for a whole lease: the holder is gone
    (Observed(LeaseRecord("", 1, T0, T0, 3, "8"), since=100.0), 100.0, "acquire"),  # released
    (Observed(LeaseRecord("me", 10, T0, T0, 0, "9"), since=100.0), 500.0, "renew"),
])
def test_decide(observed: Observed | None, now: float, step: str) -> None:
    assert decide(observed, "me", now) == step


def test_observe_keeps_the_time_it_first_saw_a_record_and_restarts_on_a_renewal() -> None:
    first = observe(None, HELD, 100.0)
    assert observe(first, HELD, 150.0).since == 100.0
    renewed = LeaseRecord("other", 10, T0, datetime(2026, 1, 1, 0, 0, 2, tzinfo=UTC), 3, "8")
    assert observe(first, renewed, 150.0).since == 150.0


def test_claim_and_release() -> None:
    timing = Timing.for_lease(10)
    later = datetime(2026, 1, 1, 0, 1, tzinfo=UTC)
    created = claim(None, "me", "create", T0, timing)
    assert (created.holder, created.lease_seconds, created.transitions) == ("me", 10, 0)
    taken = claim(HELD, "me", "acquire", later, timing)
    assert (taken.holder, taken.acquire_time, taken.transitions, taken.resource_version) == ("me", later, 4, "7")
    renewed = claim(taken, "me", "renew", T0, timing)
    assert (renewed.acquire_time, renewed.renew_time, renewed.transitions) == (later, T0, 4)
    gone = released(renewed, later)
    assert (gone.holder, gone.lease_seconds) == ("", 1)


@pytest.mark.parametrize(("lease", "renew", "retry"), [(10, 10, 2), (10, 7, 7), (10, 7, 0), (1, 2, 0.5)])
def test_timing_must_be_ordered(lease: float, renew: float, retry: float) -> None:
    with pytest.raises(ValueError, match="lease > renew deadline > retry period"):
        Timing(lease, renew, retry)


def test_lease_object_round_trip() -> None:
    record = LeaseRecord("me", 10, T0, datetime(2026, 1, 1, 0, 0, 1, 500, tzinfo=UTC), 2, "42")
    obj = to_object(record, "ns", "modelpilot", {"a": "b"})
    assert obj["spec"]["renewTime"] == "2026-01-01T00:00:01.000500Z"
    assert obj["metadata"]["resourceVersion"] == "42"
    assert from_object(obj) == record


# -- the elector -----------------------------------------------------------------------------------
class LeaseApi:
    """coordination.k8s.io Leases in memory, with resourceVersion checks (409) like the API server."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.version = 0
        self.down = False
        self.timing_out = False

    def request(self, method: str, path: str, body: Any = None, timeout: float = 30, **_: Any) -> Any:
        if self.down:
            raise ApiException(status=503, reason="Service Unavailable")
        if self.timing_out:  # what the client raises when a loaded API server answers too late
            raise urllib3.exceptions.MaxRetryError(None, path, urllib3.exceptions.ReadTimeoutError(None, path, "x"))
        name = body["metadata"]["name"] if body else path.rsplit("/", 1)[1]
        if method == "GET":
            if name not in self.objects:
                raise ApiException(status=404, reason="Not Found")
            return self.objects[name]
        stored = self.objects.get(name)
        if method == "POST" and stored is not None:
            raise ApiException(status=409, reason="AlreadyExists")
        if method == "PUT" and (stored is None or stored["metadata"]["resourceVersion"]
                                != body["metadata"].get("resourceVersion")):
            raise ApiException(status=409, reason="Conflict")
        self.version += 1
        self.objects[name] = {**body, "metadata": {**body["metadata"], "resourceVersion": str(self.version)}}
        return self.objects[name]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def electors(api: LeaseApi, clock: Clock) -> tuple[LeaderElector, LeaderElector]:
    timing = Timing.for_lease(10)
    return (LeaderElector(api, "ns", "modelpilot", "a", timing, clock),  # type: ignore[arg-type]
            LeaderElector(api, "ns", "modelpilot", "b", timing, clock))  # type: ignore[arg-type]


def test_one_leads_the_other_takes_over_only_when_the_lease_runs_out() -> None:
    api, clock = LeaseApi(), Clock()
    a, b = electors(api, clock)
    assert a.try_once() and not b.try_once()
    for _ in range(20):  # a renews every 2 s: b never gets it
        clock.now += 2
        assert a.try_once() and not b.try_once()
    # a dies: b saw its last renewal just now, and takes over one lease later
    clock.now += 9.9
    assert not b.try_once()
    clock.now += 0.1
    assert b.try_once()
    assert api.objects["modelpilot"]["spec"]["holderIdentity"] == "b"
    assert api.objects["modelpilot"]["spec"]["leaseTransitions"] == 1
    clock.now += 2
    assert not a.try_once(), "a came back: it sees b's fresh lease and waits"


def test_a_released_lease_is_taken_at_the_next_look() -> None:
    api, clock = LeaseApi(), Clock()
    a, b = electors(api, clock)
    assert a.try_once() and not b.try_once()
    a.release()
    assert api.objects["modelpilot"]["spec"]["holderIdentity"] == ""
    clock.now += 0.5
    assert b.try_once()


def test_a_lost_race_is_no_error() -> None:
    api, clock = LeaseApi(), Clock()
    a, b = electors(api, clock)
    assert a.try_once()
    clock.now += 20
    assert not b.try_once()  # b sees a's lease for the first time: it counts from now ...
    clock.now += 10
    assert b.try_once()  # ... and takes it one lease later
    assert api.objects["modelpilot"]["spec"]["holderIdentity"] == "b"
    # a has seen b's record unchanged for longer than a lease (say, b stopped renewing) ...
    a.observed = observe(None, from_object(api.objects["modelpilot"]), clock.now)
    original = api.request
    puts: list[str] = []

    def racing(method: str, path: str, body: Any = None, **kw: Any) -> Any:
        if method == "PUT":  # b renews before a's takeover lands
            puts.append(body["spec"]["holderIdentity"])
            api.objects["modelpilot"]["metadata"]["resourceVersion"] = "changed"
        return original(method, path, body, **kw)

    api.request = racing  # type: ignore[method-assign]
    clock.now += 20
    assert not a.try_once(), "the 409 of the lost race means: not leading"
    assert puts == ["a"]
    assert api.objects["modelpilot"]["spec"]["holderIdentity"] == "b"


@pytest.mark.parametrize("failure", ["down", "timing_out"])
def test_the_leader_gives_up_when_it_cannot_renew_within_the_deadline(failure: str) -> None:
    """An API error or a client timeout is a failed renewal: the loop goes on and gives up at the
    deadline (a timeout that killed the renewal thread would leave a leader that never renews)."""
    api, clock = LeaseApi(), Clock()
    a, _ = electors(api, clock)
    a.timing = Timing(lease_seconds=0.5, renew_deadline=0.3, retry_period=0.05)
    assert a.try_once()
    lost: list[str] = []
    setattr(api, failure, True)
    a.keep(lost.append)
    assert a._thread is not None
    # the loop runs on the real clock for sleeping and the fake one for the deadline: move it on
    while a._thread.is_alive():
        clock.now += 0.1
        a._thread.join(0.05)
    assert lost == ["Lease ns/modelpilot not renewed for 0s"]
