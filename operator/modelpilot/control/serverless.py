"""The scale-to-zero part of a reconcile (pure): whether the stable track may go to zero now, where
its route points, and what status.serverless and its Events become.

KEDA moves the replicas; the operator owns the idle clock. The clock starts only once every pod
of the track is Ready (a pod waiting for a node or loading its model is never idle) and restarts
at every request; while it runs, or while a canary is in flight, the ScaledObject keeps one pod.
When it runs out, the route first moves to the activator, and only once the gateway has accepted
that route is the last pod released to KEDA: a request arriving meanwhile is held, not refused.
The last request time comes from Prometheus (the model servers' and the activator's gauges),
read beside the reconcile like an analysis; a track is never judged idle on a reading older than
its deadline.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from modelpilot.api.serving import Autoscaling
from modelpilot.rollout.machine import Event
from modelpilot.times import parse_time, stamp

COLD_STARTS_KEPT = 20
HISTORY_KEPT = 200
HISTORY_WINDOW = dt.timedelta(hours=24)
# status.serverless.lastRequestTime moves in steps of at least this: it is written for people; the
# idle clock uses the freshest reading, kept in memory.
LAST_REQUEST_GRANULARITY = dt.timedelta(seconds=30)


@dataclass(frozen=True)
class ServerlessReading:
    """What Prometheus said at `at` (None where it had no series)."""

    at: dt.datetime
    last_request: dt.datetime | None = None
    activations: int | None = None  # the activator's activation count for this track
    cold_start: float | None = None  # seconds the first held request of the last activation waited
    error: str | None = None


@dataclass(frozen=True)
class Track:
    """The stable track as the cache shows it."""

    replicas: int  # the Deployment's spec.replicas (KEDA's and the HPA's to set)
    pods: int  # the Deployment's status.replicas
    ready: int
    starting: int  # pods that are not Ready: waiting for a node, pulling, loading the model


@dataclass(frozen=True)
class ServerlessInputs:
    scaling: Autoscaling
    stored: Mapping[str, Any]  # status.serverless as stored ({} when absent)
    track: Track
    canary_in_flight: bool
    keda: bool  # the ScaledObject CRD is installed
    upstream_known: bool  # the Service `<name>` (stable pods only) has a ClusterIP the activator can forward to
    route_on_activator: bool  # the live route sends the stable share to the activator, accepted
    reading: ServerlessReading | None
    read_every: float


@dataclass(frozen=True)
class ServerlessPart:
    hold: bool = True  # the ScaledObject keeps at least one pod
    via_activator: bool = False  # the route sends the stable share to the activator
    status: dict[str, Any] | None = None  # status.serverless; None: absent
    events: tuple[Event, ...] = ()
    next_at: dt.datetime | None = None  # when a tick is needed (the idle deadline)
    read_at: dt.datetime | None = None  # when the next Prometheus reading is due; None: none needed
    keda_missing: bool = False
    # (reason, message) of a Ready condition that says more than the Deployment does: at zero, or
    # waking from it, the model answers (its requests wait at the activator).
    ready: tuple[str, str] | None = None


def _stamp(value: dt.datetime | None) -> str | None:
    return None if value is None else stamp(value)


def _latest(*times: dt.datetime | None) -> dt.datetime | None:
    present = [t for t in times if t is not None]
    return max(present) if present else None


def replica_history(stored: Sequence[Mapping[str, Any]], pods: int, now: dt.datetime) -> list[dict[str, Any]]:
    """The pod-count changes of the last 24 h, plus the count at the window's start."""
    samples = [(t, int(s["replicas"])) for s in stored if isinstance(s, Mapping)
               and (t := parse_time(s.get("time"))) is not None and isinstance(s.get("replicas"), int)]
    if not samples or samples[-1][1] != pods:
        samples.append((now, pods))
    start = now - HISTORY_WINDOW
    inside = [i for i, (t, _) in enumerate(samples) if t >= start]
    first = max(0, (inside[0] if inside else len(samples)) - 1)
    kept = samples[first:][-HISTORY_KEPT:]
    return [{"time": _stamp(t), "replicas": n} for t, n in kept]


def _cold_starts(stored: Mapping[str, Any], reading: ServerlessReading | None) -> tuple[list[float], int | None]:
    """The cold starts kept, with the activator's latest one added when its count moved (a count
    lower than the stored one is a restarted activator). The count moves when an activation
    starts, the cold-start gauge when it ends: a moved count is taken (with the gauge) only once
    the gauge shows a new value, never the previous activation's again."""
    kept = [float(v) for v in stored.get("coldStarts") or [] if isinstance(v, int | float)]
    seen = stored.get("activations") if isinstance(stored.get("activations"), int) else None
    if reading is None or reading.error is not None or reading.activations is None:
        return kept, seen
    count = reading.activations
    moved = count > (seen or 0) or (seen is not None and count < seen and count > 0)
    if not moved:
        return kept, count
    measured = None if reading.cold_start is None else round(reading.cold_start, 3)
    if measured is None or (kept and measured == kept[-1]):
        return kept, seen  # still activating (or abandoned): counted with the next measurement
    return [*kept, measured][-COLD_STARTS_KEPT:], count


