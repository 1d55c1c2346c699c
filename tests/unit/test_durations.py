"""Duration strings (Go syntax subset) <-> seconds."""

from __future__ import annotations

import pytest

from modelpilot.api.durations import format_duration, is_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("0s", 0.0),
        ("5s", 5.0),
        ("30s", 30.0),
        ("10m", 600.0),
        ("1h", 3600.0),
        ("1h30m", 5400.0),
        ("1h30m15s", 5415.0),
        ("90s", 90.0),
        ("500ms", 0.5),
        ("1m500ms", 60.5),
        ("30s1m", 90.0),  # Go accepts any order; so do we
        ("168h", 604800.0),
    ],
)
def test_parse(text: str, seconds: float) -> None:
    assert is_duration(text)
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "30", "s", "1.5h", "-5s", "5 s", "5sec", "1d", "10us", " 5s", "5s ", "m5"])
def test_rejected(text: str) -> None:
    assert not is_duration(text)
    with pytest.raises(ValueError, match="use a number with a unit"):
        parse_duration(text)


def test_maximum() -> None:
    with pytest.raises(ValueError, match="168h"):
        parse_duration("169h")


@pytest.mark.parametrize(
    ("seconds", "text"), [(0, "0s"), (30, "30s"), (5400, "1h30m"), (0.5, "500ms"), (61.5, "1m1s500ms")]
)
def test_format_round_trips(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text) == pytest.approx(seconds)


def test_format_negative() -> None:
    with pytest.raises(ValueError):
        format_duration(-1)
