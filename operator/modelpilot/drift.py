"""Does a live object already hold everything we would apply? (pure)

A steady-state resync must make zero API writes, and a server-side apply of an unchanged object
is still a PATCH request. So before applying, the desired object is compared with the live one:
every field we set must be present with an equal value; fields the server or third parties added
are ignored. Quantities compare by value ("1000m" == "1"), because the API server canonicalises them.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

_QUANTITY = re.compile(r"^([+-]?[0-9.]+)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$")
_SUFFIX = {
    None: Decimal(1), "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"),
    "k": Decimal("1e3"), "M": Decimal("1e6"), "G": Decimal("1e9"), "T": Decimal("1e12"),
    "P": Decimal("1e15"), "E": Decimal("1e18"),
    "Ki": Decimal(2**10), "Mi": Decimal(2**20), "Gi": Decimal(2**30), "Ti": Decimal(2**40),
    "Pi": Decimal(2**50), "Ei": Decimal(2**60),
}


def quantity(value: str | int | float) -> Decimal | None:
    """The numeric value of a Kubernetes quantity, or None when it is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return Decimal(str(value))
    match = _QUANTITY.match(value.strip())
    if not match:
        return None
    try:
        return Decimal(match.group(1)) * _SUFFIX[match.group(2)]
    except InvalidOperation:
        return None


def _scalar_equal(want: Any, have: Any) -> bool:
    if isinstance(want, bool) != isinstance(have, bool):
        return False  # True == 1 in Python, not in JSON
    if want == have:
        return True
    if isinstance(want, str | int | float) and isinstance(have, str | int | float):
        a, b = quantity(want), quantity(have)
        return a is not None and a == b
    return False


def differences(desired: Any, live: Any, path: str = "") -> list[str]:
    """Paths where `live` does not hold what `desired` says; empty when nothing would change."""
    if isinstance(desired, dict):
        if not isinstance(live, dict):
            return [path or "."]
        found: list[str] = []
        for key, value in desired.items():
            if key not in live:
                # An empty map/list we set and the server dropped is not a difference.
                if value in ({}, []):
                    continue
                found.append(f"{path}.{key}")
            else:
                found += differences(value, live[key], f"{path}.{key}")
        return found
    if isinstance(desired, list):
        if not isinstance(live, list):
            return [path]
        if _keyed(desired) and _keyed(live):
            return _keyed_differences(desired, live, path)
        if len(desired) != len(live):
            return [path]
        found = []
        for i, (want, have) in enumerate(zip(desired, live, strict=True)):
            found += differences(want, have, f"{path}[{i}]")
        return found
    return [] if _scalar_equal(desired, live) else [path]


def _keyed(items: list[Any]) -> bool:
    """A list of named items (containers, env, volumes, ...): merged by name under server-side
    apply, so items someone else added stay, and an apply cannot remove them."""
    names = [item.get("name") for item in items if isinstance(item, dict)]
    return len(names) == len(items) and all(isinstance(n, str) for n in names) and len(set(names)) == len(names)


def _keyed_differences(desired: list[Any], live: list[Any], path: str) -> list[str]:
    """Every desired item must be live and equal; live items of others are left alone (an apply
    would not remove them, so counting them would re-apply on every resync, forever)."""
    by_name = {item["name"]: item for item in live}
    found: list[str] = []
    for item in desired:
        have = by_name.get(item["name"])
        if have is None:
            found.append(f"{path}[name={item['name']}]")
        else:
            found += differences(item, have, f"{path}[name={item['name']}]")
    return found
