"""Durations as users write them in the spec: a subset of Go's `time.ParseDuration` syntax.

The CRD checks the same strings with CEL's `duration()` (which is Go's parser), so every string
accepted here must also parse there: whole numbers with the units ms, s, m and h, concatenated
largest first or in any order ("90s", "1h30m", "500ms"). Fractions and the units us/ns are left out
on purpose: nothing in a rollout is timed that finely, and one strict form is easier to document.
"""

from __future__ import annotations

import re

# One or more <digits><unit> groups; `ms` is listed before `m` so the alternation matches it whole.
DURATION_PATTERN = r"^([0-9]+(ms|s|m|h))+$"
_DURATION_RE = re.compile(DURATION_PATTERN)
_PART_RE = re.compile(r"([0-9]+)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}

#: The largest duration accepted (one week): keeps arithmetic and CEL comparisons far from overflow.
MAX_DURATION_SECONDS = 7 * 24 * 3600.0


def is_duration(text: str) -> bool:
    """True when `text` is a duration in the accepted syntax (e.g. "30s", "1h30m", "500ms")."""
    return bool(_DURATION_RE.match(text))


def parse_duration(text: str) -> float:
    """Return the duration `text` in seconds; raise ValueError with a readable message otherwise."""
    if not isinstance(text, str) or not _DURATION_RE.match(text):
        raise ValueError(
            f"invalid duration {text!r}: use a number with a unit (ms, s, m, h), e.g. 30s, 5m or 1h30m"
        )
    seconds = sum(int(number) * _UNIT_SECONDS[unit] for number, unit in _PART_RE.findall(text))
    if seconds > MAX_DURATION_SECONDS:
        raise ValueError(f"invalid duration {text!r}: longer than the maximum of 168h")
    return seconds


def format_duration(seconds: float) -> str:
    """Render seconds in the same syntax (largest units first), e.g. 5400 -> "1h30m"."""
    if seconds < 0:
        raise ValueError("durations are never negative")
    millis = round(seconds * 1000)
    if millis == 0:
        return "0s"
    parts: list[str] = []
    for unit, size in (("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        count, millis = divmod(millis, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
