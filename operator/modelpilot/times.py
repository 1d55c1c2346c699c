"""Times as the status writes them (RFC 3339, UTC, whole seconds) and reads them back (pure)."""

from __future__ import annotations

import datetime as dt
from typing import Any


def parse_time(value: Any) -> dt.datetime | None:
    """An RFC 3339 time (a naive one is UTC), or a datetime; None when absent or unreadable."""
    if not isinstance(value, str | dt.datetime):
        return None
    try:
        then = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return then if then.tzinfo is not None else then.replace(tzinfo=dt.UTC)


def stamp(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
