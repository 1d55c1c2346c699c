"""The operator's API requests, counted from the test bed's audit log.

The test bed's audit policy (hack/testbed.py, AUDIT_POLICY) logs every write at Metadata level,
and also the reads (get, list, watch) of one identity: the ServiceAccount the bench runs its
operator as. So every request of that user is in the log, one or two lines each (a watch has a
ResponseStarted line when it opens and a ResponseComplete line when it ends), told apart by
auditID and placed in time by requestReceivedTimestamp.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hack.audit import events, log_offset, requests

__all__ = ["Counts", "count", "log_offset", "policy_audits_reads", "wait_for_watch"]

READS = {"get", "list"}
WATCHES = {"watch"}
WRITES = {"create", "update", "patch", "delete", "deletecollection"}


@dataclass
class Counts:
    """Requests received in [start, end)."""

    start: float
    end: float
    reads: int = 0
    watches: int = 0
    writes: int = 0
    by_request: Counter[str] = field(default_factory=Counter)  # "verb resource[/subresource]" -> n

    @property
    def minutes(self) -> float:
        return (self.end - self.start) / 60

    def per_minute(self, what: str) -> float:
        return float(getattr(self, what)) / self.minutes

    def as_dict(self) -> dict[str, Any]:
        return {"window_seconds": self.end - self.start, "reads": self.reads, "watches": self.watches,
                "writes": self.writes, "by_request": dict(self.by_request.most_common())}


def policy_audits_reads(policy: Path, user: str) -> bool:
    """Whether the running test bed's audit policy logs `user`'s reads (clusters started before
    that rule existed do not: `make cluster-down cluster-up` fixes it)."""
    if not policy.exists():
        return False
    text = policy.read_text()
    return user in text and "watch" in text




def count(path: Path, offset: int, user: str, start: float, end: float) -> Counts:
    """`user`'s requests received in [start, end), from the log lines after byte `offset`."""
    counts = Counts(start=start, end=end)
    for event in requests(path, since=start, until=end, user=user, offset=offset):
        verb, ref = event.get("verb", ""), event.get("objectRef") or {}
        if ref.get("resource"):
            resource = ref["resource"] + (f"/{ref['subresource']}" if ref.get("subresource") else "")
        else:  # a non-resource URL (discovery, /version)
            resource = event.get("requestURI", "?").split("?", 1)[0]
        counts.by_request[f"{verb} {resource}"] += 1
        if verb in READS:
            counts.reads += 1
        elif verb in WATCHES:
            counts.watches += 1
        elif verb in WRITES:
            counts.writes += 1
    return counts


def wait_for_watch(path: Path, offset: int, user: str, namespace: str, resource: str, timeout: float) -> bool:
    """Wait until `user` has opened a watch on `resource` in `namespace` (after byte `offset`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for event in events(path, offset):
            ref = event.get("objectRef") or {}
            if ((event.get("user") or {}).get("username") == user and event.get("verb") == "watch"
                    and ref.get("namespace") == namespace and ref.get("resource") == resource):
                return True
        time.sleep(0.5)
    return False
