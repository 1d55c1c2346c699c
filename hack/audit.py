"""The test bed's API audit log (see AUDIT_POLICY in testbed.py): parsed events and the requests
of one actor, for the tests and the benchmark that count what the operator sends."""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def timestamp(text: str) -> float:
    """An audit timestamp (RFC 3339, microseconds, Z) as epoch seconds."""
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def log_offset(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def events(path: Path, offset: int = 0) -> list[dict[str, Any]]:
    """Every event after byte `offset` (the whole log if it was rotated or recreated meanwhile)."""
    if not path.exists():
        return []
    with path.open("rb") as log:
        if log.seek(0, 2) < offset:
            offset = 0
        log.seek(offset)
        lines = log.read().decode(errors="replace").splitlines()
    parsed = []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except json.JSONDecodeError:  # a line being written right now
            continue
    return parsed


def requests(path: Path, *, since: float, until: float = math.inf, user: str | None = None,
             namespace: str | None = None, agents: tuple[str, ...] = (), offset: int = 0) -> Iterator[dict[str, Any]]:
    """One event per request (a watch logs two stages) received in [since, until), of `user`, in
    `namespace`, from a user agent starting with one of `agents` (each filter only when given)."""
    seen: set[str] = set()
    for event in events(path, offset):
        ref = event.get("objectRef") or {}
        if (user is not None and (event.get("user") or {}).get("username") != user) \
                or (namespace is not None and ref.get("namespace") != namespace) \
                or (agents and not event.get("userAgent", "").startswith(agents)) \
                or event.get("auditID") in seen:
            continue
        if since <= timestamp(event["requestReceivedTimestamp"]) < until:
            seen.add(event["auditID"])
            yield event
