"""Scale to zero's idle clock, hold and route (control/serverless.py), tick by tick with an injected
clock, its inputs from an observation (control/scaling.py) and the Prometheus reading it runs on
(analysis/serverless_read.py).

Each scenario is a list of ticks: (seconds since t0, input changes, expectations). The
status.serverless one tick writes goes through the status model and back before the next, as the
operator stores it.
"""

from __future__ import annotations

import datetime as dt
import statistics
from dataclasses import replace
from typing import Any

import pytest

from modelpilot.api.serving import Autoscaling
from modelpilot.api.status import ServerlessStatus
from modelpilot.control.serverless import (
    COLD_STARTS_KEPT,
    HISTORY_KEPT,
    ServerlessInputs,
    ServerlessPart,
    ServerlessReading,
    Track,
    replica_history,
    serverless_part,
)

T0 = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC)
AFTER = 60  # scaleToZeroAfter, seconds
SCALING = Autoscaling.model_validate({"minReplicas": 0, "maxReplicas": 3, "metric": "requests",
                                      "scaleToZeroAfter": f"{AFTER}s"})
READY = Track(replicas=1, pods=1, ready=1, starting=0)
STARTING = Track(replicas=1, pods=1, ready=0, starting=1)
ZERO = Track(replicas=0, pods=0, ready=0, starting=0)
BASE = ServerlessInputs(scaling=SCALING, stored={}, track=READY, canary_in_flight=False, keda=True,
                        upstream_known=True, route_on_activator=False, reading=None, read_every=15.0)
PART_FIELDS = ("hold", "via_activator", "next_at", "read_at", "keda_missing")


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def stamp(seconds: float) -> str:
    return at(seconds).strftime("%Y-%m-%dT%H:%M:%SZ")


def reading(taken: float, last: float | None = None, **extra: Any) -> ServerlessReading:
    """A reading as of `taken` s whose last request was at `last` s."""
    return ServerlessReading(at=at(taken), last_request=None if last is None else at(last), **extra)


def stored(status: dict[str, Any] | None) -> dict[str, Any]:
    """status.serverless as the API server keeps it: through the status model and back."""
    if not status:
        return {}
    return ServerlessStatus.model_validate(status).model_dump(mode="json", by_alias=True, exclude_none=True)


Tick = tuple[float, dict[str, Any], dict[str, Any]]


def run(ticks: list[Tick], status: dict[str, Any] | None = None) -> list[ServerlessPart]:
    """Drive serverless_part through `ticks`; inputs not changed by a tick are BASE's."""
    parts = []
    kept = stored(status)
    for seconds, changes, expect in ticks:
        part = serverless_part(replace(BASE, stored=kept, **changes), at(seconds))
        check(seconds, part, expect)
        parts.append(part)
        kept = stored(part.status)
    return parts


def check(seconds: float, part: ServerlessPart, expect: dict[str, Any]) -> None:
    where = f"t={seconds}"
    status = part.status or {}
    for key, want in expect.items():
        if key == "events":
            assert [e.reason for e in part.events] == want, (where, part.events)
        elif key in ("next_at", "read_at"):
            assert getattr(part, key) == (None if want is None else at(want)), (where, key, getattr(part, key))
        elif key in PART_FIELDS:
            assert getattr(part, key) == want, (where, key)
        else:  # a field of status.serverless; None: absent
            assert status.get(key) == want, (where, key, status)


# ------------------------------------------------------------------------------------ scenarios

