"""The pure rules of Lease-based leader election (no API calls, no clock of its own).

The same rules as Kubernetes' own controllers: a Lease held by another replica is taken over only
after it has not changed for a whole lease duration, measured on the *local* monotonic clock from
when this replica last saw it change (so clocks that disagree between nodes do not matter); the
holder renews well before that; a replica that stops cleanly releases the Lease, so a standby takes
over at its next poll instead of waiting for the lease to run out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

Step = Literal["create", "acquire", "renew", "wait"]


@dataclass(frozen=True)
class Timing:
    """lease > renew deadline > retry period, as in client-go (whose defaults are 15/10/2 s)."""

    lease_seconds: float = 10.0
    # The leader gives up (and exits) when it could not renew for this long; less than the lease,
    # so it has stopped acting before a standby may take over.
    renew_deadline: float = 7.0
    # How often the leader renews and a standby looks.
    retry_period: float = 2.0

    @classmethod
    def for_lease(cls, lease_seconds: float) -> Timing:
        return cls(lease_seconds, renew_deadline=lease_seconds * 0.7, retry_period=lease_seconds * 0.2)

    def __post_init__(self) -> None:
        if not self.lease_seconds > self.renew_deadline > self.retry_period > 0:
            raise ValueError("leader election needs lease > renew deadline > retry period > 0")


@dataclass(frozen=True)
class LeaseRecord:
    """The spec of a coordination.k8s.io/v1 Lease, plus the resourceVersion it was read at."""

    holder: str = ""
    lease_seconds: int = 0
    acquire_time: datetime | None = None
    renew_time: datetime | None = None
    transitions: int = 0
    resource_version: str | None = None

    def same_holding(self, other: LeaseRecord) -> bool:
        """Unchanged, as far as expiry goes: a renewal changes renew_time (and resourceVersion)."""
        return (self.holder, self.renew_time, self.resource_version) == (
            other.holder, other.renew_time, other.resource_version)


@dataclass(frozen=True)
class Observed:
    """The last Lease this replica saw, and when (monotonic seconds) it first saw it so."""

    record: LeaseRecord
    since: float


def observe(previous: Observed | None, record: LeaseRecord, now: float) -> Observed:
    if previous is not None and previous.record.same_holding(record):
        return Observed(record, previous.since)
    return Observed(record, now)


def decide(observed: Observed | None, identity: str, now: float) -> Step:
    """What to do with the Lease as last observed (None: it does not exist)."""
    if observed is None:
        return "create"
    record = observed.record
    if record.holder == identity:
        return "renew"
    if record.holder and now < observed.since + record.lease_seconds:
        return "wait"  # held, and renewed within the lease: a leader is alive
    return "acquire"  # released, or not renewed for a whole lease


def claim(record: LeaseRecord | None, identity: str, step: Step, wall_now: datetime, timing: Timing) -> LeaseRecord:
    """The record to write for `step` (create, acquire or renew)."""
    lease_seconds = max(1, math.ceil(timing.lease_seconds))  # the Lease holds whole seconds
    if record is None or step == "create":
        return LeaseRecord(identity, lease_seconds, wall_now, wall_now, 0)
    if step == "renew":
        return replace(record, lease_seconds=lease_seconds, renew_time=wall_now)
    return replace(record, holder=identity, lease_seconds=lease_seconds, acquire_time=wall_now,
                   renew_time=wall_now, transitions=record.transitions + 1)


def released(record: LeaseRecord, wall_now: datetime) -> LeaseRecord:
    """Given up on a clean stop: no holder, so a standby acquires at its next look."""
    return replace(record, holder="", lease_seconds=1, renew_time=wall_now)


# -- the Lease object ------------------------------------------------------------------------------
def _time(raw: Any) -> datetime | None:
    if not raw:
        return None
    return datetime.fromisoformat(str(raw).replace("Z", "+00:00"))


def _micro(value: datetime | None) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if value else None


def from_object(obj: dict[str, Any]) -> LeaseRecord:
    spec = obj.get("spec") or {}
    return LeaseRecord(
        holder=spec.get("holderIdentity") or "",
        lease_seconds=int(spec.get("leaseDurationSeconds") or 0),
        acquire_time=_time(spec.get("acquireTime")),
        renew_time=_time(spec.get("renewTime")),
        transitions=int(spec.get("leaseTransitions") or 0),
        resource_version=(obj.get("metadata") or {}).get("resourceVersion"),
    )


def to_object(record: LeaseRecord, namespace: str, name: str, labels: dict[str, str]) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "namespace": namespace, "labels": labels}
    if record.resource_version:
        metadata["resourceVersion"] = record.resource_version  # optimistic concurrency: 409 if it moved
    return {
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": metadata,
        "spec": {"holderIdentity": record.holder, "leaseDurationSeconds": record.lease_seconds,
                 "acquireTime": _micro(record.acquire_time), "renewTime": _micro(record.renew_time),
                 "leaseTransitions": record.transitions},
    }
