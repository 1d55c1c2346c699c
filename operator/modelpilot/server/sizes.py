"""Byte sizes in settings: a plain number of bytes or a Kubernetes-style quantity ("20Gi", "512Mi")."""

from __future__ import annotations

import re

_UNITS = {
    "": 1,
    "k": 10**3, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40,
}  # fmt: skip
_SIZE = re.compile(r"^\s*([0-9]+)\s*([kKMGT]i?)?\s*$")


def parse_size(text: str, setting: str) -> int:
    """`text` as a positive number of bytes; ValueError naming `setting` otherwise."""
    match = _SIZE.match(text)
    if match is None or (match.group(2) or "") not in _UNITS:
        raise ValueError(f"{setting} must be a number of bytes or a quantity such as 20Gi, got {text!r}")
    size = int(match.group(1)) * _UNITS[match.group(2) or ""]
    if size <= 0:
        raise ValueError(f"{setting} must be positive, got {text!r}")
    return size
