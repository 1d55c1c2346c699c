"""drift.differences: what would a server-side apply change? (table-driven)"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from modelpilot.drift import differences, quantity

CASES: list[tuple[str, Any, Any, list[str]]] = [
    ("equal", {"a": 1}, {"a": 1}, []),
    ("server-added-fields-ignored", {"a": {"b": 1}}, {"a": {"b": 1, "c": 2}, "status": {}}, []),
    ("changed-scalar", {"a": {"b": "x"}}, {"a": {"b": "y"}}, [".a.b"]),
    ("missing-key", {"a": {"b": 1}}, {"a": {}}, [".a.b"]),
    ("empty-map-dropped-by-server", {"a": {"labels": {}}}, {"a": {}}, []),
    ("empty-list-dropped-by-server", {"a": {"items": []}}, {"a": {}}, []),
    ("list-length", {"l": [1, 2]}, {"l": [1]}, [".l"]),
    ("list-element", {"l": [{"n": "a", "v": 1}]}, {"l": [{"n": "a", "v": 2, "extra": True}]}, [".l[0].v"]),
    ("list-element-defaults-ignored", {"l": [{"n": "a"}]}, {"l": [{"n": "a", "protocol": "TCP"}]}, []),
    ("quantity-canonicalised", {"cpu": "1000m", "mem": "1024Mi"}, {"cpu": "1", "mem": "1Gi"}, []),
    ("quantity-differs", {"cpu": "500m"}, {"cpu": "1"}, [".cpu"]),
    ("int-vs-string-quantity", {"gpu": 1}, {"gpu": "1"}, []),
    ("not-a-quantity", {"image": "a:1"}, {"image": "a:2"}, [".image"]),
    ("dict-vs-scalar", {"a": {"b": 1}}, {"a": 3}, [".a"]),
    ("bool-is-not-quantity", {"x": True}, {"x": 1}, [".x"]),
    # Named items someone else added (kubectl edit: an env var, a sidecar) stay under server-side
    # apply; counting them would re-apply on every resync, forever.
    ("hand-added-env-var", {"env": [{"name": "A", "value": "1"}]},
     {"env": [{"name": "A", "value": "1"}, {"name": "DEBUG", "value": "1"}]}, []),
    ("hand-added-sidecar", {"containers": [{"name": "server", "image": "a:1"}]},
     {"containers": [{"name": "proxy", "image": "p"}, {"name": "server", "image": "a:1"}]}, []),
    ("named-item-changed", {"env": [{"name": "A", "value": "1"}]}, {"env": [{"name": "A", "value": "2"}]},
     [".env[name=A].value"]),
    ("named-item-removed", {"env": [{"name": "A", "value": "1"}]}, {"env": [{"name": "B", "value": "1"}]},
     [".env[name=A]"]),
    ("unnamed-list-still-atomic", {"args": ["--a"]}, {"args": ["--a", "--hand"]}, [".args"]),
]


@pytest.mark.parametrize(("case", "desired", "live", "expected"), CASES, ids=[c[0] for c in CASES])
def test_differences(case: str, desired: Any, live: Any, expected: list[str]) -> None:
    assert differences(desired, live) == expected


@pytest.mark.parametrize(("text", "value"), [
    ("500m", Decimal("0.5")), ("1", Decimal(1)), ("2Gi", Decimal(2 * 2**30)), ("1k", Decimal(1000)),
    ("1.5", Decimal("1.5")), (3, Decimal(3)), ("abc", None), ("1Xi", None),
])
def test_quantity(text: str | int, value: Decimal | None) -> None:
    assert quantity(text) == value