SCENARIOS: dict[str, list[Tick]] = {
    "ready-starts-the-clock-requests-move-it": [
        # A new track: its pod is starting; never idle, a pod held, requests held by the activator.
        (0, {"track": STARTING}, {"hold": True, "via_activator": True, "readySince": None, "next_at": None,
                                  "read_at": 0, "events": [], "scaledToZero": False,
                                  "replicaHistory": [{"time": stamp(0), "replicas": 1}]}),
        (10, {"reading": reading(5)}, {"readySince": stamp(10), "next_at": 10 + AFTER, "read_at": 20,
                                       "hold": True, "via_activator": False, "lastRequestTime": None}),
        (30, {"reading": reading(25, last=20)}, {"readySince": stamp(10), "next_at": 20 + AFTER,
                                                 "lastRequestTime": stamp(20), "hold": True}),
        # The clock moves with every request; lastRequestTime only in steps of 30 s.
        (50, {"reading": reading(45, last=35)}, {"next_at": 35 + AFTER, "lastRequestTime": stamp(20)}),
        (80, {"reading": reading(75, last=55)}, {"next_at": 55 + AFTER, "lastRequestTime": stamp(55)}),
        # The next reading is due at the deadline when that comes before the regular one.
        (108, {"reading": reading(105, last=55)}, {"read_at": 55 + AFTER, "hold": True, "via_activator": False}),
    ],
    "idle-only-on-a-reading-taken-after-the-deadline": [
        (0, {"reading": reading(-5)}, {"readySince": stamp(0), "next_at": AFTER}),
        (AFTER + 1, {"reading": reading(AFTER - 5)}, {"hold": True, "via_activator": False, "next_at": AFTER,
                                                      "read_at": AFTER + 1}),
        (AFTER + 2, {"reading": reading(AFTER + 1, error="prometheus unreachable")},
         {"hold": True, "via_activator": False, "next_at": AFTER}),
        # Idle: the route moves to the activator first; the pod stays until the gateway took it.
        (AFTER + 3, {"reading": reading(AFTER)}, {"hold": True, "via_activator": True, "next_at": None,
                                                  "events": []}),
        (AFTER + 4, {"reading": reading(AFTER), "route_on_activator": True},
         {"hold": False, "via_activator": True, "events": [], "scaledToZero": False}),
        # KEDA scales the Deployment to zero; the last pod goes (Deployment status lagging behind).
        (AFTER + 30, {"reading": reading(AFTER), "route_on_activator": True, "track": Track(0, 1, 1, 0)},
         {"hold": False, "via_activator": True}),
        (AFTER + 31, {"reading": reading(AFTER), "route_on_activator": True, "track": Track(0, 1, 0, 0)},
         {"hold": False, "via_activator": True}),
        (AFTER + 32, {"reading": reading(AFTER + 31, error="timeout"), "route_on_activator": True,
                      "track": Track(0, 1, 0, 0)}, {"hold": False, "via_activator": True}),
        (AFTER + 33, {"reading": reading(AFTER), "route_on_activator": True, "track": ZERO},
         {"scaledToZero": True, "events": ["ScaledToZero"], "lastScaledToZeroTime": stamp(AFTER + 33),
          "hold": False, "via_activator": True, "readySince": None, "read_at": None, "next_at": None}),
        (AFTER + 40, {"reading": reading(AFTER), "route_on_activator": True, "track": ZERO},
         {"scaledToZero": True, "events": [], "hold": False, "via_activator": True}),
    ],
    "activation-holds-requests-until-a-pod-is-ready": [
        (0, {"track": ZERO, "route_on_activator": True}, {"scaledToZero": True, "events": ["ScaledToZero"]}),
        # A request at the activator; KEDA scales to one before the ReplicaSet made the pod.
        (100, {"track": Track(1, 0, 0, 0), "route_on_activator": True},
         {"events": ["Activated"], "lastActivationTime": stamp(100), "scaledToZero": False, "hold": True,
          "via_activator": True, "readySince": None, "lastScaledToZeroTime": stamp(0)}),
        (105, {"track": STARTING, "route_on_activator": True, "reading": reading(100, last=98)},
         {"events": [], "hold": True, "via_activator": True, "lastRequestTime": stamp(98)}),
        (130, {"track": READY, "route_on_activator": True, "reading": reading(100, last=98)},
         {"events": [], "hold": True, "via_activator": False, "readySince": stamp(130), "next_at": 130 + AFTER,
          "lastActivationTime": stamp(100)}),
    ],
    "a-canary-in-flight-holds-the-stable-pod": [
        (0, {"canary_in_flight": True, "reading": reading(-5)}, {"hold": True, "via_activator": False,
                                                                 "readySince": None, "next_at": None}),
        (600, {"canary_in_flight": True, "reading": reading(599)}, {"hold": True, "via_activator": False}),
        (700, {"reading": reading(699)}, {"readySince": stamp(700), "next_at": 700 + AFTER, "hold": True}),
        # A canary starting while the stable track is at zero brings a stable pod back.
        (800, {"canary_in_flight": True, "track": ZERO}, {"hold": True, "via_activator": False}),
    ],
    "keda-missing-holds-without-the-activator": [
        (0, {"keda": False, "reading": reading(-5)}, {"hold": True, "via_activator": False, "keda_missing": True,
                                                      "readySince": None}),
        (600, {"keda": False, "reading": reading(599), "route_on_activator": True},
         {"hold": True, "via_activator": False, "keda_missing": True}),
        (601, {"keda": False, "track": STARTING}, {"hold": True, "via_activator": False}),
    ],
    "a-pending-pod-is-never-idle": [
        (0, {"track": Track(2, 2, 1, 1), "reading": reading(-5)}, {"readySince": None, "next_at": None}),
        (86_400, {"track": Track(2, 2, 1, 1), "reading": reading(86_399)},
         {"hold": True, "via_activator": False, "readySince": None, "next_at": None}),
        (86_401, {"track": Track(1, 1, 0, 1), "reading": reading(86_400)},
         {"hold": True, "readySince": None, "replicaHistory": [{"time": stamp(0), "replicas": 2},
                                                               {"time": stamp(86_401), "replicas": 1}]}),
    ],
    "no-upstream-no-activator": [
        (0, {"track": STARTING, "upstream_known": False}, {"via_activator": False, "hold": True}),
        (1, {"upstream_known": False}, {"readySince": stamp(1)}),
        (AFTER + 5, {"upstream_known": False, "reading": reading(AFTER + 1)},
         {"via_activator": False, "hold": True, "next_at": None}),
    ],
}