def _transitions(stored: Mapping[str, Any], track: Track, at_zero: bool, after: float,
                 now: dt.datetime) -> tuple[list[Event], dict[str, Any]]:
    was_zero = stored.get("scaledToZero") is True
    events: list[Event] = []
    times: dict[str, Any] = {}
    if at_zero and not was_zero:
        events.append(Event("Normal", "ScaledToZero", f"no request for {after:g}s with every pod Ready: scaled to "
                            "zero; the activator holds requests until a pod is Ready again"))
        times["lastScaledToZeroTime"] = _stamp(now)
    elif was_zero and track.replicas > 0:
        events.append(Event("Normal", "Activated", "a request arrived while at zero: scaling from zero (the "
                            "activator holds requests until a pod is Ready)"))
        times["lastActivationTime"] = _stamp(now)
    return events, times


def serverless_part(inputs: ServerlessInputs, now: dt.datetime) -> ServerlessPart:
    scaling, stored, track, reading = inputs.scaling, inputs.stored, inputs.track, inputs.reading
    if not scaling.scale_to_zero:
        return ServerlessPart()
    fresh = reading if reading is not None and reading.error is None else None
    stored_last = parse_time(stored.get("lastRequestTime"))
    last_request = _latest(stored_last, fresh.last_request if fresh else None)
    at_zero = track.replicas == 0 and track.pods == 0
    eligible = inputs.keda and not at_zero and not inputs.canary_in_flight and track.starting == 0 \
        and track.ready >= 1
    ready_since = (parse_time(stored.get("readySince")) or now) if eligible else None
    after = scaling.scale_to_zero_after_seconds
    clock = _latest(ready_since, last_request) if ready_since is not None else None
    deadline = clock + dt.timedelta(seconds=after) if clock is not None else None
    idle = deadline is not None and now >= deadline and fresh is not None and fresh.at >= deadline
    # Released once KEDA has set the Deployment to zero, also while its last pod goes: holding it
    # again then (its pod no longer Ready stops the clock) would scale it straight back up.
    released = track.replicas == 0 or (idle and inputs.route_on_activator)
    hold = inputs.canary_in_flight or not inputs.keda or not released
    via_activator = inputs.keda and inputs.upstream_known and not inputs.canary_in_flight and \
        (at_zero or idle or track.ready == 0)
    events, times = _transitions(stored, track, at_zero, after, now)
    cold, activations = _cold_starts(stored, reading)
    shown_last = stored_last
    if last_request is not None and (stored_last is None or last_request - stored_last >= LAST_REQUEST_GRANULARITY):
        shown_last = last_request
    status: dict[str, Any] = {
        "scaledToZero": at_zero,
        "lastRequestTime": _stamp(shown_last),
        "readySince": _stamp(ready_since),
        "lastScaledToZeroTime": stored.get("lastScaledToZeroTime"),
        "lastActivationTime": stored.get("lastActivationTime"),
        **times,
        "activations": activations,
        "coldStarts": cold,
        "lastColdStartSeconds": cold[-1] if cold else None,
        "p50ColdStartSeconds": round(statistics.median(cold), 3) if cold else None,
        "replicaHistory": replica_history(stored.get("replicaHistory") or [], track.pods, now),
    }
    read_at = None
    if not at_zero:
        read_at = now if reading is None else reading.at + dt.timedelta(seconds=inputs.read_every)
        if deadline is not None and (reading is None or reading.at < deadline):
            read_at = min(read_at, max(now, deadline))
    return ServerlessPart(
        hold=hold, via_activator=via_activator,
        status={k: v for k, v in status.items() if v is not None},
        events=tuple(events), next_at=deadline if deadline is not None and not idle else None,
        read_at=read_at, keda_missing=not inputs.keda, ready=_ready(status, track, at_zero, via_activator))


def _ready(status: Mapping[str, Any], track: Track, at_zero: bool, via_activator: bool) -> tuple[str, str] | None:
    if at_zero:
        return "ScaledToZero", "idle: no pod runs; a request is held by the activator and wakes the model"
    activated, zeroed = parse_time(status.get("lastActivationTime")), parse_time(status.get("lastScaledToZeroTime"))
    if via_activator and track.ready == 0 and activated is not None and (zeroed is None or activated >= zeroed):
        return "Activating", "scaling from zero: requests are held by the activator until a pod is Ready"
    return None
