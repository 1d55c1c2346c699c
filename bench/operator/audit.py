"""The operator's API requests, counted from the test bed's audit log.

The test bed's audit policy (hack/testbed.py, AUDIT_POLICY) logs every write at Metadata level,
and also the reads (get, list, watch) of one identity: the ServiceAccount the bench runs its
operator as. So every request of that user is in the log, one or two lines each (a watch has a
ResponseStarted line when it opens and a ResponseComplete line when it ends), told apart by
auditID and placed in time by requestReceivedTimestamp.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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


def timestamp(text: str) -> float:
    """An audit timestamp (RFC 3339, microseconds, Z) as epoch seconds."""
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def log_offset(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def policy_audits_reads(policy: Path, user: str) -> bool:
    """Whether the running test bed's audit policy logs `user`'s reads (clusters started before
    that rule existed do not: `make cluster-down cluster-up` fixes it)."""
    if not policy.exists():
        return False
    text = policy.read_text()
    return user in text and "watch" in text


def _events(path: Path, offset: int) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    with path.open("rb") as log:
        if log.seek(0, 2) < offset:  # rotated or recreated: read it all
            offset = 0
        log.seek(offset)
        lines = log.read().decode(errors="replace").splitlines()
    events = []
    for line in lines:
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:  # a line being written right now
            continue
    return events


def count(path: Path, offset: int, user: str, start: float, end: float) -> Counts:
    """`user`'s requests received in [start, end), from the log lines after byte `offset`."""
    counts = Counts(start=start, end=end)
    seen: set[str] = set()
    for event in _events(path, offset):
        if (event.get("user") or {}).get("username") != user or event.get("auditID") in seen:
            continue
        if not start <= timestamp(event["requestReceivedTimestamp"]) < end:
            continue
        seen.add(event["auditID"])
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
        for event in _events(path, offset):
            ref = event.get("objectRef") or {}
            if ((event.get("user") or {}).get("username") == user and event.get("verb") == "watch"
                    and ref.get("namespace") == namespace and ref.get("resource") == resource):
                return True
        time.sleep(0.5)
    return False