@pytest.mark.parametrize("name", SCENARIOS)
def test_scenario(name: str) -> None:
    run(SCENARIOS[name])


def test_the_clock_survives_a_restart_through_status() -> None:
    """readySince and lastRequestTime are all the next operator process has."""
    first = run([(0, {"reading": reading(-5, last=-40)}, {"readySince": stamp(0), "lastRequestTime": stamp(-40)})])
    again = serverless_part(replace(BASE, stored=stored(first[0].status)), at(30))
    assert again.status is not None and again.status["readySince"] == stamp(0)
    assert again.next_at == at(AFTER) and again.read_at == at(30)  # no reading yet: one is due now


def test_without_scale_to_zero_nothing_is_written() -> None:
    scaling = Autoscaling.model_validate({"minReplicas": 1, "maxReplicas": 3, "metric": "requests"})
    assert serverless_part(replace(BASE, scaling=scaling), T0) == ServerlessPart()


# ------------------------------------------------------------------------------------ read_at


@pytest.mark.parametrize(("now", "last_reading", "track", "want"), [
    (0, None, READY, 0),  # no reading yet: now
    (20, 10, READY, 25),  # every read_every (15 s) after the last one
    (40, 10, READY, 25),  # overdue: in the past, so due now
    (55, 50, READY, AFTER),  # the deadline before the regular reading
    (70, 65, READY, 80),  # a reading after the deadline: back to the regular pace
    (55, 50, STARTING, 65),  # no clock, no deadline
    (55, 50, ZERO, None),  # at zero: KEDA watches the demand, no reading needed
])
def test_read_at(now: float, last_reading: float | None, track: Track, want: float | None) -> None:
    base = stored(serverless_part(BASE, T0).status)  # readySince t0: the deadline at AFTER
    inputs = replace(BASE, stored=base, track=track, reading=None if last_reading is None else reading(last_reading))
    part = serverless_part(inputs, at(now))
    assert part.read_at == (None if want is None else at(want))


# ------------------------------------------------------------------------------------ lastRequestTime


@pytest.mark.parametrize(("kept", "seen", "want"), [
    (None, 10, 10),
    (10, 39, 10),  # moved 29 s: unchanged (no status write)
    (10, 40, 40),  # moved 30 s: written
    (40, 10, 40),  # an older reading (a gauge gone with its pod) never moves it back
    (40, None, 40),  # no series
])
def test_last_request_time_moves_in_steps_of_30s(kept: float | None, seen: float | None, want: float) -> None:
    status = {} if kept is None else {"scaledToZero": False, "lastRequestTime": stamp(kept)}
    part = serverless_part(replace(BASE, stored=stored(status), reading=reading(45, last=seen)), at(50))
    assert part.status is not None and part.status["lastRequestTime"] == stamp(want)


# ------------------------------------------------------------------------------------ cold starts


def cold_starts(kept: list[float], seen: int | None, **read: Any) -> tuple[list[float], int | None, Any]:
    status: dict[str, Any] = {"scaledToZero": False, "coldStarts": kept}
    if seen is not None:
        status["activations"] = seen
    part = serverless_part(replace(BASE, stored=stored(status), reading=reading(5, **read)), at(10))
    assert part.status is not None
    return part.status["coldStarts"], part.status.get("activations"), part.status


@pytest.mark.parametrize(("kept", "seen", "read", "want", "count"), [
    ([], None, {"activations": 1, "cold_start": 12.3456}, [12.346], 1),
    ([4.0], 1, {"activations": 2, "cold_start": 9.5}, [4.0, 9.5], 2),
    ([4.0], 1, {"activations": 3, "cold_start": 9.5}, [4.0, 9.5], 3),  # two at once: the latest is known
    ([4.0], 2, {"activations": 2, "cold_start": 4.0}, [4.0], 2),  # nothing new
    ([4.0], 2, {"activations": 2, "cold_start": 9.5}, [4.0], 2),  # no activation: not a cold start
    # The count moves when an activation starts, the gauge when it ends: wait for the measurement.
    ([], None, {"activations": 1}, [], None),
    ([4.0], 1, {"activations": 2, "cold_start": 4.0}, [4.0], 1),
    # A restarted activator: its count starts again (and its gauge is new).
    ([4.0], 7, {"activations": 1, "cold_start": 6.0}, [4.0, 6.0], 1),
    ([4.0], 7, {"activations": 0}, [4.0], 0),
    ([4.0], 0, {"activations": 1, "cold_start": 6.0}, [4.0, 6.0], 1),
    # No series, or no answer: kept as they are.
    ([4.0], 2, {}, [4.0], 2),
    ([4.0], 2, {"activations": 5, "cold_start": 8.0, "error": "prometheus unreachable"}, [4.0], 2),
])
def test_cold_starts_follow_the_activation_count(kept: list[float], seen: int | None, read: dict[str, Any],
                                                 want: list[float], count: int | None) -> None:
    got, activations, status = cold_starts(kept, seen, **read)
    assert (got, activations) == (want, count)
    assert status.get("lastColdStartSeconds") == (want[-1] if want else None)


def test_an_activation_is_counted_once_its_cold_start_is_measured() -> None:
    """The reading during an activation sees the new count and the previous gauge: the new cold
    start is the one the next reading brings, not the previous one again."""
    status: dict[str, Any] = {"scaledToZero": False, "coldStarts": [4.0], "activations": 1}
    for taken, read in ((5, {"activations": 2, "cold_start": 4.0}), (20, {"activations": 2, "cold_start": 21.0}),
                        (35, {"activations": 2, "cold_start": 21.0})):
        part = serverless_part(replace(BASE, stored=stored(status), reading=reading(taken, **read)), at(taken + 5))
        assert part.status is not None
        status = part.status
    assert (status["coldStarts"], status["activations"]) == ([4.0, 21.0], 2)


@pytest.mark.parametrize("kept", [[1.0, 2.0, 30.0], [5.0] * 3, [float(i) for i in range(COLD_STARTS_KEPT)]])
def test_cold_starts_are_capped_with_last_and_median(kept: list[float]) -> None:
    got, _, status = cold_starts(kept, 1, activations=2, cold_start=99.0)
    assert got == [*kept, 99.0][-COLD_STARTS_KEPT:] and len(got) <= COLD_STARTS_KEPT
    assert status["lastColdStartSeconds"] == 99.0
    assert status["p50ColdStartSeconds"] == round(statistics.median(got), 3)
    stored(status)  # within the CRD's bounds


# ------------------------------------------------------------------------------------ replica history


def samples(*points: tuple[float, int]) -> list[dict[str, Any]]:
    return [{"time": stamp(t), "replicas": n} for t, n in points]


DAY = 86_400
HISTORY = [
    ("first-sample", [], 1, 0, samples((0, 1))),
    ("unchanged-is-not-appended", samples((0, 1)), 1, 50, samples((0, 1))),
    ("a-change-is-appended", samples((0, 1)), 0, 50, samples((0, 1), (50, 0))),
    ("the-sample-at-the-window-start-is-kept", samples((0, 1), (100, 0), (DAY + 50, 1)), 1, DAY + 200,
     samples((100, 0), (DAY + 50, 1))),
    ("older-samples-pruned", samples((0, 1), (10, 2), (20, 0)), 0, 2 * DAY, samples((20, 0))),
    ("older-samples-pruned-then-a-change", samples((0, 1), (10, 2), (20, 0)), 3, 2 * DAY,
     samples((20, 0), (2 * DAY, 3))),
    ("unreadable-samples-dropped", [{"time": "yesterday", "replicas": 1}, {"time": stamp(0), "replicas": "2"},
                                    "x", {"time": stamp(5), "replicas": 2}], 2, 10, samples((5, 2))),
]


@pytest.mark.parametrize(("case", "kept", "pods", "now", "want"), HISTORY, ids=[h[0] for h in HISTORY])
def test_replica_history(case: str, kept: list[Any], pods: int, now: float, want: list[dict[str, Any]]) -> None:
    assert replica_history(kept, pods, at(now)) == want


def test_replica_history_is_capped() -> None:
    kept = samples(*((i * 60, i % 2) for i in range(HISTORY_KEPT + 20)))
    got = replica_history(kept, 5, at(HISTORY_KEPT * 60 + 1500))
    assert len(got) == HISTORY_KEPT and got[-1] == {"time": stamp(HISTORY_KEPT * 60 + 1500), "replicas": 5}
    assert got[:-1] == kept[-(HISTORY_KEPT - 1):]
